//! Trapped system registers and instructions: the whole ID space (op0=3, op1=0,
//! CRn=0, CRm=0..7, op2=0..7) read by a generated table of MRS, writes to ID
//! registers (UNDEFINED), debug and PMU registers (read-as-zero, writes
//! ignored), DC ISW/CSW/CISW (emulated: complete), EL2 and EL3 registers from
//! EL1 (UNDEFINED), IMPLEMENTATION DEFINED registers (UNDEFINED), GMID_EL1 with
//! LDGM/STGM and the MTE registers, and semihosting HLT #0xF000 (UNDEFINED: the
//! host must never answer a guest).

use core::arch::asm;

use super::{Ctx, Verdict, bad, good, scratch};
use crate::boot::{PROBE_POISON, Probe, ec, expect_fault, probe_asm, probe_mrs, probe_msr};
use crate::console::{Report, text};
use crate::sysreg;

/// Reads `S3_0_C0_C<crm>_<op2>` (index = crm * 8 + op2) through a table of 64
/// MRS instructions (each followed by a branch out, so a skipped one is fine).
fn read_id(index: u64) -> Probe {
    let mut value = PROBE_POISON;
    let (insn, fault) = expect_fault(|| {
        let insn: u64;
        // SAFETY: jumps into a table of MRS of ID-space registers (no side
        // effects); an UNDEFINED one is skipped onto its `b 4f`.
        unsafe {
            asm!(
                "adr {t}, 3f",
                "add {t}, {t}, {i}, lsl #3",
                "mov {insn}, {t}",
                "br {t}",
                "3:",
                ".irp crm, 0,1,2,3,4,5,6,7",
                ".irp op2, 0,1,2,3,4,5,6,7",
                "mrs {v}, s3_0_c0_c\\crm\\()_\\op2",
                "b 4f",
                ".endr",
                ".endr",
                "4:",
                t = out(reg) _,
                i = in(reg) index & 63,
                insn = out(reg) insn,
                v = inout(reg) value,
                options(nostack),
            );
        }
        insn
    });
    Probe { insn, value, fault }
}

fn field(value: u64, shift: u32) -> u64 {
    (value >> shift) & 0xf
}

