//! Interrupt delivery: the Redistributor's sleep state, SGI bursts to a vCPU that
//! never exits, the SGI generation registers, list-register priority and recall
//! (issue 10, items 2 and 3).

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use fdt::Fdt;

use super::{Outcome, yes_no};
use crate::console::println;
use crate::exceptions::{expect_fault, received, reset_log, set_hook};
use crate::{gic, smp, sysreg, timer};

/// The SGI the bursts use.
const BURST_SGI: u32 = 2;
/// SGIs per burst.
const BURST: u32 = 100;
/// How long one SGI may take to arrive (generous: TCG on a loaded machine).
const ARRIVAL_MS: u64 = 1000;

/// Tells vCPU 1's [`spin_with_irqs`] job (and a long handler) to stop.
static STOP: AtomicBool = AtomicBool::new(false);
/// SGIs vCPU 0 has sent in the current burst.
static SENT: AtomicU32 = AtomicU32::new(0);

/// vCPU 1's job: interrupts unmasked, spinning (no WFI, no exits) until
/// [`STOP`], at most 60 s.
fn spin_with_irqs(_: u64) {
    sysreg::mask_irqs(false);
    timer::wait_until(60_000, || STOP.load(Ordering::SeqCst));
    sysreg::mask_irqs(true);
}

/// Starts vCPU 1 on [`spin_with_irqs`] with a fresh log; false (said) if it
/// does not come up.
fn start_spinner(case: &str) -> bool {
    if !smp::ensure_cpu1() {
        println!("{case}: vCPU 1 did not start");
        return false;
    }
    reset_log(1);
    STOP.store(false, Ordering::SeqCst);
    SENT.store(0, Ordering::SeqCst);
    true
}

fn stop_spinner() {
    STOP.store(true, Ordering::SeqCst);
    smp::wait_job(2000);
}

/// A Redistributor nobody woke (GICR_WAKER.ProcessorSleep still set): does an SGI
/// to self arrive? Then wake it: does the pending one come through?
pub fn gic_asleep(_: &Fdt<'_>) {
    let sgi = 1;
    gic::init_distributor();
    gic::reset_private_interrupts(0);
    gic::init_cpu_interface();
    gic::enable_private(0, sgi);
    reset_log(0);
    sysreg::mask_irqs(false);
    gic::send_sgi(sgi, 0);
    timer::wait_until(100, || received(0, sgi) > 0);
    println!("gic-asleep: SGI to self, Redistributor never woken: received {}", received(0, sgi));
    gic::wake_redistributor(0);
    timer::wait_until(100, || received(0, sgi) > 0);
    sysreg::mask_irqs(true);
    println!("gic-asleep: after waking it: received {}", received(0, sgi));
}

/// vCPU 0 sends [`BURST`] SGIs to vCPU 1, each once the previous has arrived;
/// vCPU 1 spins with interrupts unmasked and counts them in its handler.
pub fn sgi_burst(_: &Fdt<'_>) {
    burst("sgi-burst");
}

/// [`sgi_burst`] with a handler on vCPU 1 that stays in the interrupt (active)
/// until vCPU 0 has sent the next SGI.
pub fn sgi_burst_active(_: &Fdt<'_>) {
    burst("sgi-burst-active");
}

/// vCPU 1's handler for `sgi-burst-active`: stays active until the next SGI is sent.
fn long_handler(intid: u32) {
    if intid == BURST_SGI {
        let seen = received(1, BURST_SGI);
        timer::wait_until(ARRIVAL_MS, || SENT.load(Ordering::SeqCst) > seen || STOP.load(Ordering::SeqCst));
    }
}

fn burst(case: &str) {
    gic::init_for_this_cpu(0);
    if !start_spinner(case) {
        return;
    }
    if case == "sgi-burst-active" {
        set_hook(1, long_handler);
    }
    gic::enable_private(1, BURST_SGI);
    smp::post(spin_with_irqs, 0);
    for k in 0..BURST {
        gic::send_sgi(BURST_SGI, 1);
        SENT.store(k + 1, Ordering::SeqCst);
        if !timer::wait_until(ARRIVAL_MS, || received(1, BURST_SGI) > k) {
            break;
        }
    }
    stop_spinner();
    println!("{case}: received {} of {BURST}", received(1, BURST_SGI));
}

