//! PSCI and SMCCC garbage through HVC and SMC: every PSCI function ID
//! 0x8400_0000..=0x8400_001F and 0xC400_0000..=0xC400_001F (except those that
//! would stop, suspend or reset this vCPU or VM) with garbage arguments, random
//! function IDs of other owners, HVC with non-zero immediates, bad MPIDRs and
//! entry points, CPU_ON of a vCPU that is on, and CPU_OFF/CPU_ON with vCPU 1:
//! a CPU_OFF with an SGI pending must not return, AFFINITY_INFO must say OFF
//! and the vCPU's counter stop until a new CPU_ON starts it at the new entry;
//! CPU_ON hammered while vCPU 1 turns itself off must start it exactly once
//! per success.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use hv_abi::machine::UART_BASE;

use super::{Ctx, Rng, Verdict, bad, good};
use crate::boot::{ec, probe_asm};
use crate::console::text;
use crate::psci::{self, Conduit, w0};
use crate::{gic, smp, sysreg};

/// vCPU 1's progress and what it saw at entry.
static COUNTER: AtomicU64 = AtomicU64::new(0);
static ENTRIES: AtomicU64 = AtomicU64::new(0);
static LAST_ALT: AtomicU64 = AtomicU64::new(0);
static LAST_MPIDR: AtomicU64 = AtomicU64::new(0);
static LAST_CONTEXT: AtomicU64 = AtomicU64::new(0);
/// CPU_OFF returned (bit 63 set, low bits its status).
static RETURNED: AtomicU64 = AtomicU64::new(0);
/// ICC_HPPIR1_EL1 vCPU 1 read just before its CPU_OFF with an SGI pending.
static PENDING_SEEN: AtomicU64 = AtomicU64::new(0);
/// vCPU 0's command to vCPU 1.
static COMMAND: AtomicU64 = AtomicU64::new(0);

const MODE_COUNT: u64 = 1;
const MODE_OFF_AT_ONCE: u64 = 2;
const CMD_OFF: u64 = 1;
const CMD_OFF_WITH_SGI: u64 = 2;
const SGI: u32 = 5;

fn turn_off() -> ! {
    let status = psci::cpu_off();
    RETURNED.store((1 << 63) | status as u64, SeqCst);
    // CPU_OFF returned: keep counting, so vCPU 0 sees it.
    loop {
        COUNTER.fetch_add(1, SeqCst);
    }
}

extern "C" fn worker(mode: u64, alt: u64, context: u64) -> ! {
    LAST_ALT.store(alt, SeqCst);
    LAST_MPIDR.store(sysreg::mpidr_el1(), SeqCst);
    LAST_CONTEXT.store(context, SeqCst);
    ENTRIES.fetch_add(1, SeqCst);
    if mode == MODE_OFF_AT_ONCE {
        turn_off();
    }
    loop {
        COUNTER.fetch_add(1, SeqCst);
        match COMMAND.swap(0, SeqCst) {
            CMD_OFF => turn_off(),
            CMD_OFF_WITH_SGI => {
                let me = sysreg::cpu_index();
                gic::init_redistributor(me, 1 << SGI);
                gic::init_cpu_interface();
                gic::send_sgi(SGI, me);
                let mut hppir = 1023;
                for _ in 0..1000 {
                    let value: u64;
                    // SAFETY: reading ICC_HPPIR1_EL1 has no side effects.
                    unsafe { core::arch::asm!("mrs {}, s3_0_c12_c12_2", out(reg) value, options(nomem, nostack)) };
                    hppir = value & 0xff_ffff;
                    if hppir == u64::from(SGI) {
                        break;
                    }
                }
                PENDING_SEEN.store(hppir, SeqCst);
                turn_off()
            }
            _ => {}
        }
    }
}

