//! The crash report printed when an unexpected exception reaches EL2 or the
//! hypervisor panics.
//!
//! At that point nothing can be trusted to work except formatting into the
//! console, so the report is a plain [`fmt::Display`] over a register
//! snapshot: no allocation, no locks, no lookups. It decodes what a human
//! would otherwise decode by hand from the Arm ARM (ESR class and fault,
//! SPSR mode and flags, whether FAR means anything) and prints every
//! general-purpose register.

use core::fmt;
use core::mem::{offset_of, size_of};

use super::esr::Esr;

/// The register snapshot the exception vectors save on the stack before
/// calling into Rust.
///
/// The assembly that fills it hard-codes this layout, hence `repr(C)`, the
/// `*_OFFSET` constants (usable as `const` operands of `global_asm!`) and the
/// compile-time checks below.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    /// x0..x30 (x29 is the frame pointer, x30 the link register).
    pub x: [u64; 31],
    /// The stack pointer of the interrupted context.
    pub sp: u64,
    /// ELR_EL2: where the exception was taken (the faulting instruction for
    /// synchronous exceptions).
    pub elr: u64,
    /// SPSR_EL2: PSTATE of the interrupted context.
    pub spsr: u64,
    /// ESR_EL2: why the exception was taken.
    pub esr: u64,
    /// FAR_EL2: the faulting virtual address, when [`Esr::far_is_valid`].
    pub far: u64,
}

impl TrapFrame {
    /// Size of the frame in bytes; the vectors reserve this much stack.
    pub const SIZE: usize = 288;
    /// Byte offset of `x[0]`; `x[n]` is at `8 * n`.
    pub const X_OFFSET: usize = 0;
    /// Byte offset of `sp`.
    pub const SP_OFFSET: usize = 248;
    /// Byte offset of `elr`.
    pub const ELR_OFFSET: usize = 256;
    /// Byte offset of `spsr`.
    pub const SPSR_OFFSET: usize = 264;
    /// Byte offset of `esr`.
    pub const ESR_OFFSET: usize = 272;
    /// Byte offset of `far`.
    pub const FAR_OFFSET: usize = 280;
}

// The exception vectors store registers at these offsets; a layout change
// here without a matching change there would corrupt every trap.
const _: () = {
    assert!(size_of::<TrapFrame>() == TrapFrame::SIZE);
    assert!(offset_of!(TrapFrame, x) == TrapFrame::X_OFFSET);
    assert!(offset_of!(TrapFrame, sp) == TrapFrame::SP_OFFSET);
    assert!(offset_of!(TrapFrame, elr) == TrapFrame::ELR_OFFSET);
    assert!(offset_of!(TrapFrame, spsr) == TrapFrame::SPSR_OFFSET);
    assert!(offset_of!(TrapFrame, esr) == TrapFrame::ESR_OFFSET);
    assert!(offset_of!(TrapFrame, far) == TrapFrame::FAR_OFFSET);
    // Keeps `stp` pairs and the stack 16-byte aligned.
    assert!(TrapFrame::SIZE.is_multiple_of(16));
};

/// HPFAR_EL2.FIPA, bits 47:4: bits 55:12 of the faulting IPA (the upper
/// bits are RES0 when the IPA size is smaller).
const HPFAR_FIPA_MASK: u64 = 0x0000_ffff_ffff_fff0;

/// The guest-physical address of a stage 2 fault: the page from HPFAR_EL2
/// combined with the offset within the page from FAR_EL2.
///
/// HPFAR only records the page, and FAR holds the guest *virtual* address,
/// whose low 12 bits are the same as the IPA's.
pub const fn faulting_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & HPFAR_FIPA_MASK) << 8) | (far & 0xfff)
}

/// A saved program status register (SPSR_ELx), decoded for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spsr(pub u64);

impl Spsr {
    /// SPSR.M bit 4: the interrupted context ran in AArch32 state.
    pub const fn is_aarch32(self) -> bool {
        (self.0 >> 4) & 1 == 1
    }

