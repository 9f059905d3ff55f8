//! `hostile` (arg 10): the guest attacks the hypervisor the way a hostile guest
//! would, in independent cases. Each prints `case <nn> <name>: ok <detail>` or
//! `case <nn> <name>: FAIL <detail>`; the scenario passes (`PASS hostile: N
//! cases`) only if every case is ok. An unexpected exception inside a case fails
//! that case only (see `boot::catch`); later cases still run.
//!
//! Classes (one file each): stage-2 aborts anywhere in the IPA space
//! (`aborts`), MMIO in every access form (`mmio`), vGIC garbage (`vgic`),
//! timers and WFx storms (`timers`), PSCI/SMCCC garbage and CPU_ON/CPU_OFF
//! races (`power`), hypercall garbage (`hypercalls`), trapped system registers
//! and semihosting (`sysregs`), EL0 in AArch64 and AArch32 (`el0`), code at the
//! top of the VA space (`top_va`), forged console lines (`forgery`).
//!
//! Run it with 2 vCPUs (`cpus = 0,1`) for the CPU_ON/CPU_OFF cases; with one they
//! report `ok skipped`. Memory: RAM after the image is filled with the FOREIGN
//! magic (for bystanders to look for), except the last 4 MiB: a 2 MiB scratch
//! area for EL1 test pages, and a 2 MiB block EL0 code runs in.

// Verdicts and exception records are returned by value (there is no heap): a
// few hundred bytes on the stack is what every report in this guest costs.
#![allow(clippy::result_large_err)]

use super::{Env, Outcome, fail, foreign};
use crate::boot;
use crate::console::{Report, println, text};
use crate::{mmu, mte, psci, sysreg};

mod aborts;
mod el0;
mod forgery;
mod hypercalls;
mod mmio;
mod power;
mod sysregs;
mod timers;
mod top_va;
mod vgic;

/// A case's verdict: `Ok(detail)` or `Err(detail)`.
pub type Verdict = Result<Report, Report>;

/// `return Err(text!(...))`.
macro_rules! bad {
    ($($arg:tt)*) => {
        return Err($crate::console::text!($($arg)*))
    };
}
pub(crate) use bad;

/// `Ok(text!(...))`.
macro_rules! good {
    ($($arg:tt)*) => {
        Ok($crate::console::text!($($arg)*))
    };
}
pub(crate) use good;

/// What the cases share.
pub struct Ctx {
    pub env: Env,
    /// MTE is on for this VM (RAM mapped Tagged).
    pub mte: bool,
    /// vCPUs in the VM (1 or 2 used).
    pub vcpus: u64,
    /// IPA size in bits (ID_AA64MMFR0_EL1.PARange, capped at 48 by stage 1).
    pub pa_bits: u32,
    /// 2 MiB of EL1 scratch pages (IPA = identity VA).
    pub scratch: u64,
    /// 2 MiB of RAM that EL0 code runs in, mapped at [`el0::EL0_VA`].
    pub el0_block: u64,
    /// RAM's stage-1 memory type.
    pub ram_mem: mmu::MemType,
}

/// Scratch pages, by offset in [`Ctx::scratch`].
pub mod scratch {
    /// The page mapped at the top of the VA space (`top_va`).
    pub const TOP_PAGE: u64 = 0x0000;
    /// Buffer checked across DC set/way operations (`sysregs`).
    pub const SETWAY: u64 = 0x1000;
    /// Tagged page for GMID_EL1 / LDGM / STGM (`sysregs`).
    pub const TAGS: u64 = 0x2000;
    /// Buffers for HV_WRITE and the FORGED lines.
    pub const TEXT: u64 = 0x3000;
}

type CaseFn = fn(&Ctx) -> Verdict;

struct Case {
    name: &'static str,
    run: CaseFn,
}

macro_rules! cases {
    ($($module:ident :: $func:ident => $name:literal),* $(,)?) => {
        &[$(Case { name: $name, run: $module::$func }),*]
    };
}

