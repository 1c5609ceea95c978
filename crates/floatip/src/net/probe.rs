//! "Is anyone else using this address?": RFC 5227 ARP probes and IPv6 duplicate address detection
//! before a claim (`floatip up`, takeover), and a conflict watch while master.
//!
//! All three use an `AF_PACKET` socket bound to the interface with a BPF filter that passes only ARP and
//! Neighbour Solicitations/Advertisements, so they see exactly what is on the wire (including answers
//! the local kernel would not report) and never frames this host sent itself.
//!
//! Limits a caller must know: a probe only sees hosts that answer. A host holding the address with
//! `arp_ignore`/`arp_filter` settings that suppress replies, or behind a filtering switch, is invisible.
//! An address configured on *this* host is not detected either (our kernel does not answer our own
//! frames): check the local addresses first.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::announce::{PacketSocket, ARP_AND_ND_FILTER, PACKET_OUTGOING};
use super::frame::{
    arp_probe_frame, dad_ns_frame, parse_arp, parse_nd, ETH_P_ARP, ETH_P_IPV6, ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
};
use super::vrrp_socket::async_fd;

/// Upper bound on frames examined per probe, so a flood cannot keep a probe busy forever (the deadline
/// bounds it too).
const MAX_FRAMES: usize = 100_000;

/// RFC 5227 ARP probe: sends `probes` ARP probes (sender IP 0.0.0.0, target `addr`) `spacing` apart,
/// and listens from the first probe until `wait` after the last one for any ARP packet whose sender IP
/// is `addr` from a MAC other than `mac` (a reply, or a request/announcement by a host using it).
/// Returns the first such MAC, as soon as it is seen; `None` if nobody answered.
pub async fn arp_probe(
    ifindex: u32,
    mac: [u8; 6],
    addr: Ipv4Addr,
    probes: u32,
    spacing: Duration,
    wait: Duration,
) -> anyhow::Result<Option<[u8; 6]>> {
    let sock = PacketSocket::open(ifindex, ETH_P_ARP, Some(&ARP_AND_ND_FILTER))?;
    let frame = arp_probe_frame(mac, addr);
    let found = run_probe(sock, &frame, probes, spacing, wait, |f| {
        let a = parse_arp(f)?;
        (a.spa == addr && a.sha != mac).then_some(a.sha)
    })
    .await?;
    Ok(found)
}

/// IPv6 duplicate address detection, done by hand: sends `probes` Neighbour Solicitations for `addr`
/// from :: to its solicited-node group, `spacing` apart, and listens until `wait` after the last one
/// for a Neighbour Advertisement for `addr` from another MAC. Returns that MAC (the target link-layer
/// option, else the Ethernet source).
pub async fn ndp_probe(
    ifindex: u32,
    mac: [u8; 6],
    addr: Ipv6Addr,
    probes: u32,
    spacing: Duration,
    wait: Duration,
) -> anyhow::Result<Option<[u8; 6]>> {
    let sock = PacketSocket::open(ifindex, ETH_P_IPV6, Some(&ARP_AND_ND_FILTER))?;
    let frame = dad_ns_frame(mac, addr);
    let found = run_probe(sock, &frame, probes, spacing, wait, |f| {
        let nd = parse_nd(f)?;
        if nd.kind != ND_NEIGHBOR_ADVERT || nd.target != addr {
            return None;
        }
        let who = nd.lladdr.unwrap_or(nd.eth_src);
        (who != mac).then_some(who)
    })
    .await?;
    Ok(found)
}

