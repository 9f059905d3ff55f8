//! vGIC garbage: random writes to every Distributor and Redistributor offset
//! (reserved ones included), accesses just outside the frames, IROUTER with
//! affinities no vCPU has, random priorities, ISPENDR storms, floods of SGIs to
//! self that overflow the list registers, SGIs to affinities that do not exist.
//! The guest must survive every write, the GIC must keep its architected
//! behaviour, and a timer interrupt must still be delivered afterwards.

use core::arch::asm;

use hv_abi::machine::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_FRAME_SIZE, VIRTUAL_TIMER_INTID};

use super::{Ctx, Rng, Verdict, bad, good};
use crate::boot::{ec, probe_asm};
use crate::console::text;
use crate::gic;
use crate::sysreg;

/// Word writes of random values to every offset of `[base, base + size)`;
/// returns how many aborted (with the first offending offset).
fn sweep(base: u64, size: u64, rng: &mut Rng) -> (u64, u64) {
    let (mut aborted, mut first) = (0, 0);
    for offset in (0..size).step_by(4) {
        let addr = base + offset;
        // SAFETY: a store to an emulated GIC register (any value is the point);
        // GIC state is not memory any Rust object lives in.
        let (_, fault) = probe_asm!("1: str {v:w}, [{a}]"; v = in(reg) rng.next(), a = in(reg) addr, options(nostack));
        if fault.is_some() {
            if aborted == 0 {
                first = offset;
            }
            aborted += 1;
        }
    }
    (aborted, first)
}

/// Word reads of every offset (for the record: nothing may abort either).
fn sweep_reads(base: u64, size: u64) -> u64 {
    let mut aborted = 0;
    for offset in (0..size).step_by(4) {
        let mut value = 0u64;
        // SAFETY: a load of an emulated GIC register.
        let (_, fault) =
            probe_asm!("1: ldr {v:w}, [{a}]"; v = inout(reg) value, a = in(reg) base + offset, options(nostack));
        aborted += u64::from(fault.is_some());
    }
    aborted
}

/// GICD_PIDR2.ArchRev (bits 7:4) must read 3 (GICv3), garbage or not.
fn arch_rev(frame: u64) -> u32 {
    (gic::read32(frame + 0xFFE8) >> 4) & 0xf
}

pub fn gicd_sweep(_: &Ctx) -> Verdict {
    let mut rng = Rng::new(0x61C0_D157);
    let (aborted, first) = sweep(GICD_BASE, GICD_SIZE, &mut rng);
    let read_aborts = sweep_reads(GICD_BASE, GICD_SIZE);
    let rev = arch_rev(GICD_BASE);
    gic::init_distributor();
    if aborted != 0 || read_aborts != 0 {
        bad!(
            "{aborted} writes (first at +0x{first:x}) and {read_aborts} reads inside the GICD frame aborted; want RAZ/WI"
        );
    }
    if rev != 3 {
        bad!("GICD_PIDR2.ArchRev reads {rev} after the garbage, want 3");
    }
    good!("{} random word writes and reads, every GICD offset; still GICv3", GICD_SIZE / 4)
}

pub fn gicr_sweep(ctx: &Ctx) -> Verdict {
    let mut rng = Rng::new(0x61C0_12D1);
    for cpu in 0..ctx.vcpus {
        let base = gic::rd_base(cpu);
        let (aborted, first) = sweep(base, GICR_FRAME_SIZE, &mut rng);
        let read_aborts = sweep_reads(base, GICR_FRAME_SIZE);
        let rev = arch_rev(base);
        let typer = gic::read64(base + gic::GICR_TYPER);
        gic::init_redistributor(cpu, 0);
        if aborted != 0 || read_aborts != 0 {
            bad!(
                "redistributor {cpu}: {aborted} writes (first at +0x{first:x}) and {read_aborts} reads aborted; want RAZ/WI"
            );
        }
        if rev != 3 || typer >> 32 != cpu {
            bad!("redistributor {cpu} after the garbage: ArchRev {rev}, GICR_TYPER 0x{typer:x}");
        }
    }
    good!(
        "{} random word writes and reads over {} redistributor(s) (RD and SGI frames)",
        GICR_FRAME_SIZE / 4 * ctx.vcpus,
        ctx.vcpus
    )
}

