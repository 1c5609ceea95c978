//! `election = "etcd"`: the owner of an instance's VIPs is the holder of the key
//! `PREFIX<instance>/owner`, put with a lease of `lease_ttl`. One task per instance: it keeps its
//! candidacy (`PREFIX<instance>/candidates/<our address>`, same lease) in etcd, claims the key when it
//! is free and we are the best candidate, adds the VIPs with a kernel lifetime that ends before the
//! lease can (see [`super::lease`]), renews lease and lifetime together, and removes the VIPs itself
//! once a renewal has not succeeded in time. This file holds the task and its loop; the rules are in
//! [`decide`], the etcd requests in `client`, the VIPs on the wire in `vips`, planned moves and the
//! operator's commands in `handoff`, checks and status in `report`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::lease::{self, LeaseClock};

mod client;
pub mod decide;
#[cfg(test)]
mod fake;
mod gateway;
mod handoff;
pub mod host;
mod member;
pub mod reload;
mod report;
#[cfg(test)]
mod tests;
mod vips;
pub mod wire;

pub use handoff::EtcdCall;

use crate::config::{EtcdConfig, GroupConfig, InstanceConfig};
use crate::control::events::EventHub;
use crate::control::InstanceStatus;
use crate::net::kernel::Host;
use crate::net::netlink::Netlink;
use decide::{Me, Step, View};
use handoff::Handing;
use host::HostAccess;
use member::Member;

/// How often a task reads its instance's keys (a free owner key is claimed within this).
const POLL: Duration = Duration::from_millis(100);
/// How often while a planned move of ours is in progress (the old owner keeps the VIPs until the
/// successor has announced them, and removes them right after).
const HANDOFF_POLL: Duration = Duration::from_millis(10);
/// How long the stop hook may run when the daemon exits (as for VRRP instances).
const HOOK_DRAIN: Duration = Duration::from_secs(10);

/// Every `election = "etcd"` instance, ready to run: interfaces resolved, stale VIPs removed, the
/// client set up. An error here (a missing interface, an unreadable certificate) stops the start.
pub struct Elections(Vec<Elector>);

/// Where the daemon sends the operator's `takeover`, `release` and `auto` of etcd instances and
/// groups (a member's name reaches its group's election), and the `[[group]]`s of etcd instances.
#[derive(Default)]
pub struct Handles {
    pub calls: BTreeMap<String, mpsc::Sender<EtcdCall>>,
    pub groups: Vec<GroupConfig>,
    /// The running elections' settings (what a reload compares the file with) and `[etcd]`.
    pub units: Vec<(String, Vec<InstanceConfig>)>,
    pub etcd: Option<EtcdConfig>,
    /// Each election's latest status of its members, as its task last published it.
    pub statuses: Vec<watch::Receiver<Vec<InstanceStatus>>>,
}

impl Handles {
    /// Every etcd instance's latest status.
    pub fn statuses(&self) -> Vec<InstanceStatus> {
        self.statuses
            .iter()
            .flat_map(|rx| rx.borrow().clone())
            .collect()
    }
}

impl Elections {
    /// `events`: the daemon's `floatip events` hub, which gets each transition as the hooks do.
    /// `overrides`: the operator's takeover/release that survive a restart, by instance or group.
    pub async fn prepare(
        etcd: &EtcdConfig,
        (instances, groups): (Vec<InstanceConfig>, Vec<GroupConfig>),
        events: Arc<EventHub>,
        overrides: &BTreeMap<String, vrrp::Override>,
        state_dir: &std::path::Path,
    ) -> Result<(Elections, Handles)> {
        // Read the TLS files once, before anything runs: an unreadable one stops the start.
        gateway::Endpoint::all(etcd)?;
        let host = HostAccess::new(Box::new(Host::without_loop(Netlink::new()?)));
        let units = reload::units(instances, &groups);
        let mut electors = Vec::new();
        let mut handles = Handles {
            groups,
            units: units.clone(),
            etcd: Some(etcd.clone()),
            ..Handles::default()
        };
        for (name, members) in units {
            let (tx, rx) = mpsc::channel(4);
            let (status_tx, status_rx) = watch::channel(Vec::new());
            handles.statuses.push(status_rx);
            handles.calls.insert(name.clone(), tx.clone());
            for m in &members {
                handles.calls.insert(m.name.clone(), tx.clone());
            }
            let o = overrides
                .get(&name)
                .copied()
                .unwrap_or(vrrp::Override::Auto);
            let shared = Shared {
                cluster: client::Cluster::new(gateway::Endpoint::all(etcd)?, etcd.lease_ttl),
                host: host.clone(),
                events: events.clone(),
                state_dir: state_dir.to_path_buf(),
            };
            electors.push(Elector::prepare(name, members, etcd, shared, (rx, status_tx), o).await?);
        }
        Ok((Elections(electors), handles))
    }

    /// Runs them until `stop` turns true, then each lets go of everything.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for elector in self.0 {
            tasks.spawn(elector.run(stop.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            done.context("an etcd election task panicked")?;
        }
        Ok(())
    }
}

