//! Unit tests of [`super`] with keepalived 2.4.3's wire vectors (`test/auth_hmac_test.c`, the
//! draft's appendix images: key 00..1f, VRID 51, priority 200, sequence 0x6800000080000000).

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::packet::{self, Advert, ChecksumMode, TxAuth};

const IPV4_VEC: &str =
    "3133c80100644402c00002640101000068000000800000001b84bc4e8e43892dc6d98448f8ee2265";
const IPV6_VEC: &str = "3133c8010064a2e9fe800000000000000000000000000100010100006800000080000000c8c56146ebfd66ee10ec4d8186461b78";
const SEQ: u64 = 0x6800_0000_8000_0000;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key1() -> Key {
    Key {
        id: 1,
        bytes: (0u8..32).collect(),
    }
}

fn cfg(anti_replay: AntiReplay) -> HmacConfig {
    HmacConfig {
        keys: vec![key1()],
        active_key: 1,
        mode: Mode::Enforce,
        anti_replay,
    }
}

/// Verify `img` (message of `mlen` bytes + trailer) from `src` on VRID `vrid` with a fresh receiver.
fn check(
    img: &[u8],
    mlen: usize,
    src: &str,
    vrid: u8,
    anti: AntiReplay,
    now: Duration,
) -> Result<i64, AuthError> {
    verify(
        &cfg(anti),
        &mut ReplayTable::default(),
        Version::V3,
        vrid,
        ip(src),
        &img[..mlen],
        &img[mlen..],
        now,
    )
}

fn advert(addr: &str) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority: 200,
        interval_cs: 100,
        addresses: vec![ip(addr)].into(),
    }
}

#[test]
fn keepalived_vectors_verify() {
    let t = Duration::ZERO;
    assert_eq!(
        check(
            &hex(IPV4_VEC),
            12,
            "198.51.100.10",
            51,
            AntiReplay::Monotonic,
            t
        ),
        Ok(0)
    );
    assert_eq!(
        check(&hex(IPV6_VEC), 24, "fe80::10", 51, AntiReplay::Monotonic, t),
        Ok(0)
    );
}

#[test]
fn we_encode_the_keepalived_vectors_byte_for_byte() {
    let key = key1();
    let mut out = Vec::new();
    // IPv4: the RFC 9568 message-only checksum, trailer not covered.
    packet::encode_auth_into(
        &advert("192.0.2.100"),
        ip("198.51.100.10"),
        IpAddr::V4(packet::GROUP_V4),
        ChecksumMode::MessageOnly,
        TxAuth::Hmac {
            key: &key,
            seq: SEQ,
        },
        &mut out,
    );
    assert_eq!(out, hex(IPV4_VEC));
    // IPv6: the transport checksum for destination fe80::20 covers the trailer.
    packet::encode_auth_into(
        &advert("fe80::100"),
        ip("fe80::10"),
        ip("fe80::20"),
        ChecksumMode::PseudoHeader,
        TxAuth::Hmac {
            key: &key,
            seq: SEQ,
        },
        &mut out,
    );
    assert_eq!(out, hex(IPV6_VEC));
    // And both decode again, split into message and trailer.
    let parts = packet::decode_parts(
        &out,
        ip("fe80::10"),
        ip("fe80::20"),
        ChecksumMode::PseudoHeader,
        true,
        0,
    )
    .unwrap();
    assert_eq!(parts.advert, advert("fe80::100"));
    assert_eq!(parts.message.len(), 24);
    assert_eq!(parts.trailer, Some(&out[24..]));
    // Without the trailer allowed it is a length error, as in keepalived without auth_hmac.
    assert!(packet::decode(
        &out,
        ip("fe80::10"),
        ip("fe80::20"),
        ChecksumMode::PseudoHeader
    )
    .is_err());
}

