//! The guest's PSCI/SMCCC interface: arbitrary calls from arbitrary callers,
//! with the real function IDs offered often, and the runtime's side of
//! `SYSTEM_RESET` (`reset`) interleaved.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hypervisor::psci;
use hypervisor::vm::vpsci::{PowerState, PsciOutcome, VmPsci};
use libfuzzer_sys::fuzz_target;

const FUNCTIONS: [u32; 18] = [
    psci::PSCI_VERSION,
    psci::CPU_SUSPEND_32,
    psci::CPU_SUSPEND_64,
    psci::CPU_OFF,
    psci::CPU_ON_32,
    psci::CPU_ON_64,
    psci::AFFINITY_INFO_32,
    psci::AFFINITY_INFO_64,
    psci::MIGRATE_INFO_TYPE,
    psci::SYSTEM_OFF,
    psci::SYSTEM_RESET,
    psci::PSCI_FEATURES,
    psci::SMCCC_VERSION,
    psci::SMCCC_ARCH_FEATURES,
    psci::SMCCC_ARCH_WORKAROUND_1,
    psci::SMCCC_ARCH_WORKAROUND_2,
    psci::SMCCC_ARCH_WORKAROUND_3,
    // SMC64 versions of SMC32-only functions, and a neighbour of each range.
    0xC400_0002,
];

#[derive(Debug)]
struct Function(u32);

impl<'a> Arbitrary<'a> for Function {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Function(if u.ratio(7, 8)? { *u.choose(&FUNCTIONS)? } else { u.arbitrary()? }))
    }
}

/// An argument: small values (vCPU indices), a value inside the test RAM, or anything.
#[derive(Debug)]
struct Arg(u64);

impl<'a> Arbitrary<'a> for Arg {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Arg(match u.int_in_range(0..=3u8)? {
            0 => u.int_in_range(0..=9)?,
            1 => RAM.0 + u.int_in_range(0..=RAM.1 + 8)?,
            2 => u64::from(*u.choose(&FUNCTIONS)?) | (u64::from(u.arbitrary::<u8>()?) << 32),
            _ => u.arbitrary()?,
        }))
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Call { caller: u8, function: Function, args: [Arg; 3], odd_ram: bool },
    Reset,
}

const RAM: (u64, u64) = (0x4000_0000, 0x1000_0000);

#[derive(Debug)]
struct Input {
    vcpus: usize,
    ops: Vec<Op>,
    ram: (u64, u64),
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let vcpus = u.int_in_range(1..=8)?;
        let ram = if u.ratio(1, 8)? { (u.arbitrary()?, u.arbitrary()?) } else { RAM };
        let ops = u.arbitrary_iter()?.take(256).collect::<arbitrary::Result<_>>()?;
        Ok(Input { vcpus, ops, ram })
    }
}

fuzz_target!(|input: Input| {
    let mut psci = VmPsci::new(input.vcpus);
    let n = psci.vcpus();
    assert_eq!(n, input.vcpus);
    for op in &input.ops {
        let before = psci.clone();
        match op {
            Op::Call { caller, function, args, odd_ram } => {
                let caller = usize::from(*caller % 12);
                let ram = if *odd_ram { input.ram } else { RAM };
                let args = [args[0].0, args[1].0, args[2].0];
                let outcome = psci.call(caller, function.0, args, ram);
                if caller >= n {
                    assert_eq!(outcome, PsciOutcome::Return(psci::INTERNAL_FAILURE));
                    assert_eq!(psci, before, "a call from a non-vCPU changed state");
                    continue;
                }
                match outcome {
                    PsciOutcome::StopCallingVcpu => assert_eq!(psci.state(caller), Some(PowerState::Off)),
                    PsciOutcome::StartVcpu { target, entry, context_id } => {
                        assert!(target < n && target != caller);
                        assert_eq!(before.state(target), Some(PowerState::Off));
                        assert_eq!(psci.state(target), Some(PowerState::On), "ON at once, as KVM answers");
                        assert!(entry >= ram.0 && entry - ram.0 < ram.1 && entry % 4 == 0, "{entry:#x}");
                        let _ = context_id;
                    }
                    _ => assert_eq!(psci.state(caller), Some(PowerState::On)),
                }
                // Only the caller and a CPU_ON target change state.
                for vcpu in 0..n {
                    let moved = psci.state(vcpu) != before.state(vcpu);
                    let allowed =
                        vcpu == caller || matches!(outcome, PsciOutcome::StartVcpu { target, .. } if target == vcpu);
                    assert!(!moved || allowed, "vCPU {vcpu} changed on {outcome:?}");
                }
                let _ = outcome.caller_x0();
                if outcome == PsciOutcome::SystemReset {
                    psci.reset();
                }
            }
            Op::Reset => {
                psci.reset();
                assert_eq!(psci.state(0), Some(PowerState::On));
                assert!((1..n).all(|vcpu| psci.state(vcpu) == Some(PowerState::Off)));
            }
        }
        assert_eq!(psci.vcpus(), n);
        assert_eq!(psci.state(n), None);
        for vcpu in 0..n {
            assert_eq!(psci.vcpu_of(VmPsci::affinity(vcpu)), Some(vcpu));
        }
    }
});
