//! The physical CPUs the hypervisor runs on: which of them have come online, and
//! each one's MPIDR affinity (what an SGI to it names). Each CPU writes its own
//! record once, when it reports in at bring-up; every CPU reads them afterwards.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub use crate::platform::MAX_CPUS;

/// What one CPU published about itself.
struct CpuRecord {
    online: AtomicBool,
    mpidr: AtomicU64,
}

/// The record of every CPU the platform can list, by the hypervisor's CPU index
/// (position in the device tree's `/cpus`).
pub struct CpuTable {
    records: [CpuRecord; MAX_CPUS],
    online_count: AtomicUsize,
}

impl CpuTable {
    /// Every CPU offline.
    pub const fn new() -> Self {
        Self {
            records: [const { CpuRecord { online: AtomicBool::new(false), mpidr: AtomicU64::new(0) } }; MAX_CPUS],
            online_count: AtomicUsize::new(0),
        }
    }

    /// Marks CPU `index`, whose affinity is `mpidr`, online. Called once by that CPU.
    pub fn report_in(&self, index: usize, mpidr: u64) {
        let record = &self.records[index];
        record.mpidr.store(mpidr, Ordering::Relaxed);
        // Release: whoever sees the CPU online also sees its MPIDR.
        record.online.store(true, Ordering::Release);
        self.online_count.fetch_add(1, Ordering::AcqRel);
    }

    /// Number of CPUs that reported in.
    pub fn online_count(&self) -> usize {
        self.online_count.load(Ordering::Acquire)
    }

    /// Whether CPU `index` reported in.
    pub fn is_online(&self, index: usize) -> bool {
        self.records.get(index).is_some_and(|record| record.online.load(Ordering::Acquire))
    }

    /// The MPIDR affinity CPU `index` reported (0 until it has); `None` past
    /// [`MAX_CPUS`].
    pub fn mpidr(&self, index: usize) -> Option<u64> {
        self.records.get(index).map(|record| record.mpidr.load(Ordering::Relaxed))
    }
}

impl Default for CpuTable {
    fn default() -> Self {
        Self::new()
    }
}

/// The machine's CPUs.
pub static CPUS: CpuTable = CpuTable::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_is_offline_until_it_reports_in() {
        let table = CpuTable::new();
        assert_eq!(table.online_count(), 0);
        assert!(!table.is_online(1));
        assert_eq!(table.mpidr(1), Some(0));

        table.report_in(1, 0x100);
        assert!(table.is_online(1));
        assert!(!table.is_online(0));
        assert_eq!(table.mpidr(1), Some(0x100));
        assert_eq!(table.online_count(), 1);

        table.report_in(0, 0);
        assert_eq!(table.online_count(), 2);
    }

    #[test]
    fn indices_past_the_table_are_never_online() {
        let table = CpuTable::new();
        assert!(!table.is_online(MAX_CPUS));
        assert_eq!(table.mpidr(MAX_CPUS), None);
    }
}
