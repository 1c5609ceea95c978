//! One instance under an etcd election: its interface, VIPs and announcements, its ARP/ND watch,
//! its checks and links, its hooks and state as people see it. An election is one instance, or the
//! members of a `[[group]]`, which one owner key moves together.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::InstanceConfig;
use crate::conflict::{Conflicts, Sighting, Verdict};
use crate::control::events::{EventHub, EventKind, EventRecord};
use crate::control::status::EtcdStatus;
use crate::control::{format_mac, InstanceStatus};
use crate::election::status::Tracker;
use crate::health::{self, CheckReport, CheckState, TaskSet};
use crate::hooks::{self, Hooks};
use crate::net::announce::Announcer;
use crate::net::netlink::Netlink;
use crate::net::probe::{self, ConflictWatch};

pub(super) struct Member {
    pub(super) cfg: InstanceConfig,
    ifindex: u32,
    mac: [u8; 6],
    announcer: Arc<Announcer>,
    /// The checks and the ARP/ND watch; they stop when the member is dropped.
    _tasks: TaskSet,
    check_reports: mpsc::Receiver<CheckReport>,
    check_states: Vec<CheckState>,
    /// Other hosts answering for our VIPs, and what an owner makes of them (it never yields: etcd's
    /// quorum decided who holds the address).
    sightings: mpsc::Receiver<Sighting>,
    conflicts: Conflicts,
    pub(super) tracker: Tracker,
    /// `[instance.notify]`: run on each transition, as for a VRRP instance.
    hooks: Option<Hooks>,
}

impl Member {
    /// Resolves the interface and starts the checks and the ARP/ND watch.
    pub(super) async fn prepare(cfg: InstanceConfig, netlink: &Netlink) -> Result<Member> {
        let link = netlink
            .link_by_name(&cfg.interface)
            .await
            .with_context(|| format!("instance {}", cfg.name))?;
        let announcer = Arc::new(Announcer::open(link.index, link.mac)?);
        let (tx, check_reports) = mpsc::channel(64);
        let mut tasks = health::spawn(0, &cfg.name, &cfg.checks, tx);
        let vips: Vec<IpAddr> = cfg.addresses.iter().map(|v| v.addr).collect();
        let (watch, sightings) = watch(link.index, link.mac, vips)?;
        tasks.push(watch);
        let hooks = hooks::spawn_configured(&cfg.name, &cfg.notify);
        Ok(Member {
            ifindex: link.index,
            mac: link.mac,
            announcer,
            _tasks: tasks,
            check_reports,
            check_states: CheckState::for_checks(&cfg.checks),
            sightings,
            conflicts: Conflicts::never_yielding(),
            tracker: Tracker::default(),
            hooks,
            cfg,
        })
    }

    /// Our own address on the interface (not a VIP): how this host is named in etcd.
    pub(super) async fn own_address(&self, netlink: &Netlink) -> Result<IpAddr> {
        let vips: Vec<IpAddr> = self.cfg.addresses.iter().map(|v| v.addr).collect();
        netlink
            .primary_address(self.ifindex, self.cfg.is_v6(), &vips)
            .await?
            .with_context(|| {
                format!(
                    "instance {}: {} has no address of its own to name this host in etcd",
                    self.cfg.name, self.cfg.interface
                )
            })
    }

    /// Adds (or refreshes) the VIPs with `lifetime`; `new`: a claim, logged.
    pub(super) async fn add(&self, netlink: &Netlink, lifetime: Duration, new: bool) {
        for vip in &self.cfg.addresses {
            if let Err(err) = netlink
                .add_address(self.ifindex, vip.addr, vip.prefix_len, Some(lifetime))
                .await
            {
                warn!(instance = %self.cfg.name, "cannot add {}: {err:#}", vip.addr);
            } else if new {
                info!(instance = %self.cfg.name, "added {}/{} to {} (kernel lifetime {})", vip.addr, vip.prefix_len, self.cfg.interface, crate::config::format_duration(lifetime));
            }
        }
    }

    pub(super) async fn remove(&self, netlink: &Netlink) {
        self.remove_except(netlink, &[]).await;
    }

    /// Removes the VIPs not in `kept` (a reload dropped them).
    pub(super) async fn remove_except(&self, netlink: &Netlink, kept: &[IpAddr]) {
        for vip in self
            .cfg
            .addresses
            .iter()
            .filter(|v| !kept.contains(&v.addr))
        {
            if let Err(err) = netlink
                .remove_address(self.ifindex, vip.addr, vip.prefix_len)
                .await
            {
                warn!(instance = %self.cfg.name, "cannot remove {}: {err:#}", vip.addr);
            }
        }
    }

    /// One gratuitous ARP / unsolicited NA per VIP.
    pub(super) fn announce_once(&self) {
        for vip in &self.cfg.addresses {
            if let Err(err) = self.announcer.announce(vip.addr) {
                warn!(instance = %self.cfg.name, "cannot announce {}: {err}", vip.addr);
            }
        }
    }

