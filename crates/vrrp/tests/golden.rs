//! Golden bytes from Debian's keepalived 2.2.7, captured by `tests/fixtures/capture.sh` in network
//! namespaces (keepalived MASTER in h1, tcpdump in h2). Each fixture must decode to what keepalived
//! was configured with and re-encode byte-identical with the same source and destination.

use std::net::IpAddr;
use std::path::PathBuf;

use vrrp::packet::{decode, encode, Advert, ChecksumMode, DecodeError, Version};
use vrrp::validate::{validate, Received, RxPolicy};

struct Fixture {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    vrrp: Vec<u8>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn load(name: &str) -> Fixture {
    let path = dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let field = |key: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name}: no `{key}` line"))
            .trim()
            .to_owned()
    };
    Fixture {
        src: field("src").parse().unwrap(),
        dst: field("dst").parse().unwrap(),
        ttl: field("ttl").parse().unwrap(),
        vrrp: hex(&field("vrrp")),
    }
}

/// (fixture, version, vrid, interval_cs, addresses) as configured in capture.sh; each fixture also
/// has a `-prio0` twin (keepalived's shutdown advert). Priority 150 unless prio0.
const CASES: &[(&str, Version, u8, u16, &[&str])] = &[
    (
        "v2-ipv4-1s",
        Version::V2,
        51,
        100,
        &["192.0.2.97", "192.0.2.98"],
    ),
    ("v3-ipv4-1s", Version::V3, 52, 100, &["192.0.2.97"]),
    (
        "v3-ipv4-10ms",
        Version::V3,
        53,
        1,
        &["192.0.2.99", "192.0.2.100"],
    ),
    ("v3-ipv6-1s", Version::V3, 54, 100, &["2001:db8::97"]),
    ("v3-ipv6-10ms", Version::V3, 55, 1, &["2001:db8::99"]),
];

fn each_case(mut f: impl FnMut(&str, Fixture, Advert)) {
    for &(name, version, vrid, interval_cs, addrs) in CASES {
        for (suffix, priority) in [("", 150u8), ("-prio0", 0)] {
            let name = format!("{name}{suffix}");
            let expected = Advert {
                version,
                vrid,
                priority,
                interval_cs,
                addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            };
            f(&name, load(&name), expected);
        }
    }
}

#[test]
fn keepalived_adverts_decode_to_the_configured_fields() {
    each_case(|name, fx, expected| {
        assert_eq!(fx.ttl, 255, "{name}: keepalived sends TTL/hop limit 255");
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::AcceptEither] {
            let got = decode(&fx.vrrp, fx.src, fx.dst, mode);
            assert_eq!(got.as_ref(), Ok(&expected), "{name} ({mode:?})");
        }
    });
}

#[test]
fn keepalived_adverts_re_encode_byte_identical() {
    each_case(|name, fx, expected| {
        let bytes = encode(&expected, fx.src, fx.dst, ChecksumMode::PseudoHeader);
        assert_eq!(bytes, fx.vrrp, "{name}");
    });
}

#[test]
fn keepalived_v3_ipv4_uses_the_pseudo_header() {
    // keepalived 2.2 includes the IPv4 pseudo-header: a strict RFC 9568 receiver rejects it.
    each_case(|name, fx, expected| {
        let got = decode(&fx.vrrp, fx.src, fx.dst, ChecksumMode::MessageOnly);
        match (expected.version, fx.src) {
            (Version::V3, IpAddr::V4(_)) => {
                assert_eq!(got, Err(DecodeError::Checksum), "{name}")
            }
            _ => assert_eq!(got, Ok(expected), "{name}"),
        }
    });
}

#[test]
fn keepalived_adverts_pass_validation() {
    each_case(|name, fx, expected| {
        let policy = RxPolicy {
            vrid: expected.vrid,
            version: expected.version,
            interval_cs: expected.interval_cs,
            checksum: ChecksumMode::AcceptEither,
            own_addresses: vec!["192.0.2.2".parse().unwrap(), "2001:db8::2".parse().unwrap()],
            unicast_peers: vec![],
            virtual_addresses: expected.addresses.to_vec(),
            follow_v2: false,
        };
        let rx = Received {
            src: fx.src,
            dst: fx.dst,
            ttl: fx.ttl,
        };
        assert_eq!(validate(&fx.vrrp, &rx, &policy), Ok(expected), "{name}");
    });
}

#[test]
fn every_fixture_file_is_checked() {
    let mut known: Vec<String> = CASES
        .iter()
        .flat_map(|c| [format!("{}.hex", c.0), format!("{}-prio0.hex", c.0)])
        .collect();
    known.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".hex"))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, known);
}
