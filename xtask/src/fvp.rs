//! `cargo xtask fvp`: the bundle a user loads into Arm's FVP Base RevC model
//! (FVP_Base_RevC-2xAEMvA) with MTE enabled. The model itself cannot be run here;
//! this writes everything it needs plus the exact command line (`run-fvp.sh`).
//!
//! Memory layout on the FVP (DRAM bank 0 is 0x8000_0000..0x1_0000_0000):
//! - 0x8000_0000: NT_FW_CONFIG (written by TF-A's BL2; `/memreserve/`d by the DTB),
//! - 0x8200_0000: HW_CONFIG, the DTB (`fvp-base-revc.dtb`, `/chosen` filled in),
//! - 0x8800_0000: BL33, the hypervisor (`PLAT_ARM_NS_IMAGE_BASE` / `PRELOADED_BL33_BASE`),
//! - 0x9000_0000: the VM bundle (`vms.cpio`), named by `/chosen/linux,initrd-*`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;

use crate::build::{self, BuildOptions, target_dir};
use crate::options::LinuxGuestOptions;

pub const DTB_ADDR: u64 = 0x8200_0000;
pub const BL33_ADDR: u64 = 0x8800_0000;
pub const BUNDLE_ADDR: u64 = 0x9000_0000;
/// End of DRAM bank 0 (exclusive): everything we preload must stay below it.
const BANK0_END: u64 = 0x1_0000_0000;
/// Where TF-A's FVP port links BL31 for `RESET_TO_BL31=1` (reset vector, RVBAR).
pub const BL31_ADDR: u64 = 0x0400_1000;

pub const DTC_HINT: &str = "install the device tree compiler: `sudo apt-get install device-tree-compiler` (or `sudo bash .ci/install-deps.sh`)";
pub const FIPTOOL_HINT: &str = "install TF-A's fiptool: `sudo apt-get install arm-trusted-firmware-tools` (Debian), \
     or build it from TF-A (`make -C tools/fiptool`) and put it on PATH";

#[derive(Args, Clone, Debug)]
pub struct FvpOptions {
    /// Bundle directory.
    #[arg(long, default_value = "target/fvp")]
    pub out: PathBuf,
    /// TF-A BL1 for the model's secure flash (`bl1.bin` of a `make PLAT=fvp` build).
    #[arg(long)]
    pub bl1: Option<PathBuf>,
    /// A ready FIP (`fip.bin`); updated with the hypervisor as BL33 when fiptool is available.
    #[arg(long, conflicts_with_all = ["bl2"])]
    pub fip: Option<PathBuf>,
    /// TF-A BL2: with --bl31, a FIP is created with fiptool (hypervisor as BL33).
    #[arg(long, requires = "bl31")]
    pub bl2: Option<PathBuf>,
    /// TF-A BL31 (also copied for run-fvp.sh --preloaded, a RESET_TO_BL31 build).
    #[arg(long)]
    pub bl31: Option<PathBuf>,
    #[command(flatten)]
    pub guest: LinuxGuestOptions,
    /// vCPUs of the guest, pinned to the first N of the FVP's 8 CPUs.
    #[arg(long, default_value_t = 4)]
    pub vcpus: u32,
    /// Guest RAM (vms.conf syntax).
    #[arg(long, default_value = "1G")]
    pub guest_mem: String,
    /// Optimised hypervisor build.
    #[arg(long)]
    pub release: bool,
}

/// Everything the bundle is made of, as explicit paths (tests pass stand-ins).
pub struct BundleInputs<'a> {
    pub hypervisor: &'a Path,
    pub vms_cpio: &'a Path,
    /// The unmodified FVP Base RevC device tree.
    pub fvp_dtb: &'a Path,
    pub bl1: Option<&'a Path>,
    pub fip: Option<&'a Path>,
    pub bl2: Option<&'a Path>,
    pub bl31: Option<&'a Path>,
}