#[test]
fn keepalived_mutations() {
    let img = hex(IPV6_VEC);
    let trailer = 24;
    let cases: [(&str, usize, Option<&str>); 10] = [
        ("tampered priority", 2, Some("auth_bad_tag")),
        ("tampered advert interval", 4, Some("auth_bad_tag")),
        ("tampered checksum", 6, None),
        ("tampered vip", 8 + 15, Some("auth_bad_tag")),
        ("unsupported ext type", trailer, Some("auth_malformed")),
        ("unknown key id", trailer + 1, Some("auth_unknown_key")),
        ("nonzero reserved", trailer + 2, Some("auth_malformed")),
        ("tampered seconds", trailer + 4, Some("auth_bad_tag")),
        ("tampered counter", trailer + 10, Some("auth_bad_tag")),
        ("tampered hmac", trailer + 12, Some("auth_bad_tag")),
    ];
    for (what, off, want) in cases {
        let mut buf = img.clone();
        buf[off] ^= 1;
        let got = check(
            &buf,
            24,
            "fe80::10",
            51,
            AntiReplay::Monotonic,
            Duration::ZERO,
        );
        assert_eq!(got.err().map(|e| e.label()), want, "{what}");
    }
    // The pseudo-header binds the source and the VRID.
    assert_eq!(
        check(
            &img,
            24,
            "fe80::20",
            51,
            AntiReplay::Monotonic,
            Duration::ZERO
        ),
        Err(AuthError::BadTag)
    );
    assert_eq!(
        check(
            &img,
            24,
            "fe80::10",
            52,
            AntiReplay::Monotonic,
            Duration::ZERO
        ),
        Err(AuthError::BadTag)
    );
    // A wrong key of the right id.
    let mut other = cfg(AntiReplay::Monotonic);
    other.keys[0].bytes[0] ^= 0xff;
    let got = verify(
        &other,
        &mut ReplayTable::default(),
        Version::V3,
        51,
        ip("fe80::10"),
        &img[..24],
        &img[24..],
        Duration::ZERO,
    );
    assert_eq!(got, Err(AuthError::BadTag));
    // The version is bound too.
    let got = verify(
        &cfg(AntiReplay::Monotonic),
        &mut ReplayTable::default(),
        Version::V2,
        51,
        ip("fe80::10"),
        &img[..24],
        &img[24..],
        Duration::ZERO,
    );
    assert_eq!(got, Err(AuthError::BadTag));
    // A short trailer is malformed, never a panic.
    assert!(matches!(
        check(
            &img[..40],
            24,
            "fe80::10",
            51,
            AntiReplay::Monotonic,
            Duration::ZERO
        ),
        Err(AuthError::Malformed { .. })
    ));
}

/// A v3 IPv4 advert signed at wall-clock `now` by `seq`.
fn signed_at(seq: &mut Sequencer, now: Duration, anti: AntiReplay) -> Vec<u8> {
    let key = key1();
    let mut out = Vec::new();
    packet::encode_auth_into(
        &advert("192.0.2.100"),
        ip("192.0.2.1"),
        IpAddr::V4(packet::GROUP_V4),
        ChecksumMode::PseudoHeader,
        TxAuth::Hmac {
            key: &key,
            seq: seq.next(now, anti),
        },
        &mut out,
    );
    out
}

const NOW: Duration = Duration::from_secs(1_800_000_000);