async fn run_probe(
    sock: PacketSocket,
    frame: &[u8],
    probes: u32,
    spacing: Duration,
    wait: Duration,
    matches: impl Fn(&[u8]) -> Option<[u8; 6]>,
) -> io::Result<Option<[u8; 6]>> {
    let afd = async_fd(sock)?;
    let start = Instant::now();
    let end = start + spacing * probes.saturating_sub(1) + wait;
    let mut sent = 0u32;
    let mut next_send = start;
    let mut buf = vec![0u8; 2048];
    let mut examined = 0usize;
    loop {
        let now = Instant::now();
        if sent < probes && now >= next_send {
            afd.get_ref().send(frame)?;
            sent += 1;
            next_send += spacing;
            continue;
        }
        if examined >= MAX_FRAMES {
            return Ok(None);
        }
        if now >= end {
            // An answer that arrived in time may still be queued (this task ran late): the
            // socket's queue is the record of what came before the end, not our wake-ups.
            return match drain(afd.get_ref(), &mut buf, &mut examined, &matches) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                other => other,
            };
        }
        let until = if sent < probes {
            next_send.min(end)
        } else {
            end
        };
        let mut guard = match tokio::time::timeout_at(until, afd.readable()).await {
            Err(_elapsed) => continue,
            Ok(g) => g?,
        };
        match guard.try_io(|s| drain(s.get_ref(), &mut buf, &mut examined, &matches)) {
            Ok(Ok(Some(m))) => return Ok(Some(m)),
            Ok(Ok(None)) | Err(_) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Examines every frame queued on `sock` (not our own); the first that `matches` answers. Ends
/// with `WouldBlock` as the error when the queue ran dry without a match (so that the readiness
/// is cleared), or `Ok(None)` when [`MAX_FRAMES`] were examined.
fn drain(
    sock: &PacketSocket,
    buf: &mut [u8],
    examined: &mut usize,
    matches: &impl Fn(&[u8]) -> Option<[u8; 6]>,
) -> io::Result<Option<[u8; 6]>> {
    loop {
        match sock.try_recv(buf) {
            Ok((n, pkttype)) => {
                *examined += 1;
                if pkttype != PACKET_OUTGOING {
                    if let Some(m) = matches(&buf[..n]) {
                        return Ok(Some(m));
                    }
                }
                if *examined >= MAX_FRAMES {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Watches the wire for other hosts claiming addresses while we are master.
///
/// Reports every (address, MAC) where a host other than us (MAC != ours):
/// - sends any ARP packet (reply, gratuitous ARP, or an ordinary request) with that sender IP;
/// - sends a Neighbour Advertisement for that target (MAC from the target link-layer option, else the
///   Ethernet source);
/// - sends a Neighbour Solicitation from that (non-::) source address with a source link-layer option.
///
/// It reports every address, not only VIPs: the caller filters by its VIP set. Frames this host sent
/// are never reported.
///
/// One watch covers one family: ARP (`ETH_P_ARP`) for IPv4, ND (`ETH_P_IPV6`) for IPv6. A protocol
/// socket only sees incoming frames of its protocol; an `ETH_P_ALL` tap would make the kernel clone
/// and filter every frame the host sends, every advert included, at the master's expense.
#[derive(Debug)]
pub struct ConflictWatch {
    fd: AsyncFd<PacketSocket>,
    mac: [u8; 6],
}

impl ConflictWatch {
    pub fn open(ifindex: u32, mac: [u8; 6], v6: bool) -> anyhow::Result<Self> {
        let protocol = if v6 { ETH_P_IPV6 } else { ETH_P_ARP };
        let sock = PacketSocket::open(ifindex, protocol, Some(&ARP_AND_ND_FILTER))?;
        Ok(ConflictWatch {
            fd: async_fd(sock)?,
            mac,
        })
    }

    /// The next conflict candidate. Cancel-safe (no frame is lost by dropping the future between frames).
    pub async fn next(&self) -> io::Result<(IpAddr, [u8; 6])> {
        let mut buf = [0u8; 2048];
        loop {
            let mut guard = self.fd.readable().await?;
            loop {
                match guard.try_io(|s| s.get_ref().try_recv(&mut buf)) {
                    Ok(Ok((n, pkttype))) => {
                        if pkttype == PACKET_OUTGOING {
                            continue;
                        }
                        if let Some(hit) = classify(&buf[..n], self.mac) {
                            return Ok(hit);
                        }
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => break,
                }
            }
        }
    }
}

impl ConflictWatch {
    /// The conflict candidates already queued on the socket, without waiting: for a caller that
    /// must not miss an answer the watch's own task has not read yet (it may run late under load).
    pub fn drain(&self) -> Vec<(IpAddr, [u8; 6])> {
        let mut buf = [0u8; 2048];
        let mut out = Vec::new();
        loop {
            match self.fd.get_ref().try_recv(&mut buf) {
                Ok((_, pkttype)) if pkttype == PACKET_OUTGOING => {}
                Ok((n, _)) => out.extend(classify(&buf[..n], self.mac)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return out,
            }
        }
    }
}

/// Pure part of [`ConflictWatch::next`]: what (address, MAC) claim does this frame make, if any, from
/// a MAC other than `ours`?
pub fn classify(frame: &[u8], ours: [u8; 6]) -> Option<(IpAddr, [u8; 6])> {
    if frame.len() >= 12 && frame[6..12] == ours {
        return None;
    }
    if let Some(a) = parse_arp(frame) {
        if a.spa.is_unspecified() || a.sha == ours {
            return None;
        }
        return Some((IpAddr::V4(a.spa), a.sha));
    }
    let nd = parse_nd(frame)?;
    match nd.kind {
        ND_NEIGHBOR_ADVERT => {
            let who = nd.lladdr.unwrap_or(nd.eth_src);
            (who != ours).then_some((IpAddr::V6(nd.target), who))
        }
        ND_NEIGHBOR_SOLICIT if !nd.src.is_unspecified() => {
            let who = nd.lladdr?;
            (who != ours).then_some((IpAddr::V6(nd.src), who))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{garp_frame, icmpv6_frame, unsolicited_na_frame};
    use super::*;

    const US: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const THEM: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn classify_arp() {
        let vip = Ipv4Addr::new(192, 0, 2, 97);
        assert_eq!(
            classify(&garp_frame(THEM, vip), US),
            Some((IpAddr::V4(vip), THEM))
        );
        assert_eq!(classify(&garp_frame(US, vip), US), None);
        // A probe (sender 0.0.0.0) claims nothing.
        assert_eq!(classify(&arp_probe_frame(THEM, vip), US), None);
    }

    #[test]
    fn classify_nd() {
        let vip: Ipv6Addr = "2001:db8::97".parse().unwrap();
        assert_eq!(
            classify(&unsolicited_na_frame(THEM, vip), US),
            Some((IpAddr::V6(vip), THEM))
        );
        assert_eq!(classify(&unsolicited_na_frame(US, vip), US), None);
        assert_eq!(classify(&dad_ns_frame(THEM, vip), US), None);
        // NS from the VIP with a source link-layer option.
        let group = super::super::frame::solicited_node(&"2001:db8::1".parse().unwrap());
        let mut icmp = vec![ND_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&THEM);
        let f = icmpv6_frame([0x33, 0x33, 0xff, 0, 0, 1], THEM, vip, group, icmp);
        assert_eq!(classify(&f, US), Some((IpAddr::V6(vip), THEM)));
    }
}
