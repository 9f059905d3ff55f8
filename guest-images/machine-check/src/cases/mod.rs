//! The cases, each a function printing one deterministic line per check, named
//! `<case>: ...`. The kernel command line picks them: one name, several
//! (space-separated, run in that order), or `all` (every case, in the order
//! below). Each case sets up what it needs; `gic-asleep` must come first in a
//! boot, because it looks at the GIC before anything has woken it.
//!
//! `bench` is named only on its own: it prints instruction counts, which differ
//! between the machines by design, so it is neither in [`CASES`] (the
//! differential scenarios follow that list) nor in `all`.

use fdt::Fdt;

use crate::console::println;
use crate::exceptions::{Fault, ec};

mod bench;
mod devices;
mod gic_delivery;
mod psci;
mod registers;
mod timers;
mod tree;

/// One case: its name on the command line and what it runs.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Fdt<'_>),
}

pub const CASES: &[Case] = &[
    Case { name: "gic-asleep", run: gic_delivery::gic_asleep },
    Case { name: "dtb", run: tree::dtb },
    Case { name: "sgi-burst", run: gic_delivery::sgi_burst },
    Case { name: "sgi-burst-active", run: gic_delivery::sgi_burst_active },
    Case { name: "sgi-registers", run: gic_delivery::sgi_registers },
    Case { name: "lr-priority", run: gic_delivery::lr_priority },
    Case { name: "spi-recall", run: gic_delivery::spi_recall },
    Case { name: "phys-timer", run: timers::phys_timer },
    Case { name: "virt-timer-mask", run: timers::virt_timer_mask },
    Case { name: "psci", run: psci::psci },
    Case { name: "set-way", run: registers::set_way },
    Case { name: "debug-regs", run: registers::debug_regs },
    Case { name: "pmu", run: registers::pmu },
    Case { name: "sve", run: registers::sve },
    Case { name: "virtio-probe", run: devices::virtio_probe },
    Case { name: "exception-entry", run: devices::exception_entry },
    Case { name: "walk-abort", run: devices::walk_abort },
];

/// Runs what `bootargs` names.
pub fn run(bootargs: &str, tree: &Fdt<'_>) {
    if bootargs.split_whitespace().next().is_none() {
        println!("machine-check: no case named (the command line takes case names or `all`)");
    }
    for word in bootargs.split_whitespace() {
        match word {
            "all" => CASES.iter().for_each(|case| (case.run)(tree)),
            "bench" => bench::bench(tree),
            name => match CASES.iter().find(|case| case.name == name) {
                Some(case) => (case.run)(tree),
                None => println!("machine-check: unknown case {name}"),
            },
        }
    }
}

/// How an instruction that may be refused went.
pub struct Outcome(pub Option<Fault>);

impl core::fmt::Display for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            None => f.write_str("executed"),
            Some(fault) if fault.ec() == ec::UNKNOWN => f.write_str("UNDEFINED"),
            Some(fault) if fault.ec() == ec::DATA_ABORT_SAME_EL => write!(f, "abort (DFSC 0x{:x})", fault.fsc()),
            Some(fault) => write!(f, "exception EC 0x{:x} ISS 0x{:x}", fault.ec(), fault.esr & 0x1ff_ffff),
        }
    }
}

/// `yes` or `no`.
pub fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}