#[test]
fn replay_and_freshness() {
    let anti = AntiReplay::Time { window_secs: 5 };
    let c = cfg(anti);
    let mut table = ReplayTable::default();
    let mut seq = Sequencer::default();
    let run = |table: &mut ReplayTable, img: &[u8], now: Duration| {
        verify(
            &c,
            table,
            Version::V3,
            51,
            ip("192.0.2.1"),
            &img[..12],
            &img[12..],
            now,
        )
    };
    let first = signed_at(&mut seq, NOW, anti);
    assert_eq!(run(&mut table, &first, NOW), Ok(0));
    assert_eq!(run(&mut table, &first, NOW), Err(AuthError::Replay));
    // The same copy is fine at a second receiver (one advert, several unicast peers).
    assert_eq!(run(&mut ReplayTable::default(), &first, NOW), Ok(0));
    // Sent in the same clock tick: the counter grows.
    let second = signed_at(&mut seq, NOW, anti);
    assert_eq!(run(&mut table, &second, NOW), Ok(0));
    // Replayed later, outside the window: stale (before the digest), with the skew.
    assert_eq!(
        run(&mut table, &first, NOW + Duration::from_secs(100)),
        Err(AuthError::Stale {
            skew_secs: 100,
            window_secs: 5
        })
    );
    assert!(matches!(
        run(&mut table, &first, NOW - Duration::from_secs(100)),
        Err(AuthError::Stale { .. })
    ));
    // Within the window but older than the last accepted: a replay.
    assert_eq!(
        run(&mut table, &first, NOW + Duration::from_secs(2)),
        Err(AuthError::Replay)
    );
    // Monotonic mode has no window: an old capture is refused only by the sequence.
    let mono = cfg(AntiReplay::Monotonic);
    let mut t2 = ReplayTable::default();
    let v = |t: &mut ReplayTable, img: &[u8], now| {
        verify(
            &mono,
            t,
            Version::V3,
            51,
            ip("192.0.2.1"),
            &img[..12],
            &img[12..],
            now,
        )
    };
    assert_eq!(v(&mut t2, &second, NOW + Duration::from_secs(1000)), Ok(0));
    assert_eq!(
        v(&mut t2, &first, NOW + Duration::from_secs(1000)),
        Err(AuthError::Replay)
    );
}

#[test]
fn a_stranded_mark_expires_in_time_mode_only() {
    let window = AntiReplay::Time { window_secs: 5 };
    let src = ip("192.0.2.1");
    let now = NOW.as_secs();
    let mut t = ReplayTable::default();
    assert!(t.accept(src, (now + 3600) << 32, now + 3600, window));
    // An hour later on our clock the mark is outside the window: forgotten.
    assert!(t.accept(src, now << 32, now, window));
    assert!(!t.accept(src, now << 32, now, window));
    let mut m = ReplayTable::default();
    assert!(m.accept(src, (now + 7200) << 32, now, AntiReplay::Monotonic));
    assert!(!m.accept(src, (now + 3600) << 32, now, AntiReplay::Monotonic));
}

#[test]
fn the_sequencer_follows_keepalived() {
    let window = AntiReplay::Time { window_secs: 5 };
    // Time mode: a sequence stranded an hour ahead restarts from the clock.
    let mut s = Sequencer {
        last: (NOW.as_secs() + 3600) << 32,
    };
    assert_eq!(s.next(NOW, window) >> 32, NOW.as_secs());
    // Monotonic: it keeps growing by one.
    let mut s = Sequencer {
        last: (NOW.as_secs() + 3600) << 32,
    };
    let got = s.next(NOW, AntiReplay::Monotonic);
    assert_eq!(got >> 32, NOW.as_secs() + 3600);
    assert_eq!(got & 0xffff, 1);
    // The sub-second field is the binary fraction.
    assert_eq!(
        clock_seq(Duration::new(7, 500_000_000)),
        7 << 32 | 0x8000 << 16
    );
}

#[test]
fn the_replay_table_is_bounded() {
    let mut t = ReplayTable::default();
    for i in 0..100u32 {
        let src = IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + i));
        assert!(t.accept(src, 1, 0, AntiReplay::Monotonic));
    }
    assert_eq!(t.senders.len(), REPLAY_SENDERS);
    // The most recent senders are remembered.
    assert_eq!(
        t.last(IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + 99))),
        Some(1)
    );
}

