//! A VM's guest-physical memory: which frames back which IPAs, allocated lazily on
//! the first stage-2 fault, in 2 MiB blocks wherever the region and the allocator
//! allow and 4 KiB frames otherwise.
//!
//! This module only decides *what* backs a faulting IPA; the caller sanitises the
//! frames' tags (see [`crate::mm::tag_state`]) and then maps them at stage 2, in
//! that order, so that nothing reaches a guest before its tags are zero.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::mm::frame_alloc::OutOfMemory;
use crate::mm::{BLOCK_SIZE, Ipa, PAGE_SHIFT, PAGE_SIZE, PhysAddr};

const PAGES_PER_BLOCK: usize = (BLOCK_SIZE / PAGE_SIZE) as usize;

/// Where frames come from (the frame allocator, or a fake in tests).
pub trait FrameSource {
    /// A naturally aligned, physically contiguous run of `bytes` (a power of two).
    fn allocate(&mut self, bytes: u64) -> Result<PhysAddr, OutOfMemory>;
    fn free(&mut self, pa: PhysAddr, bytes: u64);
}

/// How the frames behind a mapping must be prepared before the guest sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preparation {
    /// Never used by this VM: zero data and tags together (`DC GZVA`).
    ZeroDataAndTags,
    /// Holds data the hypervisor put there (a loaded image, a shared region whose
    /// data another VM may already have written): zero tags only, keep the data.
    ZeroTagsOnly,
}

/// The answer to a stage-2 fault: map `size` bytes at `ipa` to `pa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backing {
    pub ipa: Ipa,
    pub pa: PhysAddr,
    pub size: u64,
    pub preparation: Preparation,
}

/// Why a fault could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// The IPA is in no region of this VM.
    NotGuestMemory {
        ipa: Ipa,
    },
    OutOfMemory(OutOfMemory),
}

impl core::fmt::Display for FaultError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotGuestMemory { ipa } => write!(f, "IPA {ipa:#x} is not guest memory"),
            Self::OutOfMemory(e) => write!(f, "{e}"),
        }
    }
}

/// The frames behind one 2 MiB-aligned chunk of a region.
#[derive(Debug)]
enum Chunk {
    Unbacked,
    Block {
        pa: PhysAddr,
        preparation: Preparation,
    },
    /// Individual frames ([`NO_FRAME`] = none yet); used at unaligned region edges
    /// and when no 2 MiB block was free.
    Pages(Box<[PhysAddr; PAGES_PER_BLOCK]>),
}

/// "No frame yet" in [`Chunk::Pages`] (rather than an `Option`, which would double
/// the table's size). Frames are never at physical address 0 in RAM we manage: the
/// allocator excludes page 0 on every platform (the image, DTB or firmware live
/// below RAM's first frame).
const NO_FRAME: PhysAddr = PhysAddr::new(0);

/// Memory backed by the same frames in every VM that maps it, allocated up front
/// (both VMs must see the same frames) with its data zeroed; its tags are sanitised
/// lazily, by whichever VM faults on a frame first.
#[derive(Debug)]
pub struct SharedMemory {
    pub name: alloc::string::String,
    pub size: u64,
    /// Base of each 2 MiB block, or of each 4 KiB frame when `block_size` is 4 KiB.
    frames: Vec<PhysAddr>,
    block_size: u64,
    /// Stage-2 mapping size: 2 MiB where the backing allows, or always 4 KiB.
    mapping_size: u64,
}

impl SharedMemory {
    /// Allocates `size` bytes (a multiple of 2 MiB) as 2 MiB blocks, or as 4 KiB
    /// frames if blocks run out; `zero_data` is called on each allocation. VMs map
    /// it in `mapping_size` units (4 KiB, or 2 MiB where the backing allows).
    pub fn allocate(
        name: &str,
        size: u64,
        mapping_size: u64,
        frames: &mut impl FrameSource,
        mut zero_data: impl FnMut(PhysAddr, u64),
    ) -> Result<Self, OutOfMemory> {
        let mut blocks = Vec::new();
        for _ in 0..size / BLOCK_SIZE {
            match frames.allocate(BLOCK_SIZE) {
                Ok(pa) => blocks.push(pa),
                Err(_) => break,
            }
        }
        if blocks.len() as u64 * BLOCK_SIZE == size {
            blocks.iter().for_each(|&pa| zero_data(pa, BLOCK_SIZE));
            return Ok(Self { name: name.into(), size, frames: blocks, block_size: BLOCK_SIZE, mapping_size });
        }
        blocks.iter().for_each(|&pa| frames.free(pa, BLOCK_SIZE));
        let mut pages = Vec::new();
        for _ in 0..size / PAGE_SIZE {
            match frames.allocate(PAGE_SIZE) {
                Ok(pa) => pages.push(pa),
                Err(e) => {
                    pages.iter().for_each(|&pa| frames.free(pa, PAGE_SIZE));
                    return Err(e);
                }
            }
        }
        pages.iter().for_each(|&pa| zero_data(pa, PAGE_SIZE));
        Ok(Self { name: name.into(), size, frames: pages, block_size: PAGE_SIZE, mapping_size })
    }

