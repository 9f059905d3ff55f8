//! The `hv-abi` hypercalls (SMCCC vendor-specific hypervisor service, owner 6):
//! what each does with its (guest-chosen, hostile) arguments, over a small
//! environment the runtime supplies and host tests fake.

use crate::vm::events::BadEvent;

const NOT_SUPPORTED: u64 = hv_abi::Error::NotSupported as i64 as u64;
const INVALID: u64 = hv_abi::Error::InvalidParameters as i64 as u64;

/// A guest address range that is not all guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotGuestRam;

/// What the calling VM's hypercalls can reach.
pub trait HypercallEnv {
    /// Copies guest memory at `ipa` (through the VM's stage 2); fails on any
    /// byte that is not guest RAM.
    fn read_guest(&mut self, ipa: u64, out: &mut [u8]) -> Result<(), NotGuestRam>;
    /// Prints one line of the VM's text on the console.
    fn print_line(&mut self, text: &[u8]);
    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent>;
    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent>;
    /// The VM's statistic `stat` ([`hv_abi::Stat`]), if there is one.
    fn stat(&mut self, stat: hv_abi::Stat) -> u64;
}

/// What the runtime must do after a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Write this to the caller's x0 and resume it.
    Return(u64),
    /// `HV_EXIT`: stop the VM with this status.
    Exit(i64),
    /// `HV_YIELD`: x0 = 0, let another vCPU of this CPU run.
    Yield,
}

/// Whether `function` is in the hypercall range (SMC64 fast call, owner 6).
pub fn is_hypercall(function: u32) -> bool {
    function >> 24 == 0xC6
}

/// Handles hypercall `function` with arguments x1, x2.
pub fn handle(function: u32, a1: u64, a2: u64, env: &mut impl HypercallEnv) -> Outcome {
    let result = match function {
        hv_abi::HV_WRITE => match write(a1, a2, env) {
            Ok(()) => 0,
            Err(NotGuestRam) => INVALID,
        },
        hv_abi::HV_EXIT => return Outcome::Exit(a1 as i64),
        hv_abi::HV_EVENT_SET => match env.event_set(a1, a2) {
            Ok(()) => 0,
            Err(BadEvent) => INVALID,
        },
        hv_abi::HV_EVENT_GET => env.event_get(a1).unwrap_or(INVALID),
        hv_abi::HV_YIELD => return Outcome::Yield,
        hv_abi::HV_STAT => match stat_from(a1) {
            Some(stat) => env.stat(stat),
            None => INVALID,
        },
        _ => NOT_SUPPORTED,
    };
    Outcome::Return(result)
}

fn stat_from(value: u64) -> Option<hv_abi::Stat> {
    use hv_abi::Stat;
    [Stat::Faults4K, Stat::Faults2M, Stat::BytesSanitised, Stat::BootCount].into_iter().find(|&s| s as u64 == value)
}

/// HV_WRITE: at most [`hv_abi::MAX_WRITE`] bytes of guest RAM at `ipa`, printed as
/// one line (a trailing newline is the line's end, not an empty line).
fn write(ipa: u64, len: u64, env: &mut impl HypercallEnv) -> Result<(), NotGuestRam> {
    if len > hv_abi::MAX_WRITE {
        return Err(NotGuestRam);
    }
    let mut buffer = [0u8; hv_abi::MAX_WRITE as usize];
    let text = buffer.get_mut(..len as usize).ok_or(NotGuestRam)?;
    env.read_guest(ipa, text)?;
    env.print_line(text.strip_suffix(b"\n").unwrap_or(text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// One VM with 4 KiB of RAM at 0x4000_0000 and 4 events.
    #[derive(Default)]
    struct FakeVm {
        ram: Vec<u8>,
        lines: Vec<Vec<u8>>,
        events: [u64; 4],
    }

    impl HypercallEnv for FakeVm {
        fn read_guest(&mut self, ipa: u64, out: &mut [u8]) -> Result<(), NotGuestRam> {
            let start = ipa.checked_sub(0x4000_0000).ok_or(NotGuestRam)? as usize;
            let end = start.checked_add(out.len()).ok_or(NotGuestRam)?;
            out.copy_from_slice(self.ram.get(start..end).ok_or(NotGuestRam)?);
            Ok(())
        }
        fn print_line(&mut self, text: &[u8]) {
            self.lines.push(text.to_vec());
        }
        fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent> {
            *self.events.get_mut(index as usize).ok_or(BadEvent)? = value;
            Ok(())
        }
        fn event_get(&mut self, index: u64) -> Result<u64, BadEvent> {
            self.events.get(index as usize).copied().ok_or(BadEvent)
        }
        fn stat(&mut self, stat: hv_abi::Stat) -> u64 {
            stat as u64 + 100
        }
    }

    fn vm() -> FakeVm {
        let mut ram = alloc::vec![0u8; 4096];
        ram[..6].copy_from_slice(b"hello\n");
        FakeVm { ram, ..Default::default() }
    }

    #[test]
    fn write_prints_one_line_and_refuses_bad_ranges() {
        let mut vm = vm();
        assert_eq!(handle(hv_abi::HV_WRITE, 0x4000_0000, 6, &mut vm), Outcome::Return(0));
        assert_eq!(vm.lines, [b"hello".to_vec()]);
        for (ipa, len) in [(0, 4), (u64::MAX - 1, 256), (0x4000_0000, 257), (0x4000_0000, u64::MAX), (0x4000_0F80, 256)]
        {
            assert_eq!(handle(hv_abi::HV_WRITE, ipa, len, &mut vm), Outcome::Return(INVALID), "{ipa:#x} {len}");
        }
        assert_eq!(vm.lines.len(), 1);
    }

    #[test]
    fn events_stats_and_unknown_calls() {
        let mut vm = vm();
        assert_eq!(handle(hv_abi::HV_EVENT_SET, 2, 7, &mut vm), Outcome::Return(0));
        assert_eq!(handle(hv_abi::HV_EVENT_GET, 2, 0, &mut vm), Outcome::Return(7));
        assert_eq!(handle(hv_abi::HV_EVENT_SET, u64::MAX, 7, &mut vm), Outcome::Return(INVALID));
        assert_eq!(handle(hv_abi::HV_STAT, 3, 0, &mut vm), Outcome::Return(103));
        assert_eq!(handle(hv_abi::HV_STAT, 4, 0, &mut vm), Outcome::Return(INVALID));
        assert_eq!(handle(0xC600_00FF, 0, 0, &mut vm), Outcome::Return(NOT_SUPPORTED));
        assert_eq!(handle(hv_abi::HV_EXIT, u64::MAX, 0, &mut vm), Outcome::Exit(-1));
        assert_eq!(handle(hv_abi::HV_YIELD, 0, 0, &mut vm), Outcome::Yield);
    }
}
