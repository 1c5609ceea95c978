//! Addresses and links over rtnetlink (never by shelling out to `ip`), and a link/address event monitor.
//!
//! Requests go through `rtnetlink` ([`Netlink`]). The event monitor ([`monitor`]) is a separate, plain
//! `NETLINK_ROUTE` socket subscribed to `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR` and `RTNLGRP_IPV6_IFADDR`,
//! parsed here by hand (a few fixed-layout headers and attributes), so the monitor does not depend on
//! rtnetlink internals that churn between versions.
//!
//! Every socket is opened in the network namespace of the calling thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlag, AddressHeaderFlag, AddressMessage, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlag, LinkMessage};
use netlink_packet_route::AddressFamily;
use tokio::sync::mpsc;

/// One network interface as the daemon needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// The interface's hardware address (all zero for interfaces without one, such as `lo`).
    pub mac: [u8; 6],
    /// Administratively up (`IFF_UP`) and with carrier (`IFF_RUNNING`, i.e. operstate UP or UNKNOWN).
    pub up: bool,
}

/// A change reported by [`monitor`].
///
/// `Link` events are sent for every `RTM_NEWLINK` the kernel emits, which includes notifications that
/// change nothing the daemon cares about (statistics, MTU, ...): the same `up` value may repeat, so
/// consumers should compare with the state they hold. A deleted link is reported as `up: false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    Link {
        index: u32,
        up: bool,
    },
    AddressAdded {
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    },
    AddressRemoved {
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    },
}

/// One address with the details `ip address show` gives (flags and remaining lifetimes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrDetails {
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// `IFA_F_*` bits (from `IFA_FLAGS` when present, else the 8-bit header flags).
    pub flags: u32,
    /// Remaining valid lifetime in seconds; `None` = forever.
    pub valid_lft: Option<u32>,
    /// Remaining preferred lifetime in seconds; `None` = forever.
    pub preferred_lft: Option<u32>,
}

impl AddrDetails {
    pub fn is_secondary(&self) -> bool {
        self.flags & IFA_F_SECONDARY != 0
    }
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }
    pub fn is_dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
}

pub const IFA_F_SECONDARY: u32 = 0x01;
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_DADFAILED: u32 = 0x08;
pub const IFA_F_TENTATIVE: u32 = 0x40;
pub const IFA_F_PERMANENT: u32 = 0x80;
/// Sets valid_lft = preferred_lft (`None`: forever) and, for IPv6, `IFA_F_NODAD`.
fn set_lifetime(msg: &mut AddressMessage, addr: IpAddr, lifetime: Option<Duration>) {
    let secs = lifetime.map(lifetime_secs).unwrap_or(INFINITY_LIFE_TIME);
    let mut ci = CacheInfo::default();
    ci.ifa_valid = secs;
    ci.ifa_preferred = secs;
    msg.attributes.push(AddressAttribute::CacheInfo(ci));
    if addr.is_ipv6() {
        msg.header.flags.push(AddressHeaderFlag::Nodad);
        msg.attributes
            .push(AddressAttribute::Flags(vec![AddressFlag::Nodad]));
    }
}

/// The kernel's "forever" lifetime (`INFINITY_LIFE_TIME`).
const INFINITY_LIFE_TIME: u32 = u32::MAX;

/// A handle on an rtnetlink connection. Cheap to clone; all clones share one socket.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netlink")
    }
}

/// The raw kernel error code of an rtnetlink error (positive errno), if it is one.
fn nl_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn nl_err(e: rtnetlink::Error) -> anyhow::Error {
    match e {
        rtnetlink::Error::NetlinkError(ref m) if m.code.is_some() => {
            let errno = m.code.map(|c| -c.get()).unwrap_or(0);
            anyhow!("{}", std::io::Error::from_raw_os_error(errno))
        }
        other => anyhow!(other),
    }
}

