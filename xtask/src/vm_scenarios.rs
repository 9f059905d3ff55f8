//! QEMU scenarios that run the bare-metal test guest in VMs under the hypervisor
//! and assert on what the guests and the hypervisor reported.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build::target_dir;
use crate::bundle;
use crate::console_log::says;
use crate::qemu::Captured;

/// One VM scenario: a `vms.conf` for the test guest and what must be seen.
pub struct VmScenario {
    pub name: &'static str,
    pub conf: &'static str,
    /// Lines (substrings) that must appear in the console output.
    pub expect: &'static [&'static str],
}

/// Writes a bundle with `conf` as vms.conf and the test guest as test-guest.bin.
pub fn bundle_for(name: &str, conf: &str, test_guest: &Path) -> Result<PathBuf> {
    let dir = target_dir().join("bundles");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(format!("{name}.cpio"));
    let guest = std::fs::read(test_guest).with_context(|| format!("reading {}", test_guest.display()))?;
    bundle::write_bundle_bytes(&out, &[("vms.conf", conf.as_bytes().to_vec()), ("test-guest.bin", guest)])?;
    Ok(out)
}

/// A bundle for `cargo xtask qemu --vms CONF`: the conf, every image and initrd it names
/// (from the conf's directory), and the built test guest as `test-guest.bin`.
pub fn bundle_from_conf(conf: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(conf).with_context(|| format!("reading {}", conf.display()))?;
    let dir = conf.parent().unwrap_or(Path::new("."));
    let mut files: Vec<(String, PathBuf)> =
        vec![("vms.conf".into(), conf.to_path_buf()), ("test-guest.bin".into(), crate::build::build_test_guest()?)];
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((key, value)) = line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else { continue };
        if key != "image" && key != "initrd" {
            continue;
        }
        if files.iter().any(|(name, _)| name == value) {
            continue;
        }
        let path = dir.join(value);
        if !path.exists() {
            bail!("{}: {key} {value} not found at {}", conf.display(), path.display());
        }
        files.push((value.to_string(), path));
    }
    let out = target_dir().join("bundles").join("user.cpio");
    std::fs::create_dir_all(out.parent().expect("bundles dir"))?;
    let refs: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect();
    bundle::write_bundle(&out, &refs)?;
    Ok(out)
}

/// A Linux guest: how it boots and how big it is.
pub struct LinuxGuest<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// The whole kernel command line (the console comes from `/chosen/stdout-path`).
    pub append: &'a str,
    pub vcpus: u32,
    /// Guest RAM, `vms.conf` syntax (e.g. `512M`).
    pub memory: &'a str,
}

/// Writes a bundle running one Linux VM with a vCPU on each of the first
/// `vcpus` physical CPUs.
pub fn linux_bundle(name: &str, guest: &LinuxGuest) -> Result<PathBuf> {
    let cpus: Vec<String> = (0..guest.vcpus).map(|c| c.to_string()).collect();
    let bootargs = match guest.append.trim() {
        "" => String::new(),
        args => format!("bootargs = {args}\n"),
    };
    let conf = format!(
        "[vm linux]\nimage = vmlinuz\ninitrd = initrd\n{bootargs}memory = {}\ncpus = {}\n",
        guest.memory,
        cpus.join(",")
    );
    if conf.contains('#') {
        bail!("kernel arguments cannot contain '#' (vms.conf comments)");
    }
    linux_conf_bundle(name, &conf, guest.kernel, guest.initrd)
}

/// Writes a bundle with `conf` as vms.conf and `kernel`/`initrd` as the files
/// `vmlinuz` and `initrd` its VMs name.
pub fn linux_conf_bundle(name: &str, conf: &str, kernel: &Path, initrd: &Path) -> Result<PathBuf> {
    let dir = target_dir().join("bundles");
    std::fs::create_dir_all(&dir)?;
    let conf_path = dir.join(format!("{name}.vms.conf"));
    std::fs::write(&conf_path, conf)?;
    let out = dir.join(format!("{name}.cpio"));
    bundle::write_bundle(&out, &[("vms.conf", &conf_path), ("vmlinuz", kernel), ("initrd", initrd)])?;
    Ok(out)
}