fn wait_until(ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = sysreg::cntvct_el0() + sysreg::ms_to_ticks(ms);
    loop {
        if done() {
            return true;
        }
        if sysreg::past(deadline) {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// Makes sure vCPU 1 is off (asks it to turn itself off if it runs).
fn ensure_off() -> Result<(), crate::console::Report> {
    if psci::affinity_info(1) == psci::AFFINITY_OFF {
        return Ok(());
    }
    COMMAND.store(CMD_OFF, SeqCst);
    if !wait_until(2000, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
        return Err(text!(
            "vCPU 1 is not OFF (AFFINITY_INFO {}) and did not turn off when asked",
            psci::affinity_info(1)
        ));
    }
    COMMAND.store(0, SeqCst);
    Ok(())
}

/// Starts vCPU 1 counting and waits for it to report in.
fn start_counting(alt: bool) -> Result<(), crate::console::Report> {
    let entries = ENTRIES.load(SeqCst);
    RETURNED.store(0, SeqCst);
    COMMAND.store(0, SeqCst);
    let on = smp::start(1, worker, MODE_COUNT, alt);
    if on != psci::SUCCESS {
        return Err(text!("CPU_ON(1) returned {on}, want 0"));
    }
    if !wait_until(2000, || ENTRIES.load(SeqCst) > entries) {
        return Err(text!("vCPU 1 did not start within 2 s of CPU_ON (AFFINITY_INFO {})", psci::affinity_info(1)));
    }
    let c = COUNTER.load(SeqCst);
    if !wait_until(2000, || COUNTER.load(SeqCst) > c) {
        return Err(text!("vCPU 1 started but its counter does not move"));
    }
    Ok(())
}

pub fn version(_: &Ctx) -> Verdict {
    let hvc = psci::call(Conduit::Hvc, psci::PSCI_VERSION, 0, 0, 0);
    let smc = psci::call(Conduit::Smc, psci::PSCI_VERSION, 0, 0, 0);
    if w0(hvc) != psci::VERSION_1_1 as i64 || w0(smc) != psci::VERSION_1_1 as i64 {
        bad!("PSCI_VERSION: HVC 0x{hvc:x}, SMC 0x{smc:x}; want 0x10001 (1.1) from both");
    }
    good!("PSCI_VERSION 0x{hvc:x} through HVC and SMC")
}

/// Function numbers (low byte) that would stop, suspend or reset the caller or the VM.
const UNSAFE: [u64; 9] = [0x01, 0x02, 0x08, 0x09, 0x0B, 0x0C, 0x0E, 0x12, 0x15];

fn sweep(ctx: &Ctx, conduit: Conduit) -> Verdict {
    let mut calls = 0;
    for base in [0x8400_0000u64, 0xC400_0000] {
        let smc32 = base == 0x8400_0000;
        for number in (0..=0x1Fu64).filter(|n| !UNSAFE.contains(n)) {
            let id = base | number;
            let a1 = 0xFFFF_FFFF_FFFF_FF00 | number; // never a valid MPIDR or function ID
            let x0 = psci::call(conduit, id, a1, 0xDEAD_0000, 0xFFFF_FFFF_FFFF_FFFF);
            let r = if smc32 { w0(x0) } else { x0 as i64 };
            calls += 1;
            let ok = match number {
                0x00 => r == psci::VERSION_1_1 as i64 || (!smc32 && r == psci::NOT_SUPPORTED),
                0x03 | 0x04 => r == psci::INVALID_PARAMETERS,
                0x06 => (0..=2).contains(&r) || r == psci::NOT_SUPPORTED,
                0x0A => r == psci::NOT_SUPPORTED,
                0x16..=0x1F => r == psci::NOT_SUPPORTED,
                _ => r >= -9,
            };
            if !ok {
                bad!("{} 0x{id:x} (x1 0x{a1:x}) returned 0x{x0:x}", conduit.name());
            }
        }
    }
    if ctx.vcpus > 1 && psci::affinity_info(1) != psci::AFFINITY_OFF {
        bad!("vCPU 1 is no longer OFF after the sweep (AFFINITY_INFO {})", psci::affinity_info(1));
    }
    if w0(psci::call(conduit, psci::PSCI_VERSION, 0, 0, 0)) != psci::VERSION_1_1 as i64 {
        bad!("PSCI_VERSION no longer answers after the sweep");
    }
    good!("{calls} PSCI function IDs with garbage arguments through {}: all answered sanely", conduit.name())
}

pub fn sweep_hvc(ctx: &Ctx) -> Verdict {
    sweep(ctx, Conduit::Hvc)
}

pub fn sweep_smc(ctx: &Ctx) -> Verdict {
    sweep(ctx, Conduit::Smc)
}

pub fn smccc(_: &Ctx) -> Verdict {
    let version = w0(psci::call(Conduit::Hvc, psci::SMCCC_VERSION, 0, 0, 0));
    if version < 0x1_0000 {
        bad!("SMCCC_VERSION returned 0x{version:x}");
    }
    let checks: [(u64, u64, i64); 5] = [
        (0x8400_000A, psci::PSCI_VERSION, 0),            // PSCI_FEATURES(PSCI_VERSION)
        (0x8400_000A, psci::CPU_ON_64, 0),               // PSCI_FEATURES(CPU_ON)
        (0x8400_000A, 0x8400_001F, psci::NOT_SUPPORTED), // PSCI_FEATURES(unknown)
        (0x8400_000A, 0xC600_0001, psci::NOT_SUPPORTED), // PSCI_FEATURES(not PSCI)
        (0x8000_0001, 0xDEAD_BEEF, psci::NOT_SUPPORTED), // SMCCC_ARCH_FEATURES(garbage)
    ];
    for (id, arg, want) in checks {
        let got = w0(psci::call(Conduit::Hvc, id, arg, 0, 0));
        if got != want {
            bad!("0x{id:x}(0x{arg:x}) returned {got}, want {want}");
        }
    }
    // Calls whose answer may vary but must come back: ARCH_FEATURES of the
    // workarounds, the workaround calls themselves, SOC_ID.
    for (id, arg) in
        [(0x8000_0001, 0x8000_8000), (0x8000_0001, 0x8000_7FFF), (0x8000_8000, 0), (0x8000_7FFF, 1), (0x8000_0002, 0)]
    {
        let _ = psci::call(Conduit::Hvc, id, arg, 0, 0);
        let _ = psci::call(Conduit::Smc, id, arg, 0, 0);
    }
    good!("SMCCC_VERSION 0x{version:x}; PSCI_FEATURES and ARCH_FEATURES answer as specified")
}

pub fn random_ids(_: &Ctx) -> Verdict {
    let mut rng = Rng::new(0x5ECC_C0DE);
    let mut calls = 0;
    while calls < 200 {
        let mut id = rng.next() & 0xFFFF_FFFF;
        let owner = (id >> 24) & 0x3F;
        // Owners with real functions here: Arm architecture (0), standard
        // secure (4: PSCI), standard hypervisor (5), vendor hypervisor (6: hv-abi).
        if matches!(owner, 0 | 4 | 5 | 6) {
            continue;
        }
        if calls % 5 == 4 {
            id |= rng.next() << 32; // garbage above W0
        }
        let conduit = if calls % 2 == 0 { Conduit::Hvc } else { Conduit::Smc };
        let got = w0(psci::call(conduit, id, rng.next(), rng.next(), rng.next()));
        if got != psci::NOT_SUPPORTED {
            bad!("{} with unknown function ID 0x{id:x} returned {got}, want -1 (NOT_SUPPORTED)", conduit.name());
        }
        calls += 1;
    }
    good!("{calls} random function IDs (fast and yielding, other owners) through HVC and SMC: all NOT_SUPPORTED")
}

pub fn hvc_immediates(_: &Ctx) -> Verdict {
    let mut answers = [0i64; 4];
    let mut undefined = 0;
    for (i, answer) in answers.iter_mut().enumerate() {
        let mut x0 = psci::PSCI_VERSION;
        let (insn, fault) = match i {
            // SAFETY: HVC with a non-zero immediate, x0 = PSCI_VERSION (harmless
            // whatever the hypervisor makes of it); x1-x17 may be clobbered.
            0 => {
                probe_asm!("1: hvc #1"; inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
            }
            // SAFETY: as above.
            1 => {
                probe_asm!("1: hvc #0x100"; inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
            }
            // SAFETY: as above.
            2 => {
                probe_asm!("1: hvc #0xffff"; inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
            }
            // SAFETY: as above, SMC with a non-zero immediate.
            _ => {
                probe_asm!("1: smc #0x42"; inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
            }
        };
        match fault {
            None => *answer = w0(x0),
            Some(f) if f.ec() == ec::UNKNOWN && f.elr == insn => undefined += 1,
            Some(f) => bad!("call {i} with a non-zero immediate: {f}"),
        }
    }
    good!("hvc #1/#0x100/#0xffff, smc #0x42 with x0 = PSCI_VERSION: answers {answers:?}, {undefined} UNDEFINED")
}

pub fn bad_mpidr(ctx: &Ctx) -> Verdict {
    let redistributors = gic::redistributor_count(8);
    if redistributors != ctx.vcpus {
        bad!("{redistributors} redistributors (GICR_TYPER.Last) but AFFINITY_INFO says {} vCPU(s)", ctx.vcpus);
    }
    let entry = smp::entry_point(false);
    let mut n = 0;
    for mpidr in [ctx.vcpus, 0xFF, 0x100, 0x1_0000, 0xFF_0000_0000, 0x8000_00FF, u64::MAX, 0x0101] {
        smp::prepare(1, worker, MODE_COUNT);
        // SMC32/HVC32 take W1: only 32-bit MPIDRs mean the same there.
        let ids: &[u64] =
            if mpidr >> 32 == 0 || mpidr == u64::MAX { &[psci::CPU_ON_64, 0x8400_0003] } else { &[psci::CPU_ON_64] };
        for &id in ids {
            let got = if id == psci::CPU_ON_64 {
                psci::hvc(id, mpidr, entry, 0)
            } else {
                w0(psci::hvc(id, mpidr, entry, 0) as u64)
            };
            if got != psci::INVALID_PARAMETERS {
                bad!("CPU_ON (0x{id:x}) of MPIDR 0x{mpidr:x} returned {got}, want -2");
            }
        }
        let info = psci::affinity_info(mpidr);
        if info != psci::INVALID_PARAMETERS {
            bad!("AFFINITY_INFO of MPIDR 0x{mpidr:x} returned {info}, want -2");
        }
        n += 1;
    }
    good!("{n} bad MPIDRs: CPU_ON (32/64) and AFFINITY_INFO all INVALID_PARAMETERS; {redistributors} redistributor(s)")
}

pub fn bad_entry(ctx: &Ctx) -> Verdict {
    if ctx.vcpus < 2 {
        return good!("skipped (1 vCPU)");
    }
    ensure_off()?;
    let ram_end = ctx.env.ram_end();
    let entries = ENTRIES.load(SeqCst);
    let bad_entries = [0, 0x1000, ctx.env.ram_base - 4, ram_end, ram_end + 0x1000, UART_BASE, u64::MAX - 3, 1 << 47];
    for entry in bad_entries {
        smp::prepare(1, worker, MODE_COUNT);
        let got = psci::cpu_on(1, entry, smp::context_of(1));
        if got != psci::INVALID_ADDRESS {
            bad!("CPU_ON(1) with entry 0x{entry:x} (outside RAM) returned {got}, want -9");
        }
        let info = psci::affinity_info(1);
        if info != psci::AFFINITY_OFF {
            bad!("after CPU_ON with entry 0x{entry:x}, AFFINITY_INFO(1) = {info}, want OFF (1)");
        }
    }
    let got = w0(psci::hvc(0x8400_0003, 1, 0, 0) as u64);
    if got != psci::INVALID_ADDRESS {
        bad!("CPU_ON_32(1) with entry 0 returned {got}, want -9");
    }
    sysreg::spin_ms(20);
    if ENTRIES.load(SeqCst) != entries {
        bad!("vCPU 1 ran although every CPU_ON was refused");
    }
    good!("{} entry points outside RAM (64-bit) and one 32-bit: INVALID_ADDRESS, vCPU 1 stayed OFF", bad_entries.len())
}

pub fn already_on(_: &Ctx) -> Verdict {
    let entry = smp::entry_point(false);
    let a = psci::cpu_on(0, entry, 0);
    let b = w0(psci::hvc(0x8400_0003, 0, entry, 0) as u64);
    if a != psci::ALREADY_ON || b != psci::ALREADY_ON {
        bad!("CPU_ON of the calling vCPU 0: 64-bit {a}, 32-bit {b}; want -4 (ALREADY_ON)");
    }
    good!("CPU_ON of the caller (32 and 64-bit): ALREADY_ON")
}

pub fn start_secondary(ctx: &Ctx) -> Verdict {
    if ctx.vcpus < 2 {
        return good!("skipped (1 vCPU)");
    }
    ensure_off()?;
    start_counting(false)?;
    let (mpidr, context, alt) = (LAST_MPIDR.load(SeqCst), LAST_CONTEXT.load(SeqCst), LAST_ALT.load(SeqCst));
    let info = psci::affinity_info(1);
    let again = psci::cpu_on(1, smp::entry_point(false), smp::context_of(1));
    let result = (|| {
        if mpidr & 0xff != 1 || context != smp::context_of(1) || alt != 0 {
            bad!(
                "vCPU 1 started with MPIDR 0x{mpidr:x}, context 0x{context:x} (want 0x{:x}), alt {alt}",
                smp::context_of(1)
            );
        }
        if info != psci::AFFINITY_ON {
            bad!("AFFINITY_INFO(1) = {info} while it runs, want ON (0)");
        }
        if again != psci::ALREADY_ON {
            bad!("second CPU_ON(1) while it runs returned {again}, want -4 (ALREADY_ON)");
        }
        good!(
            "vCPU 1 started (MPIDR 0x{mpidr:x}, context id arrived in x0), AFFINITY_INFO ON, second CPU_ON ALREADY_ON"
        )
    })();
    COMMAND.store(CMD_OFF, SeqCst);
    if !wait_until(2000, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
        bad!("vCPU 1 did not turn off with CPU_OFF (AFFINITY_INFO {})", psci::affinity_info(1));
    }
    let returned = RETURNED.load(SeqCst);
    if returned != 0 {
        bad!("CPU_OFF returned to vCPU 1 (status {})", returned as u32 as i32);
    }
    result
}

pub fn off_with_sgi(ctx: &Ctx) -> Verdict {
    if ctx.vcpus < 2 {
        return good!("skipped (1 vCPU)");
    }
    ensure_off()?;
    gic::init_distributor(); // Group 1 and affinity routing on, for vCPU 1's SGI
    PENDING_SEEN.store(0, SeqCst);
    start_counting(false)?;
    COMMAND.store(CMD_OFF_WITH_SGI, SeqCst);
    if !wait_until(2000, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
        bad!(
            "vCPU 1 not OFF 2 s after its CPU_OFF with SGI {SGI} pending (AFFINITY_INFO {}, returned 0x{:x})",
            psci::affinity_info(1),
            RETURNED.load(SeqCst)
        );
    }
    let before = COUNTER.load(SeqCst);
    sysreg::spin_ms(50);
    gic::send_sgi(SGI, 1); // another SGI for the vCPU that is off
    sysreg::spin_ms(50);
    let after = COUNTER.load(SeqCst);
    let info = psci::affinity_info(1);
    let returned = RETURNED.load(SeqCst);
    let seen = PENDING_SEEN.load(SeqCst);
    if seen != u64::from(SGI) {
        bad!("vCPU 1 never saw its SGI {SGI} pending before CPU_OFF (ICC_HPPIR1_EL1 {seen}): nothing was tested");
    }
    if returned != 0 || after != before || info != psci::AFFINITY_OFF {
        bad!(
            "after CPU_OFF with SGI {SGI} pending (HPPIR {seen}): returned 0x{returned:x}, counter {before} -> {after}, AFFINITY_INFO {info}"
        );
    }
    let entries = ENTRIES.load(SeqCst);
    start_counting(true)?;
    let alt = LAST_ALT.load(SeqCst);
    ensure_off()?;
    if alt != 1 || ENTRIES.load(SeqCst) != entries + 1 {
        bad!(
            "the new CPU_ON did not start vCPU 1 once at the new entry (alt {alt}, entries {} -> {})",
            entries,
            ENTRIES.load(SeqCst)
        );
    }
    good!(
        "CPU_OFF with SGI {SGI} pending (HPPIR {seen}) did not return; OFF, counter stopped at {after}; restarted at the new entry"
    )
}

pub fn off_on_race(ctx: &Ctx) -> Verdict {
    const STARTS: u64 = 30;
    if ctx.vcpus < 2 {
        return good!("skipped (1 vCPU)");
    }
    ensure_off()?;
    RETURNED.store(0, SeqCst);
    smp::prepare(1, worker, MODE_OFF_AT_ONCE);
    let (entry, context) = (smp::entry_point(false), smp::context_of(1));
    let entries = ENTRIES.load(SeqCst);
    let (mut successes, mut already, mut pending, mut infos) = (0u64, 0u64, 0u64, [0u64; 3]);
    let deadline = sysreg::deadline_after(20);
    while successes < STARTS {
        match psci::cpu_on(1, entry, context) {
            psci::SUCCESS => successes += 1,
            psci::ALREADY_ON => already += 1,
            psci::ON_PENDING => pending += 1,
            other => bad!("CPU_ON(1) racing vCPU 1's CPU_OFF returned {other}"),
        }
        match psci::affinity_info(1) {
            state @ 0..=2 => infos[state as usize] += 1,
            other => bad!("AFFINITY_INFO(1) during the race returned {other}"),
        }
        if sysreg::past(deadline) {
            bad!("only {successes} of {STARTS} CPU_ONs succeeded in 20 s ({already} ALREADY_ON, {pending} ON_PENDING)");
        }
    }
    if !wait_until(2000, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
        bad!("vCPU 1 not OFF after the race");
    }
    let ran = ENTRIES.load(SeqCst) - entries;
    let returned = RETURNED.load(SeqCst);
    if ran != successes || returned != 0 {
        bad!("{successes} successful CPU_ONs but vCPU 1 entered {ran} times; CPU_OFF returned 0x{returned:x}");
    }
    good!(
        "{successes} starts, each entered exactly once; {already} ALREADY_ON, {pending} ON_PENDING; AFFINITY_INFO ON/OFF/PENDING {infos:?}"
    )
}
