//! `election = "etcd"`: the owner of an instance's VIPs is the holder of the key
//! `PREFIX<instance>/owner`, put with a lease of `lease_ttl`. One task per instance: it keeps its
//! candidacy (`PREFIX<instance>/candidates/<our address>`, same lease) in etcd, claims the key when it
//! is free and we are the best candidate, adds the VIPs with a kernel lifetime that ends before the
//! lease can (see [`super::lease`]), renews lease and lifetime together, and removes the VIPs itself
//! once a renewal has not succeeded in time. Planned stops remove the VIPs, then revoke the lease so
//! the next candidate claims at once.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity,
    LeaseKeepAliveStream, LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::lease::{self, LeaseClock};

mod report;
use super::status::Tracker;
use crate::config::{EtcdConfig, InstanceConfig};
use crate::control::events::EventHub;
use crate::health::{self, CheckReport, CheckState, TaskSet};
use crate::hooks::{self, Hooks};
use crate::net::announce::Announcer;
use crate::net::netlink::Netlink;

/// How often a task reads its instance's keys (a free owner key is claimed within this).
const POLL: Duration = Duration::from_millis(100);
/// How long the stop hook may run when the daemon exits (as for VRRP instances).
const HOOK_DRAIN: Duration = Duration::from_secs(10);
/// The longest any one etcd request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Every `election = "etcd"` instance, ready to run: interfaces resolved, stale VIPs removed, the
/// client set up. An error here (a missing interface, an unreadable certificate) stops the start.
pub struct Elections(Vec<Elector>);

impl Elections {
    /// `events`: the daemon's `floatip events` hub, which gets each transition as the hooks do.
    pub async fn prepare(
        etcd: &EtcdConfig,
        instances: Vec<InstanceConfig>,
        events: Arc<EventHub>,
    ) -> Result<Elections> {
        let mut clients = Vec::new();
        for endpoint in &etcd.endpoints {
            clients.push((endpoint.clone(), connect(etcd, endpoint).await?));
        }
        let netlink = Netlink::new()?;
        let mut electors = Vec::new();
        for cfg in instances {
            electors.push(
                Elector::prepare(cfg, etcd, clients.clone(), netlink.clone(), events.clone())
                    .await?,
            );
        }
        Ok(Elections(electors))
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

/// A client for one member (one client per member, so that a request that failed goes to the next
/// member rather than wherever a balancer sends it); it connects lazily, so an unreachable member is
/// not an error here.
async fn connect(etcd: &EtcdConfig, endpoint: &str) -> Result<Client> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(REQUEST_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_require_leader(true);
    if etcd.ca_file.is_some() || etcd.cert_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &etcd.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("[etcd] ca_file: cannot read {}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&etcd.cert_file, &etcd.key_file) {
            let c = std::fs::read(cert)
                .with_context(|| format!("[etcd] cert_file: cannot read {}", cert.display()))?;
            let k = std::fs::read(key)
                .with_context(|| format!("[etcd] key_file: cannot read {}", key.display()))?;
            tls = tls.identity(Identity::from_pem(c, k));
        }
        opts = opts.with_tls(tls);
    }
    Client::connect([endpoint], Some(opts))
        .await
        .with_context(|| format!("cannot set up the etcd client for {endpoint}"))
}

/// Runs `f` with [`REQUEST_TIMEOUT`]; a timeout is an error like any other.
async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(anyhow::Error::from),
        Err(_) => anyhow::bail!("no answer within {REQUEST_TIMEOUT:?}"),
    }
}

/// Our lease and its keep-alive stream.
struct Lease {
    id: i64,
    clock: LeaseClock,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    next_renew: Duration,
    /// Our candidacy is in etcd under this lease.
    candidate: bool,
}

/// What one read of the instance's keys showed.
#[derive(Debug, Default, Clone)]
struct View {
    /// The owner key's value and lease.
    owner: Option<(String, i64)>,
    /// (priority, address) of every candidate.
    candidates: Vec<(u8, IpAddr)>,
}