    /// Every (pa, size) run backing the region, e.g. to free it.
    pub fn runs(&self) -> impl Iterator<Item = (PhysAddr, u64)> + '_ {
        self.frames.iter().map(move |&pa| (pa, self.block_size))
    }

    /// Returns the frames to `frames`. Call once, after every VM unmapped it.
    pub fn free(&self, frames: &mut impl FrameSource) {
        self.runs().for_each(|(pa, size)| frames.free(pa, size));
    }

    fn backing(&self, region_ipa: Ipa, offset: u64) -> Backing {
        let index = (offset / self.block_size) as usize;
        let within = offset % self.block_size;
        let blocks_possible = self.block_size == BLOCK_SIZE && self.mapping_size == BLOCK_SIZE;
        let size = if blocks_possible && region_ipa.is_aligned(BLOCK_SIZE) { BLOCK_SIZE } else { PAGE_SIZE };
        let pa_base = self.frames[index] + (within & !(size - 1));
        Backing { ipa: region_ipa + (offset & !(size - 1)), pa: pa_base, size, preparation: Preparation::ZeroTagsOnly }
    }
}

/// One IPA range of a VM.
#[derive(Debug)]
enum RegionMemory {
    Private(Vec<Chunk>),
    Shared(Arc<SharedMemory>),
}

#[derive(Debug)]
struct Region {
    ipa: Ipa,
    size: u64,
    memory: RegionMemory,
}

impl Region {
    fn contains(&self, ipa: Ipa) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size
    }
}

/// All of a VM's guest memory.
#[derive(Debug, Default)]
pub struct GuestMemory {
    regions: Vec<Region>,
}

