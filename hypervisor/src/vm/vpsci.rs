//! The PSCI 1.1 interface a guest VM sees (Arm DEN 0022, "Arm Power State
//! Coordination Interface"), reached through `HVC #0` or a trapped `SMC #0`,
//! plus the SMCCC discovery calls Linux makes through the same conduit
//! (Arm DEN 0028, "SMC Calling Convention").
//!
//! [`VmPsci`] is a pure state machine: it keeps the power state of each vCPU
//! and answers each call with a [`PsciOutcome`] the runtime carries out
//! (writing `x0`, starting or stopping a vCPU, waiting, powering off or
//! resetting the VM). Nothing here touches hardware, so every path is
//! host-tested.
//!
//! vCPU `i` has the MPIDR affinity `Aff0 = i` (Aff1..Aff3 zero), which is also
//! the `reg` of its node in the guest device tree; a VM has at most
//! [`MAX_VCPUS`] of them.
//!
//! What is offered, and why:
//!
//! | function | answer |
//! | --- | --- |
//! | `PSCI_VERSION` | 1.1 |
//! | `CPU_SUSPEND` (32/64) | a `power_state` with reserved bits set is INVALID_PARAMETERS; any other is run as standby: the vCPU waits like `WFI`, then SUCCESS |
//! | `CPU_OFF` | the caller stops |
//! | `CPU_ON` (32/64) | the target is ON at once (as KVM: a second `CPU_ON` is ALREADY_ON, never ON_PENDING) and starts at the entry point with `x0 = context_id` |
//! | `AFFINITY_INFO` (32/64) | ON / OFF, affinity level 0 only |
//! | `MIGRATE_INFO_TYPE` | 2: no Trusted OS needs migrating |
//! | `SYSTEM_OFF`, `SYSTEM_RESET` | the VM powers off / restarts |
//! | `PSCI_FEATURES` | 0 for every function above (and for `SMCCC_VERSION`), else NOT_SUPPORTED |
//! | `SMCCC_VERSION` | 1.1 |
//! | `SMCCC_ARCH_FEATURES` | NOT_SUPPORTED for everything, the workarounds included (see [`call`](VmPsci::call)) |
//!
//! Everything else (MIGRATE, MIGRATE_INFO_UP_CPU, SYSTEM_SUSPEND, SYSTEM_RESET2,
//! MEM_PROTECT, ...) answers NOT_SUPPORTED, as DEN 0022 allows for optional
//! functions; DEN 0028 gives the same answer for an unknown function ID.

use alloc::vec;
use alloc::vec::Vec;

use hv_abi::machine::MAX_VCPUS;

pub use crate::psci::{
    AFFINITY_INFO_32, AFFINITY_INFO_64, ALREADY_ON, CPU_OFF, CPU_ON_32, CPU_ON_64, CPU_SUSPEND_32, CPU_SUSPEND_64,
    DENIED, DISABLED, INTERNAL_FAILURE, INVALID_ADDRESS, INVALID_PARAMETERS, MIGRATE_INFO_TYPE, NOT_PRESENT,
    NOT_SUPPORTED, ON_PENDING, PSCI_FEATURES, PSCI_VERSION, SMCCC_ARCH_FEATURES, SMCCC_ARCH_WORKAROUND_1,
    SMCCC_ARCH_WORKAROUND_2, SMCCC_ARCH_WORKAROUND_3, SMCCC_VERSION, SUCCESS, SYSTEM_OFF, SYSTEM_RESET,
};

/// What `PSCI_VERSION` returns: major 1 (bits `[30:16]`), minor 1 (bits `[15:0]`).
pub const PSCI_VERSION_1_1: i64 = 0x0001_0001;
/// What `SMCCC_VERSION` returns: SMCCC 1.1, same encoding.
pub const SMCCC_VERSION_1_1: i64 = 0x0001_0001;
/// What `MIGRATE_INFO_TYPE` returns: "Trusted OS is either not present or does
/// not require migration" (DEN 0022, MIGRATE_INFO_TYPE). The guest has no
/// Trusted OS at all, so MIGRATE and MIGRATE_INFO_UP_CPU are not offered.
pub const MIGRATE_INFO_TYPE_NOT_REQUIRED: i64 = 2;
/// The `PSCI_FEATURES` answer for `CPU_SUSPEND`: bit 1 = 0 is the original
/// `power_state` format, bit 0 = 0 means OS-initiated mode is not supported
/// (DEN 0022, PSCI_FEATURES, "feature flags for CPU_SUSPEND").
pub const CPU_SUSPEND_FEATURE_FLAGS: i64 = 0;

