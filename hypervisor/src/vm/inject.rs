//! How a trapped instruction completes and how an exception reaches the guest,
//! as pure functions of guest-controlled values (PC, PSTATE, SCTLR_EL1, VBAR_EL1,
//! ESR_EL2). Everything here is arithmetic on hostile input: it wraps where the
//! architecture wraps and never panics.
//!
//! References: Arm ARM (DDI 0487) D1.3 "Exception entry" (vector offsets, PSTATE
//! on entry), D17.2.37 ESR_ELx (IL, CV/COND), C5.2 PSTATE.

use crate::guest_context::{El1ExceptionRegisters, El1VectorState, GuestRegisters};

/// PSTATE.M[4]: the exception came from AArch32 (EL0 only here: HCR_EL2.RW = 1).
const PSTATE_NRW: u64 = 1 << 4;
const PSTATE_MODE_MASK: u64 = 0xF;
const PSTATE_EL1H: u64 = 0b0101;
const PSTATE_EL1T: u64 = 0b0100;
/// D, A, I, F masked.
const PSTATE_DAIF: u64 = 0xF << 6;
const PSTATE_SSBS: u64 = 1 << 12;
const PSTATE_PAN: u64 = 1 << 22;
const PSTATE_TCO: u64 = 1 << 25;
/// PSTATE.DIT as an AArch64 SPSR holds it, and as an AArch32 one does.
const PSTATE_DIT: u64 = 1 << 24;
const PSTATE_DIT_AARCH32: u64 = 1 << 21;

/// ESR_ELx.IL: the trapped instruction was 32-bit (clear: a 16-bit T32 one).
pub const ESR_IL: u64 = 1 << 25;

const SCTLR_SPAN: u64 = 1 << 23;
const SCTLR_DSSBS: u64 = 1 << 44;

/// Offset from VBAR_EL1 of the synchronous vector for an exception taken to EL1
/// from a context with `pstate`.
pub fn sync_vector_offset(pstate: u64) -> u64 {
    if pstate & PSTATE_NRW != 0 {
        return 0x600; // lower EL, AArch32
    }
    match pstate & PSTATE_MODE_MASK {
        PSTATE_EL1H => 0x200, // current EL, SP_ELx
        PSTATE_EL1T => 0x000, // current EL, SP_EL0
        _ => 0x400,           // lower EL, AArch64
    }
}

/// The vector address for a synchronous exception to EL1 (wrapping, as the
/// address computation in hardware does: VBAR_EL1 is whatever the guest wrote).
pub fn sync_vector(vbar_el1: u64, pstate: u64) -> u64 {
    (vbar_el1 & !0x7FF).wrapping_add(sync_vector_offset(pstate))
}

/// PSTATE on taking an exception to EL1h: DAIF masked, SSBS from SCTLR_EL1.DSSBS,
/// PAN set when SCTLR_EL1.SPAN is 0 (kept otherwise when coming from EL1), TCO
/// set when the VM has MTE (tag checks off until the handler re-enables them),
/// DIT unchanged (read from where an AArch32 SPSR keeps it when the exception
/// came from AArch32), and UAO, BTYPE, IL, SS cleared.
pub fn exception_entry_pstate(pstate: u64, sctlr_el1: u64, mte: bool) -> u64 {
    let mut new = PSTATE_EL1H | PSTATE_DAIF;
    if sctlr_el1 & SCTLR_DSSBS != 0 {
        new |= PSTATE_SSBS;
    }
    if sctlr_el1 & SCTLR_SPAN == 0 || (from_el1(pstate) && pstate & PSTATE_PAN != 0) {
        new |= PSTATE_PAN;
    }
    if mte {
        new |= PSTATE_TCO;
    }
    let dit = if pstate & PSTATE_NRW != 0 { pstate & PSTATE_DIT_AARCH32 != 0 } else { pstate & PSTATE_DIT != 0 };
    if dit {
        new |= PSTATE_DIT;
    }
    new
}

/// Takes a synchronous exception with syndrome `esr` (and `far`) to the guest's
/// EL1, as the architecture would: `registers` move to the vector with the entry
/// PSTATE; the returned values are what ELR, SPSR, ESR and FAR_EL1 must hold.
/// `mte`: the VM has MTE (PSTATE.TCO is set on entry).
pub fn take_synchronous(
    registers: &mut GuestRegisters,
    el1: El1VectorState,
    esr: u64,
    far: u64,
    mte: bool,
) -> El1ExceptionRegisters {
    let saved = El1ExceptionRegisters { elr: registers.pc, spsr: registers.pstate, esr, far };
    registers.pc = sync_vector(el1.vbar, registers.pstate);
    registers.pstate = exception_entry_pstate(registers.pstate, el1.sctlr, mte);
    saved
}

