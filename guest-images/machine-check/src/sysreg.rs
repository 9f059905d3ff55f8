//! System registers the cases read or write that `aarch64-cpu` does not name, or
//! that need their generic `S<op0>_<op1>_C<n>_C<m>_<op2>` spelling (the
//! assembler knows them only with target features the guest is not built with),
//! and the PSTATE bits an exception entry sets.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, ID_AA64MMFR1_EL1, ID_AA64MMFR2_EL1, ID_AA64PFR1_EL1, Readable};

/// SPSR.SS: software step pending.
pub const SPSR_SS: u64 = 1 << 21;

/// Reads a system register by name (`mrs`). Every use names a register that
/// exists on the CPUs the guest runs on, or sits inside `expect_fault`.
macro_rules! mrs {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reading a system register has no memory effects; one that is
        // UNDEFINED raises an exception the vectors handle.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nostack, preserves_flags)) };
        value
    }};
}
pub(crate) use mrs;

/// Writes a system register by name (`msr`, then `isb`). Only for registers that
/// control interrupts, timers, debug events, counters or PSTATE bits: none of
/// them changes memory a Rust object lives in.
macro_rules! msr {
    ($reg:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: see the macro: the registers written have no memory effects.
        unsafe {
            core::arch::asm!(concat!("msr ", $reg, ", {}"), "isb", in(reg) value, options(nostack, preserves_flags))
        };
    }};
}
pub(crate) use msr;

pub fn esr_el1() -> u64 {
    ESR_EL1.get()
}

pub fn far_el1() -> u64 {
    FAR_EL1.get()
}

/// The PSTATE bits an exception entry sets that the `exception-entry` case
/// checks; `None` where the CPU (as its ID registers say) lacks the feature.
/// DIT is left out: the architecture keeps it on exception entry, bare QEMU 10
/// clears it, so bare QEMU is no reference for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryState {
    pub pan: Option<bool>,
    pub uao: Option<bool>,
    pub ssbs: Option<bool>,
    pub tco: Option<bool>,
}

/// Which PSTATE bits can be read with MRS, from the ID registers (set at boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PstateFeatures {
    pub pan: bool,
    pub uao: bool,
    /// FEAT_SSBS2: MRS/MSR SSBS.
    pub ssbs: bool,
    /// FEAT_MTE: MRS/MSR TCO.
    pub tco: bool,
}

static FEATURES: AtomicU64 = AtomicU64::new(0);

impl PstateFeatures {
    /// Reads the ID registers (before any exception handler needs the answer).
    pub fn detect() -> Self {
        let mmfr1 = ID_AA64MMFR1_EL1.get();
        let mmfr2 = ID_AA64MMFR2_EL1.get();
        let pfr1 = ID_AA64PFR1_EL1.get();
        let features = Self {
            pan: (mmfr1 >> 20) & 0xf != 0,
            uao: (mmfr2 >> 4) & 0xf != 0,
            ssbs: (pfr1 >> 4) & 0xf >= 2,
            tco: (pfr1 >> 8) & 0xf != 0,
        };
        let bits = [features.pan, features.uao, features.ssbs, features.tco]
            .iter()
            .enumerate()
            .fold(0, |bits, (i, &present)| bits | (u64::from(present) << i));
        FEATURES.store(bits | 1 << 63, Ordering::SeqCst);
        features
    }

    /// What [`detect`](Self::detect) found.
    pub fn get() -> Self {
        let bits = FEATURES.load(Ordering::SeqCst);
        assert!(bits & 1 << 63 != 0, "PstateFeatures::detect runs at boot");
        let has = |i: u32| bits & (1 << i) != 0;
        Self { pan: has(0), uao: has(1), ssbs: has(2), tco: has(3) }
    }
}