    /// The Exception level and stack pointer (or AArch32 mode) the exception
    /// was taken from: `EL2h` means EL2 using SP_EL2, `EL2t` EL2 using SP_EL0.
    pub const fn mode_name(self) -> &'static str {
        if self.is_aarch32() {
            return match self.0 & 0x1f {
                0x10 => "AArch32 usr",
                0x11 => "AArch32 fiq",
                0x12 => "AArch32 irq",
                0x13 => "AArch32 svc",
                0x16 => "AArch32 mon",
                0x17 => "AArch32 abt",
                0x1a => "AArch32 hyp",
                0x1b => "AArch32 und",
                0x1f => "AArch32 sys",
                _ => "AArch32 reserved mode",
            };
        }
        match self.0 & 0xf {
            0b0000 => "EL0t",
            0b0100 => "EL1t",
            0b0101 => "EL1h",
            0b1000 => "EL2t",
            0b1001 => "EL2h",
            0b1100 => "EL3t",
            0b1101 => "EL3h",
            _ => "reserved mode",
        }
    }

    /// The D, A, I, F mask bits 9:6 as a 4-bit value (D is the MSB).
    /// (For AArch32, bit 9 is the endianness bit E instead of D.)
    pub const fn daif(self) -> u8 {
        ((self.0 >> 6) & 0xf) as u8
    }

    /// The N, Z, C, V condition flags, bits 31:28, as a 4-bit value (N is the MSB).
    pub const fn nzcv(self) -> u8 {
        ((self.0 >> 28) & 0xf) as u8
    }
}

/// E.g. `EL2h, DAIF=1111, NZCV=0110`, followed by any other PSTATE bit that
/// is set and may explain a crash (`TCO` suppresses tag checks, `PAN`
/// forbids kernel access to user memory, `SS` is single-stepping, ...).
impl fmt::Display for Spsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spsr = self.0;
        let is_set = |bit: u32| (spsr >> bit) & 1 == 1;
        f.write_str(self.mode_name())?;
        if self.is_aarch32() {
            write!(f, ", AIF={:03b}, NZCV={:04b}", self.daif() & 0b111, self.nzcv())?;
            if is_set(5) {
                f.write_str(", T32")?;
            }
        } else {
            write!(f, ", DAIF={:04b}, NZCV={:04b}", self.daif(), self.nzcv())?;
            for (bit, name) in [(25, "TCO"), (24, "DIT"), (23, "UAO"), (22, "PAN"), (13, "ALLINT"), (12, "SSBS")] {
                if is_set(bit) {
                    write!(f, ", {name}")?;
                }
            }
            let branch_type = (spsr >> 10) & 0b11;
            if branch_type != 0 {
                write!(f, ", BTYPE={branch_type}")?;
            }
        }
        // Software step and illegal execution state exist in both states.
        if is_set(21) {
            f.write_str(", SS")?;
        }
        if is_set(20) {
            f.write_str(", IL")?;
        }
        Ok(())
    }
}

/// Everything printed when the hypervisor dies: which CPU, what kind of
/// exception, and the saved registers.
///
/// ESR_EL2 and FAR_EL2 are only written by synchronous exceptions and
/// SErrors; for an unexpected IRQ/FIQ the vectors should still save them,
/// but they then describe an earlier exception.
pub struct CrashReport<'a> {
    /// The CPU that crashed (its logical index).
    pub cpu: usize,
    /// Which vector fired, e.g. "synchronous exception from EL2 (SP_ELx)",
    /// or "panic".
    pub kind: &'a str,
    /// The registers at the time of the crash.
    pub frame: &'a TrapFrame,
    /// HPFAR_EL2, for aborts from a guest where it holds the faulting IPA.
    pub hpfar: Option<u64>,
}