/// What every instance's task gets from the daemon.
struct Shared {
    cluster: client::Cluster,
    host: HostAccess,
    events: Arc<EventHub>,
    state_dir: std::path::PathBuf,
}

/// Our lease.
struct Lease {
    id: i64,
    clock: LeaseClock,
    next_renew: Duration,
    /// Our candidacy is in etcd under this lease (as it should be now).
    candidate: bool,
}

/// One election: an `election = "etcd"` instance, or a `[[group]]` of them (one owner key, the
/// members' VIPs move together).
struct Elector {
    /// The instance's or the group's name: the keys' directory and the operator's name for it.
    name: String,
    members: Vec<Member>,
    /// Whether our candidacy takes the VIPs from a lower-priority owner (every member's `preempt`).
    preempt: bool,
    /// The `[etcd] endpoints`, the member in use, and which ones rest after failing.
    etcd: client::Cluster,
    /// The host (the `Kernel` trait): addresses, links, announcements, probes.
    host: HostAccess,
    /// Our own address on the (first member's) interface: the candidate key's name and the tie-break.
    me: IpAddr,
    /// The owner key's value when we hold it: host name and address.
    node: String,
    owner_key: String,
    handoff_key: String,
    dir: String,
    /// `[etcd] lease_ttl`.
    ttl: Duration,
    lease: Option<Lease>,
    /// etcd said our lease has ended: the next tick starts over with a new one.
    lease_gone: bool,
    /// The VIPs are (being) added; shared with the announcement bursts, which stop when it turns false.
    holding: Arc<AtomicBool>,
    /// The first failed renewal since the last good one (wall clock, for people).
    failing_since: Option<SystemTime>,
    /// When we last let go because the lease could not be renewed.
    released_at: Option<SystemTime>,
    /// What the last read of the keys showed.
    view: View,
    /// Why a claim waits: another host answers for a VIP.
    claim_inhibit: Option<String>,
    /// Why we may not own the VIPs (a failing check, an interface or a tracked one down): FAULT.
    fault: Option<String>,
    /// The priority our candidacy carries (the lowest of the members' after their checks' weights;
    /// 254 under `takeover`).
    priority: u8,
    /// The operator's override (`takeover`, `release`; `Auto`: none).
    override_mode: vrrp::Override,
    /// A planned move of ours in progress.
    handing: Option<Handing>,
    /// A preempting successor did not take the VIPs: not before this (`lease::now`) again.
    preempt_after: Option<Duration>,
    /// A `release` waiting for its handoff: the control client's reply and the message for it.
    pending_release: Option<(
        tokio::sync::oneshot::Sender<crate::control::Response>,
        String,
    )>,
    /// The daemon is stopping: hand over, then revoke.
    stopping: bool,
    /// The operator's `takeover`, `release`, `auto`.
    calls: mpsc::Receiver<EtcdCall>,
    /// Where `publish` puts the members' status for the control socket (see [`Handles::statuses`]).
    status: watch::Sender<Vec<InstanceStatus>>,
    state_dir: std::path::PathBuf,
    /// `floatip events`: a transition record for each transition, in the hooks' order.
    events: Arc<EventHub>,
}

impl Elector {
    /// `name`: the instance's, or the group's for its `members` (in the group's order).
    async fn prepare(
        name: String,
        members: Vec<InstanceConfig>,
        etcd: &EtcdConfig,
        shared: Shared,
        (calls, status): (mpsc::Receiver<EtcdCall>, watch::Sender<Vec<InstanceStatus>>),
        override_mode: vrrp::Override,
    ) -> Result<Elector> {
        let host = shared.host;
        let mut prepared = Vec::new();
        for cfg in members {
            prepared.push(Member::prepare(cfg, &host).await?);
        }
        let first = prepared.first().context("an election without instances")?;
        let me = first.own_address(&host).await?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let dir = format!("{}{name}/", etcd.prefix);
        let mut elector = Elector {
            owner_key: format!("{dir}owner"),
            handoff_key: format!("{dir}handoff"),
            dir,
            name,
            preempt: prepared.iter().all(|m| m.cfg.preempt),
            members: prepared,
            ttl: etcd.lease_ttl,
            node: format!("{hostname} {me}"),
            me,
            etcd: shared.cluster,
            host,
            priority: 0,
            lease: None,
            lease_gone: false,
            holding: Arc::new(AtomicBool::new(false)),
            failing_since: None,
            released_at: None,
            view: View::default(),
            claim_inhibit: None,
            fault: None,
            override_mode,
            handing: None,
            preempt_after: None,
            pending_release: None,
            stopping: false,
            calls,
            status,
            state_dir: shared.state_dir,
            events: shared.events,
        };
        elector.priority = elector.reassess_priority();
        // Copies left by an earlier run (killed, or stopped while etcd was unreachable) go first: we
        // do not own anything until etcd says so.
        elector.remove_vips().await;
        // `status` knows the instance from the daemon's start on (INIT until the first tick).
        elector.publish().await;
        Ok(elector)
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        info!(instance = %self.name, "election by etcd: key {} (candidate {})", self.owner_key, self.me);
        self.transition(
            "BACKUP",
            "BACKUP: a candidate; etcd decides who owns the VIPs",
        );
        loop {
            if *stop.borrow() {
                self.stop().await;
                return;
            }
            self.tick().await;
            self.publish().await;
            let pause = if self.handing.is_some() {
                HANDOFF_POLL
            } else {
                POLL
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
                Some(call) = self.calls.recv() => match call {
                    EtcdCall::Operator { op, force, reply } => self.on_call(op, force, reply).await,
                    EtcdCall::Reload { members } => self.reload(members).await,
                },
            }
        }
    }

