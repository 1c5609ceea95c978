//! Gratuitous ARP and unsolicited Neighbour Advertisements, so clients, switches and the router move
//! to the new owner at once.
//!
//! Both are sent as complete Ethernet frames (built in [`super::frame`]) on one `AF_PACKET` socket bound
//! to the interface. Building the IPv6 frame ourselves (rather than using a raw ICMPv6 socket) means the
//! announcement goes out even while the kernel would still refuse the VIP as a source address, the hop
//! limit is always 255 and the checksum is ours to test. The same packet socket, with the ARP/ND filter,
//! serves [`super::probe`].
//!
//! What is sent (decisions, so a person reading a capture knows what to expect):
//! - IPv4: an ARP **request** to the Ethernet broadcast, sender IP = target IP = the VIP, sender MAC =
//!   the interface MAC, target MAC ff:ff:ff:ff:ff:ff. That is `arping -U` and keepalived's form. A
//!   request rather than a reply (`arping -A`) because every Linux host updates an existing neighbour
//!   entry from a gratuitous request (sip == tip, override regardless of `locktime`), and RFC 5227's
//!   "ARP announcement" is a request; some devices ignore unsolicited replies.
//! - IPv6: a Neighbour Advertisement to ff02::1 (Ethernet 33:33:00:00:00:01), hop limit 255, Override
//!   set, Solicited and Router clear, with a Target Link-Layer Address option, **from the VIP itself**
//!   (RFC 4861 7.2.6: the source is an address of the interface; the VIP is, and using it means a
//!   receiver that also learns from the source address learns the same thing).
//!
//! The socket is opened with protocol 0, so it receives nothing (no queue to fill).

use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::Context;

use super::bpf::{bpf, JEQ_K, LDB_ABS, LDH_ABS, RET_K};
use super::frame::{
    arp_probe_frame, dad_ns_frame, garp_frame, garp_reply_frame, is_vrrp_virtual_mac,
    unsolicited_na_frame, ETH_P_ARP, ETH_P_IPV6, ND_NEIGHBOR_ADVERT, ND_NEIGHBOR_SOLICIT,
};
use super::vrrp_socket::permission_hint;

/// Linux `PACKET_OUTGOING`: a frame this host sent, seen by a packet socket.
pub const PACKET_OUTGOING: u8 = 4;

// ---------------------------------------------------------------------------------------------------
// AF_PACKET socket