const CASES: &[Case] = cases![
    forgery::foreign_fill => "foreign-fill",
    aborts::ipa_zero => "s2-ipa-zero",
    aborts::past_ram_end => "s2-past-ram-end",
    aborts::between_devices => "s2-between-devices",
    aborts::shared_base => "s2-no-shared-region",
    aborts::high_ipas => "s2-high-ipas",
    aborts::ipa_limit => "s2-ipa-limit",
    aborts::storm => "s2-abort-storm",
    mmio::loads => "mmio-loads",
    mmio::sign_extending => "mmio-sign-extending",
    mmio::stores => "mmio-stores",
    mmio::acquire_release => "mmio-acquire-release",
    mmio::pairs => "mmio-ldp-stp",
    mmio::writeback => "mmio-writeback",
    mmio::exclusives => "mmio-exclusives",
    mmio::atomics => "mmio-lse-atomics",
    mmio::simd => "mmio-simd",
    mmio::dc_zva => "mmio-dc-zva",
    mmio::tags => "mmio-mte-tags",
    mmio::ifetch => "mmio-instruction-fetch",
    mmio::walk => "s1-walk-into-mmio",
    vgic::gicd_sweep => "gicd-write-every-offset",
    vgic::gicr_sweep => "gicr-write-every-offset",
    vgic::outside_frames => "gic-outside-frames",
    vgic::irouter => "gicd-irouter-bad-affinity",
    vgic::priorities => "gic-priorities",
    vgic::ispendr_storm => "gic-ispendr-storm",
    vgic::sgi_flood => "gic-sgi-flood",
    vgic::sgi_garbage => "gic-sgi-garbage-targets",
    vgic::timer_after => "gic-timer-after-garbage",
    vgic::waker_does_not_gate => "gicr-waker-asleep-still-delivers",
    timers::wfi_storm => "wfi-storm",
    timers::wfi_blocking_storm => "wfi-blocking-storm",
    timers::wfi_wake => "wfi-timer-wake",
    timers::wfe_storm => "wfe-storm",
    timers::wfit_past => "wfit-past-deadline",
    timers::wfit_near => "wfit-near-deadline",
    timers::wfet_near => "wfet-near-deadline",
    power::version => "psci-version",
    power::sweep_hvc => "psci-sweep-hvc",
    power::sweep_smc => "psci-sweep-smc",
    power::smccc => "smccc-calls",
    power::random_ids => "smccc-random-ids",
    power::hvc_immediates => "hvc-nonzero-immediates",
    power::bad_mpidr => "psci-bad-mpidr",
    power::bad_entry => "psci-cpu-on-bad-entry",
    power::already_on => "psci-cpu-on-already-on",
    power::start_secondary => "psci-cpu-on-secondary",
    power::off_with_sgi => "psci-cpu-off-sgi-pending",
    power::off_on_race => "psci-cpu-off-on-race",
    hypercalls::write_bad_ipa => "hv-write-bad-ipa",
    hypercalls::write_bad_len => "hv-write-bad-len",
    hypercalls::event_bad_index => "hv-event-bad-index",
    hypercalls::stat_garbage => "hv-stat-garbage",
    hypercalls::unknown_ids => "hv-unknown-ids",
    hypercalls::yield_garbage => "hv-yield-garbage",
    hypercalls::events_bad => "hv-events-0xbad",
    sysregs::id_sweep => "sysreg-id-sweep",
    sysregs::id_writes => "sysreg-id-writes-undef",
    sysregs::debug_raz_wi => "sysreg-debug-raz-wi",
    sysregs::pmu_raz_wi => "sysreg-pmu-raz-wi",
    sysregs::set_way => "sysreg-dc-set-way",
    sysregs::el2_regs => "sysreg-el2-undef",
    sysregs::impdef => "sysreg-impdef-undef",
    sysregs::gmid => "sysreg-gmid-ldgm",
    sysregs::mte_regs => "sysreg-mte-regs",
    sysregs::semihosting => "semihosting-undef",
    el0::a64_svc => "el0-a64-svc",
    el0::a64_abort => "el0-a64-data-abort",
    el0::a64_ifetch => "el0-a64-insn-abort",
    el0::a64_wfi => "el0-a64-wfi",
    el0::t32_wfi16 => "el0-t32-wfi16",
    el0::t32_wfi32 => "el0-t32-wfi32",
    el0::a32_wfi => "el0-a32-wfi",
    el0::t32_mmio => "el0-t32-mmio-ldr16",
    el0::t32_abort => "el0-t32-data-abort",
    el0::t32_undef => "el0-t32-undef",
    top_va::smc => "top-va-smc",
    top_va::mmio => "top-va-mmio-load",
    top_va::id_read => "top-va-id-register",
    top_va::wfi => "top-va-wfi",
    top_va::hvc => "top-va-hvc",
    top_va::abort => "top-va-abort",
    forgery::hv_write => "forged-lines-hv-write",
    forgery::pl011 => "forged-lines-pl011",
];

