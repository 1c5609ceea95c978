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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::config::{self, Config, InstanceConfig};
use crate::conflict::{Conflicts, Verdict};
use crate::control::{self, ControlCall, Request, Response};
use crate::health::witness::{self, WitnessReport};
use crate::health::{self, CheckReport, CheckState, TaskSet};
use crate::hooks::{self, Hooks};
use crate::net::announce::Announcer;
use crate::net::netlink::{self, LinkInfo, NetEvent, Netlink};
use crate::net::probe::ConflictWatch;
use crate::net::vrrp_socket::{Datagram, VrrpSender, VrrpSocket};
use crate::wakeup::{Bell, Wakeup};
use vrrp::packet::{self, GROUP_V4, GROUP_V6};
use vrrp::validate::{self, Received, RxPolicy};
use vrrp::{Action, ChecksumMode, Event, Override, State};

/// How many transitions `status` keeps per instance.
pub const HISTORY: usize = 50;
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

/// One transition as `status` shows it.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: SystemTime,
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// A VRRP speaker heard on this instance's VRID.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub priority: u8,
    pub interval_cs: u16,
    pub addresses: usize,
    pub last_heard: Instant,
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    pub drops: BTreeMap<&'static str, u64>,
    pub transitions: HashMap<(State, State), u64>,
    pub vip_restored: u64,
}

/// Key of a shared raw socket: one per interface and family.
type SockKey = (u32, bool);

/// A tracked interface: FAULT while it is down.
#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    index: u32,
    up: bool,
}

/// One instance at run time: its core plus what the daemon knows about it.
pub struct Runtime {
    /// Stable across reloads (checks and witness reports carry it).
    pub id: usize,
    pub cfg: InstanceConfig,
    pub core: vrrp::Instance,
    pub link: LinkInfo,
    pub primary: IpAddr,
    sock_key: SockKey,
    announcer: Arc<Announcer>,
    policy: RxPolicy,
    /// Where adverts go (the group, or each unicast peer), each through its connected sender.
    destinations: Vec<(IpAddr, Arc<VrrpSender>)>,
    send_checksum: ChecksumMode,
    /// Reused for every advert this instance encodes (at 10 ms adverts, 100 a second).
    tx_buf: Vec<u8>,
    /// Whether our VIPs are in the kernel by our hand (between AddAddresses and RemoveAddresses).
    pub holding: bool,
    next_refresh: Option<Instant>,
    next_announce_refresh: Option<Instant>,
    pub history: VecDeque<Record>,
    pub speakers: HashMap<IpAddr, Speaker>,
    pub counters: Counters,
    pub checks: Vec<CheckState>,
    tracked: Vec<Tracked>,
    pub conflicts: Conflicts,
    /// The fault reason, base priority and claim inhibit last given to the core, to send only changes.
    fault_sent: Option<String>,
    priority_sent: u8,
    inhibit_sent: Option<String>,
    /// Why the witness says not to claim (`None` once it answers, or without a witness).
    witness_inhibit: Option<String>,
    /// Announcement bursts run only while this holds (MASTER, holding, not handing over).
    may_announce: Arc<AtomicBool>,
    hooks: Option<Hooks>,
    /// When to ask the LAN next who answers for our VIPs (while master, or yielded to a conflict).
    next_probe: Option<Instant>,
    /// A probe went out this round (so its end can count as a quiet round).
    probed: bool,
    /// Someone else claimed one of our VIPs since this round's probe.
    heard_since_probe: bool,
    /// Removed by a reload: stepping down, dropped once stopped.
    retiring: bool,
    check_tasks: TaskSet,
    witness_task: TaskSet,
}

impl Runtime {
    fn prefix_len(&self, addr: IpAddr) -> u8 {
        self.cfg
            .addresses
            .iter()
            .find(|v| v.addr == addr)
            .map(|v| v.prefix_len)
            .unwrap_or(if addr.is_ipv4() { 32 } else { 128 })
    }

    /// How often a master re-adds its VIPs to push the kernel lifetime forward: twice per lifetime.
    fn refresh_period(&self) -> Duration {
        self.cfg.address_lifetime / 2
    }

    /// A refresh (or probe) due within this much is done at the current wakeup (an advert's,
    /// usually), so it costs no wakeup of its own; if nothing wakes the loop, its own deadline is this
    /// much late, which still leaves a quarter of the lifetime.
    fn refresh_slack(&self) -> Duration {
        self.cfg.advert_interval.min(self.cfg.address_lifetime / 4)
    }

