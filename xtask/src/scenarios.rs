//! `cargo xtask test`: host unit tests, then QEMU scenarios that boot the real
//! hypervisor and assert on what it printed and how QEMU exited.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::build::{self, BuildOptions, target_dir, workspace_root};
use crate::fixtures;
use crate::qemu::{self, Captured, Machine};

#[derive(Args, Clone, Debug)]
pub struct TestOptions {
    /// Only run scenarios whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Skip the host unit tests.
    #[arg(long)]
    pub no_unit: bool,
}

/// Which build of the hypervisor a scenario boots.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    Normal,
    InjectEl2Fault,
}

type Check = fn(&Captured) -> Result<(), String>;

struct Scenario {
    name: &'static str,
    build: Build,
    machine: fn(PathBuf) -> Machine,
    timeout_secs: u64,
    check: Check,
}

/// `needle` was printed by the hypervisor, or (written `[vm] text`) by that VM.
fn expect(output: &str, needle: &str) -> Result<(), String> {
    match crate::console_log::says(output, needle) {
        true => Ok(()),
        false => Err(format!("output lacks {needle:?}")),
    }
}

fn expect_exit(run: &Captured, code: i32) -> Result<(), String> {
    match run.exit_code {
        Some(c) if c == code => Ok(()),
        Some(c) => Err(format!("QEMU exited with {c}, expected {code}")),
        None => Err("timed out".into()),
    }
}

fn expect_clean_boot(run: &Captured, cpus: u32, mte: bool) -> Result<(), String> {
    expect_exit(run, 0)?;
    expect(&run.output, "--- platform summary ---")?;
    expect(&run.output, &format!("CPUs online: {cpus} of {cpus}"))?;
    expect(&run.output, "GICv3")?;
    expect(&run.output, "PL011")?;
    expect(&run.output, "RAM")?;
    expect(&run.output, "DC ZVA/GZVA block 64 bytes")?;
    for cpu in 1..cpus {
        expect(&run.output, &format!("cpu{cpu} INFO  online (MPIDR {cpu:#x})"))?;
    }
    if mte {
        expect(&run.output, "MTE: MTE3")?;
        expect(&run.output, "STGM block 256 bytes")?;
    } else {
        expect(&run.output, "MTE: unavailable")?;
    }
    for bad in ["HYPERVISOR CRASH", "ERROR", "WARN"] {
        if crate::console_log::says(&run.output, bad) {
            return Err(format!("output contains {bad:?}"));
        }
    }
    Ok(())
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "boot-1cpu-mte",
            build: Build::Normal,
            machine: |image| Machine::new(&image, 1, "1G", true),
            timeout_secs: 60,
            check: |run| expect_clean_boot(run, 1, true),
        },
        Scenario {
            name: "boot-4cpu-mte",
            build: Build::Normal,
            machine: |image| Machine::new(&image, 4, "2G", true),
            timeout_secs: 60,
            check: |run| expect_clean_boot(run, 4, true),
        },
        Scenario {
            name: "boot-1cpu-no-mte",
            build: Build::Normal,
            machine: |image| Machine::new(&image, 1, "1G", false),
            timeout_secs: 60,
            check: |run| expect_clean_boot(run, 1, false),
        },
        Scenario {
            name: "boot-4cpu-no-mte",
            build: Build::Normal,
            machine: |image| Machine::new(&image, 4, "2G", false),
            timeout_secs: 60,
            check: |run| expect_clean_boot(run, 4, false),
        },
        Scenario {
            name: "el2-fault-dump",
            build: Build::InjectEl2Fault,
            machine: |image| Machine::new(&image, 2, "1G", true),
            timeout_secs: 60,
            check: |run| {
                expect_exit(run, 1)?;
                expect(&run.output, "=== HYPERVISOR CRASH on CPU 0: synchronous exception from EL2 (SP_ELx) ===")?;
                expect(&run.output, "data abort from the same EL")?;
                expect(&run.output, "write, translation fault level 0")?;
                expect(&run.output, "FAR_EL2 0x0000dead00000000")?;
                expect(&run.output, " x0 ")?;
                expect(&run.output, " x30 ")?;
                expect(&run.output, "=== end of crash report ===")
            },
        },
        Scenario {
            name: "refuse-el1-entry",
            build: Build::Normal,
            machine: |image| Machine { el2: false, ..Machine::new(&image, 1, "1G", true) },
            timeout_secs: 5,
            check: |run| {
                expect(&run.output, "error: entered at EL1; the hypervisor must be started at EL2")?;
                match run.exit_code {
                    None => Ok(()), // halted, as documented; the harness kills it
                    Some(code) => Err(format!("expected a halt, QEMU exited with {code}")),
                }
            },
        },
    ]
}