#[test]
fn pass_and_modes_through_validate() {
    use crate::validate::{validate_auth, Received, RxPolicy};
    let v2 = Advert {
        version: Version::V2,
        ..advert("192.0.2.100")
    };
    let (src, dst) = (ip("192.0.2.9"), IpAddr::V4(packet::GROUP_V4));
    let rx = Received { src, dst, ttl: 255 };
    let policy = |version| RxPolicy {
        vrid: 51,
        version,
        interval_cs: 100,
        checksum: ChecksumMode::PseudoHeader,
        own_addresses: vec![],
        unicast_peers: vec![],
        virtual_addresses: vec![ip("192.0.2.100")],
        follow_v2: false,
    };
    let enc = |a: &Advert, auth: TxAuth<'_>| {
        let mut out = Vec::new();
        packet::encode_auth_into(a, src, dst, ChecksumMode::PseudoHeader, auth, &mut out);
        out
    };
    let label = |r: Result<Advert, crate::validate::DropReason>| r.err().map(|e| e.label());
    // PASS: the right password passes, another is auth_pass_mismatch, none is auth_type.
    let pw = pass_bytes(b"1234");
    let mut pass = AuthState::new(Auth::Pass(pw));
    let ok = enc(&v2, TxAuth::Pass(&pw));
    assert_eq!(&ok[12..20], b"1234\0\0\0\0");
    assert_eq!(
        label(validate_auth(
            &ok,
            &rx,
            &policy(Version::V2),
            &mut pass,
            NOW
        )),
        None
    );
    let wrong = enc(&v2, TxAuth::Pass(&pass_bytes(b"12345")));
    assert_eq!(
        label(validate_auth(
            &wrong,
            &rx,
            &policy(Version::V2),
            &mut pass,
            NOW
        )),
        Some("auth_pass_mismatch")
    );
    let none = enc(&v2, TxAuth::None);
    assert_eq!(
        label(validate_auth(
            &none,
            &rx,
            &policy(Version::V2),
            &mut pass,
            NOW
        )),
        Some("auth_type")
    );
    // Without PASS configured, a PASS advert is auth_type (as before).
    assert_eq!(
        label(crate::validate::validate(&ok, &rx, &policy(Version::V2))),
        Some("auth_type")
    );

    // auth_hmac modes: enforce refuses an unsigned advert, permissive and receive-only accept it;
    // every mode refuses a bad trailer.
    let key = key1();
    let mut seq = Sequencer::default();
    for version in [Version::V2, Version::V3] {
        let a = Advert {
            version,
            ..advert("192.0.2.100")
        };
        let unsigned = enc(&a, TxAuth::None);
        let mut forged = enc(
            &a,
            TxAuth::Hmac {
                key: &key,
                seq: seq.next(NOW, AntiReplay::Monotonic),
            },
        );
        let n = forged.len();
        forged[n - 1] ^= 1;
        for (mode, unsigned_ok) in [
            (Mode::Enforce, false),
            (Mode::Permissive, true),
            (Mode::ReceiveOnly, true),
        ] {
            let mut c = cfg(AntiReplay::Time { window_secs: 5 });
            c.mode = mode;
            let mut st = AuthState::new(Auth::Hmac(c));
            let good = {
                let mut out = Vec::new();
                let tx = match st.tx(NOW) {
                    TxAuth::None => TxAuth::Hmac {
                        key: &key,
                        seq: seq.next(NOW, AntiReplay::Monotonic),
                    },
                    other => other,
                };
                packet::encode_auth_into(&a, src, dst, ChecksumMode::PseudoHeader, tx, &mut out);
                out
            };
            let p = policy(version);
            assert_eq!(
                label(validate_auth(&good, &rx, &p, &mut st, NOW)),
                None,
                "{mode:?} {version:?}"
            );
            assert_eq!(
                label(validate_auth(&good, &rx, &p, &mut st, NOW)),
                Some("auth_replay")
            );
            let want = if unsigned_ok {
                None
            } else {
                Some("auth_missing")
            };
            assert_eq!(
                label(validate_auth(&unsigned, &rx, &p, &mut st, NOW)),
                want,
                "{mode:?}"
            );
            assert_eq!(
                label(validate_auth(&forged, &rx, &p, &mut st, NOW)),
                Some("auth_bad_tag")
            );
        }
    }
}

