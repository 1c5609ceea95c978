//! Receive-side acceptance of adverts: what the socket knew plus the instance's policy decide
//! accept or drop, and every drop has a named reason the daemon counts.
//!
//! API CONTRACT (shared with the daemon; add to it freely, change it only in agreement).

use std::net::IpAddr;

use crate::packet::{self, Advert, ChecksumMode, DecodeError, Version};

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

impl DropReason {
    /// Stable snake_case label for metrics and status JSON. A decode failure uses the
    /// [`DecodeError::label`] of its cause (e.g. "checksum", "truncated").
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Ttl(_) => "ttl",
            DropReason::Decode(e) => e.label(),
            DropReason::Vrid(_) => "vrid",
            DropReason::Version => "version_mismatch",
            DropReason::Interval { .. } => "interval",
            DropReason::Own => "own",
            DropReason::NotAPeer(_) => "not_a_peer",
            DropReason::Destination(_) => "destination",
        }
    }
}

/// The VRID of a received VRRP message, to dispatch it to an instance when several share a socket.
///
/// Returns `Some` for anything with a full 8-byte fixed header, whatever its version or type, so the
/// instance's [`validate`] names the precise drop reason; `None` for shorter input.
pub fn peek_vrid(bytes: &[u8]) -> Option<u8> {
    if bytes.len() < packet::HEADER_LEN {
        return None;
    }
    bytes.get(1).copied()
}

/// Accept an advert for the instance described by `policy`, or name why it is dropped.
///
/// Checks, in the order of RFC 5798 section 7.1 (and RFC 3768 section 7.1 for v2):
/// 1. TTL / hop limit is 255 ([`DropReason::Ttl`]), also in unicast mode;
/// 2. the message decodes, with its checksum verified per `policy.checksum`
///    ([`DropReason::Decode`]; this also covers the version and type fields being VRRP at all);
/// 3. the VRID is ours ([`DropReason::Vrid`]);
/// 4. the version is the instance's ([`DropReason::Version`]);
/// 5. v2 only: the interval equals ours ([`DropReason::Interval`]); a v3 backup adopts the master's;
/// 6. the source is not one of our own addresses ([`DropReason::Own`]);
/// 7. unicast mode: the source is a configured peer ([`DropReason::NotAPeer`]);
/// 8. the destination is the VRRP group of the family, or, in unicast mode only, a unicast
///    address ([`DropReason::Destination`]).
///
/// The advert's address list is not compared with ours (RFC 5798: "MAY"); a mismatch is the
/// daemon's to log, it does not change the election.
pub fn validate(bytes: &[u8], rx: &Received, policy: &RxPolicy) -> Result<Advert, DropReason> {
    if rx.ttl != packet::TTL {
        return Err(DropReason::Ttl(rx.ttl));
    }
    let advert = packet::decode(bytes, rx.src, rx.dst, policy.checksum)?;
    if advert.vrid != policy.vrid {
        return Err(DropReason::Vrid(advert.vrid));
    }
    if advert.version != policy.version {
        return Err(DropReason::Version);
    }
    if advert.version == Version::V2 && advert.interval_cs != policy.interval_cs {
        return Err(DropReason::Interval {
            got_cs: advert.interval_cs,
            ours_cs: policy.interval_cs,
        });
    }
    if policy.own_addresses.contains(&rx.src) {
        return Err(DropReason::Own);
    }
    let unicast = !policy.unicast_peers.is_empty();
    if unicast && !policy.unicast_peers.contains(&rx.src) {
        return Err(DropReason::NotAPeer(rx.src));
    }
    if !destination_ok(rx.dst, unicast) {
        return Err(DropReason::Destination(rx.dst));
    }
    Ok(advert)
}

fn destination_ok(dst: IpAddr, unicast: bool) -> bool {
    match dst {
        IpAddr::V4(d) if d == packet::GROUP_V4 => true,
        IpAddr::V6(d) if d == packet::GROUP_V6 => true,
        IpAddr::V4(d) => unicast && !(d.is_multicast() || d.is_broadcast() || d.is_unspecified()),
        IpAddr::V6(d) => unicast && !(d.is_multicast() || d.is_unspecified()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_vrid_needs_a_full_header() {
        assert_eq!(peek_vrid(&[0x31, 51, 100, 1, 0, 100, 0]), None);
        assert_eq!(peek_vrid(&[0x31, 51, 100, 1, 0, 100, 0, 0]), Some(51));
    }

    #[test]
    fn destination_rules() {
        let group: IpAddr = packet::GROUP_V4.into();
        let other_group: IpAddr = "224.0.0.5".parse().unwrap();
        let unicast: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(destination_ok(group, false));
        assert!(destination_ok(group, true));
        assert!(!destination_ok(other_group, true));
        assert!(!destination_ok(unicast, false));
        assert!(destination_ok(unicast, true));
        assert!(!destination_ok("255.255.255.255".parse().unwrap(), true));
        assert!(destination_ok(packet::GROUP_V6.into(), false));
        assert!(!destination_ok("ff02::1".parse().unwrap(), true));
        assert!(destination_ok("2001:db8::1".parse().unwrap(), true));
    }
}
