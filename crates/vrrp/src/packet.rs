//! The VRRP advert on the wire: encode and decode for v2 and v3, IPv4 and IPv6, with checksums.

use std::net::IpAddr;
use std::time::Duration;

/// Protocol version of an instance and of an advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRPv2, RFC 3768: IPv4 only, interval in whole seconds, auth type 0.
    V2,
    /// VRRPv3, RFC 5798 / RFC 9568: IPv4 or IPv6, interval in centiseconds.
    V3,
}

/// How the VRRPv3-over-IPv4 checksum is computed (IPv6 always uses its pseudo-header, v2 never does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Include the IPv4 pseudo-header (RFC 5798 as keepalived 2.2 and Wireshark read it). Default.
    #[default]
    PseudoHeader,
    /// The VRRP message only (RFC 9568 section 5.2.8 for IPv4).
    MessageOnly,
    /// Receive only: accept a packet that verifies in either form. Sends use the pseudo-header.
    AcceptEither,
}

/// One VRRP advertisement, decoded. All `addresses` are of the same family as the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds. v3: the 12-bit Max Advertise Interval (1..=4095).
    /// v2: the 8-bit seconds field times 100.
    pub interval_cs: u16,
    pub addresses: Vec<IpAddr>,
}

impl Advert {
    /// The advertised interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.interval_cs) * 10)
    }
}

/// Every way a packet can fail to decode. `label()` is stable (metrics label).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated: {len} bytes, need {need}")]
    Truncated { len: usize, need: usize },
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("unsupported type {0}")]
    Type(u8),
    #[error("bad checksum")]
    Checksum,
    #[error("address count {count} does not fit {len} bytes")]
    AddressCount { count: u8, len: usize },
    #[error("zero advert interval")]
    ZeroInterval,
    #[error("VRRPv2 over IPv6 (or source/destination family mismatch)")]
    Family,
    #[error("VRRPv2 authentication type {0} (only 0 is supported)")]
    AuthType(u8),
}
