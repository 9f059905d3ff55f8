//! Differential scenarios (issue 10, "A faithful arm64 machine"): the conformance
//! guest (`guest-images/machine-check`) runs one case directly on bare QEMU `virt`
//! at EL1 and then, the same `Image`, under the hypervisor as a Linux-protocol VM
//! with the case as its command line. The scenario passes when both print the
//! same lines: a behaviour is right when it matches bare QEMU, and a scenario
//! that passes only under the hypervisor proves nothing.
//!
//! Cases the hypervisor does not match yet are listed in [`KNOWN_DIFFERENCES`]:
//! they still run, and are reported as `XFAIL` with their diff (not a pass, not
//! a failure). Once one matches it is reported as a failure (`XPASS`) until it is
//! taken off the list, so the list always says what is still missing.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::build::{self, target_dir};
use crate::console_log::guest_lines;
use crate::qemu::{self, Captured, Machine};

/// Every case of the guest (`guest-images/machine-check/src/cases/mod.rs`, in
/// its order); scenario `diff-<case>` runs one.
pub const CASES: &[&str] = &[
    "gic-asleep",
    "dtb",
    "sgi-burst",
    "sgi-burst-active",
    "sgi-registers",
    "lr-priority",
    "spi-recall",
    "phys-timer",
    "virt-timer-mask",
    "psci",
    "set-way",
    "debug-regs",
    "pmu",
    "sve",
    "virtio-probe",
    "exception-entry",
    "walk-abort",
];

/// A case whose two outputs differ today, and what differs (as observed).
pub struct KnownDifference {
    pub case: &'static str,
    pub observed: &'static str,
}

/// The cases the hypervisor does not match yet, each with the difference seen
/// when it was listed (bare QEMU 10.0.2 first, then the hypervisor).
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[];

/// The VM's name in the hypervisor's `vms.conf` (its lines are `[check] ...`).
const VM: &str = "check";
/// What the guest prints first and last.
const FIRST_LINE: &str = "machine-check: bootargs ";
const LAST_LINE: &str = "machine-check: done";
/// Guest RAM on both machines (bare QEMU `-m`, the VM's `memory`).
const GUEST_RAM: &str = "256M";
const BARE_TIMEOUT: Duration = Duration::from_secs(60);
const HYPERVISOR_TIMEOUT: Duration = Duration::from_secs(90);

/// QEMU `virt` without EL2 or EL3, the guest loaded as a Linux `Image` with the
/// case as its command line: the reference.
fn bare_machine(guest: &Path, case: &str) -> Machine {
    let mut machine = Machine::new(guest, 2, GUEST_RAM, true);
    machine.el2 = false;
    machine.extra_args = vec!["-append".into(), case.into()];
    machine
}

/// The `vms.conf` that boots the guest under the hypervisor: one Linux-protocol
/// VM with two vCPUs on the two CPUs and the case as its command line.
fn vms_conf(case: &str) -> String {
    format!("[vm {VM}]\nimage = machine-check.bin\nbootargs = {case}\nmemory = {GUEST_RAM}\ncpus = 0,1\n")
}

fn hypervisor_machine(hypervisor: &Path, guest: &Path, case: &str) -> Result<Machine> {
    let dir = target_dir().join("bundles");
    std::fs::create_dir_all(&dir)?;
    let bundle = dir.join(format!("diff-{case}.cpio"));
    let image = std::fs::read(guest).with_context(|| format!("reading {}", guest.display()))?;
    crate::bundle::write_bundle_bytes(
        &bundle,
        &[("vms.conf", vms_conf(case).into_bytes()), ("machine-check.bin", image)],
    )?;
    let mut machine = Machine::new(hypervisor, 2, "1G", true);
    machine.bundle = Some(bundle);
    Ok(machine)
}

/// The guest's report: its lines from the first to the last marker (to the end
/// if the last is missing), `None` if it never started.
fn report_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut lines = lines.map(str::trim_end).skip_while(|line| !line.starts_with(FIRST_LINE)).peekable();
    lines.peek()?;
    let mut report = Vec::new();
    for line in lines {
        report.push(line.to_string());
        if line == LAST_LINE {
            break;
        }
    }
    Some(report)
}

