//! EL0, AArch64 and AArch32: exceptions from EL0 must arrive at VBAR_EL1 +
//! 0x400 (AArch64) or + 0x600 (AArch32) with the right syndrome; WFI at EL0
//! (SCTLR_EL1.nTWI = 1, so it traps straight to the hypervisor) must complete
//! and advance the PC by the instruction's size: 2 for a 16-bit T32 WFI, 4 for
//! a 32-bit one — checked by the instruction after it incrementing a register
//! exactly once; a 16-bit T32 MMIO load must be emulated and advance by 2 too;
//! aborts and UNDEFINED instructions at EL0 come back at EL1.
//!
//! EL0 code runs in a 2 MiB block of RAM mapped at [`EL0_VA`] (below 4 GiB, for
//! AArch32), EL0 read/write/execute; [`EL0_BAD_VA`] maps an unbacked IPA for EL0.

use hv_abi::machine::VIRTUAL_TIMER_INTID;

use super::mmio::UART_PCELLID0;
use super::{Ctx, Verdict, bad, good};
use crate::boot::{self, Exception, LOWER_A32_SYNC, LOWER_A64_SYNC, SPSR_EL0_A32, SPSR_EL0_A64, SPSR_T, ec};
use crate::console::{Report, text};
use crate::mmu::{self, Attrs, MapError, MemType};
use crate::{gic, sysreg};

pub const EL0_VA: u64 = 0x8000_0000;
pub const EL0_BAD_VA: u64 = 0x8020_0000;
const EL0_BAD_IPA: u64 = 0x2000_0000;
const BLOCK: u64 = 2 << 20;

pub fn map(ctx: &Ctx) -> Result<(), MapError> {
    mmu::map(EL0_VA, ctx.el0_block, BLOCK, Attrs::el0_code(ctx.ram_mem))?;
    mmu::map(EL0_BAD_VA, EL0_BAD_IPA, BLOCK, Attrs::el0_code(MemType::Normal))
}

/// Copies `code` to the start of the EL0 block (through EL1's identity map).
fn load_code(ctx: &Ctx, code: &[u16]) {
    for (i, &half) in code.iter().enumerate() {
        // SAFETY: the EL0 block is free RAM no Rust object lives in.
        unsafe { core::ptr::write_volatile((ctx.el0_block + 2 * i as u64) as *mut u16, half) };
    }
    mmu::sync_icache(ctx.el0_block, ctx.el0_block + 2 * code.len() as u64);
}

/// A64 instructions as halfwords (little-endian).
fn a64(words: &[u32], out: &mut [u16; 32]) -> usize {
    for (i, &w) in words.iter().enumerate() {
        out[2 * i] = w as u16;
        out[2 * i + 1] = (w >> 16) as u16;
    }
    2 * words.len()
}

/// Runs the code at EL0 and returns its exception, which must come to `vector`
/// with class `class`.
fn run(ctx: &Ctx, code: &[u16], spsr: u64, regs: [u64; 4], vector: u64, class: u64) -> Result<Exception, Report> {
    load_code(ctx, code);
    // SAFETY: the code and its stack are in the EL0 block (EL0-accessible,
    // nothing of Rust's there); the EL0 code only touches registers and the
    // addresses given in `regs`.
    let exception = unsafe { boot::run_el0(EL0_VA, spsr, EL0_VA + BLOCK - 16, regs) };
    let Some(e) = exception else { return Err(text!("EL0 code came back without an exception")) };
    if e.vector != vector || e.ec() != class {
        return Err(text!("{e}; want vector {} with EC 0x{class:x}", boot::vector_name(vector)));
    }
    Ok(e)
}

const SVC0: u32 = 0xD400_0001;
const ADD_X0_1: u32 = 0x9100_0400;
const LDR_X1_X2: u32 = 0xF940_0041;
const WFI: u32 = 0xD503_207F;

pub fn a64_svc(ctx: &Ctx) -> Verdict {
    let mut code = [0u16; 32];
    let n = a64(&[ADD_X0_1, ADD_X0_1, SVC0], &mut code);
    let e = run(ctx, &code[..n], SPSR_EL0_A64, [40, 0, 0, 0], LOWER_A64_SYNC, ec::SVC_A64)?;
    if e.regs[0] != 42 || e.elr != EL0_VA + 12 {
        bad!("SVC from EL0: x0 = {} (want 42), ELR 0x{:x} (want 0x{:x})", e.regs[0], e.elr, EL0_VA + 12);
    }
    good!("SVC from AArch64 EL0 at VBAR+0x400, EC 0x15, x0 = 42, ELR after the SVC")
}

