//! The daemon's kernel edge as one trait: everything the loop asks of the host (links, addresses,
//! lifetime refreshes, VRRP sockets, announcements, the ARP/ND watch). [`Host`] is the real one,
//! over `crate::net` (netlink and raw sockets); the daemon's unit tests drive it with a fake one
//! ([`super::fake`]), so its event handling is tested without root.
//!
//! Everything here is called from the protocol loop's thread, in the order the cores asked for it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::conflict::Sighting;
use std::future::Future;

use super::announce::Announcer;
use super::netlink::{self, AddrDetails, LinkInfo, MonitorFilter, Netlink, Refresher, VmacLink};
use super::probe::{self, ConflictWatch};
use super::vrrp_socket::{Datagram, VrrpSender, VrrpSocket};

/// Runs an async operation (netlink, hooks) to completion from the loop's thread; the runtime's thread
/// drives its I/O meanwhile. The loop does these one at a time, in the order the core asked for them,
/// as it did when it awaited them.
pub trait Block: Future + Sized {
    fn block(self) -> Self::Output {
        tokio::runtime::Handle::current().block_on(self)
    }
}

impl<F: Future> Block for F {}

/// What the daemon needs from the host.
pub trait Kernel {
    fn link_by_name(&self, name: &str) -> Result<LinkInfo>;
    /// The interface called `name`, or `None` while there is none (not created yet, or deleted).
    fn find_link(&self, name: &str) -> Result<Option<LinkInfo>>;
    /// The interface `index` is gone: stop what watches it (its ARP/ND watch).
    fn forget_link(&mut self, index: u32);
    /// Every address on the interface, with its prefix length.
    fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>>;
    /// Every address on the interface with its flags (tentative, DAD failed, ...).
    fn address_details(&self, index: u32) -> Result<Vec<AddrDetails>>;
    /// Adds (or replaces) an address, with a kernel lifetime (`None`: forever); waits for the answer.
    fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> Result<()>;
    fn remove_address(&self, index: u32, addr: IpAddr, prefix_len: u8) -> Result<()>;
    /// Pushes a held VIP's lifetime forward without waiting; failures come back through
    /// [`Kernel::refresh_errors`] once [`Kernel::refresh_fd`] is readable.
    fn refresh(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        lifetime: Duration,
    ) -> io::Result<()>;
    /// Readable when a refresh failed (`None`: failures are never reported late).
    fn refresh_fd(&self) -> Option<RawFd>;
    fn refresh_errors(&mut self) -> Vec<(Option<IpAddr>, io::Error)>;
    /// The IPv6 VIPs we hold: the kernel's notifications of their refreshes wake nobody.
    fn ignore_added_v6(&mut self, held: Vec<(u32, Ipv6Addr)>) -> io::Result<()>;
    /// The adverts of one interface and address family.
    fn open_receiver(&mut self, ifname: &str, index: u32, v6: bool) -> Result<Arc<dyn Receive>>;
    /// A sender of adverts from `src` to `dst` (the group, or one unicast peer) on one interface.
    fn open_sender(
        &mut self,
        ifname: &str,
        index: u32,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<Arc<dyn AdvertSender>>;
    /// Gratuitous ARP / unsolicited NA and conflict probes on one interface.
    fn open_announcer(&mut self, index: u32, mac: [u8; 6]) -> Result<Arc<dyn Announce>>;
    /// The interface `name` with its kind and parent (`None`: there is none), for the virtual MAC.
    fn vmac_lookup(&self, name: &str) -> Result<Option<VmacLink>>;
    /// Creates the macvlan `name` on `parent` with MAC `mac` (private mode, down).
    fn create_macvlan(&self, parent: u32, name: &str, mac: [u8; 6]) -> Result<()>;
    /// Sets the interface administratively up or down.
    fn set_link_up(&self, index: u32, up: bool) -> Result<()>;
    /// Deletes the interface (Ok if it is gone already).
    fn delete_link(&self, index: u32) -> Result<()>;
    /// Reads `/proc/sys/{key}` of the daemon's network namespace (trimmed).
    fn read_sysctl(&self, key: &str) -> io::Result<String>;
    /// Writes `/proc/sys/{key}`.
    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()>;
    /// Asks the LAN once whether another host answers for `addr` (an ARP probe, or a duplicate
    /// address detection neighbour solicitation), waiting `wait` for the answer: its MAC.
    fn who_answers(
        &mut self,
        index: u32,
        mac: [u8; 6],
        addr: IpAddr,
        wait: Duration,
    ) -> Result<Option<[u8; 6]>>;
    /// The sightings on the interface's ARP/ND watches that are queued but not yet reported (the
    /// watch's task may run late under load): a probe round that ends counts them too.
    fn queued_sightings(&mut self, _index: u32) -> Vec<Sighting> {
        Vec::new()
    }
    /// Reports every ARP/NA on the interface that claims an address from a MAC other than ours.
    fn watch_conflicts(
        &mut self,
        index: u32,
        mac: [u8; 6],
        v6: bool,
        tx: mpsc::Sender<Sighting>,
    ) -> Result<()>;
}

/// Receives VRRP packets; the loop polls it itself.
pub trait Receive {
    /// The descriptor the loop's epoll watches (`None`: nothing to watch).
    fn fd(&self) -> Option<RawFd>;
    /// One packet into `buf`, or `None` when there is none now (never blocks).
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Datagram>>;
}

/// Sends encoded adverts to one destination.
pub trait AdvertSender {
    fn send(&self, packet: &[u8]) -> io::Result<()>;
}

/// Announces and probes addresses on one interface; used from the loop and from announcement bursts.
pub trait Announce: Send + Sync {
    /// One gratuitous ARP (IPv4) or unsolicited NA (IPv6).
    fn announce(&self, addr: IpAddr) -> io::Result<()>;
    /// Asks the LAN who answers for `addr` (ARP probe / DAD NS); answers reach the conflict watch.
    fn probe(&self, addr: IpAddr) -> io::Result<()>;
}

/// One ARP/ND watch: its task, and its socket (read by the task, and drained by
/// [`Kernel::queued_sightings`]).
type Watch = (JoinHandle<()>, Arc<ConflictWatch>);

/// The real host: netlink for links and addresses, raw sockets for VRRP and ARP/NDP.
pub struct Host {
    netlink: Netlink,
    /// VIP lifetime refreshes, sent from the loop without waiting (see [`Refresher`]).
    /// `None` for a host without the loop's machinery ([`Host::without_loop`]).
    refresher: Option<Refresher>,
    /// Keeps the notifications of our own refreshes away from the monitor.
    monitor_filter: Option<MonitorFilter>,
    /// The ARP/ND watch tasks and their sockets, by interface (ended when the interface goes).
    watches: HashMap<u32, Vec<Watch>>,
}

impl Host {
    pub fn new(netlink: Netlink, refresher: Refresher, monitor_filter: MonitorFilter) -> Host {
        Host {
            netlink,
            refresher: Some(refresher),
            monitor_filter: Some(monitor_filter),
            watches: HashMap::new(),
        }
    }
}

impl Host {
    /// The host as a task that is not the protocol loop sees it (an etcd election): addresses,
    /// links, announcements, probes and the ARP/ND watch, without lifetime refreshes sent unawaited
    /// or a link monitor (it adds its VIPs with [`Kernel::add_address`] and asks for links).
    pub fn without_loop(netlink: Netlink) -> Host {
        Host {
            netlink,
            refresher: None,
            monitor_filter: None,
            watches: HashMap::new(),
        }
    }
}

impl Kernel for Host {
    fn link_by_name(&self, name: &str) -> Result<LinkInfo> {
        self.netlink.link_by_name(name).block()
    }

