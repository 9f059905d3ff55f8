//! Running a vCPU on this CPU: the EL2 controls for a VM, the guest's EL1 state,
//! entry and exit (`guest_entry.S`), and injecting exceptions into the guest.

use aarch64_cpu::registers::*;

// The pointer-authentication keys from `registers` shadow aarch64-cpu's (see there).
use super::registers::{
    APDAKEYHI_EL1, APDAKEYLO_EL1, APDBKEYHI_EL1, APDBKEYLO_EL1, APGAKEYHI_EL1, APGAKEYLO_EL1, APIAKEYHI_EL1,
    APIAKEYLO_EL1, APIBKEYHI_EL1, APIBKEYLO_EL1, CNTHP_CVAL_EL2, GCR_EL1, ID_AA64ISAR2_EL1, RGSR_EL1, TFSR_EL1,
    TFSRE0_EL1, VPIDR_EL2, cnthctl_el2, cptr_el2, par_el1,
};
use crate::guest_context::{El1ExceptionRegisters, El1VectorState, VirtualTimerRegister};
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
    let syndrome = ExitSyndrome { esr: ESR_EL2.get(), far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() };
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
    // SAFETY: no guest runs on this CPU now; clearing HCR_EL2.VM disables the
    // EL1&0 stage 2 and VTTBR_EL2 = 0 names no tables.
    unsafe {
        HCR_EL2.modify(HCR_EL2::VM::Disable);
        VTTBR_EL2.set(0);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
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
        let base = HCR_EL2::VM::Enable
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FMO::EnableVirtualFIQ
            + HCR_EL2::IMO::EnableVirtualIRQ
            + HCR_EL2::AMO::SET
            + HCR_EL2::TWI::SET
            + HCR_EL2::TID3::SET
            + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
            + HCR_EL2::TSW::SET
            + HCR_EL2::RW::EL1IsAarch64
            + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2
            + HCR_EL2::API::DisableTrapPointerAuthInstToEl2;
        let mte_controls = if mte { HCR_EL2::ATA::SET } else { HCR_EL2::TID5::SET };
        (base + mte_controls).value
    }

    /// Makes this VM the one the CPU translates for.
    ///
    /// # Safety
    /// `vttbr` must point at valid stage-2 tables that only map the VM's memory.
    pub unsafe fn load(&self) {
        // SAFETY: the caller guarantees the stage-2 tables are valid; the other
        // values only change how lower ELs run, and no guest runs now.
        unsafe {
            VTCR_EL2.set(self.vtcr);
            VTTBR_EL2.set(self.vttbr);
            HCR_EL2.set(self.hcr);
            core::arch::asm!("isb", options(nostack, preserves_flags));
        }
    }
}

