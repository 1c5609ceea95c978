//! The daemon: one loop that drives every instance's `vrrp::Instance` and executes what it asks for.
//!
//! ```text
//!  tokio runtime thread                                  protocol loop thread (epoll, crate::wakeup)
//!  netlink monitor ────────(NetEvent)────┐
//!  control socket ─────────(ControlCall)─┤               VRRP sockets (read directly) ──┐
//!  check / witness tasks ──(reports)─────┼─(Input + bell)──────────────────────────────┼─> loop: feed
//!  ARP/ND watch, probes ───(Sighting)────┤               core deadlines, refresh timer ──┘  the cores,
//!  signals (TERM/INT/HUP) ───────────────┘                                   drain actions: netlink,
//!                                                                             adverts, GARP/NA, hooks
//! ```
//! Everything that changes the host (addresses, announcements, adverts) happens in the loop, in the
//! order the core emitted it. The tasks around it only observe and forward: a hostile packet costs a
//! decode, a hung check costs its own task, and neither can delay an advert. The loop has a thread of
//! its own so that an advert costs a wakeup, a send and a timer re-arm, and nothing of the runtime;
//! the netlink operations it asks for still run as futures, driven by the runtime thread.
//!
//! This file holds the loop and every message it takes ([`Input`]); the rest, one job a file:
//! - [`kernel`]: the host as one trait (links, addresses, sockets), real or fake;
//! - [`runtime`]: one instance at run time and its status;
//! - [`hold`]: an instance's hold on its VIPs (held, lifetime refresh, whether it may announce);
//! - [`setup`]: preparing and starting an instance;
//! - [`attach`]: an instance's hold on its interface, which may come late, go and come back;
//! - [`inputs`]: what happens to the loop (timers, packets, netlink, checks, sightings): its inputs;
//! - [`actions`]: carrying out what the cores ask;
//! - [`claim_probe`]: claiming (or putting back) a VIP only once nobody else answers for it;
//! - [`clash`]: speakers on our VRID for other addresses;
//! - [`vmac`]: the virtual MAC interfaces; [`auth`]: advert authentication's clock and log limits;
//! - [`operator`]: status, takeover, release, auto and reload from the control socket;
//! - [`groups`]: sync groups, whose members are MASTER on one host together;
//! - [`reload`]: applying a new config without needless failovers;
//! - [`overrides`]: the operator's overrides, kept across restarts.

mod actions;
mod attach;
mod auth;
mod claim_probe;
mod clash;
mod groups;
mod hold;
mod inputs;
mod operator;
mod reload;
mod runtime;
mod setup;
#[cfg(test)]
mod tests;
mod vmac;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::conflict::Sighting;
use crate::control::events::EventHub;
use crate::control::{self, ControlCall, Response};
use crate::guard::Guard;
use crate::health::track_file::TrackFileReport;
use crate::health::witness::WitnessReport;
use crate::health::CheckReport;
use crate::net::netlink::NetEvent;
use crate::wakeup::{Bell, Wakeup};
use vrrp::{Event, Override};

use crate::net::kernel::{AdvertSender, Announce, Kernel, Receive};
use operator::PendingRelease;
use runtime::SockKey;
pub use runtime::{Counters, Record, Runtime, Speaker};

/// The largest VRRP message: 255 IPv6 addresses plus the header.
const MAX_PACKET: usize = 8 + 255 * 16 + 64;
/// How often a master (or an instance that yielded a conflict) asks the LAN who answers for its VIPs.
/// An answer reaches the loop through the ARP/ND watch; a round without one is a quiet round.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long start-up waits for an IPv6 link-local address to finish duplicate address detection
/// (normally about a second after the link comes up).
const DAD_PATIENCE: Duration = Duration::from_secs(10);
/// The loop's token for the lifetime refresher's socket (VRRP sockets count up from 0).
const REFRESHER: u64 = u64::MAX - 1;
/// How often the witness is pinged.
const WITNESS_EVERY: Duration = Duration::from_secs(1);
/// How long the event streams may take to send their last records when the daemon exits.
const EVENTS_DRAIN: Duration = Duration::from_millis(500);
/// How long the stop hooks may run when the daemon exits.
const HOOK_DRAIN: Duration = Duration::from_secs(10);

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon can still be stopped with SIGKILL; the VIP lifetime covers it.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stepping down"),
        _ = int.recv() => info!("SIGINT: stepping down"),
    }
}