pub fn id_sweep(ctx: &Ctx) -> Verdict {
    let mut values = [0u64; 64];
    // FEAT_IDST (ID_AA64MMFR2_EL1.IDS = 1): unallocated ID-space encodings
    // trap with EC 0x18 (the MRS's own syndrome) instead of EC 0x00.
    let idst = field(sysreg::id_aa64mmfr2_el1(), 36) == 1;
    let mut undefined = 0u64; // bit n: S3_0_C0_C(n/8)_(n%8) UNDEFINED (or EC 0x18)
    for index in 0..64 {
        let first = read_id(index);
        let second = read_id(index);
        let (crm, op2) = (index / 8, index % 8);
        match (first.fault, second.fault) {
            (None, None) if first.value == second.value => values[index as usize] = first.value,
            (None, None) => bad!("S3_0_C0_C{crm}_{op2} reads 0x{:x} then 0x{:x}", first.value, second.value),
            (Some(f), Some(_)) if f.ec() == ec::UNKNOWN && f.elr == first.insn => undefined |= 1 << index,
            (Some(f), Some(_)) if idst && f.ec() == ec::SYSREG_TRAP && f.elr == first.insn => {
                // ISS: Op0 [21:20] = 3, Op2 [19:17], Op1 [16:14] = 0, CRn [13:10] = 0, CRm [4:1], read.
                let iss = f.esr & 0x1ff_ffff;
                let want = (3 << 20) | (op2 << 17) | (crm << 1) | 1;
                if iss & !(0x1f << 5) != want {
                    bad!("S3_0_C0_C{crm}_{op2}: EC 0x18 with ISS 0x{iss:x} (want 0x{want:x} plus Rt)");
                }
                undefined |= 1 << index;
            }
            (Some(f), _) | (_, Some(f)) => bad!("S3_0_C0_C{crm}_{op2}: {f}"),
        }
    }
    // Architecturally readable: MIDR, MPIDR, REVIDR and all of CRm = 1..7
    // (unallocated encodings there are RAZ).
    let must_read = (1u64 << 0) | (1 << 5) | (1 << 6) | !0xFF;
    if undefined & must_read != 0 {
        bad!("ID registers UNDEFINED that must read (bit n = CRm*8+op2): 0x{:x}", undefined & must_read);
    }
    let idx = |crm: u64, op2: u64| values[(crm * 8 + op2) as usize];
    let mpidr = idx(0, 5);
    if mpidr & 0xff != sysreg::cpu_index() || mpidr & (1 << 31) == 0 {
        bad!("MPIDR_EL1 = 0x{mpidr:x}: want Aff0 = vCPU index and bit 31 (RES1)");
    }
    let (pfr0, pfr1, zfr0, smfr0, dfr0) = (idx(4, 0), idx(4, 1), idx(4, 4), idx(4, 5), idx(5, 0));
    let hidden = [
        ("ID_AA64PFR0_EL1.SVE", field(pfr0, 32)),
        ("ID_AA64PFR1_EL1.SME", field(pfr1, 24)),
        ("ID_AA64ZFR0_EL1", zfr0),
        ("ID_AA64SMFR0_EL1", smfr0),
        ("ID_AA64DFR0_EL1.PMUVer", field(dfr0, 8)),
        ("ID_AA64DFR0_EL1.PMSVer", field(dfr0, 32)),
    ];
    if let Some((name, value)) = hidden.iter().find(|(_, v)| *v != 0) {
        bad!("{name} = 0x{value:x}: not hidden from the guest");
    }
    let mte_field = field(pfr1, 8);
    if ctx.mte != (mte_field >= 2) {
        bad!("ID_AA64PFR1_EL1.MTE = {mte_field} but MTE is {} for this VM", if ctx.mte { "on" } else { "off" });
    }
    // Digest, so runs (and bare QEMU) can be compared.
    let digest = values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &v| (h ^ v).wrapping_mul(0x100_0000_01b3));
    good!(
        "64 ID-space registers read twice, stable; UNDEFINED{} mask 0x{undefined:x}; SVE/SME/PMU/SPE hidden; PFR0 0x{pfr0:x} PFR1 0x{pfr1:x} digest 0x{digest:x}",
        if idst { "/IDST" } else { "" }
    )
}

fn expect_undefined(name: &str, probe: Probe) -> Result<(), Report> {
    match probe.fault {
        Some(f) if f.ec() == ec::UNKNOWN && f.elr == probe.insn => Ok(()),
        Some(f) => Err(text!("{name}: {f}; want UNDEFINED (EC 0x00) at 0x{:x}", probe.insn)),
        None => Err(text!("{name} was not UNDEFINED (read 0x{:x})", probe.value)),
    }
}

pub fn id_writes(_: &Ctx) -> Verdict {
    let probes = [
        ("MSR MIDR_EL1", probe_msr!("s3_0_c0_c0_0", 0x410F_D0F0)),
        ("MSR MPIDR_EL1", probe_msr!("s3_0_c0_c0_5", sysreg::mpidr_el1())),
        ("MSR ID_AA64PFR0_EL1", probe_msr!("s3_0_c0_c4_0", sysreg::id_aa64pfr0_el1())),
        ("MSR ID_AA64ISAR0_EL1", probe_msr!("s3_0_c0_c6_0", sysreg::id_aa64isar0_el1())),
        ("MSR ID_AA64MMFR0_EL1", probe_msr!("s3_0_c0_c7_0", sysreg::id_aa64mmfr0_el1())),
        ("MSR ID_AA64DFR0_EL1", probe_msr!("s3_0_c0_c5_0", sysreg::id_aa64dfr0_el1())),
    ];
    for (name, probe) in probes {
        expect_undefined(name, probe)?;
    }
    good!("6 writes to ID registers: all UNDEFINED")
}

