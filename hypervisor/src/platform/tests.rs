//! End-to-end tests of [`Platform::from_fdt`] against real device trees
//! (QEMU `virt` and Arm FVP Base RevC) and against damaged blobs.

use std::string::ToString;
use std::vec::Vec;

use super::test_support::{fixture, replace_bytes};
use super::*;

const QEMU: &str = "qemu-virt-mte-smp4.dtb";
const FVP: &str = "fvp-base-revc.dtb";
/// Where the tests pretend firmware put the DTB.
const FDT_ADDR: u64 = 0x4800_0000;
const GIB: u64 = 1 << 30;

fn parse(blob: &[u8]) -> Platform<'_> {
    Platform::from_fdt(FDT_ADDR, blob).unwrap_or_else(|error| panic!("parse failed: {error}"))
}

fn level_ppi(intid: u32) -> Ppi {
    Ppi { intid, trigger: TriggerType::Level }
}

#[test]
fn phys_range_arithmetic() {
    let range = PhysRange::new(0x1000, 0x1000);
    assert_eq!(range.end(), 0x2000);
    assert!(range.contains(0x1000) && range.contains(0x1fff));
    assert!(!range.contains(0xfff) && !range.contains(0x2000));
    assert!(range.overlaps(&PhysRange::new(0x1fff, 1)));
    assert!(!range.overlaps(&PhysRange::new(0x2000, 0x1000)));
    assert!(!range.overlaps(&PhysRange::new(0x1800, 0)));
    assert_eq!(PhysRange::checked(u64::MAX, 1), None);
    assert_eq!(PhysRange::new(u64::MAX, 2).end(), u64::MAX);
}

#[test]
fn qemu_memory() {
    let blob = fixture(QEMU);
    let platform = parse(&blob);
    assert_eq!(platform.fdt_range, PhysRange::new(FDT_ADDR, 0x10_0000));
    assert_eq!(platform.ram.as_slice(), [PhysRange::new(0x4000_0000, 2 * GIB)]);
    // QEMU's tree has neither /memreserve/ entries nor /reserved-memory.
    assert!(platform.reserved.is_empty());
}

#[test]
fn qemu_gic() {
    let blob = fixture(QEMU);
    let gic = parse(&blob).gic;
    assert_eq!(gic.distributor, PhysRange::new(0x0800_0000, 0x1_0000));
    assert_eq!(gic.redistributor_regions.as_slice(), [PhysRange::new(0x080a_0000, 0xf6_0000)]);
    assert_eq!(gic.redistributor_stride, None);
    assert_eq!(gic.maintenance_irq, Some(level_ppi(25)));
    assert_eq!(gic.its, Some(PhysRange::new(0x0808_0000, 0x2_0000)));
}

#[test]
fn qemu_console_via_stdout_path() {
    let blob = fixture(QEMU);
    let uart = parse(&blob).console.expect("console");
    assert_eq!(uart, Uart { base: 0x0900_0000, size: 0x1000, intid: Some(33), compatible_pl011: true });
}

#[test]
fn qemu_timer() {
    let blob = fixture(QEMU);
    let timer = parse(&blob).timer;
    assert_eq!(
        timer,
        Timer {
            secure_phys: level_ppi(29),
            nonsecure_phys: level_ppi(30),
            virt: level_ppi(27),
            hyp_phys: level_ppi(26),
            hyp_virt: Some(level_ppi(28)),
            clock_frequency: None,
        }
    );
}

#[test]
fn qemu_psci_cpus_and_strings() {
    let blob = fixture(QEMU);
    let platform = parse(&blob);
    assert_eq!(platform.psci, Some(Psci { conduit: PsciConduit::Smc, version_compatible: PsciCompat::V1_0 }));
    let mpidrs: Vec<u64> = platform.cpus.iter().map(|cpu| cpu.mpidr).collect();
    assert_eq!(mpidrs, [0, 1, 2, 3]);
    assert_eq!(platform.model, Some("linux,dummy-virt"));
    assert_eq!(platform.bootargs, None);
}

