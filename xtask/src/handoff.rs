//! QEMU stand-ins for the FVP (issue 5): the TF-A BL33 hand-off (`fvp-handoff`) and
//! a device tree with FVP's quirks (`fvp-quirks-dtb`).
//!
//! `fvp-handoff`: QEMU loads a tiny pre-loader with `-kernel` (a raw binary, loaded at
//! RAM + 0x80000 and entered at EL2 with x0 = QEMU's DTB, like a Linux Image), the
//! hypervisor at [`HV_ADDR`] and a fake NT_FW_CONFIG FDT at [`NT_FW_CONFIG_ADDR`] with
//! QEMU's generic loader. The pre-loader does what TF-A's BL31 does for BL33:
//! x1 = DTB, x0 = NT_FW_CONFIG, then branches to the hypervisor. On a 1 GiB `virt`
//! machine QEMU puts its DTB at 0x4800_0000 (RAM + 128 MiB) and the pre-loader at
//! 0x4008_0000, clear of both blobs; the hypervisor's heap goes at the top of RAM
//! (0x7f80_0000), above the image.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::fvp::{dtb_to_dts, dts_to_dtb, ensure_dtc, find_node, set_node};
use crate::qemu::{Captured, Machine};

pub const NT_FW_CONFIG_ADDR: u64 = 0x7000_0000;
pub const HV_ADDR: u64 = 0x7020_0000;

/// `MOVZ Xd, #imm16, LSL #16` (64-bit, hw = 1): `1 10 100101 hw:2 imm16:16 Rd:5`
/// = 0xD280_0000 | hw << 21 | imm16 << 5 | Rd (Arm ARM C6.2.xxx MOVZ).
pub fn movz_lsl16(rd: u32, imm16: u32) -> u32 {
    assert!(rd < 31 && imm16 <= 0xffff);
    0xD280_0000 | (1 << 21) | (imm16 << 5) | rd
}

/// `MOV Xd, Xm` is `ORR Xd, XZR, Xm` (shifted register, 64-bit):
/// `1 01 01010 00 0 Rm:5 000000 11111 Rd:5` = 0xAA00_03E0 | Rm << 16 | Rd. Rm = 31 is XZR.
pub fn mov_reg(rd: u32, rm: u32) -> u32 {
    assert!(rd < 31 && rm < 32);
    0xAA00_03E0 | (rm << 16) | rd
}

/// `BR Xn`: `1101011 0000 11111 000000 Rn:5 00000` = 0xD61F_0000 | Rn << 5.
pub fn br(rn: u32) -> u32 {
    assert!(rn < 31);
    0xD61F_0000 | (rn << 5)
}

const XZR: u32 = 31;

/// The pre-loader's instructions: TF-A's BL33 hand-off register state.
pub fn preloader_words(nt_fw_config: u64, entry: u64) -> Vec<u32> {
    for address in [nt_fw_config, entry] {
        assert!(address & 0xffff == 0 && address >> 32 == 0, "{address:#x}: MOVZ LSL #16 reach");
    }
    vec![
        mov_reg(1, 0),                              // mov  x1, x0          x1 = the hardware DTB (HW_CONFIG)
        movz_lsl16(0, (nt_fw_config >> 16) as u32), // movz x0, #hi, lsl 16 x0 = NT_FW_CONFIG
        movz_lsl16(4, (entry >> 16) as u32),        // movz x4, #hi, lsl 16 x4 = BL33 entry (the hypervisor)
        mov_reg(2, XZR),                            // mov  x2, xzr         x2, x3 = 0 as TF-A leaves them
        mov_reg(3, XZR),                            // mov  x3, xzr
        br(4),                                      // br   x4
    ]
}

