//! One instance under an etcd election: its interface, VIPs and announcements, its ARP/ND watch,
//! its checks and links, its hooks and state as people see it. An election is one instance, or the
//! members of a `[[group]]`, which one owner key moves together.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::host::HostAccess;

use crate::config::InstanceConfig;
use crate::conflict::{Conflicts, Sighting, Verdict};
use crate::control::events::{EventHub, EventKind, EventRecord};
use crate::control::status::EtcdStatus;
use crate::control::{format_mac, InstanceStatus};
use crate::election::status::Tracker;
use crate::health::{self, CheckReport, CheckState, TaskSet};
use crate::hooks::{self, Hooks};
use crate::net::kernel::Announce;
use crate::net::netlink::pick_primary;

pub(super) struct Member {
    pub(super) cfg: InstanceConfig,
    ifindex: u32,
    mac: [u8; 6],
    announcer: Arc<dyn Announce>,
    /// The checks; they stop when the member is dropped (the ARP/ND watch, when `sightings` is).
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
    pub(super) async fn prepare(cfg: InstanceConfig, host: &HostAccess) -> Result<Member> {
        let (name, interface, v6) = (cfg.name.clone(), cfg.interface.clone(), cfg.is_v6());
        let (sighted, sightings) = mpsc::channel(64);
        let (link, announcer) = host
            .run(move |k| -> Result<_> {
                let link = k
                    .link_by_name(&interface)
                    .with_context(|| format!("instance {name}"))?;
                let announcer = k.open_announcer(link.index, link.mac)?;
                k.watch_conflicts(link.index, link.mac, v6, sighted)?;
                Ok((link, announcer))
            })
            .await?;
        let (tx, check_reports) = mpsc::channel(64);
        let tasks = health::spawn(0, &cfg.name, &cfg.checks, tx);
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
    pub(super) async fn own_address(&self, host: &HostAccess) -> Result<IpAddr> {
        let vips: Vec<IpAddr> = self.cfg.addresses.iter().map(|v| v.addr).collect();
        let (index, v6) = (self.ifindex, self.cfg.is_v6());
        let all = host.run(move |k| k.address_details(index)).await?;
        pick_primary(&all, v6, &vips).with_context(|| {
            format!(
                "instance {}: {} has no address of its own to name this host in etcd",
                self.cfg.name, self.cfg.interface
            )
        })
    }

    /// Adds (or refreshes) the VIPs with `lifetime`; `new`: a claim, logged.
    pub(super) async fn add(&self, host: &HostAccess, lifetime: Duration, new: bool) {
        for vip in &self.cfg.addresses {
            let (index, addr, len) = (self.ifindex, vip.addr, vip.prefix_len);
            let added = host
                .run(move |k| k.add_address(index, addr, len, Some(lifetime)))
                .await;
            if let Err(err) = added {
                warn!(instance = %self.cfg.name, "cannot add {}: {err:#}", vip.addr);
            } else if new {
                info!(instance = %self.cfg.name, "added {}/{} to {} (kernel lifetime {})", vip.addr, vip.prefix_len, self.cfg.interface, crate::text::duration(lifetime));
            }
        }
    }

    pub(super) async fn remove(&self, host: &HostAccess) {
        self.remove_except(host, &[]).await;
    }

    /// Removes the VIPs not in `kept` (a reload dropped them).
    pub(super) async fn remove_except(&self, host: &HostAccess, kept: &[IpAddr]) {
        for vip in self
            .cfg
            .addresses
            .iter()
            .filter(|v| !kept.contains(&v.addr))
        {
            let (index, addr, len) = (self.ifindex, vip.addr, vip.prefix_len);
            let removed = host.run(move |k| k.remove_address(index, addr, len)).await;
            if let Err(err) = removed {
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
    pub(super) async fn answered(
        &self,
        host: &HostAccess,
        wait: Duration,
    ) -> Option<(IpAddr, [u8; 6])> {
        for vip in &self.cfg.addresses {
            let (index, mac, addr) = (self.ifindex, self.mac, vip.addr);
            let found = host
                .run(move |k| k.who_answers(index, mac, addr, wait))
                .await;
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
            // The watch reports every address on the interface: only ours count.
            if !holding || !self.cfg.addresses.iter().any(|v| v.addr == addr) {
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
    pub(super) async fn link_fault(&self, host: &HostAccess) -> Option<String> {
        let (interface, tracked) = (
            self.cfg.interface.clone(),
            self.cfg.track_interfaces.clone(),
        );
        host.run(move |k| {
            match k.find_link(&interface) {
                Ok(Some(l)) if !l.up => return Some(format!("{interface} is down (no carrier)")),
                Ok(Some(_)) => {}
                Ok(None) => return Some(format!("{interface} is gone")),
                Err(err) => return Some(format!("{interface}: {err:#}")),
            }
            tracked
                .into_iter()
                .find_map(|name| match k.find_link(&name) {
                    Ok(Some(l)) if l.up => None,
                    _ => Some(format!("tracked interface {name} is down")),
                })
        })
        .await
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
    pub(super) async fn status(&self, host: &HostAccess, etcd: EtcdStatus) -> InstanceStatus {
        let index = self.ifindex;
        let present: Vec<IpAddr> = host
            .run(move |k| k.addresses(index))
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