/// One `election = "etcd"` instance.
struct Elector {
    cfg: InstanceConfig,
    /// One client per `[etcd] endpoints` entry, and the one in use.
    clients: Vec<(String, Client)>,
    current: usize,
    netlink: Netlink,
    ifindex: u32,
    announcer: Arc<Announcer>,
    /// Our own address on the interface: the candidate key's name and the tie-break.
    me: IpAddr,
    /// The owner key's value when we hold it: host name and address.
    node: String,
    owner_key: String,
    dir: String,
    /// `[etcd] lease_ttl`.
    ttl: Duration,
    lease: Option<Lease>,
    /// The VIPs are (being) added; shared with the announcement burst, which stops when it turns false.
    holding: Arc<AtomicBool>,
    /// The first failed renewal since the last good one (wall clock, for people).
    failing_since: Option<SystemTime>,
    /// When we last let go because the lease could not be renewed.
    released_at: Option<SystemTime>,
    /// What the last read of the instance's keys showed.
    view: View,
    tracker: Tracker,
    /// The instance's health checks, their reports and states: a failing check (without weight)
    /// withdraws the candidacy, a weighted one changes the priority in it.
    _checks: TaskSet,
    check_reports: mpsc::Receiver<CheckReport>,
    check_states: Vec<CheckState>,
    /// Why we are not a candidate (a failing check), and the priority our candidacy carries.
    fault: Option<String>,
    priority: u8,
    /// `[instance.notify]`: run on each transition, as for a VRRP instance.
    hooks: Option<Hooks>,
    /// `floatip events`: a transition record for each transition, in the hooks' order.
    events: Arc<EventHub>,
}