/// ICC_SGI0R_EL1, ICC_ASGI1R_EL1 and ICC_SGI1R_EL1 (with IRM) writes, SGIs in
/// Group 1: whether each write is UNDEFINED and which vCPUs get the SGI.
pub fn sgi_registers(_: &Fdt<'_>) {
    gic::init_for_this_cpu(0);
    if !start_spinner("sgi-registers") {
        return;
    }
    let sgis = [3, 4, 5, 6];
    for sgi in sgis {
        gic::enable_private(0, sgi);
        gic::enable_private(1, sgi);
    }
    reset_log(0);
    smp::post(spin_with_irqs, 0);
    sysreg::mask_irqs(false);
    let to_self = 1 << 0;
    /// A register, the SGI written to it, and how to write it.
    type SgiWrite = (&'static str, u32, fn(u64));
    let writes: [SgiWrite; 3] = [
        ("ICC_SGI0R_EL1", 3, gic::write_sgi0r),
        ("ICC_ASGI1R_EL1", 4, gic::write_asgi1r),
        ("ICC_SGI1R_EL1", 5, gic::write_sgi1r),
    ];
    for (register, sgi, write) in writes {
        let ((), fault) = expect_fault(|| write(gic::sgi_value(sgi, to_self)));
        timer::wait_until(100, || received(0, sgi) > 0);
        println!("sgi-registers: {register} SGI {sgi} to self: {}, received {}", Outcome(fault), received(0, sgi));
    }
    gic::write_sgi1r(gic::sgi_value(6, 0) | gic::SGI_TO_OTHERS);
    timer::wait_until(100, || received(1, 6) > 0);
    timer::spin_ms(20);
    println!(
        "sgi-registers: ICC_SGI1R_EL1 IRM=1 SGI 6: vCPU 0 received {}, vCPU 1 received {}",
        received(0, 6),
        received(1, 6)
    );
    sysreg::mask_irqs(true);
    stop_spinner();
}

/// SPIs pended to self behind the priority mask, more than the four list
/// registers QEMU's CPU has, then one of higher priority than the mask.
pub fn lr_priority(_: &Fdt<'_>) {
    const LOW: [u32; 6] = [40, 41, 42, 43, 44, 45];
    const HIGH: u32 = 46;
    gic::init_for_this_cpu(0);
    reset_log(0);
    for intid in LOW {
        gic::configure_spi(intid, 0xA0, 0);
        gic::enable_spi(intid);
    }
    gic::configure_spi(HIGH, 0x40, 0);
    gic::enable_spi(HIGH);
    let low_received = || LOW.iter().map(|&intid| received(0, intid)).sum::<u32>();
    gic::set_priority_mask(0x80);
    sysreg::mask_irqs(false);
    gic::pend_spis(&LOW);
    timer::spin_ms(20);
    println!("lr-priority: 6 SPIs at priority 0xa0 pended behind ICC_PMR_EL1 0x80: {} taken", low_received());
    gic::pend_spi(HIGH);
    timer::wait_until(200, || received(0, HIGH) > 0);
    println!("lr-priority: then SPI {HIGH} at priority 0x40: received {}", received(0, HIGH));
    gic::set_priority_mask(0xFF);
    timer::wait_until(200, || low_received() == LOW.len() as u32);
    sysreg::mask_irqs(true);
    println!("lr-priority: after ICC_PMR_EL1 0xff: received {} of the 6", low_received());
    for intid in LOW.into_iter().chain([HIGH]) {
        gic::disable_spi(intid);
    }
}

/// The SPI the recall variants pend to vCPU 1.
const RECALL_SPI: u32 = 50;
/// Set by vCPU 1's [`watch_pending`] once it has looked for the SPI.
static WATCH_READY: AtomicBool = AtomicBool::new(false);
/// Whether vCPU 1 saw the SPI pending (ICC_HPPIR1_EL1) with interrupts masked.
static WATCH_SAW_PENDING: AtomicBool = AtomicBool::new(false);
/// Windows (interrupts unmasked for 50 ms) vCPU 0 asked for / vCPU 1 finished.
static WINDOWS_ASKED: AtomicU32 = AtomicU32::new(0);
static WINDOWS_DONE: AtomicU32 = AtomicU32::new(0);
/// vCPU 1's [`RECALL_SPI`] count after each window.
static WINDOW_COUNTS: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];

