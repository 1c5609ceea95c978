//! Synchronous address removal for a process without a runtime (the guard, `crate::guard`): one
//! RTM_DELADDR at a time on a NETLINK_ROUTE socket of its own, waiting (bounded) for the kernel's answer.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::{bound_route_socket, deletion, recv_fd, send_request};

/// How long one removal waits for the kernel's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(1);

/// Removes addresses over a NETLINK_ROUTE socket, blocking until the kernel has answered.
pub struct AddressRemover {
    fd: OwnedFd,
    seq: u32,
}

impl AddressRemover {
    /// Opens the socket (in the calling thread's network namespace).
    pub fn open() -> std::io::Result<AddressRemover> {
        let (fd, _port) = bound_route_socket(0)?;
        Ok(AddressRemover { fd, seq: 0 })
    }

    /// Removes `addr/prefix_len` from interface `index`. `Ok(true)`: removed; `Ok(false)`: it was not
    /// there (or the interface is gone), which is not an error.
    pub fn remove(&mut self, index: u32, addr: IpAddr, prefix_len: u8) -> std::io::Result<bool> {
        use netlink_packet_core::{NetlinkMessage, NLM_F_ACK, NLM_F_REQUEST};
        use netlink_packet_route::RouteNetlinkMessage;
        let msg = deletion(index, addr, prefix_len);
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::DelAddress(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        self.seq = self.seq.wrapping_add(1);
        req.header.sequence_number = self.seq;
        send_request(&self.fd, req)?;
        match self.wait_ack()? {
            0 => Ok(true),
            libc::EADDRNOTAVAIL | libc::ENODEV => Ok(false),
            code => Err(std::io::Error::from_raw_os_error(code)),
        }
    }

    /// The errno (0 for success) of the kernel's answer to request `self.seq`.
    fn wait_ack(&self) -> std::io::Result<i32> {
        let mut buf = [0u8; 4096];
        let ms = ACK_WAIT.as_millis() as libc::c_int;
        // Bounded: each round either reads a message or waits at most ACK_WAIT.
        for _ in 0..64 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if rc == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the kernel did not answer the address removal",
                ));
            }
            let n = match recv_fd(&self.fd, &mut buf) {
                Ok(n) => n,
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(err) => return Err(err),
            };
            if let Some(code) = ack_code(&buf[..n], self.seq) {
                return Ok(code);
            }
        }
        Err(std::io::Error::other("no answer to the address removal"))
    }
}

/// The errno in the NLMSG_ERROR message answering request `seq` in `buf`, if there is one.
fn ack_code(buf: &[u8], seq: u32) -> Option<i32> {
    let word = |at: usize| -> Option<[u8; 4]> { buf.get(at..at + 4)?.try_into().ok() };
    let mut off = 0usize;
    // struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32; NLMSG_ERROR then has int error.
    while let (Some(len), Some(kind), Some(s)) =
        (word(off), buf.get(off + 4..off + 6), word(off + 8))
    {
        let len = u32::from_ne_bytes(len) as usize;
        if u16::from_ne_bytes([kind[0], kind[1]]) == libc::NLMSG_ERROR as u16
            && u32::from_ne_bytes(s) == seq
        {
            return word(off + 16).map(|c| -i32::from_ne_bytes(c));
        }
        if len < 16 {
            break;
        }
        off += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_msg(seq: u32, code: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&code.to_ne_bytes());
        m.extend_from_slice(&[0u8; 16]);
        m
    }

    #[test]
    fn the_answer_to_our_request_is_found_among_others() {
        let mut buf = error_msg(6, -libc::EPERM);
        buf.extend(error_msg(7, -libc::EADDRNOTAVAIL));
        assert_eq!(ack_code(&buf, 7), Some(libc::EADDRNOTAVAIL));
        assert_eq!(ack_code(&buf, 6), Some(libc::EPERM));
        assert_eq!(ack_code(&error_msg(3, 0), 3), Some(0));
        assert_eq!(ack_code(&buf, 8), None);
        assert_eq!(ack_code(&buf[..10], 6), None);
    }
}
