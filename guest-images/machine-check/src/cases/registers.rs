//! System registers and maintenance instructions a guest uses directly (issue 10,
//! items 5-8): cache maintenance by set/way, the self-hosted debug registers and
//! debug events, the PMU's cycle counter, SVE and SME. For the debug registers,
//! the PMU and SVE the cases only report what the guest finds: they document the
//! gap until the hypervisor offers them.

use core::arch::asm;

use aarch64_cpu::registers::{CPACR_EL1, ID_AA64DFR0_EL1, ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, Readable, Writeable};
use fdt::Fdt;

use super::{Outcome, yes_no};
use crate::console::println;
use crate::exceptions::{ec, expect_fault};
use crate::sysreg::{self, mrs, msr};

/// `DC ISW`, `DC CSW` and `DC CISW` on set/way 0 of level 1 (operand 0). QEMU has
/// no caches to lose; on hardware `DC ISW` could drop dirty lines, which is why
/// the guest runs only on QEMU.
pub fn set_way(_: &Fdt<'_>) {
    let isw = expect_fault(|| {
        // SAFETY: set/way 0 of the level-1 data cache; QEMU models no caches.
        unsafe { asm!("dc isw, xzr", options(nostack, preserves_flags)) }
    })
    .1;
    let csw = expect_fault(|| {
        // SAFETY: cleaning by set/way writes back; data is unchanged.
        unsafe { asm!("dc csw, xzr", options(nostack, preserves_flags)) }
    })
    .1;
    let cisw = expect_fault(|| {
        // SAFETY: clean and invalidate: data is written back first.
        unsafe { asm!("dc cisw, xzr", options(nostack, preserves_flags)) }
    })
    .1;
    for (name, outcome) in [("DC ISW", isw), ("DC CSW", csw), ("DC CISW", cisw)] {
        println!("set-way: {name} set/way 0: {}", Outcome(outcome));
    }
}

/// A load the hardware watchpoint watches.
static WATCHED: u64 = 0x5741_5443_4845_4421;

/// What the hardware breakpoint is set on.
#[inline(never)]
fn breakpoint_target() -> u64 {
    core::hint::black_box(7)
}

/// MDSCR_EL1: kernel debug enable, monitor debug enable.
const MDSCR_KDE: u64 = 1 << 13;
const MDSCR_MDE: u64 = 1 << 15;
/// DBGBCR/DBGWCR: enabled, EL1 only (PMC/PAC = 0b01).
const DBG_CR_ENABLE_EL1: u64 = 1 | (0b01 << 1);
/// DBGBCR.BAS: the whole A64 instruction.
const BCR_BAS_ALL: u64 = 0b1111 << 5;
/// DBGWCR: loads and stores (LSC = 0b11), all 8 bytes (BAS = 0xff).
const WCR_LOAD_STORE_8: u64 = (0b11 << 3) | (0xff << 5);

/// The debug ID fields, whether the debug registers hold what is written, and
/// whether a hardware breakpoint and a watchpoint on EL1 fire.
pub fn debug_regs(_: &Fdt<'_>) {
    let dfr0 = ID_AA64DFR0_EL1.get();
    println!(
        "debug-regs: ID_AA64DFR0_EL1 DebugVer 0x{:x}, BRPs {}, WRPs {}, CTX_CMPs {}",
        dfr0 & 0xf,
        ((dfr0 >> 12) & 0xf) + 1,
        ((dfr0 >> 20) & 0xf) + 1,
        ((dfr0 >> 28) & 0xf) + 1
    );
    msr!("oslar_el1", 0);
    println!("debug-regs: OSLSR_EL1.OSLK after OSLAR_EL1 = 0: {}", (mrs!("oslsr_el1") >> 1) & 1);
    msr!("mdscr_el1", MDSCR_KDE | MDSCR_MDE);
    println!(
        "debug-regs: MDSCR_EL1 KDE|MDE reads back: {}",
        yes_no(mrs!("mdscr_el1") & (MDSCR_KDE | MDSCR_MDE) == MDSCR_KDE | MDSCR_MDE)
    );
    let target = breakpoint_target as *const () as usize as u64;
    msr!("dbgbvr0_el1", target);
    println!("debug-regs: DBGBVR0_EL1 reads back: {}", yes_no(mrs!("dbgbvr0_el1") == target));

    msr!("dbgbcr0_el1", DBG_CR_ENABLE_EL1 | BCR_BAS_ALL);
    sysreg::enable_debug_exceptions(true);
    let (value, fault) = expect_fault(breakpoint_target);
    sysreg::enable_debug_exceptions(false);
    let taken = fault.is_some_and(|fault| fault.ec() == ec::BREAKPOINT_SAME_EL);
    println!(
        "debug-regs: breakpoint 0 on EL1 code: {} (the code then ran: {})",
        taken_text(taken, fault),
        yes_no(value == 7)
    );

    let watched = (&raw const WATCHED) as u64;
    msr!("dbgwvr0_el1", watched);
    msr!("dbgwcr0_el1", DBG_CR_ENABLE_EL1 | WCR_LOAD_STORE_8);
    sysreg::enable_debug_exceptions(true);
    // SAFETY: a plain read of a static.
    let (value, fault) = expect_fault(|| unsafe { core::ptr::read_volatile(&raw const WATCHED) });
    sysreg::enable_debug_exceptions(false);
    let taken = fault.is_some_and(|fault| fault.ec() == ec::WATCHPOINT_SAME_EL);
    println!(
        "debug-regs: watchpoint 0 on a load: {} (the load then read it: {})",
        taken_text(taken, fault),
        yes_no(value == WATCHED)
    );

    sysreg::disable_debug_events();
    msr!("mdscr_el1", 0);
}