#[test]
fn receive_only_sends_no_trailer() {
    let mut c = cfg(AntiReplay::Monotonic);
    c.mode = Mode::ReceiveOnly;
    let mut st = AuthState::new(Auth::Hmac(c));
    assert!(matches!(st.tx(NOW), TxAuth::None));
    let mut c = cfg(AntiReplay::Monotonic);
    c.mode = Mode::Permissive;
    let mut st = AuthState::new(Auth::Hmac(c));
    assert!(matches!(st.tx(NOW), TxAuth::Hmac { .. }));
}

#[test]
fn key_values_read_like_keepalived() {
    let hex32 = format!("hex:{}\n", "0f".repeat(32));
    assert_eq!(parse_key_value(hex32.as_bytes()).unwrap(), vec![0x0f; 32]);
    let ascii = "a".repeat(40);
    assert_eq!(parse_key_value(ascii.as_bytes()).unwrap().len(), 40);
    assert!(parse_key_value(b"short").unwrap_err().contains("32-64"));
    assert!(
        parse_key_value(format!("hex:{}", "0".repeat(63)).as_bytes())
            .unwrap_err()
            .contains("even")
    );
    assert!(
        parse_key_value(format!("hex:{}", "zz".repeat(32)).as_bytes())
            .unwrap_err()
            .contains("non-hex")
    );
    assert!(parse_key_value("x".repeat(65).as_bytes()).is_err());
}

#[test]
fn a_skew_past_half_the_window_is_reported() {
    let anti = AntiReplay::Time { window_secs: 10 };
    let mut st = AuthState::new(Auth::Hmac(cfg(anti)));
    let key = key1();
    let src = ip("192.0.2.1");
    let dst = IpAddr::V4(packet::GROUP_V4);
    let mut seq = Sequencer::default();
    let mut at = |sender_clock: Duration| {
        let mut out = Vec::new();
        let s = seq.next(sender_clock, anti);
        packet::encode_auth_into(
            &advert("192.0.2.100"),
            src,
            dst,
            ChecksumMode::PseudoHeader,
            TxAuth::Hmac { key: &key, seq: s },
            &mut out,
        );
        out
    };
    let near = at(NOW - Duration::from_secs(3));
    let parts = packet::decode_parts(&near, src, dst, ChecksumMode::PseudoHeader, true, 0).unwrap();
    assert_eq!(st.check(&parts, src, NOW), Ok(()));
    assert_eq!(st.skew_warning, None);
    let far = at(NOW + Duration::from_secs(7));
    let parts = packet::decode_parts(&far, src, dst, ChecksumMode::PseudoHeader, true, 0).unwrap();
    assert_eq!(st.check(&parts, src, NOW), Ok(()));
    assert_eq!(st.skew_warning.take(), Some((src, -7)));
}

#[test]
fn debug_shows_no_secret() {
    let pass = format!("{:?}", Auth::Pass(pass_bytes(b"hunter2")));
    assert!(!pass.contains("104") && pass.contains("redacted"), "{pass}");
    let hmac = format!("{:?}", Auth::Hmac(cfg(AntiReplay::Monotonic)));
    assert!(hmac.contains("32 bytes") && !hmac.contains("31"), "{hmac}");
}

#[test]
fn describe_names_the_mode_and_keys_but_never_a_secret() {
    assert_eq!(Auth::None.describe(), None);
    let pass = Auth::Pass(*b"s3cret\0\0").describe().unwrap();
    assert!(
        pass.starts_with("pass") && !pass.contains("s3cret"),
        "{pass}"
    );
    let hmac = Auth::Hmac(cfg(AntiReplay::Time { window_secs: 5 }))
        .describe()
        .unwrap();
    assert_eq!(
        hmac,
        "hmac enforce, signs with key 1 (keys 1), anti-replay time window 5s"
    );
    let key_hex: String = key1().bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!hmac.contains(&key_hex[..8]));
}
