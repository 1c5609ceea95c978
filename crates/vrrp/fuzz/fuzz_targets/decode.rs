//! decode() and validate() on arbitrary bytes with arbitrary addresses, TTL and checksum modes.
//! Must never panic; an accepted advert must re-encode to bytes that decode to the same advert.
//! Also through authentication: decode_parts with the auth_hmac trailer and validate_auth with PASS
//! and HMAC states, which must never panic either.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vrrp::packet::{decode, encode, ChecksumMode, Version, GROUP_V4, GROUP_V6};
use vrrp::auth::{AntiReplay, Auth, AuthState, HmacConfig, Key, Mode};
use vrrp::packet::decode_parts;
use vrrp::validate::{peek_vrid, validate, validate_auth, Received, RxPolicy};

#[derive(Debug, Arbitrary)]
enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
    Group4,
    Group6,
}

impl Addr {
    fn ip(&self) -> IpAddr {
        match self {
            Addr::V4(o) => IpAddr::V4(Ipv4Addr::from(*o)),
            Addr::V6(o) => IpAddr::V6(Ipv6Addr::from(*o)),
            Addr::Group4 => GROUP_V4.into(),
            Addr::Group6 => GROUP_V6.into(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    src: Addr,
    dst: Addr,
    mode: u8,
    ttl: u8,
    vrid: u8,
    v2: bool,
    interval_cs: u16,
    own: Vec<Addr>,
    peers: Vec<Addr>,
    /// 0: leave the bytes alone; 1: fix a message-only checksum; 2: fix a pseudo-header checksum.
    fix: u8,
    /// 0: no auth; 1: PASS; 2-4: HMAC enforce, permissive, receive-only.
    auth: u8,
    now_secs: u32,
    bytes: Vec<u8>,
}

fn mode(m: u8) -> ChecksumMode {
    match m % 3 {
        0 => ChecksumMode::PseudoHeader,
        1 => ChecksumMode::MessageOnly,
        _ => ChecksumMode::AcceptEither,
    }
}

fuzz_target!(|input: Input| {
    let mut input = input;
    let (src, dst, mode) = (input.src.ip(), input.dst.ip(), mode(input.mode));
    match input.fix % 3 {
        1 => fix_checksum(&mut input.bytes, src, dst, false),
        2 => fix_checksum(&mut input.bytes, src, dst, true),
        _ => {}
    }
    if let Ok(advert) = decode(&input.bytes, src, dst, mode) {
        let again = encode(&advert, src, dst, mode);
        assert_eq!(again.len(), input.bytes.len());
        assert_eq!(decode(&again, src, dst, mode).as_ref(), Ok(&advert));
    }
    let _ = peek_vrid(&input.bytes);
    let policy = RxPolicy {
        vrid: input.vrid,
        version: if input.v2 { Version::V2 } else { Version::V3 },
        interval_cs: input.interval_cs,
        checksum: mode,
        own_addresses: input.own.iter().map(Addr::ip).collect(),
        unicast_peers: input.peers.iter().map(Addr::ip).collect(),
        virtual_addresses: vec![],
    };
    let rx = Received {
        src,
        dst,
        ttl: input.ttl,
    };
    if let Ok(advert) = validate(&input.bytes, &rx, &policy) {
        assert_eq!(advert.vrid, policy.vrid);
        assert_eq!(advert.version, policy.version);
        assert!(!policy.own_addresses.contains(&src));
    }
    if let Err(reason) = validate(&input.bytes, &rx, &policy) {
        assert!(!reason.label().is_empty());
    }
    let _ = decode_parts(&input.bytes, src, dst, mode, true, input.auth & 1);
    let hmac = |mode| {
        Auth::Hmac(HmacConfig {
            keys: vec![Key { id: 1, bytes: vec![7; 32] }],
            active_key: 1,
            mode,
            anti_replay: AntiReplay::Time { window_secs: 5 },
        })
    };
    let config = match input.auth % 5 {
        0 => Auth::None,
        1 => Auth::Pass(*b"1234\0\0\0\0"),
        2 => hmac(Mode::Enforce),
        3 => hmac(Mode::Permissive),
        _ => hmac(Mode::ReceiveOnly),
    };
    let mut state = AuthState::new(config);
    let now = std::time::Duration::from_secs(u64::from(input.now_secs));
    if let Err(reason) = validate_auth(&input.bytes, &rx, &policy, &mut state, now) {
        assert!(!reason.label().is_empty());
    }
});

/// Make the checksum right (v3 pseudo-header form when `pseudo`), so the fuzzer gets past it.
fn fix_checksum(bytes: &mut [u8], src: IpAddr, dst: IpAddr, pseudo: bool) {
    if bytes.len() < 8 {
        return;
    }
    bytes[6] = 0;
    bytes[7] = 0;
    let words = |b: &[u8]| -> u64 {
        b.chunks(2)
            .map(|c| u64::from(c[0]) << 8 | u64::from(*c.get(1).unwrap_or(&0)))
            .sum()
    };
    let octets = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut sum = words(bytes);
    if pseudo {
        sum += words(&octets(src)) + words(&octets(dst)) + 112 + bytes.len() as u64;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    bytes[6..8].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}
