//! The exit handlers on the host, against a fake machine that records what they
//! asked of it: the decisions they take, for the exits guests make.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::*;
use crate::exception::{ExceptionClass, SysRegAccess, SysRegDirection, WfxKind};
use crate::guest_context::VirtualTimerRegister;
use crate::mm::{GuestVa, Ipa};
use crate::psci as psci_ids;
use crate::vm::exit::{MmioAccess, Stage2Abort, Stage2FaultKind};
use crate::vm::model::{VmIdentity, VmModel};
use crate::vm::vpl011;
use hv_abi::machine;

/// Guest RAM the fake machine backs: 64 MiB from `machine::RAM_BASE`.
const RAM_BYTES: u64 = 64 << 20;
const VBAR: u64 = 0x4010_0000;
/// ESR_EL2.IL: a 32-bit instruction trapped.
const IL: u64 = 1 << 25;

/// A machine that answers from fields and records what was asked of it.
#[derive(Default)]
struct FakeMachine {
    now: u64,
    wfxt: bool,
    /// The guest's instruction at each VA `read_guest_instruction` may be asked for.
    instructions: Vec<(u64, u32)>,
    id_registers: Vec<((u8, u8), u64)>,
    backing_fails: bool,
    // Records.
    backed: Vec<u64>,
    kicked: Vec<usize>,
    output: Vec<u8>,
    lines: Vec<Vec<u8>>,
    set_way: Vec<u64>,
    el1_exception: Option<El1ExceptionRegisters>,
    console_deliveries: usize,
    events: [u64; 4],
    timer_writes: Vec<(VirtualTimerRegister, u64)>,
    translation: crate::vm::stage1_walk::El1Translation,
    /// 64-bit words `read_guest` returns at these IPAs (the guest's page tables).
    descriptors: Vec<(u64, u64)>,
}

impl Services for FakeMachine {
    fn counter(&self) -> (u64, u64) {
        (self.now, 62_500_000)
    }
    fn host_id_register(&self, crm: u8, op2: u8) -> u64 {
        self.id_registers.iter().find(|(key, _)| *key == (crm, op2)).map_or(0, |&(_, value)| value)
    }
    fn read_guest_instruction(&mut self, va: GuestVa) -> Option<u32> {
        self.instructions.iter().find(|(at, _)| *at == va.as_u64()).map(|&(_, insn)| insn)
    }
    fn clean_invalidate_by_set_way(&mut self, operand: u64) {
        self.set_way.push(operand);
    }
    fn el1_vector_state(&self) -> El1VectorState {
        El1VectorState { vbar: VBAR, sctlr: 0 }
    }
    fn write_el1_exception_registers(&mut self, registers: &El1ExceptionRegisters) {
        self.el1_exception = Some(*registers);
    }
    fn kick_cpus(&mut self, cpus: &[usize]) {
        self.kicked.extend_from_slice(cpus);
    }
    fn guest_output(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }
    fn guest_line(&mut self, text: &[u8]) {
        self.lines.push(text.to_vec());
    }
    fn deliver_console_input(&mut self) {
        self.console_deliveries += 1;
    }
    fn is_guest_memory(&self, ipa: Ipa) -> bool {
        (machine::RAM_BASE..machine::RAM_BASE + RAM_BYTES).contains(&ipa.as_u64())
    }
    fn back_guest_memory(&mut self, ipa: Ipa) -> Result<(), String> {
        if self.backing_fails {
            return Err("out of frames".into());
        }
        self.backed.push(ipa.as_u64());
        Ok(())
    }
    fn read_guest(&mut self, ipa: Ipa, out: &mut [u8]) -> Result<(), NotGuestRam> {
        if !self.is_guest_memory(ipa) {
            return Err(NotGuestRam);
        }
        if let Some(&(_, descriptor)) = self.descriptors.iter().find(|(at, _)| *at == ipa.as_u64()) {
            out.copy_from_slice(&descriptor.to_le_bytes()[..out.len()]);
            return Ok(());
        }
        out.iter_mut().enumerate().for_each(|(i, byte)| *byte = b'a' + (i % 26) as u8);
        Ok(())
    }
    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent> {
        *self.events.get_mut(index as usize).ok_or(BadEvent)? = value;
        Ok(())
    }
    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent> {
        self.events.get(index as usize).copied().ok_or(BadEvent)
    }
    fn has_wfxt(&self) -> bool {
        self.wfxt
    }
    fn el1_translation(&self) -> crate::vm::stage1_walk::El1Translation {
        self.translation
    }
    fn virtual_timer_register(&mut self, register: VirtualTimerRegister, value: Option<u64>) -> u64 {
        match value {
            Some(value) => {
                self.timer_writes.push((register, value));
                0
            }
            None => 0x5,
        }
    }
}

