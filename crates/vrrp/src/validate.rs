//! Receive-side acceptance of adverts: what the socket knew plus the instance's policy decide
//! accept or drop, and every drop has a named reason the daemon counts.
//!
//! API CONTRACT (shared with the daemon; add to it freely, change it only in agreement).
//!
//! ## An advert with another address set (a VRID clash)
//!
//! RFC 3768 (VRRPv2) section 7.1: the receiver "MAY verify that the IP address(es) associated with
//! the VRID are valid"; if that check fails it "SHOULD log the event", and unless the sender is the
//! address owner (priority 255) it "MUST drop the packet". RFC 5798 and RFC 9568 (VRRPv3) keep the
//! "MAY verify" and the "SHOULD log", but no longer say what becomes of the packet.
//!
//! Our reading and decision, for both versions and every priority: an advert is from our virtual
//! router only if it lists **every one of our virtual addresses** (as a set: order and repeats do not
//! matter). Anything else is dropped as [`DropReason::AddressSet`], so the election never yields to
//! it and never claims because of it. The daemon counts it, logs it once per speaker and shows it in
//! `status` as a VRID clash. Why:
//! - Yielding to a master that does not list one of our VIPs leaves that VIP with no owner for as
//!   long as it talks: the outage VRRP exists to prevent. keepalived drops such adverts too ("ip
//!   address associated with VRID 51 not present in MASTER advert").
//! - **v3:** the RFC leaves it open; we drop, as v2 does, for the reason above.
//! - **Priority 255:** v2 would accept an address owner's advert whatever it lists. We do not: an
//!   owner whose list lacks one of our VIPs does not own that VIP, and yielding to it leaves the VIP
//!   dark. Two owners on one VRID is a misconfiguration anyway (RFC 9568 erratum 8298).
//! - **Our VIPs plus others** is accepted (keepalived compares the sets exactly; we accept a
//!   superset): that master serves all of ours, so following it darkens none of them. Only a master
//!   advertises, so this also makes a VIP list change hitless when done in order: to add a VIP,
//!   reload the master first, then the backups; to remove one, the backups first, then the master.
//!   With keepalived peers the sets must be equal (it ignores any difference).
//!
//! An empty [`RxPolicy::virtual_addresses`] turns the comparison off (a listener that is not a
//! virtual router of its own).

use std::net::IpAddr;

use crate::auth::{AuthError, AuthState};
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
    /// Our virtual addresses: an advert that does not list every one of them is another virtual
    /// router's ([`DropReason::AddressSet`]). Empty = not compared.
    pub virtual_addresses: Vec<IpAddr>,
    /// A VRRPv3 policy that also accepts VRRPv2 adverts, whatever their interval: the instance
    /// follows a VRRPv2 router it hears (`machine::Config::follow_v2`). Off once it does.
    pub follow_v2: bool,
}

/// Why a received packet was dropped. `label()` is stable (metrics label, status JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("TTL/hop limit {0} is not 255")]
    Ttl(u8),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// PASS or auth_hmac refused it (see [`crate::auth`]).
    #[error("{0}")]
    Auth(#[from] AuthError),
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
    /// The advert does not list `missing`, one of our virtual addresses: another virtual router
    /// speaks on our VRID (a VRID clash). The advert is in the `Err` so the daemon can say who.
    #[error("VRID clash: the advert does not list our address {missing} (it lists {})", crate::packet::address_list(&.advert.addresses))]
    AddressSet { missing: IpAddr, advert: Advert },
}

