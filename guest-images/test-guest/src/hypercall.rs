//! The hypervisor's hypercalls (`hv_abi`), made with `HVC #0` per SMCCC.
//!
//! With the `semihosting-console` feature (local smoke tests without the hypervisor)
//! console output and [`exit`] go through Arm semihosting instead; the other calls
//! still use `HVC`, which QEMU's PSCI emulation answers with `NOT_SUPPORTED` (-1).

use core::arch::asm;

use hv_abi::{HV_EVENT_GET, HV_EVENT_SET, HV_STAT, HV_YIELD, Stat};
#[cfg(not(feature = "semihosting-console"))]
use hv_abi::{HV_EXIT, HV_WRITE, MAX_WRITE};

/// A negative SMCCC status returned by a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvError(pub i64);

fn hvc(function: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: HVC #0 enters the hypervisor, which only reads the argument
    // registers, returns its result in x0 and, per SMCCC, may clobber x0-x17
    // (all declared here). HV_WRITE reads guest memory that the caller passed by
    // address; no call writes guest memory.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") u64::from(function) => ret,
            inlateout("x1") a1 => _,
            inlateout("x2") a2 => _,
            inlateout("x3") a3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    ret as i64
}

/// Any hypercall: function ID `function` (64-bit, garbage allowed) and x1-x3;
/// returns x0. For tests that feed the hypervisor bad calls.
pub fn raw(function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    crate::psci::hvc(function, a1, a2, a3)
}

/// HV_WRITE of `len` bytes at IPA `ipa` (no splitting; any values).
pub fn write_raw(ipa: u64, len: u64) -> i64 {
    raw(u64::from(hv_abi::HV_WRITE), ipa, len, 0)
}

/// HV_STAT(BootCount): how many SYSTEM_RESETs came before this boot.
pub fn boot_count() -> Result<u64, HvError> {
    stat(Stat::BootCount)
}

fn check(ret: i64) -> Result<u64, HvError> {
    if ret < 0 { Err(HvError(ret)) } else { Ok(ret as u64) }
}

/// HV_WRITE: prints `text` as one console line (split every `MAX_WRITE` bytes).
/// The buffer's address is its IPA: the guest runs on an identity map, or with
/// the MMU off, and console buffers are never tagged.
pub fn write(text: &[u8]) {
    #[cfg(feature = "semihosting-console")]
    crate::semihosting::write_line(text);
    #[cfg(not(feature = "semihosting-console"))]
    for chunk in text.chunks(MAX_WRITE as usize) {
        hvc(HV_WRITE, chunk.as_ptr() as u64, chunk.len() as u64, 0);
    }
}

/// HV_EXIT: stops the VM with `status` (0 = success).
pub fn exit(status: u64) -> ! {
    #[cfg(feature = "semihosting-console")]
    crate::semihosting::exit(status);
    #[cfg(not(feature = "semihosting-console"))]
    {
        hvc(HV_EXIT, status, 0, 0);
        // HV_EXIT does not return; if it ever does, park the CPU.
        loop {
            // SAFETY: WFE only waits for an event.
            unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
        }
    }
}

/// HV_EVENT_SET: sets global event `index` to `value`.
pub fn event_set(index: u64, value: u64) -> Result<(), HvError> {
    check(hvc(HV_EVENT_SET, index, value, 0)).map(|_| ())
}

/// HV_EVENT_GET: the current value of global event `index`.
pub fn event_get(index: u64) -> Result<u64, HvError> {
    check(hvc(HV_EVENT_GET, index, 0, 0))
}

/// HV_YIELD: lets another vCPU pinned to this physical CPU run.
pub fn yield_now() -> Result<(), HvError> {
    check(hvc(HV_YIELD, 0, 0, 0)).map(|_| ())
}

/// HV_STAT: one of this VM's statistics.
pub fn stat(which: Stat) -> Result<u64, HvError> {
    check(hvc(HV_STAT, which as u64, 0, 0))
}

/// The three statistics, for reports.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub faults_4k: Result<u64, HvError>,
    pub faults_2m: Result<u64, HvError>,
    pub bytes_sanitised: Result<u64, HvError>,
}

impl Stats {
    pub fn read() -> Self {
        Self {
            faults_4k: stat(Stat::Faults4K),
            faults_2m: stat(Stat::Faults2M),
            bytes_sanitised: stat(Stat::BytesSanitised),
        }
    }
}

impl core::fmt::Display for Stats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        fn one(f: &mut core::fmt::Formatter<'_>, name: &str, v: Result<u64, HvError>) -> core::fmt::Result {
            match v {
                Ok(v) => write!(f, "{name}={v}"),
                Err(HvError(e)) => write!(f, "{name}=error({e})"),
            }
        }
        one(f, "faults_4k", self.faults_4k)?;
        f.write_str(" ")?;
        one(f, "faults_2m", self.faults_2m)?;
        f.write_str(" ")?;
        one(f, "bytes_sanitised", self.bytes_sanitised)
    }
}