/// `AFFINITY_INFO` results (DEN 0022, AFFINITY_INFO). ON_PENDING (2) is never
/// answered: a `CPU_ON` makes its target ON at once.
pub const AFFINITY_ON: i64 = 0;
pub const AFFINITY_OFF: i64 = 1;

/// Reserved bits of the original `power_state` format (DEN 0022, CPU_SUSPEND):
/// `[31:26]` and `[23:17]` (StateID is `[15:0]`, StateType `[16]`,
/// PowerLevel `[25:24]`).
const POWER_STATE_RESERVED: u64 = 0xFC00_0000 | 0x00FE_0000;

/// A vCPU's power state as PSCI reports it (DEN 0022, AFFINITY_INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Not running; `CPU_ON` may start it.
    Off,
    /// Running (or waiting in `WFI`/`CPU_SUSPEND`, which is still on).
    On,
}

/// What the runtime must do to complete a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciOutcome {
    /// Write this to the caller's `x0` (`value as u64`: negative codes are
    /// sign-extended, as KVM does; 32-bit callers only look at `w0`) and resume it.
    Return(i64),
    /// `CPU_ON` accepted: the caller gets SUCCESS in `x0` and resumes; the
    /// target, now [`PowerState::On`] (as KVM reports it), must be started at
    /// EL1h with the MMU and caches off, `PC = entry` and `x0 = context_id`
    /// (DEN 0022, CPU_ON) before it runs anything else.
    StartVcpu { target: usize, entry: u64, context_id: u64 },
    /// `CPU_OFF` accepted: the caller is now Off and must not run again until a
    /// later `CPU_ON` starts it afresh (`CPU_OFF` does not return on success).
    /// It may have been the last running vCPU: see [`VmPsci::any_running`].
    StopCallingVcpu,
    /// `CPU_SUSPEND`: run it like `WFI` (return when an interrupt is pending for
    /// the vCPU, or spuriously), then write SUCCESS to `x0`.
    Suspend,
    /// `SYSTEM_OFF`: the VM is finished; the call does not return.
    SystemOff,
    /// `SYSTEM_RESET`: restart the VM from its initial state (calling
    /// [`VmPsci::reset`]); the call does not return.
    SystemReset,
}

impl PsciOutcome {
    /// The value the calling vCPU finds in `x0` when it resumes, or `None` when
    /// the call does not return to it. For [`Suspend`](Self::Suspend) this is the
    /// value to write once the wait is over.
    pub fn caller_x0(self) -> Option<u64> {
        match self {
            Self::Return(value) => Some(value as u64),
            Self::StartVcpu { .. } | Self::Suspend => Some(SUCCESS as u64),
            Self::StopCallingVcpu | Self::SystemOff | Self::SystemReset => None,
        }
    }
}

/// The PSCI view of one VM: the power state of each of its vCPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPsci {
    states: Vec<PowerState>,
}

impl VmPsci {
    /// A VM with `vcpus` vCPUs, vCPU 0 On (the runtime enters it at the kernel
    /// entry point) and the others Off until the guest starts them.
    ///
    /// # Panics
    ///
    /// If `vcpus` is 0 or more than [`MAX_VCPUS`]: the VM configuration is
    /// validated before any VM is built, so that is a hypervisor bug.
    pub fn new(vcpus: usize) -> Self {
        assert!((1..=MAX_VCPUS).contains(&vcpus), "a VM needs 1..={MAX_VCPUS} vCPUs, not {vcpus}");
        let mut states = vec![PowerState::Off; vcpus];
        states[0] = PowerState::On;
        Self { states }
    }

    /// The number of vCPUs.
    pub fn vcpus(&self) -> usize {
        self.states.len()
    }

    /// vCPU `vcpu`'s power state, `None` if there is no such vCPU.
    pub fn state(&self, vcpu: usize) -> Option<PowerState> {
        self.states.get(vcpu).copied()
    }

    /// The MPIDR affinity (PSCI `target_cpu` value) of vCPU `vcpu`: Aff0 = index.
    /// The runtime's `VMPIDR_EL2` is this plus the RES1 bit 31.
    pub fn affinity(vcpu: usize) -> u64 {
        vcpu as u64
    }

