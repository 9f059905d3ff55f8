//! The Linux user-space MTE interface (Documentation/arch/arm64/memory-tagging-extension.rst),
//! over the tag instructions of the `mte_insn` crate, so the checks read as plain Rust.
//!
//! The constants are the kernel's uapi values: the libc crate and musl do not define them
//! for aarch64 musl.

use std::io;
use std::ptr::NonNull;

use libc::{c_int, c_ulong};

/// `AT_HWCAP2` bit: the kernel supports MTE for user space (`HWCAP2_MTE`).
pub const HWCAP2_MTE: c_ulong = 1 << 18;
/// `mmap`/`mprotect` flag: tag checks apply to this mapping and it has tag storage.
pub const PROT_MTE: c_int = 0x20;
pub const PR_SET_TAGGED_ADDR_CTRL: c_int = 55;
pub const PR_GET_TAGGED_ADDR_CTRL: c_int = 56;
pub const PR_TAGGED_ADDR_ENABLE: c_ulong = 1;
pub const PR_MTE_TCF_SYNC: c_ulong = 1 << 1;
pub const PR_MTE_TCF_ASYNC: c_ulong = 1 << 2;
/// Position of the 16-bit mask of tags `IRG` may generate (written to GCR_EL1 by the kernel).
pub const PR_MTE_TAG_SHIFT: u32 = 3;
/// Every tag but 0: a random tag then always differs from the tag of fresh memory.
pub const IRG_INCLUDE_MASK: c_ulong = 0xfffe;
/// `si_code` of SIGSEGV for an asynchronous tag check fault (no address known).
pub const SEGV_MTEAERR: i32 = 8;
/// `si_code` of SIGSEGV for a synchronous tag check fault (`si_addr` is the access).
pub const SEGV_MTESERR: i32 = 9;

/// Bytes covered by one allocation tag, in this program's offset type.
pub const GRANULE: usize = mte_insn::GRANULE as usize;
/// Address bits below the top byte (Linux reports fault addresses without it).
pub const ADDRESS_MASK: usize = mte_insn::ADDRESS_MASK as usize;

/// How a tag mismatch is reported.
#[derive(Clone, Copy, Debug)]
pub enum TagCheckMode {
    /// The faulting access itself raises SIGSEGV (`SEGV_MTESERR`).
    Sync,
    /// A flag is set; the kernel raises SIGSEGV (`SEGV_MTEAERR`) on its next entry.
    Async,
}

/// `getauxval(AT_HWCAP2)`.
pub fn hwcap2() -> c_ulong {
    // SAFETY: getauxval only reads the auxiliary vector the kernel passed.
    unsafe { libc::getauxval(libc::AT_HWCAP2) }
}

/// Enables tagged addresses in syscalls and tag checks in `mode` for this thread (and the
/// processes it forks afterwards), letting `IRG` pick any non-zero tag. Reads the setting
/// back, so a kernel that silently ignores part of it is caught.
pub fn enable_tag_checks(mode: TagCheckMode) -> io::Result<()> {
    let tcf = match mode {
        TagCheckMode::Sync => PR_MTE_TCF_SYNC,
        TagCheckMode::Async => PR_MTE_TCF_ASYNC,
    };
    let control = PR_TAGGED_ADDR_ENABLE | tcf | (IRG_INCLUDE_MASK << PR_MTE_TAG_SHIFT);
    // SAFETY: prctl with integer arguments; it changes only this thread's MTE settings.
    if unsafe { libc::prctl(PR_SET_TAGGED_ADDR_CTRL, control, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; PR_GET_TAGGED_ADDR_CTRL only reads the setting.
    let read_back = unsafe { libc::prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0) };
    if read_back < 0 {
        return Err(io::Error::last_os_error());
    }
    if read_back as c_ulong != control {
        return Err(io::Error::other(format!("PR_GET_TAGGED_ADDR_CTRL reads {read_back:#x}, set {control:#x}")));
    }
    Ok(())
}

/// `IRG`: a random tag for `addr` from the include mask set by `enable_tag_checks`.
/// MTE must be present (checked before any tag instruction runs).
pub fn random_tag(addr: usize) -> u8 {
    mte_insn::tag_of(mte_insn::irg(addr as u64, 0))
}

/// Anonymous private memory mapped with `PROT_MTE`, unmapped on drop.
pub struct TaggedMapping {
    base: NonNull<u8>,
    len: usize,
}

impl TaggedMapping {
    /// Maps `len` bytes (a multiple of the page size) read/write with `PROT_MTE`.
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping chosen by the kernel; it aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE | PROT_MTE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Self { base, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The untagged address of byte `offset`.
    pub fn addr(&self, offset: usize) -> usize {
        assert!(offset < self.len, "offset {offset:#x} outside the {:#x}-byte mapping", self.len);
        self.base.as_ptr().addr() + offset
    }

    /// A pointer to byte `offset` carrying logical tag `tag` (keeps the mapping's provenance).
    pub fn tagged_ptr<T>(&self, offset: usize, tag: u8) -> *mut T {
        mte_insn::with_tag_ptr(self.base.as_ptr().with_addr(self.addr(offset)), tag).cast::<T>()
    }

    /// `LDG`: the allocation tag of the granule holding byte `offset`.
    pub fn load_tag(&self, offset: usize) -> u8 {
        // SAFETY: LDG reads only tag storage of an address inside this PROT_MTE mapping;
        // it needs no particular logical tag.
        unsafe { mte_insn::ldg(self.addr(offset) as u64) }
    }

    /// `STG`: sets the allocation tag of every granule of `[offset, offset + len)` (both
    /// multiples of the granule) to `tag`. Pointers with another tag stop working there.
    pub fn store_tags(&self, offset: usize, len: usize, tag: u8) {
        assert!(offset.is_multiple_of(GRANULE) && len.is_multiple_of(GRANULE), "unaligned tag range");
        assert!(offset + len <= self.len, "tag range outside the mapping");
        for granule in (offset..offset + len).step_by(GRANULE) {
            // SAFETY: STG writes only the tag storage of a granule inside this PROT_MTE
            // mapping, which Rust code reaches through raw pointers only.
            unsafe { mte_insn::stg(mte_insn::with_tag(self.addr(granule) as u64, tag)) };
        }
    }

    /// Offsets of the granules of `[offset, offset + len)` whose tag is not `tag`, with
    /// their tags (at most `limit` of them).
    pub fn tags_differing(&self, offset: usize, len: usize, tag: u8, limit: usize) -> Vec<(usize, u8)> {
        (offset..offset + len)
            .step_by(GRANULE)
            .map(|granule| (granule, self.load_tag(granule)))
            .filter(|&(_, found)| found != tag)
            .take(limit)
            .collect()
    }
}

impl Drop for TaggedMapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` created; no references into it outlive self.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf only reads a system value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}