impl Netlink {
    /// Opens an rtnetlink socket and spawns its connection task on the current tokio runtime.
    pub fn new() -> anyhow::Result<Netlink> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow!("Netlink::new must be called inside a tokio runtime"))?;
        let (conn, handle, _unsolicited) =
            rtnetlink::new_connection().context("cannot open a netlink socket")?;
        rt.spawn(conn);
        Ok(Netlink { handle })
    }

    fn link_info(msg: &LinkMessage) -> LinkInfo {
        let mut name = String::new();
        let mut mac = [0u8; 6];
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => mac.copy_from_slice(a),
                _ => {}
            }
        }
        let flags = &msg.header.flags;
        let up = flags.contains(&LinkFlag::Up) && flags.contains(&LinkFlag::Running);
        LinkInfo {
            index: msg.header.index,
            name,
            mac,
            up,
        }
    }

    pub async fn link_by_name(&self, name: &str) -> anyhow::Result<LinkInfo> {
        let mut req = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match req.try_next().await {
            Ok(Some(msg)) => Ok(Self::link_info(&msg)),
            Ok(None) => bail!("interface {name} not found (ip link shows the names)"),
            Err(e) if nl_errno(&e) == Some(libc::ENODEV) => {
                bail!("interface {name} not found (ip link shows the names)")
            }
            Err(e) => Err(nl_err(e)).with_context(|| format!("cannot read interface {name}")),
        }
    }

    pub async fn link_by_index(&self, index: u32) -> anyhow::Result<LinkInfo> {
        let mut req = self.handle.link().get().match_index(index).execute();
        match req.try_next().await {
            Ok(Some(msg)) => Ok(Self::link_info(&msg)),
            Ok(None) => bail!("interface index {index} not found (ip link shows the interfaces)"),
            Err(e) if nl_errno(&e) == Some(libc::ENODEV) => {
                bail!("interface index {index} not found (ip link shows the interfaces)")
            }
            Err(e) => {
                Err(nl_err(e)).with_context(|| format!("cannot read interface index {index}"))
            }
        }
    }

    /// Every address on the interface (both families), with flags and lifetimes.
    pub async fn address_details(&self, index: u32) -> anyhow::Result<Vec<AddrDetails>> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(nl_err)
            .with_context(|| format!("cannot list addresses of interface index {index}"))?
        {
            if let Some(d) = details(&msg) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Every address on the interface (both families) as (address, prefix length).
    pub async fn addresses(&self, index: u32) -> anyhow::Result<Vec<(IpAddr, u8)>> {
        Ok(self
            .address_details(index)
            .await?
            .into_iter()
            .map(|d| (d.addr, d.prefix_len))
            .collect())
    }

    /// Create or replace (`NLM_F_CREATE | NLM_F_REPLACE`), so calling it again refreshes the lifetime
    /// and never duplicates the address. `lifetime` Some(d) sets valid_lft = preferred_lft = d (whole
    /// seconds, rounded up, at least 1); None = forever. IPv6 addresses get `IFA_F_NODAD` (usable at once,
    /// never tentative).
    pub async fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> anyhow::Result<()> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            bail!("prefix length /{prefix_len} is too long for {addr}");
        }
        let mut req = self.handle.address().add(index, addr, prefix_len).replace();
        set_lifetime(req.message_mut(), addr, lifetime);
        req.execute()
            .await
            .map_err(nl_err)
            .with_context(|| format!("cannot add {addr}/{prefix_len} on interface index {index}"))
    }

    /// Removes the address. Ok if it is already absent.
    pub async fn remove_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> anyhow::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family_of(addr);
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr));
        if addr.is_ipv6() {
            // IPv6 deletion matches on IFA_ADDRESS (IFA_LOCAL is accepted too, but be explicit).
            msg.attributes.push(AddressAttribute::Address(addr));
        }
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(nl_errno(&e), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => Ok(()),
            Err(e) => Err(nl_err(e)).with_context(|| {
                format!("cannot remove {addr}/{prefix_len} from interface index {index}")
            }),
        }
    }

    /// The address a VRRP advert is sent from. IPv4: the first primary (not `secondary`) address not in
    /// `exclude` (falling back to the first non-excluded secondary one); IPv6: the first usable (not
    /// tentative) link-local fe80::/10 address not in `exclude`.
    pub async fn primary_address(
        &self,
        index: u32,
        v6: bool,
        exclude: &[IpAddr],
    ) -> anyhow::Result<Option<IpAddr>> {
        let all = self.address_details(index).await?;
        Ok(pick_primary(&all, v6, exclude))
    }
}

