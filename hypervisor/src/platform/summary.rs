//! The boot-time summary of the platform, printed once the console is up so
//! the log shows what the hypervisor believes about the machine.

use core::fmt::{self, Display, Formatter};

use super::{Cpu, Gic, PhysRange, Platform, Ppi, Psci, PsciCompat, PsciConduit, Timer, Uart};

/// Width of the label column; values start after it.
const LABEL_WIDTH: usize = 10;

impl Display for Platform<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "platform: {}", self.model.unwrap_or("(no model)"))?;
        line(f, "DTB", &RangeWithSize(self.fdt_range))?;
        range_lines(f, "RAM", &self.ram)?;
        range_lines(f, "reserved", &self.reserved)?;
        match &self.console {
            Some(uart) => line(f, "console", uart)?,
            None => line(f, "console", &"none")?,
        }
        line(f, "GICv3", &self.gic)?;
        line(f, "timer", &self.timer)?;
        match &self.psci {
            Some(psci) => line(f, "PSCI", psci)?,
            None => line(f, "PSCI", &"none")?,
        }
        line(f, "CPUs", &CpuList(&self.cpus))?;
        if let Some(bootargs) = self.bootargs {
            line(f, "bootargs", &bootargs)?;
        }
        if let Some(initrd) = &self.initrd {
            line(f, "initrd", &format_args!("{:#x}-{:#x} ({} KiB)", initrd.base, initrd.end(), initrd.size / 1024))?;
        }
        Ok(())
    }
}

/// Starts a new `  label     value` line. Lines are started rather than
/// terminated so the summary has no trailing newline and prints cleanly with
/// `println!`-style macros.
fn line(f: &mut Formatter<'_>, label: &str, value: &dyn Display) -> fmt::Result {
    write!(f, "\n  {label:<LABEL_WIDTH$} {value}")
}

/// One line per range, the label only on the first; `none` for no ranges.
fn range_lines(f: &mut Formatter<'_>, label: &str, ranges: &[PhysRange]) -> fmt::Result {
    if ranges.is_empty() {
        return line(f, label, &"none");
    }
    for (index, range) in ranges.iter().enumerate() {
        line(f, if index == 0 { label } else { "" }, &RangeWithSize(*range))?;
    }
    Ok(())
}

/// `0x80000000-0xffffffff (2 GiB)`: inclusive bounds, like Linux's memory map.
struct RangeWithSize(PhysRange);

impl Display for RangeWithSize {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let PhysRange { base, size } = self.0;
        match size {
            0 => write!(f, "{base:#x} (empty)"),
            _ => write!(f, "{base:#x}-{:#x} ({})", base.saturating_add(size - 1), ByteSize(size)),
        }
    }
}

/// A byte count in the largest binary unit that divides it exactly.
pub(super) struct ByteSize(pub u64);

impl Display for ByteSize {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        let bytes = self.0;
        match UNITS.iter().find(|&&(unit, _)| bytes != 0 && bytes.is_multiple_of(unit)) {
            Some(&(unit, name)) => write!(f, "{} {name}", bytes / unit),
            None => write!(f, "{bytes} B"),
        }
    }
}

impl Display for Uart {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kind = if self.compatible_pl011 { "PL011" } else { "non-PL011 UART" };
        write!(f, "{kind} at {:#x} ({})", self.base, ByteSize(self.size))?;
        match self.intid {
            Some(intid) => write!(f, ", INTID {intid}"),
            None => write!(f, ", no interrupt"),
        }
    }
}

impl Display for Gic {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "GICD {:#x}, GICR", self.distributor.base)?;
        for region in &self.redistributor_regions {
            write!(f, " {:#x} ({})", region.base, ByteSize(region.size))?;
        }
        if let Some(stride) = self.redistributor_stride {
            write!(f, " stride {stride:#x}")?;
        }
        if let Some(its) = self.its {
            write!(f, ", ITS {:#x}", its.base)?;
        }
        match self.maintenance_irq {
            Some(Ppi { intid, .. }) => write!(f, ", maintenance INTID {intid}"),
            None => write!(f, ", no maintenance interrupt"),
        }
    }
}

impl Display for Timer {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "INTIDs secure {}, non-secure {}, virtual {}, hyp {}",
            self.secure_phys.intid, self.nonsecure_phys.intid, self.virt.intid, self.hyp_phys.intid
        )?;
        if let Some(hyp_virt) = self.hyp_virt {
            write!(f, ", hyp virtual {}", hyp_virt.intid)?;
        }
        match self.clock_frequency {
            Some(hz) => write!(f, "; {hz} Hz from the DTB"),
            None => write!(f, "; frequency from CNTFRQ_EL0"),
        }
    }
}

impl Display for Psci {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let version = match self.version_compatible {
            PsciCompat::V0_1 => "0.1",
            PsciCompat::V0_2 => "0.2",
            PsciCompat::V1_0 => "1.0",
        };
        let conduit = match self.conduit {
            PsciConduit::Smc => "SMC",
            PsciConduit::Hvc => "HVC",
        };
        write!(f, "{version} via {conduit}")
    }
}

/// `4: 0x0 0x1 0x2 0x3` — the count, then every MPIDR.
struct CpuList<'c>(&'c [Cpu]);

impl Display for CpuList<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.0.len())?;
        for cpu in self.0 {
            write!(f, " {:#x}", cpu.mpidr)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_use_the_largest_exact_unit() {
        assert_eq!(ByteSize(2 << 30).to_string(), "2 GiB");
        assert_eq!(ByteSize(0xf6_0000).to_string(), "15744 KiB");
        assert_eq!(ByteSize(0x20_0000).to_string(), "2 MiB");
        assert_eq!(ByteSize(10350).to_string(), "10350 B");
        assert_eq!(ByteSize(0).to_string(), "0 B");
    }

    #[test]
    fn ranges_print_inclusive_bounds() {
        let range = RangeWithSize(PhysRange::new(0x8000_0000, 0x8000_0000));
        assert_eq!(range.to_string(), "0x80000000-0xffffffff (2 GiB)");
        assert_eq!(RangeWithSize(PhysRange::new(0x1000, 0)).to_string(), "0x1000 (empty)");
    }
}
