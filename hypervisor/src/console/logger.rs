//! `log` backend: every line carries the time since boot, the CPU and the level.
//! The maximum level is fixed at build time (`cargo xtask ... --log LEVEL`).

use log::{LevelFilter, Log, Metadata, Record};

use crate::arch::aarch64::cpu;

/// Build-time level from the `HV_LOG_LEVEL` environment variable set by xtask.
pub fn build_time_level() -> LevelFilter {
    match option_env!("HV_LOG_LEVEL") {
        Some("off") => LevelFilter::Off,
        Some("error") => LevelFilter::Error,
        Some("warn") => LevelFilter::Warn,
        Some("debug") => LevelFilter::Debug,
        Some("trace") => LevelFilter::Trace,
        _ => LevelFilter::Info,
    }
}

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (ticks, frequency) = cpu::counter();
        let micros = ticks.saturating_mul(1_000_000) / frequency.max(1);
        super::write_fmt(format_args!(
            // No leading `[`: lines starting with one are guests' (`vm::guest_output`).
            "{:6}.{:06} cpu{} {:5} {}\n",
            micros / 1_000_000,
            micros % 1_000_000,
            cpu::index(),
            record.level(),
            record.args()
        ));
    }

    fn flush(&self) {
        super::flush();
    }
}

/// Installs the logger. Needs atomics, so only after the MMU is on.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(build_time_level());
    }
}