/// Whether the exception was taken from EL1 (for the injected syndrome's class).
pub fn from_el1(pstate: u64) -> bool {
    pstate & PSTATE_NRW == 0 && pstate & 0xC == 0x4
}

/// Length in bytes of the trapped instruction, from ESR_EL2.IL: 4, or 2 for a
/// 16-bit T32 instruction (only possible at AArch32 EL0).
pub fn instruction_length(esr: u64) -> u64 {
    if esr & ESR_IL != 0 { 4 } else { 2 }
}

/// The PC after completing the trapped instruction at `pc` (wraps at the top of
/// the address space like the hardware's own PC increment). AArch32 PCs stay
/// 32-bit.
pub fn next_pc(pc: u64, esr: u64, pstate: u64) -> u64 {
    let next = pc.wrapping_add(instruction_length(esr));
    if pstate & PSTATE_NRW != 0 { next & 0xFFFF_FFFF } else { next }
}

/// For a trapped conditional AArch32 instruction: whether its condition holds
/// (ESR_EL2.ISS.CV/COND against PSTATE.NZCV). A trap with CV = 0, or from
/// AArch64, counts as passed. A conditional instruction that fails its
/// condition may still trap (IMPLEMENTATION DEFINED); it then completes as a no-op.
pub fn condition_passed(esr: u64, pstate: u64) -> bool {
    let aarch32 = pstate & PSTATE_NRW != 0;
    let cv = esr & (1 << 24) != 0;
    if !aarch32 || !cv {
        return true;
    }
    let cond = (esr >> 20) & 0xF;
    let (n, z, c, v) =
        ((pstate >> 31) & 1 == 1, (pstate >> 30) & 1 == 1, (pstate >> 29) & 1 == 1, (pstate >> 28) & 1 == 1);
    let result = match cond >> 1 {
        0 => z,
        1 => c,
        2 => n,
        3 => v,
        4 => c && !z,
        5 => n == v,
        6 => n == v && !z,
        _ => true,
    };
    if cond & 1 == 1 && cond != 0xF { !result } else { result }
}

/// The register holding a WFIT/WFET deadline (ESR_EL2.ISS.RV and RN), if valid.
pub fn wfxt_register(esr: u64) -> Option<u8> {
    (esr & (1 << 2) != 0).then_some(((esr >> 5) & 0x1F) as u8)
}

