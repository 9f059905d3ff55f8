//! `regs-a` (arg 6) and `regs-b` (arg 7): two VMs pinned to the same physical
//! CPU each keep their own GCR_EL1, RGSR_EL1, TFSR_EL1 and TFSRE0_EL1 — and the
//! other per-vCPU state a switch must carry: an FP/SIMD register (D0) and a
//! pointer-authentication key (APIAKeyLo_EL1, where the CPU has one) — across
//! 200 HV_YIELDs to each other. A debug register (DBGBVR0_EL1) must read as
//! zero whatever either VM writes: guests get no debug state to share.
//!
//! Global events 8 (regs-a) and 9 (regs-b) count each VM's progress: 1 = started,
//! then 1 + the number of yields done. Each VM waits for the other to start.

use super::{Outcome, fail, hv, wait_event};
use crate::console::{println, text};
use crate::hypercall;
use crate::sysreg;

const YIELDS: u64 = 200;
const EVENT_A: u64 = 8;
const EVENT_B: u64 = 9;

#[derive(Debug, Clone, Copy)]
struct Values {
    /// Exclude [15:0], RRND [16].
    gcr: u64,
    /// TAG [3:0], SEED [23:8].
    rgsr: u64,
    /// TF0 [0], TF1 [1].
    tfsr: u64,
    /// TF0 [0], TF1 [1].
    tfsre0: u64,
    /// D0 (FP/SIMD state).
    d0: u64,
    /// APIAKeyLo_EL1.
    key: u64,
}

const A: Values = Values {
    gcr: 0x1_5555,
    rgsr: 0x12_3405,
    tfsr: 0x1,
    tfsre0: 0x1,
    d0: 0xA0A0_0000_D0D0_0001,
    key: 0x1111_AAAA_0000_0001,
};
const B: Values = Values {
    gcr: 0x0_AAAA,
    rgsr: 0xBE_EF0A,
    tfsr: 0x2,
    tfsre0: 0x2,
    d0: 0xB0B0_0000_D0D0_0002,
    key: 0x2222_BBBB_0000_0002,
};

pub fn a(_: &crate::scenarios::Env) -> Outcome {
    run("regs-a", A, EVENT_A, EVENT_B)
}

pub fn b(_: &crate::scenarios::Env) -> Outcome {
    run("regs-b", B, EVENT_B, EVENT_A)
}

fn write(values: Values) {
    sysreg::set_gcr_el1(values.gcr);
    sysreg::set_rgsr_el1(values.rgsr);
    sysreg::set_tfsr_el1(values.tfsr);
    sysreg::set_tfsre0_el1(values.tfsre0);
    sysreg::enable_fp();
    sysreg::set_d0(values.d0);
    if sysreg::has_pointer_authentication() {
        sysreg::set_apiakeylo_el1(values.key);
    }
    sysreg::set_dbgbvr0_el1(values.key);
}

/// The first register that does not hold its value: (name, read, want).
fn mismatch(want: Values) -> Option<(&'static str, u64, u64)> {
    let got = [
        ("GCR_EL1", sysreg::gcr_el1(), want.gcr),
        ("RGSR_EL1", sysreg::rgsr_el1(), want.rgsr),
        ("TFSR_EL1", sysreg::tfsr_el1(), want.tfsr),
        ("TFSRE0_EL1", sysreg::tfsre0_el1(), want.tfsre0),
        ("D0", sysreg::d0(), want.d0),
        ("DBGBVR0_EL1 (read-as-zero)", sysreg::dbgbvr0_el1(), 0),
        (
            "APIAKeyLo_EL1",
            if sysreg::has_pointer_authentication() { sysreg::apiakeylo_el1() } else { want.key },
            want.key,
        ),
    ];
    got.into_iter().find(|&(_, read, want)| read != want)
}

fn run(name: &str, mine: Values, my_event: u64, peer_event: u64) -> Outcome {
    write(mine);
    if let Some((reg, got, want)) = mismatch(mine) {
        fail!("{reg} reads 0x{got:x} right after writing 0x{want:x} (before any yield)");
    }
    hv("HV_EVENT_SET", hypercall::event_set(my_event, 1));
    wait_event(peer_event, 1, "the other regs VM to start");
    println!(
        "{name}: GCR_EL1=0x{:x} RGSR_EL1=0x{:x} TFSR_EL1=0x{:x} TFSRE0_EL1=0x{:x}, yielding {YIELDS} times",
        mine.gcr, mine.rgsr, mine.tfsr, mine.tfsre0
    );

    let mut peer_progress = 0u64;
    for i in 0..YIELDS {
        let before = hv("HV_EVENT_GET", hypercall::event_get(peer_event));
        hv("HV_YIELD", hypercall::yield_now());
        if let Some((reg, got, want)) = mismatch(mine) {
            fail!("after yield {}: {reg} = 0x{got:x}, want 0x{want:x}", i + 1);
        }
        let after = hv("HV_EVENT_GET", hypercall::event_get(peer_event));
        peer_progress += u64::from(after != before);
        hv("HV_EVENT_SET", hypercall::event_set(my_event, i + 2));
    }
    let key = if sysreg::has_pointer_authentication() { " APIAKeyLo_EL1" } else { "" };
    text!(
        "GCR_EL1 RGSR_EL1 TFSR_EL1 TFSRE0_EL1 D0{key} intact after {YIELDS} yields; the other VM progressed during {peer_progress} of them"
    )
}