pub fn debug_raz_wi(_: &Ctx) -> Verdict {
    let writes = [
        ("MDSCR_EL1", probe_msr!("s2_0_c0_c2_2", 1 << 12)),
        ("DBGBVR0_EL1", probe_msr!("s2_0_c0_c0_4", 0x4000_1000)),
        ("DBGBCR0_EL1", probe_msr!("s2_0_c0_c0_5", 0x1E0)),
        ("DBGWVR0_EL1", probe_msr!("s2_0_c0_c0_6", 0x4000_2000)),
        ("DBGWCR0_EL1", probe_msr!("s2_0_c0_c0_7", 0x1F0)),
        ("OSDLR_EL1", probe_msr!("s2_0_c1_c3_4", 1)),
        ("DBGCLAIMSET_EL1", probe_msr!("s2_0_c7_c8_6", 0xFF)),
        ("OSLAR_EL1", probe_msr!("s2_0_c1_c0_4", 1)),
        ("DBGCLAIMCLR_EL1", probe_msr!("s2_0_c7_c9_6", 0)),
    ];
    let mut wrong = Report::new();
    for (name, probe) in writes {
        if let Some(f) = probe.fault {
            let _ = core::fmt::Write::write_fmt(&mut wrong, format_args!("MSR {name} EC 0x{:x}; ", f.ec()));
        }
    }
    let reads = [
        ("MDSCR_EL1", probe_mrs!("s2_0_c0_c2_2")),
        ("DBGBVR0_EL1", probe_mrs!("s2_0_c0_c0_4")),
        ("DBGBCR0_EL1", probe_mrs!("s2_0_c0_c0_5")),
        ("DBGWVR0_EL1", probe_mrs!("s2_0_c0_c0_6")),
        ("DBGWCR0_EL1", probe_mrs!("s2_0_c0_c0_7")),
        ("OSDLR_EL1", probe_mrs!("s2_0_c1_c3_4")),
        ("DBGCLAIMCLR_EL1", probe_mrs!("s2_0_c7_c9_6")),
        ("OSLSR_EL1", probe_mrs!("s2_0_c1_c1_4")),
        ("MDCCSR_EL0", probe_mrs!("s2_3_c0_c1_0")),
        ("MDRAR_EL1", probe_mrs!("s2_0_c1_c0_0")),
    ];
    note_reads(&mut wrong, &reads);
    if !wrong.as_str().is_empty() {
        bad!("want RAZ/WI: {wrong}");
    }
    good!("9 debug register writes ignored, 10 reads zero")
}

/// Appends every read that did not return 0 to `wrong`.
fn note_reads(wrong: &mut Report, reads: &[(&str, Probe)]) {
    for (name, probe) in reads {
        let _ = match probe.fault {
            None if probe.value == 0 => Ok(()),
            None => core::fmt::Write::write_fmt(wrong, format_args!("{name} = 0x{:x}; ", probe.value)),
            Some(f) => core::fmt::Write::write_fmt(wrong, format_args!("MRS {name} EC 0x{:x}; ", f.ec())),
        };
    }
}