/// A VM of `vcpus` vCPUs on physical CPUs 10, 11, ... (so kicks name them).
fn vm(vcpus: usize, mte: bool) -> VmModel {
    VmModel::new(VmIdentity {
        index: 0,
        name: "guest".into(),
        mte,
        ram_bytes: RAM_BYTES,
        hosts: (10..10 + vcpus).collect(),
        boot_count: 2,
    })
    .unwrap()
}

/// A guest at EL1h, PC in RAM.
fn registers() -> GuestRegisters {
    GuestRegisters { pc: machine::RAM_BASE + 0x1000, pstate: 0x3C5, ..Default::default() }
}

/// Runs one exit of vCPU `vcpu` with syndrome IL set.
fn run(vm: &VmModel, machine: &mut FakeMachine, regs: &mut GuestRegisters, vcpu: usize, exit: GuestExit) -> Next {
    handle(&mut Exit { vm, vcpu, registers: regs, esr: IL, services: machine }, exit)
}

fn assert_undefined_injected(machine: &FakeMachine, regs: &GuestRegisters, at: u64) {
    let saved = machine.el1_exception.expect("an exception was injected");
    assert_eq!(saved.elr, at, "ELR_EL1 is the trapped instruction");
    assert_eq!(saved.esr, crate::vm::exit::INJECTED_UNDEFINED_SYNDROME);
    assert_eq!(regs.pc, VBAR + 0x200, "current EL, SP_ELx, synchronous");
}

fn data_abort(ipa: u64, write: bool, access: Option<MmioAccess>) -> GuestExit {
    GuestExit::Stage2Abort(Stage2Abort {
        ipa: Ipa::new(ipa),
        far: GuestVa::new(ipa),
        instruction: false,
        write,
        kind: Stage2FaultKind::Translation,
        walk: false,
        access,
    })
}

fn word(register: u8) -> Option<MmioAccess> {
    Some(MmioAccess { size_bytes: 4, register, sign_extend: false, sixty_four_bit_register: false })
}

#[test]
fn an_unknown_exception_class_is_undefined_for_the_guest() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    let pc = regs.pc;
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Unhandled(ExceptionClass::Unknown)), Next::Resume);
    assert_undefined_injected(&machine, &regs, pc);
}

#[test]
fn first_touch_of_guest_ram_is_backed_and_retried() {
    let (vm, mut machine, mut regs) = (vm(1, true), FakeMachine::default(), registers());
    let pc = regs.pc;
    let ipa = machine::RAM_BASE + 0x20_0000;
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, data_abort(ipa, true, word(1))), Next::Resume);
    assert_eq!(machine.backed, [ipa]);
    assert_eq!(regs.pc, pc, "the access is retried, not skipped");
}

#[test]
fn a_vm_whose_memory_cannot_be_backed_stops_with_a_failure() {
    let (vm, mut machine, mut regs) =
        (vm(2, true), FakeMachine { backing_fails: true, ..Default::default() }, registers());
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, data_abort(machine::RAM_BASE, false, None)), Next::Stop);
    assert_eq!(vm.exit_status.load(Ordering::Relaxed), -2);
    assert_eq!(machine.kicked, [10, 11], "every vCPU's CPU hears of the stop");
}