    /// The vCPU a PSCI `target_cpu` / `target_affinity` names, if any.
    ///
    /// The argument carries Aff3 `[39:32]`, Aff2 `[23:16]`, Aff1 `[15:8]` and
    /// Aff0 `[7:0]`; DEN 0022 (CPU_ON) requires every other bit, MPIDR's U and
    /// MT bits included, to be zero. Our vCPUs have Aff1..Aff3 = 0, so a valid
    /// name is just a vCPU index: any other bit set names no vCPU.
    pub fn vcpu_of(&self, affinity: u64) -> Option<usize> {
        usize::try_from(affinity).ok().filter(|index| *index < self.states.len())
    }

    /// Whether any vCPU is On. After the last one's `CPU_OFF` this
    /// is false: nothing is left that could `CPU_ON` another, so the VM can
    /// never run again (DEN 0022 allows the last CPU to power off; it is the
    /// guest's way of stopping without `SYSTEM_OFF`). The runtime decides
    /// whether that ends the VM.
    pub fn any_running(&self) -> bool {
        self.states.iter().any(|state| *state != PowerState::Off)
    }

    /// The power-on state, for `SYSTEM_RESET`: vCPU 0 On, every other Off.
    pub fn reset(&mut self) {
        self.states.fill(PowerState::Off);
        self.states[0] = PowerState::On;
    }

    /// Handles one SMCCC call from vCPU `caller`: `function` is `w0`, `args`
    /// are `x1..x3`, `guest_ram` is the VM's RAM as `(base IPA, size)`, where
    /// a `CPU_ON` entry point must lie.
    ///
    /// The caller is running, so it is marked On whatever the runtime told us
    /// before (a vCPU can make a call before the runtime reports it started).
    /// A `caller` that is not a vCPU of this VM gets INTERNAL_FAILURE.
    ///
    /// SMC32 functions (`0x84..`) take 32-bit arguments: DEN 0028 says the
    /// upper halves of `x1..x3` are ignored, so they are dropped here before
    /// any check.
    ///
    /// `SMCCC_ARCH_FEATURES` answers NOT_SUPPORTED even for
    /// `SMCCC_ARCH_WORKAROUND_1/2/3` (DEN 0028, "Arm Architecture Calls").
    /// SUCCESS would promise that calling the workaround performs the
    /// mitigation (a branch-predictor invalidation for 1, toggling the
    /// speculative-store-bypass mitigation for 2, clearing branch history for
    /// 3); this hypervisor does not do that at EL2, nor forward it to the
    /// firmware. The other defined answer, "not required" (1 for
    /// WORKAROUND_1/3), is a claim about the physical CPU that it has not
    /// checked. NOT_SUPPORTED is the honest answer: Linux then relies on its
    /// own knowledge of the CPU (its MIDR lists and in-kernel mitigations
    /// such as the BHB loop or PSTATE.SSBS) and reports "Vulnerable" only
    /// where it knows no better.
    pub fn call(&mut self, caller: usize, function: u32, args: [u64; 3], guest_ram: (u64, u64)) -> PsciOutcome {
        let Some(state) = self.states.get_mut(caller) else {
            return PsciOutcome::Return(INTERNAL_FAILURE);
        };
        *state = PowerState::On;

        // Bit 30 of the function ID selects the SMC64 convention (DEN 0028).
        let args = if function & (1 << 30) == 0 { args.map(|arg| arg & 0xFFFF_FFFF) } else { args };

        let result = match function {
            PSCI_VERSION => PSCI_VERSION_1_1,
            PSCI_FEATURES => features(args[0] as u32),
            CPU_SUSPEND_32 | CPU_SUSPEND_64 if args[0] & 0xFFFF_FFFF & POWER_STATE_RESERVED != 0 => INVALID_PARAMETERS,
            CPU_SUSPEND_32 | CPU_SUSPEND_64 => return PsciOutcome::Suspend,
            CPU_OFF => {
                self.states[caller] = PowerState::Off;
                return PsciOutcome::StopCallingVcpu;
            }
            CPU_ON_32 | CPU_ON_64 => return self.cpu_on(args, guest_ram),
            AFFINITY_INFO_32 | AFFINITY_INFO_64 => self.affinity_info(args[0], args[1]),
            MIGRATE_INFO_TYPE => MIGRATE_INFO_TYPE_NOT_REQUIRED,
            SYSTEM_OFF => return PsciOutcome::SystemOff,
            SYSTEM_RESET => return PsciOutcome::SystemReset,
            SMCCC_VERSION => SMCCC_VERSION_1_1,
            SMCCC_ARCH_FEATURES => NOT_SUPPORTED,
            _ => NOT_SUPPORTED,
        };
        PsciOutcome::Return(result)
    }