pub fn outside_frames(ctx: &Ctx) -> Verdict {
    let last_inside = [GICD_BASE + GICD_SIZE - 4, GICR_BASE, GICR_BASE + ctx.vcpus * GICR_FRAME_SIZE - 4];
    for addr in last_inside {
        let mut value = 0u64;
        // SAFETY: a load of an emulated GIC register at a frame edge.
        let (_, fault) = probe_asm!("1: ldr {v:w}, [{a}]"; v = inout(reg) value, a = in(reg) addr, options(nostack));
        if let Some(f) = fault {
            bad!("load at 0x{addr:x} (inside a GIC frame) aborted: {f}");
        }
    }
    let outside = [GICD_BASE + GICD_SIZE, GICR_BASE - 4, GICR_BASE + ctx.vcpus * GICR_FRAME_SIZE];
    for addr in outside {
        // SAFETY: a store just outside the GIC frames: nothing is there.
        let (insn, fault) =
            probe_asm!("1: str {v:w}, [{a}]"; v = in(reg) 0xFFFF_FFFFu64, a = in(reg) addr, options(nostack));
        match fault {
            Some(f) if f.is_external_abort(ec::DATA_ABORT_SAME_EL, insn, addr) => {}
            Some(f) => bad!("store at 0x{addr:x} (outside the GIC frames): {f}; want EC 0x25 DFSC 0x10"),
            None => bad!("store at 0x{addr:x} (outside the GIC frames) completed; want an external abort"),
        }
    }
    good!("frame edges readable; GICD end, below GICR, past the last redistributor abort")
}

/// Enables and pends every SPI, routed with `router`; returns how many of them
/// vCPU 0 then acknowledged (each ended).
fn pend_all_spis(router: u64) -> (u64, u64) {
    let spis = gic::spi_count();
    for intid in 32..32 + spis {
        gic::write64(GICD_BASE + gic::GICD_IROUTER + 8 * u64::from(intid), router);
    }
    for block in 1..=spis / 32 {
        gic::write32(GICD_BASE + gic::GICD_ISENABLER + 4 * u64::from(block), !0);
        gic::write32(GICD_BASE + gic::GICD_ISPENDR + 4 * u64::from(block), !0);
    }
    let (mut spi_acks, mut other) = (0, 0);
    for _ in 0..4 * spis {
        let intid = gic::ack();
        if intid >= 1020 {
            break;
        }
        gic::eoi(intid);
        if (32..32 + spis).contains(&intid) { spi_acks += 1 } else { other += 1 }
    }
    (spi_acks, other)
}

pub fn irouter(_: &Ctx) -> Verdict {
    gic::init_for_cpu(0);
    let spis = gic::spi_count();
    let mut readback = 0;
    // IRM = 0 (bit 31) and affinities of no vCPU: Aff3.Aff2.Aff1.Aff0 all 0xFF,
    // Aff0 = 5, Aff3 = 1, Aff1 = 0xFF, with RES0 bits [30:24] set too.
    for (i, router) in [0xFF_00FF_FFFFu64, 0x05, 0x1_0000_0000, 0xFF00, 0x7F00_0005].into_iter().enumerate() {
        let (acks, _) = pend_all_spis(router);
        readback = gic::read64(GICD_BASE + gic::GICD_IROUTER + 8 * 40);
        if acks != 0 {
            gic::init_distributor();
            bad!("SPIs routed to affinity 0x{router:x} (no such vCPU) were delivered to vCPU 0 ({acks}) [{i}]");
        }
    }
    // IRM = 1 (any vCPU): may come here; must not crash anything.
    let (any, _) = pend_all_spis(1 << 31);
    // Back to vCPU 0: every pending SPI must now arrive exactly once.
    let (acks, other) = pend_all_spis(0);
    gic::init_distributor();
    let _ = gic::drain(4096);
    if acks < u64::from(spis) || other > 0 {
        bad!("after re-routing {spis} pending SPIs to vCPU 0, {acks} SPI and {other} other acknowledges");
    }
    good!(
        "bad affinities delivered nothing (IROUTER reads 0x{readback:x}), IRM=1 delivered {any}, then all {spis} SPIs arrived at vCPU 0 ({acks} acks)"
    )
}