    fn deadline(&self) -> Option<Instant> {
        [
            self.core.poll_timeout(),
            self.next_refresh.map(|t| t + self.refresh_slack()),
            self.next_announce_refresh,
            self.next_probe.map(|t| t + self.refresh_slack()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn vips(&self) -> Vec<String> {
        self.cfg.addresses.iter().map(|v| v.to_string()).collect()
    }

    /// Fold the witness and checks still without a first result into one claim inhibit for the core:
    /// a host must not claim before it knows its service works (or while isolated).
    fn reevaluate_inhibit(&mut self, now: Instant) {
        // Only a check whose failure means FAULT holds the claim back; a weighted one adjusts the
        // priority once it reports.
        let inhibit = self.witness_inhibit.clone().or_else(|| {
            self.cfg
                .checks
                .iter()
                .zip(&self.checks)
                .find(|(cfg, state)| cfg.weight.is_none() && !state.known)
                .map(|(cfg, _)| format!("waiting for the first result of check {}", cfg.name))
        });
        if inhibit != self.inhibit_sent {
            self.inhibit_sent = inhibit.clone();
            self.core.handle_event(now, Event::ClaimInhibit(inhibit));
        }
    }

    /// Fold tracked interfaces, checks and a yielded conflict into one fault and one priority for the core.
    fn reevaluate(&mut self, now: Instant) {
        let (check_fault, priority) =
            health::evaluate_states(self.cfg.priority, &self.cfg.checks, &self.checks);
        let fault = self
            .tracked
            .iter()
            .find(|t| !t.up)
            .map(|t| format!("tracked interface {} is down", t.name))
            .or(check_fault)
            .or_else(|| self.conflicts.yielded.clone());
        if fault != self.fault_sent {
            self.fault_sent = fault.clone();
            self.core.handle_event(now, Event::Fault(fault));
        }
        if priority != self.priority_sent && self.cfg.priority != 255 {
            self.priority_sent = priority;
            self.core.handle_event(now, Event::SetPriority(priority));
        }
        // Last: lifting the inhibit may claim at once, which must see the fault and priority above.
        self.reevaluate_inhibit(now);
    }

    fn facts(&self) -> control::InstanceFacts {
        let (_, effective_base) =
            health::evaluate_states(self.cfg.priority, &self.cfg.checks, &self.checks);
        let priority_note = (effective_base != self.cfg.priority).then(|| {
            let failing: Vec<String> = self
                .cfg
                .checks
                .iter()
                .zip(&self.checks)
                .filter(|(c, s)| c.weight.is_some() && !s.healthy)
                .map(|(c, _)| {
                    format!(
                        "check {} failing: weight {:+}",
                        c.name,
                        c.weight.unwrap_or(0)
                    )
                })
                .collect();
            failing.join("; ")
        });
        control::InstanceFacts {
            name: self.cfg.name.clone(),
            interface: self.cfg.interface.clone(),
            vrid: self.cfg.vrid,
            version: self.cfg.version,
            configured_priority: self.cfg.priority,
            effective_priority: self.core.effective_priority(),
            priority_note,
            state: self.core.state(),
            override_mode: self.core.override_mode(),
            vips: self
                .cfg
                .addresses
                .iter()
                .map(|v| (v.addr, v.prefix_len))
                .collect(),
            primary: self.primary,
            interval: self.core.current_interval(),
            master_seen: self.core.master_seen().cloned(),
            speakers: self
                .speakers
                .iter()
                .map(|(addr, s)| control::SpeakerFacts {
                    address: *addr,
                    priority: s.priority,
                    interval_cs: s.interval_cs,
                    addresses: s.addresses,
                    last_heard: s.last_heard,
                })
                .collect(),
            history: self
                .history
                .iter()
                .map(|r| control::RecordFacts {
                    at: r.at,
                    from: r.from,
                    to: r.to,
                    reason: r.reason.clone(),
                })
                .collect(),
            adverts_sent: self.counters.adverts_sent,
            adverts_received: self.counters.adverts_received,
            send_errors: self.counters.send_errors,
            drops: self
                .counters
                .drops
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            vip_restored: self.counters.vip_restored,
            transitions: self
                .counters
                .transitions
                .iter()
                .map(|((from, to), n)| (format!("{from}->{to}"), *n))
                .collect(),
            conflicts_total: self.conflicts.total,
            claim_inhibit: self.core.not_claiming(),
            conflicts: self
                .conflicts
                .sightings
                .iter()
                .filter(|s| s.reported)
                .map(|s| control::ConflictStatus {
                    address: s.addr,
                    mac: control::format_mac(&s.mac),
                    last_seen_age_ms: u64::try_from(s.last_seen.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                })
                .collect(),
            checks: self
                .checks
                .iter()
                .map(|s| control::CheckStatus {
                    name: s.name.clone(),
                    healthy: s.healthy,
                    latency_ms: s.latency.map(|d| d.as_secs_f64() * 1000.0),
                    last_error: s.last_error.clone(),
                })
                .collect(),
        }
    }
}

/// What the tasks on the runtime hand the loop (with [`Bell::ring`]). VRRP packets are not among
/// them: the loop reads its sockets itself.
enum Input {
    Net(NetEvent),
    Check(CheckReport),
    Witness(WitnessReport),
    Sighting(Sighting),
    Call(ControlCall),
    Hup,
    Shutdown,
}

/// Runs an async operation (netlink, hooks) to completion from the loop's thread; the runtime's thread
/// drives its I/O meanwhile. The loop does these one at a time, in the order the core asked for them,
/// as it did when it awaited them.
trait Block: Future + Sized {
    fn block(self) -> Self::Output {
        tokio::runtime::Handle::current().block_on(self)
    }
}

impl<F: Future> Block for F {}

/// Someone other than us (`holder`) claimed an address on the interface: an announcement, or the
/// answer to one of our probes. It goes to every instance with that VIP on that interface.
struct Sighting {
    ifindex: u32,
    addr: IpAddr,
    holder: [u8; 6],
}

/// A release in progress: the master advertises priority 0 and keeps the VIP; the operator's answer
/// waits until a successor announces itself, or until it is clear none will (then the master resumes).
struct PendingRelease {
    id: usize,
    reply: oneshot::Sender<Response>,
    abort_at: Instant,
    /// How long the successor had, for the refusal.
    window: Duration,
    message: String,
}

/// What an operator command came to.
enum Outcome {
    Done(String),
    Error(String),
    /// A release handed to the core; answered by [`Daemon::settle_releases`].
    Pending {
        id: usize,
        message: String,
        abort_at: Instant,
    },
}

/// The senders the tasks around the loop use.
#[derive(Clone)]
struct Channels {
    checks: mpsc::Sender<CheckReport>,
    witness: mpsc::Sender<WitnessReport>,
    sightings: mpsc::Sender<Sighting>,
}

pub struct Daemon {
    netlink: Netlink,
    /// VIP lifetime refreshes, sent from the loop without waiting (see [`netlink::Refresher`]).
    refresher: netlink::Refresher,
    /// Keeps the notifications of our own refreshes away from the monitor (see [`Daemon::drain_actions`]).
    monitor_filter: netlink::MonitorFilter,
    /// An instance added or removed its VIPs since the monitor's filter was last updated.
    held_changed: bool,
    config_path: PathBuf,
    state_dir: PathBuf,
    pub instances: Vec<Runtime>,
    sockets: HashMap<SockKey, Arc<VrrpSocket>>,
    /// The loop's sleep; a VRRP socket is watched with its index in `socket_keys` as the token, the
    /// refresher's socket as [`REFRESHER`].
    wakeup: Wakeup,
    socket_keys: Vec<SockKey>,
    /// Connected senders, shared by the instances with the same interface, source and destination.
    senders: HashMap<(u32, IpAddr, IpAddr), Arc<VrrpSender>>,
    announcers: HashMap<u32, Arc<Announcer>>,
    watched: HashSet<(u32, bool)>,
    overrides: BTreeMap<String, Override>,
    /// A transition happened since the systemd STATUS= line was last sent.
    status_dirty: bool,
    /// Releases waiting to see a successor before they answer the operator.
    pending_releases: Vec<PendingRelease>,
    /// Instances from a reload that wait for a retiring instance holding the same VIPs to finish.
    pending_starts: Vec<Runtime>,
    next_id: usize,
    chans: Channels,
    /// Packets no instance could claim (unknown VRID, undecodable header), by reason.
    pub unmatched_drops: BTreeMap<&'static str, u64>,
    /// Failed reads of a VRRP socket (logged once per doubling).
    receive_errors: u64,
}

impl Daemon {
    /// Build the runtime of one instance: resolve its interfaces, open (or share) its sockets, start its
    /// checks, witness, probe and hooks. Changes nothing on the host.
    ///
    /// An IPv6 link-local address still under duplicate address detection cannot be bound yet: it is
    /// waited for up to `dad_patience` (at start-up, when the kernel has just brought the link up).
    fn prepare(&mut self, inst: &InstanceConfig, dad_patience: Duration) -> Result<Runtime> {
        let link = self
            .netlink
            .link_by_name(&inst.interface)
            .block()
            .with_context(|| format!("instance {}", inst.name))?;
        let tracked = self.resolve_tracked(inst)?;
        let v6 = inst.is_v6();
        let vips: Vec<IpAddr> = inst.addresses.iter().map(|v| v.addr).collect();
        let primary = self
            .settled_primary(inst, link.index, &vips, dad_patience)?
            .with_context(|| {
                format!(
                    "instance {}: interface {} has no {} address to send adverts from; {}",
                    inst.name,
                    inst.interface,
                    if v6 { "IPv6 link-local" } else { "IPv4" },
                    if v6 {
                        "bring the interface up so the kernel assigns fe80::/64"
                    } else {
                        "give the host its own address on that interface (the VIP cannot be it)"
                    }
                )
            })?;
        let key = (link.index, v6);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.sockets.entry(key) {
            let sock = Arc::new(
                VrrpSocket::open(&inst.interface, link.index, v6, true)
                    .with_context(|| format!("instance {}: VRRP socket", inst.name))?,
            );
            self.wakeup
                .watch(sock.raw_fd(), self.socket_keys.len() as u64)
                .with_context(|| format!("instance {}: watching the VRRP socket", inst.name))?;
            self.socket_keys.push(key);
            slot.insert(sock);
        }
        let announcer = match self.announcers.get(&link.index) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(
                    Announcer::open(link.index, link.mac)
                        .with_context(|| format!("instance {}: announcer", inst.name))?,
                );
                self.announcers.insert(link.index, a.clone());
                a
            }
        };
        if self.watched.insert((link.index, v6)) {
            let watch = ConflictWatch::open(link.index, link.mac, v6)
                .with_context(|| format!("instance {}: ARP/ND watch", inst.name))?;
            spawn_conflict_watch(link.index, watch, self.chans.sightings.clone());
        }
        let own = self.netlink.addresses(link.index).block()?;
        let policy = RxPolicy {
            vrid: inst.vrid,
            version: inst.version,
            interval_cs: interval_cs(inst.advert_interval),
            checksum: inst.checksum,
            own_addresses: own
                .iter()
                .map(|(a, _)| *a)
                .filter(|a| !vips.contains(a))
                .collect(),
            unicast_peers: inst.unicast_peers.clone(),
        };
        let targets = if inst.unicast_peers.is_empty() {
            vec![if v6 {
                IpAddr::V6(GROUP_V6)
            } else {
                IpAddr::V4(GROUP_V4)
            }]
        } else {
            inst.unicast_peers.clone()
        };
        let mut destinations = Vec::new();
        for dst in targets {
            let key = (link.index, primary, dst);
            let sender = match self.senders.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(
                        VrrpSender::open(&inst.interface, link.index, primary, dst)
                            .with_context(|| format!("instance {}: advert sender", inst.name))?,
                    );
                    self.senders.insert(key, s.clone());
                    s
                }
            };
            destinations.push((dst, sender));
        }
        let send_checksum = match inst.checksum {
            ChecksumMode::MessageOnly => ChecksumMode::MessageOnly,
            _ => ChecksumMode::PseudoHeader,
        };
        let id = self.next_id;
        self.next_id += 1;
        let check_tasks = health::spawn(id, &inst.name, &inst.checks, self.chans.checks.clone());
        let witness_task = witness::spawn(
            id,
            inst.witness.clone(),
            WITNESS_EVERY,
            self.chans.witness.clone(),
        );
        Ok(Runtime {
            id,
            core: vrrp::Instance::new(inst.vrrp_config(primary)),
            cfg: inst.clone(),
            link,
            primary,
            sock_key: key,
            announcer,
            policy,
            destinations,
            send_checksum,
            tx_buf: Vec::with_capacity(MAX_PACKET),
            holding: false,
            next_refresh: None,
            next_announce_refresh: None,
            history: VecDeque::new(),
            speakers: HashMap::new(),
            counters: Counters::default(),
            checks: CheckState::for_checks(&inst.checks),
            tracked,
            conflicts: Conflicts::default(),
            fault_sent: None,
            priority_sent: inst.priority.min(254),
            inhibit_sent: None,
            witness_inhibit: (!inst.witness.is_empty())
                .then(|| "witness: first probe pending".to_string()),
            may_announce: Arc::new(AtomicBool::new(false)),
            hooks: spawn_hooks(inst),
            next_probe: None,
            probed: false,
            heard_since_probe: false,
            retiring: false,
            check_tasks,
            witness_task,
        })
    }