    /// DEN 0022, CPU_ON: `target_cpu`, `entry_point_address`, `context_id`.
    /// Checks run in the order of Arm's reference implementation (TF-A's
    /// `psci_cpu_on`): the target, then the entry point, then the target's
    /// state.
    fn cpu_on(&mut self, [target, entry, context_id]: [u64; 3], (base, size): (u64, u64)) -> PsciOutcome {
        let Some(index) = self.vcpu_of(target) else {
            return PsciOutcome::Return(INVALID_PARAMETERS);
        };
        // The entry point is where the target executes its first A64
        // instruction: it must be 4-byte aligned and inside the guest's RAM
        // (anything else would fault at once, DEN 0022 says INVALID_ADDRESS).
        let in_ram = entry.checked_sub(base).is_some_and(|offset| offset < size);
        if !in_ram || !entry.is_multiple_of(4) {
            return PsciOutcome::Return(INVALID_ADDRESS);
        }
        match self.states[index] {
            PowerState::On => PsciOutcome::Return(ALREADY_ON),
            PowerState::Off => {
                self.states[index] = PowerState::On;
                PsciOutcome::StartVcpu { target: index, entry, context_id }
            }
        }
    }

    /// DEN 0022, AFFINITY_INFO: `target_affinity`, `lowest_affinity_level`.
    /// Since PSCI 1.0 only level 0 (a single core) is mandatory; higher levels
    /// (clusters) are not offered, and the spec's answer to them is
    /// INVALID_PARAMETERS.
    fn affinity_info(&self, target: u64, lowest_level: u64) -> i64 {
        if lowest_level != 0 {
            return INVALID_PARAMETERS;
        }
        match self.vcpu_of(target).map(|index| self.states[index]) {
            None => INVALID_PARAMETERS,
            Some(PowerState::On) => AFFINITY_ON,
            Some(PowerState::Off) => AFFINITY_OFF,
        }
    }
}

