//! What the EL1 vectors call: expected synchronous exceptions (recorded, then the
//! instruction skipped, or re-run for debug exceptions, whose cause the handler
//! removes), interrupts (acknowledged, counted per vCPU and INTID, ended), and
//! everything else (reported, then the machine is switched off).
//!
//! Per vCPU (MPIDR_EL1.Aff0): an interrupt log and the "expect a fault" state.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::console::println;
use crate::entry::{Frame, layout};
use crate::{cpu, gic, psci, sysreg, timer};

/// Most vCPUs the guest drives.
pub const MAX_CPUS: usize = 4;
/// INTIDs the logs count one by one (SGIs, PPIs and the SPIs the cases use).
pub const LOGGED_INTIDS: usize = 96;

/// Exception classes (ESR_EL1.EC) the cases name.
pub mod ec {
    pub const UNKNOWN: u64 = 0x00;
    pub const DATA_ABORT_SAME_EL: u64 = 0x25;
    pub const BREAKPOINT_SAME_EL: u64 = 0x31;
    pub const SOFTWARE_STEP_SAME_EL: u64 = 0x33;
    pub const WATCHPOINT_SAME_EL: u64 = 0x35;
}

/// A synchronous exception an [`expect_fault`] absorbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub esr: u64,
    pub far: u64,
    /// PSTATE bits in the handler, read before anything could change them (see
    /// [`sysreg::EntryState`]), if the expectation asked for them.
    pub entry: Option<sysreg::EntryState>,
}

impl Fault {
    pub fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// Data/instruction fault status code (ESR_EL1.ISS[5:0]).
    pub fn fsc(&self) -> u64 {
        self.esr & 0x3f
    }
}

struct CpuState {
    armed: AtomicBool,
    capture_entry: AtomicBool,
    taken: AtomicBool,
    esr: AtomicU64,
    far: AtomicU64,
    entry: AtomicU64,
    /// Interrupts acknowledged, by INTID (the last slot counts every other INTID).
    received: [AtomicU32; LOGGED_INTIDS + 1],
    /// The case's extra work per interrupt, called after counting it (0: none).
    hook: AtomicU64,
}

static CPUS: [CpuState; MAX_CPUS] = [const {
    CpuState {
        armed: AtomicBool::new(false),
        capture_entry: AtomicBool::new(false),
        taken: AtomicBool::new(false),
        esr: AtomicU64::new(0),
        far: AtomicU64::new(0),
        entry: AtomicU64::new(0),
        received: [const { AtomicU32::new(0) }; LOGGED_INTIDS + 1],
        hook: AtomicU64::new(0),
    }
}; MAX_CPUS];

fn this_cpu() -> &'static CpuState {
    &CPUS[cpu::index()]
}

/// Runs `f`, absorbing the first synchronous exception it takes on this vCPU.
pub fn expect_fault<R>(f: impl FnOnce() -> R) -> (R, Option<Fault>) {
    expect(false, f)
}

/// [`expect_fault`], also capturing the PSTATE bits the exception entry set.
/// Call only with the features [`sysreg::EntryState::read`] reads present.
pub fn expect_fault_capturing_entry<R>(f: impl FnOnce() -> R) -> (R, Option<Fault>) {
    expect(true, f)
}

fn expect<R>(capture_entry: bool, f: impl FnOnce() -> R) -> (R, Option<Fault>) {
    let state = this_cpu();
    state.taken.store(false, Ordering::SeqCst);
    state.capture_entry.store(capture_entry, Ordering::SeqCst);
    state.armed.store(true, Ordering::SeqCst);
    let result = f();
    state.armed.store(false, Ordering::SeqCst);
    let fault = state.taken.load(Ordering::SeqCst).then(|| Fault {
        esr: state.esr.load(Ordering::SeqCst),
        far: state.far.load(Ordering::SeqCst),
        entry: capture_entry.then(|| sysreg::EntryState::from_bits(state.entry.load(Ordering::SeqCst))),
    });
    (result, fault)
}

