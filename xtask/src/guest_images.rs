//! Linux guest images: Debian's current arm64 cloud kernel, and a busybox initramfs whose
//! `/init` (`guest-images/init/init`) prints markers the tests look for and can run
//! `mte-check` (`guest-images/mte-check`) and stop the VM.
//!
//! Everything lands in `target/guest-images/` and is cached: the kernel and busybox are
//! fetched with apt (the only way out to the network here) and extracted again only
//! when apt's candidate version changes.
//!
//! `boot_directly_under_qemu` boots the images on QEMU without the hypervisor: the
//! reference the hypervisor's Linux scenarios and benchmarks compare against.

#![allow(
    dead_code,
    reason = "the Linux-guest scenarios and benchmarks use these; until then the ignored \
              test at the bottom does"
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};

use crate::build::{target_dir, workspace_root};
use crate::fixtures::{extract_from_deb, resolve_metapackage};
use crate::initramfs::Initramfs;
use crate::qemu::{QEMU, ensure_qemu};

/// Printed by `/init` once user space runs (then ` (kernel <release>, <n> CPUs)`).
pub const INIT_REACHED: &str = "mte-hypervisor guest: init reached";
/// `mte-check`'s verdict line when every check passed (then ` (<n> checks)`).
pub const MTE_CHECK_PASSED: &str = "mte-check: PASS";
/// Printed by `/init` before it reboots (`reboottest=1`).
pub const REBOOTING: &str = "mte-hypervisor guest: rebooting";
/// Printed by `/init` before it powers off.
pub const POWERING_OFF: &str = "mte-hypervisor guest: powering off";
/// The interactive shell's prompt (as root in `/root`).
pub const SHELL_PROMPT: &str = "~ # ";
/// Kernel command line of the MTE smoke run: check, then power off; panics end the run.
pub const MTE_CHECK_APPEND: &str = "console=ttyAMA0 mtecheck=1 panic=-1";

/// Debian's metapackage for its current arm64 cloud kernel (MTE and the PL011 console
/// built in, few modules: small and quick to boot).
const KERNEL_METAPACKAGE: &str = "linux-image-cloud-arm64";
/// Statically linked busybox: the whole user space besides `mte-check`.
const BUSYBOX_PACKAGE: &str = "busybox-static";
/// The Rust target of guest user-space programs (static, no C toolchain needed).
pub const GUEST_TARGET: &str = "aarch64-unknown-linux-musl";
/// RAM of a direct QEMU boot.
const DIRECT_BOOT_MEMORY: &str = "512M";

/// Busybox applets linked in `/bin`: what `/init` uses plus a usable interactive shell.
const APPLETS: &[&str] = &[
    "[", "ash", "awk", "cat", "chmod", "cp", "cttyhack", "cut", "date", "dd", "df", "dmesg", "du", "echo", "env",
    "false", "find", "free", "grep", "halt", "head", "hexdump", "hostname", "id", "kill", "less", "ln", "ls", "mkdir",
    "mknod", "more", "mount", "mv", "nproc", "od", "poweroff", "printf", "ps", "pwd", "readlink", "reboot", "rm",
    "rmdir", "sed", "seq", "setsid", "sh", "sleep", "sort", "stat", "stty", "sync", "tail", "taskset", "tee", "test",
    "time", "timeout", "top", "touch", "tr", "true", "umount", "uname", "uniq", "uptime", "usleep", "vi", "watch",
    "wc", "which", "xargs", "xxd",
];

/// Where the images are written.
pub fn images_dir() -> PathBuf {
    target_dir().join("guest-images")
}

/// Shared with `fixtures`, which fetches other packages into the same cache.
fn deb_cache_dir() -> PathBuf {
    target_dir().join("cache").join("debs")
}

/// The `/init` script put into the initramfs.
pub fn init_script() -> PathBuf {
    workspace_root().join("guest-images").join("init").join("init")
}

/// Debian's current arm64 cloud kernel as an uncompressed arm64 `Image`
/// (`target/guest-images/vmlinuz`), downloaded and extracted when apt's candidate changes.
pub fn default_kernel() -> Result<PathBuf> {
    let signed = resolve_metapackage(KERNEL_METAPACKAGE)?;
    // The unsigned build is the same kernel without the Secure Boot signature wrapper.
    let package = DebPackage::candidate(&format!("{signed}-unsigned")).or_else(|_| DebPackage::candidate(&signed))?;
    let out = images_dir().join("vmlinuz");
    cached_artifact(&out, &package.source(), |partial| {
        let deb = download_with_progress(&package)?;
        extract_from_deb(&deb, "*boot/vmlinuz-*", partial)
            .with_context(|| format!("extracting the kernel from {}", deb.display()))?;
        let image =
            kernel_image(std::fs::read(partial)?).with_context(|| format!("boot/vmlinuz-* of {}", deb.display()))?;
        Ok(std::fs::write(partial, image)?)
    })?;
    Ok(out)
}

