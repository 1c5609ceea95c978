//! The raw IP protocol 112 socket that carries VRRP adverts.
//!
//! One socket per (interface, family). It is bound to the interface (`SO_BINDTODEVICE`), so it only
//! sees adverts that arrived there, and sends with an explicit source address and interface in
//! `IP_PKTINFO` / `IPV6_PKTINFO`, so the source the kernel puts in the IP header is exactly the one the
//! caller used for the checksum pseudo-header.
//!
//! Receive side: IPv4 raw sockets hand over the whole datagram with its IP header, from which source,
//! destination and TTL are read (the header is then stripped). IPv6 raw sockets never include the
//! header: the source comes from the socket address, the destination from `IPV6_PKTINFO` and the hop
//! limit from `IPV6_HOPLIMIT` ancillary data (enabled with `IPV6_RECVPKTINFO` / `IPV6_RECVHOPLIMIT`).

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn, SockaddrIn6};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// The VRRP IPv4 multicast group.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The VRRP IPv6 multicast group.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// One received VRRP message: `buf[..len]` holds the VRRP message only (any IPv4 header is stripped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub src: IpAddr,
    /// The IP destination (the group, or our unicast address). For IPv6 it is `::` if the kernel did
    /// not report it (it always does with `IPV6_RECVPKTINFO`).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit as received (0 if unknown). VRRP requires 255.
    pub ttl: u8,
    pub len: usize,
}

impl Datagram {
    /// A packet read whose IP header could not be made sense of (the kernel checks headers, so this
    /// should not happen): handed over empty, from and to the unspecified address, so the reader
    /// still counts it (as a runt) rather than losing it silently.
    pub fn unreadable(v6: bool) -> Datagram {
        let none: IpAddr = if v6 {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        Datagram {
            src: none,
            dst: none,
            ttl: 0,
            len: 0,
        }
    }
}

/// A raw VRRP socket bound to one interface.
///
/// The daemon's loop polls it itself ([`VrrpSocket::try_recv`] on its own epoll); the async
/// [`VrrpSocket::recv`] / [`VrrpSocket::send`] (doctor, tests) register it with the tokio reactor on
/// first use. Never both: a socket registered with tokio would wake the runtime for every packet.
#[derive(Debug)]
pub struct VrrpSocket {
    /// Declared before `sock`: deregistered before the descriptor closes.
    reg: OnceLock<AsyncFd<RawFd>>,
    sock: Socket,
    ifindex: u32,
    v6: bool,
}

/// Maps permission errors to a message a person can act on.
pub(crate) fn permission_hint(e: io::Error, what: &str) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => anyhow!(
            "cannot open {what}: {e}: needs CAP_NET_RAW (run as root or grant the capability)"
        ),
        _ => anyhow!("cannot open {what}: {e}"),
    }
}

/// Registers an owned descriptor with the current tokio reactor.
pub(crate) fn async_fd<T: AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: every `T` used here (socket2::Socket, OwnedFd, PacketSocket) owns its descriptor, keeps it
    // open until dropped and always returns the same one from as_raw_fd, which is what register needs.
    unsafe { AsyncFd::register(inner) }.map_err(|e| e.into_parts().1)
}

