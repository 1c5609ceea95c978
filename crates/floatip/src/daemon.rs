//! The daemon: one loop that drives every instance's `vrrp::Instance` and executes what it asks for.
//!
//! ```text
//!  raw socket rx tasks ──(Packet)──┐
//!  netlink monitor ─────(NetEvent)─┤
//!  signals (SIGTERM/SIGINT) ───────┼──> loop: feed the cores ──> drain actions ──> netlink / sockets / GARP
//!  core deadlines, refresh timers ─┘
//! ```
//! Everything that changes the host (addresses, announcements, adverts) happens here, in the order the
//! core emitted it. Receive tasks only read and forward bytes: a hostile packet costs a decode, never
//! the loop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::cli::LogFormat;
use crate::config::{Config, InstanceConfig};
use crate::net::announce::Announcer;
use crate::net::netlink::{self, LinkInfo, NetEvent, Netlink};
use crate::net::vrrp_socket::VrrpSocket;
use vrrp::packet::{self, GROUP_V4, GROUP_V6};
use vrrp::validate::{self, Received, RxPolicy};
use vrrp::{Action, ChecksumMode, Event, State};

/// How many transitions `status` keeps per instance.
pub const HISTORY: usize = 50;
/// The largest VRRP message: 255 IPv6 addresses plus the header.
const MAX_PACKET: usize = 8 + 255 * 16 + 64;

/// Set up tracing: text or JSON to stderr, level from `RUST_LOG` (default info).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon can still be stopped by the control socket; never exit here.
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

/// One instance at run time: its core plus what the daemon knows about it.
pub struct Runtime {
    pub cfg: InstanceConfig,
    pub core: vrrp::Instance,
    pub link: LinkInfo,
    pub primary: IpAddr,
    sock_key: SockKey,
    announcer: Arc<Announcer>,
    policy: RxPolicy,
    destinations: Vec<IpAddr>,
    send_checksum: ChecksumMode,
    /// Whether our VIPs are in the kernel by our hand (between AddAddresses and RemoveAddresses).
    pub holding: bool,
    next_refresh: Option<Instant>,
    next_announce_refresh: Option<Instant>,
    pub history: VecDeque<Record>,
    pub speakers: HashMap<IpAddr, Speaker>,
    pub counters: Counters,
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

    /// How often a master re-adds its VIPs to push the kernel lifetime forward.
    fn refresh_period(&self) -> Duration {
        (self.cfg.address_lifetime / 4).max(Duration::from_millis(100))
    }