fn taken_text(taken: bool, fault: Option<crate::exceptions::Fault>) -> &'static str {
    match (taken, fault) {
        (true, _) => "taken",
        (false, None) => "not taken",
        (false, Some(_)) => "another exception",
    }
}

/// PMUVer, PMCR_EL0.N, and whether the cycle counter counts.
pub fn pmu(_: &Fdt<'_>) {
    let dfr0 = ID_AA64DFR0_EL1.get();
    println!("pmu: ID_AA64DFR0_EL1.PMUVer 0x{:x}", (dfr0 >> 8) & 0xf);
    let (pmcr, fault) = expect_fault(|| mrs!("pmcr_el0"));
    if fault.is_some() {
        println!("pmu: PMCR_EL0 read: {}", Outcome(fault));
        return;
    }
    println!("pmu: PMCR_EL0.N {}", (pmcr >> 11) & 0x1f);
    let ((before, after), fault) = expect_fault(|| {
        msr!("pmccfiltr_el0", 0);
        msr!("pmcntenset_el0", 1 << 31);
        msr!("pmcr_el0", pmcr | 1);
        let before = mrs!("pmccntr_el0");
        for i in 0..100_000u64 {
            core::hint::black_box(i);
        }
        let after = mrs!("pmccntr_el0");
        msr!("pmcr_el0", pmcr & !1);
        msr!("pmcntenclr_el0", 1 << 31);
        (before, after)
    });
    match fault {
        Some(_) => println!("pmu: cycle counter: {}", Outcome(fault)),
        None => println!("pmu: PMCCNTR_EL0 over a loop: {}", if after > before { "advances" } else { "static" }),
    }
}

/// SVE and SME as the ID registers show them, and whether SVE instructions run.
pub fn sve(_: &Fdt<'_>) {
    let sve = (ID_AA64PFR0_EL1.get() >> 32) & 0xf;
    let sme = (ID_AA64PFR1_EL1.get() >> 24) & 0xf;
    println!("sve: ID_AA64PFR0_EL1.SVE {sve}, ID_AA64PFR1_EL1.SME {sme}");
    let cpacr = CPACR_EL1.get();
    // FPEN and ZEN: no traps for FP/SIMD and SVE at EL1 (the guest is built
    // soft-float, so no compiled code uses those registers).
    CPACR_EL1.set(cpacr | (0b11 << 20) | (0b11 << 16));
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    let ((), zcr) = expect_fault(|| msr!("s3_0_c1_c2_0", 1));
    let (length, rdvl) = expect_fault(|| {
        let mut bytes: u64 = 0;
        // SAFETY: RDVL X0, #1 (encoded: the assembler lacks +sve) only reads the
        // vector length into a register.
        unsafe { asm!(".inst 0x04bf5020", inout("x0") bytes, options(nostack, preserves_flags)) };
        bytes
    });
    CPACR_EL1.set(cpacr);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    match rdvl {
        None => println!("sve: ZCR_EL1.LEN = 1: {}; RDVL #1: {length} bytes", Outcome(zcr)),
        Some(_) => println!("sve: ZCR_EL1.LEN = 1: {}; RDVL #1: {}", Outcome(zcr), Outcome(rdvl)),
    }
}