impl DropReason {
    /// Stable snake_case label for metrics and status JSON. A decode failure uses the
    /// [`DecodeError::label`] of its cause (e.g. "checksum", "truncated").
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Ttl(_) => "ttl",
            DropReason::Decode(e) => e.label(),
            DropReason::Auth(e) => e.label(),
            DropReason::Vrid(_) => "vrid",
            DropReason::Version => "version_mismatch",
            DropReason::Interval { .. } => "interval",
            DropReason::Own => "own",
            DropReason::NotAPeer(_) => "not_a_peer",
            DropReason::Destination(_) => "destination",
            DropReason::AddressSet { .. } => "address_set",
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
/// 4. the version is the instance's ([`DropReason::Version`]), or v2 for a v3 instance that
///    follows VRRPv2 routers ([`RxPolicy::follow_v2`]);
/// 5. v2 only: the interval equals ours ([`DropReason::Interval`]); a v3 backup adopts the master's;
/// 6. the source is not one of our own addresses ([`DropReason::Own`]);
/// 7. unicast mode: the source is a configured peer ([`DropReason::NotAPeer`]);
/// 8. the destination is the VRRP group of the family, or, in unicast mode only, a unicast
///    address ([`DropReason::Destination`]);
/// 9. the advert lists every one of our virtual addresses, in any order, others allowed
///    ([`DropReason::AddressSet`]; see the module docs for why, also at priority 255).
pub fn validate(bytes: &[u8], rx: &Received, policy: &RxPolicy) -> Result<Advert, DropReason> {
    validate_inner(bytes, rx, policy, None)
}

/// [`validate`] for an instance with authentication: after check 8 (so only adverts from a possible
/// peer of ours touch the replay state) the PASS password or the auth_hmac trailer is checked per
/// `auth` ([`DropReason::Auth`]); a v2 auth type other than the configured one is
/// [`DecodeError::AuthType`]. `now` is the wall-clock time since the Unix epoch.
pub fn validate_auth(
    bytes: &[u8],
    rx: &Received,
    policy: &RxPolicy,
    auth: &mut AuthState,
    now: std::time::Duration,
) -> Result<Advert, DropReason> {
    validate_inner(bytes, rx, policy, Some((auth, now)))
}

fn validate_inner(
    bytes: &[u8],
    rx: &Received,
    policy: &RxPolicy,
    mut auth: Option<(&mut AuthState, std::time::Duration)>,
) -> Result<Advert, DropReason> {
    if rx.ttl != packet::TTL {
        return Err(DropReason::Ttl(rx.ttl));
    }
    let (trailer, auth_type) = match &auth {
        Some((a, _)) => (
            matches!(a.config, crate::auth::Auth::Hmac(_)),
            a.v2_auth_type(),
        ),
        None => (false, 0),
    };
    let parts = packet::decode_parts(bytes, rx.src, rx.dst, policy.checksum, trailer, auth_type)?;
    let advert = &parts.advert;
    if advert.vrid != policy.vrid {
        return Err(DropReason::Vrid(advert.vrid));
    }
    let to_follow =
        policy.follow_v2 && policy.version == Version::V3 && advert.version == Version::V2;
    if advert.version != policy.version && !to_follow {
        return Err(DropReason::Version);
    }
    if advert.version == Version::V2 && !to_follow && advert.interval_cs != policy.interval_cs {
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
    if let Some((state, now)) = auth.as_mut() {
        state.check(&parts, rx.src, *now)?;
    }
    let advert = parts.advert;
    if let Some(&missing) = policy
        .virtual_addresses
        .iter()
        .find(|a| !advert.addresses.contains(a))
    {
        return Err(DropReason::AddressSet { missing, advert });
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A v3 advert from 192.0.2.9 on VRID 51 at `priority` listing `addresses`, checked against a
    /// policy whose virtual addresses are `ours`.
    fn check(
        version: Version,
        priority: u8,
        addresses: &[&str],
        ours: &[&str],
    ) -> Result<Advert, DropReason> {
        let advert = Advert {
            version,
            vrid: 51,
            priority,
            interval_cs: 100,
            addresses: addresses.iter().map(|a| ip(a)).collect(),
        };
        let (src, dst) = (ip("192.0.2.9"), IpAddr::V4(packet::GROUP_V4));
        let bytes = packet::encode(&advert, src, dst, ChecksumMode::PseudoHeader);
        let policy = RxPolicy {
            vrid: 51,
            version,
            interval_cs: 100,
            checksum: ChecksumMode::PseudoHeader,
            own_addresses: vec![ip("192.0.2.1")],
            unicast_peers: vec![],
            virtual_addresses: ours.iter().map(|a| ip(a)).collect(),
            follow_v2: false,
        };
        validate(&bytes, &Received { src, dst, ttl: 255 }, &policy)
    }

    #[test]
    fn an_advert_with_another_address_set_is_a_clash() {
        let ours = ["192.0.2.97", "192.0.2.98"];
        // Same set, any order: ours.
        assert!(check(Version::V3, 100, &["192.0.2.98", "192.0.2.97"], &ours).is_ok());
        // Ours plus others: that master serves all of ours, follow it.
        assert!(check(
            Version::V3,
            100,
            &["192.0.2.99", "192.0.2.97", "192.0.2.98"],
            &ours
        )
        .is_ok());
        // Disjoint, a subset, none at all: another virtual router, at any priority, in v2 and v3.
        for version in [Version::V2, Version::V3] {
            for priority in [1, 254, 255] {
                for theirs in [&["192.0.2.50"][..], &["192.0.2.97"][..], &[][..]] {
                    let got = check(version, priority, theirs, &ours);
                    let Err(reason) = got else {
                        panic!("{version:?} priority {priority} listing {theirs:?} was accepted");
                    };
                    assert_eq!(reason.label(), "address_set");
                    let DropReason::AddressSet { missing, advert } = &reason else {
                        unreachable!()
                    };
                    assert!(ours.contains(&missing.to_string().as_str()));
                    assert_eq!(advert.priority, priority);
                    assert!(reason.to_string().starts_with("VRID clash"), "{reason}");
                }
            }
        }
        // Without virtual addresses nothing is compared.
        assert!(check(Version::V3, 100, &["192.0.2.50"], &[]).is_ok());
    }

    #[test]
    fn a_v3_policy_that_follows_v2_accepts_a_v2_advert_at_any_interval() {
        let (src, dst) = (ip("192.0.2.9"), IpAddr::V4(packet::GROUP_V4));
        let v2 = Advert {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            interval_cs: 300,
            addresses: vec![ip("192.0.2.97")].into(),
        };
        let bytes = packet::encode(&v2, src, dst, ChecksumMode::PseudoHeader);
        let mut policy = RxPolicy {
            vrid: 51,
            version: Version::V3,
            interval_cs: 100,
            checksum: ChecksumMode::PseudoHeader,
            own_addresses: vec![],
            unicast_peers: vec![],
            virtual_addresses: vec![ip("192.0.2.97")],
            follow_v2: false,
        };
        let rx = Received { src, dst, ttl: 255 };
        assert_eq!(validate(&bytes, &rx, &policy), Err(DropReason::Version));
        policy.follow_v2 = true;
        assert_eq!(
            validate(&bytes, &rx, &policy).map(|a| a.version),
            Ok(Version::V2)
        );
        // Once followed, the policy is v2 at the router's interval: the usual v2 rules.
        policy.version = Version::V2;
        policy.follow_v2 = false;
        assert_eq!(
            validate(&bytes, &rx, &policy),
            Err(DropReason::Interval {
                got_cs: 300,
                ours_cs: 100
            })
        );
        policy.interval_cs = 300;
        assert!(validate(&bytes, &rx, &policy).is_ok());
    }

    #[test]
    fn a_clash_message_lists_what_the_advert_carried() {
        let got = check(
            Version::V3,
            200,
            &["192.0.2.50", "192.0.2.51"],
            &["192.0.2.97"],
        );
        assert_eq!(
            got.unwrap_err().to_string(),
            "VRID clash: the advert does not list our address 192.0.2.97 (it lists 192.0.2.50, 192.0.2.51)"
        );
    }

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
