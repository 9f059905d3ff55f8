//! `WFI` blocks the vCPU until an interrupt is pending for it; `WFIT` also until
//! its deadline (an absolute virtual-counter value; CNTVOFF_EL2 is 0, so it is
//! the physical counter's). WFE and WFET are not trapped, but if one arrives it
//! completes at once (a spurious wake-up, which the architecture allows).

use super::{Exit, Next, Services};
use crate::exception::WfxKind;
use crate::mm::GuestVa;
use crate::vm::inject;

pub fn handle<S: Services>(exit: &mut Exit<'_, S>, kind: WfxKind) -> Next {
    let pc = exit.registers.pc;
    let passed = inject::condition_passed(exit.esr, exit.registers.pstate);
    exit.skip_instruction();
    if !passed {
        return Next::Resume;
    }
    // A WFIT reported as WFI (QEMU does that): find its register in the
    // instruction, read at the PC of the exit.
    let misreported_wfit = match kind {
        WfxKind::Wfi if exit.services.has_wfxt() => {
            exit.services.read_guest_instruction(GuestVa::new(pc)).and_then(inject::wfit_instruction_register)
        }
        _ => None,
    };
    let kind = if misreported_wfit.is_some() { WfxKind::Wfit } else { kind };
    match kind {
        WfxKind::Wfi => Next::Block { until: None },
        WfxKind::Wfit => {
            let register = inject::wfxt_register(exit.esr).or(misreported_wfit);
            let deadline = register.map_or(0, |rt| exit.registers.get(rt));
            if exit.services.counter().0 >= deadline {
                return Next::Resume;
            }
            Next::Block { until: Some(deadline) }
        }
        WfxKind::Wfe | WfxKind::Wfet => Next::Resume,
    }
}
