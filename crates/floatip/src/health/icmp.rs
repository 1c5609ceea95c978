//! ICMP echo, for the icmp check and the witness: one echo request, the matching reply, bounded by a
//! timeout. Uses an unprivileged ping socket when the system allows, else a raw socket.

use std::io::{self, Read as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::config::format_duration;
use crate::exec::io_text;

static ICMP_SEQ: AtomicU16 = AtomicU16::new(1);

/// Sends one echo request to `target` and waits up to `timeout` for the matching reply; returns the
/// round-trip time. Uses an unprivileged ping socket (`net.ipv4.ping_group_range`) when allowed, else a
/// raw socket (needs CAP_NET_RAW). `Err` says why in words.
pub async fn icmp_echo(target: IpAddr, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, echo(target)).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(format!("ping {target}: {e}")),
        Err(_) => Err(format!(
            "ping {target}: no echo reply within {}",
            format_duration(timeout)
        )),
    }
}

/// An ICMP socket: `dgram` = a kernel ping socket (the kernel owns the echo id and filters replies; no
/// IP header on receive), else raw (we match id and payload; IPv4 receives include the IP header).
fn open_icmp(target: IpAddr) -> io::Result<(Socket, bool)> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, dgram) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => (s, true),
        Err(dgram_err) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, false),
            Err(raw_err) => {
                return Err(io::Error::new(
                    raw_err.kind(),
                    format!(
                        "cannot open an ICMP socket: ping socket: {}; raw socket: {} \
                         (allow ping sockets with sysctl net.ipv4.ping_group_range, or run with CAP_NET_RAW)",
                        io_text(&dgram_err),
                        io_text(&raw_err)
                    ),
                ))
            }
        },
    };
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::from(SocketAddr::new(target, 0)))?;
    Ok((socket, dgram))
}

async fn echo(target: IpAddr) -> Result<(), String> {
    let (socket, dgram) = open_icmp(target).map_err(|e| io_text(&e))?;
    // SAFETY: the socket2::Socket owns its descriptor, keeps it open until the AsyncFd (which owns the
    // socket) drops it, and always returns the same one from as_raw_fd, which is what register needs.
    let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| io_text(&e.into_parts().1))?;
    let seq = ICMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let id = (std::process::id() as u16) ^ seq.rotate_left(8);
    let mut token = [0u8; 16];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    token[..8].copy_from_slice(b"floatip!");
    token[8..].copy_from_slice(&(nanos as u64).to_be_bytes());

    let v4 = target.is_ipv4();
    let mut request = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    request.extend_from_slice(&id.to_be_bytes());
    request.extend_from_slice(&seq.to_be_bytes());
    request.extend_from_slice(&token);
    if v4 {
        // ICMPv6 checksums are filled in by the kernel (they cover a pseudo-header we do not build).
        let sum = checksum(&request);
        request[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    loop {
        let mut guard = fd.writable().await.map_err(|e| io_text(&e))?;
        match guard.try_io(|s| s.get_ref().send(&request)) {
            Ok(Ok(_)) => break,
            Ok(Err(e)) => return Err(format!("sending the echo request: {}", io_text(&e))),
            Err(_would_block) => continue,
        }
    }
    let reply_type = if v4 { 0 } else { 129 };
    let mut buf = [0u8; 1500];
    loop {
        let mut guard = fd.readable().await.map_err(|e| io_text(&e))?;
        let n = match guard.try_io(|s| {
            let mut sock: &Socket = s.get_ref();
            sock.read(&mut buf)
        }) {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(io_text(&e)),
            Err(_would_block) => continue,
        };
        let mut packet = &buf[..n];
        if v4 && !dgram {
            let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
            packet = packet.get(header..).unwrap_or(&[]);
        }
        if packet.len() < 8 || packet[0] != reply_type {
            continue; // our own request on loopback, or other ICMP traffic a raw socket sees
        }
        let reply_id = u16::from_be_bytes([packet[4], packet[5]]);
        let reply_seq = u16::from_be_bytes([packet[6], packet[7]]);
        // A ping socket's id is chosen by the kernel, which only gives us our own replies.
        let ours =
            reply_seq == seq && (dgram || (reply_id == id && packet[8..].starts_with(&token)));
        if ours {
            return Ok(());
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum() {
        // Echo request id 1 seq 1, no payload: 0x0800 + 0x0001 + 0x0001 = 0x0802 -> !0x0802.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), !0x0802);
    }
}
