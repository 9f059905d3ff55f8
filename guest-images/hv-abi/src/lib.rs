//! What the hypervisor and its guests agree on, shared by both sides: the
//! machine a guest sees ([`machine`]: addresses, interrupts, limits) and the
//! hypercall interface below.
//!
//! Calls follow the SMC Calling Convention (SMC64, fast calls) through `HVC #0`, in
//! the *vendor-specific hypervisor service* range (owner 6): function ID in x0,
//! arguments in x1..x3, result in x0 (negative values are [`Error`] codes).
//!
//! Guest entry state: EL1h, MMU and caches off, PC = [`machine::RAM_BASE`] (where
//! the image is loaded), x0 = the VM's configured `arg`, x1 = RAM base IPA, x2 = RAM
//! size in bytes, x3 = IPA of the VM's first shared region (0 if none), x4 = its size.

#![no_std]

pub mod machine;

/// Writes `x2` bytes of UTF-8 text from guest IPA `x1` (at most [`MAX_WRITE`]) to
/// the hypervisor console, as a line prefixed with the VM's name. Returns 0.
pub const HV_WRITE: u32 = 0xC600_0001;
/// Stops the calling VM with status `x1` (0 = success). Does not return.
pub const HV_EXIT: u32 = 0xC600_0002;
/// Sets event `x1` (0..[`EVENTS`]) to value `x2`. Returns 0. Events are shared only
/// by VMs the configuration ties together with a shared region (transitively); a
/// VM with no shared region has events of its own that no other VM can reach.
pub const HV_EVENT_SET: u32 = 0xC600_0003;
/// Returns the value of event `x1` (0 until set), as seen by the calling VM.
pub const HV_EVENT_GET: u32 = 0xC600_0004;
/// Lets another vCPU pinned to the same physical CPU run. Returns 0.
pub const HV_YIELD: u32 = 0xC600_0005;
/// Returns the calling VM's statistic `x1` (see [`Stat`]).
pub const HV_STAT: u32 = 0xC600_0006;

/// Largest HV_WRITE.
pub const MAX_WRITE: u64 = 256;
/// Number of global events.
pub const EVENTS: u64 = 64;

/// Statistics a guest can read about itself with [`HV_STAT`].
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Stage-2 faults resolved with a 4 KiB page.
    Faults4K = 0,
    /// Stage-2 faults resolved with a 2 MiB block.
    Faults2M = 1,
    /// Bytes whose tags the hypervisor sanitised for this VM.
    BytesSanitised = 2,
    /// How many `SYSTEM_RESET`s came before this boot of the VM (0 on its first).
    BootCount = 3,
}

/// Error codes (returned in x0 as negative numbers, SMCCC style).
#[repr(i64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Unknown function ID (SMCCC `NOT_SUPPORTED`).
    NotSupported = -1,
    /// An argument is out of range or an address is not in guest RAM.
    InvalidParameters = -2,
}
