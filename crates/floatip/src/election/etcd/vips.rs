//! An etcd instance's VIPs on this host and on the wire: adding them with the lease's kernel
//! lifetime, removing them, announcing them (gratuitous ARP / unsolicited NA), and the ARP/ND watch:
//! a claim of a free key waits while another host answers for a VIP (as a VRRP claim does), and an
//! owner that sees another MAC answering for its VIP reports the conflict and re-announces. It does
//! not yield (the VRRP rule for adverts that do not get through): etcd's quorum decided the owner.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{unix, Elector};
use crate::conflict::Verdict;
use crate::control::format_mac;
use crate::election::lease::{self, LeaseClock};
use crate::net::probe::ConflictWatch;

/// How long a claim's probe waits for an answer (a LAN host answers in well under a millisecond).
const PROBE_WAIT: Duration = Duration::from_millis(20);

type Sighting = (IpAddr, [u8; 6], Instant);

/// The ARP/ND watch of an instance's interface: a task that reports every other MAC answering for
/// one of `vips`.
pub(super) fn watch(
    ifindex: u32,
    mac: [u8; 6],
    vips: Vec<IpAddr>,
) -> anyhow::Result<(JoinHandle<()>, mpsc::Receiver<Sighting>)> {
    let v6 = vips.first().is_some_and(IpAddr::is_ipv6);
    let watch = ConflictWatch::open(ifindex, mac, v6)?;
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            match watch.next().await {
                Ok((addr, who)) if vips.contains(&addr) => {
                    // Full: the owner is busy; later sightings say the same.
                    if tx.try_send((addr, who, Instant::now())).is_err() && tx.is_closed() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    warn!("the ARP/ND watch stopped: {err}");
                    return;
                }
            }
        }
    });
    Ok((task, rx))
}

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
        for vip in &self.cfg.addresses {
            if let Err(err) = self
                .netlink
                .add_address(self.ifindex, vip.addr, vip.prefix_len, Some(lifetime))
                .await
            {
                warn!(instance = %self.cfg.name, "cannot add {}: {err:#}", vip.addr);
            } else if announce {
                info!(instance = %self.cfg.name, "added {}/{} to {} (kernel lifetime {lifetime:?})", vip.addr, vip.prefix_len, self.cfg.interface);
            }
        }
        // Stopped (or slow) between the reading of the clock and the kernel's answer: the lease may
        // have lapsed meanwhile, so check again after the fact.
        if clock.expired(lease::now()) {
            self.release_unconfirmed(Some(clock)).await;
            return;
        }
        if announce {
            self.announce_once();
            self.spawn_announcements();
        }
    }

    fn announce_once(&self) {
        for vip in &self.cfg.addresses {
            if let Err(err) = self.announcer.announce(vip.addr) {
                warn!(instance = %self.cfg.name, "cannot announce {}: {err}", vip.addr);
            }
        }
    }

    /// The rest of `[instance.announce]`'s burst after the first round, while we hold the VIPs.
    fn spawn_announcements(&self) {
        let announcer = self.announcer.clone();
        let holding = self.holding.clone();
        let vips: Vec<IpAddr> = self.cfg.addresses.iter().map(|v| v.addr).collect();
        let (count, spacing) = (self.cfg.announce.count, self.cfg.announce.spacing);
        tokio::spawn(async move {
            for _ in 1..count {
                tokio::time::sleep(spacing).await;
                if !holding.load(Ordering::SeqCst) {
                    return;
                }
                for addr in &vips {
                    let _ = announcer.announce(*addr);
                }
            }
        });
    }

    pub(super) async fn remove_vips(&self) {
        for vip in &self.cfg.addresses {
            if let Err(err) = self
                .netlink
                .remove_address(self.ifindex, vip.addr, vip.prefix_len)
                .await
            {
                warn!(instance = %self.cfg.name, "cannot remove {}: {err:#}", vip.addr);
            }
        }
    }

    /// Asks the LAN who answers for each VIP (ARP probe / neighbour solicitation); the answers
    /// arrive as sightings.
    pub(super) fn probe_vips(&self) {
        for vip in &self.cfg.addresses {
            if let Err(err) = self.announcer.probe(vip.addr) {
                warn!(instance = %self.cfg.name, "cannot probe for {}: {err}", vip.addr);
            }
        }
    }

    /// Takes what the ARP/ND watch saw. While we hold the VIPs, a persisting answer from another MAC
    /// is a conflict: logged once, re-announced against at most once a second. Returns the last
    /// sighting seen at or after `since`, if any.
    pub(super) fn take_sightings_since(&mut self, since: Instant) -> Option<(IpAddr, [u8; 6])> {
        let mut recent = None;
        while let Ok((addr, mac, at)) = self.sightings.try_recv() {
            if at >= since {
                recent = Some((addr, mac));
            }
            if !self.holding() {
                continue;
            }
            // `never_yield`: no `Yield` comes back.
            if let Verdict::Reannounce { first_report } =
                self.conflicts.sighting(at, addr, mac, self.mac)
            {
                if first_report {
                    warn!(instance = %self.cfg.name, "conflict: {addr} is also answered for by {}; we hold the owner key in etcd, so we keep it and announce it again", format_mac(&mac));
                }
                self.announce_once();
            }
        }
        recent
    }

    pub(super) fn take_sightings(&mut self) {
        self.take_sightings_since(Instant::now());
    }

    /// Claims the free owner key, unless another host answers for a VIP (then nobody should: it may
    /// be a host holding it by hand, or a stale copy; the claim waits and `status` says who).
    pub(super) async fn claim(&mut self, clock: LeaseClock) {
        let Some(id) = self.lease.as_ref().map(|l| l.id) else {
            return;
        };
        let sent = Instant::now();
        self.probe_vips();
        tokio::time::sleep(PROBE_WAIT).await;
        if let Some((addr, mac)) = self.take_sightings_since(sent) {
            let why = format!(
                "{addr} is answered for by {} on the LAN; not claiming while another host holds it",
                format_mac(&mac)
            );
            if self.claim_inhibit.as_deref() != Some(why.as_str()) {
                warn!(instance = %self.cfg.name, "{why}");
            }
            self.claim_inhibit = Some(why);
            return;
        }
        if let Some(why) = self.claim_inhibit.take() {
            info!(instance = %self.cfg.name, "nobody answers for the VIPs any more (was: {why})");
        }
        self.enforce_deadline().await;
        if self.claim_free_key(id).await == Some(true) {
            info!(instance = %self.cfg.name, "won the owner key (lease {id:x}, {:?} left)", clock.remaining(lease::now()));
            self.add_vips(clock, true).await;
        }
    }

    /// The lease may lapse in etcd any moment now: the VIPs go, before anyone else can win the key.
    pub(super) async fn release_unconfirmed(&mut self, clock: Option<LeaseClock>) {
        let since = self.failing_since.map_or("unknown".into(), unix);
        let released = SystemTime::now();
        self.released_at = Some(released);
        let why = format!(
            "etcd unreachable since {since}; VIP released at {}",
            unix(released)
        );
        let to = self.idle_state();
        self.set_holding(false, format!("{to}: {why}"));
        self.remove_vips().await;
        warn!(
            instance = %self.cfg.name,
            "{why} (the lease ends in etcd within {:?}; nobody holds the VIP until a host can prove ownership)",
            clock.map(|c| c.remaining(lease::now())).unwrap_or_default(),
        );
    }
}