/// What was written.
#[derive(Debug)]
pub struct BundleReport {
    pub initrd_start: u64,
    pub initrd_end: u64,
    pub fip: FipState,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FipState {
    /// Created from --bl2/--bl31 with fiptool.
    Created,
    /// Copied from --fip (and updated with fiptool if it was available).
    Copied { updated: bool },
    /// None given: the user brings one (see README).
    Absent,
}

pub fn have_tool(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

pub fn ensure_dtc() -> Result<()> {
    ensure!(have_tool("dtc"), "dtc not found: the bundle's DTB is edited with it; {DTC_HINT}");
    Ok(())
}

/// Runs `dtc` with `args`, failing with its stderr.
pub fn dtc(args: &[&str]) -> Result<()> {
    let output = Command::new("dtc").args(args).output().with_context(|| format!("running dtc; {DTC_HINT}"))?;
    ensure!(output.status.success(), "dtc {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// Decompiles a DTB to DTS text.
pub fn dtb_to_dts(dtb: &Path) -> Result<String> {
    let out = tempfile_path(dtb, "dts");
    dtc(&["-q", "-I", "dtb", "-O", "dts", "-o", path_str(&out)?, path_str(dtb)?])?;
    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    Ok(text)
}

/// Compiles DTS text to a DTB at `out`.
pub fn dts_to_dtb(dts: &str, out: &Path) -> Result<()> {
    let source = tempfile_path(out, "dts");
    std::fs::write(&source, dts)?;
    let result = dtc(&["-q", "-I", "dts", "-O", "dtb", "-o", path_str(out)?, path_str(&source)?]);
    let _ = std::fs::remove_file(&source);
    result
}

fn tempfile_path(near: &Path, ext: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = near.file_name().and_then(|n| n.to_str()).unwrap_or("dt");
    std::env::temp_dir().join(format!("xtask-{}-{n}-{name}.{ext}", std::process::id()))
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Line index range `[start, end]` of the depth-1 node `name` in dtc's output
/// (tab-indented: the node opens with `\t<name> {` and closes with `\t};`).
pub fn find_node(lines: &[String], name: &str) -> Option<(usize, usize)> {
    let open = format!("\t{name} {{");
    let start = lines.iter().position(|l| *l == open)?;
    let end = start + lines[start..].iter().position(|l| l == "\t};")?;
    Some((start, end))
}

/// Replaces the depth-1 node `name` (or appends it to the root) with `node`, a
/// complete node text at depth 1.
pub fn set_node(dts: &str, name: &str, node: &str) -> Result<String> {
    let mut lines: Vec<String> = dts.lines().map(str::to_string).collect();
    let replacement: Vec<String> = node.lines().map(str::to_string).collect();
    match find_node(&lines, name) {
        Some((start, end)) => {
            lines.splice(start..=end, replacement);
        }
        None => {
            let root_end = lines.iter().rposition(|l| l == "};").context("DTS has no root node end")?;
            lines.splice(root_end..root_end, replacement);
        }
    }
    Ok(lines.join("\n") + "\n")
}

/// `/chosen` for the FVP: console on UART0, the VM bundle's placement (64-bit cells).
pub fn chosen_node(initrd_start: u64, initrd_end: u64) -> String {
    let cells = |v: u64| format!("<{:#x} {:#x}>", v >> 32, v & 0xffff_ffff);
    format!(
        "\tchosen {{\n\t\tstdout-path = \"serial0:115200n8\";\n\t\tlinux,initrd-start = {};\n\t\tlinux,initrd-end = {};\n\t}};",
        cells(initrd_start),
        cells(initrd_end)
    )
}

/// Writes the bundle directory `out` from `inputs`.
pub fn write_bundle(out: &Path, inputs: &BundleInputs) -> Result<BundleReport> {
    ensure_dtc()?;
    let creating_fip = inputs.bl2.is_some();
    if inputs.bl2.is_some() {
        ensure!(inputs.bl31.is_some(), "--bl2 needs --bl31 too (fiptool create --tb-fw bl2.bin --soc-fw bl31.bin)");
        ensure!(inputs.fip.is_none(), "give either --fip or --bl2/--bl31, not both");
        ensure!(have_tool("fiptool"), "--bl2/--bl31 given but fiptool is not on PATH; {FIPTOOL_HINT}");
    }
    for (what, path) in [
        ("hypervisor image", Some(inputs.hypervisor)),
        ("VM bundle", Some(inputs.vms_cpio)),
        ("FVP device tree", Some(inputs.fvp_dtb)),
        ("--bl1", inputs.bl1),
        ("--fip", inputs.fip),
        ("--bl2", inputs.bl2),
        ("--bl31", inputs.bl31),
    ] {
        if let Some(path) = path {
            ensure!(path.is_file(), "{what} {} does not exist", path.display());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    let copy = |from: &Path, name: &str| -> Result<PathBuf> {
        let to = out.join(name);
        std::fs::copy(from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(to)
    };
    let hypervisor = copy(inputs.hypervisor, "hypervisor.bin")?;
    ensure!(
        BL33_ADDR + std::fs::metadata(&hypervisor)?.len() <= BUNDLE_ADDR,
        "hypervisor.bin does not fit between {BL33_ADDR:#x} and {BUNDLE_ADDR:#x}"
    );
    let cpio = copy(inputs.vms_cpio, "vms.cpio")?;
    let initrd_start = BUNDLE_ADDR;
    let initrd_end = BUNDLE_ADDR + std::fs::metadata(&cpio)?.len();
    ensure!(
        initrd_end <= BANK0_END,
        "vms.cpio ({} MiB) does not fit in DRAM below 4 GiB",
        (initrd_end - initrd_start) >> 20
    );

    let dts = dtb_to_dts(inputs.fvp_dtb)?;
    let dts = set_node(&dts, "chosen", &chosen_node(initrd_start, initrd_end))?;
    let dtb = out.join("fvp-base-revc.dtb");
    dts_to_dtb(&dts, &dtb)?;
    ensure!(std::fs::metadata(&dtb)?.len() < BL33_ADDR - DTB_ADDR, "DTB too large");

    if let Some(bl1) = inputs.bl1 {
        copy(bl1, "bl1.bin")?;
    }
    if let Some(bl31) = inputs.bl31 {
        copy(bl31, "bl31.bin")?;
    }
    let fip_path = out.join("fip.bin");
    let fip = if creating_fip {
        let bl2 = copy(inputs.bl2.expect("checked"), "bl2.bin")?;
        let _ = std::fs::remove_file(&fip_path);
        let status = Command::new("fiptool")
            .arg("create")
            .arg("--tb-fw")
            .arg(&bl2)
            .arg("--soc-fw")
            .arg(out.join("bl31.bin"))
            .arg("--nt-fw")
            .arg(&hypervisor)
            .arg("--hw-config")
            .arg(&dtb)
            .arg(&fip_path)
            .status()
            .context("running fiptool")?;
        ensure!(status.success(), "fiptool create failed");
        FipState::Created
    } else if let Some(given) = inputs.fip {
        copy(given, "fip.bin")?;
        let updated = have_tool("fiptool")
            && Command::new("fiptool")
                .arg("update")
                .arg("--nt-fw")
                .arg(&hypervisor)
                .arg("--hw-config")
                .arg(&dtb)
                .arg(&fip_path)
                .status()
                .is_ok_and(|s| s.success());
        FipState::Copied { updated }
    } else {
        let _ = std::fs::remove_file(&fip_path);
        FipState::Absent
    };

    let script = out.join("run-fvp.sh");
    std::fs::write(&script, run_script())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::write(out.join("README"), readme(initrd_start, initrd_end, &fip))?;
    Ok(BundleReport { initrd_start, initrd_end, fip })
}

/// Model parameters common to both flows: 8 cores, secure memory, MTE, exit on power-off.
pub const MODEL_PARAMS: &[&str] = &[
    "pctl.startup=0.0.0.0",
    "bp.secure_memory=1",
    "cluster0.NUM_CORES=4",
    "cluster1.NUM_CORES=4",
    "cluster0.has_arm_v8-5=1",
    "cluster1.has_arm_v8-5=1",
    "cluster0.memory_tagging_support_level=2",
    "cluster1.memory_tagging_support_level=2",
    "bp.dram_metadata.is_enabled=1",
    "bp.ve_sysregs.exit_on_shutdown=1",
];

fn run_script() -> String {
    let mut s = String::new();
    let params: String = MODEL_PARAMS.iter().map(|p| format!("    -C {p}\n")).collect();
    let rvbar: String =
        (0..2).flat_map(|c| (0..4).map(move |n| format!("    -C cluster{c}.cpu{n}.RVBAR=$BL31_BASE\n"))).collect();
    let _ = write!(
        s,
        r#"#!/usr/bin/env bash
# Boots mte-hypervisor on Arm FVP Base RevC (FVP_Base_RevC-2xAEMvA) with MTE.
# Generated by `cargo xtask fvp`; see README next to this script.
#
#   ./run-fvp.sh [extra model args...]              TF-A BL1 + FIP flow (bl1.bin, fip.bin)
#   ./run-fvp.sh --preloaded [extra model args...]  RESET_TO_BL31 + ARM_LINUX_KERNEL_AS_BL33 flow (bl31.bin)
#
# Environment: FVP (model binary, default FVP_Base_RevC-2xAEMvA),
#              BL31_BASE (reset address of a RESET_TO_BL31 BL31, default {bl31:#x}).
set -euo pipefail
cd "$(dirname "$0")"
FVP=${{FVP:-FVP_Base_RevC-2xAEMvA}}
BL31_BASE=${{BL31_BASE:-{bl31:#010x}}}
mode=fip
if [ "${{1:-}}" = "--preloaded" ]; then
    mode=preloaded
    shift
fi

missing() {{
    echo "run-fvp.sh: $1 is missing next to this script." >&2
    echo "$2" >&2
    exit 1
}}
if ! command -v "$FVP" >/dev/null 2>&1; then
    echo "run-fvp.sh: the model '$FVP' is not on PATH. Download Arm's FVP Base RevC-2xAEMvA" >&2
    echo "(developer.arm.com, 'Arm Ecosystem FVPs'), then add its models/Linux64_GCC-*/ directory" >&2
    echo "to PATH or set FVP=/path/to/FVP_Base_RevC-2xAEMvA." >&2
    exit 1
fi
for f in hypervisor.bin vms.cpio fvp-base-revc.dtb; do
    [ -f "$f" ] || missing "$f" "Re-run 'cargo xtask fvp'."
done

if [ "$mode" = fip ]; then
    [ -f bl1.bin ] || missing bl1.bin "Build TF-A (make PLAT=fvp CTX_INCLUDE_MTE_REGS=1 all fip BL33=hypervisor.bin) and copy build/fvp/release/bl1.bin here, or pass --bl1 to 'cargo xtask fvp'."
    [ -f fip.bin ] || missing fip.bin "Create it: fiptool create --tb-fw bl2.bin --soc-fw bl31.bin --nt-fw hypervisor.bin --hw-config fvp-base-revc.dtb fip.bin (or pass --fip / --bl2 --bl31 to 'cargo xtask fvp')."
    exec "$FVP" \
    -C bp.secureflashloader.fname=bl1.bin \
    -C bp.flashloader0.fname=fip.bin \
{params}    --data cluster0.cpu0=fvp-base-revc.dtb@{dtb:#x} \
    --data cluster0.cpu0=vms.cpio@{bundle:#x} \
    "$@"
else
    [ -f bl31.bin ] || missing bl31.bin "Build TF-A with RESET_TO_BL31=1 ARM_LINUX_KERNEL_AS_BL33=1 PRELOADED_BL33_BASE={bl33:#x} ARM_PRELOADED_DTB_BASE={dtb:#x} CTX_INCLUDE_MTE_REGS=1 PLAT=fvp bl31 and copy bl31.bin here (or pass --bl31 to 'cargo xtask fvp')."
    exec "$FVP" \
{params}{rvbar}    --data cluster0.cpu0=bl31.bin@$BL31_BASE \
    --data cluster0.cpu0=hypervisor.bin@{bl33:#x} \
    --data cluster0.cpu0=fvp-base-revc.dtb@{dtb:#x} \
    --data cluster0.cpu0=vms.cpio@{bundle:#x} \
    "$@"
fi
"#,
        bl31 = BL31_ADDR,
        dtb = DTB_ADDR,
        bl33 = BL33_ADDR,
        bundle = BUNDLE_ADDR,
    );
    s
}

fn readme(initrd_start: u64, initrd_end: u64, fip: &FipState) -> String {
    let fip_line = match fip {
        FipState::Created => "fip.bin was created by `cargo xtask fvp` with fiptool from your BL2 and BL31, with \
                              hypervisor.bin as BL33 (NT_FW) and fvp-base-revc.dtb as HW_CONFIG."
            .to_string(),
        FipState::Copied { updated: true } => "fip.bin is your --fip, updated with fiptool: hypervisor.bin as BL33 \
                                               (NT_FW) and fvp-base-revc.dtb as HW_CONFIG."
            .to_string(),
        FipState::Copied { updated: false } => "fip.bin is your --fip copied as is (fiptool was not available to \
                                                update it): it must already hold hypervisor.bin as BL33."
            .to_string(),
        FipState::Absent => {
            "No fip.bin was written: bring bl1.bin and fip.bin from your TF-A build (see below).".to_string()
        }
    };
    format!(
        r#"mte-hypervisor on Arm FVP Base RevC (FVP_Base_RevC-2xAEMvA), with MTE
=====================================================================

Contents
--------
hypervisor.bin      the hypervisor, a flat arm64 Image (position independent: it runs where
                    it is loaded; TF-A puts BL33 at PLAT_ARM_NS_IMAGE_BASE = {bl33:#x})
vms.cpio            the VM bundle (vms.conf + Linux kernel + initramfs), loaded at {start:#x}
fvp-base-revc.dtb   Linux's FVP Base RevC device tree with /chosen filled in:
                    stdout-path = "serial0:115200n8" (UART0, 0x1c090000),
                    linux,initrd-start = {start:#x}, linux,initrd-end = {end:#x} (vms.cpio)
run-fvp.sh          the model command line (FVP=... overrides the model binary)
bl1.bin, bl2.bin, bl31.bin, fip.bin   TF-A artefacts, when given to `cargo xtask fvp`

{fip_line}

Memory layout: NT_FW_CONFIG 0x80000000 (TF-A), DTB {dtb:#x}, BL33 {bl33:#x}, VM bundle {start:#x}.

Flow 1: TF-A BL1 + FIP (default)
--------------------------------
Needs bl1.bin and fip.bin next to run-fvp.sh. Build TF-A for the FVP with MTE context switching:

    make PLAT=fvp CTX_INCLUDE_MTE_REGS=1 BL33=<this dir>/hypervisor.bin all fip

then copy build/fvp/release/bl1.bin here, and either copy its fip.bin and update it:

    fiptool update --nt-fw hypervisor.bin --hw-config fvp-base-revc.dtb fip.bin

or let `cargo xtask fvp --bl1 bl1.bin --bl2 bl2.bin --bl31 bl31.bin` create it
(`fiptool create --tb-fw bl2.bin --soc-fw bl31.bin --nt-fw hypervisor.bin --hw-config ... fip.bin`;
fiptool is in Debian's arm-trusted-firmware-tools). BL2 loads HW_CONFIG (the DTB) to {dtb:#x}
and BL33 to {bl33:#x}; BL31 enters the hypervisor at EL2 with x0 = NT_FW_CONFIG (0x80000000) and
x1 = the DTB. The hypervisor takes the DTB by its magic and keeps NT_FW_CONFIG reserved. The
script also preloads the DTB and vms.cpio with --data, so the bundle is in memory either way.

    ./run-fvp.sh

Flow 2: preloaded, RESET_TO_BL31 + ARM_LINUX_KERNEL_AS_BL33
-----------------------------------------------------------
No BL1/BL2/FIP: the model starts every CPU in BL31 (RVBAR) and everything else is preloaded with
--data. Build BL31 with

    make PLAT=fvp RESET_TO_BL31=1 ARM_LINUX_KERNEL_AS_BL33=1 PRELOADED_BL33_BASE={bl33:#x} \
         ARM_PRELOADED_DTB_BASE={dtb:#x} CTX_INCLUDE_MTE_REGS=1 bl31

copy build/fvp/release/bl31.bin here (or pass --bl31), then

    ./run-fvp.sh --preloaded

BL31 is loaded and entered at BL31_BASE (default {bl31:#x}, -C clusterN.cpuM.RVBAR on all 8 CPUs;
set BL31_BASE=... if your TF-A links BL31 elsewhere), hypervisor.bin at {bl33:#x}, and the
hypervisor is entered at EL2 with x0 = the DTB ({dtb:#x}).

Model parameters
----------------
8 cores (cluster0/1.NUM_CORES=4), secure memory, MTE: cluster0/1.memory_tagging_support_level=2,
bp.dram_metadata.is_enabled=1 (tag storage) and cluster0/1.has_arm_v8-5=1; the model exits when
the hypervisor powers off (bp.ve_sysregs.exit_on_shutdown=1). Extra arguments to run-fvp.sh are
passed to the model.

What to expect on the console (UART0, the model's terminal_0 window / telnet port 5000)
-------------------------------------------------------------------------------------
After TF-A's own messages:

    mte-hypervisor 0.1.0 starting at EL2 (DTB at 0x82000000)
    ... firmware config blob (NT_FW_CONFIG) at 0x80000000 kept reserved   (FIP flow only)
    --- platform summary ---
    platform: FVP Base RevC
      RAM        0x80000000-0xffffffff (2 GiB)
                 0x880000000-0x8ffffffff (2 GiB)
      reserved   ... (vram 0x18000000, /memreserve/ 0x80000000)
      console    PL011 at 0x1c090000 (4 KiB), INTID 37
      GICv3      GICD 0x2f000000, GICR 0x2f100000 (2 MiB), ITS 0x2f020000, ...
      PSCI       ... via SMC
      CPUs       8: 0x0 0x100 0x200 0x300 0x10000 0x10100 0x10200 0x10300
      initrd     {start:#x}-...
    CPUs online: 8 of 8
    MTE: MTE2 ...          (memory_tagging_support_level=2; 3 would report MTE3)
    ------------------------
    ... VM bundle at {start:#x} ...

then the Linux guest boots on the same console (its kernel log on the virtual PL011) and its
init prints

    mte-hypervisor guest: init reached

When the guest powers off, the hypervisor powers the machine off and the model exits.
"#,
        bl33 = BL33_ADDR,
        dtb = DTB_ADDR,
        bl31 = BL31_ADDR,
        start = initrd_start,
        end = initrd_end,
    )
}

/// The FVP DTB fixture (fetched from Debian's arm64 kernel package once, cached).
fn fvp_dtb() -> Result<PathBuf> {
    let path = crate::fixtures::fixtures_dir().join("fvp-base-revc.dtb");
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(path.parent().expect("fixtures dir"))?;
    let signed = crate::fixtures::resolve_metapackage("linux-image-arm64")?;
    let unsigned = format!("{signed}-unsigned");
    let deb = crate::fixtures::download_deb(&unsigned).or_else(|_| crate::fixtures::download_deb(&signed))?;
    crate::fixtures::extract_from_deb(&deb, "*/arm/fvp-base-revc.dtb", &path)
        .with_context(|| format!("extracting fvp-base-revc.dtb from {}", deb.display()))?;
    Ok(path)
}

/// `cargo xtask fvp`.
pub fn run(options: &FvpOptions) -> Result<i32> {
    ensure_dtc()?;
    if !(1..=8).contains(&options.vcpus) {
        bail!("--vcpus {} out of range: the FVP has 8 CPUs", options.vcpus);
    }
    if options.bl2.is_some() && !have_tool("fiptool") {
        bail!("--bl2/--bl31 given but fiptool is not on PATH; {FIPTOOL_HINT}");
    }
    let dtb = fvp_dtb().context("getting the FVP Base RevC device tree")?;
    let image = build::build(&BuildOptions { release: options.release, log: "info".into(), ..Default::default() })?;
    let cpio = options.guest.bundle("fvp", options.vcpus, &options.guest_mem)?;
    let out = if options.out.is_absolute() {
        options.out.clone()
    } else if options.out.starts_with("target") {
        // The default, `target/fvp`, follows CARGO_TARGET_DIR.
        target_dir().join(options.out.strip_prefix("target").expect("checked"))
    } else {
        std::env::current_dir()?.join(&options.out)
    };
    let inputs = BundleInputs {
        hypervisor: &image.flat,
        vms_cpio: &cpio,
        fvp_dtb: &dtb,
        bl1: options.bl1.as_deref(),
        fip: options.fip.as_deref(),
        bl2: options.bl2.as_deref(),
        bl31: options.bl31.as_deref(),
    };
    let report = write_bundle(&out, &inputs)?;
    println!("FVP bundle written to {}", out.display());
    println!("  VM bundle at {:#x}..{:#x}", report.initrd_start, report.initrd_end);
    match report.fip {
        FipState::Created => println!("  fip.bin created with fiptool"),
        FipState::Copied { updated: true } => println!("  fip.bin copied and updated with fiptool"),
        FipState::Copied { updated: false } => {
            println!("  fip.bin copied as is (fiptool missing: it must already hold the hypervisor as BL33)")
        }
        FipState::Absent => println!("  no fip.bin: see README (bring bl1.bin and fip.bin, or use --preloaded)"),
    }
    if options.bl1.is_none() {
        println!("  no bl1.bin: copy TF-A's bl1.bin next to run-fvp.sh before running it (see README)");
    }
    println!("  run: {}/run-fvp.sh", out.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE_FVP_DTS: &str = r#"/dts-v1/;
/memreserve/ 0x80000000 0x10000;
/ {
	model = "FVP Base RevC";
	#address-cells = <2>;
	#size-cells = <2>;
	aliases {
		serial0 = "/uart@1c090000";
	};
	chosen {
	};
	memory@80000000 {
		device_type = "memory";
		reg = <0 0x80000000 0 0x80000000>, <0x8 0x80000000 0 0x80000000>;
	};
	uart@1c090000 {
		compatible = "arm,pl011", "arm,primecell";
		reg = <0 0x1c090000 0 0x1000>;
	};
};
"#;

    fn cells(dts: &str, property: &str) -> Option<u64> {
        let line = dts.lines().find(|l| l.trim_start().starts_with(&format!("{property} = <")))?;
        let inner = line.split('<').nth(1)?.split('>').next()?;
        let words: Vec<u64> =
            inner.split_whitespace().map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).unwrap()).collect();
        assert_eq!(words.len(), 2, "{property} must be two cells: {line}");
        Some((words[0] << 32) | words[1])
    }

    #[test]
    fn bundle_has_every_file_and_the_model_command_line() {
        if !have_tool("dtc") {
            panic!("dtc is needed for this test; {DTC_HINT}");
        }
        let dir = std::env::temp_dir().join(format!("xtask-fvp-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fake = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let hypervisor = fake("hv.bin", &[0x11; 4096]);
        let kernel = fake("kernel", &[0x22; 10_000]);
        let initrd = fake("initrd", &[0x33; 20_001]);
        let bl1 = fake("bl1-in.bin", &[0x44; 100]);
        let fvp_dtb = dir.join("fvp-in.dtb");
        dts_to_dtb(FAKE_FVP_DTS, &fvp_dtb).unwrap();
        let guest =
            crate::vm_scenarios::LinuxGuest { kernel: &kernel, initrd: &initrd, append: "", vcpus: 4, memory: "1G" };
        let cpio = crate::vm_scenarios::linux_bundle("fvp-unit-test", &guest).unwrap();
        let out = dir.join("bundle");
        let report = write_bundle(
            &out,
            &BundleInputs {
                hypervisor: &hypervisor,
                vms_cpio: &cpio,
                fvp_dtb: &fvp_dtb,
                bl1: Some(&bl1),
                fip: None,
                bl2: None,
                bl31: None,
            },
        )
        .unwrap();
        assert_eq!(report.fip, FipState::Absent);

        for file in ["hypervisor.bin", "vms.cpio", "fvp-base-revc.dtb", "run-fvp.sh", "README", "bl1.bin"] {
            assert!(out.join(file).is_file(), "{file} missing");
        }
        assert_eq!(std::fs::read(out.join("hypervisor.bin")).unwrap(), std::fs::read(&hypervisor).unwrap());
        let cpio_len = std::fs::metadata(out.join("vms.cpio")).unwrap().len();
        assert_eq!(cpio_len, std::fs::metadata(&cpio).unwrap().len());
        assert!(cpio_len > 30_000);

        let script = std::fs::read_to_string(out.join("run-fvp.sh")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join("run-fvp.sh")).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "run-fvp.sh not executable");
        }
        assert!(script.contains("FVP=${FVP:-FVP_Base_RevC-2xAEMvA}"));
        for required in [
            "-C bp.secureflashloader.fname=bl1.bin",
            "-C bp.flashloader0.fname=fip.bin",
            "-C pctl.startup=0.0.0.0",
            "-C bp.secure_memory=1",
            "-C cluster0.NUM_CORES=4",
            "-C cluster1.NUM_CORES=4",
            "-C cluster0.memory_tagging_support_level=2",
            "-C cluster1.memory_tagging_support_level=2",
            "-C bp.dram_metadata.is_enabled=1",
            "-C cluster0.has_arm_v8-5=1",
            "-C cluster1.has_arm_v8-5=1",
            "-C bp.ve_sysregs.exit_on_shutdown=1",
            "--data cluster0.cpu0=fvp-base-revc.dtb@0x82000000",
            "--data cluster0.cpu0=vms.cpio@0x90000000",
            "--data cluster0.cpu0=hypervisor.bin@0x88000000",
            "--data cluster0.cpu0=bl31.bin@$BL31_BASE",
            "BL31_BASE=${BL31_BASE:-0x04001000}",
            "-C cluster0.cpu0.RVBAR=$BL31_BASE",
            "-C cluster1.cpu3.RVBAR=$BL31_BASE",
            "--preloaded",
        ] {
            assert!(script.contains(required), "run-fvp.sh lacks {required:?}:\n{script}");
        }
        // Both flows place the DTB and the VM bundle.
        assert_eq!(script.matches("--data cluster0.cpu0=vms.cpio@0x90000000").count(), 2);
        if have_tool("bash") {
            let status = Command::new("bash").arg("-n").arg(out.join("run-fvp.sh")).status().unwrap();
            assert!(status.success(), "run-fvp.sh has a syntax error");
        }

        let dts = dtb_to_dts(&out.join("fvp-base-revc.dtb")).unwrap();
        let lines: Vec<String> = dts.lines().map(str::to_string).collect();
        let (start, end) = find_node(&lines, "chosen").expect("/chosen");
        let chosen = lines[start..=end].join("\n");
        assert!(chosen.contains("stdout-path = \"serial0:115200n8\";"), "{chosen}");
        assert_eq!(cells(&chosen, "linux,initrd-start"), Some(0x9000_0000));
        assert_eq!(cells(&chosen, "linux,initrd-end"), Some(0x9000_0000 + cpio_len));
        // The rest of the tree is intact.
        assert!(dts.contains("/memreserve/\t0x0000000080000000 0x0000000000010000;"), "{dts}");
        assert!(dts.contains("uart@1c090000"));

        let readme = std::fs::read_to_string(out.join("README")).unwrap();
        for needle in ["./run-fvp.sh --preloaded", "mte-hypervisor guest: init reached", "MTE: MTE2", "fiptool"] {
            assert!(readme.contains(needle), "README lacks {needle:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_missing_inputs_and_bl2_without_bl31() {
        let dir = std::env::temp_dir().join(format!("xtask-fvp-refuse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let present = dir.join("present");
        std::fs::write(&present, b"x").unwrap();
        let missing = dir.join("missing");
        let inputs = |bl2: Option<&'static str>| BundleInputs {
            hypervisor: &present,
            vms_cpio: &present,
            fvp_dtb: &missing,
            bl1: None,
            fip: None,
            bl2: bl2.map(|_| present.as_path()),
            bl31: None,
        };
        let error = write_bundle(&dir.join("out"), &inputs(None)).unwrap_err().to_string();
        assert!(error.contains("FVP device tree") || error.contains("dtc"), "{error}");
        let error = write_bundle(&dir.join("out"), &inputs(Some("bl2"))).unwrap_err().to_string();
        assert!(error.contains("--bl31") || error.contains("dtc"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn chosen_is_replaced_or_added() {
        let dts = "/dts-v1/;\n/ {\n\tchosen {\n\t\tbootargs = \"x\";\n\t};\n\tfoo {\n\t};\n};\n";
        let out = set_node(dts, "chosen", &chosen_node(0x9000_0000, 0x1_2345_6789)).unwrap();
        assert!(!out.contains("bootargs"));
        assert!(out.contains("linux,initrd-end = <0x1 0x23456789>;"), "{out}");
        let dts = "/dts-v1/;\n/ {\n\tfoo {\n\t};\n};\n";
        let out = set_node(dts, "chosen", &chosen_node(0x9000_0000, 0x9000_1000)).unwrap();
        assert!(out.contains("\tchosen {\n\t\tstdout-path"), "{out}");
        assert!(out.ends_with("\t};\n};\n"), "{out}");
    }
}