#[test]
fn uart_reads_complete_the_load_and_step_over_it() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    regs.x[3] = u64::MAX;
    let pc = regs.pc;
    let next =
        run(&vm, &mut machine, &mut regs, 0, data_abort(machine::UART_BASE + vpl011::UARTPERIPHID0, false, word(3)));
    assert_eq!(next, Next::Resume);
    assert_eq!(regs.x[3], 0x11, "PL011 PeriphID0, zero-extended into W3");
    assert_eq!(regs.pc, pc + 4);
    assert_eq!(machine.console_deliveries, 1, "a UART access lets waiting input in");
}

#[test]
fn uart_writes_reach_the_console() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    regs.x[2] = u64::from(b'h') | 0xFFFF_FF00;
    run(&vm, &mut machine, &mut regs, 0, data_abort(machine::UART_BASE + vpl011::UARTDR, true, word(2)));
    assert_eq!(machine.output, b"h");
}

#[test]
fn a_sign_extending_byte_load_sign_extends() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    // GICD_PIDR2 (0x3B) is positive; PL011 PeriphID3 is 0x00; CellID1 is 0xF0: negative as a byte.
    let access = Some(MmioAccess { size_bytes: 1, register: 4, sign_extend: true, sixty_four_bit_register: true });
    run(&vm, &mut machine, &mut regs, 0, data_abort(machine::UART_BASE + 0xFF4, false, access));
    assert_eq!(regs.x[4], 0xFFFF_FFFF_FFFF_FFF0);
}

#[test]
fn a_vgic_write_that_changes_delivery_kicks_the_vms_cpus() {
    let (vm, mut machine, mut regs) = (vm(2, false), FakeMachine::default(), registers());
    regs.x[0] = 0b10; // GICD_CTLR.EnableGrp1NS
    run(&vm, &mut machine, &mut regs, 0, data_abort(machine::GICD_BASE, true, word(0)));
    assert_eq!(machine.kicked, [10, 11]);
    assert!(vm.vgic.lock().distributor().group1_enabled());
}

#[test]
fn accesses_outside_memory_and_devices_get_an_external_abort() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    let pc = regs.pc;
    run(&vm, &mut machine, &mut regs, 0, data_abort(0x7000_0000_0000, true, word(0)));
    let saved = machine.el1_exception.unwrap();
    assert_eq!(saved.elr, pc);
    assert_eq!(saved.esr >> 26, 0x25, "data abort from the same EL");
    assert_eq!(saved.esr & 0x3F, 0x10, "synchronous external abort");
    assert_ne!(saved.esr & (1 << 6), 0, "WnR: it was a write");
    assert_eq!(vm.stats.injected_aborts.load(Ordering::Relaxed), 1);
}

#[test]
fn a_table_walk_outside_memory_reports_the_walks_level() {
    // 39-bit VA, 4 KiB granule: the walk starts at level 1 at 0x4010_0000; the
    // level-1 entry for VA 1 GiB points at a level-2 table at 0x0B00_0000.
    let translation = crate::vm::stage1_walk::El1Translation { ttbr0: 0x4010_0000, tcr: 25, ..Default::default() };
    let mut machine =
        FakeMachine { translation, descriptors: alloc::vec![(0x4010_0008, 0x0B00_0000 | 0b11)], ..Default::default() };
    let (vm, mut regs) = (vm(1, false), registers());
    let abort = GuestExit::Stage2Abort(Stage2Abort {
        ipa: Ipa::new(0x0B00_0000),
        far: GuestVa::new(0x4000_1000),
        instruction: false,
        write: false,
        kind: Stage2FaultKind::Translation,
        walk: true,
        access: None,
    });
    run(&vm, &mut machine, &mut regs, 0, abort);
    assert_eq!(machine.el1_exception.unwrap().esr & 0x3F, 0x16, "external abort on the level-2 table walk");
}