/// Per-CPU EL2 setup that is the same for every guest: FP/SIMD untrapped, SVE
/// and SME trapped (their state is not switched), EL1 access to the physical
/// counter and timer, no virtual counter offset, debug untrapped.
pub fn init_el2_for_guests() {
    // CPTR_EL2 (non-VHE): FP/SIMD untrapped (TFP clear), SVE (TZ) and SME (TSM) trapped.
    let cptr = cptr_el2::RES1 + cptr_el2::TZ::SET + cptr_el2::TSM::SET;
    let midr = MIDR_EL1.get();
    // MDCR_EL2: trap the debug (TDA, TDOSA, TDRA) and PMU (TPM, TPMCR) registers, so
    // guests can neither see nor leave state in them (the hypervisor answers them as
    // RAZ/WI); HPMN = 0 and no profiling or trace buffers for guests.
    let mdcr =
        MDCR_EL2::TPMCR::SET + MDCR_EL2::TPM::SET + MDCR_EL2::TDA::SET + MDCR_EL2::TDOSA::SET + MDCR_EL2::TDRA::SET;
    // CNTHCTL_EL2: EL1 physical timer and counter untrapped. With FEAT_ECV the
    // virtual timer's registers trap, so a guest's write that lowers the timer's
    // output is seen at once and its pending interrupt withdrawn, as hardware
    // would (without ECV that is only seen at the guest's next exit).
    let mut cnthctl = CNTHCTL_EL2::EL1PCEN::SET + CNTHCTL_EL2::EL1PCTEN::SET;
    if has_ecv() {
        cnthctl += cnthctl_el2::EL1TVT::SET;
    }
    // SAFETY: these only affect what lower ELs may do; no guest runs yet.
    unsafe {
        MDCR_EL2.write(mdcr);
        CPTR_EL2.write(cptr);
        CNTHCTL_EL2.write(cnthctl);
        CNTVOFF_EL2.set(0);
        VPIDR_EL2.set(midr);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Sets the MPIDR the guest reads for the vCPU about to run.
pub fn set_virtual_mpidr(affinity: u64) {
    // Only changes what EL1 reads from MPIDR_EL1.
    VMPIDR_EL2.write(
        VMPIDR_EL2::RES1::SET
            + VMPIDR_EL2::U::MultiprocessorSystem
            + VMPIDR_EL2::Aff3.val(affinity >> 32)
            + VMPIDR_EL2::Aff2.val(affinity >> 16)
            + VMPIDR_EL2::Aff1.val(affinity >> 8)
            + VMPIDR_EL2::Aff0.val(affinity),
    );
}

/// Turns the EL1 virtual timer off when no vCPU owns it any more (its VM stopped):
/// a guest's armed, expired timer would otherwise keep its level-sensitive PPI
/// asserted forever.
pub fn disable_virtual_timer() {
    // SAFETY: CNTV_CTL_EL0 only controls the guest-owned virtual timer.
    unsafe {
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR + CNTV_CTL_EL0::IMASK::CLEAR);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Whether the live vCPU's virtual timer asserts its interrupt: enabled, not
/// masked, condition met (CNTV_CTL_EL0 ENABLE = 1, IMASK = 0, ISTATUS = 1).
pub fn virtual_timer_asserted() -> bool {
    let ctl = CNTV_CTL_EL0.extract();
    ctl.is_set(CNTV_CTL_EL0::ENABLE) && !ctl.is_set(CNTV_CTL_EL0::IMASK) && ctl.is_set(CNTV_CTL_EL0::ISTATUS)
}

/// The same for the live vCPU's EL1 physical timer (CNTP_CTL_EL0).
pub fn physical_timer_asserted() -> bool {
    let ctl = CNTP_CTL_EL0.extract();
    ctl.is_set(CNTP_CTL_EL0::ENABLE) && !ctl.is_set(CNTP_CTL_EL0::IMASK) && ctl.is_set(CNTP_CTL_EL0::ISTATUS)
}

/// Turns the EL1 physical timer off when no vCPU owns it any more (see
/// [`disable_virtual_timer`]).
pub fn disable_physical_timer() {
    // SAFETY: CNTP_CTL_EL0 only controls the guest-owned EL1 physical timer (EL2
    // uses CNTHP for its own deadlines).
    unsafe {
        CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR + CNTP_CTL_EL0::IMASK::CLEAR);
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
    ($( $field:ident : $reg:ident ),* $(,)?) => {
        /// A vCPU's EL1 system registers, saved when another vCPU takes its CPU.
        #[derive(Debug, Clone, Copy, Default)]
        pub struct El1Context { $( pub $field: u64, )* }

        impl El1Context {
            /// Reads the live EL1 registers into `self`.
            pub fn save(&mut self) {
                $( self.$field = $reg.get(); )*
            }

            /// Writes `self` into the live EL1 registers.
            pub fn restore(&self) {
                // EL1 registers only affect the guest, which is not running; the
                // values are the guest's own (or the architectural reset state).
                $( $reg.set(self.$field); )*
            }
        }
    };
}

el1_context! {
    sctlr: SCTLR_EL1, actlr: ACTLR_EL1, cpacr: CPACR_EL1, ttbr0: TTBR0_EL1, ttbr1: TTBR1_EL1,
    tcr: TCR_EL1, mair: MAIR_EL1, amair: AMAIR_EL1, vbar: VBAR_EL1, contextidr: CONTEXTIDR_EL1,
    tpidr_el0: TPIDR_EL0, tpidrro_el0: TPIDRRO_EL0, tpidr_el1: TPIDR_EL1, sp_el0: SP_EL0,
    sp_el1: SP_EL1, elr: ELR_EL1, spsr: SPSR_EL1, esr: ESR_EL1, far: FAR_EL1, afsr0: AFSR0_EL1,
    afsr1: AFSR1_EL1, par: PAR_EL1, cntkctl: CNTKCTL_EL1, csselr: CSSELR_EL1, mdscr: MDSCR_EL1,
    cntv_ctl: CNTV_CTL_EL0, cntv_cval: CNTV_CVAL_EL0, cntp_ctl: CNTP_CTL_EL0, cntp_cval: CNTP_CVAL_EL0,
}

macro_rules! mte_context {
    ($( $field:ident : $reg:ident ),* $(,)?) => {
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
                $( self.$field = $reg.get(); )*
            }

            /// Writes the live registers. Only on CPUs with MTE2.
            pub fn restore(&self) {
                // These registers only affect EL1/EL0 tag generation and checking
                // for the guest about to run.
                $( $reg.set(self.$field); )*
            }
        }
    };
}

mte_context! { gcr: GCR_EL1, rgsr: RGSR_EL1, tfsr: TFSR_EL1, tfsre0: TFSRE0_EL1 }

/// The live vCPU's EL1 state that decides where and how an exception is taken.
pub fn el1_vector_state() -> El1VectorState {
    El1VectorState { vbar: VBAR_EL1.get(), sctlr: SCTLR_EL1.get() }
}

/// Writes the live vCPU's EL1 exception registers, as taking an exception to EL1 would.
pub fn write_el1_exception_registers(registers: &El1ExceptionRegisters) {
    // Writing the guest's EL1 exception registers; the guest is not running.
    ELR_EL1.set(registers.elr);
    SPSR_EL1.set(registers.spsr);
    ESR_EL1.set(registers.esr);
    FAR_EL1.set(registers.far);
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
    let saved_par = PAR_EL1.get();
    // SAFETY: AT only performs a translation and writes PAR_EL1, restored below;
    // the VM's stage-2 controls are loaded (we are handling its exit).
    unsafe { core::arch::asm!("at s12e1r, {}", "isb", in(reg) va, options(nostack, preserves_flags)) };
    let par = PAR_EL1.extract();
    // Restoring the guest's own PAR_EL1.
    PAR_EL1.set(saved_par);
    if par.matches_all(PAR_EL1::F::TranslationAborted) {
        return None;
    }
    // PAR_EL1.PA is the page's address, bits 51:12.
    let pa = (par.read(par_el1::PA) << par_el1::PA.shift) | (va & 0xFFF);
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
                CNTHP_CVAL_EL2.set(at);
                CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::SET + CNTHP_CTL_EL2::IMASK::CLEAR);
            }
            None => CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::CLEAR + CNTHP_CTL_EL2::IMASK::CLEAR),
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
    ($( $field:ident : $reg:ident ),* $(,)?) => {
        /// A vCPU's pointer-authentication keys, switched with the vCPU (guests
        /// may use pointer authentication: HCR_EL2.API/APK are set).
        #[derive(Debug, Clone, Copy, Default)]
        pub struct PauthContext { $( pub $field: u64, )* }

        impl PauthContext {
            /// Reads the live keys. Only on CPUs with FEAT_PAuth.
            pub fn save(&mut self) {
                $( self.$field = $reg.get(); )*
            }

            /// Writes the live keys. Only on CPUs with FEAT_PAuth.
            pub fn restore(&self) {
                // The keys only affect pointer authentication at EL1/EL0 for the
                // guest about to run.
                $( $reg.set(self.$field); )*
            }
        }
    };
}