#[test]
fn fvp_memory_and_reservations() {
    let blob = fixture(FVP);
    let platform = parse(&blob);
    assert_eq!(platform.fdt_range, PhysRange::new(FDT_ADDR, blob.len() as u64));
    assert_eq!(platform.ram.as_slice(), [PhysRange::new(0x8000_0000, 2 * GIB), PhysRange::new(0x8_8000_0000, 2 * GIB)]);
    assert_eq!(
        platform.reserved.as_slice(),
        [
            PhysRange::new(0x1800_0000, 0x80_0000), // reserved-memory/vram@18000000, no-map
            PhysRange::new(0x8000_0000, 0x1_0000),  // /memreserve/
        ]
    );
}

#[test]
fn fvp_cpus_and_psci() {
    let blob = fixture(FVP);
    let platform = parse(&blob);
    let mpidrs: Vec<u64> = platform.cpus.iter().map(|cpu| cpu.mpidr).collect();
    assert_eq!(mpidrs, [0x0, 0x100, 0x200, 0x300, 0x1_0000, 0x1_0100, 0x1_0200, 0x1_0300]);
    assert_eq!(platform.psci, Some(Psci { conduit: PsciConduit::Smc, version_compatible: PsciCompat::V0_2 }));
    assert_eq!(platform.model, Some("FVP Base RevC"));
}

#[test]
fn fvp_gic() {
    let blob = fixture(FVP);
    let gic = parse(&blob).gic;
    assert_eq!(gic.distributor, PhysRange::new(0x2f00_0000, 0x1_0000));
    assert_eq!(gic.redistributor_regions.as_slice(), [PhysRange::new(0x2f10_0000, 0x20_0000)]);
    assert_eq!(gic.redistributor_stride, None);
    assert_eq!(gic.maintenance_irq, Some(level_ppi(25)));
    assert_eq!(gic.its, Some(PhysRange::new(0x2f02_0000, 0x2_0000)));
}

#[test]
fn fvp_timer_level_low_ppis_without_frequency() {
    let blob = fixture(FVP);
    let timer = parse(&blob).timer;
    assert_eq!(
        timer,
        Timer {
            secure_phys: level_ppi(29),
            nonsecure_phys: level_ppi(30),
            virt: level_ppi(27),
            hyp_phys: level_ppi(26),
            hyp_virt: None,
            clock_frequency: None,
        }
    );
}

#[test]
fn fvp_console_is_uart0_translated_through_ranges_and_interrupt_map() {
    let blob = fixture(FVP);
    let uart = parse(&blob).console.expect("console");
    // serial@90000 on iofpga-bus (CS3 of the motherboard bus, at 0x1c000000);
    // its `interrupts = <5>` maps through bus@8000000's interrupt-map to SPI 5.
    assert_eq!(uart, Uart { base: 0x1c09_0000, size: 0x1000, intid: Some(37), compatible_pl011: true });
}

#[test]
fn summary_names_every_component() {
    let blob = fixture(FVP);
    let summary = parse(&blob).to_string();
    let expected_lines = [
        "platform: FVP Base RevC",
        "  RAM        0x80000000-0xffffffff (2 GiB)",
        "             0x880000000-0x8ffffffff (2 GiB)",
        "  reserved   0x18000000-0x187fffff (8 MiB)",
        "             0x80000000-0x8000ffff (64 KiB)",
        "  console    PL011 at 0x1c090000 (4 KiB), INTID 37",
        "  GICv3      GICD 0x2f000000, GICR 0x2f100000 (2 MiB), ITS 0x2f020000, maintenance INTID 25",
        "  timer      INTIDs secure 29, non-secure 30, virtual 27, hyp 26; frequency from CNTFRQ_EL0",
        "  PSCI       0.2 via SMC",
        "  CPUs       8: 0x0 0x100 0x200 0x300 0x10000 0x10100 0x10200 0x10300",
    ];
    for expected in expected_lines {
        assert!(summary.lines().any(|line| line == expected), "missing {expected:?} in:\n{summary}");
    }
    assert!(!summary.ends_with('\n'));

    let blob = fixture(QEMU);
    let summary = parse(&blob).to_string();
    assert!(summary.contains("hyp 26, hyp virtual 28"), "{summary}");
    assert!(summary.contains("GICR 0x80a0000 (15744 KiB)"), "{summary}");
    assert!(summary.contains("  reserved   none"), "{summary}");
}

