//! Differential scenarios (issue 10, "A faithful arm64 machine"): the conformance
//! guest (`guest-images/machine-check`) runs one case directly on bare QEMU `virt`
//! at EL1 and then, the same `Image`, under the hypervisor as a Linux-protocol VM
//! with the case as its command line. The scenario passes when both print the
//! same lines: a behaviour is right when it matches bare QEMU, and a scenario
//! that passes only under the hypervisor proves nothing.
//!
//! What the hypervisor does not match yet is listed in [`KNOWN_DIFFERENCES`], line
//! by line: bare QEMU's lines the hypervisor does not print. Such a case is
//! reported as `XFAIL` with its diff (neither a pass nor a failure) as long as
//! exactly those lines are missing. Any other missing or extra line fails it (a
//! regression), and so does a listed line that now matches (`XPASS`: take it off
//! the list), so the list always says what is still missing. An entry marked
//! intermittent (a race the hypervisor loses in some runs) is an `XFAIL` either
//! way: a run that matches proves nothing.
//!
//! Where bare QEMU and KVM answer differently the machine follows KVM; those
//! lines are in [`ACCEPTED_DIFFERENCES`] and count as the same.

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

/// What a case does not match yet.
pub struct KnownDifference {
    pub case: &'static str,
    /// The item of issue 10 that covers it, and what the hypervisor printed
    /// instead when the entry was written.
    pub why: &'static str,
    /// Bare QEMU's lines that the hypervisor does not print.
    pub missing: &'static [&'static str],
    /// Only some runs show it (a race the hypervisor loses now and then): a
    /// matching run says nothing, so it is not an XPASS either.
    pub intermittent: bool,
}

/// What the hypervisor does not match yet (bare QEMU 10.0.2 as the reference).
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[
    KnownDifference {
        case: "debug-regs",
        why: "item 5: the debug registers read as zero and ignore writes; no breakpoint or watchpoint fires \
              (ID_AA64DFR0_EL1 still shows 6 breakpoints and 4 watchpoints)",
        missing: &[
            "debug-regs: MDSCR_EL1 KDE|MDE reads back: yes",
            "debug-regs: DBGBVR0_EL1 reads back: yes",
            "debug-regs: breakpoint 0 on EL1 code: taken (the code then ran: yes)",
            "debug-regs: watchpoint 0 on a load: taken (the load then read it: yes)",
        ],
        intermittent: false,
    },
    KnownDifference {
        case: "pmu",
        why: "item 6: no PMU (PMUVer 0x0, PMCR_EL0.N 0, PMCCNTR_EL0 static)",
        missing: &["pmu: ID_AA64DFR0_EL1.PMUVer 0x6", "pmu: PMCR_EL0.N 6", "pmu: PMCCNTR_EL0 over a loop: advances"],
        intermittent: false,
    },
    KnownDifference {
        case: "sve",
        why: "item 7: SVE and SME hidden (0, 0), ZCR_EL1 and RDVL UNDEFINED",
        missing: &[
            "sve: ID_AA64PFR0_EL1.SVE 1, ID_AA64PFR1_EL1.SME 1",
            "sve: ZCR_EL1.LEN = 1: executed; RDVL #1: 32 bytes",
        ],
        intermittent: false,
    },
];

/// A line where the hypervisor deliberately answers as KVM does and bare QEMU
/// does not (issue 10: the machine "matches KVM where QEMU and KVM differ"): the
/// two lines count as the same.
pub struct AcceptedDifference {
    pub case: &'static str,
    pub bare: &'static str,
    pub hypervisor: &'static str,
    pub why: &'static str,
}

const KVM_SMCCC: &str = "KVM implements SMCCC 1.1 and says so; bare QEMU's PSCI answers NOT_SUPPORTED";

pub const ACCEPTED_DIFFERENCES: &[AcceptedDifference] = &[
    AcceptedDifference {
        case: "psci",
        bare: "psci: SMCCC_VERSION 0xffffffff",
        hypervisor: "psci: SMCCC_VERSION 0x10001",
        why: KVM_SMCCC,
    },
    AcceptedDifference {
        case: "psci",
        bare: "psci: PSCI_FEATURES SMCCC_VERSION: -1",
        hypervisor: "psci: PSCI_FEATURES SMCCC_VERSION: 0",
        why: KVM_SMCCC,
    },
];

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