/// Pure selection logic of [`Netlink::primary_address`].
pub fn pick_primary(all: &[AddrDetails], v6: bool, exclude: &[IpAddr]) -> Option<IpAddr> {
    let candidates = all
        .iter()
        .filter(|d| d.addr.is_ipv6() == v6 && !exclude.contains(&d.addr));
    if v6 {
        let ll = |d: &&AddrDetails| match d.addr {
            IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
            IpAddr::V4(_) => false,
        };
        let lls: Vec<&AddrDetails> = candidates.filter(ll).collect();
        lls.iter()
            .find(|d| !d.is_tentative() && !d.is_dad_failed())
            .or(lls.first())
            .map(|d| d.addr)
    } else {
        let v4: Vec<&AddrDetails> = candidates.collect();
        v4.iter()
            .find(|d| !d.is_secondary())
            .or(v4.first())
            .map(|d| d.addr)
    }
}

fn lifetime_secs(d: Duration) -> u32 {
    let mut s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s += 1;
    }
    s.clamp(1, u64::from(INFINITY_LIFE_TIME - 1)) as u32
}

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn details(msg: &AddressMessage) -> Option<AddrDetails> {
    let mut local = None;
    let mut address = None;
    let mut flags: Option<u32> = None;
    let mut cache = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Flags(f) => flags = Some(f.iter().map(|f| u32::from(*f)).sum()),
            AddressAttribute::CacheInfo(c) => cache = Some(*c),
            _ => {}
        }
    }
    let flags = flags.unwrap_or_else(|| {
        msg.header
            .flags
            .iter()
            .map(|f| u32::from(u8::from(*f)))
            .sum()
    });
    let lft = |v: u32| (v != INFINITY_LIFE_TIME).then_some(v);
    Some(AddrDetails {
        // IFA_LOCAL is the local address; IFA_ADDRESS is the peer on point-to-point links (IPv4).
        addr: local.or(address)?,
        prefix_len: msg.header.prefix_len,
        flags,
        valid_lft: cache.and_then(|c| lft(c.ifa_valid)),
        preferred_lft: cache.and_then(|c| lft(c.ifa_preferred)),
    })
}

// ---------------------------------------------------------------------------------------------------
// Monitor

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_HDRLEN: usize = 16;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

/// Starts watching link and address changes in the calling thread's network namespace.
///
/// Returns an unbounded channel fed by a task spawned on the current tokio runtime; the task ends
/// when the receiver is dropped (at the next event) or the socket fails. If the kernel reports that the
/// socket overran (`ENOBUFS`: events were lost), a warning is logged and watching continues: consumers
/// should not rely on the monitor alone for state they must never miss (refresh it periodically).
pub fn monitor() -> anyhow::Result<mpsc::UnboundedReceiver<NetEvent>> {
    monitor_filtered(None).map(|(rx, _)| rx)
}

