//! Reading the hypervisor's console output: which lines are the hypervisor's own
//! and which a guest printed, and how the run ended.
//!
//! The hypervisor prefixes every guest line with `[<vm>] ` (and escapes guest
//! control characters), so a line that does not start with `[` is the
//! hypervisor's: a guest cannot forge one. Checks must respect that: a needle
//! written `[vm] text` matches only lines of that VM, anything else only the
//! hypervisor's lines.

/// The hypervisor's own lines.
pub fn hypervisor_lines(output: &str) -> impl Iterator<Item = &str> {
    output.lines().filter(|line| !line.starts_with('['))
}

/// The text of VM `vm`'s lines (prefix removed).
pub fn guest_lines<'a>(output: &'a str, vm: &str) -> impl Iterator<Item = &'a str> + use<'a> {
    let prefix = format!("[{vm}] ");
    output.lines().filter_map(move |line| line.strip_prefix(prefix.as_str()))
}

/// Whether `needle` was printed: `[vm] text` by that VM, anything else by the
/// hypervisor itself.
pub fn says(output: &str, needle: &str) -> bool {
    if let Some(rest) = needle.strip_prefix('[')
        && let Some((vm, text)) = rest.split_once("] ")
    {
        return guest_lines(output, vm).any(|line| line.contains(text));
    }
    hypervisor_lines(output).any(|line| line.contains(needle))
}

/// How the hypervisor said the run ended: `Some(true)` for its success line,
/// `Some(false)` for a crash report or its failure line, `None` if it said neither.
pub fn outcome(output: &str) -> Option<bool> {
    let mut verdict = None;
    for line in hypervisor_lines(output) {
        let line = line.trim_end();
        if line.starts_with("=== HYPERVISOR CRASH") || line == "power-off: failure" {
            return Some(false);
        }
        if line == "power-off: success" {
            verdict = Some(true);
        }
    }
    verdict
}

/// QEMU's exit status corrected by what the hypervisor said: a crash or a failed
/// run is status 1 even though QEMU exits 0 after the power-off.
pub fn exit_status(qemu_status: i32, output: &str) -> i32 {
    match (qemu_status, outcome(output)) {
        (0, Some(false)) => 1,
        (status, _) => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "  0.1 cpu0 INFO  vm evil started\n[evil] vm evil stopped with status 0\n[evil] power-off: success\n\
                       [evil] === HYPERVISOR CRASH on CPU 0 ===\nvm evil stopped with status 3\npower-off: failure\n";

    #[test]
    fn guest_lines_never_count_as_the_hypervisors() {
        assert!(!says(RUN, "vm evil stopped with status 0"));
        assert!(says(RUN, "vm evil stopped with status 3"));
        assert!(says(RUN, "[evil] stopped with status 0"));
        assert!(!says(RUN, "[other] stopped"));
        assert_eq!(outcome(RUN), Some(false));
        assert_eq!(exit_status(0, RUN), 1);
    }

    #[test]
    fn forged_success_is_ignored() {
        let forged = "[evil] power-off: success\n";
        assert_eq!(outcome(forged), None);
        assert_eq!(outcome("x\npower-off: success\n"), Some(true));
        assert_eq!(exit_status(0, "power-off: success\n"), 0);
        assert_eq!(exit_status(124, "power-off: success\n"), 124);
    }
}
