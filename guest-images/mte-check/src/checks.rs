//! The checks, in order. Each prints one line; later ones build on the mapping and tags
//! the earlier ones set up. Anything that may fault runs in a forked child.

use std::ops::Range;

use crate::child::{ChildEnd, run_in_child};
use crate::mte::{self, GRANULE, HWCAP2_MTE, SEGV_MTEAERR, SEGV_MTESERR, TagCheckMode, TaggedMapping, page_size};

/// Size of the test mapping, in pages.
const PAGES: usize = 4;
/// Reported granules when tags are wrong (enough to see the pattern).
const SHOWN: usize = 4;

#[derive(Default)]
struct Report {
    run: u32,
    failed: u32,
}

impl Report {
    /// Prints the check's line; returns whether it passed.
    fn record(&mut self, name: &str, result: Result<(), String>) -> bool {
        self.run += 1;
        match result {
            Ok(()) => {
                println!("mte-check: {name}: ok");
                true
            }
            Err(why) => {
                self.failed += 1;
                println!("mte-check: {name}: FAIL ({why})");
                false
            }
        }
    }

    /// Prints the verdict; returns the exit status.
    fn finish(&self) -> i32 {
        if self.failed == 0 {
            println!("mte-check: PASS ({} checks)", self.run);
            0
        } else {
            println!("mte-check: FAIL ({} of {} checks failed)", self.failed, self.run);
            1
        }
    }
}

pub fn run_all() -> i32 {
    let mut report = Report::default();
    let hwcap2 = mte::hwcap2();
    let has_mte = hwcap2 & HWCAP2_MTE != 0;
    let hwcap_result = match has_mte {
        true => Ok(()),
        false => Err(format!("AT_HWCAP2 = {hwcap2:#x} lacks HWCAP2_MTE (bit 18)")),
    };
    // Without MTE every tag instruction below would be undefined (SIGILL).
    if !report.record("hwcap2-mte", hwcap_result) {
        return report.finish();
    }
    let sync = mte::enable_tag_checks(TagCheckMode::Sync).map_err(|e| format!("PR_SET_TAGGED_ADDR_CTRL: {e}"));
    if !report.record("prctl-sync", sync) {
        return report.finish();
    }
    let page = page_size();
    let mapping = match TaggedMapping::new(PAGES * page) {
        Ok(mapping) => mapping,
        Err(error) => {
            report.record("mmap-prot-mte", Err(format!("mmap PROT_MTE: {error}")));
            return report.finish();
        }
    };
    report.record("mmap-prot-mte", Ok(()));
    report.record("fresh-tags-zero", expect_tags(&mapping, 0..mapping.len(), 0));

    // A range inside page 1 that starts and ends off page boundaries: tags are per
    // 16-byte granule, not per page (what QEMU 7.2 got wrong).
    let range = page + 4 * GRANULE..page + 68 * GRANULE;
    let (tag, tagged) = tag_range(&mapping, range.clone());
    report.record("irg-stg", tagged);
    report.record("tagged-access", tagged_access(&mapping, range.clone(), tag));
    let wrong = tag % 15 + 1;
    report.record("sync-mismatched-load", sync_fault(&mapping, range.start + 5 * GRANULE + 8, wrong, Access::Load));
    report.record("sync-untagged-store", sync_fault(&mapping, range.end - GRANULE, 0, Access::Store));
    report.record("async-mismatched-store", async_fault(&mapping, range.start, wrong));
    report.record("fork-keeps-tags", fork_keeps_tags(&mapping, 2 * page..3 * page));
    report.finish()
}

/// Every granule of `range` has allocation tag `tag`.
fn expect_tags(mapping: &TaggedMapping, range: Range<usize>, tag: u8) -> Result<(), String> {
    let wrong = mapping.tags_differing(range.start, range.len(), tag, SHOWN);
    if wrong.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = wrong.iter().map(|(offset, found)| format!("+{offset:#x} has {found}")).collect();
    Err(format!("expected tag {tag} in +{:#x}..+{:#x}: {}", range.start, range.end, shown.join(", ")))
}

/// IRG picks a non-zero random tag; STG sets it on `range` only. Returns the tag even
/// when the check fails, so the later checks still run (and say what else is wrong).
fn tag_range(mapping: &TaggedMapping, range: Range<usize>) -> (u8, Result<(), String>) {
    let tag = mte::random_tag(mapping.addr(range.start));
    if tag == 0 {
        return (tag, Err("IRG returned tag 0 although the include mask excludes it".into()));
    }
    mapping.store_tags(range.start, range.len(), tag);
    let result = expect_tags(mapping, range.clone(), tag)
        .and_then(|()| expect_tags(mapping, 0..range.start, 0))
        .and_then(|()| expect_tags(mapping, range.end..mapping.len(), 0))
        .map_err(|why| format!("after STG of tag {tag}: {why}"));
    (tag, result)
}