/// [`monitor`], with a socket filter that drops the notifications the caller's own requests cause:
/// those from netlink port `ignore` from the start (the [`Refresher`]'s), and more through the returned
/// [`MonitorFilter`].
pub fn monitor_filtered(
    ignore: Option<u32>,
) -> anyhow::Result<(mpsc::UnboundedReceiver<NetEvent>, MonitorFilter)> {
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| anyhow!("netlink::monitor must be called inside a tokio runtime"))?;
    let fd = open_monitor_socket().context("cannot open the netlink event socket")?;
    let filter = MonitorFilter {
        fd: fd
            .try_clone()
            .context("cannot duplicate the netlink event socket")?,
        port: ignore,
        held: Vec::new(),
    };
    if ignore.is_some() {
        filter
            .attach(&[])
            .context("cannot filter the netlink event socket")?;
    }
    let afd = {
        let _guard = rt.enter();
        super::vrrp_socket::async_fd(fd).context("cannot register the netlink event socket")?
    };
    let (tx, rx) = mpsc::unbounded_channel();
    rt.spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match afd.readable().await {
                Ok(mut guard) => match guard.try_io(|fd| recv_fd(fd.get_ref(), &mut buf)) {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        tracing::warn!(
                            "netlink event socket overran: some link/address events were lost"
                        );
                        continue;
                    }
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(Err(e)) => {
                        tracing::error!("netlink event socket failed: {e}");
                        return;
                    }
                    Err(_would_block) => continue,
                },
                Err(e) => {
                    tracing::error!("netlink event socket failed: {e}");
                    return;
                }
            };
            for ev in parse_events(&buf[..n]) {
                if tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    Ok((rx, filter))
}

fn open_monitor_socket() -> std::io::Result<OwnedFd> {
    let (fd, _) = bound_route_socket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)?;
    let size: libc::c_int = 1 << 20;
    // SAFETY: SO_RCVBUF takes a c_int; pointer and length describe `size`. Failure is harmless.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

/// A non-blocking NETLINK_ROUTE socket bound to the multicast `groups` (0: none), and the port id the
/// kernel gave it.
fn bound_route_socket(groups: u32) -> std::io::Result<(OwnedFd, u32)> {
    // SAFETY: plain socket(2) call; the returned descriptor is checked and then owned by OwnedFd.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain old data; all-zero (port chosen by the kernel) is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_groups = groups;
    let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `sa` is a valid sockaddr_nl and `len` its size, for both calls.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; the kernel writes the bound address into `sa`.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut sa as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((fd, sa.nl_pid))
}

fn recv_fd(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn u16_ne(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}
fn u32_ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses one datagram of rtnetlink notifications into events (unknown or malformed parts are skipped).
pub fn parse_events(mut buf: &[u8]) -> Vec<NetEvent> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_ne(&buf[0..4]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let ty = u16_ne(&buf[4..6]);
        let payload = &buf[NLMSG_HDRLEN..len];
        match ty {
            RTM_NEWLINK | RTM_DELLINK if payload.len() >= 16 => {
                let index = u32_ne(&payload[4..8]);
                let flags = u32_ne(&payload[8..12]);
                let up = ty == RTM_NEWLINK && flags & IFF_UP != 0 && flags & IFF_RUNNING != 0;
                out.push(NetEvent::Link { index, up });
            }
            RTM_NEWADDR | RTM_DELADDR if payload.len() >= 8 => {
                let family = payload[0] as i32;
                let prefix_len = payload[1];
                let index = u32_ne(&payload[4..8]);
                let mut local = None;
                let mut address = None;
                let mut attrs = &payload[8..];
                while attrs.len() >= 4 {
                    let alen = u16_ne(&attrs[0..2]) as usize;
                    let aty = u16_ne(&attrs[2..4]) & 0x3fff;
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    let val = &attrs[4..alen];
                    let ip = match (family, val.len()) {
                        (libc::AF_INET, 4) => {
                            Some(IpAddr::V4(Ipv4Addr::new(val[0], val[1], val[2], val[3])))
                        }
                        (libc::AF_INET6, 16) => {
                            let mut o = [0u8; 16];
                            o.copy_from_slice(val);
                            Some(IpAddr::V6(Ipv6Addr::from(o)))
                        }
                        _ => None,
                    };
                    match aty {
                        IFA_LOCAL => local = ip.or(local),
                        IFA_ADDRESS => address = ip.or(address),
                        _ => {}
                    }
                    let step = (alen + 3) & !3;
                    attrs = if step >= attrs.len() {
                        &[]
                    } else {
                        &attrs[step..]
                    };
                }
                if let Some(addr) = local.or(address) {
                    out.push(if ty == RTM_NEWADDR {
                        NetEvent::AddressAdded {
                            index,
                            addr,
                            prefix_len,
                        }
                    } else {
                        NetEvent::AddressRemoved {
                            index,
                            addr,
                            prefix_len,
                        }
                    });
                }
            }
            _ => {}
        }
        let step = (len + 3) & !3;
        if step >= buf.len() {
            break;
        }
        buf = &buf[step..];
    }
    out
}

