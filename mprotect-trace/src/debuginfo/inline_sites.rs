//! Where a function was inlined, read from a vmlinux's DWARF: every
//! `DW_TAG_inlined_subroutine` of it, with its entry address, the symbol
//! that holds it, its code ranges and where each parameter's value is at
//! the entry (a constant, a register, or a stack slot through the CFA).
//! blazesym answers "what is at this address"; this is the other way
//! round, so it walks the DIEs with gimli.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use gimli::{
    AttributeValue, CfaRule, DW_AT_abstract_origin, DW_AT_byte_size, DW_AT_const_value, DW_AT_entry_pc,
    DW_AT_frame_base, DW_AT_location, DW_AT_low_pc, DW_AT_name, DW_AT_type, DW_TAG_formal_parameter,
    DW_TAG_inlined_subroutine, DW_TAG_subprogram, EndianSlice, Operation, RunTimeEndian, UnitOffset,
    UnwindSection as _,
};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, OpKind};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};

use crate::model::{InlineSites, InlinedFunction, InlinedInstance, InlinedParameter, ValueLocation};

type Slice<'a> = EndianSlice<'a, RunTimeEndian>;
type Unit<'a> = gimli::Unit<Slice<'a>>;

/// Reads the inlined instances of `names` from the DWARF vmlinux at `path`.
pub fn read(path: &Path, names: &[&str]) -> Result<InlineSites> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the file is only read; a vmlinux is not rewritten in place
    // while a run reads it (a package upgrade replaces it by rename).
    let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
    let elf = object::File::parse(&*map).map_err(|err| anyhow!("{} is not an ELF file: {err}", path.display()))?;
    let build_id = elf
        .build_id()
        .map_err(|err| anyhow!("reading the build id of {}: {err}", path.display()))?
        .map(|bytes| bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
        .with_context(|| format!("{} has no build id", path.display()))?;
    let arch = match elf.architecture() {
        object::Architecture::X86_64 => Arch::X86_64,
        object::Architecture::Aarch64 => Arch::Aarch64,
        object::Architecture::PowerPc64 if elf.is_little_endian() => Arch::Ppc64le,
        other => anyhow::bail!(
            "{} is a {other:?} kernel: only x86_64, aarch64 and ppc64le are read",
            path.display()
        ),
    };
    let endian = if elf.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<[u8]>> {
        match elf.section_by_name(id.name()) {
            Some(section) => Ok(section.uncompressed_data()?),
            None => Ok(Cow::Borrowed(&[][..])),
        }
    })?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));
    if gimli::Section::reader(&dwarf.debug_info).is_empty() {
        anyhow::bail!(
            "{} has no DWARF (.debug_info): give the debug vmlinux (Debian: linux-image-<version>-dbg)",
            path.display()
        );
    }
    let frame_data = match elf.section_by_name(".debug_frame") {
        Some(section) => section.uncompressed_data()?,
        None => Cow::Borrowed(&[][..]),
    };
    let mut debug_frame = gimli::DebugFrame::new(&frame_data, endian);
    debug_frame.set_address_size(8);
    let image = Image {
        symbols: function_symbols(&elf),
        elf: &elf,
        arch,
        debug_frame,
    };
    let mut found: HashMap<&str, Vec<InlinedInstance>> = names.iter().map(|name| (*name, Vec::new())).collect();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        scan_unit(&dwarf, &unit, &image, &mut found)?;
    }
    Ok(InlineSites {
        build_id,
        vmlinux: path.display().to_string(),
        arch: arch.name().to_owned(),
        functions: names
            .iter()
            .map(|name| {
                let mut instances = found.remove(name).unwrap_or_default();
                instances.sort_by_key(|instance| instance.entry);
                InlinedFunction {
                    name: (*name).to_owned(),
                    instances,
                }
            })
            .collect(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arch {
    X86_64,
    Aarch64,
    Ppc64le,
}

impl Arch {
    fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
            Self::Ppc64le => "ppc64le",
        }
    }

    fn register_name(self, register: gimli::Register) -> String {
        let name = match self {
            Self::X86_64 => gimli::X86_64::register_name(register),
            Self::Aarch64 => gimli::AArch64::register_name(register),
            Self::Ppc64le => gimli::PowerPc64::register_name(register),
        };
        name.map_or_else(|| format!("r{}", register.0), str::to_owned)
    }
}

/// What the DIE walk needs besides the DWARF: the symbols, the code and
/// the call frame information.
struct Image<'a> {
    elf: &'a object::File<'a>,
    /// Function symbols, sorted by address: (address, size, name).
    symbols: Vec<(u64, u64, String)>,
    arch: Arch,
    debug_frame: gimli::DebugFrame<Slice<'a>>,
}

