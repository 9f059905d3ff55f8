//! Booting the hypervisor under QEMU `virt` (EL2, GICv3, MTE).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use wait_timeout::ChildExt;

use crate::build::{self, BuildOptions, workspace_root};
use crate::options::LinuxGuestOptions;

pub const QEMU: &str = "qemu-system-aarch64";
/// QEMU 7.2's MTE emulation is broken (tags per page); 10.0 is what we test with.
const MIN_QEMU_MAJOR: u32 = 10;

#[derive(Args, Clone, Debug)]
pub struct QemuOptions {
    #[command(flatten)]
    pub build: BuildOptions,
    /// Number of CPUs.
    #[arg(long, default_value_t = 4)]
    pub smp: u32,
    /// RAM size (QEMU syntax: 2G, 512M).
    #[arg(long, default_value = "2G")]
    pub mem: String,
    /// Boot a machine without MTE (`mte=off`).
    #[arg(long)]
    pub no_mte: bool,
    /// Wait for GDB on tcp::1234 before starting.
    #[arg(long)]
    pub gdb: bool,
    /// Kill QEMU and fail after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Install QEMU 10 (bookworm-backports) and the other host packages first (needs root).
    #[arg(long)]
    pub install_deps: bool,
    /// Run the VMs described by this vms.conf instead of one Linux guest. Images are
    /// looked up next to it; the built bare-metal test guest is available as `test-guest.bin`.
    #[arg(long, value_name = "VMS_CONF", conflicts_with_all = ["kernel", "initrd", "append"])]
    pub vms: Option<PathBuf>,
    #[command(flatten)]
    pub guest: LinuxGuestOptions,
    /// Guest RAM (default: half the machine's).
    #[arg(long)]
    pub guest_mem: Option<String>,
    /// Boot only the hypervisor (platform summary, then power off), no guest.
    #[arg(long)]
    pub no_guest: bool,
}

/// Half of a QEMU memory size, in vms.conf syntax, rounded down to 2 MiB.
pub fn half_memory(mem: &str) -> Result<String> {
    let (number, unit) = mem.split_at(mem.find(|c: char| !c.is_ascii_digit()).unwrap_or(mem.len()));
    let number: u64 = number.parse().with_context(|| format!("bad --mem {mem}"))?;
    let mib = match unit {
        "G" | "g" => number * 1024,
        "M" | "m" | "" => number,
        _ => bail!("bad --mem {mem}: use M or G"),
    };
    Ok(format!("{}M", (mib / 2) & !1))
}

/// One QEMU invocation.
#[derive(Clone, Debug)]
pub struct Machine {
    pub image: PathBuf,
    pub smp: u32,
    pub mem: String,
    pub mte: bool,
    /// `virtualization=on`: enter at EL2. Off only to test the refusal.
    pub el2: bool,
    pub gdb: bool,
    /// Replaces QEMU's generated DTB.
    pub dtb: Option<PathBuf>,
    /// The VM bundle (vms.conf + images), passed as the initrd.
    pub bundle: Option<PathBuf>,
    pub extra_args: Vec<String>,
}

impl Machine {
    pub fn new(image: &Path, smp: u32, mem: &str, mte: bool) -> Self {
        Self {
            image: image.to_path_buf(),
            smp,
            mem: mem.to_string(),
            mte,
            el2: true,
            gdb: false,
            dtb: None,
            bundle: None,
            extra_args: Vec::new(),
        }
    }

    pub fn machine_arg(&self) -> String {
        format!(
            "virt,virtualization={},mte={},gic-version=3",
            if self.el2 { "on" } else { "off" },
            if self.mte { "on" } else { "off" }
        )
    }

    pub fn command(&self) -> Command {
        let mut qemu = Command::new(QEMU);
        qemu.args(["-M", &self.machine_arg(), "-cpu", "max", "-nographic", "-no-reboot"])
            .args(["-smp", &self.smp.to_string(), "-m", &self.mem])
            .arg("-kernel")
            .arg(&self.image);
        // No semihosting: QEMU would answer it from EL1 too, handing every guest the
        // host's files. The hypervisor says how the run ended on its console
        // (`console_log::exit_status`).
        if let Some(bundle) = &self.bundle {
            qemu.arg("-initrd").arg(bundle);
        }
        if let Some(dtb) = &self.dtb {
            qemu.arg("-dtb").arg(dtb);
        }
        if self.gdb {
            qemu.args(["-s", "-S"]);
        }
        qemu.args(&self.extra_args);
        qemu
    }
}

