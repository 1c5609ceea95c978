//! Properties of the auth_hmac trailer and PASS through the codec and validation: a signed advert
//! round-trips and verifies, any single bit flip is refused, and no input panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;
use vrrp::auth::{AntiReplay, Auth, AuthState, HmacConfig, Key, Mode};
use vrrp::packet::{self, decode_parts, encode_auth_into, Advert, ChecksumMode, Version};
use vrrp::validate::{validate_auth, Received, RxPolicy};

const NOW: Duration = Duration::from_secs(1_800_000_000);

fn hmac_state(mode: Mode, anti_replay: AntiReplay) -> AuthState {
    AuthState::new(Auth::Hmac(HmacConfig {
        keys: vec![Key {
            id: 7,
            bytes: vec![0x5a; 32],
        }],
        active_key: 7,
        mode,
        anti_replay,
    }))
}

fn policy(a: &Advert) -> RxPolicy {
    RxPolicy {
        vrid: a.vrid,
        version: a.version,
        interval_cs: a.interval_cs,
        checksum: ChecksumMode::PseudoHeader,
        own_addresses: vec![],
        unicast_peers: vec![],
        virtual_addresses: vec![],
        follow_v2: false,
    }
}

/// An advert (v2 over IPv4 or v3 over either family) with its source and the group it goes to.
fn arb_advert() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    let v4 = (
        prop::collection::vec(any::<u32>(), 0..=8),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(|(a, s, v2)| {
            (
                a.into_iter()
                    .map(|x| IpAddr::V4(Ipv4Addr::from(x)))
                    .collect::<Vec<_>>(),
                IpAddr::V4(Ipv4Addr::from(s)),
                IpAddr::V4(packet::GROUP_V4),
                v2,
            )
        });
    let v6 = (prop::collection::vec(any::<u128>(), 0..=8), any::<u128>()).prop_map(|(a, s)| {
        (
            a.into_iter()
                .map(|x| IpAddr::V6(Ipv6Addr::from(x)))
                .collect::<Vec<_>>(),
            IpAddr::V6(Ipv6Addr::from(s)),
            IpAddr::V6(packet::GROUP_V6),
            false,
        )
    });
    (prop_oneof![v4, v6], 1u8..=255, any::<u8>(), 1u16..=40).prop_map(
        |((addresses, src, dst, v2), vrid, priority, secs)| {
            let version = if v2 { Version::V2 } else { Version::V3 };
            (
                Advert {
                    version,
                    vrid,
                    priority,
                    interval_cs: secs * 100,
                    addresses: addresses.into(),
                },
                src,
                dst,
            )
        },
    )
}

fn signed(a: &Advert, src: IpAddr, dst: IpAddr, sender: &mut AuthState) -> Vec<u8> {
    let mut out = Vec::new();
    let tx = sender.tx(NOW);
    encode_auth_into(a, src, dst, ChecksumMode::PseudoHeader, tx, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn signed_adverts_round_trip_and_verify((a, src, dst) in arb_advert()) {
        let mut sender = hmac_state(Mode::Enforce, AntiReplay::Time { window_secs: 5 });
        let bytes = signed(&a, src, dst, &mut sender);
        let parts = decode_parts(&bytes, src, dst, ChecksumMode::PseudoHeader, true, 0).unwrap();
        prop_assert_eq!(&parts.advert, &a);
        prop_assert_eq!(parts.trailer.map(<[u8]>::len), Some(vrrp::auth::TRAILER_LEN));
        let mut receiver = hmac_state(Mode::Enforce, AntiReplay::Time { window_secs: 5 });
        let rx = Received { src, dst, ttl: 255 };
        prop_assert_eq!(validate_auth(&bytes, &rx, &policy(&a), &mut receiver, NOW), Ok(a.clone()));
        // The same bytes again are a replay.
        let again = validate_auth(&bytes, &rx, &policy(&a), &mut receiver, NOW);
        prop_assert_eq!(again.unwrap_err().label(), "auth_replay");
    }

    #[test]
    fn any_single_bit_flip_of_a_signed_advert_is_refused(
        (a, src, dst) in arb_advert(),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut sender = hmac_state(Mode::Enforce, AntiReplay::Monotonic);
        let mut bytes = signed(&a, src, dst, &mut sender);
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let mut receiver = hmac_state(Mode::Permissive, AntiReplay::Monotonic);
        let rx = Received { src, dst, ttl: 255 };
        let mut p = policy(&a);
        p.vrid = bytes[1];
        prop_assert!(validate_auth(&bytes, &rx, &p, &mut receiver, NOW).is_err(), "bit {} accepted", i);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        v6 in any::<bool>(),
        which in 0u8..4,
        vrid in any::<u8>(),
    ) {
        let (src, dst) = if v6 {
            (IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V6(packet::GROUP_V6))
        } else {
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(packet::GROUP_V4))
        };
        let mut state = match which {
            0 => AuthState::new(Auth::Pass(vrrp::auth::pass_bytes(b"1234"))),
            1 => hmac_state(Mode::Enforce, AntiReplay::Time { window_secs: 5 }),
            2 => hmac_state(Mode::ReceiveOnly, AntiReplay::Monotonic),
            _ => AuthState::default(),
        };
        let _ = decode_parts(&bytes, src, dst, ChecksumMode::AcceptEither, true, 1);
        let a = Advert { version: Version::V3, vrid, priority: 100, interval_cs: 100, addresses: vec![].into() };
        for version in [Version::V2, Version::V3] {
            let mut p = policy(&a);
            p.version = version;
            let _ = validate_auth(&bytes, &Received { src, dst, ttl: 255 }, &p, &mut state, NOW);
        }
    }
}