/// Debian's static arm64 busybox (`target/guest-images/busybox`).
pub fn default_busybox() -> Result<PathBuf> {
    let package = DebPackage::candidate(BUSYBOX_PACKAGE)?;
    let out = images_dir().join("busybox");
    cached_artifact(&out, &package.source(), |partial| {
        let deb = download_with_progress(&package)?;
        extract_from_deb(&deb, "*bin/busybox", partial)
            .with_context(|| format!("extracting busybox from {}", deb.display()))?;
        check_aarch64_elf(&std::fs::read(partial)?).context("Debian's bin/busybox")
    })?;
    Ok(out)
}

/// Builds `mte-check` (release, static, for `aarch64-unknown-linux-musl`) and returns the
/// binary. Debug info is stripped: it would be most of the initramfs.
pub fn build_mte_check() -> Result<PathBuf> {
    crate::build::ensure_targets()?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["build", "--release", "--package", "mte-check", "--target", GUEST_TARGET])
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "building mte-check for {GUEST_TARGET} failed (is the target installed? \
         `rustup target add {GUEST_TARGET}`; rust-toolchain.toml lists it)"
    );
    Ok(target_dir().join(GUEST_TARGET).join("release").join("mte-check"))
}

/// Builds `target/guest-images/initramfs.cpio.gz`: busybox, its applet links, `/init`,
/// `/bin/mte-check`, and the device nodes the kernel needs before devtmpfs is mounted.
pub fn default_initramfs() -> Result<PathBuf> {
    let busybox = std::fs::read(default_busybox()?)?;
    let mte_check = std::fs::read(build_mte_check()?)?;
    let init_path = init_script();
    let init = std::fs::read(&init_path).with_context(|| format!("reading {}", init_path.display()))?;
    let out = images_dir().join("initramfs.cpio.gz");
    std::fs::create_dir_all(images_dir())?;
    initramfs_contents(busybox, mte_check, init)?.write_gzip(&out)?;
    Ok(out)
}

/// The initramfs tree. `/dev/console` has to be in the archive: the kernel opens it for
/// `/init`'s standard streams before `/init` can mount devtmpfs.
fn initramfs_contents(busybox: Vec<u8>, mte_check: Vec<u8>, init: Vec<u8>) -> Result<Initramfs> {
    let mut fs = Initramfs::new();
    for dir in ["bin", "dev", "etc", "mnt", "proc", "run", "sbin", "sys", "usr", "usr/bin", "usr/sbin"] {
        fs.dir(dir, 0o755)?;
    }
    fs.dir("root", 0o700)?.dir("tmp", 0o1777)?;
    fs.char_device("dev/console", 0o600, 5, 1)?.char_device("dev/null", 0o666, 1, 3)?;
    // Names for uid 0; busybox also takes root's home from here to show it as `~` in the
    // prompt.
    fs.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n".to_vec())?;
    fs.file("etc/group", 0o644, b"root:x:0:\n".to_vec())?;
    fs.file("init", 0o755, init)?;
    fs.file("bin/busybox", 0o755, busybox)?;
    for applet in APPLETS {
        fs.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    fs.file("bin/mte-check", 0o755, mte_check)?;
    Ok(fs)
}

/// What a direct QEMU boot produced.
#[derive(Debug)]
pub struct DirectBoot {
    /// QEMU's exit code; `None` if it was killed at the timeout.
    pub exit_code: Option<i32>,
    /// Console and QEMU's own messages, `\r` removed.
    pub output: String,
    /// From starting QEMU to its exit (or the timeout).
    pub elapsed: Duration,
    /// From starting QEMU to the `INIT_REACHED` marker, if it appeared.
    pub init_reached: Option<Duration>,
}

/// Boots `kernel` with `initrd` directly on QEMU `virt` (EL1, GICv3, MTE, 512 MiB),
/// without the hypervisor, capturing the console; kills QEMU after `timeout`.
/// `-no-reboot` makes a guest reboot end the run.
pub fn boot_directly_under_qemu(
    kernel: &Path,
    initrd: &Path,
    append: &str,
    smp: u32,
    timeout: Duration,
) -> Result<DirectBoot> {
    ensure_qemu()?;
    let started = Instant::now();
    let mut child = Command::new(QEMU)
        .args(["-M", "virt,mte=on,gic-version=3", "-cpu", "max", "-nographic", "-no-reboot"])
        .args(["-smp", &smp.to_string(), "-m", DIRECT_BOOT_MEMORY])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting QEMU")?;
    let console = Arc::new(Mutex::new(Console::default()));
    let readers = [
        child.stdout.take().map(|out| Box::new(out) as Box<dyn Read + Send>),
        child.stderr.take().map(|err| Box::new(err) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let console = Arc::clone(&console);
        std::thread::spawn(move || console_reader(stream, &console, started))
    })
    .collect::<Vec<_>>();
    let exit_code = crate::qemu::wait_or_kill(&mut child, timeout)?;
    let elapsed = started.elapsed();
    for reader in readers {
        let _ = reader.join();
    }
    let console = console.lock().expect("console reader panicked");
    Ok(DirectBoot {
        exit_code,
        output: String::from_utf8_lossy(&console.bytes).replace('\r', ""),
        elapsed,
        init_reached: console.init_reached,
    })
}

#[derive(Default)]
struct Console {
    bytes: Vec<u8>,
    init_reached: Option<Duration>,
}

/// Appends `stream` to `console`, noting when the init marker first shows up.
fn console_reader(mut stream: Box<dyn Read + Send>, console: &Mutex<Console>, started: Instant) {
    let marker = INIT_REACHED.as_bytes();
    let mut buffer = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buffer) {
        let mut console = console.lock().expect("console reader panicked");
        let from = console.bytes.len().saturating_sub(marker.len());
        console.bytes.extend_from_slice(&buffer[..n]);
        if console.init_reached.is_none() && console.bytes[from..].windows(marker.len()).any(|w| w == marker) {
            console.init_reached = Some(started.elapsed());
        }
    }
}