/// The netlink monitor's socket filter (see [`monitor_filtered`]), which the loop keeps up to date.
///
/// A notification the loop causes itself would wake two threads for nothing: the one reading the
/// monitor, then the loop. One the kernel sends because of a request carries the requester's port in
/// `nlmsg_pid`, so the refresher's IPv4 refreshes are dropped by port. IPv6 address notifications
/// carry no port, so those are dropped by address: an RTM_NEWADDR for a VIP the loop holds (its own
/// refresh, every half lifetime) tells it nothing. Removals always pass.
pub struct MonitorFilter {
    /// A duplicate of the monitor's socket.
    fd: OwnedFd,
    port: Option<u32>,
    held: Vec<(u32, Ipv6Addr)>,
}

/// At most this many held IPv6 VIPs are filtered (11 instructions each, within the kernel's 4096);
/// notifications for more still pass and are ignored in user space.
const MAX_FILTERED: usize = 300;

impl MonitorFilter {
    /// Drop RTM_NEWADDR notifications for these (interface index, IPv6 address) pairs from now on.
    /// On failure the previous filter stays, and the next call tries again.
    pub fn ignore_added_v6(&mut self, held: Vec<(u32, Ipv6Addr)>) -> std::io::Result<()> {
        if held == self.held {
            return Ok(());
        }
        self.attach(&held)?;
        self.held = held;
        Ok(())
    }

    fn attach(&self, held: &[(u32, Ipv6Addr)]) -> std::io::Result<()> {
        super::bpf::attach(self.fd.as_raw_fd(), &monitor_program(self.port, held))
    }
}