fn function_symbols(elf: &object::File) -> Vec<(u64, u64, String)> {
    let mut symbols: Vec<(u64, u64, String)> = elf
        .symbols()
        .filter(|symbol| symbol.kind() == SymbolKind::Text && symbol.size() > 0)
        .filter_map(|symbol| Some((symbol.address(), symbol.size(), symbol.name().ok()?.to_owned())))
        .collect();
    symbols.sort();
    symbols
}

impl Image<'_> {
    /// The function symbol whose code holds `address`: its name and its
    /// code, `[start, end)`.
    fn symbol_holding(&self, address: u64) -> Option<(&str, u64, u64)> {
        let index = self.symbols.partition_point(|(start, _, _)| *start <= address);
        let (start, size, name) = self.symbols.get(index.checked_sub(1)?)?;
        (address < start + size).then_some((name.as_str(), *start, start + size))
    }

    /// The CFA rule at `address`: register + offset.
    fn cfa_at(&self, address: u64) -> Result<(gimli::Register, i64), String> {
        let bases = gimli::BaseAddresses::default();
        let fde = self
            .debug_frame
            .fde_for_address(&bases, address, gimli::DebugFrame::cie_from_offset)
            .map_err(|err| format!("no call frame information at {address:#x} ({err})"))?;
        let mut context = gimli::UnwindContext::new();
        let row = fde
            .unwind_info_for_address(&self.debug_frame, &bases, &mut context, address)
            .map_err(|err| format!("unwinding at {address:#x}: {err}"))?;
        match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => Ok((*register, *offset)),
            CfaRule::Expression(_) => Err("the frame's CFA is a DWARF expression".to_owned()),
        }
    }

    /// The code bytes of `[start, end)`, as linked.
    fn code(&self, start: u64, end: u64) -> Option<&[u8]> {
        let section = self
            .elf
            .sections()
            .find(|s| s.address() <= start && end <= s.address() + s.size())?;
        let data = section.data().ok()?;
        data.get((start - section.address()) as usize..(end - section.address()) as usize)
    }
}

/// One DIE on the walk's path from the unit down.
struct Step<'a> {
    tag: gimli::DwTag,
    name: Option<String>,
    frame_base: Option<gimli::Expression<Slice<'a>>>,
    /// (name, index in `found[name]`) of the instance whose parameters follow.
    collecting: Option<(String, usize)>,
}