/// `WFIT Xt` (0xD503_1020 | Rt): its register, if `instruction` is one.
///
/// QEMU (10.0) reports a trapped WFIT as a plain WFI (ISS.TI = 0, no RV/RN), so
/// the runtime looks at the instruction itself to find the deadline.
pub fn wfit_instruction_register(instruction: u32) -> Option<u8> {
    (instruction & !0x1F == 0xD503_1020).then_some((instruction & 0x1F) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dit_survives_exception_entry_and_uao_btype_do_not() {
        const UAO: u64 = 1 << 23;
        const BTYPE: u64 = 0b11 << 10;
        let from_el1 = 0x3C5 | PSTATE_DIT | UAO | BTYPE;
        let entry = exception_entry_pstate(from_el1, SCTLR_SPAN, false);
        assert_eq!(entry & (PSTATE_DIT | UAO | BTYPE), PSTATE_DIT);
        // From AArch32 EL0 (M = 0x10), DIT is SPSR bit 21.
        let from_aarch32 = 0x10 | PSTATE_DIT_AARCH32;
        assert_eq!(exception_entry_pstate(from_aarch32, SCTLR_SPAN, false) & PSTATE_DIT, PSTATE_DIT);
        assert_eq!(exception_entry_pstate(0x10, SCTLR_SPAN, false) & PSTATE_DIT, 0);
    }

    #[test]
    fn taking_an_exception_saves_the_return_state_and_enters_the_vector() {
        let mut registers = GuestRegisters { pc: 0x4008_0000, pstate: 0x3C5, ..Default::default() };
        let el1 = El1VectorState { vbar: 0x4010_0800, sctlr: 0 };
        let saved = take_synchronous(&mut registers, el1, 0x0200_0000, 0x1234, true);
        assert_eq!(saved, El1ExceptionRegisters { elr: 0x4008_0000, spsr: 0x3C5, esr: 0x0200_0000, far: 0x1234 });
        // From EL1h: current EL with SP_ELx vector.
        assert_eq!(registers.pc, 0x4010_0A00);
        assert_eq!(registers.pstate & (1 << 25), 1 << 25, "TCO set for an MTE VM");
    }

    #[test]
    fn pc_wraps_at_the_top_of_the_address_space() {
        let esr32 = 1 << 25;
        assert_eq!(next_pc(0xFFFF_FFFF_FFFF_FFFC, esr32, 0x3C5), 0);
        assert_eq!(next_pc(0x4000_0000, esr32, 0x3C5), 0x4000_0004);
    }

    #[test]
    fn sixteen_bit_t32_advances_by_two() {
        // A T16 WFI at AArch32 EL0 (PSTATE.M = 0x10, T set): IL = 0.
        let pstate = 0x10 | (1 << 5);
        assert_eq!(next_pc(0x8000, 0x0400_0000, pstate), 0x8002);
        assert_eq!(next_pc(0xFFFF_FFFE, 0x0400_0000, pstate), 0);
    }

    #[test]
    fn vector_offsets() {
        assert_eq!(sync_vector_offset(0x3C5), 0x200);
        assert_eq!(sync_vector_offset(0x3C4), 0x000);
        assert_eq!(sync_vector_offset(0x0), 0x400);
        assert_eq!(sync_vector_offset(0x10), 0x600);
        assert_eq!(sync_vector_offset(0x30), 0x600);
        // VBAR near the top wraps instead of overflowing.
        assert_eq!(sync_vector(0xFFFF_FFFF_FFFF_F800, 0x10), 0xFFFF_FFFF_FFFF_FE00);
        assert_eq!(sync_vector(u64::MAX, 0x0), 0xFFFF_FFFF_FFFF_FC00);
    }

    #[test]
    fn entry_pstate() {
        // SPAN = 1, no DSSBS, no MTE: EL1h with DAIF masked only.
        assert_eq!(exception_entry_pstate(0, SCTLR_SPAN, false), 0x3C5);
        // SPAN = 0 sets PAN; MTE sets TCO; DSSBS sets SSBS.
        let p = exception_entry_pstate(0, SCTLR_DSSBS, true);
        assert_eq!(p, 0x3C5 | PSTATE_PAN | PSTATE_TCO | PSTATE_SSBS);
        // From EL1 with PAN set and SPAN = 1: PAN is kept.
        assert_eq!(exception_entry_pstate(0x5 | PSTATE_PAN, SCTLR_SPAN, false), 0x3C5 | PSTATE_PAN);
    }

    #[test]
    fn conditions() {
        let cv_eq = 1 << 24; // COND = 0b0000 (EQ)
        let cv_ne = (1 << 24) | (0x1 << 20);
        let aarch32_z = 0x10 | (1 << 30);
        assert!(condition_passed(cv_eq, aarch32_z));
        assert!(!condition_passed(cv_ne, aarch32_z));
        // GE: N == V; LT fails then.
        let lt = (1 << 24) | (0xB << 20);
        assert!(!condition_passed(lt, 0x10));
        // AL and 0xF always pass; AArch64 ignores COND.
        assert!(condition_passed((1 << 24) | (0xE << 20), 0x10));
        assert!(condition_passed((1 << 24) | (0xF << 20), 0x10));
        assert!(condition_passed(cv_ne, 0x3C5 | (1 << 30)));
    }

    #[test]
    fn wfit_from_the_instruction() {
        assert_eq!(wfit_instruction_register(0xD503_1020), Some(0));
        assert_eq!(wfit_instruction_register(0xD503_1023), Some(3));
        // WFI, WFE and WFET are not WFIT.
        assert_eq!(wfit_instruction_register(0xD503_207F), None);
        assert_eq!(wfit_instruction_register(0xD503_205F), None);
        assert_eq!(wfit_instruction_register(0xD503_1003), None);
    }

    #[test]
    fn wfit_register() {
        // WFIT x3: TI = 0b10, RV = 1, RN = 3.
        assert_eq!(wfxt_register(0b10 | (1 << 2) | (3 << 5)), Some(3));
        assert_eq!(wfxt_register(0b10), None);
    }
}