#[test]
fn empty_and_garbage_blobs_are_rejected() {
    assert_eq!(Platform::from_fdt(0, &[]), Err(PlatformError::HeaderTruncated { available: 0 }));
    assert_eq!(Platform::from_fdt(0, &[0; 64]), Err(PlatformError::BadMagic { found: 0 }));
    let text = b"this is certainly not a flattened device tree, just text";
    assert!(matches!(Platform::from_fdt(0, text), Err(PlatformError::BadMagic { .. })));
}

#[test]
fn truncated_blob_is_rejected() {
    let blob = fixture(QEMU);
    assert_eq!(
        Platform::from_fdt(0, &blob[..4096]),
        Err(PlatformError::BlobTruncated { total_size: 0x10_0000, available: 4096 })
    );
}

/// Overwrites the header field at word `index` (0 = magic).
fn with_header_field(mut blob: Vec<u8>, index: usize, value: u32) -> Vec<u8> {
    blob[index * 4..index * 4 + 4].copy_from_slice(&value.to_be_bytes());
    blob
}

#[test]
fn inconsistent_headers_are_rejected() {
    let blob = fixture(FVP);
    let structure_far_away = with_header_field(blob.clone(), 2, 0xffff_fff0);
    assert_eq!(Platform::from_fdt(0, &structure_far_away), Err(PlatformError::BlockOutOfBounds { block: "structure" }));
    let strings_too_long = with_header_field(blob.clone(), 8, 0x10_0000);
    assert_eq!(Platform::from_fdt(0, &strings_too_long), Err(PlatformError::BlockOutOfBounds { block: "strings" }));
    let old_version = with_header_field(blob.clone(), 5, 16);
    assert!(matches!(Platform::from_fdt(0, &old_version), Err(PlatformError::UnsupportedVersion { version: 16, .. })));
    let tiny_total = with_header_field(blob, 1, 8);
    assert_eq!(Platform::from_fdt(0, &tiny_total), Err(PlatformError::TotalSizeTooSmall { total_size: 8 }));
}

#[test]
fn corrupt_structure_token_is_reported_with_its_offset() {
    let blob = fixture(FVP);
    let structure = be_word(&blob, 8);
    // The root's FDT_BEGIN_NODE and its empty, padded name take 8 bytes; the
    // first property token follows. Turn it into an unknown token.
    let corrupt = with_header_field(blob, (structure + 8) / 4, 0x77);
    let error = Platform::from_fdt(0, &corrupt).unwrap_err();
    assert!(matches!(error, PlatformError::MalformedStructure { offset: 8, .. }), "unexpected {error:?}");
    assert!(error.to_string().contains("offset 0x8"), "{error}");
}

fn be_word(blob: &[u8], offset: usize) -> usize {
    u32::from_be_bytes(blob[offset..offset + 4].try_into().unwrap()) as usize
}

#[test]
fn tree_without_gic_v3_is_rejected() {
    for name in [QEMU, FVP] {
        let mut blob = fixture(name);
        assert_eq!(replace_bytes(&mut blob, b"arm,gic-v3\0", b"arm,gic-v9\0"), 1, "{name}");
        let error = Platform::from_fdt(0, &blob).unwrap_err();
        assert_eq!(error, PlatformError::MissingGicV3, "{name}");
        assert!(error.to_string().contains("\"arm,gic-v3\""));
    }
}

#[test]
fn tree_without_timer_is_rejected_but_armv7_fallback_is_used() {
    let mut fvp = fixture(FVP);
    assert_eq!(replace_bytes(&mut fvp, b"arm,armv8-timer\0", b"arm,armv9-timer\0"), 1);
    assert_eq!(Platform::from_fdt(0, &fvp), Err(PlatformError::MissingTimer));

    // QEMU lists "arm,armv8-timer", "arm,armv7-timer": the second still matches.
    let mut qemu = fixture(QEMU);
    assert_eq!(replace_bytes(&mut qemu, b"arm,armv8-timer\0", b"arm,armv9-timer\0"), 1);
    assert_eq!(parse(&qemu).timer.hyp_virt, Some(level_ppi(28)));
}

