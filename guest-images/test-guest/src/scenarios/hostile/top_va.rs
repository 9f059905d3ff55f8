//! Code at the very top of the VA space: a page mapped at 0xFFFF_FFFF_FFFF_F000
//! through TTBR1 whose last instruction (at ...FFFC) is one the hypervisor
//! traps and completes — SMC, an MMIO load, an ID-register read, WFI — or HVC.
//! The instruction must complete and the PC wrap to 0, where the guest takes
//! its own instruction abort (VA 0 is unmapped): that abort, with ELR = FAR = 0
//! and the instruction's result in its register, is the pass condition. A
//! stage-2 abort there must report ELR = ...FFFC.

use core::arch::global_asm;

use super::mmio::UART_PCELLID0;
use super::{Ctx, Verdict, bad, good, scratch};
use crate::boot::{Exception, ec, expect_exception};
use crate::console::{Report, text};
use crate::mmu::{self, Attrs, MemType};
use crate::{psci, sysreg};

const LAST: u64 = 0xFFFF_FFFF_FFFF_FFFC;

global_asm!(
    r#"
.section .rodata.top_va, "a"
.balign 8
.global top_va_snippets
top_va_snippets:
    nop
    smc     #0
    nop
    ldr     w1, [x2]
    nop
    mrs     x1, id_aa64mmfr0_el1
    nop
    wfi
    nop
    hvc     #0
    nop
    ldr     x1, [x3]
"#
);

unsafe extern "C" {
    static top_va_snippets: [u32; 12];
}

/// Puts snippet `index` (two instructions) at ...FFF8, runs it from there with
/// x0/x2/x3 given, and returns the exception that ends it.
fn run_snippet(ctx: &Ctx, index: usize, x0: u64, x2: u64, x3: u64) -> Result<Exception, Report> {
    let page = ctx.scratch + scratch::TOP_PAGE;
    mmu::map_top_page(page, Attrs::code(ctx.ram_mem));
    // SAFETY: the snippet table is 12 instructions of read-only data.
    let words = unsafe { &top_va_snippets };
    for (i, &word) in words[2 * index..2 * index + 2].iter().enumerate() {
        // SAFETY: the top page is a scratch page of free RAM.
        unsafe { core::ptr::write_volatile((page + 0xFF8 + 4 * i as u64) as *mut u32, word) };
    }
    mmu::sync_icache(page, page + 4096);
    let (_, exception) = expect_exception(|slot| {
        // SAFETY: branches to ...FFF8 (nop, then the instruction under test at
        // ...FFFC). Execution never returns normally: the PC wraps to 0 and the
        // instruction abort there (or an abort of the instruction itself)
        // resumes at label 2. SMCCC calls may clobber x0-x17; all are declared.
        unsafe {
            core::arch::asm!(
                "adr x9, 2f",
                "str x9, [{slot}]",
                "blr {target}",
                "2:",
                slot = in(reg) slot,
                target = in(reg) LAST - 4,
                inout("x0") x0 => _, out("x1") _, inout("x2") x2 => _, inout("x3") x3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _, out("x30") _,
                options(nostack),
            );
        }
    });
    exception.ok_or_else(|| text!("the snippet returned without an exception"))
}

/// The wrap: an instruction abort at VA 0 (stage-1 translation fault).
fn wrapped(e: &Exception, what: &str) -> Result<(), Report> {
    let translation = (0x04..=0x07).contains(&e.fsc());
    if e.ec() == ec::INSN_ABORT_SAME_EL && e.elr == 0 && e.far == 0 && translation {
        return Ok(());
    }
    Err(text!("{what} at 0x{LAST:x}: {e}; want the PC to wrap to 0 (instruction abort, ELR = FAR = 0)"))
}

pub fn smc(ctx: &Ctx) -> Verdict {
    let e = run_snippet(ctx, 0, psci::PSCI_VERSION, 0, 0)?;
    wrapped(&e, "SMC")?;
    if psci::w0(e.regs[0]) != psci::VERSION_1_1 as i64 {
        bad!("SMC PSCI_VERSION at the top of the VA space returned 0x{:x}", e.regs[0]);
    }
    good!("SMC at 0x{LAST:x} answered (0x{:x}) and the PC wrapped to 0", e.regs[0])
}

pub fn mmio(ctx: &Ctx) -> Verdict {
    let e = run_snippet(ctx, 1, 0, UART_PCELLID0, 0)?;
    wrapped(&e, "MMIO load")?;
    if e.regs[1] != 0x0D {
        bad!("MMIO load of UARTPCellID0 at the top of the VA space read 0x{:x}", e.regs[1]);
    }
    good!("PL011 load at 0x{LAST:x} emulated (0x{:x}) and the PC wrapped to 0", e.regs[1])
}

pub fn id_read(ctx: &Ctx) -> Verdict {
    let e = run_snippet(ctx, 2, 0, 0, 0)?;
    wrapped(&e, "ID register read")?;
    let want = sysreg::id_aa64mmfr0_el1();
    if e.regs[1] != want {
        bad!("MRS ID_AA64MMFR0_EL1 at the top read 0x{:x}, want 0x{want:x}", e.regs[1]);
    }
    good!("MRS ID_AA64MMFR0_EL1 at 0x{LAST:x} trapped and emulated, PC wrapped to 0")
}

pub fn wfi(ctx: &Ctx) -> Verdict {
    // The timer fires 20 ms later: the WFI traps and blocks (see el0::with_timer_soon).
    let (result, blocked) = super::el0::with_timer_soon(|| run_snippet(ctx, 3, 0, 0, 0));
    wrapped(&result?, "WFI")?;
    if !blocked {
        bad!("WFI at 0x{LAST:x} returned before the timer fired: it did not block");
    }
    good!("WFI at 0x{LAST:x} blocked until the timer, completed and the PC wrapped to 0")
}

pub fn hvc(ctx: &Ctx) -> Verdict {
    let e = run_snippet(ctx, 4, psci::PSCI_VERSION, 0, 0)?;
    wrapped(&e, "HVC")?;
    if psci::w0(e.regs[0]) != psci::VERSION_1_1 as i64 {
        bad!("HVC PSCI_VERSION at the top returned 0x{:x}", e.regs[0]);
    }
    good!("HVC at 0x{LAST:x} answered and the PC wrapped to 0")
}

pub fn abort(ctx: &Ctx) -> Verdict {
    let target = mmu::window(0x2000_0000, Attrs::data(MemType::Normal));
    let e = run_snippet(ctx, 5, 0, 0, target)?;
    if !e.is_external_abort(ec::DATA_ABORT_SAME_EL, LAST, target) {
        bad!("load outside RAM at 0x{LAST:x}: {e}; want EC 0x25 DFSC 0x10 with ELR 0x{LAST:x}");
    }
    good!("load outside RAM at 0x{LAST:x}: external abort with ELR on the instruction")
}
