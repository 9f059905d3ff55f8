//! Physical interrupts taken at EL2 — from a running guest (an IRQ exit) or while a
//! CPU idles — and how they turn into virtual ones.

use alloc::sync::Arc;

use super::host::Host;
use super::virtual_machine::Vm;
use crate::arch::aarch64::{gic, guest};
use hv_abi::machine;

/// Acknowledges and handles every pending physical interrupt. `loaded` is the vCPU
/// whose timer state is live on this CPU, if any.
pub fn handle_physical(host: &Host, loaded: Option<(&Arc<Vm>, usize)>) {
    let layout = gic::layout();
    loop {
        let intid = gic::acknowledge();
        if intid == gic::SPURIOUS {
            break;
        }
        gic::priority_drop(intid);
        // The guest's EL1 timers (virtual, and physical): their interrupts are
        // hardware-linked to the guest's copies.
        let timer = if intid == layout.virtual_timer {
            Some((machine::VIRTUAL_TIMER_INTID, guest::disable_virtual_timer as fn()))
        } else if intid == layout.physical_timer {
            Some((machine::PHYS_TIMER_INTID, guest::disable_physical_timer as fn()))
        } else {
            None
        };
        if let Some((guest_intid, silence)) = timer {
            match loaded {
                // Left active: the hardware-linked list register deactivates it
                // when the guest EOIs its virtual copy.
                Some((vm, vcpu)) => {
                    vm.vgic.lock().set_level(guest_intid, vcpu, true);
                    vm.interrupts_changed();
                }
                None => {
                    // No vCPU owns the timer state any more: silence it.
                    silence();
                    gic::deactivate(intid);
                }
            }
            continue;
        }
        gic::deactivate(intid);
        if intid == layout.hyp_timer {
            // A wake-up or time-slice deadline passed: the scheduler looks again
            // (and re-arms the timer). Level-sensitive: turn it off first.
            guest::set_wakeup(None);
            super::kick::request_reschedule();
        }
        if intid == gic::KICK_SGI {
            // Another CPU made one of our vCPUs runnable (or is stopping a VM).
            super::kick::request_reschedule();
        }
        if intid == layout.maintenance {
            // Level-sensitive: it stays asserted while its condition holds, so turn
            // the condition off; the next entry re-enables it if still needed.
            gic::set_underflow_interrupt(false);
        }
        if Some(intid) == layout.console_spi
            && let Some(vm) = host.console.receive()
        {
            update_uart_line(&vm);
        }
        // The kick SGI and the maintenance interrupt only needed to get us here:
        // list registers are synchronised on every entry and exit.
    }
}

/// Drives the VM's PL011 interrupt line from the UART model, kicking the CPU of
/// the vCPU it targets if it became deliverable.
pub fn update_uart_line(vm: &Vm) {
    if let Some(host) = vm.update_uart_line() {
        super::kick::kick_cpus(&[host]);
    }
}