/// What the tasks on the runtime hand the loop (with [`Bell::ring`]). VRRP packets are not among
/// them: the loop reads its sockets itself.
enum Input {
    Net(NetEvent),
    Check(CheckReport),
    Witness(WitnessReport),
    TrackFile(TrackFileReport),
    Sighting(Sighting),
    Call(ControlCall),
    Hup,
    Shutdown,
}

/// The senders the tasks around the loop use.
#[derive(Clone)]
struct Channels {
    checks: mpsc::Sender<CheckReport>,
    witness: mpsc::Sender<WitnessReport>,
    track_files: mpsc::Sender<TrackFileReport>,
    sightings: mpsc::Sender<Sighting>,
}

/// Every instance and what they share (sockets, senders, announcers), driven by the loop.
pub struct Daemon {
    /// The host: netlink, raw sockets (or the tests' fake).
    kernel: Box<dyn Kernel>,
    /// An instance added or removed its VIPs since the monitor's filter was last updated.
    held_changed: bool,
    config_path: PathBuf,
    state_dir: PathBuf,
    pub instances: Vec<Runtime>,
    sockets: HashMap<SockKey, Arc<dyn Receive>>,
    /// The loop's sleep; a VRRP socket is watched with its index in `socket_keys` as the token, the
    /// refresher's socket as [`REFRESHER`].
    wakeup: Wakeup,
    socket_keys: Vec<SockKey>,
    /// Connected senders, shared by the instances with the same interface, source and destination.
    senders: HashMap<(u32, IpAddr, IpAddr), Arc<dyn AdvertSender>>,
    announcers: HashMap<u32, Arc<dyn Announce>>,
    watched: HashSet<(u32, bool)>,
    overrides: BTreeMap<String, Override>,
    /// A transition happened since the systemd STATUS= line was last sent.
    status_dirty: bool,
    /// Releases waiting to see a successor before they answer the operator.
    pending_releases: Vec<PendingRelease>,
    /// The `[[group]]`s and what the loop remembers about their members.
    groups: groups::Groups,
    /// Instances from a reload that wait for a retiring instance holding the same VIPs to finish.
    pending_starts: Vec<Runtime>,
    next_id: usize,
    chans: Channels,
    /// Packets no instance could claim (unknown VRID, undecodable header), by socket and reason;
    /// `status` shows each instance its socket's.
    pub unmatched_drops: HashMap<SockKey, BTreeMap<&'static str, u64>>,
    /// Failed reads of a VRRP socket (logged once per doubling).
    receive_errors: u64,
    /// When the loop last promised to run again by (`(when promised, by when)`), while it holds
    /// VIPs; see [`Daemon::check_stall`].
    promise: Option<(Instant, Instant)>,
    /// The process that removes our VIPs if this one dies or stops advancing (none in unit tests).
    guard: Option<Guard>,
    /// The event stream's broadcaster (`floatip events`), fed where the hooks and the history are.
    pub events: Arc<EventHub>,
    /// The kernel parameters virtual MACs changed, put back on exit ([`vmac::SysctlLedger`]).
    vmac_ledger: vmac::SysctlLedger,
    /// The `election = "etcd"` instances' tasks, for the operator's commands on them.
    pub etcd: crate::election::etcd::Handles,
}