    /// The rest of `[instance.announce]`'s burst after the first round, while `holding`.
    pub(super) fn spawn_announcements(&self, holding: Arc<AtomicBool>) {
        let announcer = self.announcer.clone();
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

    /// Asks the LAN who answers for each VIP; the answers arrive as sightings.
    pub(super) fn probe(&self) {
        for vip in &self.cfg.addresses {
            if let Err(err) = self.announcer.probe(vip.addr) {
                warn!(instance = %self.cfg.name, "cannot probe for {}: {err}", vip.addr);
            }
        }
    }

    /// Asks the LAN whether another host answers for one of the VIPs (an ARP probe / neighbour
    /// solicitation each, answers awaited for `wait`): the first that does, with its MAC.
    pub(super) async fn answered(&self, wait: Duration) -> Option<(IpAddr, [u8; 6])> {
        for vip in &self.cfg.addresses {
            let found = match vip.addr {
                IpAddr::V4(a) => {
                    probe::arp_probe(self.ifindex, self.mac, a, 1, Duration::ZERO, wait).await
                }
                IpAddr::V6(a) => {
                    probe::ndp_probe(self.ifindex, self.mac, a, 1, Duration::ZERO, wait).await
                }
            };
            match found {
                Ok(Some(mac)) => return Some((vip.addr, mac)),
                Ok(None) => {}
                Err(err) => {
                    warn!(instance = %self.cfg.name, "cannot probe for {}: {err:#}", vip.addr)
                }
            }
        }
        None
    }

    /// Takes what the ARP/ND watch saw. While `holding`, a persisting answer from another MAC is a
    /// conflict: logged once, re-announced against at most once a second.
    pub(super) fn take_sightings(&mut self, holding: bool) {
        let at = Instant::now();
        while let Ok(Sighting {
            addr, holder: mac, ..
        }) = self.sightings.try_recv()
        {
            if !holding {
                continue;
            }
            // `never_yielding`: no `Yield` comes back.
            if let Verdict::Reannounce { first_report } =
                self.conflicts.sighting(at, addr, mac, self.mac)
            {
                if first_report {
                    warn!(instance = %self.cfg.name, "conflict: {addr} is also answered for by {}; we hold the owner key in etcd, so we keep it and announce it again", format_mac(&mac));
                }
                self.announce_once();
            }
        }
    }

    /// The interface's carrier and the tracked interfaces: the first one down, as a fault.
    pub(super) async fn link_fault(&self, netlink: &Netlink) -> Option<String> {
        match netlink.link_by_index(self.ifindex).await {
            Ok(l) if !l.up => return Some(format!("{} is down (no carrier)", self.cfg.interface)),
            Ok(_) => {}
            Err(err) => return Some(format!("{}: {err:#}", self.cfg.interface)),
        }
        for name in &self.cfg.track_interfaces {
            match netlink.find_link(name).await {
                Ok(Some(l)) if l.up => {}
                _ => return Some(format!("tracked interface {name} is down")),
            }
        }
        None
    }

    /// Takes the checks' reports; returns their fault and the priority their weights give.
    pub(super) fn checks(&mut self) -> (Option<String>, u8) {
        while let Ok(r) = self.check_reports.try_recv() {
            if let Some(s) = self.check_states.get_mut(r.check) {
                s.apply(&r);
            }
        }
        health::evaluate_states(self.cfg.priority, &self.cfg.checks, &self.check_states)
    }

    /// A transition to `to`: history, hook, `floatip events` record. No change, nothing.
    pub(super) fn transition(&mut self, to: &'static str, reason: &str, events: &EventHub) {
        let from = self.tracker.state();
        if self.tracker.transition(to, reason.to_string()) {
            // The start (INIT to BACKUP) runs no hook, as for a VRRP instance.
            if from != "INIT" {
                self.run_hook(to, from, reason);
            }
            publish_transition(events, &self.cfg.name, to, from, reason);
        }
    }

    /// The hook of a transition without a state of its own (STOP).
    pub(super) fn run_hook(&self, to: &str, from: &str, reason: &str) {
        if let Some(h) = &self.hooks {
            let addrs: Vec<String> = self.cfg.addresses.iter().map(|v| v.to_string()).collect();
            h.transition(to, from, reason, &addrs);
        }
    }

    /// Lets the hooks finish (bounded), at the daemon's stop.
    pub(super) async fn drain_hooks(&mut self, bound: Duration) {
        if let Some(h) = self.hooks.take() {
            h.drain(bound).await;
        }
    }

    /// Forgets sightings (we no longer hold the VIPs: a new owner announcing is normal).
    pub(super) fn reset_sightings(&mut self) {
        self.conflicts.reset_sightings();
    }

    /// The status model of this member: the kernel's VIPs now, the checks, the conflicts.
    pub(super) async fn status(&self, netlink: &Netlink, etcd: EtcdStatus) -> InstanceStatus {
        let present: Vec<IpAddr> = netlink
            .addresses(self.ifindex)
            .await
            .map(|a| a.into_iter().map(|(ip, _)| ip).collect())
            .unwrap_or_default();
        let mut st = self.tracker.status(&self.cfg, &present, etcd);
        st.checks = self.check_states.iter().map(CheckState::status).collect();
        st.conflicts = self.conflicts.status();
        st.counters.conflicts = self.conflicts.total;
        st
    }
}

/// A `floatip events` transition record.
pub(super) fn publish_transition(events: &EventHub, name: &str, to: &str, from: &str, why: &str) {
    let mut rec = EventRecord::new(EventKind::Transition, Some(name), why);
    rec.from = Some(from.to_string());
    rec.to = Some(to.to_string());
    events.publish(rec);
}

/// The ARP/ND watch of an interface: a task that reports every other MAC answering for one of
/// `vips`.
fn watch(
    ifindex: u32,
    mac: [u8; 6],
    vips: Vec<IpAddr>,
) -> Result<(JoinHandle<()>, mpsc::Receiver<Sighting>)> {
    let v6 = vips.first().is_some_and(IpAddr::is_ipv6);
    let watch = ConflictWatch::open(ifindex, mac, v6)?;
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            match watch.next().await {
                Ok((addr, who)) if vips.contains(&addr) => {
                    // Full: the task is busy; later sightings say the same.
                    let seen = Sighting {
                        ifindex,
                        addr,
                        holder: who,
                    };
                    if tx.try_send(seen).is_err() && tx.is_closed() {
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
