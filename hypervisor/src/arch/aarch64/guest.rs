//! Running a vCPU on this CPU: the EL2 controls for a VM, the guest's EL1 state,
//! entry and exit (`guest_entry.S`), and injecting exceptions into the guest.

use super::registers::{read_sysreg, write_sysreg};
use crate::guest_context::{El1ExceptionRegisters, El1VectorState};
pub use crate::guest_context::{GuestRegisters, PSTATE_EL1H_MASKED, SCTLR_EL1_RESET};
use crate::mm::GuestVa;

core::arch::global_asm!(include_str!("guest_entry.S"));

unsafe extern "C" {
    fn __guest_run(registers: *mut GuestRegisters) -> u64;
}

/// Why `run` returned: which lower-EL vector the guest left through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitVector {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

/// The syndrome registers of the exit, read before anything else can overwrite them.
#[derive(Debug, Clone, Copy)]
pub struct ExitSyndrome {
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
}

/// Enters the guest with `registers` under `controls` and returns when it exits.
///
/// The VM's EL2 controls are written on every entry, so the stage-2 regime a
/// guest runs on can never be left over from another VM (a teardown, a TLB flush
/// for another VMID, a vCPU switch that was skipped).
///
/// # Safety
/// The vCPU's EL1 state must be loaded on this CPU, and `controls.vttbr` must
/// point at valid stage-2 tables that only map memory the VM owns.
pub unsafe fn run(controls: &VmControls, registers: &mut GuestRegisters) -> (ExitVector, ExitSyndrome) {
    // SAFETY: the caller guarantees the tables are valid and the EL1 state loaded.
    unsafe { controls.load() };
    // SAFETY: the caller loaded a complete guest context; `__guest_run` saves and
    // restores every callee-saved register and the stack, per the AAPCS64.
    let vector = unsafe { __guest_run(registers) };
    let syndrome =
        ExitSyndrome { esr: read_sysreg!("esr_el2"), far: read_sysreg!("far_el2"), hpfar: read_sysreg!("hpfar_el2") };
    let vector = match vector {
        8 => ExitVector::Synchronous,
        9 => ExitVector::Irq,
        10 => ExitVector::Fiq,
        _ => ExitVector::SError,
    };
    (vector, syndrome)
}