/// A Linux guest booted under the hypervisor, non-interactively.
struct LinuxScenario {
    name: &'static str,
    smp: u32,
    append: &'static str,
    expect: &'static [&'static str],
}

const LINUX_SCENARIOS: &[LinuxScenario] = &[
    LinuxScenario {
        name: "linux-boot-smp1",
        smp: 1,
        append: "autopoweroff=1",
        expect: &["[linux] mte-hypervisor guest: init reached", "[linux] mte-hypervisor guest: mte on 1 of 1 CPUs"],
    },
    LinuxScenario {
        name: "linux-boot-smp4",
        smp: 4,
        append: "autopoweroff=1",
        expect: &["[linux] smp: Brought up 1 node, 4 CPUs", "[linux] mte-hypervisor guest: mte on 4 of 4 CPUs"],
    },
    LinuxScenario {
        name: "linux-mte-check-smp2",
        smp: 2,
        append: "mtecheck=1",
        expect: &["[linux] mte-check: PASS", "[linux] mte-hypervisor guest: mte-check exit 0"],
    },
    LinuxScenario {
        name: "linux-reboot-smp2",
        smp: 2,
        append: "reboottest=1",
        expect: &[
            "[linux] mte-hypervisor guest: rebooting",
            "vm linux restarting (SYSTEM_RESET) with fresh memory",
            "[linux] mte-hypervisor guest: boot count 1",
            "[linux] mte-hypervisor guest: powering off after a reboot",
        ],
    },
];

fn check_linux(run: &Captured, scenario: &LinuxScenario) -> Result<(), String> {
    expect_exit(run, 0)?;
    for needle in scenario.expect {
        expect(&run.output, needle)?;
    }
    expect(&run.output, "all VMs stopped (0 failed)")?;
    for bad in ["HYPERVISOR CRASH", "[linux] Kernel panic", "[linux] Internal error", "[linux] mte-check: FAIL"] {
        if crate::console_log::says(&run.output, bad) {
            return Err(format!("output contains {bad:?}"));
        }
    }
    Ok(())
}

/// `cargo xtask fvp` with the real images (no model here): every file of the
/// bundle, the model command line, and the DTB's `/chosen` pointing at vms.cpio.
fn check_fvp_bundle() -> Result<()> {
    let out = target_dir().join("fvp-ci");
    let _ = std::fs::remove_dir_all(&out);
    let options = crate::fvp::FvpOptions {
        out: out.clone(),
        bl1: None,
        fip: None,
        bl2: None,
        bl31: None,
        guest: Default::default(),
        vcpus: 4,
        guest_mem: "1G".into(),
        release: false,
    };
    anyhow::ensure!(crate::fvp::run(&options)? == 0, "cargo xtask fvp failed");
    for file in ["hypervisor.bin", "vms.cpio", "fvp-base-revc.dtb", "run-fvp.sh", "README"] {
        anyhow::ensure!(out.join(file).is_file(), "bundle lacks {file}");
    }
    let script = std::fs::read_to_string(out.join("run-fvp.sh"))?;
    for needle in [
        "cluster0.memory_tagging_support_level=2",
        "cluster1.memory_tagging_support_level=2",
        "bp.dram_metadata.is_enabled=1",
        "cluster0.has_arm_v8-5=1",
        "cluster1.has_arm_v8-5=1",
        "bp.ve_sysregs.exit_on_shutdown=1",
        "cluster0.NUM_CORES=4",
        "cluster1.NUM_CORES=4",
        "bp.secureflashloader.fname=",
        "bp.flashloader0.fname=",
        "fvp-base-revc.dtb@0x82000000",
        "vms.cpio@0x90000000",
    ] {
        anyhow::ensure!(script.contains(needle), "run-fvp.sh lacks {needle}");
    }
    let dts = crate::fvp::dtb_to_dts(&out.join("fvp-base-revc.dtb"))?;
    let size = std::fs::metadata(out.join("vms.cpio"))?.len();
    let end = 0x9000_0000u64 + size;
    let expected_end = format!("0x{:x} 0x{:x}", end >> 32, end & 0xFFFF_FFFF);
    anyhow::ensure!(dts.contains("linux,initrd-start = <0x00 0x90000000>"), "/chosen lacks the initrd start");
    anyhow::ensure!(
        dts.replace("0x00 ", "0x0 ").contains(&format!("linux,initrd-end = <{expected_end}>")),
        "/chosen's initrd end does not match vms.cpio ({size} bytes)"
    );
    Ok(())
}