    fn resolve_tracked(&self, inst: &InstanceConfig) -> Result<Vec<Tracked>> {
        let mut tracked = Vec::new();
        for name in &inst.track_interfaces {
            let l = self
                .netlink
                .link_by_name(name)
                .block()
                .with_context(|| format!("instance {}: track_interfaces", inst.name))?;
            tracked.push(Tracked {
                name: name.clone(),
                index: l.index,
                up: l.up,
            });
        }
        Ok(tracked)
    }

    /// Apply a change that leaves the election alone (priority, announcements, lifetime, checks,
    /// hooks, witness, tracked interfaces) to a running instance: no failover, only the affected
    /// tasks restart.
    fn update_in_place(
        &mut self,
        i: usize,
        new: &InstanceConfig,
        tracked: Vec<Tracked>,
        now: Instant,
    ) -> String {
        let chans = self.chans.clone();
        let rt = &mut self.instances[i];
        let mut what = Vec::new();
        if rt.cfg.priority != new.priority {
            what.push(format!("priority {}", new.priority));
        }
        if rt.cfg.checks != new.checks {
            rt.checks = CheckState::for_checks(&new.checks);
            rt.check_tasks = health::spawn(rt.id, &new.name, &new.checks, chans.checks.clone());
            what.push("checks".to_string());
        }
        if rt.cfg.witness != new.witness {
            rt.witness_task = witness::spawn(
                rt.id,
                new.witness.clone(),
                WITNESS_EVERY,
                chans.witness.clone(),
            );
            rt.witness_inhibit =
                (!new.witness.is_empty()).then(|| "witness: first probe pending".to_string());
            what.push("witness".to_string());
        }
        if rt.cfg.notify != new.notify {
            rt.hooks = spawn_hooks(new);
            what.push("hooks".to_string());
        }
        if rt.cfg.track_interfaces != new.track_interfaces {
            what.push("tracked interfaces".to_string());
        }
        if rt.cfg.announce != new.announce {
            what.push("announcements".to_string());
            rt.next_announce_refresh = if rt.holding {
                new.announce.refresh.map(|p| now + p)
            } else {
                None
            };
        }
        if rt.cfg.address_lifetime != new.address_lifetime {
            what.push("address lifetime".to_string());
            if rt.holding {
                rt.next_refresh = Some(now);
            }
        }
        rt.tracked = tracked;
        rt.cfg = new.clone();
        rt.reevaluate(now);
        format!("{} ({})", new.name, what.join(", "))
    }

    /// Remove stale copies of the instance's VIPs (a previous run killed before their lifetime ran out),
    /// then start its election, with any override that survived a restart.
    fn start(&mut self, mut rt: Runtime, now: Instant) -> Result<()> {
        let present = self.netlink.addresses(rt.link.index).block()?;
        for vip in &rt.cfg.addresses {
            if present.iter().any(|(a, _)| *a == vip.addr) {
                warn!(instance = %rt.cfg.name, vip = %vip, "removing a stale copy of our VIP (left by an earlier run, or added by hand)");
                self.netlink
                    .remove_address(rt.link.index, vip.addr, vip.prefix_len)
                    .block()?;
            }
        }
        info!(
            instance = %rt.cfg.name,
            "managing {} on {} (vrid {}, priority {}, VRRPv{}, adverts every {}, {}, from {})",
            rt.vips().join(", "),
            rt.cfg.interface,
            rt.cfg.vrid,
            rt.cfg.priority,
            rt.cfg.version.number(),
            config::format_duration(rt.cfg.advert_interval),
            if rt.cfg.unicast_peers.is_empty() {
                "multicast".to_string()
            } else {
                format!("unicast to {:?}", rt.cfg.unicast_peers)
            },
            rt.primary,
        );
        // Before the first witness answer or check result nobody knows this host can serve: at 10 ms
        // adverts master-down passes long before either can arrive.
        rt.reevaluate_inhibit(now);
        rt.core.handle_event(now, Event::Startup);
        if !rt.link.up {
            rt.core.handle_event(now, Event::LinkDown);
        }
        rt.reevaluate(now);
        if let Some(o) = self.overrides.get(&rt.cfg.name) {
            info!(instance = %rt.cfg.name, "restoring the operator's {o:?} override from {}", self.state_dir.display());
            rt.core.handle_event(now, Event::Override(*o));
        }
        self.instances.push(rt);
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let deadlines = self
            .instances
            .iter()
            .filter_map(|r| r.deadline())
            .chain(self.pending_releases.iter().map(|p| p.abort_at));
        crate::wakeup::coalesced(deadlines, crate::wakeup::COALESCE)
    }