fn scan_unit<'a>(
    dwarf: &gimli::Dwarf<Slice<'a>>,
    unit: &Unit<'a>,
    image: &Image,
    found: &mut HashMap<&str, Vec<InlinedInstance>>,
) -> Result<()> {
    let encoding = unit.encoding();
    let mut names: HashMap<UnitOffset, Option<String>> = HashMap::new();
    let mut path: Vec<Step<'a>> = Vec::new();
    let mut cursor = unit.entries();
    while let Some(die) = cursor.next_dfs()? {
        path.truncate(die.depth() as usize);
        let tag = die.tag();
        let mut name = None;
        let mut frame_base = None;
        let mut collecting = None;
        if tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine {
            name = die_name(dwarf, unit, die, &mut names)?;
            if let Some(AttributeValue::Exprloc(expression)) = die.attr_value(DW_AT_frame_base) {
                frame_base = Some(expression);
            }
        }
        if tag == DW_TAG_inlined_subroutine
            && let Some(wanted) = name.as_deref().filter(|n| found.contains_key(n))
        {
            let mut ranges = Vec::new();
            let mut iter = dwarf.die_ranges(unit, die)?;
            while let Some(range) = iter.next()? {
                if range.begin < range.end {
                    ranges.push([range.begin, range.end]);
                }
            }
            ranges.sort();
            let entry = match die.attr_value(DW_AT_entry_pc) {
                Some(value @ (AttributeValue::Addr(_) | AttributeValue::DebugAddrIndex(_))) => {
                    dwarf.attr_address(unit, value)?
                }
                // DWARF 5: a constant is an offset from the instance's base.
                Some(value) => value.udata_value().and_then(|offset| Some(ranges.first()?[0] + offset)),
                None => match die.attr_value(DW_AT_low_pc) {
                    Some(value) => dwarf.attr_address(unit, value)?,
                    None => ranges.first().map(|range| range[0]),
                },
            };
            // An instance with no code left (all of it optimized away) is not a call.
            if let Some(entry) = entry.filter(|_| !ranges.is_empty())
                && let Some((symbol, symbol_start, _)) = image.symbol_holding(entry)
            {
                let chain: Vec<String> = path
                    .iter()
                    .filter(|step| step.tag == DW_TAG_subprogram || step.tag == DW_TAG_inlined_subroutine)
                    .map(|step| step.name.clone().unwrap_or_else(|| "?".to_owned()))
                    .chain([wanted.to_owned()])
                    .collect();
                let exit = single_exit(image, entry, &ranges);
                let instances = found.get_mut(wanted).context("a wanted name")?;
                instances.push(InlinedInstance {
                    inlined_in: chain.first().cloned().unwrap_or_else(|| symbol.to_owned()),
                    symbol: symbol.to_owned(),
                    offset: entry - symbol_start,
                    entry,
                    exit_offset: exit.as_ref().ok().map(|exit| exit - symbol_start),
                    no_latency: exit.err().unwrap_or_default(),
                    ranges,
                    chain,
                    parameters: Vec::new(),
                });
                collecting = Some((wanted.to_owned(), instances.len() - 1));
            }
        }
        if tag == DW_TAG_formal_parameter
            && let Some(Step {
                collecting: Some((wanted, index)),
                ..
            }) = path.last()
        {
            let frame_base = path.iter().rev().find_map(|step| step.frame_base);
            let instance = &found[wanted.as_str()][*index];
            let entry = instance.entry;
            let parameter = InlinedParameter {
                name: die_name(dwarf, unit, die, &mut names)?.unwrap_or_else(|| "?".to_owned()),
                location: parameter_location(dwarf, unit, die, entry, frame_base, image, encoding)
                    .unwrap_or_else(|why| ValueLocation::Unavailable { why }),
            };
            if let Some(instance) = found
                .get_mut(wanted.as_str())
                .and_then(|instances| instances.get_mut(*index))
            {
                instance.parameters.push(parameter);
            }
        }
        path.push(Step {
            tag,
            name,
            frame_base,
            collecting,
        });
    }
    Ok(())
}

/// A DIE's name, its own or its abstract origin's (same unit: how GCC
/// writes a kernel's inlined instances).
fn die_name<'a>(
    dwarf: &gimli::Dwarf<Slice<'a>>,
    unit: &Unit<'a>,
    die: &gimli::DebuggingInformationEntry<Slice<'a>>,
    cache: &mut HashMap<UnitOffset, Option<String>>,
) -> Result<Option<String>> {
    if let Some(value) = die.attr_value(DW_AT_name) {
        return Ok(Some(dwarf.attr_string(unit, value)?.to_string_lossy().into_owned()));
    }
    let Some(AttributeValue::UnitRef(origin)) = die.attr_value(DW_AT_abstract_origin) else {
        return Ok(None);
    };
    if let Some(name) = cache.get(&origin) {
        return Ok(name.clone());
    }
    let origin_die = unit.entry(origin)?;
    let name = die_name(dwarf, unit, &origin_die, cache)?;
    cache.insert(origin, name.clone());
    Ok(name)
}

