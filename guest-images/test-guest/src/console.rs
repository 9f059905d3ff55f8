//! Text output: `println!` (one console line per call) and a fixed-size string
//! type for scenario reports. No heap.

use core::fmt;

use hv_abi::MAX_WRITE;

/// A fixed-capacity string; text that does not fit is dropped and the end
/// replaced by `...`.
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, truncated: false }
    }

    pub fn as_str(&self) -> &str {
        // Only whole chars are ever stored (cuts are made at char boundaries).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        if s.len() <= N - self.len {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
            return Ok(());
        }
        // Keep what fits before a 3-byte "..." marker, cut at a char boundary.
        self.truncated = true;
        let keep_total = N.saturating_sub(3);
        if self.len > keep_total {
            self.len = keep_total;
            while self.len > 0 && self.buf[self.len] & 0xC0 == 0x80 {
                self.len -= 1;
            }
        } else {
            let mut cut = keep_total - self.len;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf[self.len..self.len + cut].copy_from_slice(&s.as_bytes()[..cut]);
            self.len += cut;
        }
        let marker = &b"..."[..(N - self.len).min(3)];
        self.buf[self.len..self.len + marker.len()].copy_from_slice(marker);
        self.len += marker.len();
        Ok(())
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Collects one line and hands it to the console in pieces of at most
/// [`MAX_WRITE`] bytes (each piece becomes its own line on the console).
struct LineWriter {
    buf: [u8; MAX_WRITE as usize],
    len: usize,
}

impl LineWriter {
    fn flush(&mut self) {
        crate::hypercall::write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl fmt::Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = byte;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints one line (without a trailing newline: the hypervisor makes each
/// HV_WRITE a line of its own).
pub fn print_line(args: fmt::Arguments<'_>) {
    let mut writer = LineWriter { buf: [0; MAX_WRITE as usize], len: 0 };
    let _ = fmt::write(&mut writer, args);
    writer.flush();
}

/// Prints a formatted line to the console (one HV_WRITE per 256 bytes).
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print_line(format_args!($($arg)*))
    };
}
pub(crate) use println;

/// Formats into a [`Text`] of the default report size.
macro_rules! text {
    ($($arg:tt)*) => {{
        let mut text = $crate::console::Report::new();
        let _ = core::fmt::Write::write_fmt(&mut text, format_args!($($arg)*));
        text
    }};
}
pub(crate) use text;

/// What a scenario reports after `PASS <name>: ` or `FAIL <name>: `.
pub type Report = Text<224>;
