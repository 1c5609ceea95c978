//! Two owners: what a master does when another MAC answers for its VIP.
//!
//! Sightings come from the passive ARP/ND watch: gratuitous ARPs and NAs, and the answers to the
//! master's own periodic probes (a host that holds the address by hand only shows itself when asked). A single
//! sighting is not acted on: during a normal preemption the new master's announcement can arrive a
//! moment before its advert. A conflict that persists for [`CONFIRM_AFTER`] is logged and answered by
//! re-announcing; one that persists for [`YIELD_AFTER`] is resolved without VRRP (whose adverts are
//! evidently not getting through): the higher MAC keeps the address, the lower one yields and says why,
//! and stays out until probes find the address answered by nobody for [`CLEAR_ROUNDS`] rounds, or
//! until an advert of this instance's VRID is heard again: then the other owner is one of our VRRP
//! routers and the election decides (a claim still waits until nobody else answers, see
//! `daemon::claim_probe`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::control::format_mac;

/// How long a conflict must persist before it is reported and re-announced against.
pub const CONFIRM_AFTER: Duration = Duration::from_secs(1);
/// How long a conflict must persist before the lower MAC yields.
pub const YIELD_AFTER: Duration = Duration::from_secs(3);
/// A sighting older than this is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(10);
/// Probe rounds with no other holder before a yielded instance may claim again.
pub const CLEAR_ROUNDS: u32 = 2;
/// At most one re-announcement per this period.
pub const REANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// One sighting: another host (`holder`, its MAC) claimed `addr` on interface `ifindex`, in an
/// announcement or in the answer to one of our probes. The ARP/ND watch sends these to the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub holder: [u8; 6],
}

/// Another MAC answering for one of our VIPs, from its first sighting on: a conflict once it persists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rival {
    pub addr: IpAddr,
    pub mac: [u8; 6],
    pub first_seen: Instant,
    pub last_seen: Instant,
    pub count: u64,
    pub reported: bool,
}

/// What the daemon should do after a sighting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing yet (first sighting, or already handled recently).
    Wait,
    /// Log it (first time confirmed) and/or re-announce our VIPs.
    Reannounce { first_report: bool },
    /// Give the address up: the other side has the higher MAC. The string is the reason for FAULT.
    Yield(String),
}

/// Per-instance conflict state.
#[derive(Debug, Default, Clone)]
pub struct Conflicts {
    pub rivals: Vec<Rival>,
    /// Set while we have yielded to a higher MAC.
    pub yielded: Option<String>,
    pub total: u64,
    /// Never yield (an etcd owner: the quorum decided who holds the address); only re-announce.
    pub never_yield: bool,
    clear_rounds: u32,
    last_reannounce: Option<Instant>,
}

impl Conflicts {
    /// For an owner the etcd quorum chose: it never yields, it only re-announces.
    pub fn never_yielding() -> Conflicts {
        Conflicts {
            never_yield: true,
            ..Conflicts::default()
        }
    }

    /// Another MAC answered for `addr` while we hold it.
    pub fn sighting(&mut self, now: Instant, addr: IpAddr, mac: [u8; 6], ours: [u8; 6]) -> Verdict {
        self.forget(now);
        self.clear_rounds = 0;
        let idx = match self
            .rivals
            .iter()
            .position(|s| s.addr == addr && s.mac == mac)
        {
            Some(i) => i,
            None => {
                self.rivals.push(Rival {
                    addr,
                    mac,
                    first_seen: now,
                    last_seen: now,
                    count: 1,
                    reported: false,
                });
                return Verdict::Wait;
            }
        };
        let s = &mut self.rivals[idx];
        s.last_seen = now;
        s.count += 1;
        let age = now.saturating_duration_since(s.first_seen);
        if age < CONFIRM_AFTER {
            return Verdict::Wait;
        }
        let first_report = !s.reported;
        if first_report {
            s.reported = true;
            self.total += 1;
        }
        if age >= YIELD_AFTER && mac > ours && self.yielded.is_none() && !self.never_yield {
            let reason = format!(
                "yielding {addr} to {}, which also answers for it and has the higher MAC (ours {}); adverts between us are not getting through",
                format_mac(&mac),
                format_mac(&ours)
            );
            self.yielded = Some(reason.clone());
            return Verdict::Yield(reason);
        }
        if first_report
            || self
                .last_reannounce
                .is_none_or(|t| now.saturating_duration_since(t) >= REANNOUNCE_EVERY)
        {
            self.last_reannounce = Some(now);
            return Verdict::Reannounce { first_report };
        }
        Verdict::Wait
    }

    /// A probe round found nobody else answering. Returns true when a yield ends.
    pub fn quiet_round(&mut self, now: Instant) -> bool {
        self.forget(now);
        if self.yielded.is_none() {
            return false;
        }
        self.clear_rounds += 1;
        if self.clear_rounds >= CLEAR_ROUNDS {
            self.yielded = None;
            self.rivals.clear();
            self.clear_rounds = 0;
            return true;
        }
        false
    }