pub fn preloader_bytes(nt_fw_config: u64, entry: u64) -> Vec<u8> {
    preloader_words(nt_fw_config, entry).iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A small NT_FW_CONFIG like TF-A's `fvp_nt_fw_config.dts` (a valid FDT, not a DTB
/// describing hardware).
pub const NT_FW_CONFIG_DTS: &str = r#"/dts-v1/;
/ {
	compatible = "arm,nt-fw-config";
	nt-fw-config {
		compatible = "arm,nt-fw-config";
		event_log_addr = <0x0 0x0>;
		event_log_size = <0x0>;
	};
};
"#;

fn scenario_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

/// `fvp-handoff`: the machine (pre-loader as -kernel, hypervisor and NT_FW_CONFIG via
/// the generic loader). No VM bundle: the hypervisor powers off after its summary.
pub fn handoff_machine(hypervisor: &Path, dir: &Path) -> Result<Machine> {
    ensure_dtc()?;
    let dir = scenario_dir(dir)?;
    let preloader = dir.join("preloader.bin");
    std::fs::write(&preloader, preloader_bytes(NT_FW_CONFIG_ADDR, HV_ADDR))?;
    let nt_fw_config = dir.join("nt_fw_config.dtb");
    dts_to_dtb(NT_FW_CONFIG_DTS, &nt_fw_config)?;
    let mut machine = Machine::new(&preloader, 2, "1G", true);
    for (file, address) in [(&nt_fw_config, NT_FW_CONFIG_ADDR), (&hypervisor.to_path_buf(), HV_ADDR)] {
        machine.extra_args.push("-device".into());
        machine.extra_args.push(format!("loader,file={},addr={address:#x},force-raw=on", file.display()));
    }
    Ok(machine)
}

fn expect(output: &str, needle: &str) -> Result<(), String> {
    match crate::console_log::says(output, needle) {
        true => Ok(()),
        false => Err(format!("output lacks {needle:?}")),
    }
}

fn expect_clean(run: &Captured) -> Result<(), String> {
    match run.exit_code {
        Some(0) => {}
        Some(code) => return Err(format!("QEMU exited with {code}, expected 0")),
        None => return Err("timed out".into()),
    }
    expect(&run.output, "--- platform summary ---")?;
    for bad in ["HYPERVISOR CRASH", "ERROR", "WARN", "error:"] {
        if crate::console_log::says(&run.output, bad) {
            return Err(format!("output contains {bad:?}"));
        }
    }
    Ok(())
}

pub fn check_handoff(run: &Captured) -> Result<(), String> {
    expect_clean(run)?;
    // The DTB came from x1 (QEMU's, at RAM + 128 MiB), not x0.
    expect(&run.output, "starting at EL2 (DTB at 0x48000000)")?;
    expect(&run.output, "firmware config blob (NT_FW_CONFIG) at 0x70000000 kept reserved")?;
    // Running from where the generic loader put it (position independent).
    expect(&run.output, "image 0x70200000..")?;
    expect(&run.output, "CPUs online: 2 of 2")?;
    expect(&run.output, "no VM bundle (initrd) given: nothing to run, powering off")
}

/// RAM of the quirks machine: two banks, as the two `memory` nodes of the FVP.
const BANKS: [(u64, u64); 2] = [(0x4000_0000, 0x2000_0000), (0x6000_0000, 0x2000_0000)];
const MEMRESERVE: (u64, u64) = (0x4000_0000, 0x1_0000);
const NO_MAP: (u64, u64) = (0x5000_0000, 0x10_0000);

/// Turns QEMU's own DTB (dts text) into one with FVP's quirks: empty `/chosen`,
/// two `memory` nodes, a `/memreserve/` entry, `/reserved-memory` with a no-map
/// child, no GICR stride and no timer `clock-frequency`.
pub fn fvp_quirks_dts(qemu_dts: &str) -> Result<String> {
    let mut dts = set_node(qemu_dts, "chosen", "\tchosen {\n\t};")?;
    let lines: Vec<String> = dts.lines().map(str::to_string).collect();
    let (start, end) = find_node(&lines, "memory@40000000").context("QEMU's DTB has no memory@40000000")?;
    let memory: String = BANKS
        .iter()
        .map(|(base, size)| {
            format!(
                "\tmemory@{base:x} {{\n\t\tdevice_type = \"memory\";\n\t\treg = <0x0 {base:#x} 0x0 {size:#x}>;\n\t}};\n"
            )
        })
        .collect();
    let mut lines = lines;
    lines.splice(start..=end, memory.trim_end().lines().map(str::to_string));
    dts = lines.join("\n") + "\n";
    dts = set_node(
        &dts,
        "reserved-memory",
        &format!(
            "\treserved-memory {{\n\t\t#address-cells = <0x2>;\n\t\t#size-cells = <0x2>;\n\t\tranges;\n\
             \t\tvram@{base:x} {{\n\t\t\treg = <0x0 {base:#x} 0x0 {size:#x}>;\n\t\t\tno-map;\n\t\t}};\n\t}};",
            base = NO_MAP.0,
            size = NO_MAP.1
        ),
    )?;
    // Like FVP: no stride (QEMU's frames are the architectural 128 KiB anyway) and the
    // timer frequency comes from CNTFRQ_EL0.
    let lines: Vec<String> = dts.lines().map(str::to_string).collect();
    let (timer_start, timer_end) = find_node(&lines, "timer").context("QEMU's DTB has no /timer")?;
    let lines: Vec<String> = lines
        .into_iter()
        .enumerate()
        .filter(|(i, l)| {
            let stride = l.contains("redistributor-stride");
            let timer_frequency =
                (timer_start..=timer_end).contains(i) && l.trim_start().starts_with("clock-frequency");
            !stride && !timer_frequency
        })
        .map(|(_, l)| l)
        .collect();
    dts = lines.join("\n") + "\n";
    ensure!(dts.starts_with("/dts-v1/;"), "unexpected dtc output");
    Ok(dts.replacen(
        "/dts-v1/;\n",
        &format!("/dts-v1/;\n\n/memreserve/\t{:#018x} {:#018x};\n", MEMRESERVE.0, MEMRESERVE.1),
        1,
    ))
}

/// QEMU rewrites every `memory` node of a `-dtb` from its own RAM layout (one node
/// for the whole RAM) unless the machine has NUMA nodes, in which case it writes one
/// node per NUMA node. So the two banks are made real with two 512 MiB NUMA nodes;
/// the hypervisor ignores `numa-node-id`. `/memreserve/`, `/reserved-memory`, the
/// empty `/chosen` (QEMU adds only `rng-seed`/`kaslr-seed` there), the GIC and timer
/// nodes are passed through as written.
pub fn quirks_machine(hypervisor: &Path, dir: &Path) -> Result<Machine> {
    ensure_dtc()?;
    let dir = scenario_dir(dir)?;
    let qemu_dtb = dir.join("qemu-virt-1g.dtb");
    crate::fixtures::dump_qemu_dtb(&qemu_dtb, 2, "1G", true, None)?;
    let dts = fvp_quirks_dts(&dtb_to_dts(&qemu_dtb)?)?;
    let dtb = dir.join("fvp-quirks.dtb");
    dts_to_dtb(&dts, &dtb)?;
    let mut machine = Machine::new(hypervisor, 2, "1G", true);
    machine.dtb = Some(dtb);
    for (index, (_, size)) in BANKS.iter().enumerate() {
        machine.extra_args.push("-object".into());
        machine.extra_args.push(format!("memory-backend-ram,id=bank{index},size={size}"));
        machine.extra_args.push("-numa".into());
        // Both CPUs on node 0 (QEMU warns when CPUs of one cluster span nodes); node 1 is memory only.
        let cpus = if index == 0 { ",cpus=0-1" } else { "" };
        machine.extra_args.push(format!("node,nodeid={index},memdev=bank{index}{cpus}"));
    }
    Ok(machine)
}

pub fn check_quirks(run: &Captured) -> Result<(), String> {
    expect_clean(run)?;
    for line in [
        "  RAM        0x40000000-0x5fffffff (512 MiB)",
        "             0x60000000-0x7fffffff (512 MiB)",
        "  console    PL011 at 0x9000000 (4 KiB), INTID 33",
        "frequency from CNTFRQ_EL0",
        "CPUs online: 2 of 2",
    ] {
        expect(&run.output, line)?;
    }
    // Both reserved ranges, in either order.
    for range in ["0x40000000-0x4000ffff (64 KiB)", "0x50000000-0x500fffff (1 MiB)"] {
        let found = run
            .output
            .lines()
            .any(|l| (l.starts_with("  reserved   ") || l.starts_with("             ")) && l.ends_with(range));
        if !found {
            return Err(format!("summary lacks reserved range {range}"));
        }
    }
    Ok(())
}

type Prepare = fn(&Path, &Path) -> Result<Machine>;
type Check = fn(&Captured) -> Result<(), String>;

/// The two scenarios: name, machine builder (hypervisor image, scratch dir), check.
pub fn scenarios() -> [(&'static str, Prepare, Check); 2] {
    [("fvp-handoff", handoff_machine, check_handoff), ("fvp-quirks-dtb", quirks_machine, check_quirks)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodings from `llvm-mc -triple=aarch64 -show-encoding` (LLVM 14..19 agree),
    /// cross-checked with the Arm ARM field layouts documented on each encoder.
    #[test]
    fn encodings_match_known_good_values() {
        assert_eq!(mov_reg(1, 0), 0xaa00_03e1); // mov x1, x0
        assert_eq!(movz_lsl16(0, 0x7000), 0xd2ae_0000); // movz x0, #0x7000, lsl #16
        assert_eq!(movz_lsl16(4, 0x7020), 0xd2ae_0404); // movz x4, #0x7020, lsl #16
        assert_eq!(mov_reg(2, XZR), 0xaa1f_03e2); // mov x2, xzr
        assert_eq!(mov_reg(3, XZR), 0xaa1f_03e3); // mov x3, xzr
        assert_eq!(br(4), 0xd61f_0080); // br x4
        assert_eq!(
            preloader_words(NT_FW_CONFIG_ADDR, HV_ADDR),
            [0xaa00_03e1, 0xd2ae_0000, 0xd2ae_0404, 0xaa1f_03e2, 0xaa1f_03e3, 0xd61f_0080]
        );
    }

    /// When LLVM's assembler is installed, the pre-loader must match it byte for byte.
    #[test]
    fn preloader_matches_llvm_mc() {
        let source =
            "mov x1, x0\nmovz x0, #0x7000, lsl #16\nmovz x4, #0x7020, lsl #16\nmov x2, xzr\nmov x3, xzr\nbr x4\n";
        let mut child = match std::process::Command::new("llvm-mc")
            .args(["-triple=aarch64", "-show-encoding"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(_) => {
                eprintln!("llvm-mc not installed; encodings checked against the constants only");
                return;
            }
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(source.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let mut bytes = Vec::new();
        for line in text.lines().filter(|l| l.contains("encoding: [")) {
            let list = line.split("encoding: [").nth(1).unwrap().trim_end_matches(']');
            bytes.extend(list.split(',').map(|b| u8::from_str_radix(b.trim().trim_start_matches("0x"), 16).unwrap()));
        }
        assert_eq!(bytes, preloader_bytes(NT_FW_CONFIG_ADDR, HV_ADDR), "{text}");
    }

    #[test]
    fn quirks_dts_has_two_banks_empty_chosen_and_reservations() {
        let qemu = "/dts-v1/;\n\n/ {\n\t#address-cells = <0x02>;\n\t#size-cells = <0x02>;\n\
                    \tmemory@40000000 {\n\t\treg = <0x00 0x40000000 0x00 0x40000000>;\n\t\tdevice_type = \"memory\";\n\t};\n\
                    \ttimer {\n\t\tclock-frequency = <0x100>;\n\t\tcompatible = \"arm,armv8-timer\";\n\t};\n\
                    \tchosen {\n\t\tstdout-path = \"/pl011@9000000\";\n\t};\n};\n";
        let dts = fvp_quirks_dts(qemu).unwrap();
        assert!(dts.starts_with("/dts-v1/;\n\n/memreserve/\t0x0000000040000000 0x0000000000010000;\n"), "{dts}");
        assert!(dts.contains("\tchosen {\n\t};"), "{dts}");
        assert!(!dts.contains("stdout-path"));
        assert!(!dts.contains("clock-frequency"));
        assert!(
            dts.contains(
                "memory@40000000 {\n\t\tdevice_type = \"memory\";\n\t\treg = <0x0 0x40000000 0x0 0x20000000>;"
            )
        );
        assert!(
            dts.contains(
                "memory@60000000 {\n\t\tdevice_type = \"memory\";\n\t\treg = <0x0 0x60000000 0x0 0x20000000>;"
            )
        );
        assert!(dts.contains("vram@50000000 {\n\t\t\treg = <0x0 0x50000000 0x0 0x100000>;\n\t\t\tno-map;"));
        if crate::fvp::have_tool("dtc") {
            let out = std::env::temp_dir().join(format!("xtask-quirks-{}.dtb", std::process::id()));
            dts_to_dtb(&dts, &out).unwrap();
            let _ = std::fs::remove_file(out);
        }
    }
}
