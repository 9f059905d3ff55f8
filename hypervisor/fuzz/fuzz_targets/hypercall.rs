//! The `hv-abi` hypercall handlers with arbitrary function IDs and arguments,
//! over a fake VM (4 KiB of RAM at 0x4000_0000, 64 events). Invariants: nothing
//! panics; HV_WRITE prints only when the whole range is guest RAM and at most
//! MAX_WRITE bytes long; bad arguments come back as SMCCC error codes.

#![no_main]

use arbitrary::Unstructured;
use hypervisor::vm::events::BadEvent;
use hypervisor::vm::hypercall::{self, HypercallEnv, NotGuestRam, Outcome};
use libfuzzer_sys::fuzz_target;

const RAM_BASE: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 4096;
const FUNCTIONS: [u32; 7] = [
    hv_abi::HV_WRITE,
    hv_abi::HV_EXIT,
    hv_abi::HV_EVENT_SET,
    hv_abi::HV_EVENT_GET,
    hv_abi::HV_YIELD,
    hv_abi::HV_STAT,
    0xC600_0007,
];

struct FakeVm {
    ram: [u8; RAM_SIZE as usize],
    printed: usize,
    events: [u64; hv_abi::EVENTS as usize],
}

impl HypercallEnv for FakeVm {
    fn read_guest(&mut self, ipa: u64, out: &mut [u8]) -> Result<(), NotGuestRam> {
        let start = ipa.checked_sub(RAM_BASE).ok_or(NotGuestRam)?;
        let end = start.checked_add(out.len() as u64).ok_or(NotGuestRam)?;
        if end > RAM_SIZE {
            return Err(NotGuestRam);
        }
        out.copy_from_slice(&self.ram[start as usize..end as usize]);
        Ok(())
    }
    fn print_line(&mut self, text: &[u8]) {
        assert!(text.len() as u64 <= hv_abi::MAX_WRITE);
        self.printed += 1;
    }
    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent> {
        *self.events.get_mut(usize::try_from(index).map_err(|_| BadEvent)?).ok_or(BadEvent)? = value;
        Ok(())
    }
    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent> {
        self.events.get(usize::try_from(index).map_err(|_| BadEvent)?).copied().ok_or(BadEvent)
    }
    fn stat(&mut self, stat: hv_abi::Stat) -> u64 {
        stat as u64
    }
}

/// An argument: near RAM, a small length or index, or anything.
fn arg(u: &mut Unstructured) -> arbitrary::Result<u64> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => RAM_BASE.wrapping_add(u.int_in_range(0..=RAM_SIZE + 512)?).wrapping_sub(256),
        1 => u.int_in_range(0..=300)?,
        2 => u64::MAX - u.int_in_range(0..=512)?,
        _ => u.arbitrary()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut vm = FakeVm { ram: [b'a'; RAM_SIZE as usize], printed: 0, events: [0; hv_abi::EVENTS as usize] };
    while !u.is_empty() {
        let Ok(function) = (if u.ratio(7, 8).unwrap_or(true) { u.choose(&FUNCTIONS).copied() } else { u.arbitrary() })
        else {
            return;
        };
        let (Ok(a1), Ok(a2)) = (arg(&mut u), arg(&mut u)) else { return };
        let printed = vm.printed;
        let outcome = hypercall::handle(function, a1, a2, &mut vm);
        if function == hv_abi::HV_WRITE {
            let fits = a2 <= hv_abi::MAX_WRITE
                && a1 >= RAM_BASE
                && a1.checked_add(a2).is_some_and(|end| end <= RAM_BASE + RAM_SIZE);
            assert_eq!(vm.printed > printed, fits, "HV_WRITE {a1:#x} {a2}: {outcome:?}");
            assert_eq!(outcome == Outcome::Return(0), fits);
        }
        if function == hv_abi::HV_EVENT_GET && a1 >= hv_abi::EVENTS {
            assert_eq!(outcome, Outcome::Return(hv_abi::Error::InvalidParameters as i64 as u64));
        }
    }
});