/// The filter program: drop messages from `port`, and RTM_NEWADDR for the `held` IPv6 addresses.
fn monitor_program(port: Option<u32>, held: &[(u32, Ipv6Addr)]) -> Vec<libc::sock_filter> {
    use super::bpf::{bpf, JEQ_K, LDB_ABS, LDH_ABS, LDW_ABS, RET_K};
    const ACCEPT: u32 = u32::MAX;
    const DROP: u32 = 0;
    // Loads read big-endian; netlink headers are in host order.
    let host32 = |v: u32| u32::from_be_bytes(v.to_ne_bytes());
    let host16 = |v: u16| u32::from(u16::from_be_bytes(v.to_ne_bytes()));
    let mut p = Vec::new();
    if let Some(port) = port {
        p.extend([
            bpf(LDW_ABS, 0, 0, 12), // nlmsg_pid
            bpf(JEQ_K, 0, 1, host32(port)),
            bpf(RET_K, 0, 0, DROP),
        ]);
    }
    if !held.is_empty() {
        p.extend([
            bpf(LDH_ABS, 0, 0, 4), // nlmsg_type
            bpf(JEQ_K, 1, 0, host16(RTM_NEWADDR)),
            bpf(RET_K, 0, 0, ACCEPT),
            bpf(LDB_ABS, 0, 0, 16), // ifa_family
            bpf(JEQ_K, 1, 0, libc::AF_INET6 as u32),
            bpf(RET_K, 0, 0, ACCEPT),
            // The kernel puts IFA_ADDRESS first for an address without a peer, as a VIP is.
            bpf(LDH_ABS, 0, 0, 26), // the first attribute's type
            bpf(JEQ_K, 1, 0, host16(IFA_ADDRESS)),
            bpf(RET_K, 0, 0, ACCEPT),
        ]);
        for (index, addr) in held.iter().take(MAX_FILTERED) {
            let o = addr.octets();
            let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            // Each mismatch jumps to the next pair's first instruction.
            p.extend([
                bpf(LDW_ABS, 0, 0, 20), // ifa_index
                bpf(JEQ_K, 0, 9, host32(*index)),
                bpf(LDW_ABS, 0, 0, 28),
                bpf(JEQ_K, 0, 7, word(0)),
                bpf(LDW_ABS, 0, 0, 32),
                bpf(JEQ_K, 0, 5, word(4)),
                bpf(LDW_ABS, 0, 0, 36),
                bpf(JEQ_K, 0, 3, word(8)),
                bpf(LDW_ABS, 0, 0, 40),
                bpf(JEQ_K, 0, 1, word(12)),
                bpf(RET_K, 0, 0, DROP),
            ]);
        }
    }
    p.push(bpf(RET_K, 0, 0, ACCEPT));
    p
}

/// Refreshes VIP lifetimes from the protocol loop's thread: one `send` of an RTM_NEWADDR (replace)
/// without an acknowledgement, on a socket of its own, so a refresh wakes no thread. The kernel still
/// reports a failed request, which makes the socket readable: the loop watches it ([`Refresher::fd`])
/// and reads the reports with [`Refresher::errors`].
pub struct Refresher {
    fd: OwnedFd,
    port: u32,
    seq: u32,
    /// The address of each of the last [`SENT`] requests, at its sequence number modulo [`SENT`]: an
    /// error report names its request by sequence number.
    sent: Box<[Option<IpAddr>; SENT]>,
}

/// How many requests back an error report can still be matched to its address.
const SENT: usize = 256;

impl Refresher {
    pub fn open() -> std::io::Result<Refresher> {
        let (fd, port) = bound_route_socket(0)?;
        Ok(Refresher {
            fd,
            port,
            seq: 0,
            sent: Box::new([None; SENT]),
        })
    }

    /// The port id the kernel gave this socket (for [`monitor_filtered`]).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Readable when the kernel reported a failed refresh.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sets the lifetime of `addr/prefix_len` on `index` (adding it again if it went missing), as
    /// [`Netlink::add_address`] does, without waiting for the answer.
    pub fn refresh(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        lifetime: Duration,
    ) -> std::io::Result<()> {
        use netlink_packet_core::{NetlinkMessage, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
        use netlink_packet_route::RouteNetlinkMessage;
        let mut msg = AddressMessage::default();
        msg.header.family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Address(addr));
        msg.attributes.push(AddressAttribute::Local(addr));
        if let IpAddr::V4(a) = addr {
            let host = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            msg.attributes
                .push(AddressAttribute::Broadcast(Ipv4Addr::from(
                    u32::from(a) | host,
                )));
        }
        set_lifetime(&mut msg, addr, Some(lifetime));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewAddress(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_REPLACE | NLM_F_CREATE;
        self.seq = self.seq.wrapping_add(1);
        req.header.sequence_number = self.seq;
        self.sent[self.seq as usize % SENT] = Some(addr);
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        // SAFETY: `buf` is valid for reads of its length for the duration of the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The failures the kernel reported for earlier refreshes, with the address each was for when it
    /// was among the last [`SENT`] (drained; never blocks).
    pub fn errors(&self) -> Vec<(Option<IpAddr>, std::io::Error)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: `buf` is valid for writes of its length for the duration of the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return out;
            }
            for (seq, code) in nlmsg_errors(&buf[..n as usize]) {
                let addr = (self.seq.wrapping_sub(seq) < SENT as u32)
                    .then(|| self.sent[seq as usize % SENT])
                    .flatten();
                out.push((addr, std::io::Error::from_raw_os_error(code)));
            }
        }
    }
}