pub fn pmu_raz_wi(_: &Ctx) -> Verdict {
    let writes = [
        ("PMCR_EL0", probe_msr!("s3_3_c9_c12_0", 1)),
        ("PMCNTENSET_EL0", probe_msr!("s3_3_c9_c12_1", 1 << 31)),
        ("PMCCNTR_EL0", probe_msr!("s3_3_c9_c13_0", 0x1234)),
        ("PMSELR_EL0", probe_msr!("s3_3_c9_c12_5", 0)),
        ("PMUSERENR_EL0", probe_msr!("s3_3_c9_c14_0", 1)),
        ("PMINTENSET_EL1", probe_msr!("s3_0_c9_c14_1", 0)),
        ("PMEVCNTR0_EL0", probe_msr!("s3_3_c14_c8_0", 0x55)),
        ("PMEVTYPER0_EL0", probe_msr!("s3_3_c14_c12_0", 0x11)),
        ("PMCCFILTR_EL0", probe_msr!("s3_3_c14_c15_7", 0)),
        ("PMOVSSET_EL0", probe_msr!("s3_3_c9_c14_3", 0)),
    ];
    let mut wrong = Report::new();
    for (name, probe) in writes {
        if let Some(f) = probe.fault {
            let _ = core::fmt::Write::write_fmt(&mut wrong, format_args!("MSR {name} EC 0x{:x}; ", f.ec()));
        }
    }
    let reads = [
        ("PMCR_EL0", probe_mrs!("s3_3_c9_c12_0")),
        ("PMCNTENSET_EL0", probe_mrs!("s3_3_c9_c12_1")),
        ("PMCCNTR_EL0", probe_mrs!("s3_3_c9_c13_0")),
        ("PMUSERENR_EL0", probe_mrs!("s3_3_c9_c14_0")),
        ("PMEVCNTR0_EL0", probe_mrs!("s3_3_c14_c8_0")),
        ("PMEVTYPER0_EL0", probe_mrs!("s3_3_c14_c12_0")),
        ("PMCEID0_EL0", probe_mrs!("s3_3_c9_c12_6")),
        ("PMCEID1_EL0", probe_mrs!("s3_3_c9_c12_7")),
    ];
    note_reads(&mut wrong, &reads);
    if !wrong.as_str().is_empty() {
        bad!("want RAZ/WI: {wrong}");
    }
    good!("10 PMU register writes ignored, 8 reads zero")
}

pub fn set_way(ctx: &Ctx) -> Verdict {
    let buf = ctx.scratch + scratch::SETWAY;
    let pattern = |i: u64| 0x5E7_3A40_0000_0000 | i;
    for i in 0..512 {
        // SAFETY: a scratch page of free RAM; no Rust object lives there.
        unsafe { core::ptr::write_volatile((buf + 8 * i) as *mut u64, pattern(i)) };
    }
    let mut ops = 0u64;
    let mut values = [0u64; 1 + 2 * 4 * 64];
    values[0] = u64::MAX; // garbage: level 7, every set and way
    let mut n = 1;
    for level in 0..2u64 {
        for way in 0..4u64 {
            for set in 0..64u64 {
                values[n] = (way << 30) | (set << 6) | (level << 1);
                n += 1;
            }
        }
    }
    for &value in &values {
        // SAFETY: set/way cache maintenance (clean, clean+invalidate, and
        // invalidate, which the architecture upgrades to clean+invalidate under
        // a hypervisor); no data is lost that the guest depends on.
        let (_, fault) =
            probe_asm!("1: dc cisw, {v}", "dc csw, {v}", "dc isw, {v}"; v = in(reg) value, options(nostack));
        if let Some(f) = fault {
            bad!("DC CISW/CSW/ISW with 0x{value:x}: {f}; want them emulated");
        }
        ops += 3;
    }
    for i in 0..512 {
        // SAFETY: as above.
        let got = unsafe { core::ptr::read_volatile((buf + 8 * i) as *const u64) };
        if got != pattern(i) {
            bad!("after DC set/way, 0x{:x} reads 0x{got:x}, want 0x{:x}", buf + 8 * i, pattern(i));
        }
    }
    good!("{ops} DC CISW/CSW/ISW (all sets/ways of 2 levels, garbage operand) completed; data intact")
}