pub fn a64_abort(ctx: &Ctx) -> Verdict {
    let mut code = [0u16; 32];
    let n = a64(&[LDR_X1_X2, SVC0], &mut code);
    let addr = EL0_BAD_VA + 0x100;
    let e = run(ctx, &code[..n], SPSR_EL0_A64, [0, 0, addr, 0], LOWER_A64_SYNC, ec::DATA_ABORT_LOWER_EL)?;
    if !e.is_external_abort(ec::DATA_ABORT_LOWER_EL, EL0_VA, addr) {
        bad!("EL0 load outside RAM: {e}; want DFSC 0x10, ELR 0x{EL0_VA:x}, FAR 0x{addr:x}");
    }
    good!("EL0 load at an unbacked IPA: EC 0x24 DFSC 0x10 at VBAR+0x400 (ESR 0x{:x})", e.esr)
}

pub fn a64_ifetch(ctx: &Ctx) -> Verdict {
    load_code(ctx, &[]);
    // SAFETY: EL0 execution starts at an unbacked IPA (EL0-executable mapping):
    // the fetch aborts before anything runs.
    let e = unsafe { boot::run_el0(EL0_BAD_VA, SPSR_EL0_A64, EL0_VA + BLOCK - 16, [0; 4]) };
    let Some(e) = e else { bad!("no exception") };
    if e.vector != LOWER_A64_SYNC || !e.is_external_abort(ec::INSN_ABORT_LOWER_EL, EL0_BAD_VA, EL0_BAD_VA) {
        bad!("EL0 fetch from an unbacked IPA: {e}; want EC 0x20 IFSC 0x10 at VBAR+0x400");
    }
    good!("EL0 instruction fetch from an unbacked IPA: EC 0x20 IFSC 0x10 (ESR 0x{:x})", e.esr)
}

/// How far ahead the timer is armed for the WFI cases.
pub const WFI_DELAY_MS: u64 = 20;

/// Runs `f` with the virtual timer armed [`WFI_DELAY_MS`] ahead (PPI 27 enabled,
/// not pending yet): a WFI in `f` must trap to the hypervisor and block until
/// the timer fires. (With an interrupt already pending, QEMU completes a WFI
/// without trapping it, so that would test nothing.) Also says whether `f`
/// ended only after the timer fired.
pub fn with_timer_soon<R>(f: impl FnOnce() -> R) -> (R, bool) {
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let fire = sysreg::cntvct_el0() + sysreg::ms_to_ticks(WFI_DELAY_MS);
    gic::arm_timer_at(fire);
    let result = f();
    let blocked = sysreg::cntvct_el0() >= fire;
    gic::disarm_timer();
    let _ = gic::drain(64);
    gic::init_for_cpu(0);
    (result, blocked)
}

/// The WFI cases' verdict on blocking.
fn check_blocked(blocked: bool, what: &str) -> Result<(), Report> {
    match blocked {
        true => Ok(()),
        false => Err(text!("{what} returned before the timer fired (nothing pending): it did not block")),
    }
}

pub fn a64_wfi(ctx: &Ctx) -> Verdict {
    let mut code = [0u16; 32];
    let n = a64(&[WFI, ADD_X0_1, SVC0], &mut code);
    let (e, blocked) = with_timer_soon(|| run(ctx, &code[..n], SPSR_EL0_A64, [0; 4], LOWER_A64_SYNC, ec::SVC_A64));
    let e = e?;
    if e.regs[0] != 1 {
        bad!("after WFI at EL0, the next instruction incremented x0 to {} (want exactly 1)", e.regs[0]);
    }
    check_blocked(blocked, "WFI at AArch64 EL0")?;
    good!("WFI at AArch64 EL0 blocked until the timer (+{WFI_DELAY_MS} ms); the next instruction ran once")
}

fn aarch32() -> Option<Verdict> {
    (!sysreg::has_aarch32_el0()).then(|| good!("skipped (no AArch32 EL0)"))
}

// T32 encodings.
const T_MOVS_R1_5: u16 = 0x2105;
const T_WFI: u16 = 0xBF30;
const T_ADDS_R0_1: u16 = 0x3001;
const T_SVC0: u16 = 0xDF00;
const T_LDR_R1_R2: u16 = 0x6811;
const T_UDF0: u16 = 0xDE00;

fn t32_wfi(ctx: &Ctx, code: &[u16], what: &str) -> Verdict {
    let (e, blocked) = with_timer_soon(|| run(ctx, code, SPSR_EL0_A32 | SPSR_T, [0; 4], LOWER_A32_SYNC, ec::SVC_A32));
    let e = e?;
    if e.regs[0] != 1 || e.regs[1] != 5 {
        bad!(
            "after {what} at AArch32 EL0: r0 = {} (want exactly 1: the increment after the WFI), r1 = {}",
            e.regs[0],
            e.regs[1]
        );
    }
    check_blocked(blocked, what)?;
    good!(
        "{what} at AArch32 EL0 blocked until the timer; the increment after it ran exactly once; SVC at VBAR+0x600 (EC 0x11)"
    )
}