/// The failures among netlink messages: each NLMSG_ERROR with a non-zero code, as the sequence number
/// of the request it answers and the errno.
fn nlmsg_errors(buf: &[u8]) -> Vec<(u32, i32)> {
    let word = |at: usize| -> Option<[u8; 4]> { buf.get(at..at + 4)?.try_into().ok() };
    let mut out = Vec::new();
    let mut off = 0usize;
    // struct nlmsghdr (16 bytes), then for NLMSG_ERROR: int error, the request's nlmsghdr.
    while let (Some(len), Some(kind)) = (word(off), buf.get(off + 4..off + 6)) {
        let len = u32::from_ne_bytes(len) as usize;
        if u16::from_ne_bytes([kind[0], kind[1]]) == libc::NLMSG_ERROR as u16 {
            if let (Some(code), Some(seq)) = (word(off + 16), word(off + 28)) {
                let code = i32::from_ne_bytes(code);
                if code < 0 {
                    out.push((u32::from_ne_bytes(seq), -code));
                }
            }
        }
        if len < 16 {
            break;
        }
        off += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(ty: u16, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn attr(ty: u16, val: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(val);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn the_monitor_filter_drops_our_own_notifications_only() {
        let held6: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let other6: Ipv6Addr = "2001:db8::6".parse().unwrap();
        let addr_msg = |ty: u16, index: u32, addr: IpAddr| {
            let (family, octets) = match addr {
                IpAddr::V4(a) => (libc::AF_INET, a.octets().to_vec()),
                IpAddr::V6(a) => (libc::AF_INET6, a.octets().to_vec()),
            };
            let mut p = vec![family as u8, 64, 0, 0];
            p.extend_from_slice(&index.to_ne_bytes());
            p.extend(attr(IFA_ADDRESS, &octets));
            p.extend(attr(6, &[0u8; 16])); // IFA_CACHEINFO
            nlmsg(ty, &p)
        };
        let from_port = |mut m: Vec<u8>, port: u32| {
            m[12..16].copy_from_slice(&port.to_ne_bytes());
            m
        };
        let prog = monitor_program(Some(4242), &[(7, other6), (3, held6)]);
        let pass = |m: &[u8]| crate::net::bpf::run(&prog, m) != 0;
        let v4: IpAddr = "192.0.2.97".parse().unwrap();
        // Dropped: anything from the refresher's port, and a held VIP's RTM_NEWADDR (second pair).
        assert!(!pass(&from_port(addr_msg(RTM_NEWADDR, 3, v4), 4242)));
        assert!(!pass(&addr_msg(RTM_NEWADDR, 3, IpAddr::V6(held6))));
        assert!(!pass(&addr_msg(RTM_NEWADDR, 7, IpAddr::V6(other6))));
        // Passed: its removal, the same address on another interface, another address, IPv4, links,
        // another port.
        assert!(pass(&addr_msg(RTM_DELADDR, 3, IpAddr::V6(held6))));
        assert!(pass(&addr_msg(RTM_NEWADDR, 4, IpAddr::V6(held6))));
        assert!(pass(&addr_msg(RTM_NEWADDR, 3, IpAddr::V6(other6))));
        assert!(pass(&addr_msg(RTM_NEWADDR, 3, v4)));
        assert!(pass(&from_port(addr_msg(RTM_NEWADDR, 3, v4), 4243)));
        assert!(pass(&nlmsg(RTM_NEWLINK, &[0u8; 16])));
        // Nothing to drop: a program that passes everything.
        let all = monitor_program(None, &[]);
        assert_eq!(all.len(), 1);
        assert_ne!(
            crate::net::bpf::run(&all, &addr_msg(RTM_NEWADDR, 3, IpAddr::V6(held6))),
            0
        );
        // Past the cap, pairs are left to user space; the program stays within the kernel's limit.
        let many: Vec<(u32, Ipv6Addr)> = (0..1000).map(|i| (i, held6)).collect();
        assert!(monitor_program(Some(1), &many).len() <= 4096);
    }

    #[test]
    fn parses_link_and_address_events() {
        let mut link = vec![0u8; 16];
        link[4..8].copy_from_slice(&7u32.to_ne_bytes());
        link[8..12].copy_from_slice(&(IFF_UP | IFF_RUNNING).to_ne_bytes());
        let mut link_down = link.clone();
        link_down[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());

        let mut addr4 = vec![libc::AF_INET as u8, 24, 0, 0];
        addr4.extend_from_slice(&3u32.to_ne_bytes());
        addr4.extend(attr(IFA_ADDRESS, &[192, 0, 2, 9]));
        addr4.extend(attr(IFA_LOCAL, &[192, 0, 2, 7]));
        let v6: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let mut addr6 = vec![libc::AF_INET6 as u8, 64, 0, 0];
        addr6.extend_from_slice(&3u32.to_ne_bytes());
        addr6.extend(attr(IFA_ADDRESS, &v6.octets()));

        let mut buf = nlmsg(RTM_NEWLINK, &link);
        buf.extend(nlmsg(RTM_NEWLINK, &link_down));
        buf.extend(nlmsg(RTM_NEWADDR, &addr4));
        buf.extend(nlmsg(RTM_DELADDR, &addr6));
        buf.extend(nlmsg(RTM_DELLINK, &link));
        assert_eq!(
            parse_events(&buf),
            vec![
                NetEvent::Link { index: 7, up: true },
                NetEvent::Link {
                    index: 7,
                    up: false
                },
                NetEvent::AddressAdded {
                    index: 3,
                    addr: "192.0.2.7".parse().unwrap(),
                    prefix_len: 24
                },
                NetEvent::AddressRemoved {
                    index: 3,
                    addr: v6.into(),
                    prefix_len: 64
                },
                NetEvent::Link {
                    index: 7,
                    up: false
                },
            ]
        );
        // Truncated input never panics.
        for cut in 0..buf.len() {
            let _ = parse_events(&buf[..cut]);
        }
    }

    fn d(a: &str, flags: u32) -> AddrDetails {
        AddrDetails {
            addr: a.parse().unwrap(),
            prefix_len: 24,
            flags,
            valid_lft: None,
            preferred_lft: None,
        }
    }

    #[test]
    fn primary_selection() {
        let all = vec![
            d("192.0.2.97", 0),
            d("192.0.2.1", 0),
            d("192.0.2.98", IFA_F_SECONDARY),
            d("2001:db8::1", 0),
            d("fe80::1", IFA_F_TENTATIVE),
            d("fe80::2", 0),
        ];
        let vip: IpAddr = "192.0.2.97".parse().unwrap();
        assert_eq!(
            pick_primary(&all, false, &[vip]),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            pick_primary(&all, false, &[]),
            Some("192.0.2.97".parse().unwrap())
        );
        assert_eq!(
            pick_primary(&all, true, &[]),
            Some("fe80::2".parse().unwrap())
        );
        assert_eq!(pick_primary(&all[..3], true, &[]), None);
    }

    #[test]
    fn lifetime_rounding() {
        assert_eq!(lifetime_secs(Duration::from_millis(1)), 1);
        assert_eq!(lifetime_secs(Duration::from_millis(1500)), 2);
        assert_eq!(lifetime_secs(Duration::from_secs(3)), 3);
        assert_eq!(lifetime_secs(Duration::ZERO), 1);
    }
}