    fn deadline(&self) -> Option<Instant> {
        [
            self.core.poll_timeout(),
            self.next_refresh,
            self.next_announce_refresh,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// A received datagram, forwarded from a socket task to the loop.
struct Packet {
    key: SockKey,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    bytes: Vec<u8>,
}

pub struct Daemon {
    netlink: Netlink,
    pub instances: Vec<Runtime>,
    sockets: HashMap<SockKey, Arc<VrrpSocket>>,
    /// Packets no instance could claim (unknown VRID, undecodable header), by reason.
    pub unmatched_drops: BTreeMap<&'static str, u64>,
}

impl Daemon {
    /// Resolve every interface and open every socket before changing anything, so a bad setup
    /// (missing interface, missing privilege) leaves the host untouched.
    pub async fn prepare(cfg: &Config, netlink: Netlink) -> Result<Daemon> {
        let mut instances = Vec::new();
        let mut sockets: HashMap<SockKey, Arc<VrrpSocket>> = HashMap::new();
        let mut announcers: HashMap<u32, Arc<Announcer>> = HashMap::new();
        for inst in &cfg.instances {
            let link = netlink
                .link_by_name(&inst.interface)
                .await
                .with_context(|| format!("instance {}", inst.name))?;
            let v6 = inst.is_v6();
            let vips: Vec<IpAddr> = inst.addresses.iter().map(|v| v.addr).collect();
            let primary = netlink
                .primary_address(link.index, v6, &vips)
                .await?
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
            let multicast = inst.unicast_peers.is_empty();
            if let std::collections::hash_map::Entry::Vacant(slot) = sockets.entry(key) {
                let sock = VrrpSocket::open(&inst.interface, link.index, v6, true)
                    .with_context(|| format!("instance {}: VRRP socket", inst.name))?;
                slot.insert(Arc::new(sock));
            }
            let announcer = match announcers.get(&link.index) {
                Some(a) => a.clone(),
                None => {
                    let a = Arc::new(
                        Announcer::open(link.index, link.mac)
                            .with_context(|| format!("instance {}: announcer", inst.name))?,
                    );
                    announcers.insert(link.index, a.clone());
                    a
                }
            };
            let own = netlink.addresses(link.index).await?;
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
            let destinations = if multicast {
                vec![if v6 {
                    IpAddr::V6(GROUP_V6)
                } else {
                    IpAddr::V4(GROUP_V4)
                }]
            } else {
                inst.unicast_peers.clone()
            };
            let send_checksum = match inst.checksum {
                ChecksumMode::MessageOnly => ChecksumMode::MessageOnly,
                _ => ChecksumMode::PseudoHeader,
            };
            instances.push(Runtime {
                core: vrrp::Instance::new(inst.vrrp_config(primary)),
                cfg: inst.clone(),
                link,
                primary,
                sock_key: key,
                announcer,
                policy,
                destinations,
                send_checksum,
                holding: false,
                next_refresh: None,
                next_announce_refresh: None,
                history: VecDeque::new(),
                speakers: HashMap::new(),
                counters: Counters::default(),
            });
        }
        Ok(Daemon {
            netlink,
            instances,
            sockets,
            unmatched_drops: BTreeMap::new(),
        })
    }

    /// Remove stale copies of our VIPs (a previous run killed before their lifetime ran out), then start.
    async fn start(&mut self, now: Instant) -> Result<()> {
        for i in 0..self.instances.len() {
            let rt = &self.instances[i];
            let present = self.netlink.addresses(rt.link.index).await?;
            for vip in &rt.cfg.addresses {
                if present.iter().any(|(a, _)| *a == vip.addr) {
                    warn!(instance = %rt.cfg.name, vip = %vip, "removing a stale copy of our VIP left by an earlier run");
                    self.netlink
                        .remove_address(rt.link.index, vip.addr, vip.prefix_len)
                        .await?;
                }
            }
            let vips: Vec<String> = rt.cfg.addresses.iter().map(|v| v.to_string()).collect();
            info!(
                instance = %rt.cfg.name,
                "managing {} on {} (vrid {}, priority {}, VRRPv{}, adverts every {:?}, {}, from {})",
                vips.join(", "),
                rt.cfg.interface,
                rt.cfg.vrid,
                rt.cfg.priority,
                if rt.cfg.version == vrrp::Version::V2 { 2 } else { 3 },
                rt.cfg.advert_interval,
                if rt.cfg.unicast_peers.is_empty() { "multicast".to_string() } else { format!("unicast to {:?}", rt.cfg.unicast_peers) },
                rt.primary,
            );
            let rt = &mut self.instances[i];
            rt.core.handle_event(now, Event::Startup);
            if !rt.link.up {
                rt.core.handle_event(now, Event::LinkDown);
            }
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.instances.iter().filter_map(|r| r.deadline()).min()
    }

    fn on_timer(&mut self, now: Instant) {
        for rt in &mut self.instances {
            if rt.core.poll_timeout().is_some_and(|t| t <= now) {
                rt.core.handle_timeout(now);
            }
        }
    }

    /// Refresh VIP lifetimes and periodic announcements that are due.
    async fn refresh(&mut self, now: Instant) {
        for rt in &mut self.instances {
            if rt.next_refresh.is_some_and(|t| t <= now) {
                rt.next_refresh = Some(now + rt.refresh_period());
                for vip in &rt.cfg.addresses {
                    if let Err(err) = self
                        .netlink
                        .add_address(
                            rt.link.index,
                            vip.addr,
                            vip.prefix_len,
                            Some(rt.cfg.address_lifetime),
                        )
                        .await
                    {
                        warn!(instance = %rt.cfg.name, vip = %vip, "cannot refresh the VIP's lifetime: {err:#}");
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

    fn on_packet(&mut self, now: Instant, pkt: Packet) {
        let Some(vrid) = validate::peek_vrid(&pkt.bytes) else {
            *self.unmatched_drops.entry("truncated").or_default() += 1;
            return;
        };
        let rx = Received {
            src: pkt.src,
            dst: pkt.dst,
            ttl: pkt.ttl,
        };
        let mut matched = false;
        for rt in self
            .instances
            .iter_mut()
            .filter(|r| r.sock_key == pkt.key && r.cfg.vrid == vrid)
        {
            matched = true;
            match validate::validate(&pkt.bytes, &rx, &rt.policy) {
                Ok(advert) => {
                    rt.counters.adverts_received += 1;
                    rt.speakers.insert(
                        pkt.src,
                        Speaker {
                            priority: advert.priority,
                            interval_cs: advert.interval_cs,
                            addresses: advert.addresses.len(),
                            last_heard: now,
                        },
                    );
                    rt.core.handle_event(
                        now,
                        Event::Advert {
                            src: pkt.src,
                            advert,
                        },
                    );
                }
                Err(reason) => {
                    *rt.counters.drops.entry(reason.label()).or_default() += 1;
                    debug!(instance = %rt.cfg.name, src = %pkt.src, "dropped an advert: {reason}");
                }
            }
        }
        if !matched {
            *self.unmatched_drops.entry("vrid").or_default() += 1;
        }
    }

    async fn on_net_event(&mut self, now: Instant, ev: NetEvent) {
        match ev {
            NetEvent::Link { index, up } => {
                for rt in self.instances.iter_mut().filter(|r| r.link.index == index) {
                    if rt.link.up == up {
                        continue;
                    }
                    rt.link.up = up;
                    if up {
                        info!(instance = %rt.cfg.name, "link {} is up", rt.cfg.interface);
                        rt.core.handle_event(now, Event::LinkUp);
                    } else {
                        warn!(instance = %rt.cfg.name, "link {} is down", rt.cfg.interface);
                        rt.core.handle_event(now, Event::LinkDown);
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
                        .await
                    {
                        warn!(instance = %rt.cfg.name, vip = %vip, "cannot put the VIP back: {err:#}");
                    }
                    spawn_announce(rt, vec![vip.addr]);
                }
            }
            NetEvent::AddressAdded { .. } => {}
        }
    }

    /// Execute everything the cores asked for, in order.
    async fn drain_actions(&mut self, now: Instant) {
        for i in 0..self.instances.len() {
            while let Some(action) = self.instances[i].core.poll_action() {
                self.execute(i, now, action).await;
            }
        }
    }

    async fn execute(&mut self, i: usize, now: Instant, action: Action) {
        let rt = &mut self.instances[i];
        match action {
            Action::SendAdvert(advert) => {
                let sock = &self.sockets[&rt.sock_key];
                for dst in &rt.destinations {
                    let bytes = packet::encode(&advert, rt.primary, *dst, rt.send_checksum);
                    match sock.send(&bytes, rt.primary, *dst).await {
                        Ok(()) => rt.counters.adverts_sent += 1,
                        Err(err) => {
                            rt.counters.send_errors += 1;
                            // Once per burst of errors is enough at 2am; the counter has the rest.
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
                        .await
                    {
                        Ok(()) => {
                            info!(instance = %rt.cfg.name, "added {addr}/{len} to {}", rt.cfg.interface)
                        }
                        Err(err) => {
                            warn!(instance = %rt.cfg.name, "cannot add {addr}/{len}: {err:#}")
                        }
                    }
                }
                rt.holding = true;
                rt.next_refresh = Some(now + rt.refresh_period());
                rt.next_announce_refresh = rt.cfg.announce.refresh.map(|p| now + p);
            }
            Action::RemoveAddresses(addrs) => {
                rt.holding = false;
                rt.next_refresh = None;
                rt.next_announce_refresh = None;
                for addr in addrs {
                    let len = rt.prefix_len(addr);
                    match self.netlink.remove_address(rt.link.index, addr, len).await {
                        Ok(()) => {
                            info!(instance = %rt.cfg.name, "removed {addr}/{len} from {}", rt.cfg.interface)
                        }
                        Err(err) => {
                            warn!(instance = %rt.cfg.name, "cannot remove {addr}/{len}: {err:#}")
                        }
                    }
                }
            }
            Action::Announce(addrs) => spawn_announce(rt, addrs),
            Action::Transition(t) => {
                info!(instance = %rt.cfg.name, "{} -> {}: {}", t.from, t.to, t.reason);
                *rt.counters.transitions.entry((t.from, t.to)).or_default() += 1;
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

    /// Last resort when a stop runs out of time: take every VIP we hold off the interface.
    async fn remove_all(&mut self) {
        for rt in &mut self.instances {
            if !rt.holding {
                continue;
            }
            for vip in &rt.cfg.addresses {
                let _ = self
                    .netlink
                    .remove_address(rt.link.index, vip.addr, vip.prefix_len)
                    .await;
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
            .map(|r| {
                3 * r.core.current_interval().max(r.cfg.advert_interval) + r.cfg.advert_interval
            })
            .max()
            .unwrap_or_default()
            + Duration::from_secs(1)
    }
}

/// The gratuitous ARP / NA burst after a claim: `count` announcements `spacing` apart, off the loop.
fn spawn_announce(rt: &Runtime, addrs: Vec<IpAddr>) {
    let announcer = rt.announcer.clone();
    let count = rt.cfg.announce.count;
    let spacing = rt.cfg.announce.spacing;
    let name = rt.cfg.name.clone();
    tokio::spawn(async move {
        for n in 0..count {
            if n > 0 {
                tokio::time::sleep(spacing).await;
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

/// Forward every datagram of one socket to the loop. Errors are logged and counted, never fatal.
fn spawn_receiver(key: SockKey, sock: Arc<VrrpSocket>, tx: mpsc::Sender<Packet>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut errors = 0u64;
        loop {
            match sock.recv(&mut buf).await {
                Ok(d) => {
                    let pkt = Packet {
                        key,
                        src: d.src,
                        dst: d.dst,
                        ttl: d.ttl,
                        bytes: buf[..d.len].to_vec(),
                    };
                    if tx.send(pkt).await.is_err() {
                        return;
                    }
                }
                Err(err) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        warn!("receive error on the VRRP socket: {err} ({errors} so far)");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}

/// Run until `shutdown` resolves, then step down make-before-break and exit.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    if cfg.instances.is_empty() {
        bail!(
            "{}: no [[instance]] configured; nothing to do",
            cfg.path.display()
        );
    }
    let netlink = Netlink::new().context("cannot open netlink (needs CAP_NET_ADMIN)")?;
    let mut events = netlink::monitor().context("cannot monitor links and addresses")?;
    let mut daemon = Daemon::prepare(&cfg, netlink).await?;
    let (tx, mut packets) = mpsc::channel(1024);
    for (key, sock) in &daemon.sockets {
        spawn_receiver(*key, sock.clone(), tx.clone());
    }
    drop(tx);
    daemon.start(Instant::now()).await?;

    tokio::pin!(shutdown);
    let mut stop_deadline: Option<Instant> = None;
    let far = Duration::from_secs(3600);
    loop {
        let now = Instant::now();
        daemon.drain_actions(now).await;
        if stop_deadline.is_some() && daemon.all_stopped() {
            info!("stopped cleanly; every VIP we held is released");
            return Ok(());
        }
        let deadline = daemon.next_deadline().unwrap_or(now + far);
        let deadline = stop_deadline.map_or(deadline, |s| s.min(deadline));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if stop_deadline.is_some_and(|s| s <= now) {
                    warn!("stop took longer than the handoff bound; removing our VIPs now");
                    daemon.remove_all().await;
                    return Ok(());
                }
                daemon.on_timer(now);
                daemon.refresh(now).await;
            }
            Some(pkt) = packets.recv() => daemon.on_packet(Instant::now(), pkt),
            Some(ev) = events.recv() => daemon.on_net_event(Instant::now(), ev).await,
            _ = &mut shutdown, if stop_deadline.is_none() => {
                let now = Instant::now();
                stop_deadline = Some(now + daemon.stop_bound());
                for rt in &mut daemon.instances {
                    rt.core.handle_event(now, Event::Shutdown);
                }
            }
        }
    }
}