/// Produces `out` with `produce` (given a scratch path next to it) unless `out` exists
/// and was made from `source`, recorded in `<out>.source`.
fn cached_artifact(out: &Path, source: &str, produce: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let stamp = out.with_extension("source");
    if out.exists() && std::fs::read_to_string(&stamp).is_ok_and(|made_from| made_from == source) {
        return Ok(());
    }
    let dir = out.parent().context("artifact path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(&stamp);
    let partial = out.with_extension("partial");
    let result = produce(&partial);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result?;
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&stamp, source).with_context(|| format!("writing {}", stamp.display()))
}

/// An arm64 package as apt's candidate version describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DebPackage {
    name: String,
    version: String,
    /// Size of the .deb in bytes.
    size: u64,
}

impl DebPackage {
    /// apt's candidate of `name:arm64` (from the local package lists: no download).
    fn candidate(name: &str) -> Result<Self> {
        let output = Command::new("apt-cache")
            .args(["show", "--no-all-versions", &format!("{name}:arm64")])
            .output()
            .context("running apt-cache (is this Debian?)")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || text.trim().is_empty() {
            bail!(
                "arm64 package {name} unavailable: run `sudo bash .ci/install-deps.sh` (enables the \
                 arm64 architecture and updates apt)"
            );
        }
        Self::parse(&text).with_context(|| format!("reading apt-cache show {name}:arm64"))
    }

    /// The first stanza of `apt-cache show` output.
    fn parse(text: &str) -> Result<Self> {
        let field = |key: &str| {
            text.lines()
                .take_while(|line| !line.is_empty())
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(':').map(str::trim))
                .with_context(|| format!("no {key} field"))
        };
        let size = field("Size")?;
        Ok(Self {
            name: field("Package")?.to_string(),
            version: field("Version")?.to_string(),
            size: size.parse().with_context(|| format!("bad Size {size:?}"))?,
        })
    }

    /// What a cached artifact records to tell whether it is current.
    fn source(&self) -> String {
        format!("{} {}\n", self.name, self.version)
    }

    /// The name `apt-get download` gives the file (`:` in an epoch becomes `%3a`).
    fn deb_file_name(&self) -> String {
        format!("{}_{}_arm64.deb", self.name, self.version.replace(':', "%3a"))
    }
}

