//! `cargo xtask bench`: what the hypervisor costs a Linux guest, measured in one run
//! against the same kernel and initramfs booted directly by QEMU (`-M virt,mte=on`,
//! EL1, no hypervisor). Wall time under TCG is noisy, so runs alternate and the
//! report gives medians and their ratio, next to deterministic counts from the
//! hypervisor (exits, stage-2 faults, bytes sanitised).
//!
//! Before the boots (or alone, `--counts-only`), the per-operation counts of issue
//! 12: the conformance guest's `bench` case (`guest-images/machine-check`,
//! `cases/bench.rs`) times loops of exits with the generic counter under
//! `-icount shift=0`, where the counter counts instructions, so the figures do not
//! drift with the machine's load. It runs under the hypervisor and on bare QEMU
//! (EL1, where nothing traps: the guest-side floor); the table goes to the
//! terminal and [`COUNTS_JSON`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use wait_timeout::ChildExt;

use crate::build::{self, BuildOptions, target_dir};
use crate::console_log::guest_lines;
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
    /// Only the per-operation instruction counts (machine-check `bench` under
    /// `-icount shift=0`), not the Linux boots.
    #[arg(long)]
    pub counts_only: bool,
}

/// Where the per-operation counts are written, under the target directory.
pub const COUNTS_JSON: &str = "bench/counts.json";

/// The operations machine-check's `bench` case prints (`bench <name>: <count>`),
/// in its order, and what each is.
const OPERATIONS: &[(&str, &str)] = &[
    ("hvc-psci-version", "null HVC round trip (PSCI_VERSION, with the mov of its ID)"),
    ("mmio-read-pl011-uartfr", "emulated MMIO read, PL011 UARTFR"),
    ("mmio-read-gicd-typer", "emulated MMIO read, vGIC GICD_TYPER"),
    ("sysreg-read-id-aa64pfr0", "trapped ID register read, ID_AA64PFR0_EL1 (TID3)"),
];
/// The loop overhead the guest subtracts, printed as `bench loop: <count>`: its
/// `subs` and `b.ne` are 2 instructions exactly when icount is on.
const LOOP: &str = "loop";
const LOOP_INSTRUCTIONS: u64 = 2;
/// The counter frequency the guest converted with, `bench CNTFRQ_EL0: <Hz>`.
const COUNTER_FREQUENCY: &str = "CNTFRQ_EL0";

/// The VM's name in the counts run's `vms.conf`.
const COUNTS_VM: &str = "bench";
const COUNTS_TIMEOUT: Duration = Duration::from_secs(120);

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

/// The `bench <name>: <count>` lines of a run, by name.
fn bench_lines<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    lines
        .filter_map(|line| line.trim_end().strip_prefix("bench ")?.split_once(": "))
        .filter_map(|(name, count)| Some((name.to_string(), count.parse().ok()?)))
        .collect()
}

