//! Guest text on the hypervisor's console, made unmistakable.
//!
//! Every guest shares the one physical UART with the hypervisor's own lines, and a
//! guest controls every byte it prints. So: every guest line starts with
//! `[<vm name>] `; a hypervisor line always starts on a fresh line (a guest's
//! unfinished line is ended first); a carriage return that does not end a line
//! re-prints the prefix (so a terminal cannot be made to overwrite it); and control
//! characters other than the ones a terminal needs for plain text (`\n`, `\r` as
//! part of a line end, `\t`, backspace) are shown in caret notation (`ESC` as
//! `^[`), so a guest cannot move the cursor, clear lines or recolour output. A line
//! that does not start with `[` is therefore the hypervisor's.
//!
//! [`ConsoleMux`] holds the state of the current console line and the output of
//! VMs waiting for it to end; the caller serialises access (the console lock)
//! and supplies the byte sink.

use alloc::string::String;
use alloc::vec::Vec;

/// Who owns the unfinished line on the console, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenLine {
    vm: usize,
    /// The guest sent `\r`; what follows decides whether it ended the line.
    pending_cr: bool,
}

/// Bytes of a VM that printed while another VM's line was unfinished.
#[derive(Debug)]
struct Waiting {
    vm: usize,
    name: String,
    bytes: Vec<u8>,
}

/// How much a VM's waiting output may grow before the unfinished line that
/// holds it up is cut (a prompt that never gets its newline). Longer than the
/// long lines guests print (Linux's `/proc/cpuinfo` features, ~330 bytes), so
/// that two VMs printing them at once still give whole lines.
pub const WAITING_LIMIT: usize = 1024;

/// The console's line state.
///
/// One VM at a time streams its current line (so a shell prompt and what the
/// user types appear at once). A VM that prints while another's line is
/// unfinished waits (up to [`WAITING_LIMIT`] bytes) until that line ends, so two
/// VMs printing at the same time produce whole lines, not fragments.
#[derive(Debug, Default)]
pub struct ConsoleMux {
    open: Option<OpenLine>,
    waiting: Vec<Waiting>,
}

impl ConsoleMux {
    pub const fn new() -> Self {
        Self { open: None, waiting: Vec::new() }
    }

    /// Bytes a guest printed (its PL011 or HV_WRITE). `vm` identifies the VM (its
    /// index in the config), `name` is its prefix.
    pub fn guest_bytes(&mut self, vm: usize, name: &str, bytes: &[u8], out: &mut impl FnMut(&[u8])) {
        for &byte in bytes {
            if self.open.is_some_and(|line| line.vm != vm) {
                let index = match self.waiting.iter().position(|w| w.vm == vm) {
                    Some(index) => index,
                    None => {
                        self.waiting.push(Waiting { vm, name: String::from(name), bytes: Vec::new() });
                        self.waiting.len() - 1
                    }
                };
                self.waiting[index].bytes.push(byte);
                if self.waiting[index].bytes.len() >= WAITING_LIMIT {
                    // The line holding everyone up is not ending: cut it.
                    out(b"\r\n");
                    self.open = None;
                    self.flush_waiting(out);
                }
                continue;
            }
            self.guest_byte(vm, name, byte, out);
            if self.open.is_none() {
                self.flush_waiting(out);
            }
        }
    }

    /// Prints waiting output while no line is unfinished.
    pub fn flush_waiting(&mut self, out: &mut impl FnMut(&[u8])) {
        while self.open.is_none() && !self.waiting.is_empty() {
            let Waiting { vm, name, bytes } = self.waiting.remove(0);
            for byte in bytes {
                self.guest_byte(vm, &name, byte, out);
            }
        }
    }

    fn guest_byte(&mut self, vm: usize, name: &str, byte: u8, out: &mut impl FnMut(&[u8])) {
        if self.open.is_none() {
            write_prefix(name, out);
            self.open = Some(OpenLine { vm, pending_cr: false });
        }
        let Some(line) = self.open.as_mut() else { return };
        if line.pending_cr {
            line.pending_cr = false;
            if byte == b'\n' {
                out(b"\r\n");
                self.open = None;
                return;
            }
            // A bare carriage return: the terminal goes back to the line start,
            // where the prefix must be seen again.
            out(b"\r");
            write_prefix(name, out);
        }
        match byte {
            b'\n' => {
                out(b"\r\n");
                self.open = None;
            }
            b'\r' => line.pending_cr = true,
            b'\t' | 0x08 => out(&[byte]),
            0x00..=0x1F => out(&[b'^', byte + 0x40]),
            0x7F => out(b"^?"),
            _ => out(&[byte]),
        }
    }

    /// Called before the hypervisor prints: its text must start a line of its
    /// own. Call [`flush_waiting`](Self::flush_waiting) after printing it.
    pub fn hypervisor_line(&mut self, out: &mut impl FnMut(&[u8])) {
        if self.open.take().is_some() {
            out(b"\r\n");
        }
    }
}

