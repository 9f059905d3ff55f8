//! Stage-2 aborts: a first touch of guest memory is backed (lazily, with its MTE
//! tags sanitised); a load or store to a device window is emulated through the
//! VM's MMIO bus; anything else gets a synchronous external abort.

use super::{Exit, Next, Services};
use crate::mm::Ipa;
use crate::vm::exit::{
    MmioAccess, SYNC_EXTERNAL_ABORT, Stage2Abort, Stage2FaultKind, injected_abort_syndrome_with_status,
    walk_external_abort,
};
use crate::vm::inject;
use crate::vm::mmio::DeviceId;
use crate::vm::stage1_walk;
use crate::vm::stats::add;

pub fn handle<S: Services>(exit: &mut Exit<'_, S>, abort: Stage2Abort) -> Next {
    let in_guest_memory = exit.services.is_guest_memory(abort.ipa);
    match abort.kind {
        Stage2FaultKind::Translation if in_guest_memory => match exit.services.back_guest_memory(abort.ipa) {
            Ok(()) => Next::Resume,
            Err(error) => {
                log::error!("vm {}: cannot back IPA {:#x}: {error}; stopping the VM", exit.vm.identity.name, abort.ipa);
                exit.stop_vm(-2)
            }
        },
        // We map with the access flag set and full permissions, so these only
        // mean another vCPU changed the mapping meanwhile: retry.
        Stage2FaultKind::AccessFlag | Stage2FaultKind::Permission if in_guest_memory => Next::Resume,
        Stage2FaultKind::Translation if !abort.instruction && emulate_mmio(exit, &abort) => Next::Resume,
        _ => {
            let what = if abort.instruction {
                "instruction fetch from"
            } else if abort.write {
                "write to"
            } else {
                "read from"
            };
            let no_syndrome =
                if abort.access.is_none() && !abort.instruction { ", no instruction syndrome" } else { "" };
            let pc = exit.registers.pc;
            exit.diagnostic(
                log::Level::Warn,
                format_args!(
                    "{what} IPA {:#x} outside its memory and devices (pc {pc:#x}{no_syndrome}); injecting a synchronous external abort",
                    abort.ipa
                ),
            );
            add(&exit.vm.stats.injected_aborts, 1);
            let status = walk_level(exit, &abort).map_or(SYNC_EXTERNAL_ABORT, walk_external_abort);
            let from_el1 = inject::from_el1(exit.registers.pstate);
            let esr = injected_abort_syndrome_with_status(abort.instruction, abort.write, from_el1, status);
            exit.inject(esr, abort.far.as_u64());
            Next::Resume
        }
    }
}

/// For a stage-1 table walk that read outside guest memory: the level of the
/// table it was reading, as the guest's own tables lead to it.
fn walk_level<S: Services>(exit: &mut Exit<'_, S>, abort: &Stage2Abort) -> Option<u8> {
    if !abort.walk {
        return None;
    }
    let controls = exit.services.el1_translation();
    let services = &mut *exit.services;
    stage1_walk::level_reading(controls, abort.far.as_u64(), abort.ipa.as_u64(), |ipa| {
        let mut bytes = [0u8; 8];
        services.read_guest(Ipa::new(ipa), &mut bytes).ok()?;
        Some(u64::from_le_bytes(bytes))
    })
}

/// Emulates a load or store on the device whose window holds the IPA. Returns
/// false if no device decodes it, the device refuses it (a bus error), or the
/// access cannot be decoded (no valid syndrome: the guest used an instruction
/// the hypervisor does not emulate, such as a load pair).
fn emulate_mmio<S: Services>(exit: &mut Exit<'_, S>, abort: &Stage2Abort) -> bool {
    let Some(access) = abort.access else { return false };
    let size = access.size_bytes;
    let value = abort.write.then(|| exit.registers.get(access.register) & size_mask(size));
    let Some((read, effects, device)) = exit.vm.mmio(abort.ipa, size, value) else { return false };
    if effects.external_abort {
        return false;
    }
    if effects.unhandled {
        exit.diagnostic(log::Level::Debug, format_args!("{device:?} access to {:#x} (size {size}) ignored", abort.ipa));
    }
    if !effects.output.is_empty() {
        exit.services.guest_output(&effects.output);
    }
    if value.is_none() {
        complete_load(exit, access, read);
    }
    if effects.interrupts_changed {
        exit.interrupts_changed();
    }
    if device == DeviceId::Uart {
        // The access may have made room for console input, and the UART's
        // interrupt line follows its state.
        exit.services.deliver_console_input();
        if let Some(host) = exit.vm.update_uart_line() {
            exit.services.kick_cpus(&[host]);
        }
    }
    exit.skip_instruction();
    true
}

/// Writes a loaded value to the destination register, sign-extended or
/// truncated as the syndrome says.
fn complete_load<S: Services>(exit: &mut Exit<'_, S>, access: MmioAccess, value: u64) {
    let bits = u32::from(access.size_bytes) * 8;
    let mut value = value & size_mask(access.size_bytes);
    if access.sign_extend && bits < 64 {
        let shift = 64 - bits;
        value = (((value << shift) as i64) >> shift) as u64;
    }
    if !access.sixty_four_bit_register {
        value &= 0xFFFF_FFFF;
    }
    exit.registers.set(access.register, value);
}

fn size_mask(size: u8) -> u64 {
    match size {
        8.. => u64::MAX,
        n => (1u64 << (u32::from(n) * 8)) - 1,
    }
}