    fn holding(&self) -> bool {
        self.holding.load(Ordering::SeqCst)
    }

    /// Whether our candidacy belongs in etcd: no fault, no `release`, not stopping.
    fn eligible(&self) -> bool {
        self.fault.is_none() && self.override_mode != vrrp::Override::Release && !self.stopping
    }

    /// Where we stand, for [`decide::decide`].
    fn me(&self) -> Me {
        Me {
            address: self.me,
            lease: self.lease.as_ref().map(|l| l.id),
            holding: self.holding(),
            // Not whether the candidacy is in etcd right now: a put that failed (it is retried)
            // must not make an owner hand over.
            eligible: self.eligible(),
            priority: self.priority,
            handing_to: self.handing.as_ref().map(|h| h.to),
        }
    }

    /// Above everything: a holder whose lease may lapse lets go, reachable or not. Checked before
    /// and after every step that waits for etcd.
    async fn enforce_deadline(&mut self) {
        if self.holding() {
            let clock = self.lease.as_ref().map(|l| l.clock);
            if clock.is_none_or(|c| c.expired(lease::now())) {
                self.release_unconfirmed(clock).await;
            }
        }
    }

    async fn tick(&mut self) {
        self.enforce_deadline().await;
        let renewed = self.keep_lease(lease::now()).await;
        self.apply_checks().await;
        self.take_sightings();
        self.enforce_deadline().await;
        let view = self.read().await;
        self.enforce_deadline().await;
        let Some(view) = view else {
            return;
        };
        self.view = view;
        let Some(clock) = self.lease.as_ref().map(|l| l.clock) else {
            return;
        };
        let step = decide::decide(&self.view, &self.me());
        let keeps = matches!(
            step,
            Step::Stay
                | Step::AwaitSuccessor
                | Step::AwaitAnnounce
                | Step::Preempted { .. }
                | Step::Withdraw { to: Some(_) }
        );
        if renewed && keeps && self.holding() {
            // A fresh kernel lifetime from the renewed lease, and a probe for hosts that hold a
            // VIP by hand (they only show themselves when asked).
            self.add_vips(clock, false).await;
            self.probe_vips();
        }
        match step {
            Step::Stay => {}
            Step::Claim => self.claim(clock).await,
            Step::TakeHandoff { from } => self.take_handoff(from, clock).await,
            Step::Readd => self.add_vips(clock, true).await,
            Step::LetGo => self.let_go().await,
            Step::AwaitAnnounce => self.await_announce().await,
            Step::AwaitSuccessor => self.await_successor().await,
            Step::Preempted { to } => self.preempted(to).await,
            Step::Withdraw { to } => self.withdraw(to).await,
        }
    }

    /// A planned stop: the VIPs go to the best other candidate, make-before-break, bounded; then
    /// the lease (with the owner key and our candidacy), so nobody waits for the TTL.
    async fn stop(&mut self) {
        self.stopping = true;
        let until = lease::now() + handoff::STOP_WAIT;
        while self.holding() && lease::now() < until {
            self.tick().await;
            self.publish().await;
            if self.holding() {
                tokio::time::sleep(HANDOFF_POLL).await;
            }
        }
        if self.holding() {
            self.set_holding(false, "BACKUP: stopping".into());
            self.remove_vips().await;
            info!(instance = %self.name, "stopping: VIPs removed");
        }
        self.revoke().await;
        let why = "STOP: the daemon is stopping";
        for m in &mut self.members {
            let from = m.tracker.state();
            m.run_hook(crate::hooks::STOP, from, why);
            member::publish_transition(&self.events, &m.cfg.name, crate::hooks::STOP, from, why);
        }
        for m in &mut self.members {
            m.drain_hooks(HOOK_DRAIN).await;
        }
    }
}

/// A wall-clock time for the log, in the log's own zone (UTC): "04:31:07.631 UTC", dated when it
/// is not today.
fn log_time(t: SystemTime) -> String {
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let (at, now) = (ms(t), ms(SystemTime::now()));
    let (day, in_day) = (at.div_euclid(86_400_000), at.rem_euclid(86_400_000));
    let clock = format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    );
    if day == now.div_euclid(86_400_000) {
        return clock;
    }
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {clock}")
}