pauth_context! {
    ia_lo: APIAKEYLO_EL1, ia_hi: APIAKEYHI_EL1, ib_lo: APIBKEYLO_EL1, ib_hi: APIBKEYHI_EL1,
    da_lo: APDAKEYLO_EL1, da_hi: APDAKEYHI_EL1, db_lo: APDBKEYLO_EL1, db_hi: APDBKEYHI_EL1,
    ga_lo: APGAKEYLO_EL1, ga_hi: APGAKEYHI_EL1,
}

/// Whether the CPU implements pointer authentication (any of APA/API/GPA/GPI in
/// ID_AA64ISAR1_EL1, APA3/GPA3 in ID_AA64ISAR2_EL1): the key registers exist.
pub fn has_pointer_authentication() -> bool {
    let isar1 = ID_AA64ISAR1_EL1.extract();
    let isar2 = ID_AA64ISAR2_EL1.extract();
    let fields1 = [ID_AA64ISAR1_EL1::APA, ID_AA64ISAR1_EL1::API, ID_AA64ISAR1_EL1::GPA, ID_AA64ISAR1_EL1::GPI]
        .iter()
        .any(|&field| isar1.read(field) != 0);
    let fields2 = [ID_AA64ISAR2_EL1::GPA3, ID_AA64ISAR2_EL1::APA3].iter().any(|&field| isar2.read(field) != 0);
    fields1 || fields2
}

/// Whether the CPU implements FEAT_WFxT (ID_AA64ISAR2_EL1.WFxT = 2).
/// Whether the CPU implements FEAT_ECV (`ID_AA64MMFR0_EL1.ECV` >= 1), whose
/// `CNTHCTL_EL2.EL1TVT` traps the guest's virtual-timer registers.
pub fn has_ecv() -> bool {
    (ID_AA64MMFR0_EL1.get() >> 60) & 0xF >= 1
}

/// The live vCPU's EL1 virtual timer register `register`: reads it, or writes
/// `value` to it (for a trapped guest access).
pub fn virtual_timer_register(register: VirtualTimerRegister, value: Option<u64>) -> u64 {
    match (register, value) {
        (VirtualTimerRegister::Control, None) => CNTV_CTL_EL0.get(),
        (VirtualTimerRegister::CompareValue, None) => CNTV_CVAL_EL0.get(),
        (VirtualTimerRegister::TimerValue, None) => CNTV_TVAL_EL0.get(),
        // The guest's own timer: no effect on EL2 beyond its interrupt line.
        (VirtualTimerRegister::Control, Some(value)) => {
            CNTV_CTL_EL0.set(value & 0b11);
            0
        }
        (VirtualTimerRegister::CompareValue, Some(value)) => {
            CNTV_CVAL_EL0.set(value);
            0
        }
        (VirtualTimerRegister::TimerValue, Some(value)) => {
            CNTV_TVAL_EL0.set(value & 0xFFFF_FFFF);
            0
        }
    }
}

/// The live vCPU's TTBR0_EL1, TTBR1_EL1 and TCR_EL1.
pub fn el1_translation_registers() -> (u64, u64, u64) {
    (TTBR0_EL1.get(), TTBR1_EL1.get(), TCR_EL1.get())
}

pub fn has_wfxt() -> bool {
    ID_AA64ISAR2_EL1.read(ID_AA64ISAR2_EL1::WFxT) >= 2
}
