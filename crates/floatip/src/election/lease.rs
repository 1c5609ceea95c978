//! The timing rules of etcd ownership, pure: when a lease's holder must have let go of the VIP, and
//! which kernel lifetime a VIP may carry. No I/O; times are `CLOCK_BOOTTIME` readings ([`now`]),
//! which keep counting while the machine is suspended or the process is stopped.
//!
//! The argument (docs/etcd.md has it in full): etcd starts a lease's TTL when it *receives* a grant
//! or keep-alive; we count from before we *sent* it, so our deadline is never later than etcd's.
//! The VIP's kernel lifetime is cut so that the kernel deletes it (at most [`KERNEL_SLACK`] late)
//! before our deadline less [`LeaseClock::margin`]; the holder also removes it itself at that moment.
//! Nobody else can win the key before etcd's deadline, so a holder that is cut off, frozen or killed
//! has lost the VIP before another host can claim it.

use std::time::Duration;

/// How late the kernel may delete an address whose lifetime ran out: its lifetime check runs at
/// most about a second after the expiry (IPv4 `check_lifetime`, IPv6 `addrconf_verify`).
pub const KERNEL_SLACK: Duration = Duration::from_secs(1);

/// Renewals per lease TTL: a lease of 5 s is renewed every second.
pub const RENEWALS_PER_TTL: u32 = 5;

/// The clock every deadline is read from: `CLOCK_BOOTTIME`, which (unlike `CLOCK_MONOTONIC`) also
/// counts time the machine spent suspended, as a paused VM's etcd peers do.
pub fn now() -> Duration {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
        // CLOCK_BOOTTIME exists on every Linux floatip runs on; never pretend time stood still.
        Err(err) => panic!("cannot read CLOCK_BOOTTIME: {err}"),
    }
}

/// What we know about our lease: when, at the latest, etcd may let it expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClock {
    /// The TTL etcd granted.
    ttl: Duration,
    /// `sent + ttl` of the last grant or keep-alive etcd confirmed (etcd's own deadline is later).
    deadline: Duration,
}

impl LeaseClock {
    /// A grant or keep-alive sent at `sent` that etcd answered with `ttl` seconds left.
    pub fn renewed(sent: Duration, ttl_secs: i64) -> Option<LeaseClock> {
        (ttl_secs > 0).then(|| {
            let ttl = Duration::from_secs(ttl_secs as u64);
            LeaseClock {
                ttl,
                deadline: sent + ttl,
            }
        })
    }

    /// A later confirmation; the deadline never moves back.
    pub fn renew(&mut self, sent: Duration, ttl_secs: i64) -> bool {
        match LeaseClock::renewed(sent, ttl_secs) {
            Some(next) => {
                self.ttl = next.ttl;
                self.deadline = self.deadline.max(next.deadline);
                true
            }
            None => false,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The latest moment the lease is surely alive in etcd.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// What we keep between our deadline and the moment the VIP must be gone: the time to remove it
    /// (a netlink round trip), clock-rate differences (etcd counts with its own clock: at 100 ppm a
    /// 60 s lease differs by 6 ms) and scheduling. A tenth of the TTL, at least 500 ms.
    pub fn margin(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(500))
    }

    /// From this moment the holder must not hold the VIP.
    pub fn release_at(&self) -> Duration {
        self.deadline.saturating_sub(self.margin())
    }

    /// Whether the holder must have let go by `now`.
    pub fn expired(&self, now: Duration) -> bool {
        now >= self.release_at()
    }

    /// The remaining time, for status and logs.
    pub fn remaining(&self, now: Duration) -> Duration {
        self.deadline.saturating_sub(now)
    }

    /// The kernel lifetime a VIP added (or refreshed) at `now` may carry: whole seconds (the
    /// kernel counts in seconds), such that even a [`KERNEL_SLACK`]-late deletion happens by
    /// [`LeaseClock::release_at`]. `None`: too little time is left to add it at all.
    pub fn vip_lifetime(&self, now: Duration) -> Option<Duration> {
        let left = self
            .release_at()
            .checked_sub(now)?
            .checked_sub(KERNEL_SLACK)?;
        let secs = left.as_secs();
        (secs >= 1).then(|| Duration::from_secs(secs))
    }

    /// How often to send keep-alives.
    pub fn renew_every(&self) -> Duration {
        self.ttl / RENEWALS_PER_TTL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lapsed_or_unknown_lease_is_no_lease() {
        assert!(LeaseClock::renewed(S, 0).is_none());
        assert!(LeaseClock::renewed(S, -1).is_none());
        let mut l = LeaseClock::renewed(S, 5).unwrap();
        assert!(!l.renew(2 * S, 0));
        assert_eq!(l.deadline(), 6 * S);
    }

    #[test]
    fn the_deadline_counts_from_the_send_and_never_moves_back() {
        let mut l = LeaseClock::renewed(100 * S, 5).unwrap();
        assert_eq!(l.deadline(), 105 * S);
        assert!(l.renew(101 * S, 5));
        assert_eq!(l.deadline(), 106 * S);
        // A late answer to an older keep-alive does not shorten it.
        assert!(l.renew(100 * S + 500 * MS, 5));
        assert_eq!(l.deadline(), 106 * S);
    }

    #[test]
    fn the_kernel_lifetime_ends_before_the_holder_must_let_go() {
        for ttl in 3..=60i64 {
            let sent = 1000 * S;
            let l = LeaseClock::renewed(sent, ttl).unwrap();
            for step in 0..(ttl as u32 * 20) {
                let now = sent + MS * (step * 50);
                match l.vip_lifetime(now) {
                    Some(lft) => {
                        assert!(lft >= S && lft.subsec_nanos() == 0, "ttl {ttl}: {lft:?}");
                        // Deleted at the latest KERNEL_SLACK after the lifetime ends.
                        assert!(now + lft + KERNEL_SLACK <= l.release_at(), "ttl {ttl}");
                        assert!(!l.expired(now));
                    }
                    None => assert!(now + S + KERNEL_SLACK > l.release_at(), "ttl {ttl}"),
                }
            }
            assert!(l.release_at() < l.deadline());
            assert!(l.expired(l.deadline()));
        }
    }

    #[test]
    fn a_fresh_lease_gives_the_vip_a_lifetime_longer_than_one_renewal() {
        // Renewed on time, the VIP never lapses between two renewals (no flapping).
        for ttl in 3..=60i64 {
            let l = LeaseClock::renewed(S, ttl).unwrap();
            let rtt = 50 * MS;
            let lft = l.vip_lifetime(S + rtt).expect("a lifetime");
            assert!(lft > l.renew_every(), "ttl {ttl}: {lft:?}");
        }
    }

    #[test]
    fn five_seconds_is_a_three_second_vip_released_half_a_second_early() {
        let l = LeaseClock::renewed(10 * S, 5).unwrap();
        assert_eq!(l.margin(), 500 * MS);
        assert_eq!(l.release_at(), 14 * S + 500 * MS);
        assert_eq!(l.vip_lifetime(10 * S + 20 * MS), Some(3 * S));
        assert_eq!(l.renew_every(), S);
    }
}