/// Formats the register dump, one item per line, without a trailing newline:
///
/// ```text
/// === HYPERVISOR CRASH on CPU 2: synchronous exception from EL2 (SP_ELx) ===
/// ESR_EL2 0x96000045: data abort from the same EL (IL=32-bit): write, translation fault level 1, ISV=0
/// FAR_EL2 0x0000dead0000beef  ELR_EL2 0x0000000040212344  SPSR_EL2 0x00000000600003c9 (EL2h, DAIF=1111, NZCV=0110)
///  x0 0x0000000000000000   x1 ...   x2 ...   x3 ...
/// ... (4 registers per line, x0..x30, then sp)
/// === end of crash report ===
/// ```
impl fmt::Display for CrashReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = self.frame;
        let esr = Esr(frame.esr);
        writeln!(f, "=== HYPERVISOR CRASH on CPU {}: {} ===", self.cpu, self.kind)?;

        f.write_str("ESR_EL2 ")?;
        esr.write_description(f)?;
        f.write_str("\n")?;

        if esr.far_is_valid() {
            write!(f, "FAR_EL2 {:#018x}", frame.far)?;
        } else {
            f.write_str("FAR_EL2 (not valid for this exception)")?;
        }
        writeln!(f, "  ELR_EL2 {:#018x}  SPSR_EL2 {:#018x} ({})", frame.elr, frame.spsr, Spsr(frame.spsr))?;

        if let Some(hpfar) = self.hpfar {
            write!(f, "HPFAR_EL2 {hpfar:#018x} ")?;
            if esr.far_is_valid() {
                writeln!(f, "(faulting IPA {:#018x})", faulting_ipa(hpfar, frame.far))?;
            } else {
                writeln!(f, "(faulting IPA page {:#018x})", faulting_ipa(hpfar, 0))?;
            }
        }

        const REGISTERS_PER_LINE: usize = 4;
        let registers = frame.x.iter().chain(core::iter::once(&frame.sp));
        for (index, value) in registers.enumerate() {
            if index % REGISTERS_PER_LINE != 0 {
                f.write_str("  ")?;
            }
            // Right-align the names so the values line up in columns.
            match index {
                0..=9 => write!(f, " x{index}")?,
                10..=30 => write!(f, "x{index}")?,
                _ => f.write_str(" sp")?,
            }
            write!(f, " {value:#018x}")?;
            if index % REGISTERS_PER_LINE == REGISTERS_PER_LINE - 1 {
                f.write_str("\n")?;
            }
        }

        f.write_str("=== end of crash report ===")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose registers are recognisable: x[n] = 0x1000 + n with the
    /// register number repeated in the top byte, sp distinct from all.
    fn sample_frame(esr: u64) -> TrapFrame {
        let mut frame = TrapFrame {
            sp: 0x0000_0000_4080_0000,
            elr: 0x0000_0000_4021_2344,
            spsr: 0x0000_0000_6000_03c9,
            esr,
            far: 0x0000_dead_0000_beef,
            ..TrapFrame::default()
        };
        for (n, register) in frame.x.iter_mut().enumerate() {
            *register = ((n as u64) << 56) | 0x1000 | n as u64;
        }
        frame
    }

    const REGISTER_LINES: [&str; 8] = [
        " x0 0x0000000000001000   x1 0x0100000000001001   x2 0x0200000000001002   x3 0x0300000000001003",
        " x4 0x0400000000001004   x5 0x0500000000001005   x6 0x0600000000001006   x7 0x0700000000001007",
        " x8 0x0800000000001008   x9 0x0900000000001009  x10 0x0a0000000000100a  x11 0x0b0000000000100b",
        "x12 0x0c0000000000100c  x13 0x0d0000000000100d  x14 0x0e0000000000100e  x15 0x0f0000000000100f",
        "x16 0x1000000000001010  x17 0x1100000000001011  x18 0x1200000000001012  x19 0x1300000000001013",
        "x20 0x1400000000001014  x21 0x1500000000001015  x22 0x1600000000001016  x23 0x1700000000001017",
        "x24 0x1800000000001018  x25 0x1900000000001019  x26 0x1a0000000000101a  x27 0x1b0000000000101b",
        "x28 0x1c0000000000101c  x29 0x1d0000000000101d  x30 0x1e0000000000101e   sp 0x0000000040800000",
    ];

    #[test]
    fn trap_frame_layout_matches_the_assembly() {
        assert_eq!(size_of::<TrapFrame>(), 288);
        assert_eq!(offset_of!(TrapFrame, sp), 248);
        assert_eq!(offset_of!(TrapFrame, far), 280);
        assert_eq!(core::mem::align_of::<TrapFrame>(), 8);
    }

    /// The example from the design notes: EL2 wrote through a wild pointer
    /// (ESR 0x96000045, translation fault level 1, FAR 0xdead0000beef).
    #[test]
    fn crash_report_for_data_abort_at_el2() {
        let frame = sample_frame(0x9600_0045);
        let report =
            CrashReport { cpu: 2, kind: "synchronous exception from EL2 (SP_ELx)", frame: &frame, hpfar: None }
                .to_string();
        let lines: Vec<&str> = report.lines().collect();
        let mut expected = vec![
            "=== HYPERVISOR CRASH on CPU 2: synchronous exception from EL2 (SP_ELx) ===",
            "ESR_EL2 0x96000045: data abort from the same EL (IL=32-bit): write, translation fault level 1, ISV=0",
            "FAR_EL2 0x0000dead0000beef  ELR_EL2 0x0000000040212344  SPSR_EL2 0x00000000600003c9 (EL2h, DAIF=1111, NZCV=0110)",
        ];
        expected.extend(REGISTER_LINES);
        expected.push("=== end of crash report ===");
        assert_eq!(lines, expected);
        assert!(!report.ends_with('\n'));
    }

    /// For a trapped HVC FAR_EL2 is UNKNOWN, so the report must not show it.
    #[test]
    fn crash_report_hides_far_when_not_valid() {
        let frame = sample_frame(0x5a00_0000);
        let report =
            CrashReport { cpu: 0, kind: "synchronous exception from EL1 (AArch64)", frame: &frame, hpfar: None }
                .to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[1], "ESR_EL2 0x5a000000: HVC from AArch64 (IL=32-bit): imm16=0x0000");
        assert_eq!(
            lines[2],
            "FAR_EL2 (not valid for this exception)  ELR_EL2 0x0000000040212344  \
             SPSR_EL2 0x00000000600003c9 (EL2h, DAIF=1111, NZCV=0110)"
        );
        assert_eq!(lines.len(), 3 + 8 + 1);
    }

    /// A guest store to unmapped MMIO (ESR 0x93810047) with HPFAR_EL2 =
    /// 0x0000000000090000: FIPA (bits 47:4) = 0x9000, so the IPA page is
    /// 0x9000 << 12 = 0x09000000 (the PL011 on QEMU virt), and FAR's page
    /// offset 0xeef completes it.
    #[test]
    fn crash_report_with_guest_ipa() {
        let mut frame = sample_frame(0x9381_0047);
        frame.spsr = 0x0000_0000_8000_0005; // EL1h, N set, interrupts unmasked
        let report = CrashReport {
            cpu: 1,
            kind: "synchronous exception from a lower EL (AArch64)",
            frame: &frame,
            hpfar: Some(0x0000_0000_0009_0000),
        }
        .to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(
            lines[1],
            "ESR_EL2 0x93810047: data abort from a lower EL (IL=32-bit): \
             write, translation fault level 3, ISV=1 (4-byte, w1)"
        );
        assert_eq!(
            lines[2],
            "FAR_EL2 0x0000dead0000beef  ELR_EL2 0x0000000040212344  \
             SPSR_EL2 0x0000000080000005 (EL1h, DAIF=0000, NZCV=1000)"
        );
        assert_eq!(lines[3], "HPFAR_EL2 0x0000000000090000 (faulting IPA 0x0000000009000eef)");
        assert_eq!(lines[4], REGISTER_LINES[0]);
        assert_eq!(lines.len(), 4 + 8 + 1);
    }

    #[test]
    fn faulting_ipa_combines_hpfar_page_and_far_offset() {
        // NS (bit 63) and the low nibble of HPFAR are not part of the IPA.
        assert_eq!(faulting_ipa((1 << 63) | 0x0009_000f, 0xffff_0000_1234_5678), 0x0900_0678);
        // A 52-bit IPA: FIPA bit 43 holds IPA bit 51.
        assert_eq!(faulting_ipa(1 << 43, 0), 1 << 51);
    }

    #[test]
    fn spsr_modes_and_flags() {
        let text = |spsr: u64| Spsr(spsr).to_string();
        assert_eq!(text(0x3c9), "EL2h, DAIF=1111, NZCV=0000");
        assert_eq!(text(0x3c8), "EL2t, DAIF=1111, NZCV=0000");
        assert_eq!(text(0x3c5), "EL1h, DAIF=1111, NZCV=0000");
        assert_eq!(text(0x004), "EL1t, DAIF=0000, NZCV=0000");
        assert_eq!(text(0x000), "EL0t, DAIF=0000, NZCV=0000");
        assert_eq!(text(0x6000_03c9), "EL2h, DAIF=1111, NZCV=0110");
        // TCO (bit 25), PAN (bit 22), SS (bit 21), BTYPE=2 (bits 11:10).
        assert_eq!(
            text((1 << 25) | (1 << 22) | (1 << 21) | (2 << 10) | 0x5),
            "EL1h, DAIF=0000, NZCV=0000, TCO, PAN, BTYPE=2, SS"
        );
        assert_eq!(text(0x1), "reserved mode, DAIF=0000, NZCV=0000");
        // AArch32 SVC mode, Thumb, A and I masked.
        assert_eq!(text(0x1b3), "AArch32 svc, AIF=110, NZCV=0000, T32");
        assert_eq!(Spsr(0x6000_03c9).daif(), 0b1111);
        assert_eq!(Spsr(0x6000_03c9).nzcv(), 0b0110);
    }
}