    fn on_timer(&mut self, now: Instant) {
        for rt in &mut self.instances {
            if rt.core.poll_timeout().is_some_and(|t| t <= now) {
                rt.core.handle_timeout(now);
            }
        }
    }

    /// Refresh VIP lifetimes, periodic announcements and conflict probes that are due.
    fn refresh(&mut self, now: Instant) {
        for rt in &mut self.instances {
            if rt.next_probe.is_some_and(|t| t <= now + rt.refresh_slack()) {
                rt.next_probe = Some(now + PROBE_EVERY);
                // The last round's answers, if any, have long arrived through the watch.
                let quiet = std::mem::replace(&mut rt.probed, true) && !rt.heard_since_probe;
                rt.heard_since_probe = false;
                if quiet && rt.conflicts.quiet_round(now) {
                    info!(instance = %rt.cfg.name, "nobody else answers for {} any more; back in the election", rt.vips().join(", "));
                    rt.reevaluate(now);
                }
                for vip in &rt.cfg.addresses {
                    if let Err(err) = rt.announcer.probe(vip.addr) {
                        debug!(instance = %rt.cfg.name, "conflict probe for {vip} failed: {err}");
                    }
                }
            }
            if rt
                .next_refresh
                .is_some_and(|t| t <= now + rt.refresh_slack())
            {
                rt.next_refresh = Some(now + rt.refresh_period());
                for vip in &rt.cfg.addresses {
                    if let Err(err) = self.refresher.refresh(
                        rt.link.index,
                        vip.addr,
                        vip.prefix_len,
                        rt.cfg.address_lifetime,
                    ) {
                        warn!(instance = %rt.cfg.name, vip = %vip, "cannot refresh the VIP's lifetime: {err}");
                    }
                }
            }
            if rt.next_announce_refresh.is_some_and(|t| t <= now) {
                rt.next_announce_refresh = rt.cfg.announce.refresh.map(|p| now + p);
                for vip in &rt.cfg.addresses {
                    if let Err(err) = rt.announcer.announce(vip.addr) {
                        debug!(instance = %rt.cfg.name, "periodic announcement failed: {err}");
                    }
                }
            }
        }
    }