/// `setsockopt` for a plain integer option.
/// `IP_MULTICAST_IF` with an `ip_mreqn`: multicast leaves through interface `ifindex`, from `src`.
fn set_multicast_if_index_v4(fd: RawFd, src: Ipv4Addr, ifindex: u32) -> io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr {
            s_addr: u32::from_ne_bytes(src.octets()),
        },
        imr_ifindex: ifindex as i32,
    };
    // SAFETY: the option value is an ip_mreqn living on the stack for the duration of the call; the
    // length passed is its size. The kernel only reads from the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            &mreqn as *const libc::ip_mreqn as *const libc::c_void,
            size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(crate) fn setsockopt_int(fd: RawFd, level: i32, name: i32, val: i32) -> io::Result<()> {
    // SAFETY: the option value is a c_int living on the stack for the duration of the call; the length
    // passed is its size. The kernel only reads from the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const i32 as *const libc::c_void,
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl VrrpSocket {
    /// Opens the socket on `ifname` (index `ifindex`) for IPv4 or IPv6. With `multicast`, joins
    /// 224.0.0.18 / ff02::12 on that interface only.
    pub fn open(
        ifname: &str,
        ifindex: u32,
        v6: bool,
        multicast: bool,
    ) -> anyhow::Result<VrrpSocket> {
        let what = format!(
            "the VRRP {} socket on {ifname}",
            if v6 { "IPv6" } else { "IPv4" }
        );
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
            .map_err(|e| permission_hint(e, &what))?;
        sock.set_nonblocking(true)?;
        sock.bind_device(Some(ifname.as_bytes()))
            .map_err(|e| permission_hint(e, &what))
            .with_context(|| format!("binding to interface {ifname}"))?;
        let fd = sock.as_raw_fd();
        let ctx = || format!("configuring {what}");
        if v6 {
            // Only groups joined on this socket, not every group any socket joined (Linux >= 4.20;
            // older kernels lack the option, which is harmless because we are device-bound).
            if let Err(e) = sock.set_multicast_all_v6(false) {
                if e.raw_os_error() != Some(libc::ENOPROTOOPT) {
                    return Err(e).with_context(ctx);
                }
            }
            sock.set_multicast_loop_v6(false).with_context(ctx)?;
            sock.set_multicast_hops_v6(255).with_context(ctx)?;
            sock.set_unicast_hops_v6(255).with_context(ctx)?;
            sock.set_multicast_if_v6(ifindex).with_context(ctx)?;
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1).with_context(ctx)?;
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1).with_context(ctx)?;
            if multicast {
                sock.join_multicast_v6(&VRRP_GROUP_V6, ifindex)
                    .with_context(|| format!("joining {VRRP_GROUP_V6} on {ifname}"))?;
            }
        } else {
            sock.set_multicast_all_v4(false).with_context(ctx)?;
            sock.set_multicast_loop_v4(false).with_context(ctx)?;
            sock.set_multicast_ttl_v4(255).with_context(ctx)?;
            sock.set_ttl(255).with_context(ctx)?;
            // Not needed to read the destination (the IPv4 header carries it), but harmless and keeps
            // the interface index available to anyone inspecting the socket.
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1).with_context(ctx)?;
            if multicast {
                sock.join_multicast_v4_n(&VRRP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))
                    .with_context(|| format!("joining {VRRP_GROUP_V4} on {ifname}"))?;
            }
        }
        sock.set_nonblocking(true).with_context(ctx)?;
        Ok(VrrpSocket {
            reg: OnceLock::new(),
            sock,
            ifindex,
            v6,
        })
    }

    /// The tokio registration, made on first use (must be inside a tokio runtime then).
    fn registered(&self) -> io::Result<&AsyncFd<RawFd>> {
        if let Some(r) = self.reg.get() {
            return Ok(r);
        }
        // SAFETY: the registration lives in `self.reg`, which is dropped (deregistered) before
        // `self.sock` closes the descriptor (field order), so the descriptor outlives it.
        let r =
            unsafe { AsyncFd::register(self.sock.as_raw_fd()) }.map_err(|e| e.into_parts().1)?;
        Ok(self.reg.get_or_init(|| r))
    }

    /// The descriptor, for a caller that polls it itself (then only [`VrrpSocket::try_recv`]).
    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Receives one VRRP message into `buf`. A datagram whose IP header cannot be read comes back as
    /// [`Datagram::unreadable`] (empty). A message longer than `buf` is truncated to `buf.len()`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        let reg = self.registered()?;
        loop {
            let mut guard = reg.readable().await?;
            match guard.try_io(|_| self.try_recv(buf)?.ok_or(io::ErrorKind::WouldBlock.into())) {
                Ok(Ok(d)) => return Ok(d),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives one VRRP message without waiting: `None` once the socket is drained. Unreadable
    /// datagrams come back empty, as in [`VrrpSocket::recv`], so every packet read can be counted.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
        loop {
            let raw = match recv_raw(self.sock.as_raw_fd(), buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            if self.v6 {
                let src = match raw.src {
                    Some(IpAddr::V6(a)) => IpAddr::V6(a),
                    _ => return Ok(Some(Datagram::unreadable(true))),
                };
                return Ok(Some(Datagram {
                    src,
                    dst: raw
                        .dst6
                        .map(IpAddr::V6)
                        .unwrap_or(Ipv6Addr::UNSPECIFIED.into()),
                    ttl: raw.hoplimit.unwrap_or(0),
                    len: raw.len,
                }));
            }
            return Ok(Some(
                strip_ipv4_header(buf, raw.len).unwrap_or(Datagram::unreadable(false)),
            ));
        }
    }

    /// Sends one VRRP message (already encoded, checksum computed for this `src`/`dst`) from `src` to
    /// `dst` (the group or a unicast peer). `src` must be an address of this host (for IPv6: the
    /// interface's link-local address; the scope is the socket's interface).
    pub async fn send(&self, payload: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        if src.is_ipv6() != self.v6 || dst.is_ipv6() != self.v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("address family mismatch: {src} -> {dst} on this socket"),
            ));
        }
        let reg = self.registered()?;
        loop {
            let mut guard = reg.writable().await?;
            let res = guard.try_io(|_| self.send_now(self.sock.as_raw_fd(), payload, src, dst));
            match res {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    fn send_now(&self, fd: RawFd, payload: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        let iov = [io::IoSlice::new(payload)];
        let n = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: self.ifindex as i32,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(s.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let addr = SockaddrIn::from(SocketAddrV4::new(d, 0));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&addr),
                )
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let scope = if needs_scope(&d) { self.ifindex } else { 0 };
                let addr = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, scope));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&addr),
                )
            }
            _ => unreachable!("checked by send"),
        }
        .map_err(io::Error::from)?;
        if n != payload.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short send: {n} of {} bytes", payload.len()),
            ));
        }
        Ok(())
    }
}