    /// A VRRP speaker of this instance is heard again: the election decides who holds the address,
    /// not the conflict rule (meant for an owner that is not one of our routers). Returns the yield
    /// that ends, if any.
    pub fn advert_heard(&mut self) -> Option<String> {
        let ended = self.yielded.take()?;
        self.rivals.clear();
        self.clear_rounds = 0;
        Some(ended)
    }

    /// What `status` shows: each confirmed sighting (reported once it persisted).
    pub fn status(&self) -> Vec<crate::control::ConflictStatus> {
        self.rivals
            .iter()
            .filter(|s| s.reported)
            .map(|s| crate::control::ConflictStatus {
                address: s.addr,
                mac: format_mac(&s.mac),
                last_seen_age_ms: u64::try_from(s.last_seen.elapsed().as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect()
    }

    /// Sightings stop mattering once we are not master (a new master announcing is normal).
    pub fn reset_sightings(&mut self) {
        self.rivals.clear();
    }

    fn forget(&mut self, now: Instant) {
        self.rivals
            .retain(|s| now.saturating_duration_since(s.last_seen) < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 5];
    const LOWER: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const HIGHER: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn vip() -> IpAddr {
        "192.0.2.97".parse().unwrap()
    }

    #[test]
    fn an_advert_heard_ends_a_yield() {
        let mut c = Conflicts::default();
        let t0 = Instant::now();
        assert_eq!(c.advert_heard(), None);
        c.sighting(t0, vip(), HIGHER, OURS);
        let v = c.sighting(t0 + Duration::from_secs(4), vip(), HIGHER, OURS);
        assert!(matches!(v, Verdict::Yield(_)));
        assert!(c.advert_heard().unwrap().contains("yielding 192.0.2.97"));
        assert!(c.yielded.is_none() && c.rivals.is_empty());
    }

    #[test]
    fn a_single_sighting_is_not_acted_on() {
        let mut c = Conflicts::default();
        let t0 = Instant::now();
        assert_eq!(c.sighting(t0, vip(), HIGHER, OURS), Verdict::Wait);
        assert_eq!(c.total, 0);
    }

    #[test]
    fn a_persisting_conflict_is_reported_once_and_reannounced_at_most_once_a_second() {
        let mut c = Conflicts::default();
        let t0 = Instant::now();
        c.sighting(t0, vip(), LOWER, OURS);
        assert_eq!(
            c.sighting(t0 + Duration::from_millis(1100), vip(), LOWER, OURS),
            Verdict::Reannounce { first_report: true }
        );
        assert_eq!(
            c.sighting(t0 + Duration::from_millis(1500), vip(), LOWER, OURS),
            Verdict::Wait
        );
        assert_eq!(
            c.sighting(t0 + Duration::from_millis(2200), vip(), LOWER, OURS),
            Verdict::Reannounce {
                first_report: false
            }
        );
        assert_eq!(c.total, 1);
    }

    #[test]
    fn the_lower_mac_yields_after_the_conflict_persists_and_the_higher_keeps() {
        let t0 = Instant::now();
        let mut lower_side = Conflicts::default();
        let mut higher_side = Conflicts::default();
        for ms in [0, 1000, 2000, 3000, 3500] {
            let t = t0 + Duration::from_millis(ms);
            let v = lower_side.sighting(t, vip(), HIGHER, OURS);
            if (3000..3500).contains(&ms) {
                assert!(matches!(v, Verdict::Yield(ref r) if r.contains("02:00:00:00:00:09")));
            }
            let w = higher_side.sighting(t, vip(), LOWER, OURS);
            assert!(!matches!(w, Verdict::Yield(_)));
        }
        assert!(lower_side.yielded.is_some());
        assert!(higher_side.yielded.is_none());
    }

    #[test]
    fn a_yield_ends_after_quiet_probe_rounds_and_a_sighting_restarts_the_count() {
        let t0 = Instant::now();
        let mut c = Conflicts::default();
        for ms in [0, 1000, 3000] {
            c.sighting(t0 + Duration::from_millis(ms), vip(), HIGHER, OURS);
        }
        assert!(c.yielded.is_some());
        assert!(!c.quiet_round(t0 + Duration::from_secs(4)));
        c.sighting(t0 + Duration::from_secs(5), vip(), HIGHER, OURS);
        assert!(!c.quiet_round(t0 + Duration::from_secs(6)));
        assert!(c.quiet_round(t0 + Duration::from_secs(7)));
        assert!(c.yielded.is_none());
        assert!(c.rivals.is_empty());
    }

    #[test]
    fn old_sightings_are_forgotten() {
        let t0 = Instant::now();
        let mut c = Conflicts::default();
        c.sighting(t0, vip(), LOWER, OURS);
        // Eleven seconds later the same MAC is a new first sighting, not a confirmed conflict.
        assert_eq!(
            c.sighting(t0 + Duration::from_secs(11), vip(), LOWER, OURS),
            Verdict::Wait
        );
    }
}