/// vCPU 1's job: interrupts masked, wait (bounded) until the SPI shows pending in
/// ICC_HPPIR1_EL1, report, then open `windows` windows when asked.
fn watch_pending(windows: u64) {
    sysreg::mask_irqs(true);
    let seen = timer::wait_until(500, || gic::highest_pending() == RECALL_SPI);
    WATCH_SAW_PENDING.store(seen, Ordering::SeqCst);
    WATCH_READY.store(true, Ordering::SeqCst);
    for window in 0..windows as u32 {
        if !timer::wait_until(5000, || WINDOWS_ASKED.load(Ordering::SeqCst) > window) {
            return;
        }
        sysreg::mask_irqs(false);
        timer::spin_ms(50);
        sysreg::mask_irqs(true);
        WINDOW_COUNTS[window as usize].store(received(1, RECALL_SPI), Ordering::SeqCst);
        WINDOWS_DONE.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pends [`RECALL_SPI`] to vCPU 1 while it has interrupts masked and waits for
/// vCPU 1 to see it pending; returns whether it did (None: vCPU 1 is down).
fn pend_to_masked_cpu1(windows: u64) -> Option<bool> {
    if !smp::ensure_cpu1() {
        return None;
    }
    reset_log(0);
    reset_log(1);
    gic::configure_spi(RECALL_SPI, gic::DEFAULT_PRIORITY, 1);
    gic::enable_spi(RECALL_SPI);
    WATCH_READY.store(false, Ordering::SeqCst);
    WINDOWS_ASKED.store(0, Ordering::SeqCst);
    WINDOWS_DONE.store(0, Ordering::SeqCst);
    smp::post(watch_pending, windows);
    // vCPU 1 is masked before the SPI is pended: its job starts by masking, and
    // it only looks for the SPI, so pending it a little later changes nothing.
    timer::spin_ms(5);
    gic::pend_spi(RECALL_SPI);
    timer::wait_until(2000, || WATCH_READY.load(Ordering::SeqCst));
    Some(WATCH_SAW_PENDING.load(Ordering::SeqCst))
}

/// Has vCPU 1 open its next window and returns its count after it.
fn window_on_cpu1() -> u32 {
    let window = WINDOWS_ASKED.fetch_add(1, Ordering::SeqCst);
    timer::wait_until(2000, || WINDOWS_DONE.load(Ordering::SeqCst) > window);
    WINDOW_COUNTS[window as usize].load(Ordering::SeqCst)
}

/// An SPI pending for vCPU 1 (masked there) is disabled and cleared, only
/// cleared, disabled then enabled again, or re-routed to vCPU 0: what each vCPU
/// receives once it unmasks.
pub fn spi_recall(_: &Fdt<'_>) {
    gic::init_for_this_cpu(0);
    type Variant = (&'static str, fn() -> (u32, u32, Option<u32>));
    let variants: [Variant; 4] = [
        ("ICENABLER+ICPENDR", || {
            gic::disable_spi(RECALL_SPI);
            gic::unpend_spi(RECALL_SPI);
            (0, window_on_cpu1(), None)
        }),
        ("ICPENDR", || {
            gic::unpend_spi(RECALL_SPI);
            (0, window_on_cpu1(), None)
        }),
        ("ICENABLER, then ISENABLER", || {
            gic::disable_spi(RECALL_SPI);
            let disabled = window_on_cpu1();
            gic::enable_spi(RECALL_SPI);
            (0, disabled, Some(window_on_cpu1()))
        }),
        ("IROUTER to vCPU 0", || {
            gic::route_spi(RECALL_SPI, 0);
            sysreg::mask_irqs(false);
            timer::wait_until(200, || received(0, RECALL_SPI) > 0);
            sysreg::mask_irqs(true);
            (received(0, RECALL_SPI), window_on_cpu1(), None)
        }),
    ];
    for (action, act) in variants {
        let windows = if action.contains("then") { 2 } else { 1 };
        let Some(seen) = pend_to_masked_cpu1(windows) else {
            println!("spi-recall: vCPU 1 did not start");
            return;
        };
        let (cpu0, cpu1, cpu1_after) = act();
        smp::wait_job(2000);
        let after = AfterText(cpu1_after);
        println!(
            "spi-recall: {action} while pending on vCPU 1 (seen pending there: {}): vCPU 0 received {cpu0}, vCPU 1 received {cpu1}{after}",
            yes_no(seen)
        );
        gic::disable_spi(RECALL_SPI);
        gic::unpend_spi(RECALL_SPI);
    }
}

/// The tail of a `spi-recall` line for the variant that enables the SPI again.
struct AfterText(Option<u32>);

impl core::fmt::Display for AfterText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(count) => write!(f, ", {count} in all after ISENABLER"),
            None => Ok(()),
        }
    }
}