#[test]
fn device_accesses_without_a_syndrome_or_that_the_device_refuses_abort() {
    // A load pair to the UART has no valid syndrome; an 8-byte access to UARTDR
    // is not one the PL011 decodes.
    for (access, what) in [
        (None, "no syndrome"),
        (
            Some(MmioAccess { size_bytes: 8, register: 0, sign_extend: false, sixty_four_bit_register: true }),
            "bad size",
        ),
    ] {
        let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
        run(&vm, &mut machine, &mut regs, 0, data_abort(machine::UART_BASE, false, access));
        assert!(machine.el1_exception.is_some(), "{what}");
        assert_eq!(regs.pc, VBAR + 0x200, "{what}");
    }
}

fn sysreg(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8, rt: u8, direction: SysRegDirection) -> GuestExit {
    GuestExit::SysReg(SysRegAccess { op0, op1, crn, crm, op2, rt, direction })
}

#[test]
fn id_registers_read_the_guest_view() {
    // ID_AA64PFR1_EL1 (S3_0_C0_C4_1) with MTE = 2 in [11:8]: a VM without MTE sees 0 there.
    let mut machine = FakeMachine { id_registers: alloc::vec![((4, 1), 0x0000_0000_0000_0221)], ..Default::default() };
    let (vm, mut regs) = (vm(1, false), registers());
    let pc = regs.pc;
    run(&vm, &mut machine, &mut regs, 0, sysreg(3, 0, 0, 4, 1, 7, SysRegDirection::Read));
    assert_eq!(regs.x[7] & 0xF00, 0, "MTE hidden");
    assert_eq!(regs.pc, pc + 4);
}

#[test]
fn a_write_to_an_id_register_is_undefined() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    let pc = regs.pc;
    run(&vm, &mut machine, &mut regs, 0, sysreg(3, 0, 0, 4, 1, 7, SysRegDirection::Write));
    assert_undefined_injected(&machine, &regs, pc);
}

#[test]
fn an_sgi_kicks_only_its_targets_cpus() {
    let (vm, mut machine, mut regs) = (vm(3, false), FakeMachine::default(), registers());
    // Enable Group 1 and SGI 5 at vCPU 2, so the SGI is deliverable there.
    {
        let mut vgic = vm.vgic.lock();
        vgic.mmio_write(machine::GICD_BASE, 4, 0b10).unwrap();
        let sgi_base = machine::GICR_BASE + 2 * machine::GICR_FRAME_SIZE + machine::GICR_SGI_OFFSET;
        vgic.mmio_write(sgi_base + 0x100, 4, 1 << 5).unwrap();
    }
    // ICC_SGI1R_EL1: INTID 5 [27:24], target list bit 2 (Aff0 = 2).
    regs.x[9] = (5 << 24) | (1 << 2);
    run(&vm, &mut machine, &mut regs, 0, sysreg(3, 0, 12, 11, 5, 9, SysRegDirection::Write));
    assert_eq!(machine.kicked, [12]);
    assert_eq!(vm.vgic.lock().next_pending(2).map(|irq| irq.intid), Some(5));
}

#[test]
fn group0_sgi_registers_are_accepted_and_generate_nothing() {
    for op2 in [6, 7] {
        let (vm, mut machine, mut regs) = (vm(2, false), FakeMachine::default(), registers());
        vm.vgic.lock().mmio_write(machine::GICD_BASE, 4, 0b10).unwrap();
        let pc = regs.pc;
        regs.x[9] = (5 << 24) | (1 << 1);
        run(&vm, &mut machine, &mut regs, 0, sysreg(3, 0, 12, 11, op2, 9, SysRegDirection::Write));
        assert!(machine.el1_exception.is_none(), "op2 {op2}: not UNDEFINED");
        assert_eq!(regs.pc, pc + 4);
        assert!(machine.kicked.is_empty());
        assert_eq!(vm.vgic.lock().next_pending(1), None);
        // They are write-only: a read is UNDEFINED.
        run(&vm, &mut machine, &mut regs, 0, sysreg(3, 0, 12, 11, op2, 9, SysRegDirection::Read));
        assert!(machine.el1_exception.is_some(), "op2 {op2}: read");
    }
}