pub fn priorities(_: &Ctx) -> Verdict {
    gic::init_for_cpu(0);
    let mut rng = Rng::new(0x9210);
    let spis = gic::spi_count();
    let probe = GICD_BASE + gic::GICD_IPRIORITYR + 32;
    gic::write8(probe, 0xFF);
    let mask = gic::read8(probe);
    let mut checked = 0;
    let bytes = (0..32).map(|i| gic::sgi_base(sysreg::cpu_index()) + gic::GICR_IPRIORITYR + i);
    let spi_bytes = (32..32 + u64::from(spis)).map(|i| GICD_BASE + gic::GICD_IPRIORITYR + i);
    for addr in bytes.chain(spi_bytes) {
        let written = rng.next() as u8;
        gic::write8(addr, written);
        let read = gic::read8(addr);
        if read != written & mask {
            gic::init_for_cpu(0);
            bad!("priority byte at 0x{addr:x}: wrote 0x{written:x}, read 0x{read:x} (implemented bits 0x{mask:x})");
        }
        checked += 1;
    }
    gic::init_for_cpu(0);
    if mask == 0 {
        bad!("no priority bits implemented (0xFF reads back 0)");
    }
    good!("{checked} random priority bytes read back through mask 0x{mask:x}")
}

fn running_priority() -> u64 {
    let rpr: u64;
    // SAFETY: reading ICC_RPR_EL1 has no side effects.
    unsafe { asm!("mrs {}, s3_0_c12_c11_3", out(reg) rpr, options(nomem, nostack, preserves_flags)) };
    rpr & 0xff
}

pub fn ispendr_storm(_: &Ctx) -> Verdict {
    let cpu = sysreg::cpu_index();
    gic::disarm_timer();
    gic::init_for_cpu(0xFFFF); // SGIs; PPIs stay disabled (some are level lines)
    let spis = gic::spi_count();
    for block in 1..=spis / 32 {
        gic::write32(GICD_BASE + gic::GICD_ISENABLER + 4 * u64::from(block), !0);
    }
    for _ in 0..100 {
        gic::write32(gic::sgi_base(cpu) + gic::GICR_ISPENDR0, 0xFFFF);
        for block in 1..=spis / 32 {
            gic::write32(GICD_BASE + gic::GICD_ISPENDR + 4 * u64::from(block), !0);
        }
    }
    let mut counts = [0u16; 1020];
    let mut total = 0;
    loop {
        let intid = gic::ack();
        if intid >= 1020 {
            break;
        }
        gic::eoi(intid);
        counts[intid as usize] += 1;
        total += 1;
        if total > 10_000 {
            break;
        }
    }
    let rpr = running_priority();
    gic::init_for_cpu(0);
    let end = 32 + spis as usize;
    if let Some(intid) = (0..16).chain(32..end).find(|&i| counts[i] == 0) {
        bad!("INTID {intid} was pended and enabled but never acknowledged ({total} acks in all)");
    }
    if let Some(intid) = (0..1020).find(|&i| counts[i] > 3 || (i >= end && counts[i] > 0)) {
        bad!("INTID {intid} acknowledged {} times ({total} acks in all)", counts[intid]);
    }
    if rpr != 0xff {
        bad!("running priority 0x{rpr:x} after ending everything, want idle (0xff)");
    }
    good!("100 rounds of ISPENDR all-ones: {total} acknowledges, every SGI and all {spis} SPIs, priority idle after")
}

pub fn sgi_flood(_: &Ctx) -> Verdict {
    let cpu = sysreg::cpu_index();
    gic::init_for_cpu(0xFFFF);
    for _ in 0..64 {
        for intid in 0..16 {
            gic::send_sgi(intid, cpu);
        }
    }
    let mut counts = [0u32; 16];
    let mut others = 0;
    for _ in 0..4096 {
        let intid = gic::ack();
        if intid >= 1020 {
            break;
        }
        gic::eoi(intid);
        match counts.get_mut(intid as usize) {
            Some(count) => *count += 1,
            None => others += 1,
        }
    }
    gic::init_for_cpu(0);
    if let Some(intid) = (0..16).find(|&i| counts[i] == 0 || counts[i] > 64) {
        bad!("SGI {intid} acknowledged {} times after 64 sends (counts {counts:?})", counts[intid]);
    }
    if others != 0 {
        bad!("{others} interrupts other than the SGIs were acknowledged");
    }
    good!(
        "1024 SGIs to self (16 INTIDs x 64): each INTID delivered {}..={} times",
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0)
    )
}