pub fn el2_regs(_: &Ctx) -> Verdict {
    let reads = [
        ("HCR_EL2", probe_mrs!("s3_4_c1_c1_0")),
        ("SCTLR_EL2", probe_mrs!("s3_4_c1_c0_0")),
        ("MDCR_EL2", probe_mrs!("s3_4_c1_c1_1")),
        ("VTTBR_EL2", probe_mrs!("s3_4_c2_c1_0")),
        ("VTCR_EL2", probe_mrs!("s3_4_c2_c1_2")),
        ("SPSR_EL2", probe_mrs!("s3_4_c4_c0_0")),
        ("ELR_EL2", probe_mrs!("s3_4_c4_c0_1")),
        ("SP_EL1", probe_mrs!("s3_4_c4_c1_0")),
        ("VBAR_EL2", probe_mrs!("s3_4_c12_c0_0")),
        ("TPIDR_EL2", probe_mrs!("s3_4_c13_c0_2")),
        ("CNTHCTL_EL2", probe_mrs!("s3_4_c14_c1_0")),
        ("CNTVOFF_EL2", probe_mrs!("s3_4_c14_c0_3")),
        ("VMPIDR_EL2", probe_mrs!("s3_4_c0_c0_5")),
        ("ICH_HCR_EL2", probe_mrs!("s3_4_c12_c11_0")),
        ("ICH_VTR_EL2", probe_mrs!("s3_4_c12_c11_1")),
        ("ICH_LR0_EL2", probe_mrs!("s3_4_c12_c12_0")),
        ("SCR_EL3", probe_mrs!("s3_6_c1_c1_0")),
        ("VBAR_EL3", probe_mrs!("s3_6_c12_c0_0")),
    ];
    for (name, probe) in reads {
        expect_undefined(name, probe)?;
    }
    let writes = [
        ("MSR HCR_EL2", probe_msr!("s3_4_c1_c1_0", 0)),
        ("MSR VTTBR_EL2", probe_msr!("s3_4_c2_c1_0", 0)),
        ("MSR VBAR_EL2", probe_msr!("s3_4_c12_c0_0", 0)),
        ("MSR CNTVOFF_EL2", probe_msr!("s3_4_c14_c0_3", 0x1234_5678)),
        ("MSR ICH_LR0_EL2", probe_msr!("s3_4_c12_c12_0", 0xFFFF_FFFF_FFFF_FFFF)),
        ("MSR SP_EL1", probe_msr!("s3_4_c4_c1_0", 0)),
        ("MSR SCR_EL3", probe_msr!("s3_6_c1_c1_0", 0)),
    ];
    for (name, probe) in writes {
        expect_undefined(name, probe)?;
    }
    good!("18 reads and 7 writes of EL2/EL3 registers from EL1: all UNDEFINED")
}

pub fn impdef(_: &Ctx) -> Verdict {
    let probes = [
        ("S3_0_C15_C0_0", probe_mrs!("s3_0_c15_c0_0")),
        ("S3_2_C15_C7_7", probe_mrs!("s3_2_c15_c7_7")),
        ("S3_7_C15_C15_7", probe_mrs!("s3_7_c15_c15_7")),
        ("S3_5_C11_C9_1", probe_mrs!("s3_5_c11_c9_1")),
        ("MSR S3_0_C15_C0_0", probe_msr!("s3_0_c15_c0_0", 0)),
        ("MSR S3_7_C15_C15_7", probe_msr!("s3_7_c15_c15_7", 0)),
    ];
    for (name, probe) in probes {
        expect_undefined(name, probe)?;
    }
    good!("6 accesses to IMPLEMENTATION DEFINED encodings: all UNDEFINED")
}

pub fn gmid(ctx: &Ctx) -> Verdict {
    if !ctx.mte {
        return good!("skipped (no MTE)");
    }
    let probe = probe_mrs!("s3_1_c0_c0_4");
    if let Some(f) = probe.fault {
        bad!("MRS GMID_EL1: {f}");
    }
    let bs = probe.value & 0xf;
    if !(2..=6).contains(&bs) {
        bad!("GMID_EL1 = 0x{:x}: BS {bs} outside 2..=6", probe.value);
    }
    let block = 4u64 << bs;
    let base = ctx.scratch + scratch::TAGS;
    let granules = block / mte_insn::GRANULE;
    let mut want = 0u64;
    for i in 0..granules {
        let addr = base + i * mte_insn::GRANULE;
        let tag = (i % 15) as u8 + 1;
        // SAFETY: a Tagged scratch page no Rust object lives in; only its tag changes.
        unsafe { mte_insn::stg(mte_insn::with_tag(addr, tag)) };
        want |= u64::from(tag) << mte_insn::tag_word_shift(addr);
    }
    // SAFETY: the mapped scratch block, read at EL1; no memory is written.
    let got = unsafe { mte_insn::ldgm(base) };
    if got != want {
        bad!("LDGM of a {block}-byte block (GMID.BS {bs}) read 0x{got:x}, want 0x{want:x}");
    }
    // STGM writes them back as zeros; LDG must agree.
    // SAFETY: STGM changes only the tags of the scratch block (at EL1).
    unsafe { mte_insn::stgm(base, 0) };
    for i in 0..granules {
        // SAFETY: mapped Tagged scratch memory.
        let tag = unsafe { mte_insn::ldg(base + i * mte_insn::GRANULE) };
        if tag != 0 {
            bad!("after STGM of zeros, granule {i} has tag {tag}");
        }
    }
    good!("GMID_EL1 0x{:x} (block {block} bytes); LDGM and STGM agree with STG/LDG", probe.value)
}

