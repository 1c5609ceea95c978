//! Addresses and links over rtnetlink (never by shelling out to `ip`), and a link/address event monitor.
//!
//! Requests go through `rtnetlink` ([`Netlink`], this file: links, addresses, the primary address). The
//! rest lives beside it: `monitor.rs`, the event monitor ([`monitor()`], [`NetEvent`]), a separate,
//! plain `NETLINK_ROUTE` socket subscribed to `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR` and
//! `RTNLGRP_IPV6_IFADDR`, parsed by hand (a few fixed-layout headers and attributes), so the monitor does
//! not depend on rtnetlink internals that churn between versions; `filter.rs`, the monitor's socket
//! filter ([`MonitorFilter`]); `refresher.rs`, VIP lifetime refreshes without an answer ([`Refresher`]);
//! `remover.rs`, synchronous removals for the guard process, which has no runtime ([`AddressRemover`]).
//!
//! Every socket is opened in the network namespace of the calling thread.

mod filter;
mod monitor;
mod refresher;
mod remover;
mod vmac;

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlag, AddressHeaderFlag, AddressMessage, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlag, LinkMessage};
use netlink_packet_route::AddressFamily;

pub use filter::MonitorFilter;
pub use monitor::{monitor, monitor_filtered, parse_events, NetEvent};
pub use refresher::Refresher;
pub use remover::AddressRemover;
pub use vmac::VmacLink;

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
        match self.find_link(name).await? {
            Some(link) => Ok(link),
            None => bail!("interface {name} not found (ip link shows the names)"),
        }
    }

    /// The interface called `name`, or `None` when there is none (yet): only other failures are errors.
    pub async fn find_link(&self, name: &str) -> anyhow::Result<Option<LinkInfo>> {
        Ok(self
            .link_message(name)
            .await?
            .map(|msg| Self::link_info(&msg)))
    }

    /// The kernel's message for the interface called `name`, or `None` when there is none.
    pub(super) async fn link_message(&self, name: &str) -> anyhow::Result<Option<LinkMessage>> {
        let mut req = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match req.try_next().await {
            Ok(msg) => Ok(msg),
            Err(e) if nl_errno(&e) == Some(libc::ENODEV) => Ok(None),
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
        let msg = deletion(index, addr, prefix_len);
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

/// The RTM_DELADDR body for `addr/prefix_len` on `index` (the async client's and the guard's).
fn deletion(index: u32, addr: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(addr);
    msg.header.prefix_len = prefix_len;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr));
    if addr.is_ipv6() {
        // IPv6 deletion matches on IFA_ADDRESS (IFA_LOCAL is accepted too, but be explicit).
        msg.attributes.push(AddressAttribute::Address(addr));
    }
    msg
}

/// Serializes `req` (sequence number and flags set) and sends it on the route socket `fd`, without
/// waiting for an answer (the refresher's and the remover's synchronous requests).
fn send_request(
    fd: &OwnedFd,
    mut req: netlink_packet_core::NetlinkMessage<netlink_packet_route::RouteNetlinkMessage>,
) -> std::io::Result<()> {
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    // SAFETY: `buf` is valid for reads of its length for the duration of the call.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One datagram from a netlink socket into `buf`, without blocking (`WouldBlock` when none).
pub(super) fn recv_fd(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
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

/// A non-blocking NETLINK_ROUTE socket bound to the multicast `groups` (0: none), and the port id the
/// kernel gave it: the monitor's and the refresher's.
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

#[cfg(test)]
mod tests {
    use super::*;

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
