//! VRRP on the wire from a lab host that runs no VRRP daemon: capture the adverts others send, and
//! send adverts of our own making (a forged one, or a captured one again, with its original source
//! address), for tests of what a daemon does with adverts it must not believe. IPv4 only; the VRRP
//! payloads come from the caller (the tests build them with the `vrrp` crate).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{sys, Host};

/// The IPv4 VRRP group.
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The longest VRRP packet read (an IPv4 header and a VRRP message with many addresses).
const MAX_PACKET: usize = 2048;

/// A raw VRRP (protocol 112) socket in one lab host: reads every IPv4 advert on its LAN, sends
/// whole IPv4 packets as given.
pub struct VrrpWire {
    sock: UdpSocket,
}

/// One captured IPv4 VRRP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// The whole IPv4 packet, header included, to send again as it was.
    pub packet: Vec<u8>,
}

impl Captured {
    /// The VRRP message (after the IPv4 header).
    pub fn payload(&self) -> &[u8] {
        let ihl = usize::from(self.packet[0] & 0x0f) * 4;
        &self.packet[ihl..]
    }
}

impl VrrpWire {
    /// Opens the socket in `host` (joined to 224.0.0.18 on its eth0).
    pub fn open(host: &Host) -> Result<VrrpWire> {
        let sock = sys::raw_vrrp4_socket_in(&host.netns, host.ipv4)
            .with_context(|| format!("raw VRRP socket in {}", host.name))?;
        Ok(VrrpWire { sock })
    }

    /// The next advert from `from` whose VRRP message satisfies `want`, within `timeout`.
    pub fn capture(
        &self,
        from: Ipv4Addr,
        timeout: Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> Result<Captured> {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; MAX_PACKET];
        for _ in 0..100_000 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.sock.set_read_timeout(Some(left))?;
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e.into()),
            };
            let p = &buf[..n];
            if n < 20 || p[0] >> 4 != 4 {
                continue;
            }
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if n < ihl {
                continue;
            }
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            if src == from && want(&p[ihl..]) {
                return Ok(Captured {
                    src,
                    dst,
                    ttl: p[8],
                    packet: p.to_vec(),
                });
            }
        }
        bail!("no VRRP advert from {from} within {timeout:?}")
    }

    /// Sends a whole IPv4 packet as it is (a captured one, replayed).
    pub fn send_packet(&self, packet: &[u8]) -> Result<()> {
        if packet.len() < 20 {
            bail!("not an IPv4 packet ({} bytes)", packet.len());
        }
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let to = SocketAddr::V4(SocketAddrV4::new(dst, 0));
        self.sock
            .send_to(packet, to)
            .context("send a raw VRRP packet")?;
        Ok(())
    }

    /// Sends the VRRP message `payload` from `src` (any address: it may claim to be another host)
    /// to `dst` with TTL 255, as a VRRP router would.
    pub fn send(&self, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Result<()> {
        self.send_packet(&ipv4_packet(src, dst, 255, payload))
    }
}

/// An IPv4 packet of protocol 112 carrying `payload` (DF clear, ID 0, TOS 0xc0 as keepalived's).
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0xc0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, ttl, 112, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let mut sum: u32 = p
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_header_checksums_to_zero() {
        let p = ipv4_packet(
            Ipv4Addr::new(192, 0, 2, 3),
            VRRP_GROUP,
            255,
            &[0x31, 51, 255, 0],
        );
        let mut sum: u32 = p[..20]
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(p.len(), 24);
        assert_eq!((p[8], p[9]), (255, 112));
    }
}
