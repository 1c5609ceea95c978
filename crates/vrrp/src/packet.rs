//! The VRRP advert on the wire: encode and decode for v2 and v3, IPv4 and IPv6, with checksums.
//!
//! The bytes handled here are the VRRP message only (what follows the IPv4 header, or the IPv6
//! payload); `src` and `dst` are the IP header's addresses, needed for the pseudo-header checksum
//! and to know the address family (taken from `src`).
//!
//! Wire format (RFC 5798 section 5.1 / RFC 9568, v3; RFC 3768 section 5.1, v2):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! v3: |(rsvd) |     Max Adver Int     |          Checksum         |
//! v2: |   Auth Type   |   Adver Int   |          Checksum         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Count x IPv4 (4 bytes) or IPv6 (16 bytes) address      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! v2 only: 8 bytes of Authentication Data (zero on send, ignored on receive; PASS: the password)
//! optional: keepalived 2.4's 28-byte auth_hmac trailer (see [`crate::auth`])
//! ```
//!
//! Reading choices, all consistent between [`encode`] and [`decode`]:
//! - **Exact length.** The message must be exactly header + count x address (+ 8 auth bytes for
//!   v2); trailing bytes are rejected with [`DecodeError::AddressCount`], like keepalived's
//!   `vrrp_in_chk` ("packet length mismatch against expected"). The kernel strips Ethernet padding
//!   using the IP length, so a well-formed advert never carries trailing bytes.
//! - **Count 0 is accepted.** RFC 5798 says the minimum is 1, but keepalived sends 0 for an instance
//!   without VIPs; such an advert still carries a valid election (priority, interval).
//! - **Ignored on receive:** the v3 reserved bits and the v2 authentication data (RFC 3768 5.3.6:
//!   "ignored on reception"). The v2 auth type must be 0 ([`DecodeError::AuthType`]), or 1 (PASS)
//!   through [`decode_parts`] when the instance is configured for it; the data is then returned.
//! - **The auth_hmac trailer** is recognised only through [`decode_parts`] with `trailer` allowed,
//!   and only by length (message + exactly 28 bytes), as keepalived does.
//! - **Check order:** truncated header, version, type, family, length/address count, checksum, auth
//!   type (v2), zero interval. A corrupted packet is reported as `checksum`, not as a field error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// The IP protocol number of VRRP.
pub const PROTO: u8 = 112;
/// The IPv4 multicast group VRRP adverts go to (224.0.0.18).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group VRRP adverts go to (ff02::12).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit on send; anything else is dropped on receive.
pub const TTL: u8 = 255;
/// Length of the fixed VRRP header (before the addresses).
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data after the addresses.
pub const V2_AUTH_LEN: usize = 8;
/// The largest v3 interval in centiseconds (12 bits).
pub const MAX_INTERVAL_CS_V3: u16 = 0x0fff;

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
    /// Shared, not owned: a master sends the same list every interval, and a clone is a count bump.
    pub addresses: Arc<[IpAddr]>,
}

impl Advert {
    /// The advertised interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.interval_cs) * 10)
    }
}

/// "192.0.2.97, 192.0.2.98" (or "no addresses"), for reasons and logs.
pub fn address_list(addresses: &[IpAddr]) -> String {
    if addresses.is_empty() {
        return "no addresses".to_string();
    }
    addresses
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
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
    #[error("VRRPv2 authentication type {0} is not the configured one (0 none, 1 PASS, 2 AH)")]
    AuthType(u8),
}

impl DecodeError {
    /// Stable snake_case label for metrics and status JSON.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::Version(_) => "version",
            DecodeError::Type(_) => "type",
            DecodeError::Checksum => "checksum",
            DecodeError::AddressCount { .. } => "address_count",
            DecodeError::ZeroInterval => "zero_interval",
            DecodeError::Family => "family",
            DecodeError::AuthType(_) => "auth_type",
        }
    }
}

