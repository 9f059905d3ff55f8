//! The isolation suite: the hostile test guest alone and next to bystanders, VMs
//! resetting and stopping under a neighbour's feet, and sleepers sharing a CPU
//! with a hog. Each scenario names the defect it guards against; each failed on
//! the main branch before the isolation fixes (commit fee68f4), as noted.
//!
//! Runs on `-smp 2`: CPU 0 and CPU 1.

use crate::console_log::{guest_lines, hypervisor_lines};
use crate::qemu::Captured;
use crate::vm_scenarios::{VmScenario, check};

/// Extra checks beyond [`check`].
pub type Extra = fn(&Captured) -> Result<(), String>;

pub struct HostileScenario {
    pub scenario: VmScenario,
    pub extra: Extra,
    pub timeout_secs: u64,
    /// Type into the console all along (input delivery races VM teardown).
    pub feed_input: bool,
}

/// No hypervisor line carries text a guest tried to pass off as the
/// hypervisor's, and the guest did print it (so the check is not vacuous).
fn no_forged_lines(run: &Captured, vm: &str) -> Result<(), String> {
    if let Some(line) = hypervisor_lines(&run.output).find(|line| line.contains("FORGED-LINE")) {
        return Err(format!("a guest forged a hypervisor line: {line:?}"));
    }
    if !guest_lines(&run.output, vm).any(|line| line.contains("FORGED-LINE")) {
        return Err(format!("{vm} printed no FORGED-LINE text: the forgery check proved nothing"));
    }
    Ok(())
}

/// Every case of the hostile guest reported ok, and there were at least 40.
fn all_cases_ok(run: &Captured, vm: &str) -> Result<(), String> {
    let cases: Vec<&str> = guest_lines(&run.output, vm).filter(|line| line.starts_with("case ")).collect();
    if let Some(bad) = cases.iter().find(|line| !line.contains(": ok")) {
        return Err(format!("{vm}: {bad}"));
    }
    if cases.len() < 40 {
        return Err(format!("{vm} reported only {} cases, want at least 40", cases.len()));
    }
    no_forged_lines(run, vm)
}

fn count(run: &Captured, needle: &str) -> usize {
    hypervisor_lines(&run.output).filter(|line| line.contains(needle)).count()
}