/// Checks a VM scenario's run: clean power-off, every expected line, no crash.
pub fn check(run: &Captured, scenario: &VmScenario) -> Result<(), String> {
    match run.exit_code {
        Some(0) => {}
        Some(code) => return Err(format!("QEMU exited with {code}")),
        None => return Err("timed out".into()),
    }
    for needle in scenario.expect {
        if !says(&run.output, needle) {
            return Err(format!("output lacks {needle:?}"));
        }
    }
    for bad in ["HYPERVISOR CRASH", "ERROR"] {
        if says(&run.output, bad) {
            return Err(format!("output contains {bad:?}"));
        }
    }
    if let Some(line) = run.output.lines().find(|line| line.starts_with('[') && line.contains("] FAIL")) {
        return Err(format!("a guest failed: {line}"));
    }
    if !says(&run.output, "all VMs stopped (0 failed)") {
        return Err("not every VM stopped with status 0".into());
    }
    Ok(())
}

/// Frames recycled into `vm` according to its stop line.
pub fn recycled_frames(output: &str, vm: &str) -> Option<u64> {
    let line = output.lines().find(|l| l.starts_with(&format!("vm {vm} stopped")))?;
    let after = line.split("recycled frames ").nth(1)?;
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The six capabilities of the stage-2/MTE issue, as scenarios. `{a}`/`{b}` are
/// replaced by two distinct physical CPUs.
pub fn scenarios() -> Vec<VmScenario> {
    vec![
        VmScenario {
            name: "fresh-tags",
            conf: "[vm fresh]\nimage = test-guest.bin\nboot = bare\nmemory = 64M\ncpus = {a}\nmte = on\narg = 1\n",
            expect: &["[fresh] PASS fresh-tags", "vm fresh stopped with status 0"],
        },
        VmScenario {
            name: "no-leak",
            conf: "[vm writer]\nimage = test-guest.bin\nboot = bare\nmemory = 64M\ncpus = {a}\narg = 2\n\n\
                   [vm checker]\nimage = test-guest.bin\nboot = bare\nmemory = 64M\ncpus = {b}\narg = 3\nafter = writer\n",
            expect: &["[writer] PASS leak-writer", "[checker] PASS leak-checker", "vm checker stopped with status 0"],
        },
        VmScenario {
            name: "shared-race",
            conf: "[shared race]\nsize = 16M\nmapping = 4K\n\n\
                   [vm race-a]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = {a}\narg = 4\nshared = race\n\n\
                   [vm race-b]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = {b}\narg = 5\nshared = race\n",
            expect: &["[race-a] PASS race-writer", "[race-b] PASS race-reader"],
        },
        VmScenario {
            name: "mte-regs",
            // The shared region ties the two VMs together, which their events need.
            conf: "[shared sync]\nsize = 2M\n\n\
                   [vm regs-a]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = {b}\narg = 6\nshared = sync\n\n\
                   [vm regs-b]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = {b}\narg = 7\nshared = sync\n",
            expect: &["[regs-a] PASS regs-a", "[regs-b] PASS regs-b"],
        },
        VmScenario {
            name: "bad-access",
            conf: "[vm bad]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = {a}\narg = 8\n\n\
                   [vm bystander]\nimage = test-guest.bin\nboot = bare\nmemory = 64M\ncpus = {b}\narg = 1\n",
            expect: &["[bad] PASS bad-access", "[bystander] PASS fresh-tags", "injecting a synchronous external abort"],
        },
        VmScenario {
            name: "no-mte",
            conf: "[vm plain]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = {a}\nmte = off\narg = 9\n",
            expect: &["[plain] PASS no-mte", "MTE off"],
        },
    ]
}