    fn find_link(&self, name: &str) -> Result<Option<LinkInfo>> {
        self.netlink.find_link(name).block()
    }

    fn forget_link(&mut self, index: u32) {
        for (task, _) in self.watches.remove(&index).unwrap_or_default() {
            task.abort();
        }
    }

    fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>> {
        self.netlink.addresses(index).block()
    }

    fn address_details(&self, index: u32) -> Result<Vec<AddrDetails>> {
        self.netlink.address_details(index).block()
    }

    fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> Result<()> {
        self.netlink
            .add_address(index, addr, prefix_len, lifetime)
            .block()
    }

    fn remove_address(&self, index: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        self.netlink.remove_address(index, addr, prefix_len).block()
    }

    fn refresh(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        lifetime: Duration,
    ) -> io::Result<()> {
        match &mut self.refresher {
            Some(r) => r.refresh(index, addr, prefix_len, lifetime),
            None => Err(io::Error::other("this host sends no unawaited refreshes")),
        }
    }

    fn refresh_fd(&self) -> Option<RawFd> {
        self.refresher.as_ref().map(Refresher::fd)
    }

    fn refresh_errors(&mut self) -> Vec<(Option<IpAddr>, io::Error)> {
        self.refresher
            .as_mut()
            .map(|r| r.errors())
            .unwrap_or_default()
    }

