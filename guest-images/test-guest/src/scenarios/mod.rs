//! The test scenarios, selected by the VM's `arg` (x0 at entry).
//!
//! Each prints progress lines prefixed with its name and ends with exactly one
//! `PASS <name>: <detail>` (HV_EXIT 0) or `FAIL <name>: <detail>` (HV_EXIT 1):
//! a scenario returns its PASS detail, and [`fail!`] ends the VM on the spot.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::console::{Report, println};
use crate::hypercall::{self, HvError};
use crate::sysreg;

mod bad_access;
pub mod foreign;
mod fresh_tags;
mod hostile;
mod isolation;
mod leak;
mod no_mte;
mod race;
mod regs;
mod timing;

pub const PAGE: u64 = 4096;

/// What the guest was started with, plus where free RAM begins.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    pub ram_base: u64,
    pub ram_size: u64,
    pub shared_base: u64,
    pub shared_size: u64,
    /// First byte of the image (= `ram_base`).
    pub image_start: u64,
    /// End of the image, BSS and stack (page aligned): RAM after it is unused.
    pub image_end: u64,
}

impl Env {
    pub fn ram_end(&self) -> u64 {
        self.ram_base + self.ram_size
    }
}

/// The detail printed after `PASS <name>: `.
pub type Outcome = Report;

/// Whether a scenario needs MTE from the CPU (and so maps RAM Tagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mte {
    Required,
    /// Used (RAM mapped Tagged) when the VM offers it, else not.
    Optional,
    Unused,
}

pub struct Scenario {
    pub arg: u64,
    pub name: &'static str,
    pub mte: Mte,
    pub run: fn(&Env) -> Outcome,
}

/// Every scenario, by `arg`.
pub const SCENARIOS: &[Scenario] = &[
    Scenario { arg: 1, name: "fresh-tags", mte: Mte::Required, run: fresh_tags::run },
    Scenario { arg: 2, name: "leak-writer", mte: Mte::Required, run: leak::writer },
    Scenario { arg: 3, name: "leak-checker", mte: Mte::Required, run: leak::checker },
    Scenario { arg: 4, name: "race-writer", mte: Mte::Required, run: race::writer },
    Scenario { arg: 5, name: "race-reader", mte: Mte::Required, run: race::reader },
    Scenario { arg: 6, name: "regs-a", mte: Mte::Required, run: regs::a },
    Scenario { arg: 7, name: "regs-b", mte: Mte::Required, run: regs::b },
    Scenario { arg: 8, name: "bad-access", mte: Mte::Unused, run: bad_access::run },
    Scenario { arg: 9, name: "no-mte", mte: Mte::Unused, run: no_mte::run },
    Scenario { arg: 10, name: "hostile", mte: Mte::Optional, run: hostile::run },
    Scenario { arg: 11, name: "bystander", mte: Mte::Optional, run: isolation::bystander },
    Scenario { arg: 12, name: "resetter", mte: Mte::Optional, run: isolation::resetter },
    Scenario { arg: 13, name: "stopper", mte: Mte::Optional, run: isolation::stopper },
    Scenario { arg: 14, name: "sleeper", mte: Mte::Unused, run: timing::sleeper },
    Scenario { arg: 15, name: "spinner", mte: Mte::Unused, run: timing::spinner },
];

/// Guest-physical windows outside RAM that `bad-access` touches; mapped Normal
/// in stage 1 so the accesses reach the hypervisor's stage 2.
pub const BAD_WINDOWS: [u64; 3] = bad_access::TARGETS;

pub fn find(arg: u64) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.arg == arg)
}

static CURRENT_ARG: AtomicU64 = AtomicU64::new(0);

pub fn set_current(arg: u64) {
    CURRENT_ARG.store(arg, Ordering::SeqCst);
}

/// The running scenario's name, for reports outside it (exception handler, panic).
pub fn current_name() -> &'static str {
    find(CURRENT_ARG.load(Ordering::SeqCst)).map_or("unknown-scenario", |s| s.name)
}

/// HV_EXIT status of a failed scenario.
pub const EXIT_FAIL: u64 = 1;

/// Prints `FAIL <scenario>: <detail>` and ends the VM with [`EXIT_FAIL`].
pub fn fail_with(detail: core::fmt::Arguments<'_>) -> ! {
    println!("FAIL {}: {detail}", current_name());
    hypercall::exit(EXIT_FAIL)
}

/// Fails the running scenario with a formatted detail (does not return).
macro_rules! fail {
    ($($arg:tt)*) => {
        $crate::scenarios::fail_with(format_args!($($arg)*))
    };
}
pub(crate) use fail;

/// Seconds to wait for another VM before giving up.
pub const PEER_TIMEOUT_SECS: u64 = 60;

/// The hypercall's result, or a scenario failure if it returned an error.
pub fn hv<T>(what: &str, result: Result<T, HvError>) -> T {
    match result {
        Ok(value) => value,
        Err(HvError(code)) => fail!("{what} failed: error {code}"),
    }
}

/// Spins (with HV_YIELD) until global event `index` is at least `at_least`;
/// returns its value. Fails the scenario after [`PEER_TIMEOUT_SECS`].
pub fn wait_event(index: u64, at_least: u64, what: &str) -> u64 {
    let deadline = sysreg::deadline_after(PEER_TIMEOUT_SECS);
    loop {
        let value = hv("HV_EVENT_GET", hypercall::event_get(index));
        if value >= at_least {
            return value;
        }
        if sysreg::past(deadline) {
            fail!("timeout ({PEER_TIMEOUT_SECS} s) waiting for {what}: event {index} = {value}, want >= {at_least}");
        }
        hv("HV_YIELD", hypercall::yield_now());
    }
}
