//! MMIO in every access form. Accesses with a valid syndrome (single-register
//! loads and stores of every size, sign-extending loads, acquire/release) to the
//! emulated PL011 and GIC must be emulated; forms the hypervisor cannot emulate
//! (no valid syndrome: LDP/STP, pre/post-index writeback, exclusives, LSE
//! atomics, SIMD&FP registers, DC ZVA, MTE tag accesses, instruction fetch, a
//! stage-1 table walk into MMIO) must come back as synchronous external aborts
//! on the instruction, with no architectural effect (registers unchanged).

use hv_abi::machine::{GICD_BASE, GICR_BASE, GICR_SGI_OFFSET, UART_BASE};

use super::{Ctx, Verdict, bad, good};
use crate::boot::{Exception, PROBE_POISON, ec, expect_exception, probe_asm};
use crate::console::{Report, text};
use crate::gic::{self, GICD_IPRIORITYR, GICD_IROUTER};
use crate::mmu::{self, Attrs, MemType};
use crate::{boot, sysreg};

/// UARTPCellID0..3 = 0x0D, 0xF0, 0x05, 0xB1 (the AMBA PrimeCell ID 0xB105F00D).
pub const UART_PCELLID0: u64 = UART_BASE + 0xFF0;
pub const UART_ILPR: u64 = UART_BASE + 0x020;
pub const UART_IBRD: u64 = UART_BASE + 0x024;
/// A priority byte of an SPI (harmless to write).
const PRIO_SPI40: u64 = GICD_BASE + GICD_IPRIORITYR + 40;

fn sea(fault: Option<Exception>, insn: u64, addr: u64, what: &str) -> Result<Exception, Report> {
    match fault {
        Some(f) if f.is_external_abort(ec::DATA_ABORT_SAME_EL, insn, addr) => Ok(f),
        Some(f) => Err(text!("{what}: {f}; want EC 0x25 DFSC 0x10 at ELR 0x{insn:x}, FAR 0x{addr:x}")),
        None => Err(text!("{what} at 0x{addr:x} completed; want a synchronous external abort")),
    }
}

fn completed(fault: Option<Exception>, what: &str) -> Result<(), Report> {
    match fault {
        None => Ok(()),
        Some(f) => Err(text!("{what} was not emulated: {f}")),
    }
}

/// `ldr{b,h,,}` of `width` bytes at `addr` (Device), expecting emulation.
fn load(addr: u64, width: u32) -> (u64, Option<Exception>) {
    let mut value = PROBE_POISON;
    let (_, fault) = match width {
        // SAFETY: a single load from a device register whose read has no side effect.
        1 => probe_asm!("1: ldrb {v:w}, [{a}]"; v = inout(reg) value, a = in(reg) addr, options(nostack)),
        // SAFETY: as above.
        2 => probe_asm!("1: ldrh {v:w}, [{a}]"; v = inout(reg) value, a = in(reg) addr, options(nostack)),
        // SAFETY: as above.
        4 => probe_asm!("1: ldr {v:w}, [{a}]"; v = inout(reg) value, a = in(reg) addr, options(nostack)),
        // SAFETY: as above.
        _ => probe_asm!("1: ldr {v}, [{a}]"; v = inout(reg) value, a = in(reg) addr, options(nostack)),
    };
    (value, fault)
}

fn store(addr: u64, width: u32, value: u64) -> Option<Exception> {
    let (_, fault) = match width {
        // SAFETY: a single store to a device register the guest owns (priority
        // byte, UART baud/IrDA registers); not memory any Rust object lives in.
        1 => probe_asm!("1: strb {v:w}, [{a}]"; v = in(reg) value, a = in(reg) addr, options(nostack)),
        // SAFETY: as above.
        2 => probe_asm!("1: strh {v:w}, [{a}]"; v = in(reg) value, a = in(reg) addr, options(nostack)),
        // SAFETY: as above.
        4 => probe_asm!("1: str {v:w}, [{a}]"; v = in(reg) value, a = in(reg) addr, options(nostack)),
        // SAFETY: as above.
        _ => probe_asm!("1: str {v}, [{a}]"; v = in(reg) value, a = in(reg) addr, options(nostack)),
    };
    fault
}