/// Fails with installation instructions unless a new enough QEMU is on PATH.
pub fn ensure_qemu() -> Result<()> {
    let output = Command::new(QEMU).arg("--version").output();
    let install_hint = "install QEMU 10 from bookworm-backports: run `sudo bash .ci/install-deps.sh` \
         (or `cargo xtask qemu --install-deps` as root), which adds the suite with apt's existing \
         Debian mirror and runs `apt-get install -t bookworm-backports qemu-system-arm`";
    let output = match output {
        Ok(o) if o.status.success() => o,
        _ => bail!("{QEMU} not found; {install_hint}"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let major =
        text.split("version ").nth(1).and_then(|v| v.split('.').next()).and_then(|m| m.trim().parse::<u32>().ok());
    match major {
        Some(m) if m >= MIN_QEMU_MAJOR => Ok(()),
        _ => {
            bail!("{} is too old for MTE (need {MIN_QEMU_MAJOR}.x); {install_hint}", text.lines().next().unwrap_or(""))
        }
    }
}

pub fn install_deps() -> Result<()> {
    let script = workspace_root().join(".ci/install-deps.sh");
    let status = Command::new("bash").arg(&script).status().context("running install-deps.sh")?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    Ok(())
}

/// `cargo xtask qemu`: console on the terminal; exit status is QEMU's (124 on timeout).
pub fn run_interactive(options: &QemuOptions) -> Result<i32> {
    if options.install_deps {
        install_deps()?;
    }
    ensure_qemu()?;
    let image = build::build(&options.build)?;
    let mut machine = Machine::new(&image.flat, options.smp, &options.mem, !options.no_mte);
    machine.gdb = options.gdb;
    if let Some(conf) = &options.vms {
        machine.bundle = Some(crate::vm_scenarios::bundle_from_conf(conf)?);
    } else if !options.no_guest {
        let memory = match &options.guest_mem {
            Some(m) => m.clone(),
            None => half_memory(&options.mem)?,
        };
        machine.bundle = Some(options.guest.bundle("qemu", options.smp, &memory)?);
    }
    if options.gdb {
        eprintln!("xtask: waiting for GDB: gdb-multiarch {} -ex 'target remote :1234'", image.elf.display());
    }
    // The console passes through xtask, which watches it for the hypervisor's
    // power-off line (the exit status) while the user sees and types as usual.
    let mut child = machine.command().stdout(Stdio::piped()).spawn().context("starting QEMU")?;
    let mut stdout = child.stdout.take().context("QEMU stdout")?;
    let tee = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        let mut terminal = std::io::stdout();
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let _ = terminal.write_all(&buffer[..n]);
            let _ = terminal.flush();
            seen.extend_from_slice(&buffer[..n]);
            // Only the last lines matter for the verdict; keep memory bounded.
            if seen.len() > 1 << 20 {
                seen.drain(..seen.len() - (1 << 16));
            }
        }
        String::from_utf8_lossy(&seen).replace('\r', "")
    });
    let status = if options.timeout == 0 {
        child.wait()?
    } else {
        match child.wait_timeout(Duration::from_secs(options.timeout))? {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("\nxtask: QEMU killed after the {} s timeout", options.timeout);
                return Ok(124);
            }
        }
    };
    let output = tee.join().unwrap_or_default();
    let code = crate::console_log::exit_status(status.code().unwrap_or(1), &output);
    if code != 0 && status.code() == Some(0) {
        eprintln!("xtask: the hypervisor reported a failure (see above): exit status {code}");
    }
    Ok(code)
}

/// Waits up to `timeout` for QEMU; kills it then. Its exit code, or `None` if killed.
pub fn wait_or_kill(child: &mut std::process::Child, timeout: Duration) -> Result<Option<i32>> {
    Ok(match child.wait_timeout(timeout)? {
        Some(status) => Some(status.code().unwrap_or(-1)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    })
}

/// What a captured run produced.
pub struct Captured {
    /// QEMU's exit code; `None` if it was killed at the timeout.
    pub exit_code: Option<i32>,
    pub output: String,
    pub elapsed: Duration,
}

/// Runs `machine` with its console captured to `log`, killing it after `timeout`.
pub fn run_captured(machine: &Machine, timeout: Duration, log: &Path) -> Result<Captured> {
    run_logged(machine, timeout, log, false)
}

/// [`run_captured`], while a byte of console input arrives every millisecond (to
/// race console input delivery against VM teardown).
pub fn run_feeding_input(machine: &Machine, timeout: Duration, log: &Path) -> Result<Captured> {
    run_logged(machine, timeout, log, true)
}

fn run_logged(machine: &Machine, timeout: Duration, log: &Path, feed_input: bool) -> Result<Captured> {
    use std::io::Write;
    let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let started = Instant::now();
    let stdin = if feed_input { Stdio::piped() } else { Stdio::null() };
    let mut child =
        machine.command().stdin(stdin).stdout(file.try_clone()?).stderr(file).spawn().context("starting QEMU")?;
    let feeder = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            // Stops when QEMU exits (the pipe breaks).
            while stdin.write_all(b"x").and_then(|()| stdin.flush()).is_ok() {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    });
    let exit_code = wait_or_kill(&mut child, timeout)?;
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let output = String::from_utf8_lossy(&std::fs::read(log)?).replace('\r', "");
    let exit_code = exit_code.map(|code| crate::console_log::exit_status(code, &output));
    Ok(Captured { exit_code, output, elapsed: started.elapsed() })
}

/// Runs `machine` like a person at its console: waits for `prompt`, types each of
/// `lines`, waiting for the prompt again after each, and returns what it printed.
/// QEMU is killed after `timeout`.
pub fn run_typing(machine: &Machine, prompt: &str, lines: &[&str], timeout: Duration, log: &Path) -> Result<Captured> {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let started = Instant::now();
    let mut child = machine
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting QEMU")?;
    let output = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().context("QEMU stdout")?;
    let reader = {
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                output.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]).replace('\r', ""));
            }
        })
    };
    let mut stdin = child.stdin.take().context("QEMU stdin")?;
    for (answered, line) in lines.iter().enumerate() {
        // Wait for one more prompt than we have answered.
        while started.elapsed() < timeout && output.lock().unwrap().matches(prompt).count() <= answered {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\r")?;
        stdin.flush()?;
    }
    let exit_code = wait_or_kill(&mut child, timeout.saturating_sub(started.elapsed()))?;
    let _ = reader.join();
    let output = output.lock().unwrap().clone();
    let exit_code = exit_code.map(|code| crate::console_log::exit_status(code, &output));
    std::fs::write(log, &output).with_context(|| format!("writing {}", log.display()))?;
    Ok(Captured { exit_code, output, elapsed: started.elapsed() })
}