/// The byte size of a parameter's type, through typedefs and qualifiers.
fn type_size(unit: &Unit, die: &gimli::DebuggingInformationEntry<Slice>) -> Option<u64> {
    let mut current = match die.attr_value(DW_AT_type) {
        Some(AttributeValue::UnitRef(offset)) => Some(offset),
        _ => match die.attr_value(DW_AT_abstract_origin) {
            Some(AttributeValue::UnitRef(origin)) => {
                return type_size(unit, &unit.entry(origin).ok()?);
            }
            _ => None,
        },
    };
    for _ in 0..16 {
        let entry = unit.entry(current?).ok()?;
        if let Some(size) = entry.attr_value(DW_AT_byte_size).and_then(|v| v.udata_value()) {
            return Some(size);
        }
        if entry.tag() == gimli::DW_TAG_pointer_type {
            return Some(u64::from(unit.encoding().address_size));
        }
        current = match entry.attr_value(DW_AT_type) {
            Some(AttributeValue::UnitRef(offset)) => Some(offset),
            _ => None,
        };
    }
    None
}

/// Where a parameter's value is at `entry`.
fn parameter_location<'a>(
    dwarf: &gimli::Dwarf<Slice<'a>>,
    unit: &Unit<'a>,
    die: &gimli::DebuggingInformationEntry<Slice<'a>>,
    entry: u64,
    frame_base: Option<gimli::Expression<Slice<'a>>>,
    image: &Image,
    encoding: gimli::Encoding,
) -> Result<ValueLocation, String> {
    if let Some(value) = die.attr_value(DW_AT_const_value) {
        return value
            .sdata_value()
            .or_else(|| value.udata_value().map(|v| v as i64))
            .map(|value| ValueLocation::Constant { value })
            .ok_or_else(|| "a constant DWARF does not give as an integer".to_owned());
    }
    let expression = match die.attr_value(DW_AT_location) {
        None => return Err("optimized out: DWARF gives no location".to_owned()),
        Some(AttributeValue::Exprloc(expression)) => expression,
        Some(value) => {
            let mut list = dwarf
                .attr_locations(unit, value)
                .map_err(|err| format!("reading its location list: {err}"))?
                .ok_or_else(|| "its location is not an expression or a list".to_owned())?;
            let mut covering = None;
            while let Some(item) = list.next().map_err(|err| format!("reading its location list: {err}"))? {
                if item.range.begin <= entry && entry < item.range.end {
                    covering = Some(item.data);
                    break;
                }
            }
            covering.ok_or_else(|| format!("optimized out at {entry:#x}: no location list entry covers it"))?
        }
    };
    let size = type_size(unit, die).filter(|size| matches!(size, 1 | 2 | 4 | 8));
    evaluate(expression, encoding, entry, frame_base, image, size)
}

/// A location expression as one of the forms a probe can read.
fn evaluate(
    expression: gimli::Expression<Slice>,
    encoding: gimli::Encoding,
    entry: u64,
    frame_base: Option<gimli::Expression<Slice>>,
    image: &Image,
    size: Option<u64>,
) -> Result<ValueLocation, String> {
    let steps = operations(expression, encoding)?;
    let arch = image.arch;
    let memory = |register: gimli::Register, offset: i64| -> Result<ValueLocation, String> {
        let size = size.ok_or_else(|| "its type's size is not 1, 2, 4 or 8 bytes".to_owned())?;
        Ok(ValueLocation::Memory {
            register: register.0,
            name: arch.register_name(register),
            offset,
            size: size as u8,
        })
    };
    match steps.as_slice() {
        [Operation::Register { register }] => Ok(ValueLocation::Register {
            register: register.0,
            name: arch.register_name(*register),
        }),
        [Operation::UnsignedConstant { value }, Operation::StackValue] => {
            Ok(ValueLocation::Constant { value: *value as i64 })
        }
        [Operation::SignedConstant { value }, Operation::StackValue] => Ok(ValueLocation::Constant { value: *value }),
        [Operation::RegisterOffset { register, offset, .. }] => memory(*register, *offset),
        [Operation::FrameOffset { offset }] => {
            let base = frame_base.ok_or_else(|| "a frame offset with no frame base".to_owned())?;
            match operations(base, encoding)?.as_slice() {
                [Operation::CallFrameCFA] => {
                    let (register, cfa) = image.cfa_at(entry)?;
                    memory(register, cfa + offset)
                }
                &[
                    Operation::RegisterOffset {
                        register,
                        offset: base_offset,
                        ..
                    },
                ] => memory(register, base_offset + offset),
                other => Err(format!("a frame base DWARF computes ({})", render(other))),
            }
        }
        other => Err(format!(
            "computed by DWARF as {}: not a register, stack slot or constant",
            render(other)
        )),
    }
}

