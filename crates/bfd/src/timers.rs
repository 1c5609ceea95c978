//! The session's timing rules as pure functions: the transmit interval and its jitter (RFC 5880
//! 6.8.2, 6.8.7), the Detection Time (6.8.4), slow start (6.8.3), microsecond conversion, the
//! timer table and the seedable jitter source.

use std::time::{Duration, Instant};

/// While a session is not Up it sends no faster than once a second (6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// bfd.RemoteMinRxInterval before anything is heard, and again after a Detection Time of silence
/// (6.8.1, 6.8.18): one microsecond.
pub const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// A duration in whole microseconds as the wire carries it (saturating at `u32::MAX` us, 71 min).
pub fn to_us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A wire interval (microseconds) as a duration.
pub fn from_us(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

/// The Detection Time in asynchronous mode (6.8.4): the remote's Detect Mult times the agreed
/// transmit interval of the remote system, the greater of our Required Min RX and its Desired Min TX.
pub fn detection_time(
    remote_detect_mult: u8,
    our_min_rx: Duration,
    remote_min_tx: Duration,
) -> Duration {
    our_min_rx
        .max(remote_min_tx)
        .saturating_mul(u32::from(remote_detect_mult))
}

/// The negotiated transmit interval (6.8.2, 6.8.7): the greater of our Desired Min TX (the value
/// in force) and the remote's Required Min RX.
pub fn transmit_interval(our_min_tx: Duration, remote_min_rx: Duration) -> Duration {
    our_min_tx.max(remote_min_rx)
}

/// The interval to the next periodic packet, jittered (6.8.7): reduced by 0-25% (75-100% of the
/// interval); with a Detect Mult of 1 it is 75-90%. `random` is a uniform u32 from the caller's
/// jitter source, so tests choose it. The result is never zero.
pub fn jittered(interval: Duration, detect_mult: u8, random: u32) -> Duration {
    const PPM: u128 = 1_000_000;
    let span: u128 = if detect_mult == 1 { 150_000 } else { 250_000 };
    // 750_000 + [0, span) parts per million: never the full interval when mult is 1 (90% excluded
    // is still "no more than 90%") and never below 75%.
    let ppm = 750_000 + ((u128::from(random) * span) >> 32);
    let ns = interval.as_nanos() * ppm / PPM;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)).max(Duration::from_nanos(1))
}

/// A seedable source of jitter (xorshift64*): the daemon seeds it from the OS, tests from a constant,
/// so a session's send times replay exactly.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point; any other seed is fine as it is.
        Jitter {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    pub fn next_u32(&mut self) -> u32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// The timer table: every deadline a session can be waiting for. `next()` is the earliest.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    /// The next periodic transmission (None: periodic transmission is not allowed now).
    pub tx: Option<Instant>,
    /// The Detection Time runs out (None: nothing heard since the last time it did).
    pub detect: Option<Instant>,
}

impl Timers {
    pub fn next(&self) -> Option<Instant> {
        [self.tx, self.detect].into_iter().flatten().min()
    }
}

/// "3.00 s", "150.00 ms", "50.0 us": short, and exact enough to compare with the configuration.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} us", d.as_secs_f64() * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_bounds() {
        let i = Duration::from_millis(100);
        assert_eq!(jittered(i, 3, 0), Duration::from_millis(75));
        assert!(jittered(i, 3, u32::MAX) < i);
        assert!(jittered(i, 3, u32::MAX) >= Duration::from_micros(99_999));
        assert_eq!(jittered(i, 1, 0), Duration::from_millis(75));
        assert!(jittered(i, 1, u32::MAX) < Duration::from_millis(90));
        assert!(jittered(i, 1, u32::MAX) >= Duration::from_micros(89_999));
        assert_eq!(jittered(Duration::ZERO, 3, 7), Duration::from_nanos(1));
    }

    #[test]
    fn detection_time_takes_the_greater_interval() {
        let ms = Duration::from_millis;
        assert_eq!(detection_time(3, ms(50), ms(20)), ms(150));
        assert_eq!(detection_time(3, ms(20), ms(50)), ms(150));
        assert_eq!(detection_time(5, ms(10), ms(10)), ms(50));
    }

    #[test]
    fn microseconds_saturate() {
        assert_eq!(to_us(Duration::from_secs(1)), 1_000_000);
        assert_eq!(to_us(Duration::from_secs(u64::MAX)), u32::MAX);
        assert_eq!(from_us(50_000), Duration::from_millis(50));
    }

    #[test]
    fn jitter_source_replays_and_avoids_zero_seed() {
        let (mut a, mut b) = (Jitter::new(42), Jitter::new(42));
        let xs: Vec<u32> = (0..8).map(|_| a.next_u32()).collect();
        let ys: Vec<u32> = (0..8).map(|_| b.next_u32()).collect();
        assert_eq!(xs, ys);
        let mut z = Jitter::new(0);
        assert!((0..8).map(|_| z.next_u32()).any(|x| x != 0));
    }
}
