//! Rate limiting of per-VM diagnostics: a guest decides how often it faults, so
//! it must not decide how much the hypervisor prints (every line holds the shared
//! console for a while). A token bucket per VM: a burst, then a steady rate; what
//! is dropped is counted and reported with the next line that gets through.

/// Lines allowed in a burst.
pub const BURST: u32 = 10;
/// Lines allowed per second after the burst.
pub const PER_SECOND: u64 = 5;

/// One VM's budget, in counter ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimiter {
    tokens: u32,
    /// Counter value up to which tokens have been credited.
    credited_until: u64,
    started: bool,
    suppressed: u64,
}

/// The verdict for one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Print it; `suppressed` lines were dropped since the last one printed.
    Print {
        suppressed: u64,
    },
    Drop,
}

impl RateLimiter {
    pub const fn new() -> Self {
        Self { tokens: 0, credited_until: 0, started: false, suppressed: 0 }
    }

    /// Whether a line at counter value `now` (ticking at `frequency` Hz) may print.
    pub fn check(&mut self, now: u64, frequency: u64) -> Verdict {
        let interval = (frequency / PER_SECOND).max(1);
        if !self.started {
            self.started = true;
            self.tokens = BURST;
            self.credited_until = now;
        } else if now > self.credited_until {
            let earned = (now - self.credited_until) / interval;
            if earned > 0 {
                self.tokens = u32::try_from(earned).unwrap_or(u32::MAX).saturating_add(self.tokens).min(BURST);
                self.credited_until = self.credited_until.saturating_add(earned.saturating_mul(interval));
            }
        }
        if self.tokens == 0 {
            self.suppressed = self.suppressed.saturating_add(1);
            return Verdict::Drop;
        }
        self.tokens -= 1;
        let suppressed = core::mem::take(&mut self.suppressed);
        Verdict::Print { suppressed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000;

    #[test]
    fn a_storm_prints_a_burst_then_the_steady_rate() {
        let mut limiter = RateLimiter::new();
        // 400 lines within 10 ms: only the burst gets through.
        let printed = (0..400).filter(|i| limiter.check(i * 25, HZ) != Verdict::Drop).count();
        assert_eq!(printed, BURST as usize);
        // One second later: PER_SECOND more tokens, and the first reports the drops.
        let later = HZ + 10_000;
        assert_eq!(limiter.check(later, HZ), Verdict::Print { suppressed: 400 - u64::from(BURST) });
        assert_eq!(limiter.check(later, HZ), Verdict::Print { suppressed: 0 });
    }

    #[test]
    fn counter_going_backwards_or_wrapping_is_harmless() {
        let mut limiter = RateLimiter::new();
        assert_eq!(limiter.check(u64::MAX - 1, HZ), Verdict::Print { suppressed: 0 });
        for _ in 0..100 {
            limiter.check(0, HZ);
        }
        // Time going backwards earns nothing: 9 printed, 91 dropped; a zero
        // frequency does not divide by zero.
        assert_eq!(limiter.check(u64::MAX, 0), Verdict::Print { suppressed: 91 });
    }
}