fn needs_scope(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80 || (a.is_multicast() && (a.segments()[0] & 0x000f) <= 2)
}

/// Reads source, destination and TTL from the IPv4 header at the start of `buf[..n]` and moves the
/// payload to the front. `None` if the datagram is malformed.
pub(crate) fn strip_ipv4_header(buf: &mut [u8], n: usize) -> Option<Datagram> {
    if n < 20 || buf[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(buf[0] & 0x0f) * 4;
    if ihl < 20 || ihl > n {
        return None;
    }
    // The IPv4 total length bounds the payload (a raw socket never hands over link padding, but be safe).
    let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let end = if total >= ihl && total <= n { total } else { n };
    let ttl = buf[8];
    let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
    let dst = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
    buf.copy_within(ihl..end, 0);
    Some(Datagram {
        src: src.into(),
        dst: dst.into(),
        ttl,
        len: end - ihl,
    })
}

struct RawRecv {
    len: usize,
    src: Option<IpAddr>,
    dst6: Option<Ipv6Addr>,
    hoplimit: Option<u8>,
}

/// `recvmsg` with ancillary data, decoding the source address, `IPV6_PKTINFO` and `IPV6_HOPLIMIT`.
fn recv_raw(fd: RawFd, buf: &mut [u8]) -> io::Result<RawRecv> {
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is valid and every pointer field is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr() as *mut libc::c_void;
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = size_of::<[u64; 32]>() as _;
    // SAFETY: every pointer in `msg` refers to a live, correctly sized buffer owned by this frame
    // (`name`, `iov` -> `buf`, `control`) for the duration of the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (n as usize).min(buf.len());
    // SAFETY: `name` was zero-initialised and the kernel wrote at most msg_namelen bytes into it.
    let name = unsafe { name.assume_init() };
    let src = match i32::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in sockaddr_storage.
            let sin = unsafe { &*(&name as *const _ as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in sockaddr_storage.
            let sin6 = unsafe { &*(&name as *const _ as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    };
    let mut out = RawRecv {
        len,
        src,
        dst6: None,
        hoplimit: None,
    };
    // SAFETY: `msg` was filled by a successful recvmsg; CMSG_FIRSTHDR / CMSG_NXTHDR stay within
    // msg_control[..msg_controllen], and each data read is bounds-checked against cmsg_len first.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let data = libc::CMSG_DATA(cmsg);
            let data_len = (c.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            if c.cmsg_level == libc::IPPROTO_IPV6 {
                if c.cmsg_type == libc::IPV6_PKTINFO && data_len >= size_of::<libc::in6_pktinfo>() {
                    let info = std::ptr::read_unaligned(data as *const libc::in6_pktinfo);
                    out.dst6 = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                } else if c.cmsg_type == libc::IPV6_HOPLIMIT && data_len >= size_of::<i32>() {
                    let h = std::ptr::read_unaligned(data as *const i32);
                    out.hoplimit = Some(h.clamp(0, 255) as u8);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ipv4_header() {
        let mut buf = vec![0u8; 64];
        let payload = [0x31u8, 0x33, 0x64, 0x01];
        buf[0] = 0x46; // version 4, IHL 6 (24 bytes: one option word)
        let total = (24 + payload.len()) as u16;
        buf[2..4].copy_from_slice(&total.to_be_bytes());
        buf[8] = 255;
        buf[9] = 112;
        buf[12..16].copy_from_slice(&[192, 0, 2, 1]);
        buf[16..20].copy_from_slice(&[224, 0, 0, 18]);
        buf[24..28].copy_from_slice(&payload);
        let d = strip_ipv4_header(&mut buf, 28).unwrap();
        assert_eq!(d.src, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(d.dst, IpAddr::from([224, 0, 0, 18]));
        assert_eq!(d.ttl, 255);
        assert_eq!(&buf[..d.len], &payload);
        let mut short = vec![0x45u8; 10];
        assert!(strip_ipv4_header(&mut short, 10).is_none());
        let mut bad_ihl = vec![0u8; 20];
        bad_ihl[0] = 0x4f;
        assert!(strip_ipv4_header(&mut bad_ihl, 20).is_none());
    }

    #[test]
    fn permission_errors_say_what_to_do() {
        let e = permission_hint(io::Error::from_raw_os_error(libc::EPERM), "x").to_string();
        assert!(
            e.contains("needs CAP_NET_RAW (run as root or grant the capability)"),
            "{e}"
        );
        let e = permission_hint(io::Error::from_raw_os_error(libc::EINVAL), "x").to_string();
        assert!(!e.contains("CAP_NET_RAW"), "{e}");
    }

    #[test]
    fn scope_needed_for_link_local_only() {
        assert!(needs_scope(&VRRP_GROUP_V6));
        assert!(needs_scope(&"fe80::1".parse().unwrap()));
        assert!(!needs_scope(&"2001:db8::1".parse().unwrap()));
    }
}

/// A send-only VRRP socket for one (source, destination) pair: bound to the advert source, connected
/// to the group (or a unicast peer), on one interface.
///
/// A connected socket keeps its route: each advert is a plain `send`, where `sendmsg` with a per-packet
/// source (`IP_PKTINFO`) makes the kernel look up and allocate a route for every packet. At 10 ms
/// adverts that is most of what a master costs. Receiving stays with [`VrrpSocket`]: a socket filter
/// that accepts nothing keeps packets from queueing here.
///
/// It is not registered with the event loop: one advert never fills a socket's send buffer, so a send
/// is a plain non-blocking call, and the loop is not woken by write-space events after every advert.
/// A full buffer (`WouldBlock`) is reported like any send error; the next advert follows anyway.
#[derive(Debug)]
pub struct VrrpSender {
    sock: Socket,
    /// Where each send goes when the socket could not be connected (its interface was down: a
    /// virtual-MAC interface is, until its instance claims), `None` when connected.
    unconnected: Option<socket2::SockAddr>,
}

impl VrrpSender {
    pub fn open(
        ifname: &str,
        ifindex: u32,
        src: IpAddr,
        dst: IpAddr,
    ) -> anyhow::Result<VrrpSender> {
        let v6 = src.is_ipv6();
        if dst.is_ipv6() != v6 {
            return Err(anyhow!("address family mismatch: {src} -> {dst}"));
        }
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
            .map_err(|e| permission_hint(e, "a raw VRRP socket (IP protocol 112)"))?;
        sock.set_nonblocking(true)?;
        // Accept nothing: this socket only sends.
        sock.attach_filter(&[libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        }])
        .context("attaching the drop-all filter")?;
        sock.bind_device(Some(ifname.as_bytes()))
            .map_err(|e| permission_hint(e, "binding to the interface"))
            .with_context(|| format!("binding to interface {ifname}"))?;
        let ctx = || format!("setting VRRP socket options on {ifname}");
        let scoped = |a: Ipv6Addr| {
            let scope = if a.is_unicast_link_local() || a.is_multicast() {
                ifindex
            } else {
                0
            };
            socket2::SockAddr::from(SocketAddrV6::new(a, 0, 0, scope))
        };
        let (local, remote) = match (src, dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                sock.set_multicast_loop_v6(false).with_context(ctx)?;
                sock.set_multicast_hops_v6(255).with_context(ctx)?;
                sock.set_unicast_hops_v6(255).with_context(ctx)?;
                sock.set_multicast_if_v6(ifindex).with_context(ctx)?;
                (scoped(s), scoped(d))
            }
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                sock.set_multicast_loop_v4(false).with_context(ctx)?;
                sock.set_multicast_ttl_v4(255).with_context(ctx)?;
                sock.set_ttl(255).with_context(ctx)?;
                // By index (with the source address): on a virtual-MAC interface the source is the
                // parent's address, and naming the interface by that address would name the parent.
                set_multicast_if_index_v4(sock.as_raw_fd(), s, ifindex).with_context(ctx)?;
                (
                    SocketAddrV4::new(s, 0).into(),
                    SocketAddrV4::new(d, 0).into(),
                )
            }
            _ => unreachable!("families checked above"),
        };
        sock.bind(&local)
            .with_context(|| format!("binding the advert source {src} on {ifname}"))?;
        match sock.connect(&remote) {
            Ok(()) => Ok(VrrpSender {
                sock,
                unconnected: None,
            }),
            // No route through a down interface yet: each send looks it up (it is up by then).
            Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => Ok(VrrpSender {
                sock,
                unconnected: Some(remote),
            }),
            Err(e) => Err(e).with_context(|| format!("connecting to {dst} on {ifname}")),
        }
    }

    /// Send one encoded VRRP message (non-blocking).
    pub fn send(&self, payload: &[u8]) -> io::Result<()> {
        loop {
            let sent = match &self.unconnected {
                None => self.sock.send(payload),
                Some(to) => self.sock.send_to(payload, to),
            };
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