impl GuestMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds private RAM at `ipa` (4 KiB aligned), backed lazily.
    pub fn add_private(&mut self, ipa: Ipa, size: u64) {
        let first_chunk = ipa.as_u64() / BLOCK_SIZE;
        let last_chunk = ((ipa + size).as_u64() - 1) / BLOCK_SIZE;
        let chunks = (first_chunk..=last_chunk).map(|_| Chunk::Unbacked).collect();
        self.regions.push(Region { ipa, size, memory: RegionMemory::Private(chunks) });
    }

    /// Maps `shared` at `ipa` in this VM.
    pub fn add_shared(&mut self, ipa: Ipa, shared: Arc<SharedMemory>) {
        let size = shared.size;
        self.regions.push(Region { ipa, size, memory: RegionMemory::Shared(shared) });
    }

    /// Whether `ipa` lies in any region.
    pub fn contains(&self, ipa: Ipa) -> bool {
        self.regions.iter().any(|r| r.contains(ipa))
    }

    /// Places `data` at `ipa` (private RAM) ahead of the guest's first access: backs
    /// the chunks it touches now, with `zero_data` run over each new allocation
    /// before the copy. Those chunks are then prepared with tags-only sanitising.
    pub fn preload(
        &mut self,
        ipa: Ipa,
        data: &[u8],
        frames: &mut impl FrameSource,
        mut zero_data: impl FnMut(PhysAddr, u64),
        mut copy: impl FnMut(PhysAddr, &[u8]),
    ) -> Result<(), FaultError> {
        let mut offset = 0u64;
        while offset < data.len() as u64 {
            let at = ipa + offset;
            let backing = self.back(at, frames, Preparation::ZeroTagsOnly, &mut zero_data)?;
            let within = at - backing.ipa;
            let len = (backing.size - within).min(data.len() as u64 - offset);
            copy(backing.pa + within, &data[offset as usize..(offset + len) as usize]);
            offset += len;
        }
        Ok(())
    }

    /// Resolves a stage-2 translation fault at `ipa`: the frames to map there
    /// (allocating them on first touch) and how to prepare them. `on_allocation`
    /// runs once per newly allocated run: VMs without MTE zero the data there,
    /// since they have no per-frame sanitised state to make a later zeroing safe.
    pub fn resolve_fault(
        &mut self,
        ipa: Ipa,
        frames: &mut impl FrameSource,
        mut on_allocation: impl FnMut(PhysAddr, u64),
    ) -> Result<Backing, FaultError> {
        self.back(ipa, frames, Preparation::ZeroDataAndTags, &mut on_allocation)
    }

    fn back(
        &mut self,
        ipa: Ipa,
        frames: &mut impl FrameSource,
        fresh: Preparation,
        zero_data: &mut impl FnMut(PhysAddr, u64),
    ) -> Result<Backing, FaultError> {
        let region = self.regions.iter_mut().find(|r| r.contains(ipa)).ok_or(FaultError::NotGuestMemory { ipa })?;
        let (region_ipa, region_size) = (region.ipa, region.size);
        let chunks = match &mut region.memory {
            RegionMemory::Shared(shared) => return Ok(shared.backing(region_ipa, ipa - region_ipa)),
            RegionMemory::Private(chunks) => chunks,
        };
        let chunk_ipa = ipa.align_down(BLOCK_SIZE);
        let chunk = &mut chunks[((chunk_ipa - region_ipa.align_down(BLOCK_SIZE)) / BLOCK_SIZE) as usize];
        let whole_chunk_in_region = chunk_ipa >= region_ipa && chunk_ipa + BLOCK_SIZE <= region_ipa + region_size;
        if let Chunk::Unbacked = chunk {
            if whole_chunk_in_region && let Ok(pa) = frames.allocate(BLOCK_SIZE) {
                zero_data(pa, BLOCK_SIZE);
                *chunk = Chunk::Block { pa, preparation: fresh };
            }
            if let Chunk::Unbacked = chunk {
                *chunk = Chunk::Pages(Box::new([NO_FRAME; PAGES_PER_BLOCK]));
            }
        }
        match chunk {
            Chunk::Block { pa, preparation } => {
                Ok(Backing { ipa: chunk_ipa, pa: *pa, size: BLOCK_SIZE, preparation: *preparation })
            }
            Chunk::Pages(pages) => {
                let index = ((ipa - chunk_ipa) >> PAGE_SHIFT) as usize;
                let page_ipa = ipa.align_down(PAGE_SIZE);
                if pages[index] == NO_FRAME {
                    let pa = frames.allocate(PAGE_SIZE).map_err(FaultError::OutOfMemory)?;
                    zero_data(pa, PAGE_SIZE);
                    pages[index] = pa;
                    return Ok(Backing { ipa: page_ipa, pa, size: PAGE_SIZE, preparation: fresh });
                }
                // Already backed (preloaded, or mapped by another vCPU meanwhile).
                Ok(Backing { ipa: page_ipa, pa: pages[index], size: PAGE_SIZE, preparation: Preparation::ZeroTagsOnly })
            }
            Chunk::Unbacked => unreachable!("backed above"),
        }
    }

    /// Every private (pa, size) run this VM owns, for freeing at destruction.
    pub fn private_runs(&self) -> Vec<(PhysAddr, u64)> {
        let mut runs = Vec::new();
        for region in &self.regions {
            if let RegionMemory::Private(chunks) = &region.memory {
                for chunk in chunks {
                    match chunk {
                        Chunk::Unbacked => {}
                        Chunk::Block { pa, .. } => runs.push((*pa, BLOCK_SIZE)),
                        Chunk::Pages(pages) => {
                            runs.extend(pages.iter().filter(|&&pa| pa != NO_FRAME).map(|&pa| (pa, PAGE_SIZE)))
                        }
                    }
                }
            }
        }
        runs
    }

    /// The shared regions this VM maps.
    pub fn shared(&self) -> impl Iterator<Item = &Arc<SharedMemory>> {
        self.regions.iter().filter_map(|r| match &r.memory {
            RegionMemory::Shared(s) => Some(s),
            RegionMemory::Private(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Hands out addresses from a counter; can refuse 2 MiB blocks or everything.
    struct FakeFrames {
        next: PhysAddr,
        blocks_left: usize,
        live: BTreeSet<(PhysAddr, u64)>,
    }

    impl FakeFrames {
        fn new(blocks_left: usize) -> Self {
            Self { next: PhysAddr::new(0x8000_0000), blocks_left, live: BTreeSet::new() }
        }
    }

    fn ipa(raw: u64) -> Ipa {
        Ipa::new(raw)
    }

    impl FrameSource for FakeFrames {
        fn allocate(&mut self, bytes: u64) -> Result<PhysAddr, OutOfMemory> {
            if bytes == BLOCK_SIZE {
                if self.blocks_left == 0 {
                    return Err(OutOfMemory { requested_bytes: bytes, free_bytes: 0 });
                }
                self.blocks_left -= 1;
            }
            let pa = self.next.align_up(bytes).expect("fake frames stay far below the top");
            self.next = pa + bytes;
            self.live.insert((pa, bytes));
            Ok(pa)
        }
        fn free(&mut self, pa: PhysAddr, bytes: u64) {
            assert!(self.live.remove(&(pa, bytes)), "double or bogus free of {pa:#x}");
        }
    }

    #[test]
    fn aligned_ram_faults_in_whole_blocks_once() {
        let mut memory = GuestMemory::new();
        memory.add_private(ipa(0x4000_0000), 8 * BLOCK_SIZE);
        let mut frames = FakeFrames::new(100);
        let first = memory.resolve_fault(ipa(0x4012_3456), &mut frames, |_, _| {}).unwrap();
        assert_eq!(first.ipa, ipa(0x4000_0000));
        assert_eq!(first.size, BLOCK_SIZE);
        assert_eq!(first.preparation, Preparation::ZeroDataAndTags);
        // Another vCPU faulting in the same chunk gets the same block.
        assert_eq!(memory.resolve_fault(ipa(0x4000_0008), &mut frames, |_, _| {}).unwrap(), first);
        assert_eq!(frames.live.len(), 1);
        assert_eq!(
            memory.resolve_fault(ipa(0x3fff_f000), &mut frames, |_, _| {}),
            Err(FaultError::NotGuestMemory { ipa: ipa(0x3fff_f000) })
        );
    }

    /// Guest-chosen IPAs at the edges of the address space and of the regions are
    /// answered, never wrapped or panicked on.
    #[test]
    fn hostile_ipas_are_not_guest_memory() {
        let mut memory = GuestMemory::new();
        memory.add_private(ipa(0x4000_0000), 2 * BLOCK_SIZE);
        let mut frames = FakeFrames::new(100);
        for at in [0, 0x3fff_ffff, 0x4040_0000, 1 << 48, u64::MAX - 0xfff, u64::MAX] {
            assert!(!memory.contains(ipa(at)), "{at:#x}");
            assert_eq!(
                memory.resolve_fault(ipa(at), &mut frames, |_, _| {}),
                Err(FaultError::NotGuestMemory { ipa: ipa(at) })
            );
        }
        assert!(frames.live.is_empty());
        let last = memory.resolve_fault(ipa(0x403f_ffff), &mut frames, |_, _| {}).unwrap();
        assert_eq!((last.ipa, last.size), (ipa(0x4020_0000), BLOCK_SIZE));
    }

    #[test]
    fn falls_back_to_pages_when_blocks_run_out_or_edges_are_unaligned() {
        let mut memory = GuestMemory::new();
        memory.add_private(ipa(0x4000_0000), 2 * BLOCK_SIZE);
        memory.add_private(ipa(0x5000_1000), 0x3000);
        let mut frames = FakeFrames::new(0);
        let page = memory.resolve_fault(ipa(0x4000_5008), &mut frames, |_, _| {}).unwrap();
        assert_eq!(
            (page.ipa, page.size, page.preparation),
            (ipa(0x4000_5000), PAGE_SIZE, Preparation::ZeroDataAndTags)
        );
        let edge = memory.resolve_fault(ipa(0x5000_2000), &mut frames, |_, _| {}).unwrap();
        assert_eq!((edge.ipa, edge.size), (ipa(0x5000_2000), PAGE_SIZE));
        assert!(memory.resolve_fault(ipa(0x5000_4000), &mut frames, |_, _| {}).is_err());
        assert_eq!(memory.private_runs().len(), 2);
    }

    #[test]
    fn preloaded_data_is_kept_and_only_tags_are_sanitised() {
        let mut memory = GuestMemory::new();
        memory.add_private(ipa(0x4000_0000), 4 * BLOCK_SIZE);
        let mut frames = FakeFrames::new(100);
        let image = vec![0xAB; (BLOCK_SIZE + 10) as usize];
        let (mut zeroed, mut copied) = (Vec::new(), 0usize);
        memory
            .preload(
                ipa(0x4000_0000),
                &image,
                &mut frames,
                |pa, len| zeroed.push((pa, len)),
                |_, bytes| copied += bytes.len(),
            )
            .unwrap();
        assert_eq!(copied, image.len());
        assert_eq!(zeroed.len(), 2, "both blocks the image touches are zeroed before the copy");
        let fault = memory.resolve_fault(ipa(0x4020_0004), &mut frames, |_, _| {}).unwrap();
        assert_eq!(fault.preparation, Preparation::ZeroTagsOnly);
        let untouched = memory.resolve_fault(ipa(0x4040_0000), &mut frames, |_, _| {}).unwrap();
        assert_eq!(untouched.preparation, Preparation::ZeroDataAndTags);
    }

    #[test]
    fn shared_memory_resolves_to_the_same_frames_in_every_vm() {
        let mut frames = FakeFrames::new(100);
        let shared =
            Arc::new(SharedMemory::allocate("race", 2 * BLOCK_SIZE, BLOCK_SIZE, &mut frames, |_, _| {}).unwrap());
        let (mut a, mut b) = (GuestMemory::new(), GuestMemory::new());
        a.add_shared(ipa(0x1_0000_0000), shared.clone());
        b.add_shared(ipa(0x1_0000_0000), shared.clone());
        let in_a = a.resolve_fault(ipa(0x1_0020_1000), &mut frames, |_, _| {}).unwrap();
        let in_b = b.resolve_fault(ipa(0x1_0020_1fff), &mut frames, |_, _| {}).unwrap();
        assert_eq!(in_a, in_b);
        assert_eq!(in_a.preparation, Preparation::ZeroTagsOnly);
        assert_eq!(in_a.size, BLOCK_SIZE);
        assert!(a.private_runs().is_empty());
        // Without 2 MiB blocks the region is built from frames and mapped page by page.
        let mut no_blocks = FakeFrames::new(1);
        let paged = SharedMemory::allocate("p", 2 * BLOCK_SIZE, BLOCK_SIZE, &mut no_blocks, |_, _| {}).unwrap();
        assert_eq!(no_blocks.live.len(), 1024, "the one block it got was given back");
        let mut c = GuestMemory::new();
        c.add_shared(ipa(0x1_0000_0000), Arc::new(paged));
        assert_eq!(c.resolve_fault(ipa(0x1_0000_3008), &mut no_blocks, |_, _| {}).unwrap().size, PAGE_SIZE);
        // Block-backed but configured for 4 KiB mappings: every page is its own fault.
        let mut frames = FakeFrames::new(100);
        let small = Arc::new(SharedMemory::allocate("s", BLOCK_SIZE, PAGE_SIZE, &mut frames, |_, _| {}).unwrap());
        let mut d = GuestMemory::new();
        d.add_shared(ipa(0x1_0000_0000), small);
        let page = d.resolve_fault(ipa(0x1_0000_5010), &mut frames, |_, _| {}).unwrap();
        assert_eq!((page.ipa, page.size), (ipa(0x1_0000_5000), PAGE_SIZE));
    }

    #[test]
    fn destruction_returns_every_frame() {
        let mut memory = GuestMemory::new();
        memory.add_private(ipa(0x4000_0000), 3 * BLOCK_SIZE);
        let mut frames = FakeFrames::new(1);
        for at in [0x4000_0000, 0x4020_0000, 0x4020_1000, 0x4040_0000] {
            memory.resolve_fault(ipa(at), &mut frames, |_, _| {}).unwrap();
        }
        for (pa, size) in memory.private_runs() {
            frames.free(pa, size);
        }
        assert!(frames.live.is_empty());
    }
}