/// One line of a [`diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    Both(String),
    /// Printed on bare QEMU only.
    Bare(String),
    /// Printed under the hypervisor only.
    Hypervisor(String),
}

impl std::fmt::Display for DiffLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Both(line) => write!(f, "  {line}"),
            Self::Bare(line) => write!(f, "- {line}"),
            Self::Hypervisor(line) => write!(f, "+ {line}"),
        }
    }
}

/// A line-by-line diff (longest common subsequence).
pub fn diff(bare: &[String], hypervisor: &[String]) -> Vec<DiffLine> {
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
            out.push(DiffLine::Both(bare[i].clone()));
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || common[i][j + 1] >= common[i + 1][j]) {
            out.push(DiffLine::Hypervisor(hypervisor[j].clone()));
            j += 1;
        } else {
            out.push(DiffLine::Bare(bare[i].clone()));
            i += 1;
        }
    }
    out
}

/// How a case came out.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same lines on both machines (`accepted` of them only as
    /// [`ACCEPTED_DIFFERENCES`] allows).
    Match { accepted: usize },
    /// Exactly the lines [`KNOWN_DIFFERENCES`] lists are missing: the diff.
    KnownDifference(Vec<DiffLine>),
    /// Other lines differ: the diff.
    Differs(Vec<DiffLine>),
    /// Lines [`KNOWN_DIFFERENCES`] lists as missing that the hypervisor now
    /// prints (the rest matches or is still listed).
    Fixed(Vec<String>),
    /// An intermittent known difference that did not show this time.
    NotShown,
    /// A run did not finish cleanly: nothing to compare.
    Broken(String),
}

/// The hypervisor's lines with each accepted difference of `case` replaced by
/// bare QEMU's line, and how many were.
fn accept_kvm_answers(case: &str, hypervisor: Vec<String>) -> (Vec<String>, usize) {
    let mut accepted = 0;
    let lines = hypervisor
        .into_iter()
        .map(|line| match ACCEPTED_DIFFERENCES.iter().find(|a| a.case == case && a.hypervisor == line) {
            Some(a) => {
                accepted += 1;
                a.bare.to_string()
            }
            None => line,
        })
        .collect();
    (lines, accepted)
}

pub fn verdict(case: &str, bare: Result<Vec<String>, String>, hypervisor: Result<Vec<String>, String>) -> Verdict {
    verdict_with(KNOWN_DIFFERENCES, case, bare, hypervisor)
}