    fn ignore_added_v6(&mut self, held: Vec<(u32, Ipv6Addr)>) -> io::Result<()> {
        match &mut self.monitor_filter {
            Some(f) => f.ignore_added_v6(held),
            None => Ok(()),
        }
    }

    fn open_receiver(&mut self, ifname: &str, index: u32, v6: bool) -> Result<Arc<dyn Receive>> {
        Ok(Arc::new(VrrpSocket::open(ifname, index, v6, true)?))
    }

    fn open_sender(
        &mut self,
        ifname: &str,
        index: u32,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<Arc<dyn AdvertSender>> {
        Ok(Arc::new(VrrpSender::open(ifname, index, src, dst)?))
    }

    fn open_announcer(&mut self, index: u32, mac: [u8; 6]) -> Result<Arc<dyn Announce>> {
        Ok(Arc::new(Announcer::open(index, mac)?))
    }

    fn vmac_lookup(&self, name: &str) -> Result<Option<VmacLink>> {
        self.netlink.vmac_lookup(name).block()
    }

    fn create_macvlan(&self, parent: u32, name: &str, mac: [u8; 6]) -> Result<()> {
        self.netlink.create_macvlan(parent, name, mac).block()
    }

    fn set_link_up(&self, index: u32, up: bool) -> Result<()> {
        self.netlink.set_link_up(index, up).block()
    }

    fn delete_link(&self, index: u32) -> Result<()> {
        self.netlink.delete_link(index).block()
    }

    fn read_sysctl(&self, key: &str) -> io::Result<String> {
        crate::net::sysctl::read(key)
    }

    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        crate::net::sysctl::write(key, value)
    }

    fn who_answers(
        &mut self,
        index: u32,
        mac: [u8; 6],
        addr: IpAddr,
        wait: Duration,
    ) -> Result<Option<[u8; 6]>> {
        match addr {
            IpAddr::V4(a) => probe::arp_probe(index, mac, a, 1, Duration::ZERO, wait).block(),
            IpAddr::V6(a) => probe::ndp_probe(index, mac, a, 1, Duration::ZERO, wait).block(),
        }
    }

    fn watch_conflicts(
        &mut self,
        index: u32,
        mac: [u8; 6],
        v6: bool,
        tx: mpsc::Sender<Sighting>,
    ) -> Result<()> {
        let watch = Arc::new(ConflictWatch::open(index, mac, v6).context("ARP/ND watch")?);
        let task = spawn_conflict_watch(index, watch.clone(), tx);
        self.watches.entry(index).or_default().push((task, watch));
        Ok(())
    }

    fn queued_sightings(&mut self, index: u32) -> Vec<Sighting> {
        self.watches
            .get(&index)
            .into_iter()
            .flatten()
            .flat_map(|(_, w)| w.drain())
            .map(|(addr, holder)| Sighting {
                ifindex: index,
                addr,
                holder,
            })
            .collect()
    }
}

impl Receive for VrrpSocket {
    fn fd(&self) -> Option<RawFd> {
        Some(self.raw_fd())
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
        VrrpSocket::try_recv(self, buf)
    }
}

impl AdvertSender for VrrpSender {
    fn send(&self, packet: &[u8]) -> io::Result<()> {
        VrrpSender::send(self, packet)
    }
}

impl Announce for Announcer {
    fn announce(&self, addr: IpAddr) -> io::Result<()> {
        Announcer::announce(self, addr)
    }

    fn probe(&self, addr: IpAddr) -> io::Result<()> {
        Announcer::probe(self, addr)
    }
}

/// Passive: every ARP/NA on the interface that claims an address from a MAC other than ours.
fn spawn_conflict_watch(
    ifindex: u32,
    watch: Arc<ConflictWatch>,
    tx: mpsc::Sender<Sighting>,
) -> JoinHandle<()> {
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
    })
}

/// Opens the real host's netlink handles: the client, the refresher and the filtered monitor.
pub fn open_host() -> Result<(Host, mpsc::UnboundedReceiver<netlink::NetEvent>)> {
    let netlink = Netlink::new().context("cannot open netlink (needs CAP_NET_ADMIN)")?;
    let refresher = Refresher::open()
        .context("cannot open netlink for lifetime refreshes (needs CAP_NET_ADMIN)")?;
    let (events, monitor_filter) = netlink::monitor_filtered(Some(refresher.port()))
        .context("cannot monitor links and addresses")?;
    Ok((Host::new(netlink, refresher, monitor_filter), events))
}