pub fn scenarios() -> Vec<HostileScenario> {
    vec![
        // Every attack class in one VM with two vCPUs (CPU_OFF/CPU_ON races need
        // the second). Before the fixes: the hypervisor crashed on the trapped
        // instructions at the top of the VA space (`pc += 4` overflow), semihosting
        // answered SYS_CLOCK, CPU_OFF with an SGI pending returned, T32 WFI at EL0
        // skipped an instruction, AArch32 aborts went to the AArch64 vector.
        HostileScenario {
            scenario: VmScenario {
                name: "hostile-alone",
                conf: "[vm hostile]\nimage = test-guest.bin\nboot = bare\nmemory = 32M\ncpus = 0,1\narg = 10\n",
                expect: &["[hostile] PASS hostile", "vm hostile stopped with status 0"],
            },
            extra: |run| {
                all_cases_ok(run, "hostile")?;
                // Defect 7: ~500 injected aborts must not become ~500 console lines
                // (before: one WARN each, under the console lock every VM needs).
                match count(run, "vm hostile: ") {
                    n if n <= 60 => Ok(()),
                    n => Err(format!("{n} diagnostic lines about the hostile VM: not rate limited")),
                }
            },
            timeout_secs: 180,
            feed_input: false,
        },
        // The bystander on its own CPU: it must see nothing of the attack (its
        // events stay 0: before, events were global and it saw 0xBAD), keep its
        // memory, tags and timer, and not be starved by the abort storm's log lines.
        HostileScenario {
            scenario: VmScenario {
                name: "hostile-bystander-own-cpu",
                conf: "[vm hostile]\nimage = test-guest.bin\nboot = bare\nmemory = 32M\ncpus = 0\narg = 10\n\n\
                       [vm bystander]\nimage = test-guest.bin\nboot = bare\nmemory = 32M\ncpus = 1\narg = 11\n",
                expect: &["[hostile] PASS hostile", "[bystander] PASS bystander", "vm bystander stopped with status 0"],
            },
            extra: |run| no_forged_lines(run, "hostile"),
            timeout_secs: 180,
            feed_input: false,
        },
        // The bystander shares CPU 1 with the hostile VM's second vCPU.
        HostileScenario {
            scenario: VmScenario {
                name: "hostile-bystander-shared-cpu",
                conf: "[vm hostile]\nimage = test-guest.bin\nboot = bare\nmemory = 32M\ncpus = 0,1\narg = 10\n\n\
                       [vm bystander]\nimage = test-guest.bin\nboot = bare\nmemory = 32M\ncpus = 1\narg = 11\n",
                expect: &["[hostile] PASS hostile", "[bystander] PASS bystander", "vm bystander stopped with status 0"],
            },
            extra: |run| all_cases_ok(run, "hostile"),
            timeout_secs: 180,
            feed_input: false,
        },
        // Defect 1: a VM resetting in a loop on a CPU it shares with a bystander.
        // Console input (for the resetter, the first VM) arrives all along, racing
        // each teardown (defect 9: the input path could take a new reference to
        // the VM while it was being destroyed, and `destroy` panicked).
        // Before: the bystander resumed on the destroyed (and re-created) VM's
        // stage-2 tables and found the resetter's FOREIGN pattern in "its" RAM, or
        // livelocked on faults.
        HostileScenario {
            scenario: VmScenario {
                name: "reset-loop-neighbour",
                conf: "[vm resetter]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = 0,1\narg = 12\n\n\
                       [vm bystander]\nimage = test-guest.bin\nboot = bare\nmemory = 32M\ncpus = 1\narg = 11\n",
                expect: &[
                    "[resetter] PASS resetter",
                    "[bystander] PASS bystander",
                    "vm bystander stopped with status 0",
                ],
            },
            extra: |run| match count(run, "vm resetter restarting (SYSTEM_RESET)") {
                n if n >= 20 => Ok(()),
                n => Err(format!("resetter restarted {n} times, want 20")),
            },
            timeout_secs: 180,
            feed_input: true,
        },
        // Defect 1, stop variant: a VM stops while the bystander is loaded on the
        // CPU it shared, and a third VM is created on the freed frames (and must
        // find them zeroed, tags included). Before: the bystander walked freed
        // table frames that the allocator then handed to `late` as RAM.
        HostileScenario {
            scenario: VmScenario {
                name: "stop-neighbour-recycle",
                conf: "[vm stopper]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = 0,1\narg = 13\n\n\
                       [vm bystander]\nimage = test-guest.bin\nboot = bare\nmemory = 32M\ncpus = 1\narg = 11\n\n\
                       [vm late]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = 0\narg = 3\nafter = stopper\n",
                expect: &[
                    "[stopper] PASS stopper",
                    "[bystander] PASS bystander",
                    "[late] PASS leak-checker",
                    "vm late stopped with status 0",
                ],
            },
            extra: |run| match crate::vm_scenarios::recycled_frames(&run.output, "late") {
                Some(n) if n > 0 => Ok(()),
                other => Err(format!("late got no recycled frames ({other:?}): the test proved nothing")),
            },
            timeout_secs: 120,
            feed_input: false,
        },
        // Defect 4: a vCPU sleeping in WFI on a timer, switched out for a CPU hog
        // of another VM. Before: its timer was silenced when switched out and it
        // slept until the hog finished (or forever); WFIT +10 ms slept 2 s.
        HostileScenario {
            scenario: VmScenario {
                name: "sleeper-shared-cpu",
                conf: "[vm sleeper]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = 1\narg = 14\n\n\
                       [vm spinner]\nimage = test-guest.bin\nboot = bare\nmemory = 16M\ncpus = 1\narg = 15\n",
                expect: &["[sleeper] PASS sleeper", "[spinner] PASS spinner", "vm sleeper stopped with status 0"],
            },
            extra: |run| {
                // The sleeper must be done while the hog still spins.
                let sleeper = run.output.find("vm sleeper stopped").ok_or("no sleeper stop line")?;
                let spinner = run.output.find("vm spinner stopped").ok_or("no spinner stop line")?;
                match sleeper < spinner {
                    true => Ok(()),
                    false => {
                        Err("the sleeper only finished after the CPU hog: it did not wake at its deadlines".into())
                    }
                }
            },
            timeout_secs: 120,
            feed_input: false,
        },
    ]
}

/// Runs the common check, then the scenario's own.
pub fn verdict(run: &Captured, scenario: &HostileScenario) -> Result<(), String> {
    check(run, &scenario.scenario)?;
    (scenario.extra)(run)
}