impl Version {
    /// The 4-bit version number on the wire.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// The length in bytes of `advert` encoded with a source of family `src` (see [`encode`]).
pub fn encoded_len(advert: &Advert, src: IpAddr) -> usize {
    let count = advert
        .addresses
        .iter()
        .filter(|a| a.is_ipv6() == src.is_ipv6())
        .take(usize::from(u8::MAX))
        .count();
    message_len(advert.version, src.is_ipv6(), count)
}

fn message_len(version: Version, v6: bool, count: usize) -> usize {
    let alen = if v6 { 16 } else { 4 };
    let auth = if version == Version::V2 {
        V2_AUTH_LEN
    } else {
        0
    };
    HEADER_LEN + count * alen + auth
}

/// Encode `advert` as a VRRP message (no IP header) sent from `src` to `dst`.
///
/// See [`encode_into`] for the details; this allocates one `Vec` of the exact size.
pub fn encode(advert: &Advert, src: IpAddr, dst: IpAddr, mode: ChecksumMode) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(advert, src));
    encode_into(advert, src, dst, mode, &mut out);
    out
}

/// What an advert carries to authenticate it on send (see [`crate::auth`]).
#[derive(Debug, Clone, Copy)]
pub enum TxAuth<'a> {
    None,
    /// VRRPv2 auth type 1 with these 8 bytes (ignored for v3, which has no auth field).
    Pass(&'a [u8; 8]),
    /// Append an auth_hmac trailer signed with `key`, carrying `seq`.
    Hmac {
        key: &'a crate::auth::Key,
        seq: u64,
    },
}

/// Encode into a caller-owned buffer (cleared first), so a master sending every 10 ms can reuse one.
///
/// - The address family is `src`'s. Addresses of the other family are skipped (a caller bug: an
///   instance has one family), and at most 255 are written (the count is 8 bits).
/// - v3: the interval saturates at 4095 cs. v2: the interval is `interval_cs / 100` seconds,
///   saturating at 255; auth type 0 and 8 zero bytes of authentication data.
/// - Checksum: v2 over the message only; v3 over IPv6 with the IPv6 pseudo-header; v3 over IPv4
///   with the IPv4 pseudo-header unless `mode` is [`ChecksumMode::MessageOnly`] (so
///   [`ChecksumMode::AcceptEither`] sends the pseudo-header form).
/// - A v2 advert over IPv6 is not a valid combination; it is encoded as asked (v2 layout, IPv6
///   addresses) and [`decode`] rejects it with [`DecodeError::Family`].
pub fn encode_into(
    advert: &Advert,
    src: IpAddr,
    dst: IpAddr,
    mode: ChecksumMode,
    out: &mut Vec<u8>,
) {
    encode_auth_into(advert, src, dst, mode, TxAuth::None, out)
}

