//! The event monitor's socket filter: a classic BPF program (see `net/bpf.rs`) that drops, in the
//! kernel, the notifications the loop's own requests cause.

use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::monitor::{IFA_ADDRESS, RTM_NEWADDR};

/// The netlink monitor's socket filter (see [`monitor_filtered`](super::monitor_filtered)), which the
/// loop keeps up to date.
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
    /// The filter of the monitor socket `fd` (a duplicate), dropping what comes from netlink `port`.
    pub(super) fn new(fd: OwnedFd, port: Option<u32>) -> MonitorFilter {
        MonitorFilter {
            fd,
            port,
            held: Vec::new(),
        }
    }

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

    pub(super) fn attach(&self, held: &[(u32, Ipv6Addr)]) -> std::io::Result<()> {
        crate::net::bpf::attach(self.fd.as_raw_fd(), &monitor_program(self.port, held))
    }
}

/// The filter program: drop messages from `port`, and RTM_NEWADDR for the `held` IPv6 addresses.
fn monitor_program(port: Option<u32>, held: &[(u32, Ipv6Addr)]) -> Vec<libc::sock_filter> {
    use crate::net::bpf::{bpf, JEQ_K, LDB_ABS, LDH_ABS, LDW_ABS, RET_K};
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::net::netlink::monitor::tests::{attr, nlmsg};
    use crate::net::netlink::monitor::{RTM_DELADDR, RTM_NEWLINK};

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
}
