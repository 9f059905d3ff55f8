//! The `HV_EVENT_SET`/`HV_EVENT_GET` counters, scoped so that only VMs the
//! configuration ties together can signal each other.
//!
//! Two VMs are tied when they name the same shared region (they can already
//! exchange data through it, so events add no new channel); ties are transitive.
//! Each group of tied VMs (a connected component) has its own [`hv_abi::EVENTS`]
//! counters; a VM with no shared region has private counters no other VM can read
//! or write. A VM keeps its group's counters across `SYSTEM_RESET`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Why an event access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEvent;

pub struct EventDomains {
    /// Group of each VM (by config index).
    domain_of: Vec<usize>,
    counters: Vec<[AtomicU64; hv_abi::EVENTS as usize]>,
}

impl EventDomains {
    /// Groups VMs by the shared regions they name: `shared_by_vm[v]` lists the
    /// region indices VM `v` maps.
    pub fn new(shared_by_vm: &[&[usize]]) -> Self {
        let count = shared_by_vm.len();
        let mut parent: Vec<usize> = (0..count).collect();
        fn root(parent: &mut [usize], mut v: usize) -> usize {
            while parent[v] != v {
                parent[v] = parent[parent[v]];
                v = parent[v];
            }
            v
        }
        for a in 0..count {
            for b in a + 1..count {
                if shared_by_vm[a].iter().any(|region| shared_by_vm[b].contains(region)) {
                    let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                    parent[ra.max(rb)] = ra.min(rb);
                }
            }
        }
        let roots: Vec<usize> = (0..count).map(|v| root(&mut parent, v)).collect();
        let mut distinct: Vec<usize> = roots.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let domain_of = roots.iter().map(|r| distinct.binary_search(r).unwrap_or(0)).collect();
        let counters = (0..distinct.len()).map(|_| [const { AtomicU64::new(0) }; hv_abi::EVENTS as usize]).collect();
        Self { domain_of, counters }
    }

    fn counter(&self, vm: usize, index: u64) -> Result<&AtomicU64, BadEvent> {
        let domain = *self.domain_of.get(vm).ok_or(BadEvent)?;
        let counters = self.counters.get(domain).ok_or(BadEvent)?;
        usize::try_from(index).ok().and_then(|i| counters.get(i)).ok_or(BadEvent)
    }

    /// `HV_EVENT_SET` by VM `vm`.
    pub fn set(&self, vm: usize, index: u64, value: u64) -> Result<(), BadEvent> {
        self.counter(vm, index)?.store(value, Ordering::Release);
        Ok(())
    }

    /// `HV_EVENT_GET` by VM `vm`.
    pub fn get(&self, vm: usize, index: u64) -> Result<u64, BadEvent> {
        Ok(self.counter(vm, index)?.load(Ordering::Acquire))
    }

    /// Whether VMs `a` and `b` see the same counters.
    pub fn tied(&self, a: usize, b: usize) -> bool {
        self.domain_of.get(a).is_some_and(|d| self.domain_of.get(b) == Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vms_sharing_a_region_share_events() {
        // 0 and 2 share region 0; 2 and 3 share region 1; 1 shares nothing.
        let events = EventDomains::new(&[&[0], &[], &[0, 1], &[1]]);
        assert!(events.tied(0, 3));
        assert!(!events.tied(0, 1));
        events.set(1, 5, 0xBAD).unwrap();
        assert_eq!(events.get(0, 5), Ok(0));
        assert_eq!(events.get(1, 5), Ok(0xBAD));
        events.set(3, 7, 42).unwrap();
        assert_eq!(events.get(0, 7), Ok(42));
    }

    #[test]
    fn bad_indices_are_refused() {
        let events = EventDomains::new(&[&[]]);
        assert_eq!(events.set(0, hv_abi::EVENTS, 1), Err(BadEvent));
        assert_eq!(events.get(0, u64::MAX), Err(BadEvent));
        assert_eq!(events.get(9, 0), Err(BadEvent));
    }
}