pub fn t32_wfi16(ctx: &Ctx) -> Verdict {
    if let Some(skip) = aarch32() {
        return skip;
    }
    t32_wfi(ctx, &[T_MOVS_R1_5, T_WFI, T_ADDS_R0_1, T_SVC0], "16-bit T32 WFI")
}

pub fn t32_wfi32(ctx: &Ctx) -> Verdict {
    if let Some(skip) = aarch32() {
        return skip;
    }
    t32_wfi(ctx, &[T_MOVS_R1_5, 0xF3AF, 0x8003, T_ADDS_R0_1, T_SVC0], "32-bit T32 WFI.W")
}

pub fn a32_wfi(ctx: &Ctx) -> Verdict {
    if let Some(skip) = aarch32() {
        return skip;
    }
    // mov r1, #5; wfi; add r0, r0, #1; svc #0
    let words = [0xE3A0_1005u32, 0xE320_F003, 0xE280_0001, 0xEF00_0000];
    let mut code = [0u16; 32];
    let n = a64(&words, &mut code);
    let (e, blocked) = with_timer_soon(|| run(ctx, &code[..n], SPSR_EL0_A32, [0; 4], LOWER_A32_SYNC, ec::SVC_A32));
    let e = e?;
    if e.regs[0] != 1 || e.regs[1] != 5 {
        bad!("after A32 WFI at EL0: r0 = {} (want 1), r1 = {}", e.regs[0], e.regs[1]);
    }
    check_blocked(blocked, "A32 WFI at EL0")?;
    good!("A32 WFI at EL0 blocked until the timer; the next instruction ran exactly once")
}

pub fn t32_mmio(ctx: &Ctx) -> Verdict {
    if let Some(skip) = aarch32() {
        return skip;
    }
    // ldr r1, [r2]; adds r0, #1; ldr.w r3, [r2, #4]; adds r0, #1; svc #0
    let code = [T_LDR_R1_R2, T_ADDS_R0_1, 0xF8D2, 0x3004, T_ADDS_R0_1, T_SVC0];
    let e = run(ctx, &code, SPSR_EL0_A32 | SPSR_T, [0, 0, UART_PCELLID0, 0], LOWER_A32_SYNC, ec::SVC_A32)?;
    if e.regs[0] != 2 || e.regs[1] != 0x0D || e.regs[3] != 0xF0 {
        bad!(
            "T32 MMIO loads at EL0: r0 = {} (want 2), r1 = 0x{:x} (want 0xd), r3 = 0x{:x} (want 0xf0)",
            e.regs[0],
            e.regs[1],
            e.regs[3]
        );
    }
    good!(
        "16-bit and 32-bit T32 LDR from the PL011 at EL0 emulated (0x{:x}, 0x{:x}); PC advanced by 2 and 4",
        e.regs[1],
        e.regs[3]
    )
}

pub fn t32_abort(ctx: &Ctx) -> Verdict {
    if let Some(skip) = aarch32() {
        return skip;
    }
    let code = [T_LDR_R1_R2, T_SVC0];
    let e = run(ctx, &code, SPSR_EL0_A32 | SPSR_T, [0, 0, EL0_BAD_VA, 0], LOWER_A32_SYNC, ec::DATA_ABORT_LOWER_EL)?;
    if !e.is_external_abort(ec::DATA_ABORT_LOWER_EL, EL0_VA, EL0_BAD_VA) {
        bad!("T32 load at an unbacked IPA: {e}; want DFSC 0x10, ELR 0x{EL0_VA:x}, FAR 0x{EL0_BAD_VA:x}");
    }
    good!("T32 EL0 load at an unbacked IPA: EC 0x24 DFSC 0x10 at VBAR+0x600 (ESR 0x{:x})", e.esr)
}

pub fn t32_undef(ctx: &Ctx) -> Verdict {
    if let Some(skip) = aarch32() {
        return skip;
    }
    let e = run(ctx, &[T_UDF0, T_SVC0], SPSR_EL0_A32 | SPSR_T, [0; 4], LOWER_A32_SYNC, ec::UNKNOWN)?;
    if e.elr != EL0_VA {
        bad!("T32 UDF at EL0: ELR 0x{:x}, want 0x{EL0_VA:x}", e.elr);
    }
    good!("T32 UDF at EL0: EC 0x00 at VBAR+0x600")
}