/// A raw `AF_PACKET` socket bound to one interface (non-blocking).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// `protocol` is the ethertype to receive (0: receive nothing). `filter` is an optional classic BPF
    /// program attached before binding, so no unfiltered frame is ever queued.
    pub fn open(
        ifindex: u32,
        protocol: u16,
        filter: Option<&[libc::sock_filter]>,
    ) -> anyhow::Result<PacketSocket> {
        // SAFETY: plain socket(2) call; the result is checked and then owned by OwnedFd.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                // Bind-time protocol 0 first: nothing is queued before the filter and bind are in place.
                0,
            )
        };
        if raw < 0 {
            return Err(permission_hint(
                io::Error::last_os_error(),
                "a packet socket (AF_PACKET)",
            ));
        }
        // SAFETY: `raw` is a fresh, valid descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if let Some(prog) = filter {
            super::bpf::attach(fd.as_raw_fd(), prog).context("attaching the packet filter")?;
        }
        let sll = sockaddr_ll(ifindex, protocol, &[0; 6]);
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("binding a packet socket to interface index {ifindex}"));
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends one complete Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame too short",
            ));
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[0..6]);
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let sll = sockaddr_ll(self.ifindex, ethertype, &dst);
        // SAFETY: `frame` is valid for reads of its length; `sll` is a valid sockaddr_ll of the size
        // passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                libc::MSG_DONTWAIT,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
        }
        Ok(())
    }

    /// Receives one frame without blocking: (length, packet type such as [`PACKET_OUTGOING`]).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, u8)> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is valid for writes of its length; `sll`/`len` describe a writable sockaddr.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut sll as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(((n as usize).min(buf.len()), sll.sll_pkttype))
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn sockaddr_ll(ifindex: u32, protocol: u16, addr: &[u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(addr);
    sll
}

/// Classic BPF: accept ARP frames, and IPv6 frames carrying ICMPv6 (no extension header) Neighbour
/// Solicitations or Advertisements; drop everything else (VRRP adverts at 10 ms never reach user space).
pub const ARP_AND_ND_FILTER: [libc::sock_filter; 10] = [
    bpf(LDH_ABS, 0, 0, 12),                       // 0: A = ethertype
    bpf(JEQ_K, 6, 0, ETH_P_ARP as u32),           // 1: ARP -> accept (8)
    bpf(JEQ_K, 0, 6, ETH_P_IPV6 as u32),          // 2: not IPv6 -> drop (9)
    bpf(LDB_ABS, 0, 0, 14 + 6),                   // 3: A = next header
    bpf(JEQ_K, 0, 4, 58),                         // 4: not ICMPv6 -> drop (9)
    bpf(LDB_ABS, 0, 0, 14 + 40),                  // 5: A = ICMPv6 type
    bpf(JEQ_K, 1, 0, ND_NEIGHBOR_SOLICIT as u32), // 6: NS -> accept (8)
    bpf(JEQ_K, 0, 1, ND_NEIGHBOR_ADVERT as u32),  // 7: not NA -> drop (9)
    bpf(RET_K, 0, 0, 0xffff),                     // 8: accept
    bpf(RET_K, 0, 0, 0),                          // 9: drop
];
// ---------------------------------------------------------------------------------------------------
// Announcer

/// Sends gratuitous ARP / unsolicited NA on one interface.
#[derive(Debug)]
pub struct Announcer {
    sock: PacketSocket,
    mac: [u8; 6],
}

impl Announcer {
    /// Opens a send-only packet socket on `ifindex`; `mac` is the interface's (or the virtual) MAC
    /// announced for every address.
    pub fn open(ifindex: u32, mac: [u8; 6]) -> anyhow::Result<Announcer> {
        let sock = PacketSocket::open(ifindex, 0, None)?;
        Ok(Announcer { sock, mac })
    }

    /// Sends one gratuitous ARP (IPv4) or one unsolicited Neighbour Advertisement (IPv6) for `addr`.
    /// Non-blocking: a full device queue is reported as `WouldBlock`; callers repeat announcements anyway.
    pub fn announce(&self, addr: IpAddr) -> io::Result<()> {
        let frame = match addr {
            // From a virtual MAC, the reply form (see `garp_reply_frame`).
            IpAddr::V4(a) if is_vrrp_virtual_mac(self.mac) => garp_reply_frame(self.mac, a),
            IpAddr::V4(a) => garp_frame(self.mac, a),
            IpAddr::V6(a) => unsolicited_na_frame(self.mac, a),
        };
        self.sock.send(&frame)
    }

    /// Ask the LAN who answers for `addr`: an RFC 5227 ARP probe, or a DAD Neighbour Solicitation. This
    /// does not listen: an answer claims the address from another MAC, which the ARP/ND watch
    /// ([`super::probe::ConflictWatch`]) reports.
    pub fn probe(&self, addr: IpAddr) -> io::Result<()> {
        let frame = match addr {
            IpAddr::V4(a) => arp_probe_frame(self.mac, a),
            IpAddr::V6(a) => dad_ns_frame(self.mac, a),
        };
        self.sock.send(&frame)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::frame::{dad_ns_frame, garp_frame, unsolicited_na_frame};
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    #[test]
    fn the_watch_filter_passes_arp_and_neighbour_discovery_only() {
        let pass = |f: &[u8]| super::super::bpf::run(&ARP_AND_ND_FILTER, f) != 0;
        let v6: Ipv6Addr = "2001:db8::97".parse().unwrap();
        assert!(pass(&garp_frame(MAC, Ipv4Addr::new(192, 0, 2, 97))));
        assert!(pass(&unsolicited_na_frame(MAC, v6)));
        assert!(pass(&dad_ns_frame(MAC, v6)));
        // A VRRP advert over IPv6 (next header 112) and an IPv4 frame are dropped, as is a runt.
        let mut advert = unsolicited_na_frame(MAC, v6);
        advert[14 + 6] = 112;
        assert!(!pass(&advert));
        let mut v4 = garp_frame(MAC, Ipv4Addr::new(192, 0, 2, 97));
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!pass(&v4));
        assert!(!pass(&advert[..30]));
    }
}
