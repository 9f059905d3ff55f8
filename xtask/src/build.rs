//! Building the hypervisor and turning its ELF into a flat, loadable arm64 `Image`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use object::{Object, ObjectSegment};

pub const TARGET: &str = "aarch64-unknown-none-softfloat";

#[derive(Args, Clone, Debug, Default)]
pub struct BuildOptions {
    /// Optimised build.
    #[arg(long)]
    pub release: bool,
    /// Hypervisor log level: off, error, warn, info, debug, trace.
    #[arg(long, default_value = "info", value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
    pub log: String,
    /// Extra cargo features of the hypervisor crate (test-only ones such as `inject-el2-fault`).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
}

/// Where the build put things.
pub struct BuiltImage {
    pub elf: PathBuf,
    pub flat: PathBuf,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the hypervisor and writes `hypervisor[-features].bin` next to the ELF.
pub fn build(options: &BuildOptions) -> Result<BuiltImage> {
    ensure_targets()?;
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(workspace_root())
        .args(["build", "--package", "hypervisor", "--bin", "hypervisor", "--target", TARGET])
        .env("HV_LOG_LEVEL", &options.log);
    if options.release {
        cargo.arg("--release");
    }
    if !options.features.is_empty() {
        cargo.args(["--features", &options.features.join(",")]);
    }
    let status = cargo.status().context("running cargo build")?;
    ensure!(status.success(), "building the hypervisor failed");

    let profile = if options.release { "release" } else { "debug" };
    let out_dir = target_dir().join(TARGET).join(profile);
    let elf = out_dir.join("hypervisor");
    let mut name = String::from("hypervisor");
    for feature in &options.features {
        name.push('-');
        name.push_str(feature);
    }
    let elf_copy = out_dir.join(format!("{name}.elf"));
    std::fs::copy(&elf, &elf_copy).with_context(|| format!("copying {}", elf.display()))?;
    let flat = out_dir.join(format!("{name}.bin"));
    write_flat_image(&elf, &flat)?;
    Ok(BuiltImage { elf: elf_copy, flat })
}

/// Lays the hypervisor ELF's loadable segments out at their link addresses (the
/// image is linked at 0), which is what `-kernel` and boot loaders expect of an `Image`.
pub fn write_flat_image(elf: &Path, out: &Path) -> Result<()> {
    let image = flatten_elf(elf)?;
    check_image_header(&image)?;
    std::fs::write(out, &image).with_context(|| format!("writing {}", out.display()))
}

/// The loadable segments of `elf` laid out relative to the lowest one's address.
pub fn flatten_elf(elf: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("parsing {}", elf.display()))?;
    let loaded: Vec<_> = file.segments().filter(|s| s.data().is_ok_and(|d| !d.is_empty())).collect();
    let base = loaded.iter().map(|s| s.address()).min().context("no loadable segment")?;
    let mut image = Vec::new();
    for segment in loaded {
        let bytes = segment.data()?;
        let start = (segment.address() - base) as usize;
        if image.len() < start + bytes.len() {
            image.resize(start + bytes.len(), 0);
        }
        image[start..start + bytes.len()].copy_from_slice(bytes);
    }
    Ok(image)
}

/// Builds the bare-metal test guest (release) and returns its flat image, which
/// the hypervisor loads at the start of guest RAM.
pub fn build_test_guest() -> Result<PathBuf> {
    ensure_targets()?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["build", "--release", "--package", "test-guest", "--bin", "test-guest", "--target", TARGET])
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "building the test guest failed");
    let elf = target_dir().join(TARGET).join("release").join("test-guest");
    let flat = elf.with_extension("bin");
    std::fs::write(&flat, flatten_elf(&elf)?)?;
    Ok(flat)
}

/// `R_AARCH64_RELATIVE`: the only relocation a self-relocating image applies.
const R_AARCH64_RELATIVE: u32 = 1027;

/// Builds the conformance guest (`guest-images/machine-check`, release) and returns
/// its flat arm64 `Image`, which boots both on bare QEMU (`-kernel`) and under the
/// hypervisor (a Linux-protocol VM).
pub fn build_machine_check() -> Result<PathBuf> {
    ensure_targets()?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["build", "--release", "--package", "machine-check", "--bin", "machine-check", "--target", TARGET])
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "building machine-check failed");
    let elf = target_dir().join(TARGET).join("release").join("machine-check");
    check_only_relative_relocations(&elf)?;
    let image = flatten_elf(&elf)?;
    check_image_header(&image)?;
    let flat = elf.with_extension("bin");
    std::fs::write(&flat, image).with_context(|| format!("writing {}", flat.display()))?;
    Ok(flat)
}

/// A self-relocating image applies `R_AARCH64_RELATIVE` and nothing else.
fn check_only_relative_relocations(elf: &Path) -> Result<()> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("parsing {}", elf.display()))?;
    for (offset, relocation) in file.dynamic_relocations().into_iter().flatten() {
        match relocation.flags() {
            object::RelocationFlags::Elf { r_type: R_AARCH64_RELATIVE } => {}
            other => bail!(
                "{}: relocation {other:?} at {offset:#x}: the entry code only applies relative ones",
                elf.display()
            ),
        }
    }
    Ok(())
}

/// The arm64 `Image` header must be intact for QEMU and TF-A to load us.
fn check_image_header(image: &[u8]) -> Result<()> {
    if image.len() < 64 || &image[56..60] != b"ARM\x64" {
        bail!("the built image has no arm64 Image header (magic at offset 56)");
    }
    let image_size = u64::from_le_bytes(image[16..24].try_into().unwrap());
    ensure!(image_size as usize >= image.len(), "Image header image_size {image_size:#x} is smaller than the file");
    Ok(())
}

/// The Rust targets every build here needs (rust-toolchain.toml lists them, but
/// rustup only adds those to a toolchain it installs, not to one already there).
pub const REQUIRED_TARGETS: [&str; 2] = [TARGET, crate::guest_images::GUEST_TARGET];

/// Adds the required targets to the active toolchain if it lacks them (once per
/// machine), or says exactly what to run when rustup is not available.
pub fn ensure_targets() -> Result<()> {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if CHECKED.get().is_some() {
        return Ok(());
    }
    let listed = Command::new("rustup").current_dir(workspace_root()).args(["target", "list", "--installed"]).output();
    let installed = match listed {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
        // No rustup: the toolchain was installed some other way; let cargo say what is missing.
        _ => {
            let _ = CHECKED.set(());
            return Ok(());
        }
    };
    let missing: Vec<&str> = REQUIRED_TARGETS
        .iter()
        .copied()
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: adding Rust target(s) {} (rustup target add)", missing.join(" "));
        let status = Command::new("rustup")
            .current_dir(workspace_root())
            .args(["target", "add"])
            .args(&missing)
            .status()
            .context("running rustup target add")?;
        ensure!(status.success(), "`rustup target add {}` failed; run it by hand", missing.join(" "));
    }
    let _ = CHECKED.set(());
    Ok(())
}