fn operations(
    expression: gimli::Expression<Slice>,
    encoding: gimli::Encoding,
) -> Result<Vec<Operation<Slice>>, String> {
    let mut list = Vec::new();
    let mut iter = expression.operations(encoding);
    while let Some(operation) = iter
        .next()
        .map_err(|err| format!("a DWARF expression gimli cannot read: {err}"))?
    {
        list.push(operation);
    }
    Ok(list)
}

/// Short names of the operations, for the reason a value is unavailable.
fn render(operations: &[Operation<Slice>]) -> String {
    operations
        .iter()
        .map(|operation| match operation {
            Operation::EntryValue { .. } => "DW_OP_entry_value (its value when the caller was entered)".to_owned(),
            Operation::Piece { .. } => "DW_OP_piece (split over several places)".to_owned(),
            Operation::ImplicitPointer { .. } => "DW_OP_implicit_pointer".to_owned(),
            Operation::StackValue => "DW_OP_stack_value".to_owned(),
            other => {
                let debug = format!("{other:?}");
                debug.split([' ', '{', '(']).next().unwrap_or_default().to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the instance's one exit is, as linked, when a probe pair at its
/// entry and there times it; else why not: its code is split, control
/// leaves it at more than one place, or enters it elsewhere than its entry.
fn single_exit(image: &Image, entry: u64, ranges: &[[u64; 2]]) -> Result<u64, String> {
    let [[start, end]] = ranges else {
        return Err(format!(
            "its code is {} pieces interleaved with its caller's: no single exit to probe",
            ranges.len()
        ));
    };
    if image.arch != Arch::X86_64 {
        return Err("one piece of code, but its exits are only decoded on x86-64".to_owned());
    }
    if entry != *start {
        return Err(format!("its entry {entry:#x} is not the start of its code {start:#x}"));
    }
    let (_, symbol_start, symbol_end) = image
        .symbol_holding(entry)
        .ok_or_else(|| "its code is in no function symbol".to_owned())?;
    let code = image
        .code(symbol_start, symbol_end)
        .ok_or_else(|| "its code is in no section of the vmlinux".to_owned())?;
    let branches = branches(code, symbol_start);
    let leaving: Vec<u64> = branches
        .iter()
        .filter(|(from, to)| (start..end).contains(&from) && !(start..=end).contains(&to))
        .map(|(_, to)| *to)
        .collect();
    if !leaving.is_empty() {
        return Err(format!(
            "control leaves it at {} places besides its end: no single exit to probe",
            leaving.len()
        ));
    }
    let entering = branches
        .iter()
        .filter(|(from, to)| !(start..end).contains(&from) && *start < *to && to <= end)
        .count();
    if entering > 0 {
        return Err(format!(
            "{entering} branches from outside enter it past its entry or at its exit: entry and exit would not pair"
        ));
    }
    Ok(*end)
}

/// Every branch in `code` (at `start`), as (its address, its target); a
/// return or an indirect jump goes to 0, outside everything.
fn branches(code: &[u8], start: u64) -> Vec<(u64, u64)> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut found = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        match instruction.flow_control() {
            FlowControl::Return | FlowControl::IndirectBranch => found.push((instruction.ip(), 0)),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
                if instruction.op0_kind() == OpKind::NearBranch64 =>
            {
                found.push((instruction.ip(), instruction.near_branch_target()));
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_are_found_with_their_targets_and_returns_go_nowhere() {
        let start = 0xffff_ffff_8100_0000u64;
        // jne +2; jmp +0x1000; nop; ret; call +0 (a call is no branch)
        let mut code = vec![0x75, 0x02];
        code.push(0xe9);
        code.extend(0x1000i32.to_le_bytes());
        code.push(0x90);
        code.push(0xc3);
        code.push(0xe8);
        code.extend(0i32.to_le_bytes());
        assert_eq!(
            branches(&code, start),
            [(start, start + 4), (start + 2, start + 7 + 0x1000), (start + 8, 0)]
        );
    }
}
