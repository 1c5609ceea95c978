//! An election's VIPs on this host and on the wire, over its members: adding them with the lease's
//! kernel lifetime, removing them, announcing them (gratuitous ARP / unsolicited NA), and the ARP/ND
//! watch: a claim of a free key waits while another host answers for a VIP (as a VRRP claim does),
//! and an owner that sees another MAC answering for its VIP reports the conflict and re-announces.
//! It does not yield (the VRRP rule for adverts that do not get through): etcd's quorum decided.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::{log_time, Elector};
use crate::control::format_mac;
use crate::election::lease::{self, LeaseClock};
use crate::text::duration;

/// How long a claim's probe waits for an answer (a LAN host answers in well under a millisecond).
const PROBE_WAIT: Duration = Duration::from_millis(20);

impl Elector {
    /// Adds (or refreshes) the VIPs with the lifetime the lease allows now; `announce`: a new claim,
    /// whose first announcement goes out before this returns (a handoff's old owner waits for it).
    pub(super) async fn add_vips(&mut self, clock: LeaseClock, announce: bool) {
        let Some(lifetime) = clock.vip_lifetime(lease::now()) else {
            return;
        };
        self.set_holding(
            true,
            format!("MASTER: we hold the owner key {}", self.owner_key),
        );
        for m in &self.members {
            m.add(&self.host, lifetime, announce).await;
        }
        // Stopped (or slow) between the reading of the clock and the kernel's answer: the lease may
        // have lapsed meanwhile, so check again after the fact.
        if clock.expired(lease::now()) {
            self.release_unconfirmed(Some(clock)).await;
            return;
        }
        if announce {
            for m in &self.members {
                m.announce_once();
                m.spawn_announcements(self.holding.clone());
            }
        }
    }

    pub(super) async fn remove_vips(&self) {
        for m in &self.members {
            m.remove(&self.host).await;
        }
    }

    /// Asks the LAN who answers for each VIP; the answers arrive as sightings.
    pub(super) fn probe_vips(&self) {
        for m in &self.members {
            m.probe();
        }
    }

    /// Takes what the members' ARP/ND watches saw (conflicts while we hold the VIPs).
    pub(super) fn take_sightings(&mut self) {
        let holding = self.holding();
        for m in &mut self.members {
            m.take_sightings(holding);
        }
    }

    /// Claims the free owner key, unless another host answers for a VIP (then nobody should: it may
    /// be a host holding it by hand, or a stale copy; the claim waits and `status` says who).
    pub(super) async fn claim(&mut self, clock: LeaseClock) {
        let Some(id) = self.lease.as_ref().map(|l| l.id) else {
            return;
        };
        let mut answered = None;
        for m in &self.members {
            answered = m.answered(&self.host, PROBE_WAIT).await;
            if answered.is_some() {
                break;
            }
        }
        if let Some((addr, mac)) = answered {
            let why = format!(
                "{addr} is answered for by {} on the LAN; not claiming while another host holds it",
                format_mac(&mac)
            );
            if self.claim_inhibit.as_deref() != Some(why.as_str()) {
                warn!(instance = %self.name, "{why}");
            }
            self.claim_inhibit = Some(why);
            return;
        }
        if let Some(why) = self.claim_inhibit.take() {
            info!(instance = %self.name, "nobody answers for the VIPs any more (was: {why})");
        }
        self.enforce_deadline().await;
        if self.claim_free_key(id).await == Some(true) {
            info!(instance = %self.name, "won the owner key (lease {id:x}, {} left)", duration(clock.remaining(lease::now())));
            self.add_vips(clock, true).await;
        }
    }

    /// The lease may lapse in etcd any moment now: the VIPs go, before anyone else can win the key.
    pub(super) async fn release_unconfirmed(&mut self, clock: Option<LeaseClock>) {
        let since = self.failing_since.map_or("unknown".into(), log_time);
        let released = SystemTime::now();
        self.released_at = Some(released);
        let why = format!(
            "etcd unreachable since {since}; VIP released at {}",
            log_time(released)
        );
        let to = self.idle_state();
        self.set_holding(false, format!("{to}: {why}"));
        self.remove_vips().await;
        warn!(
            instance = %self.name,
            "{why} (the lease ends in etcd within {}; nobody holds the VIP until a host can prove ownership)",
            duration(clock.map(|c| c.remaining(lease::now())).unwrap_or_default()),
        );
    }
}
