//! Function signatures from the running kernel's BTF.

use anyhow::{Context as _, Result};
use btf_rs::{Btf, BtfType, Type};
use serde::{Deserialize, Serialize};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// A kernel function as BTF describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSignature {
    pub name: String,
    pub return_type: String,
    /// Whether the return type is an integer (through typedefs): a value
    /// worth a distribution.
    #[serde(default)]
    pub returns_integer: bool,
    /// Whether it returns a struct or union by value (`pte_t`): the
    /// verifier refuses fentry/fexit on such a function.
    #[serde(default)]
    pub returns_struct: bool,
    pub parameters: Vec<Parameter>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub type_name: String,
}

impl FunctionSignature {
    /// C-like rendering: `long change_protection(struct mmu_gather *tlb, ...)`.
    pub fn to_c(&self) -> String {
        let parameters: Vec<String> = self
            .parameters
            .iter()
            .map(|p| {
                let space = if p.type_name.ends_with('*') { "" } else { " " };
                format!("{}{space}{}", p.type_name, p.name)
            })
            .collect();
        format!("{} {}({})", self.return_type, self.name, parameters.join(", "))
    }
}

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    pub fn load() -> Result<Self> {
        let btf = Btf::from_file(VMLINUX_BTF).with_context(|| format!("reading {VMLINUX_BTF}"))?;
        Ok(Self { btf })
    }

    /// The signature of the function `name`, or `None` when BTF has no such function.
    pub fn function(&self, name: &str) -> Result<Option<FunctionSignature>> {
        let Ok(types) = self.btf.resolve_types_by_name(name) else {
            return Ok(None);
        };
        let Some(func) = types.into_iter().find_map(|t| match t {
            Type::Func(func) => Some(func),
            _ => None,
        }) else {
            return Ok(None);
        };
        let Type::FuncProto(proto) = self.btf.resolve_chained_type(&func)? else {
            anyhow::bail!("BTF function {name} has no prototype");
        };
        let return_type = self.type_name_by_id(proto.return_type_id(), 0)?;
        let returns_integer = self.is_integer(proto.return_type_id())?;
        let returns_struct = self.is_struct(proto.return_type_id())?;
        let parameters = proto
            .parameters
            .iter()
            .filter(|p| !p.is_variadic())
            .map(|p| {
                Ok(Parameter {
                    name: self.btf.resolve_name(p).unwrap_or_default(),
                    type_name: self.type_name_by_id(p.get_type_id()?, 0)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(FunctionSignature {
            name: name.to_owned(),
            return_type,
            returns_integer,
            returns_struct,
            parameters,
        }))
    }

    /// Whether type `id` is a struct or union, through typedefs and qualifiers.
    fn is_struct(&self, id: u32) -> Result<bool> {
        Ok(matches!(self.resolved(id)?, Some(Type::Struct(_) | Type::Union(_))))
    }

    /// Whether type `id` is an integer or an enum, through typedefs and qualifiers.
    fn is_integer(&self, id: u32) -> Result<bool> {
        Ok(matches!(
            self.resolved(id)?,
            Some(Type::Int(_) | Type::Enum(_) | Type::Enum64(_))
        ))
    }

    /// Type `id` with typedefs, const and volatile peeled off; `None` for void.
    fn resolved(&self, mut id: u32) -> Result<Option<Type>> {
        // Bounded: malformed BTF could chain typedefs in a cycle.
        for _ in 0..16 {
            if id == 0 {
                return Ok(None);
            }
            match self.btf.resolve_type_by_id(id)? {
                Type::Typedef(t) => id = t.get_type_id()?,
                Type::Const(t) => id = t.get_type_id()?,
                Type::Volatile(t) => id = t.get_type_id()?,
                other => return Ok(Some(other)),
            }
        }
        Ok(None)
    }

    fn type_name_by_id(&self, id: u32, depth: usize) -> Result<String> {
        if id == 0 {
            return Ok("void".into());
        }
        let ty = self.btf.resolve_type_by_id(id)?;
        self.type_name(&ty, depth)
    }

    /// Renders a BTF type the way C spells it (enough for signatures).
    fn type_name(&self, ty: &Type, depth: usize) -> Result<String> {
        // Guards against reference cycles in malformed BTF.
        if depth > 16 {
            return Ok("...".into());
        }
        let named = |prefix: &str, t: &dyn BtfType| -> Result<String> {
            let name = self.btf.resolve_name(t).unwrap_or_default();
            Ok(if name.is_empty() {
                format!("{prefix}(anon)")
            } else {
                format!("{prefix}{name}")
            })
        };
        let inner = |t: &dyn BtfType| -> Result<String> {
            let id = t.get_type_id()?;
            self.type_name_by_id(id, depth + 1)
        };
        Ok(match ty {
            Type::Void => "void".into(),
            Type::Int(t) => named("", t)?,
            Type::Float(t) => named("", t)?,
            Type::Typedef(t) => named("", t)?,
            Type::Struct(t) => named("struct ", t)?,
            Type::Union(t) => named("union ", t)?,
            Type::Enum(t) => named("enum ", t)?,
            Type::Enum64(t) => named("enum ", t)?,
            Type::Fwd(t) if t.is_union() => named("union ", t)?,
            Type::Fwd(t) => named("struct ", t)?,
            Type::Ptr(t) => {
                let pointee = inner(t)?;
                if pointee.ends_with('*') {
                    format!("{pointee}*")
                } else {
                    format!("{pointee} *")
                }
            }
            Type::Const(t) => format!("const {}", inner(t)?),
            Type::Volatile(t) => format!("volatile {}", inner(t)?),
            Type::Restrict(t) => inner(t)?,
            Type::TypeTag(t) => inner(t)?,
            Type::Array(t) => format!("{}[]", inner(t)?),
            Type::FuncProto(_) => "void (*)(...)".into(),
            other => other.name().to_owned(),
        })
    }
}