/// [`verdict`] against the given list of known differences.
fn verdict_with(
    known_differences: &[KnownDifference],
    case: &str,
    bare: Result<Vec<String>, String>,
    hypervisor: Result<Vec<String>, String>,
) -> Verdict {
    let (bare, hypervisor) = match (bare, hypervisor) {
        (Ok(bare), Ok(hypervisor)) => (bare, hypervisor),
        (Err(why), _) | (_, Err(why)) => return Verdict::Broken(why),
    };
    let (hypervisor, accepted) = accept_kvm_answers(case, hypervisor);
    let diff = diff(&bare, &hypervisor);
    let mut missing: Vec<&str> = diff
        .iter()
        .filter_map(|line| if let DiffLine::Bare(text) = line { Some(text.as_str()) } else { None })
        .collect();
    let known = known_differences.iter().find(|k| k.case == case);
    let listed = known.map_or(&[][..], |k| k.missing);
    let mut fixed = Vec::new();
    for &line in listed {
        match missing.iter().position(|&m| m == line) {
            Some(index) => {
                missing.remove(index);
            }
            None => fixed.push(line.to_string()),
        }
    }
    // Each listed line is replaced by one of the hypervisor's; more of those is
    // something else going wrong.
    let extra = diff.iter().filter(|line| matches!(line, DiffLine::Hypervisor(_))).count();
    if !missing.is_empty() || extra > listed.len() - fixed.len() {
        return Verdict::Differs(diff);
    }
    let intermittent = known.is_some_and(|k| k.intermittent);
    match (fixed.is_empty(), bare == hypervisor) {
        (false, _) if intermittent => Verdict::NotShown,
        (false, _) => Verdict::Fixed(fixed),
        (true, true) => Verdict::Match { accepted },
        (true, false) => Verdict::KnownDifference(diff),
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
        let machine = hypervisor_machine(hypervisor, &guest, case)?;
        let under = qemu::run_captured(&machine, HYPERVISOR_TIMEOUT, &hypervisor_log)?;
        let bare_side = side(&bare, report_lines(bare.output.lines()), "bare QEMU");
        let hypervisor_side = side(&under, report_lines(guest_lines(&under.output, VM)), "under the hypervisor");
        let seconds = case_started.elapsed().as_secs_f64();
        let logs = format!("logs: {}, {}", bare_log.display(), hypervisor_log.display());
        match verdict(case, bare_side, hypervisor_side) {
            Verdict::Match { accepted: 0 } => {
                *passed += 1;
                println!("PASS {name} ({seconds:.1} s)");
            }
            Verdict::Match { accepted } => {
                *passed += 1;
                let mut reasons: Vec<&str> =
                    ACCEPTED_DIFFERENCES.iter().filter(|a| a.case == case).map(|a| a.why).collect();
                reasons.dedup();
                println!(
                    "PASS {name} ({seconds:.1} s; {accepted} line(s) as KVM answers, not bare QEMU: {})",
                    reasons.join("; ")
                );
            }
            Verdict::KnownDifference(diff) => {
                known += 1;
                let why = KNOWN_DIFFERENCES.iter().find(|k| k.case == case).map_or("", |k| k.why);
                println!("XFAIL {name} ({seconds:.1} s): known difference, {why}; - bare QEMU, + hypervisor:");
                print_diff(diff.iter().filter(|line| !matches!(line, DiffLine::Both(_))));
            }
            Verdict::Differs(diff) => {
                *failed += 1;
                println!(
                    "FAIL {name} ({seconds:.1} s): the hypervisor differs from bare QEMU beyond \
                     KNOWN_DIFFERENCES; - bare QEMU, + hypervisor:"
                );
                print_diff(&diff);
                println!("    {logs}");
            }
            Verdict::Fixed(lines) => {
                *failed += 1;
                println!(
                    "FAIL {name} ({seconds:.1} s): XPASS: the hypervisor now prints what bare QEMU does; take \
                     these lines off differential::KNOWN_DIFFERENCES:"
                );
                for line in lines {
                    println!("    {line}");
                }
            }
            Verdict::NotShown => {
                known += 1;
                println!(
                    "XFAIL {name} ({seconds:.1} s): the same as bare QEMU this time, but a known intermittent \
                     difference (KNOWN_DIFFERENCES)"
                );
            }
            Verdict::Broken(why) => {
                *failed += 1;
                println!("FAIL {name} ({seconds:.1} s): {why}; {logs}");
            }
        }
    }
    println!(
        "differential: {known} known difference(s) (XFAIL, differential::KNOWN_DIFFERENCES), {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_diff<'a>(diff: impl IntoIterator<Item = &'a DiffLine>) {
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

    fn report(body: &str) -> Vec<String> {
        lines(&format!("machine-check: bootargs \"x\"\n{body}\nmachine-check: done"))
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
    fn known_differences_name_cases_once_and_their_lines() {
        for (i, known) in KNOWN_DIFFERENCES.iter().enumerate() {
            assert!(CASES.contains(&known.case), "{} is no case", known.case);
            assert!(known.why.starts_with("item "), "{}: say which item of issue 10 covers it", known.case);
            assert!(!known.missing.is_empty(), "{} lists no line", known.case);
            for line in known.missing {
                assert!(line.starts_with(&format!("{}: ", known.case)), "{line:?} is not a line of {}", known.case);
            }
            assert!(KNOWN_DIFFERENCES[..i].iter().all(|k| k.case != known.case), "{} listed twice", known.case);
        }
    }

    #[test]
    fn report_runs_from_the_first_marker_to_the_last() {
        let output = "qemu: warning\nmachine-check: bootargs \"x\"\nx: 1  \nmachine-check: done\nafter\n";
        assert_eq!(report_lines(output.lines()), Some(report("x: 1")));
        assert_eq!(report_lines("nothing\n".lines()), None);
        assert_eq!(
            report_lines("machine-check: bootargs \"x\"\nx: 1\n".lines()),
            Some(lines("machine-check: bootargs \"x\"\nx: 1"))
        );
    }

    #[test]
    fn diff_marks_each_sides_lines() {
        let shown = |bare: &str, hypervisor: &str| {
            diff(&lines(bare), &lines(hypervisor)).iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(shown("a\nb\nc\nd", "a\nB\nc\nd\ne"), "  a\n+ B\n- b\n  c\n  d\n+ e");
        assert_eq!(shown("a\nb", "a\nb"), "  a\n  b");
        assert_eq!(shown("", "x"), "+ x");
    }

    #[test]
    fn unlisted_cases_must_match() {
        assert_eq!(verdict("dtb", Ok(report("dtb: 1")), Ok(report("dtb: 1"))), Verdict::Match { accepted: 0 });
        assert!(matches!(verdict("dtb", Ok(report("dtb: 1")), Ok(report("dtb: 2"))), Verdict::Differs(_)));
        assert!(matches!(verdict("dtb", Ok(report("dtb: 1")), Ok(report("dtb: 1\ndtb: 2"))), Verdict::Differs(_)));
        assert_eq!(
            verdict("dtb", Err("bare QEMU: timed out".into()), Ok(report(""))),
            Verdict::Broken("bare QEMU: timed out".into())
        );
    }

    #[test]
    fn known_differences_are_exact() {
        let known = KNOWN_DIFFERENCES.iter().find(|k| !k.intermittent).expect("one is listed");
        let expected = known.missing.join("\n");
        let other = known.missing.iter().map(|line| format!("{line} (not)")).collect::<Vec<_>>().join("\n");
        let bare = report(&format!("{}: same\n{expected}", known.case));
        let today = report(&format!("{}: same\n{other}", known.case));
        assert!(matches!(verdict(known.case, Ok(bare.clone()), Ok(today)), Verdict::KnownDifference(_)));
        // Fixed: every listed line now printed.
        assert_eq!(
            verdict(known.case, Ok(bare.clone()), Ok(bare.clone())),
            Verdict::Fixed(known.missing.iter().map(|l| l.to_string()).collect())
        );
        // A regression elsewhere in a listed case still fails it.
        let regressed = report(&format!("{}: different\n{other}", known.case));
        assert!(matches!(verdict(known.case, Ok(bare), Ok(regressed)), Verdict::Differs(_)));
    }

    #[test]
    fn intermittent_differences_are_never_an_xpass() {
        let listed = [KnownDifference {
            case: "racy",
            why: "a race the hypervisor loses now and then",
            missing: &["racy: received 100 of 100"],
            intermittent: true,
        }];
        let known = &listed[0];
        let bare = report(&known.missing.join("\n"));
        let today = report(&known.missing.iter().map(|line| format!("{line} (not)")).collect::<Vec<_>>().join("\n"));
        assert_eq!(verdict_with(&listed, known.case, Ok(bare.clone()), Ok(bare.clone())), Verdict::NotShown);
        assert!(matches!(verdict_with(&listed, known.case, Ok(bare), Ok(today)), Verdict::KnownDifference(_)));
    }

    #[test]
    fn kvm_answers_count_as_bare_qemus() {
        for accepted in ACCEPTED_DIFFERENCES {
            assert!(CASES.contains(&accepted.case), "{} is no case", accepted.case);
            assert!(!accepted.why.is_empty());
            // Bare QEMU's answer or KVM's: the same verdict (for a listed case,
            // the listed lines must still be missing).
            let listed = KNOWN_DIFFERENCES.iter().find(|k| k.case == accepted.case).map_or(&[][..], |k| k.missing);
            let still_missing = listed.iter().map(|line| format!("{line} (not)")).collect::<Vec<_>>().join("\n");
            let bare = report(&format!("{}\n{}", accepted.bare, listed.join("\n")));
            for answer in [accepted.hypervisor, accepted.bare] {
                let hypervisor = report(&format!("{answer}\n{still_missing}"));
                let outcome = verdict(accepted.case, Ok(bare.clone()), Ok(hypervisor));
                match listed.is_empty() {
                    true => assert!(matches!(outcome, Verdict::Match { .. }), "{outcome:?}"),
                    false => assert!(matches!(outcome, Verdict::KnownDifference(_)), "{outcome:?}"),
                }
            }
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
