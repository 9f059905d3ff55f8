//! `no-mte` (arg 9): a VM configured without MTE sees no MTE: the ID register
//! says so and the MTE system registers are UNDEFINED.

use super::{Env, Outcome, fail};
use crate::boot::{Probe, ec, probe_mrs, probe_msr};
use crate::console::{println, text};
use crate::{mte, sysreg};

const SCTLR_ATA: u64 = 1 << 43;

pub fn run(_: &Env) -> Outcome {
    let pfr1 = sysreg::id_aa64pfr1_el1();
    let level = mte::cpu_level();
    println!("no-mte: ID_AA64PFR1_EL1=0x{pfr1:x} MTE={level}");
    if level != 0 {
        fail!("ID_AA64PFR1_EL1=0x{pfr1:x}: MTE field (bits 11:8) is {level}, want 0");
    }
    let sctlr = sysreg::sctlr_el1();
    if sctlr & SCTLR_ATA != 0 {
        fail!("SCTLR_EL1=0x{sctlr:x} has ATA set");
    }

    let probes: [(&str, Probe); 5] = [
        ("MRS GCR_EL1", probe_mrs!("s3_0_c1_c0_6")),
        ("MRS RGSR_EL1", probe_mrs!("s3_0_c1_c0_5")),
        ("MRS TFSR_EL1", probe_mrs!("s3_0_c5_c6_0")),
        ("MRS TFSRE0_EL1", probe_mrs!("s3_0_c5_c6_1")),
        ("MSR GCR_EL1", probe_msr!("s3_0_c1_c0_6", mte::GCR_EXCLUDE_TAG0)),
    ];
    let mut esr = 0;
    for (what, probe) in probes {
        let Some(fault) = probe.fault else {
            fail!("{what} did not raise an exception (read 0x{:x})", probe.value);
        };
        println!("no-mte: {what}: {fault}");
        if fault.ec() != ec::UNKNOWN {
            fail!("{what}: {fault}; want EC 0x00 (UNDEFINED)");
        }
        if fault.elr != probe.insn {
            fail!("{what}: ELR_EL1 0x{:x} is not the instruction 0x{:x}", fault.elr, probe.insn);
        }
        esr = fault.esr;
    }
    text!(
        "ID_AA64PFR1_EL1=0x{pfr1:x} (MTE 0); MRS GCR/RGSR/TFSR/TFSRE0_EL1 and MSR GCR_EL1 UNDEFINED (ESR 0x{esr:x}, EC 0x00)"
    )
}