/// One side of a comparison: its report, or why there is none to compare.
fn side(run: &Captured, lines: Option<Vec<String>>, what: &str) -> Result<Vec<String>, String> {
    let lines = lines.ok_or_else(|| format!("{what}: the guest printed nothing"))?;
    match run.exit_code {
        Some(0) if lines.last().is_some_and(|l| l == LAST_LINE) => Ok(lines),
        Some(0) => Err(format!("{what}: the guest stopped before `{LAST_LINE}`")),
        Some(code) => Err(format!("{what}: QEMU exited with {code}")),
        None => Err(format!("{what}: timed out")),
    }
}

/// A line-by-line diff (longest common subsequence): `  ` both, `- ` bare QEMU
/// only, `+ ` hypervisor only.
pub fn diff(bare: &[String], hypervisor: &[String]) -> Vec<String> {
    let (n, m) = (bare.len(), hypervisor.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if bare[i] == hypervisor[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && bare[i] == hypervisor[j] {
            out.push(format!("  {}", bare[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || common[i][j + 1] >= common[i + 1][j]) {
            out.push(format!("+ {}", hypervisor[j]));
            j += 1;
        } else {
            out.push(format!("- {}", bare[i]));
            i += 1;
        }
    }
    out
}

/// How a case came out.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same lines on both machines.
    Match,
    /// Different, and listed in [`KNOWN_DIFFERENCES`]: the diff.
    KnownDifference(Vec<String>),
    /// Different and not listed: the diff.
    Differs(Vec<String>),
    /// Listed in [`KNOWN_DIFFERENCES`] but the same on both machines now.
    UnexpectedMatch,
    /// A run did not finish cleanly: nothing to compare.
    Broken(String),
}

pub fn verdict(case: &str, bare: Result<Vec<String>, String>, hypervisor: Result<Vec<String>, String>) -> Verdict {
    let known = KNOWN_DIFFERENCES.iter().any(|k| k.case == case);
    let (bare, hypervisor) = match (bare, hypervisor) {
        (Ok(bare), Ok(hypervisor)) => (bare, hypervisor),
        (Err(why), _) | (_, Err(why)) => return Verdict::Broken(why),
    };
    match (bare == hypervisor, known) {
        (true, false) => Verdict::Match,
        (true, true) => Verdict::UnexpectedMatch,
        (false, true) => Verdict::KnownDifference(diff(&bare, &hypervisor)),
        (false, false) => Verdict::Differs(diff(&bare, &hypervisor)),
    }
}

/// Runs the differential scenarios `filter` selects, printing a verdict line
/// each and counting passes and failures (a known difference is neither).
pub fn run(filter: Option<&str>, hypervisor: &Path, logs: &Path, passed: &mut u32, failed: &mut u32) -> Result<()> {
    let selected: Vec<&str> =
        CASES.iter().copied().filter(|case| filter.is_none_or(|f| format!("diff-{case}").contains(f))).collect();
    if selected.is_empty() {
        return Ok(());
    }
    let guest = build::build_machine_check()?;
    let started = Instant::now();
    let mut known = 0;
    for case in selected {
        let name = format!("diff-{case}");
        let case_started = Instant::now();
        let bare_log = logs.join(format!("{name}.bare.log"));
        let bare = qemu::run_captured(&bare_machine(&guest, case), BARE_TIMEOUT, &bare_log)?;
        let hypervisor_log = logs.join(format!("{name}.log"));
        let under =
            qemu::run_captured(&hypervisor_machine(hypervisor, &guest, case)?, HYPERVISOR_TIMEOUT, &hypervisor_log)?;
        let bare_side = side(&bare, report_lines(bare.output.lines()), "bare QEMU");
        let hypervisor_side = side(&under, report_lines(guest_lines(&under.output, VM)), "under the hypervisor");
        let seconds = case_started.elapsed().as_secs_f64();
        match verdict(case, bare_side, hypervisor_side) {
            Verdict::Match => {
                *passed += 1;
                println!("PASS {name} ({seconds:.1} s)");
            }
            Verdict::KnownDifference(diff) => {
                known += 1;
                let observed = KNOWN_DIFFERENCES.iter().find(|k| k.case == case).map_or("", |k| k.observed);
                println!("XFAIL {name} ({seconds:.1} s): a known difference ({observed}); - bare QEMU, + hypervisor:");
                print_diff(&diff);
            }
            Verdict::Differs(diff) => {
                *failed += 1;
                println!(
                    "FAIL {name} ({seconds:.1} s): the hypervisor differs from bare QEMU; - bare QEMU, + hypervisor:"
                );
                print_diff(&diff);
                println!("    logs: {}, {}", bare_log.display(), hypervisor_log.display());
            }
            Verdict::UnexpectedMatch => {
                *failed += 1;
                println!(
                    "FAIL {name} ({seconds:.1} s): XPASS: now the same as bare QEMU; take it off \
                     differential::KNOWN_DIFFERENCES"
                );
            }
            Verdict::Broken(why) => {
                *failed += 1;
                println!(
                    "FAIL {name} ({seconds:.1} s): {why}; logs: {}, {}",
                    bare_log.display(),
                    hypervisor_log.display()
                );
            }
        }
    }
    println!(
        "differential: {known} known difference(s) (XFAIL) in {:.1} s; the list is differential::KNOWN_DIFFERENCES",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_diff(diff: &[String]) {
    for line in diff {
        println!("    {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn cases_are_the_guests_in_its_order() {
        let path = build::workspace_root().join("guest-images/machine-check/src/cases/mod.rs");
        let source = std::fs::read_to_string(path).unwrap();
        let guest: Vec<&str> = source
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Case { name: \""))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(guest, CASES);
    }

    #[test]
    fn known_differences_name_cases_once() {
        for (i, known) in KNOWN_DIFFERENCES.iter().enumerate() {
            assert!(CASES.contains(&known.case), "{} is no case", known.case);
            assert!(!known.observed.is_empty(), "{} says nothing about what differs", known.case);
            assert!(KNOWN_DIFFERENCES[..i].iter().all(|k| k.case != known.case), "{} listed twice", known.case);
        }
    }

    #[test]
    fn report_runs_from_the_first_marker_to_the_last() {
        let output = "qemu: warning\nmachine-check: bootargs \"x\"\nx: 1  \nmachine-check: done\nafter\n";
        assert_eq!(
            report_lines(output.lines()),
            Some(lines("machine-check: bootargs \"x\"\nx: 1\nmachine-check: done"))
        );
        assert_eq!(report_lines("nothing\n".lines()), None);
        assert_eq!(
            report_lines("machine-check: bootargs \"x\"\nx: 1\n".lines()),
            Some(lines("machine-check: bootargs \"x\"\nx: 1"))
        );
    }

    #[test]
    fn diff_marks_each_sides_lines() {
        let bare = lines("a\nb\nc\nd");
        let hypervisor = lines("a\nB\nc\nd\ne");
        assert_eq!(diff(&bare, &hypervisor), lines("  a\n+ B\n- b\n  c\n  d\n+ e"));
        assert_eq!(diff(&bare, &bare), lines("  a\n  b\n  c\n  d"));
        assert_eq!(diff(&[], &lines("x")), lines("+ x"));
    }

    #[test]
    fn verdicts() {
        let report = lines("machine-check: bootargs \"dtb\"\nmachine-check: done");
        let other = lines("machine-check: bootargs \"dtb\"\nextra\nmachine-check: done");
        assert_eq!(verdict("dtb", Ok(report.clone()), Ok(report.clone())), Verdict::Match);
        assert!(matches!(verdict("dtb", Ok(report.clone()), Ok(other)), Verdict::Differs(_)));
        assert_eq!(
            verdict("dtb", Err("bare QEMU: timed out".into()), Ok(report)),
            Verdict::Broken("bare QEMU: timed out".into())
        );
        if let Some(known) = KNOWN_DIFFERENCES.first() {
            let a = lines("a");
            assert_eq!(verdict(known.case, Ok(a.clone()), Ok(a.clone())), Verdict::UnexpectedMatch);
            assert!(matches!(verdict(known.case, Ok(a), Ok(lines("b"))), Verdict::KnownDifference(_)));
        }
    }

    #[test]
    fn the_vm_boots_the_case_as_its_whole_command_line() {
        assert_eq!(
            vms_conf("sgi-burst"),
            "[vm check]\nimage = machine-check.bin\nbootargs = sgi-burst\nmemory = 256M\ncpus = 0,1\n"
        );
        let machine = bare_machine(Path::new("mc.bin"), "psci");
        assert_eq!(machine.machine_arg(), "virt,virtualization=off,mte=on,gic-version=3");
        assert_eq!(machine.extra_args, ["-append", "psci"]);
    }
}