pub fn run(env: &Env) -> Outcome {
    let ctx = setup(env);
    println!(
        "hostile: {} cases; {} vCPU(s), {}-bit IPA, MTE {}, AArch32 EL0 {}, FEAT_WFxT {}, FEAT_LSE {}",
        CASES.len(),
        ctx.vcpus,
        ctx.pa_bits,
        if ctx.mte { "on" } else { "off" },
        sysreg::has_aarch32_el0(),
        sysreg::has_wfxt(),
        sysreg::has_lse()
    );
    let mut failed = 0usize;
    let mut first_failed = "";
    let mut ran = 0usize;
    for (i, case) in CASES.iter().enumerate() {
        if !selected(case.name) {
            continue;
        }
        ran += 1;
        let verdict = match boot::catch(|| (case.run)(&ctx)) {
            Ok(verdict) => verdict,
            Err(exception) => Err(text!("unexpected exception {exception}")),
        };
        match verdict {
            Ok(detail) => println!("case {:02} {}: ok {}", i + 1, case.name, detail),
            Err(detail) => {
                println!("case {:02} {}: FAIL {}", i + 1, case.name, detail);
                if failed == 0 {
                    first_failed = case.name;
                }
                failed += 1;
            }
        }
    }
    if failed != 0 {
        fail!("{failed} of {ran} cases failed (first: {first_failed})");
    }
    text!("{ran} cases")
}

/// Smoke tests on bare QEMU can run a subset: the cases whose name contains
/// `TEST_GUEST_SMOKE_CASE` (build time). Real runs always run every case.
fn selected(name: &str) -> bool {
    #[cfg(feature = "semihosting-console")]
    if let Some(filter) = option_env!("TEST_GUEST_SMOKE_CASE") {
        return name.contains(filter);
    }
    let _ = name;
    true
}

fn setup(env: &Env) -> Ctx {
    let mte = mte::available();
    let ram_mem = if mte { mmu::MemType::Tagged } else { mmu::MemType::Normal };
    let ram_end = env.ram_end();
    if env.ram_size < (8 << 20) || ram_end - (4 << 20) < env.image_end {
        fail!("needs at least 8 MiB of RAM and 4 MiB free after the image");
    }
    let parange = sysreg::id_aa64mmfr0_el1() & 0xf;
    let pa_bits = match parange {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        _ => 48,
    };
    let vcpus = match psci::affinity_info(1) {
        psci::INVALID_PARAMETERS => 1,
        _ => 2,
    };
    let ctx =
        Ctx { env: *env, mte, vcpus, pa_bits, scratch: ram_end - (4 << 20), el0_block: ram_end - (2 << 20), ram_mem };
    if let Err(error) = el0::map(&ctx) {
        fail!("mapping the EL0 windows failed: {error}");
    }
    ctx
}

/// RAM the FOREIGN fill covers: after the image, up to the scratch area.
pub fn fill_range(ctx: &Ctx) -> (u64, u64) {
    (ctx.env.image_end, ctx.scratch)
}

/// Fills [`fill_range`] with the FOREIGN magic.
pub fn fill_foreign(ctx: &Ctx) -> u64 {
    let (start, end) = fill_range(ctx);
    // SAFETY: free RAM after the image and below the scratch area; tag 0.
    unsafe { foreign::fill(start, end) };
    end - start
}

/// xorshift64*: garbage for the attacks (seeded, so runs are reproducible).
pub struct Rng(u64);

impl Rng {
    pub const fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