#[test]
fn debug_and_pmu_registers_read_as_zero() {
    for (op0, op1, crn, crm, op2) in [(2, 0, 0, 2, 2), (3, 3, 9, 12, 0), (3, 3, 14, 15, 7), (3, 0, 9, 14, 1)] {
        let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
        regs.x[1] = 0xDEAD;
        run(&vm, &mut machine, &mut regs, 0, sysreg(op0, op1, crn, crm, op2, 1, SysRegDirection::Read));
        assert_eq!(regs.x[1], 0, "S{op0}_{op1}_C{crn}_C{crm}_{op2}");
        assert!(machine.el1_exception.is_none());
    }
}

#[test]
fn trapped_virtual_timer_accesses_reach_the_guests_timer() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    let pc = regs.pc;
    regs.x[3] = 0b11; // ENABLE | IMASK
    run(&vm, &mut machine, &mut regs, 0, sysreg(3, 3, 14, 3, 1, 3, SysRegDirection::Write));
    regs.x[4] = 1234;
    run(&vm, &mut machine, &mut regs, 0, sysreg(3, 3, 14, 3, 2, 4, SysRegDirection::Write));
    run(&vm, &mut machine, &mut regs, 0, sysreg(3, 3, 14, 3, 1, 5, SysRegDirection::Read));
    assert_eq!(
        machine.timer_writes,
        [(VirtualTimerRegister::Control, 0b11), (VirtualTimerRegister::CompareValue, 1234)]
    );
    assert_eq!(regs.x[5], 0x5);
    assert_eq!(regs.pc, pc + 12);
    assert!(machine.el1_exception.is_none());
}

#[test]
fn set_way_maintenance_is_performed_with_the_guests_operand() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    regs.x[4] = 0x8000_0042;
    run(&vm, &mut machine, &mut regs, 0, sysreg(1, 0, 7, 14, 2, 4, SysRegDirection::Write));
    assert_eq!(machine.set_way, [0x8000_0042]);
}

#[test]
fn the_register_table_has_no_overlapping_rows() {
    for op0 in 0..4u8 {
        for op1 in 0..8u8 {
            for crn in 0..16u8 {
                for crm in 0..16u8 {
                    for op2 in 0..8u8 {
                        for direction in [SysRegDirection::Read, SysRegDirection::Write] {
                            let access = SysRegAccess { op0, op1, crn, crm, op2, rt: 0, direction };
                            let rows = sysreg::TABLE
                                .iter()
                                .filter(|e| e.encoding.matches(&access) && e.directions.allows(direction))
                                .count();
                            assert!(rows <= 1, "{access} matches {rows} rows");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn unknown_system_registers_are_undefined() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    let pc = regs.pc;
    // GCR_EL1 (S3_0_C1_C0_6) trapped for a VM without MTE.
    run(&vm, &mut machine, &mut regs, 0, sysreg(3, 0, 1, 0, 6, 0, SysRegDirection::Write));
    assert_undefined_injected(&machine, &regs, pc);
}

#[test]
fn wfi_blocks_after_the_instruction() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    let pc = regs.pc;
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Wait(WfxKind::Wfi)), Next::Block { until: None });
    assert_eq!(regs.pc, pc + 4);
}

#[test]
fn a_wfit_that_qemu_reports_as_wfi_waits_for_its_deadline() {
    let (vm, mut regs) = (vm(1, false), registers());
    // WFIT x5: 0xD5031020 | Rd.
    let mut machine =
        FakeMachine { wfxt: true, now: 1000, instructions: alloc::vec![(regs.pc, 0xD503_1025)], ..Default::default() };
    regs.x[5] = 5000;
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Wait(WfxKind::Wfi)), Next::Block { until: Some(5000) });
    // A deadline already passed completes at once.
    let mut regs = registers();
    regs.x[5] = 999;
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Wait(WfxKind::Wfi)), Next::Resume);
}

#[test]
fn wfe_completes_at_once() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Wait(WfxKind::Wfe)), Next::Resume);
}

