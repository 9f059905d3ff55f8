//! Stage-2 aborts anywhere in the IPA space: IPA 0, just past RAM, between the
//! devices, the (absent) shared-region window, high IPAs up to the IPA limit.
//! Every access must come back as a synchronous external abort at EL1 (EC 0x25,
//! DFSC 0x10) on the access, FAR = the VA unless FnV. IPAs beyond the 39-bit
//! identity map are reached through 1 GiB level-1 windows (`mmu::window`).

use hv_abi::machine::{
    DEVICES_END, GICD_BASE, GICD_SIZE, GICR_BASE, GICR_FRAME_SIZE, RAM_BASE, SHARED_BASE, UART_BASE, UART_SIZE,
    VIRTIO_MMIO_BASE,
};

use super::{Ctx, Verdict, bad, good};
use crate::boot::{self, Exception, Probe, ec};
use crate::console::{Report, text};
use crate::mmu::{self, Attrs, MemType};

const STORE_VALUE: u64 = 0x0BAD_0BAD_0BAD_0BAD;

/// Checks that `probe` (an access to `va`) took a synchronous external abort.
pub fn check_sea(probe: Probe, va: u64, write: bool, what: &str) -> Result<Exception, Report> {
    let Some(fault) = probe.fault else {
        return Err(text!("{what} at VA 0x{va:x} did not abort (read 0x{:x})", probe.value));
    };
    if !fault.is_external_abort(ec::DATA_ABORT_SAME_EL, probe.insn, va) {
        return Err(text!("{what} at VA 0x{va:x}: {fault}; want EC 0x25 DFSC 0x10, ELR 0x{:x}, FAR = VA", probe.insn));
    }
    if fault.wnr() != write {
        return Err(text!("{what} at VA 0x{va:x}: WnR = {} (ESR 0x{:x})", fault.wnr(), fault.esr));
    }
    Ok(fault)
}

/// An 8-byte load from `va` that must abort.
pub fn sea_load(va: u64) -> Result<Exception, Report> {
    // SAFETY: `va` maps an IPA outside RAM and devices: nothing is there.
    check_sea(unsafe { boot::probe_load(va) }, va, false, "load")
}

/// An 8-byte store to `va` that must abort.
pub fn sea_store(va: u64) -> Result<Exception, Report> {
    // SAFETY: `va` maps an IPA outside RAM and devices: no Rust object there.
    check_sea(unsafe { boot::probe_store(va, STORE_VALUE) }, va, true, "store")
}

/// Loads and stores at each IPA (through a window) must all abort.
fn ipas(ipas: &[u64]) -> Verdict {
    let mut last = 0;
    for &ipa in ipas {
        let va = mmu::window(ipa, Attrs::data(MemType::Normal));
        if let Err(e) = sea_load(va) {
            bad!("IPA 0x{ipa:x}: {e}");
        }
        match sea_store(va) {
            Ok(fault) => last = fault.esr,
            Err(e) => bad!("IPA 0x{ipa:x}: {e}"),
        }
    }
    good!("{} IPAs, load and store each aborted (last store ESR 0x{last:x})", ipas.len())
}

pub fn ipa_zero(_: &Ctx) -> Verdict {
    ipas(&[0, 8, 0xFF8, 0x1000])
}

pub fn past_ram_end(ctx: &Ctx) -> Verdict {
    let end = ctx.env.ram_end();
    ipas(&[end, end + 0x10, end + 0xFF8, end + (2 << 20) - 8])
}

pub fn between_devices(ctx: &Ctx) -> Verdict {
    let gicr_end = GICR_BASE + ctx.vcpus * GICR_FRAME_SIZE;
    // QEMU `virt` has its ITS at 0x0808_0000 and the platform bus at
    // 0x0C00_0000; this machine has neither. Its virtio-mmio transports end at
    // DEVICES_END; just below the first one is nothing.
    ipas(&[
        GICD_BASE + GICD_SIZE,
        0x0808_0000,
        gicr_end,
        UART_BASE - 8,
        UART_BASE + UART_SIZE,
        VIRTIO_MMIO_BASE - 8,
        DEVICES_END,
        0x0C00_0000,
        RAM_BASE - 8,
    ])
}

pub fn shared_base(ctx: &Ctx) -> Verdict {
    if ctx.env.shared_size != 0 {
        return good!("skipped (this VM has a shared region)");
    }
    ipas(&[SHARED_BASE, (SHARED_BASE + 0x1234_5678) & !7])
}

pub fn high_ipas(ctx: &Ctx) -> Verdict {
    let limit = 1u64 << ctx.pa_bits;
    let candidates = [1 << 32, 1 << 36, 1 << 38, 1 << 39, (1 << 40) + 0x40, 1 << 44, (1 << 47) | 0x5_5550];
    let mut list = [0u64; 7];
    let mut n = 0;
    for ipa in candidates.into_iter().filter(|&ipa| ipa < limit) {
        list[n] = ipa;
        n += 1;
    }
    ipas(&list[..n])
}

pub fn ipa_limit(ctx: &Ctx) -> Verdict {
    let limit = 1u64 << ctx.pa_bits;
    ipas(&[limit - 8, limit - 0x1000, limit - (1 << 30)])
}

pub fn storm(_: &Ctx) -> Verdict {
    const N: u64 = 400;
    let va = mmu::window(0, Attrs::data(MemType::Normal));
    for i in 0..N {
        let ipa = 0x1000_0000 + i * 0x9_1000;
        let result = if i % 2 == 0 { sea_load(va + ipa) } else { sea_store(va + ipa) };
        if let Err(e) = result {
            bad!("access {i} of {N} (IPA 0x{ipa:x}): {e}");
        }
    }
    good!("{N} accesses outside RAM in a row, all synchronous external aborts")
}