/// One side's counts, checked: every operation there, and the loop at the count
/// that shows icount was on.
fn checked_counts(counts: BTreeMap<String, u64>, what: &str, log: &Path) -> Result<BTreeMap<String, u64>> {
    for name in OPERATIONS.iter().map(|(name, _)| *name).chain([LOOP, COUNTER_FREQUENCY]) {
        ensure!(counts.contains_key(name), "{what}: no `bench {name}` line; log: {}", log.display());
    }
    ensure!(
        counts[LOOP] == LOOP_INSTRUCTIONS,
        "{what}: the empty loop took {} instructions per iteration, not {LOOP_INSTRUCTIONS}: icount was not in \
         effect; log: {}",
        counts[LOOP],
        log.display()
    );
    Ok(counts)
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The counts file: the QEMU that ran them, the counter frequency, and per
/// operation the count under the hypervisor and on bare QEMU.
fn counts_json(
    qemu_version: &str,
    unix_time: u64,
    hypervisor: &BTreeMap<String, u64>,
    bare: &BTreeMap<String, u64>,
) -> String {
    let operations: Vec<String> = OPERATIONS
        .iter()
        .map(|(name, what)| {
            format!(
                "    {{ \"name\": {}, \"what\": {}, \"hypervisor\": {}, \"bare_qemu\": {} }}",
                json_string(name),
                json_string(what),
                hypervisor[*name],
                bare[*name]
            )
        })
        .collect();
    format!(
        "{{\n  \"unit\": \"instructions per operation\",\n  \"qemu\": {},\n  \"icount_shift\": 0,\n  \
         \"cntfrq_el0\": {},\n  \"unix_time\": {unix_time},\n  \"loop_overhead\": {},\n  \
         \"operations\": [\n{}\n  ]\n}}\n",
        json_string(qemu_version),
        hypervisor[COUNTER_FREQUENCY],
        hypervisor[LOOP],
        operations.join(",\n")
    )
}

/// The `vms.conf` of the counts run: one vCPU on CPU 0, so nothing else runs
/// on the machine while the loops count (an idle CPU's instructions would
/// advance the shared icount clock too).
fn counts_vms_conf() -> String {
    format!("[vm {COUNTS_VM}]\nimage = machine-check.bin\nbootargs = bench\nmemory = 256M\ncpus = 0\n")
}

/// Runs machine-check `bench` under the hypervisor and on bare QEMU, both with
/// `-icount shift=0` and one CPU, prints the table and writes [`COUNTS_JSON`].
fn run_counts(hypervisor: &Path) -> Result<()> {
    let guest = build::build_machine_check()?;
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let icount = ["-icount".to_string(), "shift=0".to_string()];

    let mut bare = Machine::new(&guest, 1, "256M", true);
    bare.el2 = false;
    bare.extra_args = [vec!["-append".to_string(), "bench".to_string()], icount.to_vec()].concat();
    let bare_log = dir.join("counts-bare.log");
    let bare_run = qemu::run_captured(&bare, COUNTS_TIMEOUT, &bare_log)?;
    let bare_counts = checked_counts(bench_lines(bare_run.output.lines()), "bare QEMU", &bare_log)?;

    let bundle = dir.join("counts.cpio");
    let image = std::fs::read(&guest).with_context(|| format!("reading {}", guest.display()))?;
    crate::bundle::write_bundle_bytes(
        &bundle,
        &[("vms.conf", counts_vms_conf().into_bytes()), ("machine-check.bin", image)],
    )?;
    let mut hosted = Machine::new(hypervisor, 1, "1G", true);
    hosted.bundle = Some(bundle);
    hosted.extra_args = icount.to_vec();
    let hosted_log = dir.join("counts.log");
    let hosted_run = qemu::run_captured(&hosted, COUNTS_TIMEOUT, &hosted_log)?;
    let hosted_counts =
        checked_counts(bench_lines(guest_lines(&hosted_run.output, COUNTS_VM)), "under the hypervisor", &hosted_log)?;

    let qemu_version = qemu_version()?;
    println!(
        "instructions per operation, -icount shift=0 (CNTFRQ_EL0 {} Hz), {qemu_version}:",
        hosted_counts[COUNTER_FREQUENCY]
    );
    println!("  {:<62} {:>12} {:>10}", "operation", "hypervisor", "bare QEMU");
    for (name, what) in OPERATIONS {
        println!("  {:<62} {:>12} {:>10}", what, hosted_counts[*name], bare_counts[*name]);
    }
    println!("  (loop overhead {} per iteration, subtracted; bare QEMU traps none of these)", hosted_counts[LOOP]);
    let unix_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let json: PathBuf = target_dir().join(COUNTS_JSON);
    std::fs::write(&json, counts_json(&qemu_version, unix_time, &hosted_counts, &bare_counts))
        .with_context(|| format!("writing {}", json.display()))?;
    println!("written to {}", json.display());
    Ok(())
}

/// QEMU's `--version` first line.
fn qemu_version() -> Result<String> {
    let output = Command::new(QEMU).arg("--version").output().context("running QEMU --version")?;
    Ok(String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or("").trim().to_string())
}

pub fn run(options: &BenchOptions) -> Result<i32> {
    qemu::ensure_qemu()?;
    let hypervisor = build::build(&BuildOptions { release: true, log: "warn".into(), ..Default::default() })?;
    run_counts(&hypervisor.flat)?;
    if options.counts_only {
        return Ok(0);
    }
    println!();
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

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "[bench] machine-check: bootargs \"bench\"\n[bench] bench CNTFRQ_EL0: 1000000000\n\
                       [bench] bench loop: 2\n[bench] bench hvc-psci-version: 469\n\
                       [bench] bench mmio-read-pl011-uartfr: 757\n[bench] bench mmio-read-gicd-typer: 769\n\
                       [bench] bench sysreg-read-id-aa64pfr0: 538\n[bench] bench: not a count\n\
                       bench hvc-psci-version: 1 (the hypervisor's line, not the guest's)\n";

    #[test]
    fn counts_are_the_guests_bench_lines() {
        let counts = bench_lines(guest_lines(RUN, COUNTS_VM));
        assert_eq!(counts["hvc-psci-version"], 469);
        assert_eq!(counts[COUNTER_FREQUENCY], 1_000_000_000);
        assert_eq!(counts.len(), OPERATIONS.len() + 2);
        assert!(checked_counts(counts, "test", Path::new("log")).is_ok());
    }

    #[test]
    fn counts_without_icount_or_an_operation_are_refused() {
        let mut counts = bench_lines(guest_lines(RUN, COUNTS_VM));
        counts.insert(LOOP.into(), 7);
        assert!(checked_counts(counts.clone(), "test", Path::new("log")).is_err());
        counts.insert(LOOP.into(), LOOP_INSTRUCTIONS);
        counts.remove("mmio-read-gicd-typer");
        assert!(checked_counts(counts, "test", Path::new("log")).is_err());
    }

    #[test]
    fn json_has_every_operation_on_both_sides() {
        let hypervisor = bench_lines(guest_lines(RUN, COUNTS_VM));
        let bare: BTreeMap<String, u64> = hypervisor.keys().map(|name| (name.clone(), 1)).collect();
        let json = counts_json("QEMU \"10\"", 5, &hypervisor, &bare);
        assert!(json.contains("\"qemu\": \"QEMU \\\"10\\\"\""));
        assert!(json.contains(
            "{ \"name\": \"mmio-read-pl011-uartfr\", \"what\": \"emulated MMIO read, PL011 UARTFR\", \
             \"hypervisor\": 757, \"bare_qemu\": 1 }"
        ));
        assert_eq!(json.matches("\"name\"").count(), OPERATIONS.len());
        assert!(json.contains("\"cntfrq_el0\": 1000000000,") && json.contains("\"unix_time\": 5,"));
        assert_eq!(json_string("a\\b\n"), "\"a\\\\b\\u000a\"");
    }

    #[test]
    fn the_counts_vm_has_one_vcpu_and_the_bench_case() {
        assert_eq!(
            counts_vms_conf(),
            "[vm bench]\nimage = machine-check.bin\nbootargs = bench\nmemory = 256M\ncpus = 0\n"
        );
    }
}