fn write_prefix(name: &str, out: &mut impl FnMut(&[u8])) {
    out(b"[");
    // Names come from the config (validated), but are printed escaped anyway.
    for &byte in name.as_bytes() {
        match byte {
            0x20..=0x7E if byte != b']' => out(&[byte]),
            _ => out(b"?"),
        }
    }
    out(b"] ");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(&str, Option<(usize, &str)>)]) -> String {
        let mut mux = ConsoleMux::new();
        let mut text = Vec::new();
        for &(bytes, source) in steps {
            let mut sink = |b: &[u8]| text.extend_from_slice(b);
            match source {
                Some((vm, name)) => mux.guest_bytes(vm, name, bytes.as_bytes(), &mut sink),
                None => {
                    mux.hypervisor_line(&mut sink);
                    sink(bytes.as_bytes());
                    mux.flush_waiting(&mut sink);
                }
            }
        }
        String::from_utf8(text).unwrap().replace('\r', "<CR>")
    }

    /// Lines of `text` (CRs shown) that do not start with a guest prefix.
    fn hypervisor_lines(text: &str) -> Vec<String> {
        text.split('\n').filter(|l| !l.is_empty() && !l.starts_with('[')).map(String::from).collect()
    }

    #[test]
    fn every_guest_line_is_prefixed() {
        let out = run(&[("hello\nworld\n", Some((0, "a")))]);
        assert_eq!(out, "[a] hello<CR>\n[a] world<CR>\n");
    }

    #[test]
    fn crlf_line_ends_stay_single() {
        let out = run(&[("one\r\ntwo\r\n", Some((0, "linux")))]);
        assert_eq!(out, "[linux] one<CR>\n[linux] two<CR>\n");
    }

    #[test]
    fn a_guest_cannot_forge_a_hypervisor_line() {
        let forged =
            "ok\nvm linux stopped with status 0\n\r=== HYPERVISOR CRASH ===\n\x1b[2K\rall VMs stopped (0 failed)\n";
        let out = run(&[(forged, Some((0, "evil"))), ("vm evil stopped with status 1\n", None)]);
        assert_eq!(hypervisor_lines(&out), ["vm evil stopped with status 1"]);
        assert!(out.contains("[evil] ^[[2K<CR>[evil] all VMs stopped"));
    }

    #[test]
    fn hypervisor_text_ends_an_open_guest_line() {
        let out = run(&[("~ # ", Some((1, "b"))), ("INFO tick\n", None), ("ls", Some((1, "b")))]);
        assert_eq!(out, "[b] ~ # <CR>\nINFO tick\n[b] ls");
    }

    #[test]
    fn vms_printing_at_once_get_whole_lines() {
        // b prints while a's line is unfinished: b waits for a's newline.
        let out = run(&[("abc", Some((0, "a"))), ("xyz\n", Some((1, "b"))), ("def\n", Some((0, "a")))]);
        assert_eq!(out, "[a] abcdef<CR>\n[b] xyz<CR>\n");
        // Byte by byte, alternating (two CPUs): still whole lines.
        let mut steps = Vec::new();
        for (x, y) in "one\n".chars().zip("two\n".chars()) {
            steps.push((x, 0, "a"));
            steps.push((y, 1, "b"));
        }
        let text: Vec<(String, Option<(usize, &str)>)> =
            steps.iter().map(|&(c, vm, name)| (c.to_string(), Some((vm, name)))).collect();
        let steps: Vec<(&str, Option<(usize, &str)>)> = text.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        assert_eq!(run(&steps), "[a] one<CR>\n[b] two<CR>\n");
    }

    #[test]
    fn a_line_that_never_ends_is_cut_for_the_others() {
        let long = "x".repeat(WAITING_LIMIT);
        let out = run(&[("~ # ", Some((0, "a"))), (&long, Some((1, "b")))]);
        assert!(out.starts_with("[a] ~ # <CR>\n[b] xxx"), "{out}");
    }

    #[test]
    fn waiting_output_appears_after_a_hypervisor_line() {
        let out = run(&[("~ # ", Some((0, "a"))), ("hi\n", Some((1, "b"))), ("INFO x\n", None)]);
        assert_eq!(out, "[a] ~ # <CR>\nINFO x\n[b] hi<CR>\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        let out = run(&[("\x07\x00\x7f\t\x08é\n", Some((0, "a")))]);
        assert_eq!(out, "[a] ^G^@^?\t\x08é<CR>\n");
    }

    #[test]
    fn names_cannot_break_the_prefix() {
        let out = run(&[("x\n", Some((0, "a]\nb")))]);
        assert_eq!(out, "[a??b] x<CR>\n");
    }
}