/// [`encode_into`] with authentication: a v2 PASS password in the auth data, or an auth_hmac
/// trailer after the message. With a trailer the checksum covers the message only over IPv4 and the
/// message plus trailer over IPv6 (as keepalived 2.4 and the kernel compute them).
pub fn encode_auth_into(
    advert: &Advert,
    src: IpAddr,
    dst: IpAddr,
    mode: ChecksumMode,
    auth: TxAuth<'_>,
    out: &mut Vec<u8>,
) {
    let v6 = src.is_ipv6();
    let count = advert
        .addresses
        .iter()
        .filter(|a| a.is_ipv6() == v6)
        .take(usize::from(u8::MAX))
        .count();
    out.clear();
    out.reserve(message_len(advert.version, v6, count));
    out.extend_from_slice(&[
        advert.version.number() << 4 | 1,
        advert.vrid,
        advert.priority,
        count as u8,
    ]);
    match advert.version {
        Version::V3 => {
            let interval = advert.interval_cs.min(MAX_INTERVAL_CS_V3);
            out.extend_from_slice(&interval.to_be_bytes());
        }
        Version::V2 => {
            let seconds = (advert.interval_cs / 100).min(u16::from(u8::MAX)) as u8;
            let auth_type = match auth {
                TxAuth::Pass(_) => crate::auth::AUTH_TYPE_PASS,
                _ => 0,
            };
            out.extend_from_slice(&[auth_type, seconds]);
        }
    }
    out.extend_from_slice(&[0, 0]);
    for address in advert
        .addresses
        .iter()
        .filter(|a| a.is_ipv6() == v6)
        .take(count)
    {
        match address {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    if advert.version == Version::V2 {
        match auth {
            TxAuth::Pass(data) => out.extend_from_slice(data),
            _ => out.extend_from_slice(&[0; V2_AUTH_LEN]),
        }
    }
    let message_len = out.len();
    if let TxAuth::Hmac { key, seq } = auth {
        let trailer = crate::auth::sign(key, seq, advert.version, advert.vrid, src, out);
        out.extend_from_slice(&trailer);
    }
    // IPv6: the kernel's transport checksum covers the whole payload; IPv4: the VRRP message only.
    let covered = if v6 { out.len() } else { message_len };
    let mut sum = ones_sum(&out[..covered]);
    if uses_pseudo_header(advert.version, v6, mode) {
        sum += pseudo_header_sum(src, dst, covered);
    }
    let checksum = !fold(sum);
    out[6..8].copy_from_slice(&checksum.to_be_bytes());
}

/// A decoded advert and the parts authentication looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    pub advert: Advert,
    /// The VRRP message without the trailer (as the HMAC covers it).
    pub message: &'a [u8],
    /// The 28 trailer bytes, when the packet is exactly that much longer than its message.
    pub trailer: Option<&'a [u8]>,
    /// v2: the 8 bytes of authentication data (zeros for v3).
    pub auth_data: [u8; V2_AUTH_LEN],
}

/// Decode a VRRP message (no IP header) received from `src` for `dst`. Never panics.
///
/// The checksum is verified per `mode` for v3 over IPv4 (see [`ChecksumMode`]); v3 over IPv6 always
/// uses the IPv6 pseudo-header, v2 never does. See the module documentation for the check order
/// and what is tolerated.
pub fn decode(
    bytes: &[u8],
    src: IpAddr,
    dst: IpAddr,
    mode: ChecksumMode,
) -> Result<Advert, DecodeError> {
    decode_parts(bytes, src, dst, mode, false, 0).map(|p| p.advert)
}

/// [`decode`] for an authenticating instance: a v2 auth type of `auth_type` is expected (1 for
/// PASS) and its data returned; with `trailer` an advert exactly [`crate::auth::TRAILER_LEN`] bytes
/// longer than its message is split into message and trailer (checksum as [`encode_auth_into`]
/// computes it). Verifying the password or the trailer is [`crate::auth`]'s. Never panics.
pub fn decode_parts(
    bytes: &[u8],
    src: IpAddr,
    dst: IpAddr,
    mode: ChecksumMode,
    trailer: bool,
    auth_type: u8,
) -> Result<Parts<'_>, DecodeError> {
    let whole = bytes;
    let len = bytes.len();
    let Some(&[vers_type, vrid, priority, count, b4, b5, _, _]) = bytes.get(..HEADER_LEN) else {
        return Err(DecodeError::Truncated {
            len,
            need: HEADER_LEN,
        });
    };
    let version = match vers_type >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        other => return Err(DecodeError::Version(other)),
    };
    if vers_type & 0x0f != 1 {
        return Err(DecodeError::Type(vers_type & 0x0f));
    }
    let v6 = src.is_ipv6();
    if v6 != dst.is_ipv6() || (v6 && version == Version::V2) {
        return Err(DecodeError::Family);
    }
    if version == Version::V2 && len < HEADER_LEN + V2_AUTH_LEN {
        return Err(DecodeError::Truncated {
            len,
            need: HEADER_LEN + V2_AUTH_LEN,
        });
    }
    let expected = message_len(version, v6, usize::from(count));
    let (bytes, tail) = if trailer && len == expected + crate::auth::TRAILER_LEN {
        (&bytes[..expected], Some(&whole[expected..]))
    } else {
        (bytes, None)
    };
    let len = bytes.len();
    if len != expected {
        return Err(DecodeError::AddressCount { count, len });
    }
    let summed = if v6 { whole } else { bytes };
    if !checksum_ok(summed, version, src, dst, mode) {
        return Err(DecodeError::Checksum);
    }
    let interval_cs = match version {
        Version::V3 => u16::from_be_bytes([b4, b5]) & MAX_INTERVAL_CS_V3,
        Version::V2 if b4 != auth_type => return Err(DecodeError::AuthType(b4)),
        Version::V2 => u16::from(b5) * 100,
    };
    if interval_cs == 0 {
        return Err(DecodeError::ZeroInterval);
    }
    let end = len
        - if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
    let body = &bytes[HEADER_LEN..end];
    let addresses = if v6 {
        body.chunks_exact(16)
            .map(|c| {
                let mut o = [0u8; 16];
                o.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(o))
            })
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|c| IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])))
            .collect()
    };
    let mut auth_data = [0; V2_AUTH_LEN];
    if version == Version::V2 {
        auth_data.copy_from_slice(&bytes[end..]);
    }
    Ok(Parts {
        advert: Advert {
            version,
            vrid,
            priority,
            interval_cs,
            addresses,
        },
        message: bytes,
        trailer: tail,
        auth_data,
    })
}