/// Prints a scenario's verdict line (and the end of its log on failure).
fn report(
    name: &str,
    run: &Captured,
    verdict: Result<(), String>,
    log: &std::path::Path,
    passed: &mut u32,
    failed: &mut u32,
) {
    match verdict {
        Ok(()) => {
            *passed += 1;
            println!("PASS {name} ({:.1} s)", run.elapsed.as_secs_f64());
        }
        Err(reason) => {
            *failed += 1;
            println!("FAIL {name} ({:.1} s): {reason}; log: {}", run.elapsed.as_secs_f64(), log.display());
            let tail: Vec<&str> = run.output.lines().rev().take(40).collect();
            for line in tail.into_iter().rev() {
                println!("    | {line}");
            }
        }
    }
}

fn run_unit_tests() -> Result<bool> {
    fixtures::prepare().context("preparing test fixtures")?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["test", "--package", "hypervisor", "--package", "xtask", "--package", "mte-insn"])
        .status()
        .context("running cargo test")?;
    Ok(status.success())
}

/// Clippy with warnings as errors, for the bare-metal build, both guests and the
/// host-side code, and `cargo fmt --check` (rustfmt.toml) for everything.
fn run_lints() -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = Command::new(&cargo)
        .current_dir(workspace_root())
        .args([
            "clippy",
            "--package",
            "hypervisor",
            "--package",
            "boot",
            "--package",
            "test-guest",
            "--package",
            "machine-check",
            "--target",
            build::TARGET,
        ])
        .args(["--", "-D", "warnings"])
        .status()
        .context("running cargo clippy")?;
    let host = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["clippy", "--package", "hypervisor", "--package", "xtask", "--tests", "--", "-D", "warnings"])
        .status()
        .context("running cargo clippy")?;
    let linux_guest = Command::new(&cargo)
        .current_dir(workspace_root())
        .args([
            "clippy",
            "--package",
            "mte-check",
            "--target",
            crate::guest_images::GUEST_TARGET,
            "--",
            "-D",
            "warnings",
        ])
        .status()
        .context("running cargo clippy")?;
    let format = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["fmt", "--all", "--", "--check"])
        .status()
        .context("running cargo fmt")?;
    Ok(target.success() && host.success() && linux_guest.success() && format.success())
}

