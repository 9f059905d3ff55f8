//! Trapped system-register accesses and system instructions, as a table of
//! encodings with their handlers (KVM's `sys_regs.c` style). The first entry
//! whose encoding and direction match handles the access; an access no entry
//! matches is UNDEFINED for the guest (MTE registers of a VM without MTE with
//! HCR_EL2.ATA = 0, GMID_EL1 under TID5, writes to ID registers, ...).
//!
//! What traps, and why: HCR_EL2.TID3 (ID registers: the guest sees a sanitised
//! view), ICH_HCR_EL2.TC / the GIC's trap of `ICC_SGI1R_EL1` (SGIs go through the
//! vGIC model), MDCR_EL2.TDA/TDOSA/TPM/TPMCR (no guest debug or PMU), and
//! HCR_EL2.TSW (set/way cache maintenance, which must not reach other VMs' lines
//! in a way the guest can observe).

use core::ops::RangeInclusive;

use super::{Exit, Next, Services};
use crate::exception::{SysRegAccess, SysRegDirection};
use crate::guest_context::VirtualTimerRegister;
use crate::vm::id_registers;

/// An encoding pattern: one value of op0 and ranges for the other fields.
#[derive(Debug, Clone)]
pub struct Encoding {
    pub op0: u8,
    pub op1: RangeInclusive<u8>,
    pub crn: RangeInclusive<u8>,
    pub crm: RangeInclusive<u8>,
    pub op2: RangeInclusive<u8>,
}

impl Encoding {
    const fn one(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self { op0, op1: op1..=op1, crn: crn..=crn, crm: crm..=crm, op2: op2..=op2 }
    }

    pub fn matches(&self, access: &SysRegAccess) -> bool {
        access.op0 == self.op0
            && self.op1.contains(&access.op1)
            && self.crn.contains(&access.crn)
            && self.crm.contains(&access.crm)
            && self.op2.contains(&access.op2)
    }
}

/// Which accesses an entry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directions {
    Read,
    Write,
    Both,
}

impl Directions {
    pub fn allows(self, direction: SysRegDirection) -> bool {
        matches!(
            (self, direction),
            (Self::Both, _) | (Self::Read, SysRegDirection::Read) | (Self::Write, SysRegDirection::Write)
        )
    }
}

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The guest's view of the CPU's ID register (features the VM lacks hidden).
    IdRegister,
    /// `ICC_SGI1R_EL1`: an SGI through the vGIC.
    SendSgi,
    /// `ICC_SGI0R_EL1` / `ICC_ASGI1R_EL1`: with a single Security state
    /// (`GICD_CTLR.DS` = 1) both generate Group 0 SGIs only (KVM treats them the
    /// same way). Every interrupt of the vGIC is Group 1 (`IGROUPR` is RAO/WI),
    /// so the write is accepted and generates nothing, as on bare QEMU with
    /// SGIs in Group 1.
    Group0Sgi,
    /// Reads as zero, writes ignored: nothing there can reach another VM.
    ReadAsZero,
    /// `DC ISW/CSW/CISW`: performed as a clean and invalidate by set/way.
    SetWayMaintenance,
    /// A virtual timer register (trapped with FEAT_ECV): performed on the
    /// guest's timer, so the run loop sees its output change before re-entry.
    VirtualTimer(VirtualTimerRegister),
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: &'static str,
    pub encoding: Encoding,
    pub directions: Directions,
    pub action: Action,
}

