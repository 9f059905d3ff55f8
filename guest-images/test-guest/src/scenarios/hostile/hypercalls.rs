//! Every hypercall with garbage arguments: HV_WRITE with IPAs outside RAM, at
//! the end of the address space and lengths over 256; HV_EVENT_* with huge
//! indices; HV_STAT with unknown statistics; unknown function IDs in the
//! hypervisor's range; HV_YIELD with junk in x1-x3; and all 64 events set to
//! 0xBAD (a bystander must never see them).

use hv_abi::machine::{GICD_BASE, UART_BASE};
use hv_abi::{EVENTS, HV_EVENT_GET, HV_EVENT_SET, HV_STAT, HV_YIELD, MAX_WRITE};

use super::{Ctx, Verdict, bad, good, scratch};
use crate::hypercall;

const INVALID: i64 = hv_abi::Error::InvalidParameters as i64;
const NOT_SUPPORTED: i64 = hv_abi::Error::NotSupported as i64;

pub fn write_bad_ipa(ctx: &Ctx) -> Verdict {
    let ram_end = ctx.env.ram_end();
    let cases = [
        (0, 16),
        (0x1000, 1),
        (ram_end, 16),
        (ram_end - 100, MAX_WRITE), // straddles the end of RAM
        (ctx.env.ram_base - 1, 2),  // straddles the start
        (UART_BASE, 4),             // the UART: MMIO, not RAM
        (GICD_BASE, 64),
        (u64::MAX - 1, MAX_WRITE), // wraps
        (u64::MAX - 255, MAX_WRITE),
        (1 << 47, 8),
    ];
    for (ipa, len) in cases {
        let got = hypercall::write_raw(ipa, len);
        if got != INVALID {
            bad!("HV_WRITE(0x{ipa:x}, {len}) returned {got}, want -2");
        }
    }
    good!("{} HV_WRITEs outside RAM (IPA 0, past the end, straddling, MMIO, wrapping): all -2", cases.len())
}

pub fn write_bad_len(ctx: &Ctx) -> Verdict {
    let buf = ctx.scratch + scratch::TEXT;
    // SAFETY: a scratch page of free RAM; no Rust object lives there.
    unsafe { core::ptr::write_bytes(buf as *mut u8, b'x', 4096) };
    for len in [MAX_WRITE + 1, 4096, 1 << 32, u64::MAX, u64::MAX - 255] {
        let got = hypercall::write_raw(buf, len);
        if got != INVALID {
            bad!("HV_WRITE(RAM, len {len}) returned {got}, want -2");
        }
    }
    let zero = hypercall::write_raw(buf, 0);
    if zero != 0 && zero != INVALID {
        bad!("HV_WRITE of 0 bytes returned {zero}");
    }
    good!("HV_WRITE with lengths 257, 4096, 2^32, u64::MAX, u64::MAX-255: -2; length 0: {zero}")
}

pub fn event_bad_index(_: &Ctx) -> Verdict {
    for index in [EVENTS, EVENTS + 1, 1 << 32, u64::MAX, u64::MAX - 63, 1 << 63] {
        let set = hypercall::raw(u64::from(HV_EVENT_SET), index, 0xBAD, 0);
        let get = hypercall::raw(u64::from(HV_EVENT_GET), index, 0, 0);
        if set != INVALID || get != INVALID {
            bad!("HV_EVENT_SET/GET({index:#x}) returned {set}/{get}, want -2/-2");
        }
    }
    good!("HV_EVENT_SET/GET with 6 indices >= 64: all -2")
}

pub fn stat_garbage(_: &Ctx) -> Verdict {
    for which in [4, 5, 0xFF, 1 << 32, u64::MAX] {
        let got = hypercall::raw(u64::from(HV_STAT), which, 0, 0);
        if got != INVALID {
            bad!("HV_STAT({which:#x}) returned {got}, want -2");
        }
    }
    let boots = hypercall::raw(u64::from(HV_STAT), 3, u64::MAX, u64::MAX);
    if boots != 0 {
        bad!("HV_STAT(BootCount) on the first boot returned {boots}, want 0");
    }
    good!("HV_STAT of 5 unknown statistics: -2; BootCount 0")
}

pub fn unknown_ids(_: &Ctx) -> Verdict {
    let ids =
        [0xC600_0000u64, 0xC600_0007, 0xC600_0008, 0xC600_00FF, 0xC600_0100, 0xC600_FFFF, 0xC6FF_FFFF, 0xC600_1001];
    for id in ids {
        let got = hypercall::raw(id, u64::MAX, u64::MAX, u64::MAX);
        if got as i32 as i64 != NOT_SUPPORTED {
            bad!("hypercall 0x{id:x} returned {got}, want -1 (NOT_SUPPORTED)");
        }
    }
    good!("{} unknown 0xC6xx_xxxx function IDs: all -1", ids.len())
}

pub fn yield_garbage(_: &Ctx) -> Verdict {
    for _ in 0..50 {
        let got = hypercall::raw(u64::from(HV_YIELD), u64::MAX, 1 << 63, 0xDEAD);
        if got != 0 {
            bad!("HV_YIELD with garbage in x1-x3 returned {got}");
        }
    }
    good!("50 HV_YIELDs with garbage arguments returned 0")
}

pub fn events_bad(_: &Ctx) -> Verdict {
    for index in 0..EVENTS {
        let got = hypercall::raw(u64::from(HV_EVENT_SET), index, 0xBAD, 0);
        if got != 0 {
            bad!("HV_EVENT_SET({index}, 0xBAD) returned {got}");
        }
    }
    for index in 0..EVENTS {
        let got = hypercall::raw(u64::from(HV_EVENT_GET), index, 0, 0);
        if got != 0xBAD {
            bad!("HV_EVENT_GET({index}) after setting 0xBAD returned {got:#x}");
        }
    }
    good!("all {EVENTS} events set to 0xBAD and read back (this VM's own)")
}
