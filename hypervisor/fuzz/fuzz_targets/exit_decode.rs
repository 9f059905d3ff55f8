//! The guest-exit decoder and every ESR decoder, plus the crash-report and
//! syndrome formatting, on arbitrary ESR/FAR/HPFAR values.

#![no_main]

use core::fmt::{self, Write};

use arbitrary::Arbitrary;
use hypervisor::exception::{CrashReport, Esr, Spsr, TrapFrame, faulting_ipa};
use hypervisor::vm::exit::{GuestExit, Stage2FaultKind, decode, injected_abort_syndrome};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    esr: u64,
    far: u64,
    hpfar: u64,
    spsr: u64,
    elr: u64,
    sp: u64,
    x: [u64; 4],
    cpu: usize,
    with_hpfar: bool,
    flags: u8,
}

/// Formats into nothing, counting bytes, so formatting cost stays small and
/// no allocation is needed.
struct Sink(usize);

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fuzz_target!(|input: Input| {
    let exit = decode(input.esr, input.far, input.hpfar);
    let esr = Esr(input.esr);
    match exit {
        GuestExit::Stage2Abort(abort) => {
            assert_eq!(abort.ipa.as_u64(), faulting_ipa(input.hpfar, input.far));
            assert_eq!(abort.far.as_u64(), input.far);
            if abort.instruction {
                assert!(!abort.write && abort.access.is_none());
                assert!(esr.instruction_abort().is_some());
            } else {
                assert!(esr.data_abort().is_some());
            }
            if let Some(access) = abort.access {
                assert!(matches!(access.size_bytes, 1 | 2 | 4 | 8), "{access:?}");
                assert!(access.register < 32, "{access:?}");
            }
            let _ = matches!(abort.kind, Stage2FaultKind::Other(_));
        }
        GuestExit::Hvc { imm } => assert_eq!(Some(imm), esr.imm16()),
        GuestExit::SysReg(access) => assert_eq!(Some(access), esr.sys_reg_access()),
        GuestExit::Wait(kind) => assert_eq!(Some(kind), esr.wfx()),
        GuestExit::Smc { .. } | GuestExit::Unhandled(_) => {}
    }

    // Every accessor of the raw syndrome.
    let ec = esr.ec();
    assert_eq!(hypervisor::exception::ExceptionClass::from_code(ec.code()), ec);
    let _ = (esr.il(), esr.instruction_length(), esr.iss(), esr.iss2(), esr.far_is_valid());
    let _ = (esr.data_abort(), esr.instruction_abort(), esr.sys_reg_access(), esr.wfx());
    let _ = (esr.imm16(), esr.breakpoint_comment());
    let _ = injected_abort_syndrome(input.flags & 1 != 0, input.flags & 2 != 0, input.flags & 4 != 0);

    // The formatting that a crash on an arbitrary syndrome would print.
    let mut sink = Sink(0);
    write!(sink, "{esr} {ec} {}", Spsr(input.spsr)).unwrap();
    if let Some(abort) = esr.data_abort() {
        write!(sink, "{abort} {}", abort.dfsc).unwrap();
    }
    if let Some(abort) = esr.instruction_abort() {
        write!(sink, "{abort} {}", abort.ifsc).unwrap();
    }
    if let Some(access) = esr.sys_reg_access() {
        write!(sink, "{access}").unwrap();
    }
    let mut frame = TrapFrame {
        sp: input.sp,
        elr: input.elr,
        spsr: input.spsr,
        esr: input.esr,
        far: input.far,
        ..TrapFrame::default()
    };
    frame.x[..4].copy_from_slice(&input.x);
    let report =
        CrashReport { cpu: input.cpu, kind: "fuzz", frame: &frame, hpfar: input.with_hpfar.then_some(input.hpfar) };
    write!(sink, "{report}").unwrap();
    assert!(sink.0 > 0);
});