/// The trapped encodings the hypervisor emulates, each a row: name, encoding,
/// directions, action. Rows do not overlap.
pub const TABLE: &[Entry] = &[
    // op0 = 3, op1 = 0, CRn = 0, CRm = 1..=7: the ID register space (TID3).
    Entry {
        name: "ID register",
        encoding: Encoding { op0: 3, op1: 0..=0, crn: 0..=0, crm: 1..=7, op2: 0..=7 },
        directions: Directions::Read,
        action: Action::IdRegister,
    },
    Entry {
        name: "ICC_SGI1R_EL1",
        encoding: Encoding::one(3, 0, 12, 11, 5),
        directions: Directions::Write,
        action: Action::SendSgi,
    },
    Entry {
        name: "ICC_ASGI1R_EL1",
        encoding: Encoding::one(3, 0, 12, 11, 6),
        directions: Directions::Write,
        action: Action::Group0Sgi,
    },
    Entry {
        name: "ICC_SGI0R_EL1",
        encoding: Encoding::one(3, 0, 12, 11, 7),
        directions: Directions::Write,
        action: Action::Group0Sgi,
    },
    // op0 = 2: the debug registers (MDCR_EL2.TDA, TDOSA).
    Entry {
        name: "debug register",
        encoding: Encoding { op0: 2, op1: 0..=7, crn: 0..=15, crm: 0..=15, op2: 0..=7 },
        directions: Directions::Both,
        action: Action::ReadAsZero,
    },
    // PMCR_EL0, PMCNTEN*, PMOVS*, PMSELR, PMCEID*, PMCCNTR, PMXEV*, PMUSERENR:
    // op0 = 3, op1 = 3, CRn = 9, CRm = 12..=14.
    Entry {
        name: "PMU register",
        encoding: Encoding { op0: 3, op1: 3..=3, crn: 9..=9, crm: 12..=14, op2: 0..=7 },
        directions: Directions::Both,
        action: Action::ReadAsZero,
    },
    // PMEVCNTR<n>_EL0 / PMEVTYPER<n>_EL0 / PMCCFILTR_EL0: CRn = 14, CRm = 8..=15.
    Entry {
        name: "PMU event register",
        encoding: Encoding { op0: 3, op1: 3..=3, crn: 14..=14, crm: 8..=15, op2: 0..=7 },
        directions: Directions::Both,
        action: Action::ReadAsZero,
    },
    // PMINTENSET_EL1 / PMINTENCLR_EL1 (and their neighbours): op1 = 0, CRn = 9, CRm = 14.
    Entry {
        name: "PMU interrupt enable",
        encoding: Encoding { op0: 3, op1: 0..=0, crn: 9..=9, crm: 14..=14, op2: 0..=7 },
        directions: Directions::Both,
        action: Action::ReadAsZero,
    },
    // CNTV_TVAL/CTL/CVAL_EL0: op0 = 3, op1 = 3, CRn = 14, CRm = 3, op2 = 0/1/2.
    Entry {
        name: "CNTV_TVAL_EL0",
        encoding: Encoding::one(3, 3, 14, 3, 0),
        directions: Directions::Both,
        action: Action::VirtualTimer(VirtualTimerRegister::TimerValue),
    },
    Entry {
        name: "CNTV_CTL_EL0",
        encoding: Encoding::one(3, 3, 14, 3, 1),
        directions: Directions::Both,
        action: Action::VirtualTimer(VirtualTimerRegister::Control),
    },
    Entry {
        name: "CNTV_CVAL_EL0",
        encoding: Encoding::one(3, 3, 14, 3, 2),
        directions: Directions::Both,
        action: Action::VirtualTimer(VirtualTimerRegister::CompareValue),
    },
    Entry {
        name: "DC ISW",
        encoding: Encoding::one(1, 0, 7, 6, 2),
        directions: Directions::Write,
        action: Action::SetWayMaintenance,
    },
    Entry {
        name: "DC CSW",
        encoding: Encoding::one(1, 0, 7, 10, 2),
        directions: Directions::Write,
        action: Action::SetWayMaintenance,
    },
    Entry {
        name: "DC CISW",
        encoding: Encoding::one(1, 0, 7, 14, 2),
        directions: Directions::Write,
        action: Action::SetWayMaintenance,
    },
];

/// The row that handles `access`, if any.
pub fn lookup(access: &SysRegAccess) -> Option<&'static Entry> {
    TABLE.iter().find(|entry| entry.encoding.matches(access) && entry.directions.allows(access.direction))
}

pub fn handle<S: Services>(exit: &mut Exit<'_, S>, access: SysRegAccess) -> Next {
    let Some(entry) = lookup(&access) else {
        let pc = exit.registers.pc;
        exit.diagnostic(log::Level::Debug, format_args!("trapped {access} at {pc:#x}; injecting UNDEFINED"));
        exit.inject_undefined();
        return Next::Resume;
    };
    match entry.action {
        Action::IdRegister => {
            let real = exit.services.host_id_register(access.crm, access.op2);
            let value = id_registers::guest_view(access.crm, access.op2, real, exit.vm.identity.mte);
            exit.registers.set(access.rt, value);
        }
        Action::SendSgi => {
            let value = exit.registers.get(access.rt);
            let targets = exit.vm.vgic.lock().send_sgi(exit.vcpu, value);
            exit.vm.interrupts_changed();
            let hosts: arrayvec::ArrayVec<usize, 64> =
                targets.iter().filter_map(|v| exit.vm.identity.hosts.get(v).copied()).take(64).collect();
            exit.services.kick_cpus(&hosts);
        }
        Action::Group0Sgi => {}
        Action::ReadAsZero => {
            if access.direction == SysRegDirection::Read {
                exit.registers.set(access.rt, 0);
            }
        }
        Action::VirtualTimer(register) => match access.direction {
            SysRegDirection::Read => {
                let value = exit.services.virtual_timer_register(register, None);
                exit.registers.set(access.rt, value);
            }
            SysRegDirection::Write => {
                let value = exit.registers.get(access.rt);
                exit.services.virtual_timer_register(register, Some(value));
            }
        },
        Action::SetWayMaintenance => {
            let operand = exit.registers.get(access.rt);
            exit.services.clean_invalidate_by_set_way(operand);
        }
    }
    exit.skip_instruction();
    Next::Resume
}
