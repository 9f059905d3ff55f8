//! Real inputs for host tests: device trees dumped from QEMU and the FVP Base RevC
//! tree from Debian's arm64 kernel package. Generated or fetched into
//! `target/test-fixtures/` (cached; never committed).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::build::target_dir;
use crate::qemu::QEMU;

pub fn fixtures_dir() -> PathBuf {
    target_dir().join("test-fixtures")
}

fn cache_dir() -> PathBuf {
    target_dir().join("cache").join("debs")
}

/// Generates or fetches every fixture the host tests read.
pub fn prepare() -> Result<()> {
    let dir = fixtures_dir();
    std::fs::create_dir_all(&dir)?;
    dump_qemu_dtb(&dir.join("qemu-virt-mte-smp4.dtb"), 4, "2G", true, None)?;
    // With an initrd (how the hypervisor receives its VM bundle): 12345 bytes.
    let initrd = dir.join("initrd-12345.bin");
    std::fs::write(&initrd, vec![0x5a; 12345])?;
    dump_qemu_dtb(&dir.join("qemu-virt-initrd.dtb"), 2, "1G", true, Some(&initrd))?;
    let fvp = dir.join("fvp-base-revc.dtb");
    if !fvp.exists() {
        fetch_fvp_dtb(&fvp)?;
    }
    Ok(())
}

/// Asks QEMU for the DTB it would hand the hypervisor (`dumpdtb=`), without booting.
pub fn dump_qemu_dtb(out: &Path, smp: u32, mem: &str, mte: bool, initrd: Option<&Path>) -> Result<()> {
    let machine = format!(
        "virt,virtualization=on,mte={},gic-version=3,dumpdtb={}",
        if mte { "on" } else { "off" },
        out.display()
    );
    let mut qemu = Command::new(QEMU);
    qemu.args(["-M", &machine, "-cpu", "max", "-smp", &smp.to_string(), "-m", mem, "-nographic"]);
    if let Some(initrd) = initrd {
        // QEMU only places an initrd when it also loads a kernel; any file will do.
        qemu.arg("-kernel").arg(initrd).arg("-initrd").arg(initrd);
    }
    let output = qemu.output().context("running QEMU to dump its DTB")?;
    ensure!(out.exists(), "QEMU did not dump a DTB: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// The versioned kernel package a Debian metapackage (e.g. `linux-image-arm64`) points at.
pub fn resolve_metapackage(meta: &str) -> Result<String> {
    let output = Command::new("apt-cache")
        .args(["depends", &format!("{meta}:arm64")])
        .output()
        .context("running apt-cache (is this Debian?)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("Depends: "))
        .map(|dep| dep.trim_end_matches(":arm64").to_string())
        .find(|dep| dep.starts_with("linux-image-"))
        .with_context(|| {
            format!(
                "cannot resolve {meta}:arm64 with apt-cache; enable the arm64 architecture and update \
                 apt (`sudo bash .ci/install-deps.sh`)"
            )
        })
}

/// Downloads `package:arm64` into the cache (once) and returns the .deb's path.
pub fn download_deb(package: &str) -> Result<PathBuf> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)?;
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(&cache).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    eprintln!("xtask: downloading {package}:arm64 (cached in {})", cache.display());
    let status = Command::new("apt-get")
        .args(["download", &format!("{package}:arm64")])
        .current_dir(&cache)
        .status()
        .context("running apt-get download")?;
    ensure!(status.success(), "apt-get download {package}:arm64 failed");
    find().with_context(|| format!("apt-get did not leave {package}_*.deb in {}", cache.display()))
}

/// Extracts the single file matching `pattern` (a tar wildcard) from `deb` to `out`.
pub fn extract_from_deb(deb: &Path, pattern: &str, out: &Path) -> Result<()> {
    let script = "dpkg-deb --fsys-tarfile \"$1\" | tar -x -O --wildcards \"$2\" > \"$3\"";
    let status = Command::new("sh")
        .args(["-c", script, "extract"])
        .arg(deb)
        .arg(pattern)
        .arg(out)
        .status()
        .context("running dpkg-deb")?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    if !status.success() || size == 0 {
        let _ = std::fs::remove_file(out);
        bail!("{} holds no file matching {pattern}", deb.display());
    }
    Ok(())
}

fn fetch_fvp_dtb(out: &Path) -> Result<()> {
    let signed = resolve_metapackage("linux-image-arm64")?;
    let unsigned = format!("{signed}-unsigned");
    let deb = download_deb(&unsigned).or_else(|_| download_deb(&signed))?;
    extract_from_deb(&deb, "*/arm/fvp-base-revc.dtb", out)
        .with_context(|| format!("extracting fvp-base-revc.dtb from {}", deb.display()))
}