impl EntryState {
    /// The bits as they are now (in an exception handler: as the entry set them).
    pub fn read() -> Self {
        let features = PstateFeatures::get();
        let bit = |present: bool, value: u64, bit: u32| present.then_some(value & (1 << bit) != 0);
        Self {
            pan: bit(features.pan, if features.pan { mrs!("s3_0_c4_c2_3") } else { 0 }, 22),
            uao: bit(features.uao, if features.uao { mrs!("s3_0_c4_c2_4") } else { 0 }, 23),
            ssbs: bit(features.ssbs, if features.ssbs { mrs!("s3_3_c4_c2_6") } else { 0 }, 12),
            tco: bit(features.tco, if features.tco { mrs!("s3_3_c4_c2_7") } else { 0 }, 25),
        }
    }

    /// Sets each present bit (PAN, UAO, SSBS, TCO).
    pub fn set_all(pan: bool, uao: bool, ssbs: bool, tco: bool) {
        let features = PstateFeatures::get();
        let at = |value: bool, bit: u32| u64::from(value) << bit;
        if features.pan {
            msr!("s3_0_c4_c2_3", at(pan, 22));
        }
        if features.uao {
            msr!("s3_0_c4_c2_4", at(uao, 23));
        }
        if features.ssbs {
            msr!("s3_3_c4_c2_6", at(ssbs, 12));
        }
        if features.tco {
            msr!("s3_3_c4_c2_7", at(tco, 25));
        }
    }

    /// Packs the state into a word (two bits per field: present, value).
    pub fn bits(self) -> u64 {
        [self.pan, self.uao, self.ssbs, self.tco].iter().enumerate().fold(0, |bits, (i, field)| {
            bits | match field {
                None => 0,
                Some(value) => (0b10 | u64::from(*value)) << (2 * i),
            }
        })
    }

    pub fn from_bits(bits: u64) -> Self {
        let field = |i: u32| match (bits >> (2 * i)) & 0b11 {
            0b10 => Some(false),
            0b11 => Some(true),
            _ => None,
        };
        Self { pan: field(0), uao: field(1), ssbs: field(2), tco: field(3) }
    }
}

impl core::fmt::Display for EntryState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = ["PAN", "UAO", "SSBS", "TCO"];
        let fields = [self.pan, self.uao, self.ssbs, self.tco];
        for (i, (name, field)) in names.iter().zip(fields).enumerate() {
            let separator = if i == 0 { "" } else { " " };
            match field {
                None => write!(f, "{separator}{name} -")?,
                Some(value) => write!(f, "{separator}{name} {}", u8::from(value))?,
            }
        }
        Ok(())
    }
}

/// Turns off the debug events the `debug-regs` case sets up (breakpoint 0,
/// watchpoint 0, software step), so the instruction that raised one can run.
pub fn disable_debug_events() {
    msr!("dbgbcr0_el1", 0);
    msr!("dbgwcr0_el1", 0);
    let mdscr = mrs!("mdscr_el1");
    msr!("mdscr_el1", mdscr & !1);
}

/// Masks (`true`) or unmasks IRQs (PSTATE.I).
pub fn mask_irqs(masked: bool) {
    // SAFETY: PSTATE.I only decides whether interrupts are taken; the vectors
    // handle them either way.
    unsafe {
        match masked {
            true => asm!("msr daifset, #2", options(nostack, preserves_flags)),
            false => asm!("msr daifclr, #2", "isb", options(nostack, preserves_flags)),
        }
    }
}

/// Unmasks (`true`) or masks debug exceptions (PSTATE.D).
pub fn enable_debug_exceptions(enabled: bool) {
    // SAFETY: PSTATE.D only decides whether debug exceptions are taken; the
    // vectors handle them.
    unsafe {
        match enabled {
            true => asm!("msr daifclr, #8", "isb", options(nostack, preserves_flags)),
            false => asm!("msr daifset, #8", "isb", options(nostack, preserves_flags)),
        }
    }
}

/// Waits for an interrupt.
pub fn wfi() {
    // SAFETY: WFI only waits.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}