/// Stores and loads through a correctly tagged pointer work (sync checks on).
fn tagged_access(mapping: &TaggedMapping, range: Range<usize>, tag: u8) -> Result<(), String> {
    let end = run_in_child(None, || {
        let words = range.len() / 8;
        let base = mapping.tagged_ptr::<u64>(range.start, tag);
        for i in 0..words {
            // SAFETY: inside the mapping, 8-byte aligned, carrying the granule's tag.
            unsafe { base.add(i).write_volatile(0x5eed_0000_0000_0000 | i as u64) };
        }
        // SAFETY: as above.
        let intact = (0..words).all(|i| unsafe { base.add(i).read_volatile() } == 0x5eed_0000_0000_0000 | i as u64);
        if intact { 0 } else { 1 }
    })
    .map_err(|e| format!("fork: {e}"))?;
    match end {
        ChildEnd::Exited(0) => Ok(()),
        ChildEnd::Exited(1) => Err("data read back differs from data written".into()),
        other => Err(format!("correctly tagged accesses failed: {other}")),
    }
}

#[derive(Clone, Copy)]
enum Access {
    Load,
    Store,
}

/// An access at `offset` through logical tag `tag` (not the memory's) raises SIGSEGV
/// with `SEGV_MTESERR` at that address.
fn sync_fault(mapping: &TaggedMapping, offset: usize, tag: u8, access: Access) -> Result<(), String> {
    let end = run_in_child(Some(mapping.addr(offset)), || {
        let ptr = mapping.tagged_ptr::<u64>(offset, tag);
        match access {
            // SAFETY: inside the mapping and aligned; the tag mismatch is the point: the
            // child dies in its SIGSEGV handler.
            Access::Load => drop(unsafe { ptr.read_volatile() }),
            // SAFETY: as above.
            Access::Store => unsafe { ptr.write_volatile(0xbad) },
        }
        1
    })
    .map_err(|e| format!("fork: {e}"))?;
    match end {
        ChildEnd::Faulted { si_code: SEGV_MTESERR, at_expected_address: true } => Ok(()),
        ChildEnd::Exited(1) => Err(format!("access with tag {tag} to memory tagged otherwise did not fault")),
        other => Err(format!("expected SIGSEGV/SEGV_MTESERR ({SEGV_MTESERR}) at the access, got {other}")),
    }
}

/// In async mode a mismatched store only sets a flag; the kernel raises SIGSEGV with
/// `SEGV_MTEAERR` when the task next enters it (here: a syscall).
fn async_fault(mapping: &TaggedMapping, offset: usize, tag: u8) -> Result<(), String> {
    let end = run_in_child(None, || {
        if mte::enable_tag_checks(TagCheckMode::Async).is_err() {
            return 2;
        }
        // SAFETY: inside the mapping and aligned; the mismatch is reported asynchronously.
        unsafe { mapping.tagged_ptr::<u64>(offset, tag).write_volatile(0xbad) };
        for _ in 0..3 {
            // SAFETY: getppid has no arguments or side effects; it is just a kernel entry.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        1
    })
    .map_err(|e| format!("fork: {e}"))?;
    match end {
        ChildEnd::Faulted { si_code: SEGV_MTEAERR, .. } => Ok(()),
        ChildEnd::Exited(1) => Err("mismatched store in async mode was never reported".into()),
        ChildEnd::Exited(2) => Err("PR_SET_TAGGED_ADDR_CTRL with PR_MTE_TCF_ASYNC failed".into()),
        other => Err(format!("expected SIGSEGV/SEGV_MTEAERR ({SEGV_MTEAERR}), got {other}")),
    }
}

/// A forked child sees the parent's tags on the shared page, and still after its first
/// write makes its own copy (the kernel must copy tags with the data); the parent's
/// tags are unchanged afterwards.
fn fork_keeps_tags(mapping: &TaggedMapping, range: Range<usize>) -> Result<(), String> {
    let tag = mte::random_tag(mapping.addr(range.start));
    mapping.store_tags(range.start, range.len(), tag);
    expect_tags(mapping, range.clone(), tag).map_err(|why| format!("in the parent before fork: {why}"))?;
    let end = run_in_child(None, || {
        if expect_tags(mapping, range.clone(), tag).is_err() {
            return 2;
        }
        let ptr = mapping.tagged_ptr::<u64>(range.start, tag);
        // SAFETY: inside the mapping, aligned, with the page's tag; this first write
        // makes the child's private copy of the page.
        unsafe { ptr.write_volatile(0xc0ffee) };
        if expect_tags(mapping, range.clone(), tag).is_err() {
            return 3;
        }
        // SAFETY: as above.
        if unsafe { ptr.read_volatile() } != 0xc0ffee {
            return 4;
        }
        0
    })
    .map_err(|e| format!("fork: {e}"))?;
    match end {
        ChildEnd::Exited(0) => {}
        ChildEnd::Exited(2) => {
            return Err(format!("the child does not see tag {tag} on the shared page"));
        }
        ChildEnd::Exited(3) => {
            return Err(format!("tag {tag} lost when the child copied the page on write"));
        }
        ChildEnd::Exited(4) => return Err("the child reads back other data than it wrote".into()),
        ChildEnd::Faulted { si_code, .. } => {
            return Err(format!("the child's first write faulted (si_code {si_code}): tags lost on copy-on-write"));
        }
        other => return Err(format!("child: {other}")),
    }
    expect_tags(mapping, range, tag).map_err(|why| format!("in the parent after the child wrote: {why}"))
}