impl Daemon {
    /// A daemon with no instances yet, over `kernel`.
    fn new(
        kernel: Box<dyn Kernel>,
        cfg: &Config,
        overrides: BTreeMap<String, Override>,
        wakeup: Wakeup,
        chans: Channels,
    ) -> Result<Daemon> {
        if let Some(fd) = kernel.refresh_fd() {
            wakeup
                .watch(fd, REFRESHER)
                .context("cannot watch the lifetime refresh socket")?;
        }
        Ok(Daemon {
            kernel,
            held_changed: false,
            config_path: cfg.path.clone(),
            state_dir: cfg.daemon.state_dir.clone(),
            instances: Vec::new(),
            sockets: HashMap::new(),
            wakeup,
            socket_keys: Vec::new(),
            senders: HashMap::new(),
            announcers: HashMap::new(),
            watched: HashSet::new(),
            overrides,
            status_dirty: false,
            pending_releases: Vec::new(),
            groups: groups::Groups::new(cfg.groups.clone()),
            pending_starts: Vec::new(),
            next_id: 0,
            chans,
            unmatched_drops: HashMap::new(),
            receive_errors: 0,
            promise: None,
            guard: None,
            events: {
                let hub = EventHub::new();
                hub.set_groups(
                    cfg.groups
                        .iter()
                        .map(|g| (g.name.as_str(), g.instances.as_slice())),
                );
                hub
            },
            vmac_ledger: vmac::SysctlLedger::load(&cfg.daemon.state_dir),
            etcd: Default::default(),
        })
    }

    fn next_deadline(&self) -> Option<Instant> {
        let deadlines = self
            .instances
            .iter()
            .filter_map(|r| r.deadline())
            .chain(self.pending_releases.iter().map(|p| p.abort_at));
        crate::wakeup::coalesced(deadlines, crate::wakeup::COALESCE)
    }

    /// Carry out what the last inputs and deadlines led to: the cores' actions, the releases that
    /// can be answered, the instances that were waiting for a handoff to end.
    fn carry_out(&mut self, now: Instant) {
        self.sync_groups(now);
        self.drain_actions(now);
        if !self.pending_releases.is_empty() {
            self.settle_releases(now);
            self.answer_group_releases();
            self.drain_actions(now);
        }
        if !self.pending_starts.is_empty() {
            self.start_pending(now);
        }
    }

    /// Past its promise, the loop was stopped (or the machine paused) and may have lost its VIPs
    /// meanwhile: find out before doing anything that could add them back (see
    /// [`Daemon::after_stall`]). Checked when the loop wakes and again right before lifetime
    /// refreshes, so a stop that lands while the loop is busy is caught too.
    fn check_stall(&mut self, now: Instant) {
        if let Some((before, _)) = self.promise.filter(|(_, p)| now > *p) {
            self.promise = None;
            self.after_stall(now, now.saturating_duration_since(before));
        }
    }

    /// A deadline passed: the cores' timers, then refreshes, announcements and probes that are due.
    fn on_deadline(&mut self, now: Instant) {
        self.probe_rounds(now);
        self.on_timer(now);
        self.refresh(now);
    }

    fn all_stopped(&self) -> bool {
        self.instances.iter().all(|r| r.core.is_stopped())
    }

    /// How late past its planned wakeup the loop may be before the guard takes our VIPs off (`None`:
    /// none held): half the time between a master's next advert and the earliest moment a backup
    /// may claim (its master-down interval), so neither a late loop nor a late guard costs two owners.
    fn guard_slack(&self) -> Option<Duration> {
        self.instances
            .iter()
            .filter(|r| r.hold.held())
            .map(|r| {
                r.core
                    .handoff_window()
                    .saturating_sub(r.cfg.advert_interval)
                    / 2
            })
            .min()
    }

    /// Tells the guard which VIPs we hold: before they are added, after they are removed.
    fn publish_held(&self) {
        if let Some(guard) = &self.guard {
            let held: Vec<_> = self
                .instances
                .iter()
                .filter(|r| r.hold.held())
                .flat_map(|r| {
                    let index = r.vip_index();
                    r.cfg
                        .addresses
                        .iter()
                        .map(move |v| (index, v.addr, v.prefix_len))
                })
                .collect();
            guard.set_held(&held);
        }
    }