pub fn loads(ctx: &Ctx) -> Verdict {
    let mut id = 0u32;
    for i in 0..4 {
        let (value, fault) = load(UART_PCELLID0 + 4 * i, 4);
        completed(fault, "32-bit load of UARTPCellID")?;
        id |= ((value & 0xff) as u32) << (8 * i);
    }
    if id != 0xB105_F00D {
        bad!("PL011 PrimeCell ID reads 0x{id:08x}, want 0xb105f00d");
    }
    let (byte, fault) = load(UART_PCELLID0 + 4, 1);
    completed(fault, "8-bit load of UARTPCellID1")?;
    let (half, fault) = load(UART_PCELLID0 + 4, 2);
    completed(fault, "16-bit load of UARTPCellID1")?;
    if byte != 0xF0 || half != 0xF0 {
        bad!("UARTPCellID1: ldrb 0x{byte:x}, ldrh 0x{half:x}, want 0xf0 (zero-extended)");
    }
    // 64-bit registers: GICR_TYPER (affinity in [63:32]).
    for cpu in 0..ctx.vcpus {
        let (typer, fault) = load(gic::rd_base(cpu) + gic::GICR_TYPER, 8);
        completed(fault, "64-bit load of GICR_TYPER")?;
        if typer >> 32 != cpu {
            bad!("GICR_TYPER of redistributor {cpu} = 0x{typer:x}: affinity {} (want {cpu})", typer >> 32);
        }
    }
    let (word, fault) = load(GICD_BASE + gic::GICD_TYPER, 4);
    completed(fault, "32-bit load of GICD_TYPER")?;
    good!(
        "ldr w: PrimeCell ID 0x{id:08x}; ldrb/ldrh zero-extend 0xf0; ldr x GICR_TYPER affinities ok; GICD_TYPER 0x{word:x}"
    )
}

pub fn sign_extending(_: &Ctx) -> Verdict {
    completed(store(UART_IBRD, 4, 0x8001), "str w UARTIBRD")?;
    let mut got = [PROBE_POISON; 6];
    let [sh_x, sh_w, sb_x, sb_w, sw, h] = &mut got;
    // SAFETY: single loads of device registers without read side effects.
    let (_, f1) = probe_asm!("1: ldrsh {v}, [{a}]"; v = inout(reg) *sh_x, a = in(reg) UART_IBRD, options(nostack));
    // SAFETY: as above.
    let (_, f2) = probe_asm!("1: ldrsh {v:w}, [{a}]"; v = inout(reg) *sh_w, a = in(reg) UART_IBRD, options(nostack));
    // SAFETY: as above.
    let (_, f3) =
        probe_asm!("1: ldrsb {v}, [{a}]"; v = inout(reg) *sb_x, a = in(reg) UART_PCELLID0 + 4, options(nostack));
    // SAFETY: as above.
    let (_, f4) =
        probe_asm!("1: ldrsb {v:w}, [{a}]"; v = inout(reg) *sb_w, a = in(reg) UART_PCELLID0 + 4, options(nostack));
    gic::write32(GICD_BASE + GICD_IPRIORITYR + 40, 0xF0F0_F0F0);
    // SAFETY: as above.
    let (_, f5) = probe_asm!("1: ldrsw {v}, [{a}]"; v = inout(reg) *sw, a = in(reg) GICD_BASE + GICD_IPRIORITYR + 40, options(nostack));
    // SAFETY: as above.
    let (_, f6) = probe_asm!("1: ldrh {v:w}, [{a}]"; v = inout(reg) *h, a = in(reg) UART_IBRD, options(nostack));
    for (fault, what) in
        [(f1, "ldrsh x"), (f2, "ldrsh w"), (f3, "ldrsb x"), (f4, "ldrsb w"), (f5, "ldrsw"), (f6, "ldrh")]
    {
        completed(fault, what)?;
    }
    let want = [0xFFFF_FFFF_FFFF_8001, 0xFFFF_8001, 0xFFFF_FFFF_FFFF_FFF0, 0xFFFF_FFF0, 0xFFFF_FFFF_F0F0_F0F0, 0x8001];
    if got != want {
        bad!("ldrsh x/w, ldrsb x/w, ldrsw, ldrh read {got:x?}, want {want:x?}");
    }
    good!(
        "ldrsh x/w, ldrsb x/w, ldrsw sign-extend correctly (0x{:x}, 0x{:x}, 0x{:x}, 0x{:x}, 0x{:x})",
        got[0],
        got[1],
        got[2],
        got[3],
        got[4]
    )
}