pub fn run_all(options: &TestOptions) -> Result<i32> {
    qemu::ensure_qemu()?;
    // Lints build for the bare-metal and Linux guest targets before anything else does.
    build::ensure_targets()?;
    let mut passed = 0u32;
    let mut failed = 0u32;
    if !options.no_unit {
        type Step = fn() -> Result<bool>;
        let steps: [(&str, Step); 2] = [("host-unit-tests", run_unit_tests), ("lints", run_lints)];
        for (name, step) in steps {
            if step()? {
                println!("PASS {name}");
                passed += 1;
            } else {
                println!("FAIL {name}");
                failed += 1;
            }
        }
    }

    let selected: Vec<Scenario> =
        scenarios().into_iter().filter(|s| options.filter.as_deref().is_none_or(|f| s.name.contains(f))).collect();
    let mut normal = build::build(&BuildOptions { log: "info".into(), ..Default::default() })?;
    // Checking that a scenario catches its defect: boot another build (an older
    // commit's `hypervisor.bin`) under today's scenarios.
    if let Some(image) = std::env::var_os("XTASK_HYPERVISOR_IMAGE") {
        println!("note: booting {} instead of this tree's hypervisor", PathBuf::from(&image).display());
        normal.flat = PathBuf::from(image);
    }
    let fault = match selected.iter().any(|s| s.build == Build::InjectEl2Fault) {
        true => Some(build::build(&BuildOptions {
            log: "info".into(),
            features: vec!["inject-el2-fault".into()],
            ..Default::default()
        })?),
        false => None,
    };
    let logs = target_dir().join("test-logs");
    std::fs::create_dir_all(&logs)?;

    for scenario in &selected {
        let image = match scenario.build {
            Build::Normal => normal.flat.clone(),
            Build::InjectEl2Fault => fault.as_ref().expect("built above").flat.clone(),
        };
        let machine = (scenario.machine)(image);
        let log = logs.join(format!("{}.log", scenario.name));
        let run = qemu::run_captured(&machine, Duration::from_secs(scenario.timeout_secs), &log)?;
        report(scenario.name, &run, (scenario.check)(&run), &log, &mut passed, &mut failed);
    }
    let vm_scenarios: Vec<_> = crate::vm_scenarios::scenarios()
        .into_iter()
        .flat_map(|s| [(s.name, 2u32), (s.name, 4u32)])
        .filter(|(name, smp)| options.filter.as_deref().is_none_or(|f| format!("vm-{name}-smp{smp}").contains(f)))
        .collect();
    if !vm_scenarios.is_empty() {
        let test_guest = build::build_test_guest()?;
        let all = crate::vm_scenarios::scenarios();
        for (name, smp) in vm_scenarios {
            let scenario = all.iter().find(|s| s.name == name).expect("listed above");
            let label = format!("vm-{name}-smp{smp}");
            // Two distinct CPUs: the first two on -smp 2, the last two on -smp 4.
            let (a, b) = if smp == 2 { (0, 1) } else { (2, 3) };
            let conf = scenario.conf.replace("{a}", &a.to_string()).replace("{b}", &b.to_string());
            let mut machine = Machine::new(&normal.flat, smp, "1G", true);
            machine.bundle = Some(crate::vm_scenarios::bundle_for(&label, &conf, &test_guest)?);
            let log = logs.join(format!("{label}.log"));
            let run = qemu::run_captured(&machine, Duration::from_secs(120), &log)?;
            let mut verdict = crate::vm_scenarios::check(&run, scenario);
            if verdict.is_ok() && name == "no-leak" {
                verdict = match crate::vm_scenarios::recycled_frames(&run.output, "checker") {
                    Some(n) if n > 0 => Ok(()),
                    other => Err(format!("the checker VM got no recycled frames ({other:?}): the test proved nothing")),
                };
            }
            report(&label, &run, verdict, &log, &mut passed, &mut failed);
        }
    }
    // ---- isolation (issue 8): hostile guests and their neighbours, on -smp 2. ----
    let hostile: Vec<_> = crate::hostile_scenarios::scenarios()
        .into_iter()
        .filter(|s| options.filter.as_deref().is_none_or(|f| s.scenario.name.contains(f)))
        .collect();
    if !hostile.is_empty() {
        let test_guest = build::build_test_guest()?;
        for scenario in &hostile {
            let name = scenario.scenario.name;
            let mut machine = Machine::new(&normal.flat, 2, "1G", true);
            machine.bundle = Some(crate::vm_scenarios::bundle_for(name, scenario.scenario.conf, &test_guest)?);
            let log = logs.join(format!("{name}.log"));
            let timeout = Duration::from_secs(scenario.timeout_secs);
            let run = match scenario.feed_input {
                true => qemu::run_feeding_input(&machine, timeout, &log)?,
                false => qemu::run_captured(&machine, timeout, &log)?,
            };
            report(name, &run, crate::hostile_scenarios::verdict(&run, scenario), &log, &mut passed, &mut failed);
        }
    }
    // ---- a faithful machine (issue 10): the same guest on bare QEMU and under the hypervisor. ----
    crate::differential::run(options.filter.as_deref(), &normal.flat, &logs, &mut passed, &mut failed)?;
    let linux: Vec<&LinuxScenario> =
        LINUX_SCENARIOS.iter().filter(|s| options.filter.as_deref().is_none_or(|f| s.name.contains(f))).collect();
    if !linux.is_empty() {
        let kernel = crate::guest_images::default_kernel()?;
        let initrd = crate::guest_images::default_initramfs()?;
        for scenario in linux {
            let guest = crate::vm_scenarios::LinuxGuest {
                kernel: &kernel,
                initrd: &initrd,
                append: scenario.append,
                vcpus: scenario.smp,
                memory: "512M",
            };
            let mut machine = Machine::new(&normal.flat, scenario.smp, "1G", true);
            machine.bundle = Some(crate::vm_scenarios::linux_bundle(scenario.name, &guest)?);
            let log = logs.join(format!("{}.log", scenario.name));
            let run = qemu::run_captured(&machine, Duration::from_secs(300), &log)?;
            let verdict = check_linux(&run, scenario);
            report(scenario.name, &run, verdict, &log, &mut passed, &mut failed);
        }
    }
    // SMP Linux VMs whose vCPUs share two CPUs: they only all boot if sleeping
    // vCPUs wake at their timer deadlines while switched out and time slices keep
    // one VM's busy vCPU from starving the others'. Two VMs (4 vCPUs), then three
    // (6 vCPUs, issue 11's "three VMs on fewer CPUs than vCPUs").
    for (name, vms) in [
        ("linux-two-vms-shared-cpus", &[("one", "0,1"), ("two", "1,0")][..]),
        ("linux-three-vms-two-cpus", &[("one", "0,1"), ("two", "1,0"), ("three", "0,1")][..]),
    ] {
        if options.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let kernel = crate::guest_images::default_kernel()?;
        let initrd = crate::guest_images::default_initramfs()?;
        let conf: String = vms
            .iter()
            .map(|(vm, cpus)| {
                format!(
                    "[vm {vm}]\nimage = vmlinuz\ninitrd = initrd\nbootargs = console=ttyAMA0 autopoweroff=1\n\
                     memory = 384M\ncpus = {cpus}\n\n"
                )
            })
            .collect();
        let mut machine = Machine::new(&normal.flat, 2, "2G", true);
        machine.bundle = Some(crate::vm_scenarios::linux_conf_bundle(name, &conf, &kernel, &initrd)?);
        let log = logs.join(format!("{name}.log"));
        let run = qemu::run_captured(&machine, Duration::from_secs(300), &log)?;
        let mut verdict = expect_exit(&run, 0);
        for (vm, _) in vms {
            for needle in
                [format!("[{vm}] mte-hypervisor guest: mte on 2 of 2 CPUs"), format!("vm {vm} stopped with status 0")]
            {
                verdict = verdict.and_then(|()| expect(&run.output, &needle));
            }
        }
        verdict = verdict.and_then(|()| expect(&run.output, "all VMs stopped (0 failed)"));
        report(name, &run, verdict, &log, &mut passed, &mut failed);
    }
    // ---- FVP support (issue 5): the TF-A BL33 hand-off and FVP's device-tree quirks on QEMU. ----
    for (name, prepare, check) in crate::handoff::scenarios() {
        if options.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let machine = prepare(&normal.flat, &target_dir().join("fvp-scenarios"))?;
        let log = logs.join(format!("{name}.log"));
        let run = qemu::run_captured(&machine, Duration::from_secs(60), &log)?;
        report(name, &run, check(&run), &log, &mut passed, &mut failed);
    }
    // ---- end of FVP support scenarios ----
    if options.filter.as_deref().is_none_or(|f| "linux-console-shell".contains(f)) {
        let kernel = crate::guest_images::default_kernel()?;
        let initrd = crate::guest_images::default_initramfs()?;
        let guest =
            crate::vm_scenarios::LinuxGuest { kernel: &kernel, initrd: &initrd, append: "", vcpus: 2, memory: "512M" };
        let mut machine = Machine::new(&normal.flat, 2, "1G", true);
        machine.bundle = Some(crate::vm_scenarios::linux_bundle("linux-console-shell", &guest)?);
        let log = logs.join("linux-console-shell.log");
        // What a user does at the shell: typed input must reach the guest's PL011.
        let lines = ["grep -c -w mte /proc/cpuinfo", "mte-check | tail -1", "exit"];
        let run = qemu::run_typing(&machine, "~ # ", &lines, Duration::from_secs(300), &log)?;
        let verdict = expect_exit(&run, 0)
            .and_then(|()| match run.output.contains("grep -c -w mte /proc/cpuinfo\n[linux] 2\n") {
                true => Ok(()),
                false => Err("the shell did not answer 2 to `grep -c -w mte /proc/cpuinfo`".into()),
            })
            .and_then(|()| expect(&run.output, "[linux] mte-check: PASS"))
            .and_then(|()| expect(&run.output, "all VMs stopped (0 failed)"));
        report("linux-console-shell", &run, verdict, &log, &mut passed, &mut failed);
    }
    if options.filter.as_deref().is_none_or(|f| "fvp-bundle".contains(f)) {
        let started = std::time::Instant::now();
        let verdict = check_fvp_bundle();
        let elapsed = started.elapsed().as_secs_f64();
        match verdict {
            Ok(()) => {
                passed += 1;
                println!("PASS fvp-bundle ({elapsed:.1} s)");
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL fvp-bundle ({elapsed:.1} s): {reason:#}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}
