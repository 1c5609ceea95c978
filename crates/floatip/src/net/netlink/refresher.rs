//! VIP lifetime refreshes from the protocol loop's thread: an RTM_NEWADDR sent without waiting for the
//! answer, on a socket of its own; failures come back later and are matched to their address.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::{bound_route_socket, family_of, recv_fd, send_request, set_lifetime};

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

    /// The port id the kernel gave this socket (for [`monitor_filtered`](super::monitor_filtered)).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Readable when the kernel reported a failed refresh.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sets the lifetime of `addr/prefix_len` on `index` (adding it again if it went missing), as
    /// [`Netlink::add_address`](super::Netlink::add_address) does, without waiting for the answer.
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
        msg.header.family = family_of(addr);
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
        send_request(&self.fd, req)
    }

    /// The failures the kernel reported for earlier refreshes, with the address each was for when it
    /// was among the last `SENT` (drained; never blocks).
    pub fn errors(&self) -> Vec<(Option<IpAddr>, std::io::Error)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match recv_fd(&self.fd, &mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => n,
            };
            for (seq, code) in nlmsg_errors(&buf[..n]) {
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