fn call(regs: &mut GuestRegisters, function: u32, args: [u64; 3]) {
    regs.x[0] = u64::from(function);
    regs.x[1..4].copy_from_slice(&args);
}

#[test]
fn hvc_with_a_nonzero_immediate_is_not_a_call() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    call(&mut regs, psci_ids::PSCI_VERSION, [0; 3]);
    run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 1 });
    assert_eq!(regs.x[0] as i64, hv_abi::Error::NotSupported as i64);
    assert_eq!(vm.stats.hypercalls.load(Ordering::Relaxed), 0);
}

#[test]
fn smc_steps_over_the_instruction_and_hvc_does_not() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    let pc = regs.pc;
    call(&mut regs, psci_ids::PSCI_VERSION, [0; 3]);
    run(&vm, &mut machine, &mut regs, 0, GuestExit::Smc { imm: 0 });
    assert_eq!((regs.pc, regs.x[0]), (pc + 4, 0x1_0001), "PSCI 1.1");
    call(&mut regs, psci_ids::PSCI_VERSION, [0; 3]);
    run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 });
    assert_eq!(regs.pc, pc + 4, "ELR was already past the HVC");
}

#[test]
fn cpu_on_records_the_request_and_kicks_the_targets_cpu() {
    let (vm, mut machine, mut regs) = (vm(2, false), FakeMachine::default(), registers());
    call(&mut regs, psci_ids::CPU_ON_64, [1, machine::RAM_BASE + 0x2000, 0x77]);
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 }), Next::Resume);
    assert_eq!(regs.x[0], 0, "SUCCESS");
    assert_eq!(vm.start_requests.lock()[1], Some((machine::RAM_BASE + 0x2000, 0x77)));
    assert_eq!(machine.kicked, [11]);
}

#[test]
fn cpu_off_powers_the_vcpu_off_and_the_last_one_stops_the_vm() {
    let (vm, mut machine, mut regs) = (vm(2, false), FakeMachine::default(), registers());
    call(&mut regs, psci_ids::CPU_ON_64, [1, machine::RAM_BASE, 0]);
    run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 });
    call(&mut regs, psci_ids::CPU_OFF, [0; 3]);
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 }), Next::PowerOff);
    call(&mut regs, psci_ids::CPU_OFF, [0; 3]);
    assert_eq!(run(&vm, &mut machine, &mut regs, 1, GuestExit::Hvc { imm: 0 }), Next::Stop);
    assert!(vm.stopping.load(Ordering::Relaxed));
    assert_eq!(vm.exit_status.load(Ordering::Relaxed), 0);
}

#[test]
fn system_reset_stops_the_vm_for_a_restart() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    call(&mut regs, psci_ids::SYSTEM_RESET, [0; 3]);
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 }), Next::Stop);
    assert!(vm.reset_requested.load(Ordering::Relaxed));
    assert_eq!(machine.kicked, [10]);
}

#[test]
fn hypercalls_reach_the_console_events_and_statistics() {
    let (vm, mut machine, mut regs) = (vm(1, false), FakeMachine::default(), registers());
    call(&mut regs, hv_abi::HV_WRITE, [machine::RAM_BASE, 3, 0]);
    run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 });
    assert_eq!(machine.lines, [b"abc".to_vec()]);
    call(&mut regs, hv_abi::HV_EVENT_SET, [2, 99, 0]);
    run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 });
    assert_eq!(machine.events[2], 99);
    call(&mut regs, hv_abi::HV_STAT, [hv_abi::Stat::BootCount as u64, 0, 0]);
    run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 });
    assert_eq!(regs.x[0], 2);
    call(&mut regs, hv_abi::HV_YIELD, [0; 3]);
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 }), Next::Yield);
    call(&mut regs, hv_abi::HV_EXIT, [7, 0, 0]);
    assert_eq!(run(&vm, &mut machine, &mut regs, 0, GuestExit::Hvc { imm: 0 }), Next::Stop);
    assert_eq!(vm.exit_status.load(Ordering::Relaxed), 7);
}
