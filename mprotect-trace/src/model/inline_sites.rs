//! Where functions are inlined in one kernel build, as its DWARF says:
//! written on a machine that has the 400 MB debug vmlinux
//! (`mprotect-trace inline-sites`), read by `run --inline-sites` on the
//! machine (or small VM) that runs that kernel.

use serde::{Deserialize, Serialize};

/// The inlined instances of some functions in one kernel build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineSites {
    /// The vmlinux's GNU build id: a run refuses the file on another kernel.
    pub build_id: String,
    /// The vmlinux they were read from, for the reader.
    pub vmlinux: String,
    /// `x86_64`, `aarch64` or `ppc64le`: how its DWARF register numbers are read.
    pub arch: String,
    pub functions: Vec<InlinedFunction>,
}

impl InlineSites {
    pub fn function(&self, name: &str) -> Option<&InlinedFunction> {
        self.functions
            .iter()
            .find(|f| f.name == name && !f.instances.is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinedFunction {
    pub name: String,
    pub instances: Vec<InlinedInstance>,
}

impl InlinedFunction {
    /// "change_pte_range (2 instances)", or several such.
    pub fn places(&self) -> String {
        let mut callers: Vec<(&str, usize)> = Vec::new();
        for instance in &self.instances {
            match callers.iter_mut().find(|(name, _)| *name == instance.inlined_in) {
                Some((_, count)) => *count += 1,
                None => callers.push((&instance.inlined_in, 1)),
            }
        }
        callers
            .iter()
            .map(|(name, count)| {
                let plural = if *count == 1 { "" } else { "s" };
                format!("{name} ({count} instance{plural})")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One inlined copy of a function's body inside an out-of-line function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinedInstance {
    /// The out-of-line function it was inlined into, as DWARF names it.
    pub inlined_in: String,
    /// The ELF (and kallsyms) symbol whose code holds its entry, and the
    /// entry's offset in it: where the probe goes, whatever the KASLR slide.
    pub symbol: String,
    pub offset: u64,
    /// Its entry (DW_AT_entry_pc, else its lowest address), as linked.
    pub entry: u64,
    /// Its code, as linked: `[start, end)` ranges.
    pub ranges: Vec<[u64; 2]>,
    /// The inline chain from `inlined_in` down to it, outermost first.
    pub chain: Vec<String>,
    pub parameters: Vec<InlinedParameter>,
    /// Where control leaves it, as an offset in `symbol`, when it has one
    /// entry and one exit: a probe pair there times it.
    #[serde(default)]
    pub exit_offset: Option<u64>,
    /// Why it cannot be timed that way (empty when it can).
    pub no_latency: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinedParameter {
    pub name: String,
    /// Where its value is at the instance's entry.
    pub location: ValueLocation,
}

/// Where DWARF puts a value at one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ValueLocation {
    /// Known at compile time (`DW_OP_lit1; DW_OP_stack_value`).
    Constant { value: i64 },
    /// In a register, by its DWARF number.
    Register { register: u16, name: String },
    /// In memory at register + offset (a stack slot), `size` bytes.
    Memory {
        register: u16,
        name: String,
        offset: i64,
        size: u8,
    },
    /// Not readable there, and why.
    Unavailable { why: String },
}

impl ValueLocation {
    /// "the constant 1", "rdx", "u32 at rsp+0x68".
    pub fn describe(&self) -> String {
        match self {
            Self::Constant { value } => format!("the constant {value}"),
            Self::Register { name, .. } => format!("register {name}"),
            Self::Memory { name, offset, size, .. } => {
                let sign = if *offset < 0 { "-" } else { "+" };
                format!("{}-byte stack slot at {name}{sign}{:#x}", size, offset.unsigned_abs())
            }
            Self::Unavailable { why } => format!("unavailable: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(inlined_in: &str) -> InlinedInstance {
        InlinedInstance {
            inlined_in: inlined_in.to_owned(),
            symbol: inlined_in.to_owned(),
            offset: 0x2ec,
            entry: 0xffff_ffff_816d_20ac,
            ranges: vec![[0xffff_ffff_816d_20ac, 0xffff_ffff_816d_20b8]],
            chain: vec![inlined_in.to_owned()],
            parameters: Vec::new(),
            exit_offset: None,
            no_latency: String::new(),
        }
    }

    #[test]
    fn places_count_instances_per_function() {
        let function = InlinedFunction {
            name: "modify_prot_start_ptes".to_owned(),
            instances: vec![
                instance("change_pte_range"),
                instance("change_pte_range"),
                instance("change_huge_pmd"),
            ],
        };
        assert_eq!(
            function.places(),
            "change_pte_range (2 instances), change_huge_pmd (1 instance)"
        );
    }

    #[test]
    fn locations_read_as_a_kernel_developer_writes_them() {
        let slot = ValueLocation::Memory {
            register: 7,
            name: "rsp".to_owned(),
            offset: 0x68,
            size: 4,
        };
        assert_eq!(slot.describe(), "4-byte stack slot at rsp+0x68");
        assert_eq!(ValueLocation::Constant { value: 1 }.describe(), "the constant 1");
        let json = serde_json::to_string(&slot).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"memory","register":7,"name":"rsp","offset":104,"size":4}"#
        );
    }
}