pub fn mte_regs(ctx: &Ctx) -> Verdict {
    if !ctx.mte {
        return good!("skipped (no MTE)");
    }
    let (gcr, rgsr) = (sysreg::gcr_el1(), sysreg::rgsr_el1());
    type Check = (&'static str, fn(u64), fn() -> u64, u64);
    let checks: [Check; 4] = [
        ("GCR_EL1", sysreg::set_gcr_el1, sysreg::gcr_el1, 0x1_0F0F),
        ("RGSR_EL1", sysreg::set_rgsr_el1, sysreg::rgsr_el1, 0xBE_EF03),
        ("TFSR_EL1", sysreg::set_tfsr_el1, sysreg::tfsr_el1, 0x3),
        ("TFSRE0_EL1", sysreg::set_tfsre0_el1, sysreg::tfsre0_el1, 0x3),
    ];
    for (name, set, get, value) in checks {
        set(value);
        let read = get();
        set(0);
        if read != value {
            sysreg::set_gcr_el1(gcr);
            sysreg::set_rgsr_el1(rgsr);
            bad!("{name}: wrote 0x{value:x}, read 0x{read:x}");
        }
    }
    // IRG honours GCR_EL1.Exclude: everything but tag 7 excluded.
    sysreg::set_gcr_el1(0xFFFF & !(1 << 7));
    sysreg::set_rgsr_el1(rgsr | (1 << 8));
    let tags: [u8; 8] = core::array::from_fn(|i| mte_insn::tag_of(mte_insn::irg(0x4000_0000 + 16 * i as u64, 0)));
    sysreg::set_gcr_el1(gcr);
    sysreg::set_rgsr_el1(rgsr);
    if tags.iter().any(|&t| t != 7) {
        bad!("IRG with only tag 7 allowed by GCR_EL1 gave {tags:?}");
    }
    good!("GCR/RGSR/TFSR/TFSRE0_EL1 hold their values; IRG honours GCR_EL1.Exclude")
}

pub fn semihosting(_: &Ctx) -> Verdict {
    for (op, name) in [(0x10u64, "SYS_CLOCK"), (0x11, "SYS_TIME"), (0x30, "SYS_ELAPSED")] {
        let mut x0 = op;
        // SAFETY: the semihosting trap; with no debugger and no host answering
        // it is UNDEFINED and skipped. x1 points nowhere the host could use.
        let (insn, fault) = probe_asm!("1: hlt #0xf000"; inout("x0") x0, in("x1") 0u64, options(nostack));
        match fault {
            Some(f) if f.ec() == ec::UNKNOWN && f.elr == insn => {}
            Some(f) => bad!("HLT #0xF000 ({name}): {f}; want UNDEFINED"),
            None => bad!("HLT #0xF000 ({name}) was answered: x0 = 0x{x0:x}; the host must not serve guests"),
        }
    }
    // SAFETY: another HLT immediate; UNDEFINED without halting debug.
    let (insn, fault) = probe_asm!("1: hlt #0x3c"; options(nostack));
    match fault {
        Some(f) if f.ec() == ec::UNKNOWN && f.elr == insn => {}
        other => bad!("HLT #0x3C: {other:?}; want UNDEFINED"),
    }
    good!("HLT #0xF000 (SYS_CLOCK, SYS_TIME, SYS_ELAPSED) and HLT #0x3C: UNDEFINED")
}