#[test]
fn console_falls_back_to_the_next_pl011() {
    // Break UART0's `compatible` (the first "arm,pl011" in DTB order), so the
    // search for the first PL011 must land on UART1: serial@a0000, SPI 6.
    let mut blob = fixture(FVP);
    let uart0 = blob.windows(10).position(|window| window == b"arm,pl011\0").expect("a PL011");
    blob[uart0..uart0 + 9].copy_from_slice(b"arm,pl0xx");
    let uart = parse(&blob).console.expect("console");
    assert_eq!(uart, Uart { base: 0x1c0a_0000, size: 0x1000, intid: Some(38), compatible_pl011: true });
}

/// Tiny deterministic PRNG so the corruption test is reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Parses `blob` and, if it parses, formats it: neither may panic.
fn parse_and_format(blob: &[u8]) {
    if let Ok(platform) = Platform::from_fdt(FDT_ADDR, blob) {
        let _ = platform.to_string();
    }
}

#[test]
fn corrupted_blobs_never_panic() {
    let original = fixture(FVP);
    for offset in (0..original.len()).step_by(3) {
        for value in [0x00, 0x03, 0xff] {
            let mut blob = original.clone();
            blob[offset] = value;
            let outcome = std::panic::catch_unwind(|| parse_and_format(&blob));
            assert!(outcome.is_ok(), "panicked with byte {offset:#x} set to {value:#x}");
        }
    }
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..1000 {
        let mut blob = original.clone();
        for _ in 0..=random.next() % 8 {
            let offset = (random.next() % blob.len() as u64) as usize;
            blob[offset] = random.next() as u8;
        }
        let outcome = std::panic::catch_unwind(|| parse_and_format(&blob));
        assert!(outcome.is_ok(), "panicked in random corruption round {round}");
    }
}

/// Our reader must agree with an independent one on the real trees: `fdt` 0.1.5, whose
/// parser shares no code with the 0.2 line that `devicetree.rs` reads the tree through.
#[test]
fn agrees_with_the_fdt_crate_on_real_trees() {
    for name in ["qemu-virt-mte-smp4.dtb", "fvp-base-revc.dtb"] {
        let blob = super::test_support::fixture(name);
        let ours = Platform::from_fdt(0, &blob).unwrap();
        let oracle = fdt::Fdt::new(&blob).unwrap();
        let mut ram: Vec<PhysRange> = oracle
            .all_nodes()
            .filter(|n| n.name.starts_with("memory"))
            .flat_map(|n| n.reg().into_iter().flatten())
            .map(|r| PhysRange::new(r.starting_address as u64, r.size.unwrap_or(0) as u64))
            .collect();
        ram.sort_by_key(|r| r.base);
        assert_eq!(ours.ram.as_slice(), ram.as_slice(), "{name}: RAM");
        for reservation in oracle.memory_reservations() {
            let range = PhysRange::new(reservation.address() as u64, reservation.size() as u64);
            assert!(ours.reserved.contains(&range), "{name}: missing /memreserve/ {range:?}");
        }
        let mpidrs: Vec<u64> = oracle.cpus().map(|c| c.ids().first() as u64).collect();
        let ours_mpidrs: Vec<u64> = ours.cpus.iter().map(|c| c.mpidr).collect();
        assert_eq!(ours_mpidrs, mpidrs, "{name}: CPUs");
        assert_eq!(ours.fdt_range.size, oracle.total_size() as u64, "{name}: size");
    }
}

/// QEMU `-initrd` (how the hypervisor gets its bundle) fills `/chosen`'s
/// `linux,initrd-start/end`; the fixture's initrd is 12345 bytes.
#[test]
fn qemu_initrd_from_chosen() {
    let blob = fixture("qemu-virt-initrd.dtb");
    let platform = parse(&blob);
    let initrd = platform.initrd.expect("initrd in /chosen");
    assert_eq!(initrd.size, 12345);
    assert!(platform.ram[0].contains(initrd.base));
    assert_eq!(parse(&fixture(QEMU)).initrd, None);
}