    /// The longest make-before-break handoff any instance may need.
    fn stop_bound(&self) -> Duration {
        self.instances
            .iter()
            .map(|r| r.core.handoff_window() + r.cfg.advert_interval)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(1)
    }
}

/// Run until `shutdown` resolves, then step down make-before-break and exit.
///
/// The protocol loop gets a thread of its own ([`protocol_loop`], see [`crate::wakeup`]); this task
/// keeps the runtime turning for everything else and forwards signals and the tasks' inputs to it.
pub async fn run(mut cfg: Config, shutdown: impl Future<Output = ()>, guard: Guard) -> Result<()> {
    if cfg.instances.is_empty() {
        bail!(
            "{}: no [[instance]] configured; nothing to do",
            cfg.path.display()
        );
    }
    // `election = "etcd"` instances run beside the loop (nothing of etcd starts without one).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hub = EventHub::new();
    let overrides = crate::instance::overrides::load(&cfg.daemon.state_dir)?;
    let etcd = crate::election::take_etcd_instances(&mut cfg);
    let (etcd, etcd_handles) = match (etcd.0.is_empty(), &cfg.etcd) {
        (false, Some(etcd_cfg)) => {
            let (elections, handles) = crate::election::etcd::Elections::prepare(
                etcd_cfg,
                etcd,
                hub.clone(),
                &overrides,
                &cfg.daemon.state_dir,
            )
            .await?;
            (Some(tokio::spawn(elections.run(stop_rx))), handles)
        }
        _ => (None, Default::default()),
    };
    let stop_all = stop_tx.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let (host, events) = crate::net::kernel::open_host()?;
    let listener = control::bind(&cfg.daemon.socket)?;
    let metrics_listener = cfg.daemon.http.map(crate::http::bind).transpose()?;
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let wakeup = Wakeup::new().context("cannot create the loop's timer and doorbell")?;
    let bell = wakeup.bell();
    let (calls_tx, calls) = mpsc::channel::<ControlCall>(16);
    let (checks_tx, check_reports) = mpsc::channel(256);
    let (witness_tx, witness_reports) = mpsc::channel(64);
    let (track_files_tx, track_file_reports) = mpsc::channel(64);
    let (sightings_tx, sightings) = mpsc::channel(256);
    let (inputs_tx, inputs) = mpsc::channel::<Input>(256);
    let (ready_tx, ready_rx) = oneshot::channel();
    let chans = Channels {
        checks: checks_tx,
        witness: witness_tx,
        track_files: track_files_tx,
        sightings: sightings_tx,
    };
    let socket_path = cfg.daemon.socket.clone();
    let loop_hub = hub.clone();
    let mut protocol = tokio::task::spawn_blocking(move || {
        protocol_loop(
            cfg,
            Box::new(host),
            overrides,
            wakeup,
            chans,
            inputs,
            ready_tx,
            (guard, loop_hub, etcd_handles),
        )
    });
    // Calls queue until the loop is ready; `floatip status` during start-up waits rather than fails.
    if let Some(l) = metrics_listener {
        let calls = calls_tx.clone();
        tokio::spawn(async move {
            if let Err(err) = crate::http::serve(l, calls).await {
                error!("http listener (status page, /metrics) stopped: {err:#}");
            }
        });
    }
    let accept_hub = hub.clone();
    tokio::spawn(async move {
        if let Err(err) =
            control::accept_loop_with_events(listener, calls_tx, Some(accept_hub)).await
        {
            error!("control socket stopped: {err:#}");
        }
    });
    let forwarding = forward(
        Sources {
            events,
            calls,
            check_reports,
            witness_reports,
            track_file_reports,
            sightings,
            hup,
            ready: ready_rx,
        },
        shutdown,
        inputs_tx,
        bell,
        socket_path,
    );
    let result = tokio::select! {
        r = &mut protocol => r,
        () = forwarding => protocol.await,
    };
    // The etcd elections step down on the same stop (or on the loop's end, an error included).
    if let Some(etcd) = etcd {
        let _ = stop_all.send(true);
        etcd.await.context("the etcd elections panicked")??;
    }
    // The event streams get their last records (the stop transitions), bounded: a stopped reader
    // does not hold the exit up.
    hub.close(EVENTS_DRAIN).await;
    result.context("the protocol loop panicked")?
}