/// How many times `intid` was acknowledged on vCPU `cpu`.
pub fn received(cpu: usize, intid: u32) -> u32 {
    CPUS[cpu].received[(intid as usize).min(LOGGED_INTIDS)].load(Ordering::SeqCst)
}

/// Forgets vCPU `cpu`'s interrupt counts and hook.
pub fn reset_log(cpu: usize) {
    for count in &CPUS[cpu].received {
        count.store(0, Ordering::SeqCst);
    }
    CPUS[cpu].hook.store(0, Ordering::SeqCst);
}

/// Makes vCPU `cpu` call `hook(intid)` after counting each interrupt, before
/// ending it (with PSTATE.I masked, as the interrupt left it).
pub fn set_hook(cpu: usize, hook: fn(u32)) {
    CPUS[cpu].hook.store(hook as usize as u64, Ordering::SeqCst);
}

const KIND_SYNC: u64 = 0;
const KIND_IRQ: u64 = 1;
const KIND_NAMES: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];

/// Called by the vectors with the vector index (group * 4 + kind) and the
/// saved registers.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(index: u64, frame: *mut Frame) {
    let state = this_cpu();
    // First thing: the PSTATE the exception entry set (the cases check it).
    if index % 4 == KIND_SYNC && state.armed.load(Ordering::SeqCst) && state.capture_entry.load(Ordering::SeqCst) {
        state.entry.store(sysreg::EntryState::read().bits(), Ordering::SeqCst);
    }
    // SAFETY: `frame` is the register frame the vector code just pushed on this
    // vCPU's stack; nothing else refers to it until we return.
    let frame = unsafe { &mut *frame };
    match index % 4 {
        KIND_SYNC if state.armed.load(Ordering::SeqCst) => {
            let esr = sysreg::esr_el1();
            state.esr.store(esr, Ordering::SeqCst);
            state.far.store(sysreg::far_el1(), Ordering::SeqCst);
            state.armed.store(false, Ordering::SeqCst);
            state.taken.store(true, Ordering::SeqCst);
            match (esr >> 26) & 0x3f {
                // The debug event would recur: remove it and run the instruction.
                ec::BREAKPOINT_SAME_EL | ec::WATCHPOINT_SAME_EL | ec::SOFTWARE_STEP_SAME_EL => {
                    sysreg::disable_debug_events();
                    frame.spsr &= !sysreg::SPSR_SS;
                }
                _ => frame.elr = frame.elr.wrapping_add(4),
            }
        }
        KIND_IRQ => handle_irq(state),
        kind => {
            let esr = sysreg::esr_el1();
            println!(
                "machine-check: unexpected {} exception on vCPU {}: EC 0x{:x} ISS 0x{:x} at image offset 0x{:x}",
                KIND_NAMES[kind as usize],
                cpu::index(),
                (esr >> 26) & 0x3f,
                esr & 0x1ff_ffff,
                frame.elr.wrapping_sub(layout::image_start())
            );
            psci::system_off();
        }
    }
}

/// Acknowledges, counts and ends every pending interrupt. The timers' PPIs are
/// level-sensitive: their timer is turned off before the end of interrupt.
fn handle_irq(state: &CpuState) {
    loop {
        let intid = gic::acknowledge();
        if intid >= gic::SPURIOUS {
            return;
        }
        state.received[(intid as usize).min(LOGGED_INTIDS)].fetch_add(1, Ordering::SeqCst);
        match intid {
            timer::PHYS_TIMER_INTID => timer::physical_off(),
            timer::VIRT_TIMER_INTID => timer::virtual_off(),
            _ => {}
        }
        let hook = state.hook.load(Ordering::SeqCst);
        if hook != 0 {
            // SAFETY: only `set_hook` stores it, from a `fn(u32)`.
            let hook: fn(u32) = unsafe { core::mem::transmute::<usize, fn(u32)>(hook as usize) };
            hook(intid);
        }
        gic::end_of_interrupt(intid);
    }
}
