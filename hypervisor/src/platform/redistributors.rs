//! Finding a CPU's GICv3 redistributor: walk the frames of each redistributor
//! region, reading `GICR_TYPER`, until the frame whose affinity matches or the one
//! marked `Last`. The DTB gives only the regions (FVP's GIC-600 has no
//! `redistributor-stride`): the frame size comes from the architecture (128 KiB,
//! 256 KiB with virtual LPIs) unless the DTB overrides it.

use super::PhysRange;

/// `GICR_TYPER` offset in a redistributor frame.
pub const GICR_TYPER: u64 = 0x8;
const TYPER_VLPIS: u64 = 1 << 1;
const TYPER_LAST: u64 = 1 << 4;
/// RD_base + SGI_base.
const FRAME_GICV3: u64 = 0x2_0000;
/// RD_base + SGI_base + VLPI_base + reserved (GICv4).
const FRAME_GICV4: u64 = 0x4_0000;

/// One redistributor frame found by the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedistributorFrame {
    pub base: u64,
    /// Aff3.Aff2.Aff1.Aff0 as in MPIDR (Aff3 at bits 39:32).
    pub affinity: u64,
    pub last: bool,
}

/// `GICR_TYPER.Affinity_Value` (bits 63:32: Aff3.Aff2.Aff1.Aff0) as an MPIDR affinity.
pub fn typer_affinity(typer: u64) -> u64 {
    let value = typer >> 32;
    let aff3 = (value >> 24) & 0xFF;
    (aff3 << 32) | (value & 0xFF_FFFF)
}

/// Every frame of every region, in order, as `read_typer(frame_base)` describes
/// them; stops in each region at the frame marked `Last` or the region's end.
/// `visit` returns `false` to stop the whole walk.
pub fn walk(
    regions: &[PhysRange],
    stride: Option<u64>,
    mut read_typer: impl FnMut(u64) -> u64,
    mut visit: impl FnMut(RedistributorFrame) -> bool,
) {
    for region in regions {
        let mut base = region.base;
        while base + FRAME_GICV3 <= region.end() {
            let typer = read_typer(base + GICR_TYPER);
            let frame = RedistributorFrame { base, affinity: typer_affinity(typer), last: typer & TYPER_LAST != 0 };
            if !visit(frame) || frame.last {
                break;
            }
            base += stride.unwrap_or(if typer & TYPER_VLPIS != 0 { FRAME_GICV4 } else { FRAME_GICV3 });
        }
    }
}

/// The frame of the CPU with MPIDR affinity `affinity`, if any region has it.
pub fn find(
    regions: &[PhysRange],
    stride: Option<u64>,
    read_typer: impl FnMut(u64) -> u64,
    affinity: u64,
) -> Option<RedistributorFrame> {
    let mut found = None;
    walk(regions, stride, read_typer, |frame| {
        if frame.affinity == affinity {
            found = Some(frame);
        }
        found.is_none()
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// GICR_TYPER for a frame: affinity in bits 63:32, processor number 23:8, Last bit 4.
    fn typer(mpidr: u64, number: u64, last: bool) -> u64 {
        let aff3 = (mpidr >> 32) & 0xFF;
        let value = (aff3 << 24) | (mpidr & 0xFF_FFFF);
        (value << 32) | (number << 8) | if last { TYPER_LAST } else { 0 }
    }

    /// The FVP Base RevC: one 2 MiB region at 0x2f10_0000 (room for 16 frames),
    /// 8 CPUs with shifted affinities, Last on the eighth frame.
    fn fvp() -> (Vec<PhysRange>, HashMap<u64, u64>) {
        let mpidrs = [0x0, 0x100, 0x200, 0x300, 0x1_0000, 0x1_0100, 0x1_0200, 0x1_0300];
        let mut typers = HashMap::new();
        for (i, mpidr) in mpidrs.iter().enumerate() {
            typers.insert(0x2f10_0000 + i as u64 * FRAME_GICV3 + GICR_TYPER, typer(*mpidr, i as u64, i == 7));
        }
        (vec![PhysRange::new(0x2f10_0000, 0x20_0000)], typers)
    }

    #[test]
    fn fvp_frames_are_found_by_affinity_and_walk_stops_at_last() {
        let (regions, typers) = fvp();
        let read = |addr: u64| *typers.get(&addr).unwrap_or_else(|| panic!("read past Last at {addr:#x}"));
        let frame = find(&regions, None, read, 0x1_0200).unwrap();
        assert_eq!(frame.base, 0x2f10_0000 + 6 * FRAME_GICV3);
        let mut seen = Vec::new();
        walk(&regions, None, read, |f| {
            seen.push(f.affinity);
            true
        });
        assert_eq!(seen, [0x0, 0x100, 0x200, 0x300, 0x1_0000, 0x1_0100, 0x1_0200, 0x1_0300]);
        assert_eq!(find(&regions, None, read, 0x2_0000), None);
    }

    #[test]
    fn gicv4_frames_and_explicit_stride() {
        let mut typers = HashMap::new();
        typers.insert(0x1000_0000 + GICR_TYPER, typer(0, 0, false) | TYPER_VLPIS);
        typers.insert(0x1004_0000 + GICR_TYPER, typer(1, 1, true) | TYPER_VLPIS);
        let regions = [PhysRange::new(0x1000_0000, 0x8_0000)];
        let read = |addr: u64| typers[&addr];
        assert_eq!(find(&regions, None, read, 1).unwrap().base, 0x1004_0000);
        let mut strided = HashMap::new();
        strided.insert(0x1000_0000 + GICR_TYPER, typer(0, 0, false));
        strided.insert(0x1010_0000 + GICR_TYPER, typer(1, 1, true));
        let wide = [PhysRange::new(0x1000_0000, 0x20_0000)];
        assert_eq!(find(&wide, Some(0x10_0000), |a| strided[&a], 1).unwrap().base, 0x1010_0000);
    }

    #[test]
    fn aff3_is_decoded() {
        assert_eq!(typer_affinity(typer(0x7F_0001_0203, 0, false)), 0x7F_0001_0203);
    }
}