/// Turns stage 2 off and forgets the last VM's tables on this CPU (VTTBR = 0):
/// after a VM is torn down, nothing on this CPU can walk its (freed) tables,
/// not even speculatively. The next [`run`] loads a VM's controls again.
pub fn park_stage2() {
    let hcr = read_sysreg!("hcr_el2") & !hcr::VM;
    // SAFETY: no guest runs on this CPU now; clearing HCR_EL2.VM disables the
    // EL1&0 stage 2 and VTTBR_EL2 = 0 names no tables.
    unsafe {
        write_sysreg!("hcr_el2", hcr);
        write_sysreg!("vttbr_el2", 0);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// `HCR_EL2` bits the hypervisor uses.
pub mod hcr {
    pub const VM: u64 = 1 << 0;
    pub const SWIO: u64 = 1 << 1;
    pub const FMO: u64 = 1 << 3;
    pub const IMO: u64 = 1 << 4;
    pub const AMO: u64 = 1 << 5;
    pub const TWI: u64 = 1 << 13;
    pub const TID3: u64 = 1 << 18;
    pub const TSC: u64 = 1 << 19;
    pub const TSW: u64 = 1 << 22;
    pub const RW: u64 = 1 << 31;
    pub const APK: u64 = 1 << 40;
    pub const API: u64 = 1 << 41;
    pub const ATA: u64 = 1 << 56;
    pub const TID5: u64 = 1 << 58;
}

/// The EL2 registers that define a VM for the CPU running one of its vCPUs.
#[derive(Debug, Clone, Copy)]
pub struct VmControls {
    pub hcr: u64,
    pub vttbr: u64,
    pub vtcr: u64,
}

impl VmControls {
    /// HCR_EL2 for a VM: stage 2 on, AArch64 EL1, physical interrupts and SErrors
    /// to EL2, set/way cache maintenance and SMC trapped, ID registers trapped (so
    /// features can be hidden), WFI trapped (so an idle vCPU yields its CPU),
    /// pointer authentication untrapped. MTE VMs get tag access (ATA); others get
    /// GMID_EL1 trapped (TID5) and their MTE register accesses trap (ATA = 0).
    pub fn hcr_for(mte: bool) -> u64 {
        let base = hcr::VM
            | hcr::SWIO
            | hcr::FMO
            | hcr::IMO
            | hcr::AMO
            | hcr::TWI
            | hcr::TID3
            | hcr::TSC
            | hcr::TSW
            | hcr::RW
            | hcr::APK
            | hcr::API;
        if mte { base | hcr::ATA } else { base | hcr::TID5 }
    }

    /// Makes this VM the one the CPU translates for.
    ///
    /// # Safety
    /// `vttbr` must point at valid stage-2 tables that only map the VM's memory.
    pub unsafe fn load(&self) {
        // SAFETY: the caller guarantees the stage-2 tables are valid; the other
        // values only change how lower ELs run, and no guest runs now.
        unsafe {
            write_sysreg!("vtcr_el2", self.vtcr);
            write_sysreg!("vttbr_el2", self.vttbr);
            write_sysreg!("hcr_el2", self.hcr);
            core::arch::asm!("isb", options(nostack, preserves_flags));
        }
    }
}

/// Per-CPU EL2 setup that is the same for every guest: FP/SIMD untrapped, SVE
/// and SME trapped (their state is not switched), EL1 access to the physical
/// counter and timer, no virtual counter offset, debug untrapped.
pub fn init_el2_for_guests() {
    // CPTR_EL2 (non-VHE): RES1 bits 13, 9, 7:0; TZ (bit 8) traps SVE; TSM (bit 12) traps SME.
    let cptr: u64 = 0x22FF | (1 << 8) | (1 << 12);
    let midr = read_sysreg!("midr_el1");
    // MDCR_EL2: trap the debug (TDA, TDOSA, TDRA) and PMU (TPM, TPMCR) registers, so
    // guests can neither see nor leave state in them (the hypervisor answers them as
    // RAZ/WI); HPMN = 0 and no profiling or trace buffers for guests.
    let mdcr: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11);
    // SAFETY: these only affect what lower ELs may do; no guest runs yet.
    unsafe {
        write_sysreg!("mdcr_el2", mdcr);
        write_sysreg!("cptr_el2", cptr);
        write_sysreg!("cnthctl_el2", 0b11);
        write_sysreg!("cntvoff_el2", 0);
        write_sysreg!("vpidr_el2", midr);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Sets the MPIDR the guest reads for the vCPU about to run.
pub fn set_virtual_mpidr(affinity: u64) {
    // Bit 31 is RES1; keep U (bit 30) clear: multiprocessor system.
    // SAFETY: only changes what EL1 reads from MPIDR_EL1.
    unsafe { write_sysreg!("vmpidr_el2", (1 << 31) | affinity) };
}

/// Turns the EL1 virtual timer off when no vCPU owns it any more (its VM stopped):
/// a guest's armed, expired timer would otherwise keep its level-sensitive PPI
/// asserted forever.
pub fn disable_virtual_timer() {
    // SAFETY: CNTV_CTL_EL0 only controls the guest-owned virtual timer.
    unsafe {
        write_sysreg!("cntv_ctl_el0", 0);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Whether the live vCPU's virtual timer asserts its interrupt: enabled, not
/// masked, condition met (CNTV_CTL_EL0 ENABLE = 1, IMASK = 0, ISTATUS = 1).
pub fn virtual_timer_asserted() -> bool {
    read_sysreg!("cntv_ctl_el0") & 0b111 == 0b101
}

/// The same for the live vCPU's EL1 physical timer (CNTP_CTL_EL0).
pub fn physical_timer_asserted() -> bool {
    read_sysreg!("cntp_ctl_el0") & 0b111 == 0b101
}

/// Turns the EL1 physical timer off when no vCPU owns it any more (see
/// [`disable_virtual_timer`]).
pub fn disable_physical_timer() {
    // SAFETY: CNTP_CTL_EL0 only controls the guest-owned EL1 physical timer (EL2
    // uses CNTHP for its own deadlines).
    unsafe {
        write_sysreg!("cntp_ctl_el0", 0);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Invalidates every stage-1 and stage-2 TLB entry of the VM whose VTTBR is
/// loaded, on all CPUs of the inner-shareable domain.
pub fn invalidate_vm_tlbs() {
    // SAFETY: TLB maintenance for the current VMID only drops cached translations.
    unsafe { core::arch::asm!("dsb ishst", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Makes newly written stage-2 descriptors visible to table walks on all CPUs.
pub fn publish_stage2_updates() {
    // SAFETY: a barrier only orders memory accesses.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
}

macro_rules! el1_context {
    ($( $field:ident : $reg:literal ),* $(,)?) => {
        /// A vCPU's EL1 system registers, saved when another vCPU takes its CPU.
        #[derive(Debug, Clone, Copy, Default)]
        pub struct El1Context { $( pub $field: u64, )* }

        impl El1Context {
            /// Reads the live EL1 registers into `self`.
            pub fn save(&mut self) {
                $( self.$field = read_sysreg!($reg); )*
            }

            /// Writes `self` into the live EL1 registers.
            pub fn restore(&self) {
                // SAFETY: EL1 registers only affect the guest, which is not running;
                // the values are the guest's own (or the architectural reset state).
                unsafe { $( write_sysreg!($reg, self.$field); )* }
            }
        }
    };
}

el1_context! {
    sctlr: "sctlr_el1", actlr: "actlr_el1", cpacr: "cpacr_el1", ttbr0: "ttbr0_el1", ttbr1: "ttbr1_el1",
    tcr: "tcr_el1", mair: "mair_el1", amair: "amair_el1", vbar: "vbar_el1", contextidr: "contextidr_el1",
    tpidr_el0: "tpidr_el0", tpidrro_el0: "tpidrro_el0", tpidr_el1: "tpidr_el1", sp_el0: "sp_el0",
    sp_el1: "sp_el1", elr: "elr_el1", spsr: "spsr_el1", esr: "esr_el1", far: "far_el1", afsr0: "afsr0_el1",
    afsr1: "afsr1_el1", par: "par_el1", cntkctl: "cntkctl_el1", csselr: "csselr_el1", mdscr: "mdscr_el1",
    cntv_ctl: "cntv_ctl_el0", cntv_cval: "cntv_cval_el0", cntp_ctl: "cntp_ctl_el0", cntp_cval: "cntp_cval_el0",
}

macro_rules! mte_context {
    ($( $field:ident : $reg:literal ),* $(,)?) => {
        /// A vCPU's MTE registers (`GCR_EL1`, `RGSR_EL1`, `TFSR_EL1`, `TFSRE0_EL1`),
        /// switched with the vCPU so one guest's tag state (including pending
        /// asynchronous tag-check faults) never reaches another.
        #[derive(Debug, Clone, Copy, Default)]
        pub struct MteContext { $( pub $field: u64, )* }

        impl MteContext {
            /// Reads the live registers. Only on CPUs with MTE2.
            pub fn save(&mut self) {
                // Asynchronous tag-check faults of the outgoing guest must be
                // recorded in TFSR*_EL1 before they are read.
                // SAFETY: barriers only order memory accesses and context.
                unsafe { core::arch::asm!("dsb nsh", "isb", options(nostack, preserves_flags)) };
                $( self.$field = read_sysreg!($reg); )*
            }

            /// Writes the live registers. Only on CPUs with MTE2.
            pub fn restore(&self) {
                // SAFETY: these registers only affect EL1/EL0 tag generation and
                // checking for the guest about to run.
                unsafe { $( write_sysreg!($reg, self.$field); )* }
            }
        }
    };
}

mte_context! { gcr: "s3_0_c1_c0_6", rgsr: "s3_0_c1_c0_5", tfsr: "s3_0_c5_c6_0", tfsre0: "s3_0_c5_c6_1" }

/// The live vCPU's EL1 state that decides where and how an exception is taken.
pub fn el1_vector_state() -> El1VectorState {
    El1VectorState { vbar: read_sysreg!("vbar_el1"), sctlr: read_sysreg!("sctlr_el1") }
}

/// Writes the live vCPU's EL1 exception registers, as taking an exception to EL1 would.
pub fn write_el1_exception_registers(registers: &El1ExceptionRegisters) {
    // SAFETY: writing the guest's EL1 exception registers; the guest is not running.
    unsafe {
        write_sysreg!("elr_el1", registers.elr);
        write_sysreg!("spsr_el1", registers.spsr);
        write_sysreg!("esr_el1", registers.esr);
        write_sysreg!("far_el1", registers.far);
    }
}

/// Reads the 32-bit instruction at guest virtual address `va` of the vCPU whose
/// EL1 state is live, through its stage 1 and the VM's stage 2 (`AT S12E1R`; the
/// guest's PAR_EL1 is preserved). `None` if the address does not translate to
/// guest memory (or is not 4-byte aligned).
pub fn read_guest_instruction(va: GuestVa) -> Option<u32> {
    let va = va.as_u64();
    if !va.is_multiple_of(4) {
        return None;
    }
    let saved_par = read_sysreg!("par_el1");
    // SAFETY: AT only performs a translation and writes PAR_EL1, restored below;
    // the VM's stage-2 controls are loaded (we are handling its exit).
    unsafe { core::arch::asm!("at s12e1r, {}", "isb", in(reg) va, options(nostack, preserves_flags)) };
    let par = read_sysreg!("par_el1");
    // SAFETY: restoring the guest's own PAR_EL1.
    unsafe { write_sysreg!("par_el1", saved_par) };
    if par & 1 != 0 {
        return None;
    }
    let pa = (par & 0x000F_FFFF_FFFF_F000) | (va & 0xFFF);
    // SAFETY: the stage-2 tables only map the VM's own RAM and shared regions,
    // which are identity-mapped at EL2; the read is aligned and stays in the page.
    Some(unsafe { core::ptr::read_volatile(pa as *const u32) })
}

/// Arms this CPU's EL2 physical timer (CNTHP) to fire at physical counter value
/// `deadline`, or turns it off: it wakes the CPU for vCPUs that are switched out
/// or waiting with a deadline.
pub fn set_wakeup(deadline: Option<u64>) {
    // SAFETY: the EL2 timer belongs to the hypervisor; guests cannot see it.
    unsafe {
        match deadline {
            Some(at) => {
                write_sysreg!("cnthp_cval_el2", at);
                write_sysreg!("cnthp_ctl_el2", 1);
            }
            None => write_sysreg!("cnthp_ctl_el2", 0),
        }
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// A vCPU's FP/SIMD registers (V0-V31, FPCR, FPSR), switched with the vCPU. The
/// hypervisor is built soft-float and never touches them, so they only change
/// hands when another vCPU takes the CPU.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
pub struct FpContext {
    pub v: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

impl FpContext {
    /// Reads the live FP/SIMD registers.
    pub fn save(&mut self) {
        let base = self.v.as_mut_ptr();
        let (fpcr, fpsr): (u64, u64);
        // SAFETY: stores V0-V31 into `self.v` (512 bytes, 16-byte aligned) and reads
        // FPCR/FPSR; CPTR_EL2.TFP is clear, so EL2 may access them.
        unsafe {
            core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "stp q0, q1, [{base}, #0]",
            "stp q2, q3, [{base}, #32]",
            "stp q4, q5, [{base}, #64]",
            "stp q6, q7, [{base}, #96]",
            "stp q8, q9, [{base}, #128]",
            "stp q10, q11, [{base}, #160]",
            "stp q12, q13, [{base}, #192]",
            "stp q14, q15, [{base}, #224]",
            "stp q16, q17, [{base}, #256]",
            "stp q18, q19, [{base}, #288]",
            "stp q20, q21, [{base}, #320]",
            "stp q22, q23, [{base}, #352]",
            "stp q24, q25, [{base}, #384]",
            "stp q26, q27, [{base}, #416]",
            "stp q28, q29, [{base}, #448]",
            "stp q30, q31, [{base}, #480]",
            "mrs {fpcr}, fpcr",
            "mrs {fpsr}, fpsr",
            base = in(reg) base, fpcr = out(reg) fpcr, fpsr = out(reg) fpsr,
            options(nostack, preserves_flags));
        }
        self.fpcr = fpcr;
        self.fpsr = fpsr;
    }

    /// Writes the live FP/SIMD registers.
    pub fn restore(&self) {
        let base = self.v.as_ptr();
        // SAFETY: loads V0-V31 from `self.v` and writes FPCR/FPSR: state only the
        // guest about to run uses (the hypervisor is soft-float).
        unsafe {
            core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "ldp q0, q1, [{base}, #0]",
            "ldp q2, q3, [{base}, #32]",
            "ldp q4, q5, [{base}, #64]",
            "ldp q6, q7, [{base}, #96]",
            "ldp q8, q9, [{base}, #128]",
            "ldp q10, q11, [{base}, #160]",
            "ldp q12, q13, [{base}, #192]",
            "ldp q14, q15, [{base}, #224]",
            "ldp q16, q17, [{base}, #256]",
            "ldp q18, q19, [{base}, #288]",
            "ldp q20, q21, [{base}, #320]",
            "ldp q22, q23, [{base}, #352]",
            "ldp q24, q25, [{base}, #384]",
            "ldp q26, q27, [{base}, #416]",
            "ldp q28, q29, [{base}, #448]",
            "ldp q30, q31, [{base}, #480]",
            "msr fpcr, {fpcr}",
            "msr fpsr, {fpsr}",
            base = in(reg) base, fpcr = in(reg) self.fpcr, fpsr = in(reg) self.fpsr,
            options(nostack, preserves_flags));
        }
    }
}

macro_rules! pauth_context {
    ($( $field:ident : $reg:literal ),* $(,)?) => {
        /// A vCPU's pointer-authentication keys, switched with the vCPU (guests
        /// may use pointer authentication: HCR_EL2.API/APK are set).
        #[derive(Debug, Clone, Copy, Default)]
        pub struct PauthContext { $( pub $field: u64, )* }

        impl PauthContext {
            /// Reads the live keys. Only on CPUs with FEAT_PAuth.
            pub fn save(&mut self) {
                $( self.$field = read_sysreg!($reg); )*
            }

            /// Writes the live keys. Only on CPUs with FEAT_PAuth.
            pub fn restore(&self) {
                // SAFETY: the keys only affect pointer authentication at EL1/EL0
                // for the guest about to run.
                unsafe { $( write_sysreg!($reg, self.$field); )* }
            }
        }
    };
}

pauth_context! {
    ia_lo: "s3_0_c2_c1_0", ia_hi: "s3_0_c2_c1_1", ib_lo: "s3_0_c2_c1_2", ib_hi: "s3_0_c2_c1_3",
    da_lo: "s3_0_c2_c2_0", da_hi: "s3_0_c2_c2_1", db_lo: "s3_0_c2_c2_2", db_hi: "s3_0_c2_c2_3",
    ga_lo: "s3_0_c2_c3_0", ga_hi: "s3_0_c2_c3_1",
}

/// Whether the CPU implements pointer authentication (any of APA/API/GPA/GPI in
/// ID_AA64ISAR1_EL1, APA3/GPA3 in ID_AA64ISAR2_EL1): the key registers exist.
pub fn has_pointer_authentication() -> bool {
    let isar1 = read_sysreg!("id_aa64isar1_el1");
    let isar2 = read_sysreg!("s3_0_c0_c6_2");
    let fields1 = [4, 8, 24, 28].iter().any(|&shift| (isar1 >> shift) & 0xF != 0);
    let fields2 = [8, 12].iter().any(|&shift| (isar2 >> shift) & 0xF != 0);
    fields1 || fields2
}

/// Whether the CPU implements FEAT_WFxT (ID_AA64ISAR2_EL1.WFxT, bits 3:0, = 2).
pub fn has_wfxt() -> bool {
    read_sysreg!("s3_0_c0_c6_2") & 0xF >= 2
}
