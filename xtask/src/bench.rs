//! `cargo xtask bench`: what the hypervisor costs a Linux guest, measured in one run
//! against the same kernel and initramfs booted directly by QEMU (`-M virt,mte=on`,
//! EL1, no hypervisor). Wall time under TCG is noisy, so runs alternate and the
//! report gives medians and their ratio, next to deterministic counts from the
//! hypervisor (exits, stage-2 faults, bytes sanitised).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use wait_timeout::ChildExt;

use crate::build::{self, BuildOptions};
use crate::guest_images::{self, INIT_REACHED};
use crate::qemu::{self, Machine, QEMU};
use crate::vm_scenarios::{self, LinuxGuest};

#[derive(Args, Clone, Debug)]
pub struct BenchOptions {
    /// Boots of each kind (alternating).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// vCPUs of the guest (and CPUs of the machine).
    #[arg(long, default_value_t = 2)]
    pub smp: u32,
    /// Extra guest kernel arguments for both boots (e.g. `quiet`, to take the
    /// console's trapped MMIO out of the measurement).
    #[arg(long, default_value = "")]
    pub append: String,
}

/// One boot: time to the init marker and the whole console output.
struct Boot {
    to_init: Duration,
    output: String,
}

/// Runs `command`, timestamping the first console line containing the init marker.
fn timed_boot(mut command: Command, timeout: Duration) -> Result<Boot> {
    let started = Instant::now();
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("starting QEMU")?;
    let stdout = child.stdout.take().context("QEMU stdout")?;
    let reader = std::thread::spawn(move || {
        let mut output = String::new();
        let mut to_init = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if to_init.is_none() && line.contains(INIT_REACHED) {
                to_init = Some(started.elapsed());
            }
            output.push_str(&line);
            output.push('\n');
        }
        (to_init, output)
    });
    if child.wait_timeout(timeout)?.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (to_init, output) = reader.join().map_err(|_| anyhow::anyhow!("console reader panicked"))?;
    match to_init {
        Some(to_init) => Ok(Boot { to_init, output }),
        None => bail!("the guest never reached /init; last output:\n{}", tail(&output)),
    }
}

fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A number printed after `label` on the hypervisor's VM stop line.
fn stat(output: &str, label: &str) -> Option<u64> {
    let line = output.lines().find(|l| l.starts_with("vm linux stopped"))?;
    line.split(label).nth(1)?.split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
}

pub fn run(options: &BenchOptions) -> Result<i32> {
    qemu::ensure_qemu()?;
    let hypervisor = build::build(&BuildOptions { release: true, log: "warn".into(), ..Default::default() })?;
    let kernel = guest_images::default_kernel()?;
    let initrd = guest_images::default_initramfs()?;
    let append = format!("autopoweroff=1 {}", options.append);
    let guest = LinuxGuest { kernel: &kernel, initrd: &initrd, append: &append, vcpus: options.smp, memory: "512M" };
    let bundle = vm_scenarios::linux_bundle("bench", &guest)?;
    let timeout = Duration::from_secs(300);

    let (mut direct, mut hosted) = (Vec::new(), Vec::new());
    let mut last_hosted = String::new();
    for run in 0..options.runs {
        let mut plain = Command::new(QEMU);
        plain
            .args(["-M", "virt,mte=on,gic-version=3", "-cpu", "max", "-nographic", "-no-reboot"])
            .args(["-smp", &options.smp.to_string(), "-m", "512M", "-kernel"])
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &format!("console=ttyAMA0 {append}")]);
        let boot = timed_boot(plain, timeout)?;
        direct.push(boot.to_init.as_secs_f64());

        let mut machine = Machine::new(&hypervisor.flat, options.smp, "1G", true);
        machine.bundle = Some(bundle.clone());
        let boot = timed_boot(machine.command(), timeout)?;
        hosted.push(boot.to_init.as_secs_f64());
        last_hosted = boot.output;
        println!(
            "run {}: direct {:.2} s, under the hypervisor {:.2} s",
            run + 1,
            direct.last().unwrap(),
            hosted.last().unwrap()
        );
    }
    let (d, h) = (median(direct), median(hosted));
    println!();
    println!(
        "boot to /init, {} vCPU(s), 512 MiB guest, kernel arguments \"{}\", QEMU 10 TCG, median of {}:",
        options.smp, append, options.runs
    );
    println!("  direct on QEMU (EL1, no hypervisor)   {d:.2} s");
    println!("  under the hypervisor                  {h:.2} s");
    println!("  ratio                                 {:.3}", h / d);
    println!("hypervisor counts for one boot (deterministic up to timer interrupts):");
    for (what, label) in [
        ("guest exits", "exits "),
        ("hypercalls", "hypercalls "),
        ("stage-2 faults", "stage-2 faults "),
        ("frames sanitised", "tags sanitised "),
    ] {
        if let Some(value) = stat(&last_hosted, label) {
            println!("  {what:<37} {value}");
        }
    }
    Ok(0)
}