pub fn stores(ctx: &Ctx) -> Verdict {
    completed(store(PRIO_SPI40 + 1, 1, 0xA8), "strb IPRIORITYR")?;
    completed(store(UART_IBRD, 2, 0x1234), "strh UARTIBRD")?;
    completed(store(UART_ILPR, 4, 0x5A), "str w UARTILPR")?;
    let route = ctx.vcpus - 1;
    let router = GICD_BASE + GICD_IROUTER + 8 * 40;
    completed(store(router, 8, route), "str x GICD_IROUTER40")?;
    let readback = [load(PRIO_SPI40 + 1, 1).0, load(UART_IBRD, 4).0, load(UART_ILPR, 4).0, load(router, 8).0];
    let want = [0xA8, 0x1234, 0x5A, route];
    if readback != want {
        bad!("strb/strh/str w/str x read back {readback:x?}, want {want:x?}");
    }
    // A 64-bit store to the 32-bit UART: emulated (ignored) or aborted, never fatal.
    let odd = store(UART_ILPR, 8, 0x77);
    let odd = match odd {
        None => "ignored",
        Some(f) if f.ec() == ec::DATA_ABORT_SAME_EL => "aborted",
        Some(f) => bad!("str x to UARTILPR: {f}"),
    };
    completed(store(router, 8, 0), "str x GICD_IROUTER40")?;
    good!("strb/strh/str w/str x to GICD and PL011 read back; a 64-bit UART store was {odd}")
}

pub fn acquire_release(_: &Ctx) -> Verdict {
    let (mut a, mut b) = (PROBE_POISON, PROBE_POISON);
    // SAFETY: single acquire loads of device registers without read side effects.
    let (_, f1) = probe_asm!("1: ldar {v:w}, [{a}]"; v = inout(reg) a, a = in(reg) UART_PCELLID0, options(nostack));
    completed(f1, "ldar w")?;
    // SAFETY: a release store to the UART baud register.
    let (_, f2) = probe_asm!("1: stlr {v:w}, [{a}]"; v = in(reg) 0x4321u64, a = in(reg) UART_IBRD, options(nostack));
    completed(f2, "stlr w")?;
    // SAFETY: as for the ldar above.
    let (_, f3) = probe_asm!("1: ldarb {v:w}, [{a}]"; v = inout(reg) b, a = in(reg) UART_IBRD, options(nostack));
    completed(f3, "ldarb")?;
    if a != 0x0D || b != 0x21 {
        bad!("ldar UARTPCellID0 = 0x{a:x} (want 0xd), ldarb UARTIBRD after stlr 0x4321 = 0x{b:x} (want 0x21)");
    }
    good!("ldar/stlr/ldarb emulated (0x{a:x}, 0x{b:x})")
}