/// Everything the tasks on the runtime tell the loop.
struct Sources {
    events: mpsc::UnboundedReceiver<NetEvent>,
    calls: mpsc::Receiver<ControlCall>,
    check_reports: mpsc::Receiver<CheckReport>,
    witness_reports: mpsc::Receiver<WitnessReport>,
    track_file_reports: mpsc::Receiver<TrackFileReport>,
    sightings: mpsc::Receiver<Sighting>,
    hup: tokio::signal::unix::Signal,
    /// The loop finished its setup (capabilities are then dropped on this thread too).
    ready: oneshot::Receiver<()>,
}

/// Hand every input to the loop, ringing its bell; returns once the loop has gone.
async fn forward(
    mut src: Sources,
    shutdown: impl Future<Output = ()>,
    tx: mpsc::Sender<Input>,
    bell: Arc<Bell>,
    socket_path: PathBuf,
) {
    tokio::pin!(shutdown);
    let mut stopping = false;
    let mut ready = false;
    loop {
        let input = tokio::select! {
            () = tx.closed() => return,
            r = &mut src.ready, if !ready => {
                ready = true;
                if r.is_ok() {
                    // Capabilities are per thread: the loop dropped its own.
                    crate::service::drop_capabilities_logged();
                    info!("control socket {}", socket_path.display());
                }
                continue;
            }
            () = &mut shutdown, if !stopping => {
                stopping = true;
                Input::Shutdown
            }
            Some(_) = src.hup.recv() => Input::Hup,
            Some(ev) = src.events.recv() => Input::Net(ev),
            Some(call) = src.calls.recv() => Input::Call(call),
            Some(r) = src.check_reports.recv() => Input::Check(r),
            Some(r) = src.witness_reports.recv() => Input::Witness(r),
            Some(r) = src.track_file_reports.recv() => Input::TrackFile(r),
            Some(s) = src.sightings.recv() => Input::Sighting(s),
        };
        if tx.send(input).await.is_err() {
            return;
        }
        bell.ring();
    }
}

