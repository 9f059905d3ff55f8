//! The exit handlers (`vm::exits`) with arbitrary syndromes and guest registers,
//! several exits in a row on one VM of two vCPUs, over a fake machine. Invariants:
//! nothing panics, and after an exit the guest's PC is where the architecture
//! allows: unchanged (a retry, or an HVC whose ELR was already past it), past the
//! instruction (2 or 4 bytes), or at the synchronous vector of an injected exception.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hypervisor::guest_context::{El1ExceptionRegisters, El1VectorState, GuestRegisters, VirtualTimerRegister};
use hypervisor::mm::{GuestVa, Ipa};
use hypervisor::vm::events::BadEvent;
use hypervisor::vm::exit;
use hypervisor::vm::exits::{self, Exit, Services};
use hypervisor::vm::hypercall::NotGuestRam;
use hypervisor::vm::inject;
use hypervisor::vm::stage1_walk::El1Translation;
use hypervisor::vm::model::{VmIdentity, VmModel};
use libfuzzer_sys::fuzz_target;

const RAM_BASE: u64 = 0x4000_0000;
const RAM_BYTES: u64 = 16 << 20;

#[derive(Arbitrary, Debug)]
struct OneExit {
    vcpu: bool,
    esr: u64,
    far: u64,
    hpfar: u64,
    x: [u64; 31],
    pc: u64,
    pstate: u64,
    vbar: u64,
    sctlr: u64,
    now: u64,
    instruction: Option<u32>,
    backing_fails: bool,
}

struct FakeMachine<'a> {
    exit: &'a OneExit,
    injected: bool,
    events: [u64; 64],
}

impl Services for FakeMachine<'_> {
    fn counter(&self) -> (u64, u64) {
        (self.exit.now, 62_500_000)
    }
    fn host_id_register(&self, crm: u8, op2: u8) -> u64 {
        u64::from(crm) << 8 | u64::from(op2)
    }
    fn read_guest_instruction(&mut self, _va: GuestVa) -> Option<u32> {
        self.exit.instruction
    }
    fn clean_invalidate_by_set_way(&mut self, _operand: u64) {}
    fn el1_vector_state(&self) -> El1VectorState {
        El1VectorState { vbar: self.exit.vbar, sctlr: self.exit.sctlr }
    }
    fn write_el1_exception_registers(&mut self, _registers: &El1ExceptionRegisters) {
        self.injected = true;
    }
    fn kick_cpus(&mut self, cpus: &[usize]) {
        assert!(cpus.iter().all(|&cpu| cpu < 2), "kicked a CPU the VM does not run on: {cpus:?}");
    }
    fn guest_output(&mut self, bytes: &[u8]) {
        assert!(bytes.len() <= 8);
    }
    fn guest_line(&mut self, text: &[u8]) {
        assert!(text.len() as u64 <= hv_abi::MAX_WRITE);
    }
    fn deliver_console_input(&mut self) {}
    fn is_guest_memory(&self, ipa: Ipa) -> bool {
        (RAM_BASE..RAM_BASE + RAM_BYTES).contains(&ipa.as_u64())
    }
    fn back_guest_memory(&mut self, ipa: Ipa) -> Result<(), String> {
        assert!(self.is_guest_memory(ipa));
        if self.exit.backing_fails { Err("no frames".into()) } else { Ok(()) }
    }
    fn read_guest(&mut self, ipa: Ipa, out: &mut [u8]) -> Result<(), NotGuestRam> {
        let ipa = ipa.as_u64();
        let end = ipa.checked_add(out.len() as u64).ok_or(NotGuestRam)?;
        if ipa < RAM_BASE || end > RAM_BASE + RAM_BYTES {
            return Err(NotGuestRam);
        }
        out.fill(b'x');
        Ok(())
    }
    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent> {
        *self.events.get_mut(usize::try_from(index).map_err(|_| BadEvent)?).ok_or(BadEvent)? = value;
        Ok(())
    }
    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent> {
        self.events.get(usize::try_from(index).map_err(|_| BadEvent)?).copied().ok_or(BadEvent)
    }
    fn has_wfxt(&self) -> bool {
        true
    }
    fn el1_translation(&self) -> El1Translation {
        El1Translation { ttbr0: self.exit.x[0], ttbr1: self.exit.x[1], tcr: self.exit.x[2] }
    }
    fn virtual_timer_register(&mut self, _register: VirtualTimerRegister, value: Option<u64>) -> u64 {
        value.map_or(self.exit.now, |_| 0)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Unstructured::new(data);
    let vm = VmModel::new(VmIdentity {
        index: 0,
        name: "fuzz".into(),
        mte: true,
        ram_bytes: RAM_BYTES,
        hosts: vec![0, 1],
        boot_count: 0,
    })
    .unwrap();
    for _ in 0..8 {
        let Ok(one) = OneExit::arbitrary(&mut input) else { return };
        let mut registers = GuestRegisters { x: one.x, pc: one.pc, pstate: one.pstate };
        let mut machine = FakeMachine { exit: &one, injected: false, events: [0; 64] };
        let decoded = exit::decode(one.esr, one.far, one.hpfar);
        let vcpu = usize::from(one.vcpu);
        let _next = exits::handle(
            &mut Exit { vm: &vm, vcpu, registers: &mut registers, esr: one.esr, services: &mut machine },
            decoded,
        );
        let stepped = inject::next_pc(one.pc, one.esr, one.pstate);
        let vector = inject::sync_vector(one.vbar, one.pstate);
        let allowed = [one.pc, stepped, vector];
        assert!(allowed.contains(&registers.pc), "pc {:#x} after {decoded:?}", registers.pc);
        if machine.injected {
            assert_eq!(registers.pc, vector);
        }
    }
});