impl Elector {
    async fn prepare(
        cfg: InstanceConfig,
        etcd: &EtcdConfig,
        clients: Vec<(String, Client)>,
        netlink: Netlink,
        events: Arc<EventHub>,
    ) -> Result<Elector> {
        let link = netlink
            .link_by_name(&cfg.interface)
            .await
            .with_context(|| format!("instance {}", cfg.name))?;
        let vips: Vec<IpAddr> = cfg.addresses.iter().map(|v| v.addr).collect();
        let me = netlink
            .primary_address(link.index, cfg.is_v6(), &vips)
            .await?
            .with_context(|| {
                format!(
                    "instance {}: {} has no address of its own to name this host in etcd",
                    cfg.name, cfg.interface
                )
            })?;
        let announcer = Arc::new(Announcer::open(link.index, link.mac)?);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let dir = format!("{}{}/", etcd.prefix, cfg.name);
        let (tx, check_reports) = mpsc::channel(64);
        let checks = health::spawn(0, &cfg.name, &cfg.checks, tx);
        let check_states = CheckState::for_checks(&cfg.checks);
        let priority = cfg.priority;
        let n = &cfg.notify;
        let hooks = [&n.master, &n.backup, &n.fault, &n.stop]
            .iter()
            .any(|h| h.is_some())
            .then(|| hooks::spawn(cfg.name.clone(), n.clone()));
        let elector = Elector {
            owner_key: format!("{dir}owner"),
            dir,
            ttl: etcd.lease_ttl,
            node: format!("{host} {me}"),
            me,
            ifindex: link.index,
            announcer,
            clients,
            current: 0,
            netlink,
            cfg,
            lease: None,
            holding: Arc::new(AtomicBool::new(false)),
            failing_since: None,
            released_at: None,
            view: View::default(),
            tracker: Tracker::default(),
            _checks: checks,
            check_reports,
            check_states,
            fault: None,
            priority,
            hooks,
            events,
        };
        // Copies left by an earlier run (killed, or stopped while etcd was unreachable) go first: we
        // do not own anything until etcd says so.
        elector.remove_vips().await;
        Ok(elector)
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        info!(instance = %self.cfg.name, "election by etcd: key {} (candidate {})", self.owner_key, self.me);
        let reason = "BACKUP: a candidate; etcd decides who owns the VIPs";
        if self.tracker.transition("BACKUP", reason.into()) {
            self.publish_transition("BACKUP", "INIT", reason);
        }
        loop {
            if *stop.borrow() {
                self.stop().await;
                return;
            }
            self.tick().await;
            self.publish().await;
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// The client of the member in use.
    fn client(&self) -> Client {
        self.clients[self.current].1.clone()
    }

    /// A request to the member in use failed: the next request goes to the next member.
    fn next_endpoint(&mut self, err: &dyn std::fmt::Display) {
        let failed = self.current;
        self.current = (self.current + 1) % self.clients.len();
        if let Some(l) = self.lease.as_mut() {
            l.keeper = None;
        }
        if self.clients.len() > 1 {
            info!(instance = %self.cfg.name, "etcd member {} failed ({err}); using {}", self.clients[failed].0, self.clients[self.current].0);
        }
    }

    fn holding(&self) -> bool {
        self.holding.load(Ordering::SeqCst)
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
        self.enforce_deadline().await;
        let view = self.read().await;
        self.enforce_deadline().await;
        let Some(view) = view else {
            return;
        };
        self.view = view.clone();
        let Some((id, clock)) = self.lease.as_ref().map(|l| (l.id, l.clock)) else {
            return;
        };
        let ours = view.owner.as_ref().is_some_and(|(_, l)| *l == id);
        if self.holding() {
            if !ours {
                let who = view.owner.map_or("nobody".into(), |(v, _)| v);
                warn!(instance = %self.cfg.name, "the owner key is no longer ours (held by {who}); removing the VIPs");
                self.set_holding(
                    false,
                    format!("BACKUP: the owner key in etcd is held by {who}"),
                );
                self.remove_vips().await;
            } else if self.cfg.preempt && self.best(&view) != Some(self.me) {
                let better = self.best(&view).map_or("?".into(), |a| a.to_string());
                info!(instance = %self.cfg.name, "a better candidate is up ({better}); handing the VIPs over");
                self.hand_over(
                    id,
                    format!("BACKUP: preempted by the better candidate {better}"),
                )
                .await;
            } else if renewed {
                self.add_vips(clock, false).await;
            }
            return;
        }
        if ours {
            // Ours all along (we let go when a renewal was late, but the lease lived on).
            self.add_vips(clock, true).await;
        } else if view.owner.is_none() && self.best(&view) == Some(self.me) {
            let put = PutOptions::new().with_lease(id);
            let txn = Txn::new()
                .when([Compare::create_revision(
                    self.owner_key.as_str(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(
                    self.owner_key.as_str(),
                    self.node.as_str(),
                    Some(put),
                )]);
            match bounded(self.client().txn(txn)).await {
                Ok(r) if r.succeeded() => {
                    info!(instance = %self.cfg.name, "won the owner key (lease {id:x}, {:?} left)", clock.remaining(lease::now()));
                    self.add_vips(clock, true).await;
                }
                Ok(_) => {}
                Err(err) => {
                    warn!(instance = %self.cfg.name, "cannot claim the owner key: {err:#}");
                    self.next_endpoint(&format!("{err:#}"));
                }
            }
        }
    }

    /// Removes the VIPs, then frees the owner key (if it is still ours) for the next candidate.
    async fn hand_over(&mut self, id: i64, reason: String) {
        self.set_holding(false, reason);
        self.remove_vips().await;
        let txn = Txn::new()
            .when([Compare::lease(
                self.owner_key.as_str(),
                CompareOp::Equal,
                id,
            )])
            .and_then([TxnOp::delete(self.owner_key.as_str(), None)]);
        if let Err(err) = bounded(self.client().txn(txn)).await {
            warn!(instance = %self.cfg.name, "cannot free the owner key for the successor: {err:#}; it frees itself when our lease ends");
            self.next_endpoint(&format!("{err:#}"));
        }
    }

    /// The best candidate: the highest priority, then the highest address (as VRRP breaks ties).
    fn best(&self, view: &View) -> Option<IpAddr> {
        view.candidates.iter().max().map(|(_, a)| *a)
    }

    /// Grants a lease when we have none, renews it when due, puts our candidacy under it. Returns
    /// whether it was renewed (or granted) now.
    async fn keep_lease(&mut self, now: Duration) -> bool {
        let ttl = self.lease_ttl();
        if self.lease.is_none() {
            let sent = lease::now();
            match bounded(self.client().lease_grant(ttl.as_secs() as i64, None)).await {
                Ok(r) => match LeaseClock::renewed(sent, r.ttl()) {
                    Some(clock) => {
                        self.lease = Some(Lease {
                            id: r.id(),
                            clock,
                            keeper: None,
                            next_renew: sent + clock.renew_every(),
                            candidate: false,
                        });
                        self.renewal_ok();
                    }
                    None => {
                        warn!(instance = %self.cfg.name, "etcd granted a lease of {} s", r.ttl())
                    }
                },
                Err(err) => {
                    self.renewal_failed(&format!("{err:#}"));
                    self.next_endpoint(&format!("{err:#}"));
                    return false;
                }
            }
        } else if self.lease.as_ref().is_some_and(|l| now >= l.next_renew) {
            if !self.renew().await {
                return false;
            }
        } else {
            return false;
        }
        let Some((id, false)) = self.lease.as_ref().map(|l| (l.id, l.candidate)) else {
            return true;
        };
        if self.fault.is_some() {
            return true;
        }
        let key = format!("{}candidates/{}", self.dir, self.me);
        let value = serde_json::json!({ "priority": self.priority, "node": self.node }).to_string();
        let put = PutOptions::new().with_lease(id);
        match bounded(self.client().put(key, value, Some(put))).await {
            Ok(_) => {
                if let Some(l) = self.lease.as_mut() {
                    l.candidate = true;
                }
            }
            Err(err) => {
                warn!(instance = %self.cfg.name, "cannot register our candidacy: {err:#}");
                self.next_endpoint(&format!("{err:#}"));
            }
        }
        true
    }

    /// One keep-alive round trip on the lease, trying each member once while they fail.
    async fn renew(&mut self) -> bool {
        let Some(l) = self.lease.as_mut() else {
            return false;
        };
        l.next_renew = lease::now() + l.clock.renew_every();
        let mut last_err = None;
        for _ in 0..self.clients.len() {
            // Past the deadline the VIP goes first; the next tick tries again.
            if self.holding()
                && self
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.clock.expired(lease::now()))
            {
                break;
            }
            let sent = lease::now();
            match self.keep_alive_once().await {
                Ok(ttl) => {
                    let Some(l) = self.lease.as_mut() else {
                        return false;
                    };
                    if l.clock.renew(sent, ttl) {
                        self.renewal_ok();
                        return true;
                    }
                    warn!(instance = %self.cfg.name, "our lease {:x} has ended in etcd; starting over", l.id);
                    self.lease = None;
                    if self.holding() {
                        self.set_holding(false, "BACKUP: our lease ended in etcd".into());
                        self.remove_vips().await;
                    }
                    return false;
                }
                Err(err) => {
                    self.next_endpoint(&format!("{err:#}"));
                    last_err = Some(err);
                }
            }
        }
        if let Some(err) = last_err {
            self.renewal_failed(&format!("{err:#}"));
        }
        false
    }

    /// A keep-alive on the member in use: the TTL etcd answered with (0: the lease is gone).
    async fn keep_alive_once(&mut self) -> Result<i64> {
        let mut client = self.client();
        let l = self.lease.as_mut().context("no lease")?;
        if l.keeper.is_none() {
            l.keeper = Some(bounded(client.lease_keep_alive(l.id)).await?);
        }
        let (keeper, stream) = l.keeper.as_mut().context("no keep-alive stream")?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await;
        match answer {
            Ok(Ok(Some(r))) => Ok(r.ttl()),
            Ok(Ok(None)) => anyhow::bail!("the keep-alive stream ended"),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => anyhow::bail!("no answer within {REQUEST_TIMEOUT:?}"),
        }
    }

    fn renewal_ok(&mut self) {
        if let Some(since) = self.failing_since.take() {
            info!(instance = %self.cfg.name, "etcd reachable again (unreachable since {})", unix(since));
        }
    }

    fn renewal_failed(&mut self, err: &dyn std::fmt::Display) {
        if self.failing_since.is_none() {
            self.failing_since = Some(SystemTime::now());
            warn!(instance = %self.cfg.name, "etcd unreachable: {err}");
        }
    }

    /// The lease may lapse in etcd any moment now: the VIPs go, before anyone else can win the key.
    async fn release_unconfirmed(&mut self, clock: Option<LeaseClock>) {
        let since = self.failing_since.map_or("unknown".into(), unix);
        let released = SystemTime::now();
        self.released_at = Some(released);
        let why = format!(
            "etcd unreachable since {since}; VIP released at {}",
            unix(released)
        );
        self.set_holding(false, format!("BACKUP: {why}"));
        self.remove_vips().await;
        warn!(
            instance = %self.cfg.name,
            "{why} (the lease ends in etcd within {:?}; nobody holds the VIP until a host can prove ownership)",
            clock.map(|c| c.remaining(lease::now())).unwrap_or_default(),
        );
    }

    fn lease_ttl(&self) -> Duration {
        self.ttl
    }

    /// Reads the owner key and the candidates.
    async fn read(&mut self) -> Option<View> {
        let opts = GetOptions::new().with_prefix();
        let resp = match bounded(self.client().get(self.dir.as_str(), Some(opts))).await {
            Ok(r) => r,
            Err(err) => {
                self.next_endpoint(&format!("{err:#}"));
                return None;
            }
        };
        let mut view = View::default();
        let cand_prefix = format!("{}candidates/", self.dir);
        for kv in resp.kvs() {
            let (Ok(key), Ok(value)) = (kv.key_str(), kv.value_str()) else {
                continue;
            };
            if key == self.owner_key {
                view.owner = Some((value.to_string(), kv.lease()));
            } else if let Some(addr) = key.strip_prefix(&cand_prefix) {
                let priority = serde_json::from_str::<serde_json::Value>(value)
                    .ok()
                    .and_then(|v| v["priority"].as_u64())
                    .and_then(|p| u8::try_from(p).ok());
                if let (Some(p), Ok(a)) = (priority, addr.parse()) {
                    view.candidates.push((p, a));
                }
            }
        }
        Some(view)
    }

    /// Adds (or refreshes) the VIPs with the lifetime the lease allows now; `announce`: a new claim.
    async fn add_vips(&mut self, clock: LeaseClock, announce: bool) {
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
            self.spawn_announcements();
        }
    }

    fn spawn_announcements(&self) {
        let announcer = self.announcer.clone();
        let holding = self.holding.clone();
        let vips: Vec<IpAddr> = self.cfg.addresses.iter().map(|v| v.addr).collect();
        let (count, spacing) = (self.cfg.announce.count, self.cfg.announce.spacing);
        tokio::spawn(async move {
            for n in 0..count {
                if !holding.load(Ordering::SeqCst) {
                    return;
                }
                for addr in &vips {
                    let _ = announcer.announce(*addr);
                }
                if n + 1 < count {
                    tokio::time::sleep(spacing).await;
                }
            }
        });
    }

    async fn remove_vips(&self) {
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

    /// A planned stop: the VIPs go first, then the lease (with the owner key and our candidacy), so
    /// the next candidate claims at once instead of after the TTL.
    async fn stop(&mut self) {
        if self.holding() {
            self.set_holding(false, "BACKUP: stopping".into());
            self.remove_vips().await;
            info!(instance = %self.cfg.name, "stopping: VIPs removed");
        }
        self.revoke().await;
        let from = self.tracker.state();
        self.run_hook("STOP", from, "STOP: the daemon is stopping");
        if let Some(h) = self.hooks.take() {
            h.drain(HOOK_DRAIN).await;
        }
    }

    /// Revokes our lease (with the owner key and our candidacy), trying each member once.
    async fn revoke(&mut self) {
        if let Some(l) = self.lease.take() {
            // Each member once: a slow or dead member should not cost the successor the whole TTL.
            for _ in 0..self.clients.len() {
                match bounded(self.client().lease_revoke(l.id)).await {
                    Ok(_) => {
                        info!(instance = %self.cfg.name, "stopping: lease {:x} revoked", l.id);
                        return;
                    }
                    // An earlier attempt that timed out may have revoked it after all.
                    Err(err) if format!("{err:#}").contains("lease not found") => {
                        info!(instance = %self.cfg.name, "stopping: lease {:x} revoked (gone already)", l.id);
                        return;
                    }
                    Err(err) => self.next_endpoint(&format!("{err:#}")),
                }
            }
            warn!(instance = %self.cfg.name, "stopping: cannot revoke lease {:x}; it ends by itself", l.id);
        }
    }
}

/// A wall-clock time for logs: seconds since the Unix epoch, with milliseconds (as `status` shows).
fn unix(t: SystemTime) -> String {
    format!("{:.3}", crate::control::status::unix_secs(t))
}
