//! Accessors for the few system registers the guest reads or writes directly.
//!
//! Registers the assembler only knows with `+mte` are spelt with their generic
//! `S3_<op1>_C<n>_C<m>_<op2>` encodings.

/// Defines a function that reads a system register.
macro_rules! read_only {
    ($(#[$doc:meta])* $fn:ident, $reg:literal) => {
        $(#[$doc])*
        #[inline(always)]
        pub fn $fn() -> u64 {
            let value: u64;
            // SAFETY: reading this register has no side effects on memory or on
            // the rest of the system state; at worst it is UNDEFINED, which only
            // raises an exception that the EL1 vectors handle.
            unsafe {
                core::arch::asm!(
                    concat!("mrs {}, ", $reg),
                    out(reg) value,
                    options(nomem, nostack, preserves_flags),
                );
            }
            value
        }
    };
}

/// Defines a reader and a writer for a system register whose value only changes
/// how MTE instructions behave (no effect on memory safety).
macro_rules! read_write {
    ($(#[$doc:meta])* $get:ident, $set:ident, $reg:literal) => {
        read_only!($(#[$doc])* $get, $reg);

        $(#[$doc])*
        #[inline(always)]
        pub fn $set(value: u64) {
            // SAFETY: this register only controls tag generation or records tag
            // check faults; changing it cannot break memory safety. If it is
            // UNDEFINED the EL1 vectors handle the exception.
            unsafe {
                core::arch::asm!(
                    concat!("msr ", $reg, ", {}"),
                    "isb",
                    in(reg) value,
                    options(nostack, preserves_flags),
                );
            }
        }
    };
}

read_only!(
    /// Exception Syndrome Register (EL1).
    esr_el1, "esr_el1"
);
read_only!(
    /// Fault Address Register (EL1).
    far_el1, "far_el1"
);
read_only!(
    /// System Control Register (EL1).
    sctlr_el1, "sctlr_el1"
);
read_only!(
    /// AArch64 Processor Feature Register 1: MTE in bits [11:8].
    id_aa64pfr1_el1, "id_aa64pfr1_el1"
);
read_only!(
    /// AArch64 Memory Model Feature Register 0: PARange in bits [3:0].
    id_aa64mmfr0_el1, "id_aa64mmfr0_el1"
);
read_only!(
    /// Cache Type Register: DminLine in bits [19:16].
    ctr_el0, "ctr_el0"
);
read_only!(
    /// Virtual counter.
    cntvct_el0, "cntvct_el0"
);
read_only!(
    /// Counter frequency in Hz.
    cntfrq_el0, "cntfrq_el0"
);

read_write!(
    /// Tag Control Register: Exclude [15:0], RRND [16].
    gcr_el1, set_gcr_el1, "s3_0_c1_c0_6"
);
read_write!(
    /// Random Allocation Tag Seed Register: TAG [3:0], SEED [23:8].
    rgsr_el1, set_rgsr_el1, "s3_0_c1_c0_5"
);
read_write!(
    /// Tag Fault Status Register (EL1): TF0 [0], TF1 [1].
    tfsr_el1, set_tfsr_el1, "s3_0_c5_c6_0"
);
read_write!(
    /// Tag Fault Status Register (EL0): TF0 [0], TF1 [1].
    tfsre0_el1, set_tfsre0_el1, "s3_0_c5_c6_1"
);

/// The counter value `seconds` from now, for timeouts.
pub fn deadline_after(seconds: u64) -> u64 {
    cntvct_el0().saturating_add(cntfrq_el0().saturating_mul(seconds))
}

/// Whether the virtual counter has passed `deadline`.
pub fn past(deadline: u64) -> bool {
    cntvct_el0() >= deadline
}

read_only!(
    /// AArch64 Instruction Set Attribute Register 1: pointer authentication in
    /// APA [7:4], API [11:8], GPA [27:24], GPI [31:28].
    id_aa64isar1_el1, "id_aa64isar1_el1"
);

/// Whether pointer-authentication keys exist (FEAT_PAuth with QARMA or IMPDEF).
pub fn has_pointer_authentication() -> bool {
    let isar1 = id_aa64isar1_el1();
    [4, 8, 24, 28].iter().any(|&shift| (isar1 >> shift) & 0xF != 0)
}

/// APIAKeyLo_EL1, the low half of the instruction key A.
pub fn apiakeylo_el1() -> u64 {
    let value: u64;
    // SAFETY: reading a key register has no side effects (FEAT_PAuth checked by the caller).
    unsafe { core::arch::asm!("mrs {}, s3_0_c2_c1_0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Sets APIAKeyLo_EL1. The guest never enables pointer authentication
/// (SCTLR_EL1.EnIA stays 0), so the key only has to survive being switched.
pub fn set_apiakeylo_el1(value: u64) {
    // SAFETY: with SCTLR_EL1.EnIA clear the key affects no instruction this guest runs.
    unsafe { core::arch::asm!("msr s3_0_c2_c1_0, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

/// Lets EL1 use FP/SIMD registers (CPACR_EL1.FPEN = 0b11).
pub fn enable_fp() {
    // SAFETY: only stops FP/SIMD instructions from trapping; the guest is built
    // soft-float, so the compiler never uses those registers itself.
    unsafe {
        core::arch::asm!(
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 20)",
            "msr cpacr_el1, {t}",
            "isb",
            t = out(reg) _,
            options(nostack, preserves_flags),
        )
    };
}

/// D0, the low 64 bits of V0.
pub fn d0() -> u64 {
    let value: u64;
    // SAFETY: reads V0, which the soft-float compiled guest never uses otherwise.
    unsafe {
        core::arch::asm!(".arch_extension fp", "fmov {}, d0", out(reg) value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Sets D0 (see [`d0`]).
pub fn set_d0(value: u64) {
    // SAFETY: writes V0, which no compiled code of this guest uses (soft-float).
    unsafe {
        core::arch::asm!(".arch_extension fp", "fmov d0, {}", in(reg) value, options(nomem, nostack, preserves_flags))
    };
}

/// DBGBVR0_EL1, breakpoint value register 0 (the hypervisor traps debug registers
/// and answers them as read-as-zero, writes ignored).
pub fn dbgbvr0_el1() -> u64 {
    let value: u64;
    // SAFETY: reading a debug register has no side effects.
    unsafe { core::arch::asm!("mrs {}, s2_0_c0_c0_4", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Writes DBGBVR0_EL1 (see [`dbgbvr0_el1`]); no breakpoint is enabled.
pub fn set_dbgbvr0_el1(value: u64) {
    // SAFETY: a breakpoint value without an enabled control register does nothing.
    unsafe { core::arch::asm!("msr s2_0_c0_c0_4, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

read_only!(
    /// Multiprocessor Affinity Register: Aff0 [7:0] is the vCPU index.
    mpidr_el1, "mpidr_el1"
);
read_only!(
    /// AArch64 Processor Feature Register 0: EL0 [3:0] (2 = AArch32 too), SVE [35:32].
    id_aa64pfr0_el1, "id_aa64pfr0_el1"
);
read_only!(
    /// AArch64 Memory Model Feature Register 2: IDS [39:36] (FEAT_IDST).
    id_aa64mmfr2_el1, "s3_0_c0_c7_2"
);
read_only!(
    /// AArch64 Instruction Set Attribute Register 0: Atomic [23:20] (2 = FEAT_LSE).
    id_aa64isar0_el1, "id_aa64isar0_el1"
);
read_only!(
    /// AArch64 Instruction Set Attribute Register 2: WFxT [3:0] (2 = FEAT_WFxT).
    id_aa64isar2_el1, "s3_0_c0_c6_2"
);
read_only!(
    /// AArch64 Debug Feature Register 0: PMUVer [11:8], PMSVer [35:32].
    id_aa64dfr0_el1, "id_aa64dfr0_el1"
);
read_only!(
    /// Data Cache Zero ID: BS [3:0] (log2 words), DZP [4].
    dczid_el0, "dczid_el0"
);
read_only!(
    /// Translation Control Register (EL1).
    tcr_el1, "tcr_el1"
);
read_only!(
    /// Memory Attribute Indirection Register (EL1).
    mair_el1, "mair_el1"
);
read_only!(
    /// Translation table base 0 (EL1).
    ttbr0_el1, "ttbr0_el1"
);
read_only!(
    /// Translation table base 1 (EL1).
    ttbr1_el1, "ttbr1_el1"
);
read_only!(
    /// Architectural Feature Access Control Register (FP/SIMD enable).
    cpacr_el1, "cpacr_el1"
);

/// The vCPU index (MPIDR_EL1.Aff0).
pub fn cpu_index() -> u64 {
    mpidr_el1() & 0xff
}

/// Whether AArch32 is implemented at EL0 (ID_AA64PFR0_EL1.EL0 == 2).
pub fn has_aarch32_el0() -> bool {
    id_aa64pfr0_el1() & 0xf == 2
}

/// Whether FEAT_WFxT (WFET/WFIT) is implemented (ID_AA64ISAR2_EL1.WFxT == 2).
pub fn has_wfxt() -> bool {
    id_aa64isar2_el1() & 0xf >= 2
}

/// Whether FEAT_LSE atomics are implemented (ID_AA64ISAR0_EL1.Atomic >= 2).
pub fn has_lse() -> bool {
    (id_aa64isar0_el1() >> 20) & 0xf >= 2
}

/// Sets CNTV_CVAL_EL0 and CNTV_CTL_EL0 (the EL1 virtual timer).
pub fn set_virtual_timer(cval: u64, ctl: u64) {
    // SAFETY: the virtual timer only raises PPI 27, which this guest never takes
    // as an exception (PSTATE.I stays masked; it acknowledges it by polling).
    unsafe {
        core::arch::asm!(
            "msr cntv_cval_el0, {cval}",
            "msr cntv_ctl_el0, {ctl}",
            "isb",
            cval = in(reg) cval,
            ctl = in(reg) ctl,
            options(nostack, preserves_flags),
        )
    };
}

/// Sets CNTKCTL_EL1 (EL0 counter access and the event stream).
pub fn set_cntkctl_el1(value: u64) {
    // SAFETY: only controls EL0 access to the counters and the counter event
    // stream (which merely wakes WFE); no memory effect.
    unsafe { core::arch::asm!("msr cntkctl_el1, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

/// Counter ticks in `ms` milliseconds.
pub fn ms_to_ticks(ms: u64) -> u64 {
    cntfrq_el0().saturating_mul(ms) / 1000
}

/// `ticks` of the counter in microseconds.
pub fn ticks_to_us(ticks: u64) -> u64 {
    let freq = cntfrq_el0().max(1);
    ((u128::from(ticks) * 1_000_000) / u128::from(freq)) as u64
}

/// Spins for `ms` milliseconds of counter time (no exits).
pub fn spin_ms(ms: u64) {
    let end = cntvct_el0().saturating_add(ms_to_ticks(ms));
    while cntvct_el0() < end {
        core::hint::spin_loop();
    }
}

/// WFI once (the hypervisor traps it and blocks until an interrupt is pending).
pub fn wfi() {
    // SAFETY: WFI only waits; interrupts stay masked (PSTATE.I), so none is taken.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}