/// Downloads `package` into the .deb cache with `apt-get download` (unless it is there
/// already), showing a progress bar that follows the growing file. apt downloads into
/// a private staging directory first, so the cache never holds a partial .deb.
fn download_with_progress(package: &DebPackage) -> Result<PathBuf> {
    let cache = deb_cache_dir();
    let deb = cache.join(package.deb_file_name());
    if std::fs::metadata(&deb).is_ok_and(|m| m.len() == package.size) {
        return Ok(deb);
    }
    let staging = cache.join(format!("downloading-{}", package.name));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let log_path = staging.join("apt-get.log");
    let log = std::fs::File::create(&log_path)?;

    let bar = ProgressBar::new(package.size).with_message(format!("{} {}", package.name, package.version));
    bar.set_style(
        ProgressStyle::with_template("xtask: [{bar:25}] {bytes:>10}/{total_bytes} {bytes_per_sec:>12} {wide_msg}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    if bar.is_hidden() {
        // Not a terminal (CI logs): one line instead of a bar.
        eprintln!("xtask: downloading {} {} ({} bytes)", package.name, package.version, package.size);
    }
    let mut apt = Command::new("apt-get")
        .args(["download", &format!("{}:arm64={}", package.name, package.version)])
        .current_dir(&staging)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("running apt-get download")?;
    let status = loop {
        if let Some(status) = apt.try_wait()? {
            break status;
        }
        bar.set_position(downloaded_bytes(&staging));
        std::thread::sleep(Duration::from_millis(100));
    };
    bar.set_position(downloaded_bytes(&staging));
    bar.finish_and_clear();
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!("apt-get download {}:arm64 failed:\n{}", package.name, log.trim_end());
    }
    let downloaded = staging.join(package.deb_file_name());
    let size = std::fs::metadata(&downloaded).map(|m| m.len()).unwrap_or(0);
    ensure!(
        size == package.size,
        "apt-get left {} of {size} bytes, apt-cache says {}",
        downloaded.display(),
        package.size
    );
    std::fs::rename(&downloaded, &deb).with_context(|| format!("moving the download to {}", deb.display()))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(deb)
}

/// Bytes of .deb files in `dir` so far.
fn downloaded_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|ext| ext == "deb"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The arm64 `Image` in a Debian `vmlinuz`: uncompressed on arm64 (taken as is), or
/// gzip-compressed (decompressed). Checks the `ARM\x64` magic at offset 56.
fn kernel_image(vmlinuz: Vec<u8>) -> Result<Vec<u8>> {
    let image = if vmlinuz.starts_with(&[0x1f, 0x8b]) {
        let mut image = Vec::new();
        GzDecoder::new(&vmlinuz[..]).read_to_end(&mut image).context("decompressing the gzip kernel")?;
        image
    } else {
        vmlinuz
    };
    ensure!(image.len() >= 64 && image[56..60] == *b"ARM\x64", "not an arm64 Image (no ARM\\x64 magic at offset 56)");
    Ok(image)
}

/// Fails unless `binary` is an ELF for aarch64 (EM_AARCH64 = 183).
fn check_aarch64_elf(binary: &[u8]) -> Result<()> {
    ensure!(
        binary.len() > 20 && binary.starts_with(b"\x7fELF") && binary[18..20] == 183u16.to_le_bytes(),
        "not an aarch64 ELF"
    );
    Ok(())
}