    /// The address adverts go out from (see [`Daemon::prepare`]).
    fn settled_primary(
        &self,
        inst: &InstanceConfig,
        index: u32,
        vips: &[IpAddr],
        dad_patience: Duration,
    ) -> Result<Option<IpAddr>> {
        let give_up = Instant::now() + dad_patience;
        let mut said = false;
        loop {
            let all = self.netlink.address_details(index).block()?;
            let Some(d) = netlink::pick_primary(&all, inst.is_v6(), vips)
                .and_then(|addr| all.into_iter().find(|d| d.addr == addr))
            else {
                return Ok(None);
            };
            let addr = d.addr;
            if d.is_dad_failed() {
                bail!(
                    "instance {}: {addr} on {} failed duplicate address detection (another host uses it); \
                     give the interface a unique link-local address",
                    inst.name,
                    inst.interface
                );
            }
            if !d.is_tentative() {
                return Ok(Some(addr));
            }
            if Instant::now() >= give_up {
                bail!(
                    "instance {}: {addr} on {} is still tentative (duplicate address detection is running), \
                     and adverts cannot be sent from it yet; try again in a few seconds",
                    inst.name,
                    inst.interface
                );
            }
            if !std::mem::replace(&mut said, true) {
                info!(instance = %inst.name, "waiting for duplicate address detection of {addr} on {}", inst.interface);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The kernel refused lifetime refreshes: say which VIP (the next refresh tries again).
    fn on_refresh_errors(&mut self) {
        for (addr, err) in self.refresher.errors() {
            let owner = addr.and_then(|a| {
                self.instances
                    .iter()
                    .find(|rt| rt.cfg.addresses.iter().any(|v| v.addr == a))
            });
            match (owner, addr) {
                (Some(rt), Some(a)) => {
                    warn!(instance = %rt.cfg.name, "the kernel refused to refresh the lifetime of {a}: {err}")
                }
                (None, Some(a)) => {
                    warn!("the kernel refused to refresh the lifetime of {a}: {err}")
                }
                _ => warn!("the kernel refused a VIP lifetime refresh: {err}"),
            }
        }
    }

    /// Read what a readable VRRP socket holds (a bounded batch: the socket is level-triggered, so the
    /// rest wakes the next wait).
    fn on_readable(&mut self, now: Instant, token: u64, buf: &mut [u8]) {
        let Some(&key) = self.socket_keys.get(token as usize) else {
            return;
        };
        let Some(sock) = self.sockets.get(&key).cloned() else {
            return;
        };
        for _ in 0..64 {
            match sock.try_recv(buf) {
                Ok(Some(d)) => self.on_packet(now, key, &d, &buf[..d.len]),
                Ok(None) => return,
                Err(err) => {
                    self.receive_errors += 1;
                    if self.receive_errors.is_power_of_two() {
                        warn!(
                            "receive error on the VRRP socket: {err} ({} so far)",
                            self.receive_errors
                        );
                    }
                    return;
                }
            }
        }
    }

    fn on_packet(&mut self, now: Instant, key: SockKey, d: &Datagram, bytes: &[u8]) {
        let Some(vrid) = validate::peek_vrid(bytes) else {
            *self.unmatched_drops.entry("truncated").or_default() += 1;
            return;
        };
        let rx = Received {
            src: d.src,
            dst: d.dst,
            ttl: d.ttl,
        };
        let mut matched = false;
        for rt in self
            .instances
            .iter_mut()
            .filter(|r| r.sock_key == key && r.cfg.vrid == vrid)
        {
            matched = true;
            match validate::validate(bytes, &rx, &rt.policy) {
                Ok(advert) => {
                    rt.counters.adverts_received += 1;
                    rt.speakers.insert(
                        d.src,
                        Speaker {
                            priority: advert.priority,
                            interval_cs: advert.interval_cs,
                            addresses: advert.addresses.len(),
                            last_heard: now,
                        },
                    );
                    rt.core
                        .handle_event(now, Event::Advert { src: d.src, advert });
                }
                Err(reason) => {
                    *rt.counters.drops.entry(reason.label()).or_default() += 1;
                    debug!(instance = %rt.cfg.name, src = %d.src, "dropped an advert: {reason}");
                }
            }
        }
        if !matched {
            *self.unmatched_drops.entry("vrid").or_default() += 1;
        }
    }

    fn on_net_event(&mut self, now: Instant, ev: NetEvent) {
        match ev {
            NetEvent::Link { index, up } => {
                for rt in &mut self.instances {
                    if rt.link.index == index && rt.link.up != up {
                        rt.link.up = up;
                        if up {
                            info!(instance = %rt.cfg.name, "link {} is up", rt.cfg.interface);
                            rt.core.handle_event(now, Event::LinkUp);
                        } else {
                            warn!(instance = %rt.cfg.name, "link {} is down", rt.cfg.interface);
                            rt.core.handle_event(now, Event::LinkDown);
                        }
                    }
                    let mut changed = false;
                    for t in rt
                        .tracked
                        .iter_mut()
                        .filter(|t| t.index == index && t.up != up)
                    {
                        t.up = up;
                        changed = true;
                        info!(instance = %rt.cfg.name, "tracked interface {} is {}", t.name, if up { "up" } else { "down" });
                    }
                    if changed {
                        rt.reevaluate(now);
                    }
                }
            }
            NetEvent::AddressRemoved { index, addr, .. } => {
                for rt in self.instances.iter_mut().filter(|r| r.link.index == index) {
                    if !rt.holding || rt.core.state() != State::Master {
                        continue;
                    }
                    let Some(vip) = rt.cfg.addresses.iter().find(|v| v.addr == addr) else {
                        continue;
                    };
                    warn!(instance = %rt.cfg.name, vip = %vip, "our VIP was removed while we are master (by hand, or its lifetime ran out); putting it back and announcing it");
                    rt.counters.vip_restored += 1;
                    if let Err(err) = self
                        .netlink
                        .add_address(
                            index,
                            vip.addr,
                            vip.prefix_len,
                            Some(rt.cfg.address_lifetime),
                        )
                        .block()
                    {
                        warn!(instance = %rt.cfg.name, vip = %vip, "cannot put the VIP back: {err:#}");
                    }
                    spawn_announce(rt, vec![vip.addr]);
                }
            }
            NetEvent::AddressAdded { index, addr, .. } => {
                // Our VIP appearing while we do not hold it is the two-owner mistake (an `ip addr add` by
                // hand on the backup): the daemon manages this address, so it takes the copy away.
                for rt in self.instances.iter_mut().filter(|r| r.link.index == index) {
                    if rt.holding || rt.retiring {
                        continue;
                    }
                    let Some(vip) = rt.cfg.addresses.iter().find(|v| v.addr == addr) else {
                        continue;
                    };
                    warn!(instance = %rt.cfg.name, vip = %vip, "our VIP was added to {} while we are {} (by hand?): that makes two owners, removing it; use `floatip takeover {}` to move it here", rt.cfg.interface, rt.core.state(), rt.cfg.name);
                    if let Err(err) = self
                        .netlink
                        .remove_address(index, vip.addr, vip.prefix_len)
                        .block()
                    {
                        warn!(instance = %rt.cfg.name, vip = %vip, "cannot remove it: {err:#}");
                    }
                }
            }
        }
    }

    fn on_check(&mut self, now: Instant, report: CheckReport) {
        let Some(rt) = self.instances.iter_mut().find(|r| r.id == report.instance) else {
            return;
        };
        let Some(state) = rt.checks.get_mut(report.check) else {
            return;
        };
        let first = !state.known;
        state.apply(&report);
        let name = state.name.clone();
        if report.changed {
            if report.healthy {
                info!(instance = %rt.cfg.name, check = %name, "check is healthy ({} ms)", report.latency.as_millis());
            } else {
                warn!(instance = %rt.cfg.name, check = %name, "check is failing: {}", report.error.as_deref().unwrap_or("failed"));
            }
        }
        // A first result also lifts the "waiting for the first result" inhibit.
        if report.changed || first {
            rt.reevaluate(now);
        }
    }

    fn on_witness(&mut self, now: Instant, report: WitnessReport) {
        let Some(rt) = self.instances.iter_mut().find(|r| r.id == report.instance) else {
            return;
        };
        if report.reachable {
            info!(instance = %rt.cfg.name, "witness reachable: {}", report.detail);
            rt.witness_inhibit = None;
        } else {
            warn!(instance = %rt.cfg.name, "witness unreachable, not claiming: {}", report.detail);
            rt.witness_inhibit = Some(report.detail);
        }
        rt.reevaluate_inhibit(now);
    }

    fn on_sighting(&mut self, now: Instant, s: Sighting) {
        for rt in self.instances.iter_mut() {
            if rt.link.index != s.ifindex || !rt.cfg.addresses.iter().any(|v| v.addr == s.addr) {
                continue;
            }
            let mac = s.holder;
            rt.heard_since_probe = true;
            // A backup hearing the master announce is normal; so is the successor announcing during a handoff.
            if !rt.holding || rt.core.state() != State::Master || rt.core.handoff().is_some() {
                if rt.conflicts.yielded.is_some() {
                    rt.conflicts.sighting(now, s.addr, mac, rt.link.mac);
                }
                continue;
            }
            match rt.conflicts.sighting(now, s.addr, mac, rt.link.mac) {
                Verdict::Wait => {}
                Verdict::Reannounce { first_report } => {
                    if first_report {
                        warn!(instance = %rt.cfg.name, "conflict: {} is also answered by {} while we are master; re-announcing", s.addr, control::format_mac(&mac));
                    }
                    spawn_announce(rt, rt.cfg.addresses.iter().map(|v| v.addr).collect());
                }
                Verdict::Yield(reason) => {
                    warn!(instance = %rt.cfg.name, "conflict: {reason}");
                    rt.reevaluate(now);
                }
            }
        }
    }

    /// Execute everything the cores asked for, in order.
    fn drain_actions(&mut self, now: Instant) {
        for i in 0..self.instances.len() {
            let mut touched = false;
            while let Some(action) = self.instances[i].core.poll_action() {
                touched = true;
                self.execute(i, now, action);
            }
            if !touched {
                continue;
            }
            let rt = &mut self.instances[i];
            let serving =
                rt.holding && rt.core.state() == State::Master && rt.core.handoff().is_none();
            rt.may_announce.store(serving, Ordering::Relaxed);
            let probe =
                (rt.holding && rt.core.state() == State::Master) || rt.conflicts.yielded.is_some();
            if probe != rt.next_probe.is_some() {
                rt.next_probe = probe.then(|| now + PROBE_EVERY);
                rt.probed = false;
            }
        }
        if self.instances.iter().any(|r| r.retiring) {
            self.instances
                .retain(|r| !(r.retiring && r.core.is_stopped()));
            self.status_dirty = true;
        }
        if std::mem::take(&mut self.held_changed) {
            // The IPv6 VIPs we hold: the kernel's notifications of their refreshes wake nobody.
            let held = self
                .instances
                .iter()
                .filter(|rt| rt.holding)
                .flat_map(|rt| {
                    rt.cfg.addresses.iter().filter_map(|v| match v.addr {
                        IpAddr::V6(a) => Some((rt.link.index, a)),
                        IpAddr::V4(_) => None,
                    })
                })
                .collect();
            if let Err(err) = self.monitor_filter.ignore_added_v6(held) {
                debug!("cannot update the netlink monitor's filter: {err}");
            }
        }
    }

    fn execute(&mut self, i: usize, now: Instant, action: Action) {
        let rt = &mut self.instances[i];
        match action {
            Action::SendAdvert(advert) => {
                for (dst, sender) in &rt.destinations {
                    rt.tx_buf.clear();
                    packet::encode_into(
                        &advert,
                        rt.primary,
                        *dst,
                        rt.send_checksum,
                        &mut rt.tx_buf,
                    );
                    match sender.send(&rt.tx_buf) {
                        Ok(()) => rt.counters.adverts_sent += 1,
                        Err(err) => {
                            rt.counters.send_errors += 1;
                            // Once per doubling is enough at 2am; the counter has the rest.
                            if rt.counters.send_errors.is_power_of_two() {
                                warn!(instance = %rt.cfg.name, "cannot send an advert to {dst}: {err} ({} errors so far)", rt.counters.send_errors);
                            }
                        }
                    }
                }
            }
            Action::AddAddresses(addrs) => {
                for addr in addrs {
                    let len = rt.prefix_len(addr);
                    match self
                        .netlink
                        .add_address(rt.link.index, addr, len, Some(rt.cfg.address_lifetime))
                        .block()
                    {
                        Ok(()) => {
                            info!(instance = %rt.cfg.name, "added {addr}/{len} to {}", rt.cfg.interface)
                        }
                        Err(err) => {
                            error!(instance = %rt.cfg.name, "cannot add {addr}/{len}: {err:#}")
                        }
                    }
                }
                rt.holding = true;
                self.held_changed = true;
                rt.may_announce.store(true, Ordering::Relaxed);
                rt.next_refresh = Some(now + rt.refresh_period());
                rt.next_announce_refresh = rt.cfg.announce.refresh.map(|p| now + p);
            }
            Action::RemoveAddresses(addrs) => {
                rt.holding = false;
                self.held_changed = true;
                rt.may_announce.store(false, Ordering::Relaxed);
                rt.next_refresh = None;
                rt.next_announce_refresh = None;
                rt.conflicts.reset_sightings();
                for addr in addrs {
                    let len = rt.prefix_len(addr);
                    match self
                        .netlink
                        .remove_address(rt.link.index, addr, len)
                        .block()
                    {
                        Ok(()) => {
                            info!(instance = %rt.cfg.name, "removed {addr}/{len} from {}", rt.cfg.interface)
                        }
                        Err(err) => {
                            error!(instance = %rt.cfg.name, "cannot remove {addr}/{len}: {err:#}")
                        }
                    }
                }
            }
            Action::Announce(addrs) => spawn_announce(rt, addrs),
            Action::Transition(t) => {
                self.status_dirty = true;
                info!(instance = %rt.cfg.name, "{} -> {}: {}", t.from, t.to, t.reason);
                *rt.counters.transitions.entry((t.from, t.to)).or_default() += 1;
                if let Some(hooks) = &rt.hooks {
                    let state = if t.to == State::Initialize {
                        "STOP"
                    } else {
                        t.to.as_str()
                    };
                    hooks.transition(state, t.from.as_str(), &t.reason, &rt.vips());
                }
                let age = now.saturating_duration_since(t.at);
                if rt.history.len() == HISTORY {
                    rt.history.pop_front();
                }
                rt.history.push_back(Record {
                    at: SystemTime::now() - age,
                    from: t.from,
                    to: t.to,
                    reason: t.reason,
                });
            }
        }
    }

    fn on_control(&mut self, now: Instant, call: ControlCall) {
        let outcome = match call.request {
            Request::Status { instance } => {
                let mut all = Vec::new();
                // A retiring instance is shown until its replacement (same name) runs: it is the one
                // still answering for the VIP during the handoff.
                let shown = |r: &&Runtime| {
                    !r.retiring
                        || !self
                            .instances
                            .iter()
                            .any(|o| !o.retiring && o.cfg.name == r.cfg.name)
                };
                for rt in self.instances.iter().filter(shown) {
                    let present: Vec<IpAddr> = self
                        .netlink
                        .addresses(rt.link.index)
                        .block()
                        .map(|a| a.into_iter().map(|(ip, _)| ip).collect())
                        .unwrap_or_default();
                    all.push(control::status_from_facts(&rt.facts(), &present, now));
                }
                let _ = call
                    .reply
                    .send(control::select_instances(all, instance.as_deref()));
                return;
            }
            Request::Takeover { instance } => {
                self.override_request(now, &instance, Override::Takeover, false)
            }
            Request::Release { instance, force } => {
                self.override_request(now, &instance, Override::Release, force)
            }
            Request::Auto { instance } => {
                self.override_request(now, &instance, Override::Auto, false)
            }
            Request::Reload => match self.reload(now) {
                Ok(msg) => Outcome::Done(msg),
                Err(err) => Outcome::Error(format!("{err:#}")),
            },
        };
        let response = match outcome {
            Outcome::Done(message) => Response::Done { message },
            Outcome::Error(message) => Response::Error { message },
            Outcome::Pending {
                id,
                message,
                abort_at,
            } => {
                self.pending_releases.push(PendingRelease {
                    id,
                    reply: call.reply,
                    abort_at,
                    window: abort_at.saturating_duration_since(now),
                    message,
                });
                return;
            }
        };
        let _ = call.reply.send(response);
    }

    fn override_request(&mut self, now: Instant, name: &str, o: Override, force: bool) -> Outcome {
        let Some(rt) = self
            .instances
            .iter_mut()
            .find(|r| r.cfg.name == name && !r.retiring)
        else {
            let known: Vec<&str> = self.instances.iter().map(|r| r.cfg.name.as_str()).collect();
            return Outcome::Error(control::unknown_instance(name, known.into_iter()));
        };
        let state = rt.core.state();
        let vips = rt.vips().join(", ");
        let mut pending = None;
        let message = match o {
            Override::Takeover => {
                if state == State::Fault {
                    let why = rt
                        .core
                        .fault()
                        .map(str::to_string)
                        .unwrap_or_else(|| "link down".to_string());
                    return Outcome::Error(format!(
                        "{name} is in FAULT ({why}); fix that first: a faulty host must not take the address"
                    ));
                }
                if rt.cfg.priority == 255 {
                    return Outcome::Error(format!(
                        "{name} has priority 255 (address owner): it is always preferred already"
                    ));
                }
                format!("{name}: taking over {vips} now and staying preferred (priority 254) until `floatip auto {name}`")
            }
            Override::Release if state == State::Master && force => format!(
                "{name}: released {vips} (--force); this host stays BACKUP until `floatip auto {name}`"
            ),
            Override::Release if state == State::Master => {
                // Backups are silent in VRRP, so whether one will take over is only known by asking:
                // advertise priority 0, keep answering, and see who announces itself.
                let window = rt.core.handoff_window();
                let margin = rt.core.current_interval().min(window / 4);
                pending = Some(now + window - margin);
                format!("{name}: released {vips}; this host stays BACKUP until `floatip auto {name}`")
            }
            Override::Release => {
                format!("{name}: will not claim {vips} until `floatip auto {name}`")
            }
            Override::Auto => format!(
                "{name}: back to automatic (priority {}, preempt {})",
                rt.cfg.priority, rt.cfg.preempt
            ),
        };
        info!(instance = %name, "operator: {message}");
        let id = rt.id;
        rt.core.handle_event(now, Event::Override(o));
        let saved = self.set_override(name, o);
        let message = match saved {
            Ok(()) => message,
            Err(err) => format!("{message}\n  warning: the override is in force but could not be saved, so it will not survive a restart: {err:#}"),
        };
        match pending {
            Some(abort_at) => Outcome::Pending {
                id,
                message,
                abort_at,
            },
            None => Outcome::Done(message),
        }
    }

    fn set_override(&mut self, name: &str, o: Override) -> Result<()> {
        match o {
            Override::Auto => self.overrides.remove(name),
            other => self.overrides.insert(name.to_string(), other),
        };
        control::save_overrides(&self.state_dir, &self.overrides)
    }

    /// Answer releases whose handoff ended; abandon those no successor answered (the master resumes).
    fn settle_releases(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending_releases.len() {
            let p = &self.pending_releases[i];
            let Some(rt) = self.instances.iter_mut().find(|r| r.id == p.id) else {
                let p = self.pending_releases.swap_remove(i);
                let _ = p.reply.send(Response::Error {
                    message: "the instance was removed by a reload during the release".to_string(),
                });
                continue;
            };
            let response = if rt.core.handoff() != Some(vrrp::machine::Handoff::Release) {
                let successor = rt
                    .core
                    .master_seen()
                    .map(|m| format!(" {} (priority {}) took over", m.address, m.priority))
                    .unwrap_or_default();
                Response::Done {
                    message: format!("{};{successor}", p.message),
                }
            } else if now >= p.abort_at {
                let name = rt.cfg.name.clone();
                let vips = rt.vips().join(", ");
                let vrid = rt.cfg.vrid;
                let waited = vrrp::machine::fmt_duration(p.window);
                rt.core.handle_event(now, Event::Override(Override::Auto));
                warn!(instance = %name, "release abandoned: no other router took over within {waited}; staying MASTER");
                let saved = self.set_override(&name, Override::Auto);
                Response::Error {
                    message: format!(
                        "{name}: no other router on VRID {vrid} took over {vips} within {waited}, so this host stays MASTER (releasing would have left the address unowned).\n  Start floatip (or keepalived) on the other host first, or run `floatip release {name} --force` to release anyway.{}",
                        saved.err().map(|e| format!("\n  warning: could not update the overrides file: {e:#}")).unwrap_or_default()
                    ),
                }
            } else {
                i += 1;
                continue;
            };
            let p = self.pending_releases.swap_remove(i);
            let _ = p.reply.send(response);
        }
    }

    /// Start instances from a reload once no retiring instance holds any of their VIPs.
    fn start_pending(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending_starts.len() {
            let rt = &self.pending_starts[i];
            let blocked = self.instances.iter().any(|old| {
                old.retiring
                    && old
                        .cfg
                        .addresses
                        .iter()
                        .any(|a| rt.cfg.addresses.iter().any(|b| a.addr == b.addr))
            });
            if blocked {
                i += 1;
                continue;
            }
            let rt = self.pending_starts.swap_remove(i);
            let name = rt.cfg.name.clone();
            if let Err(err) = self.start(rt, now) {
                error!(instance = %name, "cannot start after reload: {err:#}");
            }
        }
    }

    /// Re-read the config. Unchanged instances keep their state; a changed priority applies in place;
    /// any other change, like a removed instance, steps down make-before-break and starts afresh.
    fn reload(&mut self, now: Instant) -> Result<String> {
        crate::service::reloading();
        let result = self.apply_config(now);
        crate::service::ready(&self.status_line());
        result
    }

    /// The systemd STATUS= line: each instance's state.
    fn status_line(&self) -> String {
        crate::service::status_line(
            self.instances
                .iter()
                .filter(|r| !r.retiring)
                .map(|r| (r.cfg.name.as_str(), r.core.state().as_str())),
        )
    }

    fn apply_config(&mut self, now: Instant) -> Result<String> {
        let new = config::load(&self.config_path)
            .map_err(|e| anyhow::anyhow!("{e}\nthe running configuration stays in force"))?;
        let live = |d: &Daemon, name: &str| {
            d.instances
                .iter()
                .position(|r| r.cfg.name == name && !r.retiring)
        };
        // Everything that can fail happens first: if an interface is missing, nothing has changed yet.
        let mut fresh = Vec::new();
        let mut in_place = Vec::new();
        for inst in &new.instances {
            match live(self, &inst.name) {
                Some(i) if self.instances[i].cfg == *inst => {}
                Some(i) if same_election(&self.instances[i].cfg, inst) => {
                    let tracked = self.resolve_tracked(inst).map_err(|e| {
                        anyhow::anyhow!("{e:#}\nthe running configuration stays in force")
                    })?;
                    in_place.push((i, inst.clone(), tracked));
                }
                _ => {
                    // No waiting here: the loop serves the running instances meanwhile.
                    let rt = self.prepare(inst, Duration::ZERO).map_err(|e| {
                        anyhow::anyhow!("{e:#}\nthe running configuration stays in force")
                    })?;
                    fresh.push(rt);
                }
            }
        }
        let kept = new
            .instances
            .iter()
            .filter(|inst| live(self, &inst.name).is_some_and(|i| self.instances[i].cfg == **inst))
            .count();
        let mut changed = Vec::new();
        for (i, inst, tracked) in in_place {
            changed.push(self.update_in_place(i, &inst, tracked, now));
        }
        let mut retired = Vec::new();
        for rt in self.instances.iter_mut().filter(|r| !r.retiring) {
            let stays = new
                .instances
                .iter()
                .any(|i| i.name == rt.cfg.name && (*i == rt.cfg || same_election(&rt.cfg, i)));
            if !stays {
                rt.retiring = true;
                rt.core.handle_event(now, Event::Shutdown);
                retired.push(rt.cfg.name.clone());
            }
        }
        // Let retiring masters send their priority-0 adverts before the new instances start.
        self.drain_actions(now);
        let started: Vec<String> = fresh.iter().map(|r| r.cfg.name.clone()).collect();
        // A replacement starts once the instance it replaces has handed its VIPs over.
        self.pending_starts.extend(fresh);
        self.start_pending(now);
        let msg = format!(
            "reloaded {}: {kept} unchanged; changed in place: [{}]; started: [{}]; stepping down: [{}]",
            self.config_path.display(),
            changed.join(", "),
            started.join(", "),
            retired.join(", ")
        );
        info!("{msg}");
        Ok(msg)
    }

    /// Last resort when a stop runs out of time: take every VIP we hold off the interface.
    fn remove_all(&mut self) {
        for rt in &mut self.instances {
            if !rt.holding {
                continue;
            }
            for vip in &rt.cfg.addresses {
                let _ = self
                    .netlink
                    .remove_address(rt.link.index, vip.addr, vip.prefix_len)
                    .block();
            }
            rt.holding = false;
        }
    }

    fn all_stopped(&self) -> bool {
        self.instances.iter().all(|r| r.core.is_stopped())
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

    /// Let queued hooks (the stop hooks last) finish, bounded.
    fn drain_hooks(&mut self) {
        for rt in &mut self.instances {
            if let Some(h) = rt.hooks.take() {
                h.drain(HOOK_DRAIN).block();
            }
        }
    }
}

/// Everything the election depends on is the same, so the change applies in place without a failover.
/// (A change to or from priority 255, the address owner, changes how the core claims: not in place.)
fn same_election(old: &InstanceConfig, new: &InstanceConfig) -> bool {
    let mut probe = new.clone();
    probe.priority = old.priority;
    probe.announce = old.announce.clone();
    probe.address_lifetime = old.address_lifetime;
    probe.checks = old.checks.clone();
    probe.notify = old.notify.clone();
    probe.witness = old.witness.clone();
    probe.track_interfaces = old.track_interfaces.clone();
    probe == *old && (old.priority == 255) == (new.priority == 255)
}

fn spawn_hooks(inst: &InstanceConfig) -> Option<Hooks> {
    let n = &inst.notify;
    [&n.master, &n.backup, &n.fault, &n.stop]
        .iter()
        .any(|h| h.is_some())
        .then(|| hooks::spawn(inst.name.clone(), n.clone()))
}

/// The gratuitous ARP / NA burst after a claim: `count` announcements `spacing` apart, off the loop.
fn spawn_announce(rt: &Runtime, addrs: Vec<IpAddr>) {
    let announcer = rt.announcer.clone();
    let may_announce = rt.may_announce.clone();
    let count = rt.cfg.announce.count;
    let spacing = rt.cfg.announce.spacing;
    let name = rt.cfg.name.clone();
    tokio::spawn(async move {
        for n in 0..count {
            if n > 0 {
                tokio::time::sleep(spacing).await;
            }
            // A burst ends when the claim does: announcing an address we gave up would pull clients
            // back to a host that no longer answers.
            if !may_announce.load(Ordering::Relaxed) {
                return;
            }
            for addr in &addrs {
                if let Err(err) = announcer.announce(*addr) {
                    warn!(instance = %name, "cannot announce {addr}: {err}");
                }
            }
        }
    });
}

fn interval_cs(d: Duration) -> u16 {
    u16::try_from(d.as_millis() / 10).unwrap_or(u16::MAX)
}

/// Passive: every ARP/NA on the interface that claims an address from a MAC other than ours.
fn spawn_conflict_watch(ifindex: u32, watch: ConflictWatch, tx: mpsc::Sender<Sighting>) {
    tokio::spawn(async move {
        let mut errors = 0u64;
        loop {
            match watch.next().await {
                Ok((addr, mac)) => {
                    let s = Sighting {
                        ifindex,
                        addr,
                        holder: mac,
                    };
                    // Full channel: the loop is busy, a sighting will come again.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(s) {
                        return;
                    }
                }
                Err(err) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        warn!("ARP/ND watch error: {err} ({errors} so far)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

/// Run until `shutdown` resolves, then step down make-before-break and exit.
///
/// The protocol loop gets a thread of its own ([`protocol_loop`], see [`crate::wakeup`]); this task
/// keeps the runtime turning for everything else and forwards signals and the tasks' inputs to it.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    if cfg.instances.is_empty() {
        bail!(
            "{}: no [[instance]] configured; nothing to do",
            cfg.path.display()
        );
    }
    let overrides = control::load_overrides(&cfg.daemon.state_dir)?;
    let netlink = Netlink::new().context("cannot open netlink (needs CAP_NET_ADMIN)")?;
    let refresher = netlink::Refresher::open()
        .context("cannot open netlink for lifetime refreshes (needs CAP_NET_ADMIN)")?;
    let (events, monitor_filter) = netlink::monitor_filtered(Some(refresher.port()))
        .context("cannot monitor links and addresses")?;
    let listener = control::bind(&cfg.daemon.socket)?;
    let metrics_listener = cfg.daemon.metrics.map(crate::metrics::bind).transpose()?;
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let wakeup = Wakeup::new().context("cannot create the loop's timer and doorbell")?;
    let bell = wakeup.bell();
    let (calls_tx, calls) = mpsc::channel::<ControlCall>(16);
    let (checks_tx, check_reports) = mpsc::channel(256);
    let (witness_tx, witness_reports) = mpsc::channel(64);
    let (sightings_tx, sightings) = mpsc::channel(256);
    let (inputs_tx, inputs) = mpsc::channel::<Input>(256);
    let (ready_tx, ready_rx) = oneshot::channel();
    let chans = Channels {
        checks: checks_tx,
        witness: witness_tx,
        sightings: sightings_tx,
    };
    let socket_path = cfg.daemon.socket.clone();
    let mut protocol = tokio::task::spawn_blocking(move || {
        protocol_loop(
            cfg,
            (netlink, refresher, monitor_filter),
            overrides,
            wakeup,
            chans,
            inputs,
            ready_tx,
        )
    });
    // Calls queue until the loop is ready; `floatip status` during start-up waits rather than fails.
    if let Some(l) = metrics_listener {
        let calls = calls_tx.clone();
        tokio::spawn(async move {
            if let Err(err) = crate::metrics::serve(l, calls).await {
                error!("metrics endpoint stopped: {err:#}");
            }
        });
    }
    tokio::spawn(async move {
        if let Err(err) = control::accept_loop(listener, calls_tx).await {
            error!("control socket stopped: {err:#}");
        }
    });
    let forwarding = forward(
        Sources {
            events,
            calls,
            check_reports,
            witness_reports,
            sightings,
            hup,
            ready: ready_rx,
        },
        shutdown,
        inputs_tx,
        bell,
        socket_path,
    );
    tokio::select! {
        r = &mut protocol => return r.context("the protocol loop panicked")?,
        () = forwarding => {}
    }
    protocol.await.context("the protocol loop panicked")?
}

/// Everything the tasks on the runtime tell the loop.
struct Sources {
    events: mpsc::UnboundedReceiver<NetEvent>,
    calls: mpsc::Receiver<ControlCall>,
    check_reports: mpsc::Receiver<CheckReport>,
    witness_reports: mpsc::Receiver<WitnessReport>,
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
fn protocol_loop(
    cfg: Config,
    (netlink, refresher, monitor_filter): (Netlink, netlink::Refresher, netlink::MonitorFilter),
    overrides: BTreeMap<String, Override>,
    wakeup: Wakeup,
    chans: Channels,
    mut inputs: mpsc::Receiver<Input>,
    ready: oneshot::Sender<()>,
) -> Result<()> {
    let mut daemon = Daemon {
        netlink,
        refresher,
        monitor_filter,
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
        pending_starts: Vec::new(),
        next_id: 0,
        chans,
        unmatched_drops: BTreeMap::new(),
        receive_errors: 0,
    };
    daemon
        .wakeup
        .watch(daemon.refresher.fd(), REFRESHER)
        .context("cannot watch the lifetime refresh socket")?;
    // Resolve everything before changing anything: a bad setup leaves the host untouched.
    let mut prepared = Vec::new();
    for inst in &cfg.instances {
        prepared.push(daemon.prepare(inst, DAD_PATIENCE)?);
    }
    let now = Instant::now();
    for rt in prepared {
        daemon.start(rt, now)?;
    }
    info!(
        "ready: {} instance(s); control socket {}",
        daemon.instances.len(),
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
        daemon.drain_actions(now);
        if !daemon.pending_releases.is_empty() {
            daemon.settle_releases(now);
            daemon.drain_actions(now);
        }
        if !daemon.pending_starts.is_empty() {
            daemon.start_pending(now);
        }
        if std::mem::take(&mut daemon.status_dirty) {
            let line = daemon.status_line();
            if line != status_line {
                crate::service::status(&line);
                status_line = line;
            }
        }
        if stop_deadline.is_some() && daemon.all_stopped() {
            daemon.drain_hooks();
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
        let woken = daemon
            .wakeup
            .wait(deadline)
            .context("the loop's wait failed")?;
        now = woken.now;
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
                daemon.drain_hooks();
                return Ok(());
            }
            daemon.on_timer(now);
            daemon.refresh(now);
        }
    }
}
