//! Per-VM statistics: what the stage-2 fault handler and the tag sanitiser did for
//! a VM, printed when it stops and readable by the guest (`HV_STAT`).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Counters updated from any CPU running the VM's vCPUs.
#[derive(Debug, Default)]
pub struct VmStats {
    pub faults_4k: AtomicU64,
    pub faults_2m: AtomicU64,
    /// Frames whose tags this VM's faults zeroed (others found them already sanitised).
    pub frames_sanitised: AtomicU64,
    /// Frames this VM mapped that were already sanitised (shared with a VM that got there first).
    pub frames_already_sanitised: AtomicU64,
    pub lock_acquisitions: AtomicU64,
    pub lock_contended: AtomicU64,
    /// Frames mapped into this VM that an earlier VM had used (recycled memory).
    pub frames_recycled: AtomicU64,
    pub exits: AtomicU64,
    pub hypercalls: AtomicU64,
    pub injected_aborts: AtomicU64,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl VmStats {
    /// Bytes whose tags were zeroed for this VM.
    pub fn bytes_sanitised(&self) -> u64 {
        get(&self.frames_sanitised) * crate::mm::PAGE_SIZE
    }
}

impl fmt::Display for VmStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (f4k, f2m) = (get(&self.faults_4k), get(&self.faults_2m));
        write!(
            f,
            "stage-2 faults {} (4K {f4k}, 2M {f2m}); tags sanitised {} frames ({} KiB), {} already sanitised; \
             sanitiser lock {} acquisitions, {} contended; recycled frames {}; exits {}, hypercalls {}, injected aborts {}",
            f4k + f2m,
            get(&self.frames_sanitised),
            self.bytes_sanitised() / 1024,
            get(&self.frames_already_sanitised),
            get(&self.lock_acquisitions),
            get(&self.lock_contended),
            get(&self.frames_recycled),
            get(&self.exits),
            get(&self.hypercalls),
            get(&self.injected_aborts),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let stats = VmStats::default();
        add(&stats.faults_2m, 3);
        add(&stats.faults_4k, 1);
        add(&stats.frames_sanitised, 1536);
        add(&stats.lock_acquisitions, 4);
        assert_eq!(
            stats.to_string(),
            "stage-2 faults 4 (4K 1, 2M 3); tags sanitised 1536 frames (6144 KiB), 0 already sanitised; \
             sanitiser lock 4 acquisitions, 0 contended; recycled frames 0; exits 0, hypercalls 0, injected aborts 0"
        );
    }
}
