//! Receive-side acceptance of adverts: what the socket knew plus the instance's policy decide
//! accept or drop, and every drop has a named reason the daemon counts.
//!
//! API CONTRACT (shared with the daemon; add to it freely, change it only in agreement).

use std::net::IpAddr;

use crate::packet::{ChecksumMode, DecodeError, Version};

/// What the socket knew about a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// What one instance accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxPolicy {
    pub vrid: u8,
    pub version: Version,
    /// Our configured interval in centiseconds (v2 drops a mismatch; v3 adopts the master's).
    pub interval_cs: u16,
    pub checksum: ChecksumMode,
    /// Our own addresses on the interface: packets from them are our own, looped back.
    pub own_addresses: Vec<IpAddr>,
    /// Unicast mode: accept only from these sources (empty = multicast mode, any source).
    pub unicast_peers: Vec<IpAddr>,
}

/// Why a received packet was dropped. `label()` is stable (metrics label, status JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("TTL/hop limit {0} is not 255")]
    Ttl(u8),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("VRID {0} is not ours")]
    Vrid(u8),
    #[error("version mismatch")]
    Version,
    #[error("VRRPv2 interval {got_cs} cs differs from ours {ours_cs} cs")]
    Interval { got_cs: u16, ours_cs: u16 },
    #[error("our own packet")]
    Own,
    #[error("source {0} is not a configured unicast peer")]
    NotAPeer(IpAddr),
    #[error("destination {0} is neither the VRRP group nor a unicast address of ours")]
    Destination(IpAddr),
}