pub fn pairs(_: &Ctx) -> Verdict {
    let (mut x, mut y) = (PROBE_POISON, PROBE_POISON);
    // SAFETY: LDP of two device registers (no read side effects); must abort.
    let (insn, fault) = probe_asm!("1: ldp {x}, {y}, [{a}]";
        x = inout(reg) x, y = inout(reg) y, a = in(reg) UART_PCELLID0, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ldp x")?;
    if x != PROBE_POISON || y != PROBE_POISON {
        bad!("the aborted ldp changed its registers: 0x{x:x} 0x{y:x}");
    }
    // SAFETY: as above, 32-bit pair.
    let (insn, fault) = probe_asm!("1: ldp {x:w}, {y:w}, [{a}]";
        x = inout(reg) x, y = inout(reg) y, a = in(reg) UART_PCELLID0, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ldp w")?;
    // SAFETY: STP to SPI priority registers (harmless if it were performed).
    let (insn, fault) = probe_asm!("1: stp {x:w}, {y:w}, [{a}]";
        x = in(reg) 0u64, y = in(reg) 0u64, a = in(reg) PRIO_SPI40, options(nostack));
    sea(fault, insn, PRIO_SPI40, "stp w")?;
    // SAFETY: as above, non-temporal pair load.
    let (insn, fault) = probe_asm!("1: ldnp {x}, {y}, [{a}]";
        x = inout(reg) x, y = inout(reg) y, a = in(reg) UART_PCELLID0, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ldnp")?;
    good!("ldp x, ldp w, stp w, ldnp: synchronous external aborts, registers untouched")
}

pub fn writeback(_: &Ctx) -> Verdict {
    let forms: [(&str, u64); 4] = [
        ("ldr pre-index", UART_PCELLID0),
        ("ldr post-index", UART_PCELLID0),
        ("str pre-index", PRIO_SPI40),
        ("str post-index", PRIO_SPI40),
    ];
    for (i, (what, addr)) in forms.into_iter().enumerate() {
        let mut base = addr;
        let mut value = PROBE_POISON;
        let (insn, fault) = match i {
            // SAFETY: a load with writeback from a device register; must abort.
            0 => probe_asm!("1: ldr {v:w}, [{b}, #4]!"; v = inout(reg) value, b = inout(reg) base, options(nostack)),
            // SAFETY: as above.
            1 => probe_asm!("1: ldr {v:w}, [{b}], #4"; v = inout(reg) value, b = inout(reg) base, options(nostack)),
            // SAFETY: a store with writeback to an SPI priority register; must abort.
            2 => probe_asm!("1: str {v:w}, [{b}, #4]!"; v = in(reg) 0u64, b = inout(reg) base, options(nostack)),
            // SAFETY: as above.
            _ => probe_asm!("1: str {v:w}, [{b}], #4"; v = in(reg) 0u64, b = inout(reg) base, options(nostack)),
        };
        let accessed = if i % 2 == 0 { addr + 4 } else { addr };
        sea(fault, insn, accessed, what)?;
        if base != addr || value != PROBE_POISON {
            bad!("{what}: aborted but base 0x{base:x} (was 0x{addr:x}), value 0x{value:x}");
        }
    }
    good!("ldr/str pre- and post-index: aborted, base register not written back")
}

pub fn exclusives(_: &Ctx) -> Verdict {
    let mut value = PROBE_POISON;
    // SAFETY: an exclusive load of a device register; must abort.
    let (insn, fault) =
        probe_asm!("1: ldxr {v:w}, [{a}]"; v = inout(reg) value, a = in(reg) UART_PCELLID0, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ldxr")?;
    // SAFETY: as above, acquire form.
    let (insn, fault) =
        probe_asm!("1: ldaxr {v}, [{a}]"; v = inout(reg) value, a = in(reg) gic::rd_base(0) + 8, options(nostack));
    sea(fault, insn, gic::rd_base(0) + 8, "ldaxr")?;
    let mut status = 7u64;
    // SAFETY: an exclusive store to an SPI priority register; must abort.
    let (stxr_insn, stxr_fault) = probe_asm!("1: stxr {s:w}, {v:w}, [{a}]";
        s = inout(reg) status, v = in(reg) 0u64, a = in(reg) PRIO_SPI40, options(nostack));
    // Without a preceding LDXR the monitor is open: STXR may fail without any
    // access (status 1), or the access aborts; it must never be performed.
    match stxr_fault {
        None if status == 1 => {}
        None => bad!("stxr to the GICD without a reservation reported status {status}, want 1 (failed)"),
        Some(_) => {
            sea(stxr_fault, stxr_insn, PRIO_SPI40, "stxr")?;
            if status != 7 {
                bad!("aborted stxr changed its status register to {status}");
            }
        }
    }
    if value != PROBE_POISON {
        bad!("aborted exclusives changed registers (value 0x{value:x}, status {status})");
    }
    let (mut x, mut y) = (PROBE_POISON, PROBE_POISON);
    // SAFETY: as above, pair form.
    let (insn, fault) = probe_asm!("1: ldxp {x}, {y}, [{a}]";
        x = inout(reg) x, y = inout(reg) y, a = in(reg) UART_PCELLID0, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ldxp")?;
    good!(
        "ldxr, ldaxr, ldxp: aborted; stxr without reservation: {}",
        if stxr_fault.is_some() { "aborted" } else { "failed, no access" }
    )
}

pub fn atomics(_: &Ctx) -> Verdict {
    if !sysreg::has_lse() {
        return good!("skipped (no FEAT_LSE)");
    }
    let mut old = PROBE_POISON;
    // SAFETY: an atomic add on an SPI priority register; must abort.
    let (insn, fault) = probe_asm!(".arch_extension lse", "1: ldadd {v:w}, {o:w}, [{a}]";
        v = in(reg) 1u64, o = inout(reg) old, a = in(reg) PRIO_SPI40, options(nostack));
    sea(fault, insn, PRIO_SPI40, "ldadd")?;
    // SAFETY: as above, swap.
    let (insn, fault) = probe_asm!(".arch_extension lse", "1: swp {v:w}, {o:w}, [{a}]";
        v = in(reg) 1u64, o = inout(reg) old, a = in(reg) PRIO_SPI40, options(nostack));
    sea(fault, insn, PRIO_SPI40, "swp")?;
    let mut expected = 0u64;
    // SAFETY: as above, compare-and-swap.
    let (insn, fault) = probe_asm!(".arch_extension lse", "1: cas {e:w}, {v:w}, [{a}]";
        e = inout(reg) expected, v = in(reg) 1u64, a = in(reg) PRIO_SPI40, options(nostack));
    sea(fault, insn, PRIO_SPI40, "cas")?;
    // SAFETY: as above, store-only form.
    let (insn, fault) = probe_asm!(".arch_extension lse", "1: stadd {v:w}, [{a}]";
        v = in(reg) 1u64, a = in(reg) PRIO_SPI40, options(nostack));
    sea(fault, insn, PRIO_SPI40, "stadd")?;
    if old != PROBE_POISON || expected != 0 {
        bad!("aborted atomics changed registers (0x{old:x}, 0x{expected:x})");
    }
    good!("ldadd, swp, cas, stadd: aborted")
}

pub fn simd(_: &Ctx) -> Verdict {
    sysreg::enable_fp();
    // SAFETY: SIMD&FP loads of device registers and a store to SPI priorities
    // (V0 is not used by this soft-float guest); each must abort.
    let (insn, fault) = probe_asm!(".arch_extension fp", ".arch_extension simd", "1: ldr q0, [{a}]";
        a = in(reg) UART_PCELLID0, out("v0") _, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ldr q0")?;
    // SAFETY: as above.
    let (insn, fault) = probe_asm!(".arch_extension fp", "1: ldr s0, [{a}]";
        a = in(reg) UART_PCELLID0, out("v0") _, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ldr s0")?;
    // SAFETY: as above.
    let (insn, fault) = probe_asm!(".arch_extension fp", "1: str d0, [{a}]";
        a = in(reg) PRIO_SPI40, out("v0") _, options(nostack));
    sea(fault, insn, PRIO_SPI40, "str d0")?;
    // SAFETY: as above.
    let (insn, fault) = probe_asm!(".arch_extension simd", "1: ld1 {{v0.4s}}, [{a}]";
        a = in(reg) UART_PCELLID0, out("v0") _, options(nostack));
    sea(fault, insn, UART_PCELLID0, "ld1 {v0.4s}")?;
    good!("ldr q0, ldr s0, str d0, ld1: aborted")
}

pub fn dc_zva(_: &Ctx) -> Verdict {
    let dczid = sysreg::dczid_el0();
    if dczid & (1 << 4) != 0 {
        return good!("skipped (DCZID_EL0.DZP set: DC ZVA prohibited)");
    }
    let mut detail = Report::new();
    for (ipa, name) in [(UART_BASE, "PL011"), (GICD_BASE + 0x400, "GICD")] {
        // Normal alias: stage 1 allows DC ZVA, stage 2 must refuse it.
        let va = mmu::window(ipa, Attrs::data(MemType::Normal));
        // SAFETY: DC ZVA of a block at a device IPA; must abort (no RAM there).
        let (insn, fault) = probe_asm!("1: dc zva, {a}"; a = in(reg) va, options(nostack));
        let Some(f) = fault else { bad!("DC ZVA at {name} IPA 0x{ipa:x} completed") };
        if f.ec() != ec::DATA_ABORT_SAME_EL || f.fsc() != 0x10 || f.elr != insn {
            bad!("DC ZVA at {name} IPA 0x{ipa:x}: {f}; want EC 0x25 DFSC 0x10");
        }
        let _ = core::fmt::Write::write_fmt(&mut detail, format_args!("{name} ESR 0x{:x} ", f.esr));
    }
    // Through the Device mapping the architecture faults first (alignment, at EL1)
    // or the hypervisor must abort it.
    // SAFETY: as above, through the Device-typed identity mapping.
    let (insn, fault) = probe_asm!("1: dc zva, {a}"; a = in(reg) UART_BASE, options(nostack));
    match fault {
        Some(f) if f.elr == insn && f.ec() == ec::DATA_ABORT_SAME_EL && (f.fsc() == 0x21 || f.fsc() == 0x10) => {}
        Some(f) => bad!("DC ZVA through the Device mapping: {f}"),
        None => bad!("DC ZVA through the Device mapping of the PL011 completed"),
    }
    good!("DC ZVA (DCZID 0x{dczid:x}) aborted at {detail}")
}

pub fn tags(ctx: &Ctx) -> Verdict {
    if !ctx.mte {
        return good!("skipped (no MTE)");
    }
    let va = mmu::window(UART_BASE, Attrs::data(MemType::Tagged));
    let mut value = va;
    // SAFETY: LDG of a device IPA through a Tagged alias; must abort.
    let (insn, fault) = probe_asm!(".arch_extension memtag", "1: ldg {v}, [{a}]"; v = inout(reg) value, a = in(reg) va, options(nostack));
    sea(fault, insn, va, "ldg")?;
    // SAFETY: STG to a device IPA through a Tagged alias; must abort.
    let (insn, fault) =
        probe_asm!(".arch_extension memtag", "1: stg {a}, [{a}]"; a = in(reg) va | (3 << 56), options(nostack));
    let Some(f) = fault else { bad!("stg at the PL011 IPA completed") };
    if f.ec() != ec::DATA_ABORT_SAME_EL || f.fsc() != 0x10 || f.elr != insn {
        bad!("stg: {f}; want EC 0x25 DFSC 0x10");
    }
    // SAFETY: STGP to a device IPA; must abort.
    let (insn, fault) = probe_asm!(".arch_extension memtag", "1: stgp {z}, {z}, [{a}]";
        z = in(reg) 0u64, a = in(reg) va | (3 << 56), options(nostack));
    let Some(f) = fault else { bad!("stgp at the PL011 IPA completed") };
    if f.ec() != ec::DATA_ABORT_SAME_EL || f.fsc() != 0x10 || f.elr != insn {
        bad!("stgp: {f}; want EC 0x25 DFSC 0x10");
    }
    if value != va {
        bad!("aborted ldg changed its register to 0x{value:x}");
    }
    good!("ldg, stg, stgp at the PL011 IPA: aborted")
}

/// Branches to `target` (mapped executable) and returns the instruction abort.
pub fn fetch(target: u64) -> Option<Exception> {
    let (_, fault) = expect_exception(|slot| {
        // SAFETY: branches to an address whose fetch must abort; the handler
        // resumes at label 2 with the registers as they were at the abort (x9
        // and x30 declared clobbered; nothing else is live across the branch).
        unsafe {
            core::arch::asm!(
                "adr x9, 2f",
                "str x9, [{slot}]",
                "blr {target}",
                "2:",
                slot = in(reg) slot,
                target = in(reg) target,
                out("x9") _,
                out("x30") _,
                options(nostack),
            );
        }
    });
    fault
}

pub fn ifetch(ctx: &Ctx) -> Verdict {
    let ram_end = ctx.env.ram_end();
    for (ipa, name) in [
        (UART_BASE, "PL011"),
        (GICD_BASE, "GICD"),
        (GICR_BASE + GICR_SGI_OFFSET, "GICR SGI frame"),
        (0x2000_0000, "unbacked"),
        (ram_end, "RAM end"),
    ] {
        let va = mmu::window(ipa, Attrs::code(MemType::Normal));
        match fetch(va) {
            Some(f) if f.is_external_abort(ec::INSN_ABORT_SAME_EL, va, va) => {}
            Some(f) => bad!("fetch from {name} IPA 0x{ipa:x}: {f}; want EC 0x21 IFSC 0x10, ELR = FAR = 0x{va:x}"),
            None => bad!("fetch from {name} IPA 0x{ipa:x} returned"),
        }
    }
    good!("instruction fetches from PL011, GICD, GICR, unbacked and past-RAM IPAs: EC 0x21 IFSC 0x10")
}

pub fn walk(ctx: &Ctx) -> Verdict {
    let mut fscs = Report::new();
    for (ipa, name) in
        [(UART_BASE, "PL011"), (GICD_BASE, "GICD"), (0x2000_0000, "unbacked"), (ctx.env.ram_end(), "past RAM")]
    {
        let va = mmu::set_l1_raw(mmu::table_descriptor(ipa)) + 0x1234_5000;
        // SAFETY: the translation of `va` walks a table at a non-RAM IPA; must abort.
        let probe = unsafe { boot::probe_load(va) };
        let Some(f) = probe.fault else { bad!("load through a table at {name} IPA 0x{ipa:x} completed") };
        let fsc_ok = f.fsc() == 0x10 || (0x14..=0x17).contains(&f.fsc());
        if f.ec() != ec::DATA_ABORT_SAME_EL || !fsc_ok || f.elr != probe.insn {
            bad!("walk into {name} IPA 0x{ipa:x}: {f}; want EC 0x25, external abort (DFSC 0x10 or 0x14-0x17)");
        }
        let _ = core::fmt::Write::write_fmt(&mut fscs, format_args!("{name} DFSC 0x{:x} ", f.fsc()));
    }
    good!("stage-1 walks into MMIO/unbacked IPAs aborted: {fscs}")
}