fn uses_pseudo_header(version: Version, v6: bool, mode: ChecksumMode) -> bool {
    match version {
        Version::V2 => false,
        Version::V3 => v6 || mode != ChecksumMode::MessageOnly,
    }
}

fn checksum_ok(
    bytes: &[u8],
    version: Version,
    src: IpAddr,
    dst: IpAddr,
    mode: ChecksumMode,
) -> bool {
    let message = ones_sum(bytes);
    let v6 = src.is_ipv6();
    let with_pseudo = || fold(message + pseudo_header_sum(src, dst, bytes.len())) == 0xffff;
    let without = || fold(message) == 0xffff;
    match (version, v6, mode) {
        (Version::V2, _, _) => without(),
        (Version::V3, true, _) => with_pseudo(),
        (Version::V3, false, ChecksumMode::PseudoHeader) => with_pseudo(),
        (Version::V3, false, ChecksumMode::MessageOnly) => without(),
        (Version::V3, false, ChecksumMode::AcceptEither) => with_pseudo() || without(),
    }
}

/// Sum of the IPv4 or IPv6 pseudo-header for protocol 112 and a message of `len` bytes.
///
/// IPv4: src, dst, zero byte, protocol, 16-bit length. IPv6: src, dst, 32-bit length, three zero
/// bytes, next header. Since `len` < 65536, both sum to: address words + length + protocol.
fn pseudo_header_sum(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    fn addr_sum(a: IpAddr) -> u32 {
        match a {
            IpAddr::V4(a) => ones_sum(&a.octets()),
            IpAddr::V6(a) => ones_sum(&a.octets()),
        }
    }
    addr_sum(src) + addr_sum(dst) + u32::from(PROTO) + (len as u32 & 0xffff) + (len as u32 >> 16)
}

/// One's complement sum of big-endian 16-bit words (an odd last byte is padded with zero), unfolded.
/// Fits in u32 for any VRRP message (at most 4088 bytes) many times over.
fn ones_sum(bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    let mut sum: u32 = 0;
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums (folded) to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_sum(&bytes)), 0xddf2);
    }

    #[test]
    fn odd_length_sum_pads_with_zero() {
        assert_eq!(ones_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn pseudo_header_v6_matches_explicit_layout() {
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = IpAddr::V6(GROUP_V6);
        let mut explicit = Vec::new();
        if let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) {
            explicit.extend_from_slice(&s.octets());
            explicit.extend_from_slice(&d.octets());
        }
        explicit.extend_from_slice(&24u32.to_be_bytes());
        explicit.extend_from_slice(&[0, 0, 0, PROTO]);
        assert_eq!(
            fold(pseudo_header_sum(src, dst, 24)),
            fold(ones_sum(&explicit))
        );
    }

    #[test]
    fn labels_are_snake_case() {
        let all = [
            DecodeError::Truncated { len: 0, need: 8 },
            DecodeError::Version(0),
            DecodeError::Type(0),
            DecodeError::Checksum,
            DecodeError::AddressCount { count: 0, len: 0 },
            DecodeError::ZeroInterval,
            DecodeError::Family,
            DecodeError::AuthType(1),
        ];
        for e in all {
            assert!(
                e.label()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                e.label()
            );
        }
    }
}