/// The images of a Linux guest as given on the command line (`--kernel`,
/// `--initrd`), or the defaults this module fetches and builds.
pub fn resolve(kernel: Option<&Path>, initrd: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    let kernel = match kernel {
        Some(k) => k.to_path_buf(),
        None => default_kernel()?,
    };
    let initrd = match initrd {
        Some(i) => i.to_path_buf(),
        None => default_initramfs()?,
    };
    for path in [&kernel, &initrd] {
        anyhow::ensure!(path.is_file(), "{} does not exist", path.display());
    }
    Ok((kernel, initrd))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::initramfs::EntryKind;

    fn fake_image() -> Vec<u8> {
        let mut image = vec![0u8; 4096];
        image[56..60].copy_from_slice(b"ARM\x64");
        image
    }

    #[test]
    fn kernel_image_takes_raw_and_gzip_images() {
        assert_eq!(kernel_image(fake_image()).unwrap(), fake_image());
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&fake_image()).unwrap();
        assert_eq!(kernel_image(gz.finish().unwrap()).unwrap(), fake_image());
    }

    #[test]
    fn kernel_image_rejects_other_files() {
        for bad in [vec![0u8; 4096], b"ARM\x64".to_vec(), Vec::new()] {
            assert_eq!(
                kernel_image(bad).unwrap_err().to_string(),
                "not an arm64 Image (no ARM\\x64 magic at offset 56)"
            );
        }
        assert!(kernel_image(vec![0x1f, 0x8b, 0, 0]).is_err(), "truncated gzip");
    }

    #[test]
    fn parses_apt_cache_show() {
        let text = "Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\nInstalled-Size: 1813\n\
                    Architecture: arm64\nSize: 822236\nDescription: x\n\nPackage: other\nSize: 1\n";
        let package = DebPackage::parse(text).unwrap();
        assert_eq!(
            package,
            DebPackage { name: "busybox-static".into(), version: "1:1.35.0-4+deb12u1+b1".into(), size: 822236 }
        );
        assert_eq!(package.deb_file_name(), "busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb");
        assert_eq!(package.source(), "busybox-static 1:1.35.0-4+deb12u1+b1\n");
        assert_eq!(DebPackage::parse("Package: x\nVersion: 1\n").unwrap_err().to_string(), "no Size field");
    }

    #[test]
    fn cached_artifact_reruns_only_when_the_source_changes() {
        let dir = std::env::temp_dir().join(format!("xtask-guest-images-{}", std::process::id()));
        let out = dir.join("artifact");
        let runs = std::cell::Cell::new(0);
        let produce = |partial: &Path| {
            runs.set(runs.get() + 1);
            Ok(std::fs::write(partial, b"made")?)
        };
        cached_artifact(&out, "a 1\n", produce).unwrap();
        cached_artifact(&out, "a 1\n", produce).unwrap();
        assert_eq!(runs.get(), 1);
        cached_artifact(&out, "a 2\n", produce).unwrap();
        assert_eq!(runs.get(), 2);
        assert!(cached_artifact(&out, "a 3\n", |_| bail!("no network")).is_err());
        assert!(!out.with_extension("source").exists(), "a failed refresh leaves no stamp");
        cached_artifact(&out, "a 3\n", produce).unwrap();
        assert_eq!((runs.get(), std::fs::read(&out).unwrap()), (3, b"made".to_vec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The markers tests match must be what /init prints.
    #[test]
    fn init_script_prints_the_markers() {
        let script = std::fs::read_to_string(init_script()).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"));
        for marker in [INIT_REACHED, REBOOTING, POWERING_OFF] {
            assert!(script.contains(&format!("echo \"{marker}")), "/init does not print {marker:?}");
        }
        for switch in ["mtecheck=1", "reboottest=1", "autopoweroff=1"] {
            assert!(script.contains(&format!("*\" {switch} \"*)")), "/init ignores {switch}");
        }
        for applet in script.split_whitespace().filter(|w| ["usleep", "setsid", "cttyhack", "uname"].contains(w)) {
            assert!(APPLETS.contains(&applet), "/init uses {applet}, which is not linked");
        }
    }

    #[test]
    fn initramfs_has_devices_busybox_links_init_and_mte_check() {
        let fs = initramfs_contents(b"bb".to_vec(), b"mc".to_vec(), b"#!/bin/sh\n".to_vec()).unwrap();
        let find = |path: &str| fs.entries().iter().find(|e| e.path == path).unwrap_or_else(|| panic!("{path}"));
        assert_eq!(find("dev/console").kind, EntryKind::CharDevice { major: 5, minor: 1 });
        assert_eq!(find("dev/null").kind, EntryKind::CharDevice { major: 1, minor: 3 });
        assert_eq!((find("init").permissions, &find("init").kind), (0o755, &EntryKind::File(b"#!/bin/sh\n".to_vec())));
        assert_eq!(find("bin/mte-check").kind, EntryKind::File(b"mc".to_vec()));
        for applet in ["sh", "mount", "poweroff", "reboot", "grep", "cttyhack", "setsid"] {
            assert_eq!(find(&format!("bin/{applet}")).kind, EntryKind::Symlink("busybox".into()));
        }
        fs.to_newc().unwrap();
    }

    /// Fetches the kernel and busybox, builds everything, and boots it on QEMU without
    /// the hypervisor: `mte-check` must pass. Needs apt's arm64 lists, network through
    /// apt and QEMU 10: `cargo test -p xtask -- --ignored --nocapture guest_images`.
    #[test]
    #[ignore = "downloads Debian packages and boots QEMU (about a minute)"]
    fn boots_directly_under_qemu_and_passes_mte_check() {
        let kernel = default_kernel().unwrap();
        let initramfs = default_initramfs().unwrap();
        let boot =
            boot_directly_under_qemu(&kernel, &initramfs, MTE_CHECK_APPEND, 2, Duration::from_secs(300)).unwrap();
        println!("{}", boot.output);
        println!(
            "exit {:?} after {:.1} s; init reached after {:?}",
            boot.exit_code,
            boot.elapsed.as_secs_f64(),
            boot.init_reached.map(|t| t.as_secs_f64())
        );
        assert_eq!(boot.exit_code, Some(0));
        assert!(boot.init_reached.is_some());
        assert!(boot.output.contains(MTE_CHECK_PASSED));
        assert!(boot.output.contains("mte-hypervisor guest: mte on 2 of 2 CPUs"));
        assert!(boot.output.contains(POWERING_OFF));
    }
}
