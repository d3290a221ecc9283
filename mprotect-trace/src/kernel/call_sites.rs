//! Where one kernel function calls another: the direct calls (and tail
//! jumps) to a callee in a caller's live text, decoded with iced-x86. A
//! kprobe on such an instruction sees the callee's arguments in their
//! registers, which is how a notrace callee is still observed.

use anyhow::{Context as _, Result, bail};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};

use super::kallsyms::Kallsyms;
use super::kcore::Kcore;

/// The offsets inside `caller` of every instruction that calls (or
/// jumps to) `callee`.
pub fn find(kallsyms: &Kallsyms, kcore: &Kcore, caller: &str, callee: &str) -> Result<Vec<u64>> {
    let targets = kallsyms.addresses(callee);
    if targets.is_empty() {
        bail!("{callee} is not in /proc/kallsyms");
    }
    let start = kallsyms.unique_start(caller)?;
    let extent = kallsyms
        .extent(start)
        .with_context(|| format!("{caller} has no end in /proc/kallsyms"))?;
    let text = kcore.read(start, (extent.end - extent.start) as usize)?;
    Ok(calls_to(&text, start, &targets))
}

/// Offsets from `start` of the instructions in `text` (loaded at `start`)
/// that call or jump to any of `targets`.
fn calls_to(text: &[u8], start: u64, targets: &[u64]) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, text, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut offsets = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        let branch = matches!(instruction.mnemonic(), Mnemonic::Call | Mnemonic::Jmp)
            && instruction.op0_kind() == OpKind::NearBranch64;
        if branch && targets.contains(&instruction.near_branch_target()) {
            offsets.push(instruction.ip() - start);
        }
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_direct_calls_and_tail_jumps_to_the_callee_only() {
        let start = 0xffff_ffff_8100_0000u64;
        let callee = 0xffff_ffff_8100_1000u64;
        let other = 0xffff_ffff_8100_2000u64;
        let rel = |at: u64, len: u64, to: u64| ((to as i64 - (at + len) as i64) as i32).to_le_bytes();
        let mut text = vec![0x55]; // push rbp
        text.push(0xe8); // call callee
        text.extend(rel(start + 1, 5, callee));
        text.extend([0x48, 0x89, 0xc7]); // mov rdi, rax
        text.push(0xe8); // call other
        text.extend(rel(start + 9, 5, other));
        text.push(0xe9); // jmp callee (a tail call)
        text.extend(rel(start + 14, 5, callee));
        assert_eq!(calls_to(&text, start, &[callee]), [1, 14]);
        assert_eq!(calls_to(&text, start, &[other]), [9]);
    }
}