/// DEN 0022, PSCI_FEATURES: 0 (or CPU_SUSPEND's feature flags) for every
/// function offered, NOT_SUPPORTED otherwise. `SMCCC_VERSION` is included
/// because DEN 0028 makes PSCI_FEATURES the way to discover it: Linux asks
/// before it calls `SMCCC_VERSION`, and without SMCCC 1.1 it never asks
/// `SMCCC_ARCH_FEATURES` anything.
fn features(function: u32) -> i64 {
    match function {
        CPU_SUSPEND_32 | CPU_SUSPEND_64 => CPU_SUSPEND_FEATURE_FLAGS,
        PSCI_VERSION | PSCI_FEATURES | CPU_OFF | CPU_ON_32 | CPU_ON_64 | AFFINITY_INFO_32 | AFFINITY_INFO_64
        | MIGRATE_INFO_TYPE | SYSTEM_OFF | SYSTEM_RESET | SMCCC_VERSION => SUCCESS,
        _ => NOT_SUPPORTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: (u64, u64) = (0x4000_0000, 0x1000_0000);
    const ENTRY: u64 = 0x4008_0000;

    fn ret(value: i64) -> PsciOutcome {
        PsciOutcome::Return(value)
    }

    /// A call from vCPU 0 with the test VM's RAM.
    fn call0(psci: &mut VmPsci, function: u32, args: [u64; 3]) -> PsciOutcome {
        psci.call(0, function, args, RAM)
    }

    #[test]
    fn initial_state() {
        let psci = VmPsci::new(4);
        assert_eq!(psci.vcpus(), 4);
        assert_eq!(psci.state(0), Some(PowerState::On));
        for vcpu in 1..4 {
            assert_eq!(psci.state(vcpu), Some(PowerState::Off));
        }
        assert_eq!(psci.state(4), None);
        assert!(psci.any_running());
        assert_eq!(VmPsci::affinity(3), 3);
    }

    #[test]
    #[should_panic]
    fn no_vcpus_is_a_bug() {
        let _ = VmPsci::new(0);
    }

    #[test]
    #[should_panic]
    fn too_many_vcpus_is_a_bug() {
        let _ = VmPsci::new(MAX_VCPUS + 1);
    }

    #[test]
    fn versions() {
        let mut psci = VmPsci::new(1);
        assert_eq!(call0(&mut psci, PSCI_VERSION, [0; 3]), ret(0x0001_0001));
        assert_eq!(call0(&mut psci, SMCCC_VERSION, [0; 3]), ret(0x10001));
        // Arguments are ignored.
        assert_eq!(call0(&mut psci, PSCI_VERSION, [u64::MAX; 3]), ret(0x0001_0001));
        // There is no SMC64 PSCI_VERSION.
        assert_eq!(call0(&mut psci, 0xC400_0000, [0; 3]), ret(-1));
    }

    #[test]
    fn psci_features() {
        let mut psci = VmPsci::new(2);
        let supported = [
            PSCI_VERSION,
            CPU_OFF,
            CPU_ON_32,
            CPU_ON_64,
            AFFINITY_INFO_32,
            AFFINITY_INFO_64,
            MIGRATE_INFO_TYPE,
            SYSTEM_OFF,
            SYSTEM_RESET,
            PSCI_FEATURES,
            SMCCC_VERSION,
        ];
        for function in supported {
            assert_eq!(call0(&mut psci, PSCI_FEATURES, [function.into(), 0, 0]), ret(0), "{function:#x}");
        }
        // CPU_SUSPEND: feature flags 0 = original power_state format, no OS-initiated mode.
        assert_eq!(call0(&mut psci, PSCI_FEATURES, [CPU_SUSPEND_32.into(), 0, 0]), ret(0));
        assert_eq!(call0(&mut psci, PSCI_FEATURES, [CPU_SUSPEND_64.into(), 0, 0]), ret(0));
        let unsupported = [
            0x8400_0005u32, // MIGRATE
            0xC400_0005,    // MIGRATE (64)
            0x8400_0007,    // MIGRATE_INFO_UP_CPU
            0xC400_0007,
            0x8400_000E, // SYSTEM_SUSPEND
            0xC400_000E,
            0x8400_0012, // SYSTEM_RESET2
            0x8400_0013, // MEM_PROTECT
            0xC400_0000, // no SMC64 PSCI_VERSION
            SMCCC_ARCH_FEATURES,
            SMCCC_ARCH_WORKAROUND_1,
            0xDEAD_BEEF,
        ];
        for function in unsupported {
            assert_eq!(call0(&mut psci, PSCI_FEATURES, [function.into(), 0, 0]), ret(-1), "{function:#x}");
        }
        // The queried ID is a 32-bit argument: upper bits of x1 are ignored.
        assert_eq!(call0(&mut psci, PSCI_FEATURES, [0xFFFF_FFFF_0000_0000 | u64::from(CPU_ON_64), 0, 0]), ret(0));
        // Asking changes nothing.
        assert_eq!(psci.state(1), Some(PowerState::Off));
    }

    #[test]
    fn smccc_arch_features_offers_no_workaround() {
        let mut psci = VmPsci::new(1);
        for id in [SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2, SMCCC_ARCH_WORKAROUND_3] {
            assert_eq!(call0(&mut psci, SMCCC_ARCH_FEATURES, [id.into(), 0, 0]), ret(NOT_SUPPORTED));
        }
        for id in [SMCCC_VERSION, SMCCC_ARCH_FEATURES, 0x8000_0002, PSCI_VERSION, 0] {
            assert_eq!(call0(&mut psci, SMCCC_ARCH_FEATURES, [id.into(), 0, 0]), ret(-1));
        }
        // Calling a workaround anyway is an unknown function.
        assert_eq!(call0(&mut psci, SMCCC_ARCH_WORKAROUND_1, [0; 3]), ret(-1));
    }

    #[test]
    fn unknown_functions_are_not_supported() {
        let mut psci = VmPsci::new(2);
        for function in [0x8400_0005, 0x8400_0007, 0x8400_000E, 0x8400_00FF, 0xC400_0002, 0xC600_0000, 0x0, 0xFFFF_FFFF]
        {
            assert_eq!(call0(&mut psci, function, [1, ENTRY, 0]), ret(NOT_SUPPORTED), "{function:#x}");
        }
        assert_eq!(psci.state(1), Some(PowerState::Off));
    }

    #[test]
    fn migrate_info_type() {
        let mut psci = VmPsci::new(1);
        assert_eq!(call0(&mut psci, MIGRATE_INFO_TYPE, [0; 3]), ret(2));
    }

    #[test]
    fn cpu_on_lifecycle() {
        let mut psci = VmPsci::new(2);
        let affinity = |psci: &mut VmPsci| call0(psci, AFFINITY_INFO_64, [1, 0, 0]);
        assert_eq!(affinity(&mut psci), ret(AFFINITY_OFF));

        let start = PsciOutcome::StartVcpu { target: 1, entry: ENTRY, context_id: 0xC0FFEE };
        assert_eq!(call0(&mut psci, CPU_ON_64, [1, ENTRY, 0xC0FFEE]), start);
        assert_eq!(start.caller_x0(), Some(0));
        // ON at once, as KVM answers: never ON_PENDING.
        assert_eq!(psci.state(1), Some(PowerState::On));
        assert_eq!(affinity(&mut psci), ret(AFFINITY_ON));
        assert_eq!(call0(&mut psci, CPU_ON_64, [1, ENTRY, 0]), ret(ALREADY_ON));

        assert_eq!(psci.call(1, CPU_OFF, [0; 3], RAM), PsciOutcome::StopCallingVcpu);
        assert_eq!(PsciOutcome::StopCallingVcpu.caller_x0(), None);
        assert_eq!(psci.state(1), Some(PowerState::Off));
        assert_eq!(affinity(&mut psci), ret(AFFINITY_OFF));

        // Started again, with a new entry point and context.
        assert_eq!(
            call0(&mut psci, CPU_ON_64, [1, ENTRY + 4, 7]),
            PsciOutcome::StartVcpu { target: 1, entry: ENTRY + 4, context_id: 7 }
        );
        assert_eq!(affinity(&mut psci), ret(AFFINITY_ON));
    }

    #[test]
    fn cpu_on_invalid_targets() {
        let mut psci = VmPsci::new(4);
        for target in [
            4,             // no such vCPU
            0xFF,          // no such vCPU
            0x100,         // Aff1 = 1
            0x1_0000,      // Aff2 = 1
            0x1_0000_0000, // Aff3 = 1
            0x8000_0001,   // MPIDR bit 31 (RES1 in MPIDR, must be 0 here)
            0x4000_0001,   // U bit
            0x100_0000,    // MT bit
            1 << 40,       // above Aff3
            u64::MAX,
        ] {
            assert_eq!(call0(&mut psci, CPU_ON_64, [target, ENTRY, 0]), ret(INVALID_PARAMETERS), "{target:#x}");
        }
        // The caller itself is already on.
        assert_eq!(call0(&mut psci, CPU_ON_64, [0, ENTRY, 0]), ret(ALREADY_ON));
        for vcpu in 1..4 {
            assert_eq!(psci.state(vcpu), Some(PowerState::Off));
        }
    }

    #[test]
    fn cpu_on_invalid_entry_points() {
        let mut psci = VmPsci::new(2);
        let (base, size) = RAM;
        for entry in [0, base - 4, base + size, base + size + 4, ENTRY + 1, ENTRY + 2, ENTRY + 3, u64::MAX - 3] {
            assert_eq!(call0(&mut psci, CPU_ON_64, [1, entry, 0]), ret(INVALID_ADDRESS), "{entry:#x}");
        }
        assert_eq!(psci.state(1), Some(PowerState::Off));
        // The first and last instructions of RAM are fine.
        assert!(matches!(
            call0(&mut psci, CPU_ON_64, [1, base, 0]),
            PsciOutcome::StartVcpu { entry, .. } if entry == base
        ));
        let mut psci = VmPsci::new(2);
        assert!(matches!(
            call0(&mut psci, CPU_ON_64, [1, base + size - 4, 0]),
            PsciOutcome::StartVcpu { entry, .. } if entry == base + size - 4
        ));
        // No RAM: nowhere to start.
        let mut psci = VmPsci::new(2);
        assert_eq!(psci.call(0, CPU_ON_64, [1, 0, 0], (0, 0)), ret(INVALID_ADDRESS));
    }

    #[test]
    fn cpu_on_check_order() {
        let mut psci = VmPsci::new(2);
        // Bad target and bad entry: the target is checked first.
        assert_eq!(call0(&mut psci, CPU_ON_64, [9, 1, 0]), ret(INVALID_PARAMETERS));
        // Target already on and bad entry: the entry point is checked before the state.
        assert_eq!(call0(&mut psci, CPU_ON_64, [0, 1, 0]), ret(INVALID_ADDRESS));
    }

    #[test]
    fn cpu_on_32_truncates_arguments() {
        let mut psci = VmPsci::new(2);
        let high = 0xABCD_0000_0000_0000;
        assert_eq!(
            call0(&mut psci, CPU_ON_32, [high | 1, high | ENTRY, high | 0x1234]),
            PsciOutcome::StartVcpu { target: 1, entry: ENTRY, context_id: 0x1234 }
        );
        // The SMC64 variant uses all 64 bits, so the same values are invalid.
        let mut psci = VmPsci::new(2);
        assert_eq!(call0(&mut psci, CPU_ON_64, [high | 1, ENTRY, 0]), ret(INVALID_PARAMETERS));
        assert_eq!(call0(&mut psci, CPU_ON_64, [1, high | ENTRY, 0]), ret(INVALID_ADDRESS));
        assert_eq!(
            call0(&mut psci, CPU_ON_64, [1, ENTRY, high | 0x1234]),
            PsciOutcome::StartVcpu { target: 1, entry: ENTRY, context_id: high | 0x1234 }
        );
        // A 32-bit entry point cannot reach RAM above 4 GiB.
        let mut psci = VmPsci::new(2);
        let high_ram = (0x8_0000_0000, 0x1000_0000);
        assert_eq!(psci.call(0, CPU_ON_32, [1, 0x8_0000_0000, 0], high_ram), ret(INVALID_ADDRESS));
    }

    #[test]
    fn affinity_info() {
        let mut psci = VmPsci::new(3);
        for function in [AFFINITY_INFO_32, AFFINITY_INFO_64] {
            assert_eq!(call0(&mut psci, function, [0, 0, 0]), ret(AFFINITY_ON));
            assert_eq!(call0(&mut psci, function, [2, 0, 0]), ret(AFFINITY_OFF));
            // Unknown affinities.
            assert_eq!(call0(&mut psci, function, [3, 0, 0]), ret(INVALID_PARAMETERS));
            assert_eq!(call0(&mut psci, function, [0x100, 0, 0]), ret(INVALID_PARAMETERS));
            // Only level 0 is supported.
            for level in [1, 2, 3, 4] {
                assert_eq!(call0(&mut psci, function, [0, level, 0]), ret(INVALID_PARAMETERS));
            }
        }
        // SMC32 truncation: the upper halves vanish.
        let high = 0xFFFF_FFFF_0000_0000;
        assert_eq!(call0(&mut psci, AFFINITY_INFO_32, [high | 2, high, 0]), ret(AFFINITY_OFF));
        assert_eq!(call0(&mut psci, AFFINITY_INFO_64, [high | 2, 0, 0]), ret(INVALID_PARAMETERS));
        assert_eq!(call0(&mut psci, AFFINITY_INFO_64, [2, high, 0]), ret(INVALID_PARAMETERS));
        // Aff3 is only reachable through the SMC64 variant, and names no vCPU here.
        assert_eq!(call0(&mut psci, AFFINITY_INFO_64, [1 << 32, 0, 0]), ret(INVALID_PARAMETERS));
        assert_eq!(call0(&mut psci, AFFINITY_INFO_32, [1 << 32, 0, 0]), ret(AFFINITY_ON));
    }

    #[test]
    fn cpu_suspend_is_standby() {
        let mut psci = VmPsci::new(2);
        for function in [CPU_SUSPEND_32, CPU_SUSPEND_64] {
            // Standby and power-down power_state values alike (the upper half of
            // a 64-bit argument is not part of power_state).
            for power_state in [0, 1, 0x1_0000, 0x300_FFFF, 0xFFFF_FFFF_0000_0000] {
                assert_eq!(call0(&mut psci, function, [power_state, ENTRY, 0]), PsciOutcome::Suspend);
            }
            // Reserved bits [23:17] and [31:26].
            for power_state in [1 << 17, 1 << 23, 1 << 26, 1 << 31, u64::MAX] {
                assert_eq!(call0(&mut psci, function, [power_state, ENTRY, 0]), ret(INVALID_PARAMETERS));
            }
        }
        assert_eq!(PsciOutcome::Suspend.caller_x0(), Some(0));
        assert_eq!(psci.state(0), Some(PowerState::On));
    }

    #[test]
    fn last_vcpu_off() {
        let mut psci = VmPsci::new(2);
        assert_eq!(call0(&mut psci, CPU_OFF, [0; 3]), PsciOutcome::StopCallingVcpu);
        assert_eq!(psci.state(0), Some(PowerState::Off));
        assert!(!psci.any_running());

        // A vCPU started but not yet entered counts as running.
        let mut psci = VmPsci::new(2);
        assert!(matches!(call0(&mut psci, CPU_ON_64, [1, ENTRY, 0]), PsciOutcome::StartVcpu { .. }));
        assert_eq!(call0(&mut psci, CPU_OFF, [0; 3]), PsciOutcome::StopCallingVcpu);
        assert!(psci.any_running());
    }

    #[test]
    fn system_off_and_reset() {
        let mut psci = VmPsci::new(3);
        assert_eq!(call0(&mut psci, SYSTEM_OFF, [0; 3]), PsciOutcome::SystemOff);
        assert_eq!(PsciOutcome::SystemOff.caller_x0(), None);

        assert!(matches!(call0(&mut psci, CPU_ON_64, [1, ENTRY, 0]), PsciOutcome::StartVcpu { .. }));
        assert!(matches!(call0(&mut psci, CPU_ON_64, [2, ENTRY, 0]), PsciOutcome::StartVcpu { .. }));
        assert_eq!(psci.call(1, SYSTEM_RESET, [0; 3], RAM), PsciOutcome::SystemReset);
        assert_eq!(PsciOutcome::SystemReset.caller_x0(), None);
        // The runtime resets the model when it restarts the VM.
        psci.reset();
        assert_eq!(psci, VmPsci::new(3));

        // After vCPU 0 turned itself off, reset brings it back.
        assert_eq!(call0(&mut psci, CPU_OFF, [0; 3]), PsciOutcome::StopCallingVcpu);
        psci.reset();
        assert_eq!(psci.state(0), Some(PowerState::On));
    }

    #[test]
    fn callers() {
        let mut psci = VmPsci::new(2);
        // Not a vCPU of this VM: a runtime bug, reported to the guest as INTERNAL_FAILURE.
        assert_eq!(psci.call(2, PSCI_VERSION, [0; 3], RAM), ret(INTERNAL_FAILURE));
        assert_eq!(psci.call(2, CPU_OFF, [0; 3], RAM), ret(INTERNAL_FAILURE));
        // A vCPU making a call is running, even before the runtime reported it.
        assert!(matches!(call0(&mut psci, CPU_ON_64, [1, ENTRY, 0]), PsciOutcome::StartVcpu { .. }));
        assert_eq!(psci.call(1, PSCI_VERSION, [0; 3], RAM), ret(PSCI_VERSION_1_1));
        assert_eq!(psci.state(1), Some(PowerState::On));
    }

    #[test]
    fn return_values_sign_extend() {
        assert_eq!(ret(NOT_SUPPORTED).caller_x0(), Some(u64::MAX));
        assert_eq!(ret(INVALID_ADDRESS).caller_x0(), Some(-9i64 as u64));
        assert_eq!(ret(PSCI_VERSION_1_1).caller_x0(), Some(0x1_0001));
        // The codes match the ones the hypervisor decodes as a PSCI caller.
        use crate::psci::PsciError;
        let codes = [
            (NOT_SUPPORTED, PsciError::NotSupported),
            (INVALID_PARAMETERS, PsciError::InvalidParameters),
            (DENIED, PsciError::Denied),
            (ALREADY_ON, PsciError::AlreadyOn),
            (ON_PENDING, PsciError::OnPending),
            (INTERNAL_FAILURE, PsciError::InternalFailure),
            (NOT_PRESENT, PsciError::NotPresent),
            (DISABLED, PsciError::Disabled),
            (INVALID_ADDRESS, PsciError::InvalidAddress),
        ];
        for (code, error) in codes {
            assert_eq!(crate::psci::check(code as u64), Err(error));
        }
        assert_eq!(crate::psci::check(SUCCESS as u64), Ok(0));
    }

    #[test]
    fn vcpu_of() {
        let psci = VmPsci::new(MAX_VCPUS);
        assert_eq!(psci.vcpu_of(63), Some(63));
        assert_eq!(psci.vcpu_of(64), None);
        let psci = VmPsci::new(1);
        assert_eq!(psci.vcpu_of(0), Some(0));
        assert_eq!(psci.vcpu_of(1), None);
    }
}