pub fn sgi_garbage(_: &Ctx) -> Verdict {
    gic::init_for_cpu(0xFFFF);
    let garbage = [
        (0xFF << 16) | 0xFFFF | (3 << 24),      // Aff1 = 0xFF
        (0xFFu64 << 32) | 1 | (4 << 24),        // Aff2 = 0xFF
        (0xFFu64 << 48) | 1 | (5 << 24),        // Aff3 = 0xFF
        (0xFu64 << 44) | 1 | (6 << 24),         // RS = 15 (if the range selector is supported)
        (1u64 << 40) | (7 << 24),               // IRM: everyone but self
        !(1u64 << 40) & !0xFFFF & !(0xF << 44), // every affinity bit set, no target
    ];
    // ICC_CTLR_EL1.RSS (bit 18): without range selector support RS is RES0
    // and may be treated as 0, so the RS = 15 write is skipped then.
    let ctlr: u64;
    // SAFETY: reading ICC_CTLR_EL1 has no side effects.
    unsafe { asm!("mrs {}, s3_0_c12_c12_4", out(reg) ctlr, options(nomem, nostack, preserves_flags)) };
    let rss = ctlr & (1 << 18) != 0;
    for value in garbage.into_iter().filter(|v| rss || (v >> 44) & 0xf == 0) {
        gic::send_sgi_raw(value);
    }
    let (mut delivered, mut which) = (0, 0u32);
    for _ in 0..64 {
        let intid = gic::ack();
        if intid >= 1020 {
            break;
        }
        gic::eoi(intid);
        delivered += 1;
        which |= 1 << (intid & 31);
    }
    // Group 0 and alternate Group 1 SGI registers: emulated or UNDEFINED, never fatal.
    let mut undefined = 0;
    for which in 0..2 {
        let value = gic::sgi1r(8, 1);
        let (_, fault) = if which == 0 {
            // SAFETY: ICC_SGI0R_EL1 only generates an SGI.
            probe_asm!("1: msr s3_0_c12_c11_7, {v}"; v = in(reg) value, options(nostack))
        } else {
            // SAFETY: ICC_ASGI1R_EL1 only generates an SGI.
            probe_asm!("1: msr s3_0_c12_c11_6, {v}"; v = in(reg) value, options(nostack))
        };
        match fault {
            None => {}
            Some(f) if f.ec() == ec::UNKNOWN => undefined += 1,
            Some(f) => {
                bad!("ICC_{}SGI{}R_EL1 write: {f}", if which == 0 { "" } else { "A" }, if which == 0 { 0 } else { 1 })
            }
        }
    }
    let _ = gic::drain(4096);
    gic::init_for_cpu(0);
    if delivered != 0 {
        bad!(
            "{delivered} SGIs (INTIDs 0x{which:x}) reached this vCPU from ICC_SGI1R_EL1 writes that target nobody or everyone else"
        );
    }
    good!(
        "{} SGI1R writes to absent affinities / IRM delivered nothing to self; SGI0R/ASGI1R: {undefined} of 2 UNDEFINED",
        garbage.len()
    )
}

pub fn timer_after(_: &Ctx) -> Verdict {
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let result = gic::timer_interrupt(5, 1000);
    gic::init_for_cpu(0);
    match result {
        Ok(wake) => good!(
            "timer PPI 27 delivered {} us after arming +5 ms, after all the garbage",
            sysreg::ticks_to_us(wake.ticks)
        ),
        Err(missed) => Err(text!("timer armed +5 ms, want PPI 27 within 1 s: {missed}")),
    }
}

/// Software written for KVM never clears GICR_WAKER.ProcessorSleep (KVM treats
/// the register as RAZ/WI), so an asleep redistributor must still deliver; the
/// handshake itself stays readable (ProcessorSleep reads back as written).
pub fn waker_does_not_gate(_: &Ctx) -> Verdict {
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let waker = gic::rd_base(sysreg::cpu_index()) + gic::GICR_WAKER;
    gic::write32(waker, gic::read32(waker) | (1 << 1));
    let reads_asleep = gic::read32(waker) & (1 << 1) != 0;
    let result = gic::timer_interrupt(5, 250);
    gic::init_for_cpu(0);
    if !reads_asleep {
        bad!("GICR_WAKER.ProcessorSleep did not read back as set");
    }
    match result {
        Ok(wake) => good!(
            "ProcessorSleep set (reads back 1), timer PPI 27 still delivered {} us after arming +5 ms",
            sysreg::ticks_to_us(wake.ticks)
        ),
        Err(missed) => Err(text!("with ProcessorSleep set, timer armed +5 ms, want PPI 27 within 250 ms: {missed}")),
    }
}