/// The protocol loop, on its own thread: set up every instance, then feed the cores and carry out what
/// they ask until a stop completes.
#[allow(clippy::too_many_arguments)] // each is one of the loop's own parts, handed over once
fn protocol_loop(
    cfg: Config,
    kernel: Box<dyn Kernel>,
    overrides: BTreeMap<String, Override>,
    wakeup: Wakeup,
    chans: Channels,
    mut inputs: mpsc::Receiver<Input>,
    ready: oneshot::Sender<()>,
    (guard, events, etcd): (Guard, Arc<EventHub>, crate::election::etcd::Handles),
) -> Result<()> {
    let mut daemon = Daemon::new(kernel, &cfg, overrides, wakeup, chans)?;
    daemon.guard = Some(guard);
    events.set_groups(
        cfg.groups
            .iter()
            .chain(&etcd.groups)
            .map(|g| (g.name.as_str(), g.instances.as_slice())),
    );
    daemon.events = events;
    daemon.etcd = etcd;
    // Resolve everything before changing anything: a bad setup leaves the host untouched.
    let mut prepared = Vec::new();
    for inst in &cfg.instances {
        prepared.push(daemon.prepare(inst, DAD_PATIENCE)?);
    }
    let now = Instant::now();
    for rt in prepared {
        daemon.start(rt, now)?;
    }
    let by_etcd: usize = daemon.etcd.units.iter().map(|(_, m)| m.len()).sum();
    let by_vrrp = daemon.instances.len();
    let count = match (by_vrrp, by_etcd) {
        (n, 0) | (0, n) => format!("{n} instance{}", if n == 1 { "" } else { "s" }),
        (v, e) => format!("{} instances ({v} by VRRP, {e} by etcd)", v + e),
    };
    info!(
        "ready: {count}; control socket {}",
        cfg.daemon.socket.display()
    );
    // Sockets are open and the config applied: keep only what the daemon still needs, then tell systemd.
    crate::service::drop_capabilities_logged();
    let _ = ready.send(());
    let mut status_line = daemon.status_line();
    crate::service::ready(&status_line);
    // Kicked from this loop itself: a loop that hangs stops kicking and systemd restarts it; the VIP's
    // kernel lifetime covers the gap.
    let mut watchdog = crate::service::Watchdog::from_env();
    let mut stop_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; MAX_PACKET];
    let far = Duration::from_secs(3600);
    let mut now = Instant::now();
    loop {
        daemon.carry_out(now);
        if std::mem::take(&mut daemon.status_dirty) {
            let line = daemon.status_line();
            if line != status_line {
                crate::service::status(&line);
                status_line = line;
            }
        }
        if stop_deadline.is_some() && daemon.all_stopped() {
            daemon.drain_hooks();
            daemon.remove_vmacs();
            info!("stopped cleanly; every VIP we held is released");
            return Ok(());
        }
        let deadline = [
            daemon.next_deadline(),
            stop_deadline,
            watchdog.due(),
            Some(now + far),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + far);
        // While we hold VIPs the loop promises to run again by its deadline plus a slack: the guard
        // takes the VIPs off if it does not, and a loop that wakes past its promise (it was stopped,
        // the machine paused) checks what it still holds (see `Daemon::after_stall`).
        let promise = daemon.guard_slack().map(|s| (now, deadline + s));
        if let Some(guard) = &daemon.guard {
            guard.alive_until(now, promise.map(|(_, p)| p));
        }
        daemon.promise = promise;
        let woken = daemon
            .wakeup
            .wait(deadline)
            .context("the loop's wait failed")?;
        now = woken.now;
        daemon.check_stall(now);
        for &token in &woken.sockets {
            if token == REFRESHER {
                daemon.on_refresh_errors();
            } else {
                daemon.on_readable(now, token, &mut buf);
            }
        }
        if woken.bell {
            while let Ok(input) = inputs.try_recv() {
                now = Instant::now();
                match input {
                    Input::Net(ev) => daemon.on_net_event(now, ev),
                    Input::Check(r) => daemon.on_check(now, r),
                    Input::Witness(r) => daemon.on_witness(now, r),
                    Input::TrackFile(r) => daemon.on_track_file(now, r),
                    Input::Sighting(s) => daemon.on_sighting(now, s),
                    Input::Call(call) if stop_deadline.is_some() => {
                        let _ = call.reply.send(Response::Error {
                            message: "the daemon is stopping".to_string(),
                        });
                    }
                    Input::Call(call) => daemon.on_control(now, call),
                    Input::Hup if stop_deadline.is_some() => {}
                    Input::Hup => {
                        info!("SIGHUP: reloading {}", daemon.config_path.display());
                        if let Err(err) = daemon.reload(now) {
                            error!("reload refused: {err:#}");
                        }
                    }
                    Input::Shutdown if stop_deadline.is_some() => {}
                    Input::Shutdown => {
                        crate::service::stopping();
                        stop_deadline = Some(now + daemon.stop_bound());
                        for rt in &mut daemon.instances {
                            rt.core.handle_event(now, Event::Shutdown);
                        }
                    }
                }
            }
        }
        if !woken.sockets.is_empty() || woken.bell {
            now = Instant::now();
        }
        watchdog.kick_if_due(now);
        if woken.timer {
            if stop_deadline.is_some_and(|s| s <= now) {
                warn!("stop took longer than the handoff bound; removing our VIPs now");
                daemon.remove_all();
                daemon.remove_vmacs();
                daemon.drain_hooks();
                return Ok(());
            }
            daemon.on_deadline(now);
        }
    }
}
