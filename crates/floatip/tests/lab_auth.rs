//! Advert authentication through the real binary, against real peers, in network namespaces:
//! keepalived 2.4.3 (upstream, `auth_hmac`) with the same key elects and fails over both ways with
//! floatip, VRRPv3 and v2; a third host's unsigned priority-255 advert, one signed with a wrong key
//! or an unknown key id, and a replayed capture of a real signed advert are dropped, counted by
//! reason, and the VIP stays where it is; `mode = "permissive"` follows an unsigned master during a
//! rollout; a key rotation (add, switch, remove) with keepalived is hitless; Debian's keepalived
//! 2.2.7 with `auth_type PASS` interoperates with floatip's `pass`.
//!
//! Needs root (else SKIPPED unless CI=true). The 2.4.3 tests need the peer: SKIPPED loudly when it
//! is missing (a failure under CI=true only when shared/vendor/build-keepalived.sh is on the
//! machine, see `require_keepalived_upstream`).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use floatip_lab::{VrrpWire, VRRP_GROUP};
use vrrp::auth::{AntiReplay, Key, Sequencer};
use vrrp::packet::{self, Advert, ChecksumMode, TxAuth, Version};

/// The shared key (32 bytes), as keepalived and floatip read it from a file.
const KEY: [u8; 32] = [
    0x3c, 0x91, 0x5e, 0x07, 0xa2, 0x6b, 0xd4, 0x18, 0x8f, 0x20, 0x77, 0xc5, 0x4e, 0x39, 0xb1, 0x0a,
    0x65, 0xf2, 0x1d, 0x8c, 0x93, 0x2e, 0x57, 0xb8, 0x04, 0xca, 0x71, 0x3f, 0xe6, 0x29, 0x9d, 0x50,
];

/// Writes the key file (root's, 0600) into the lab dir and returns its path.
fn key_file(lab: &Lab, name: &str, key: &[u8]) -> PathBuf {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let path = write_file(lab, name, &format!("hex:{hex}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// floatip's `[instance.auth]` lines for hmac with key 1 in `file`, plus `more` (mode, window).
fn floatip_hmac(file: &std::path::Path, more: &str) -> String {
    format!(
        "\n[instance.auth]\ntype = \"hmac\"\n{more}\n[[instance.auth.key]]\nid = 1\nfile = \"{}\"\n",
        file.display()
    )
}

/// keepalived's `auth_hmac` block with key 1 from `file`, plus `more` lines.
fn keepalived_hmac(file: &std::path::Path, more: &str) -> String {
    format!(
        "  auth_hmac {{\n    key 1 file:{}\n    active_key 1\n{more}  }}\n",
        file.display()
    )
}

/// Lines of a keepalived 2.4.3 log where it refused an advert's authentication.
fn keepalived_auth_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("authentication trailer")
                || l.contains("authentication HMAC")
                || l.contains("authentication key id")
                || l.contains("too long")
                || l.contains("too short")
                || l.contains("auth_hmac")
        })
        .map(str::to_string)
        .collect()
}

/// The auth drop counters of floatip's instance `files` (label -> count), non-zero ones only.
fn auth_drops(node: &Node) -> Vec<(String, u64)> {
    let st = node.status("files");
    let mut out: Vec<(String, u64)> = st["counters"]["drops"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("auth_"))
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn drop_count(node: &Node, label: &str) -> u64 {
    node.status("files")["counters"]["drops"][label]
        .as_u64()
        .unwrap_or(0)
}

/// How long both must keep their roles for the test to believe it (several adverts).
fn watch(interval: Duration) -> Duration {
    4 * interval + Duration::from_millis(500)
}

/// How a floatip/keepalived 2.4.3 pair speaks in [`floatip_and_keepalived_243_hmac`].
#[derive(Clone, Copy)]
struct Pair {
    version: u8,
    interval: Duration,
    floatip_int: &'static str,
    ka_int: &'static str,
    v6: bool,
    unicast: bool,
}

const V3: Pair = Pair {
    version: 3,
    interval: Duration::from_millis(100),
    floatip_int: "100ms",
    ka_int: "0.1",
    v6: false,
    unicast: false,
};

/// floatip on h1 (150) and keepalived 2.4.3 on h2 (100), both hmac with one key: floatip is
/// master and keepalived backup (it accepts floatip's trailers); h1 lost -> keepalived claims;
/// h1 back -> floatip hears keepalived's signed adverts (counted as received), preempts, and
/// keepalived steps back. Neither side refuses a single advert of the other.
fn floatip_and_keepalived_243_hmac(name: &str, p: Pair) {
    if !require_root(name) || !require_keepalived_upstream(name) {
        return;
    }
    let (lab, mut hosts) = lab_with_hosts(name, 2, p.v6);
    let h2 = hosts.pop().expect("h2");
    let h1 = hosts.pop().expect("h1");
    let both = [&h1, &h2];
    let vip = if p.v6 { VIP6 } else { VIP4 };
    let key = key_file(&lab, "vrrp51.key", &KEY);
    let mut inst = if p.v6 {
        Instance::v6(150)
    } else {
        Instance::v4(150)
    };
    inst = inst
        .version(p.version)
        .interval(p.floatip_int)
        .extra(&floatip_hmac(&key, ""));
    let mut ka_extra = keepalived_hmac(&key, "");
    if p.unicast {
        inst = inst.unicast(&["192.0.2.2"]);
        ka_extra.push_str("  unicast_src_ip 192.0.2.2\n  unicast_peer {\n    192.0.2.1\n  }\n");
    }
    let vrid = inst.vrid;
    let vips = inst.addresses.clone();
    let f = Node::spawn_with(&lab, &h1, "", "debug", &[inst]);
    wait_sole_owner(&both, &h1, vip, SETTLE);
    let k = start_keepalived_upstream(
        &lab,
        &h2,
        &KaInstance {
            vrid,
            vips,
            extra: ka_extra,
            ..KaInstance::v4(100, p.version, p.ka_int)
        },
    );
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived 2.4.3 did not start as backup: {}",
        k.log()
    );
    // keepalived verifies floatip's trailers: it never claims while floatip is master.
    assert_sole_owner_for(&both, &h1, vip, watch(p.interval), SAMPLE);
    assert!(
        !k.log().contains("Entering MASTER STATE"),
        "keepalived claimed while floatip was master: {}",
        k.log()
    );

    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, vip, SETTLE);
    let name_in_status = if p.v6 { "files6" } else { "files" };
    let heard = f.status(name_in_status)["counters"]["adverts_received"]
        .as_u64()
        .unwrap_or(0);
    h1.link_up().expect("link up");
    // floatip hears keepalived's signed adverts (accepted: counted as received) and preempts.
    f.wait_status(
        name_in_status,
        "keepalived's signed adverts accepted",
        |s| s["counters"]["adverts_received"].as_u64().unwrap_or(0) > heard,
    );
    wait_sole_owner(&both, &h1, vip, SETTLE);
    assert_sole_owner_for(&both, &h1, vip, watch(p.interval), SAMPLE);
    assert!(
        k.log().matches("Entering BACKUP STATE").count() >= 2,
        "keepalived did not step back: {}",
        k.log()
    );
    let drops = &f.status(name_in_status)["counters"]["drops"];
    assert!(
        drops
            .as_object()
            .is_none_or(|m| m.keys().all(|k| !k.starts_with("auth_"))),
        "floatip refused keepalived's adverts: {drops}"
    );
    let errors = keepalived_auth_errors(&k.log());
    assert!(
        errors.is_empty(),
        "keepalived refused floatip's adverts:\n{}",
        errors.join("\n")
    );
}

#[test]
fn auth_hmac_v3_with_keepalived_243_elects_and_fails_over_both_ways() {
    floatip_and_keepalived_243_hmac(
        "auth_hmac_v3_with_keepalived_243_elects_and_fails_over_both_ways",
        V3,
    );
}

#[test]
fn auth_hmac_v2_with_keepalived_243_elects_and_fails_over_both_ways() {
    floatip_and_keepalived_243_hmac(
        "auth_hmac_v2_with_keepalived_243_elects_and_fails_over_both_ways",
        Pair {
            version: 2,
            interval: Duration::from_secs(1),
            floatip_int: "1s",
            ka_int: "1",
            ..V3
        },
    );
}

/// IPv6: the trailer is inside the kernel's transport checksum (keepalived's `IPV6_CHECKSUM`).
#[test]
fn auth_hmac_v3_ipv6_with_keepalived_243_elects_and_fails_over_both_ways() {
    floatip_and_keepalived_243_hmac(
        "auth_hmac_v3_ipv6_with_keepalived_243_elects_and_fails_over_both_ways",
        Pair { v6: true, ..V3 },
    );
}

/// Unicast: each peer copy carries the same signed advert.
#[test]
fn auth_hmac_v3_unicast_with_keepalived_243_elects_and_fails_over_both_ways() {
    floatip_and_keepalived_243_hmac(
        "auth_hmac_v3_unicast_with_keepalived_243_elects_and_fails_over_both_ways",
        Pair {
            unicast: true,
            ..V3
        },
    );
}

/// Our VIP, on VRID 51, at `priority`, v3 at 100 ms.
fn forged_advert(priority: u8) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 10,
        addresses: Arc::from([IpAddr::V4(VIP4.parse::<Ipv4Addr>().unwrap())]),
    }
}

fn encode(src: Ipv4Addr, advert: &Advert, auth: TxAuth<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet::encode_auth_into(
        advert,
        IpAddr::V4(src),
        IpAddr::V4(VRRP_GROUP),
        ChecksumMode::PseudoHeader,
        auth,
        &mut out,
    );
    out
}

/// floatip master on h1 (200), keepalived 2.4.3 backup on h2 (100), same key; h3 sends, for 3 s
/// every 100 ms, priority-255 adverts for our VIP: unsigned, signed with a wrong key, signed with
/// an unknown key id. floatip drops each one by reason and h1 holds the VIP throughout (without
/// authentication, the first priority-255 advert makes it yield to a host that never claims).
#[test]
fn auth_forged_adverts_from_a_third_host_are_dropped_by_reason() {
    let name = "auth_forged_adverts_from_a_third_host_are_dropped_by_reason";
    if !require_root(name) || !require_keepalived_upstream(name) {
        return;
    }
    let (lab, hosts) = lab_with_hosts(name, 3, false);
    let (h1, h2, h3) = (&hosts[0], &hosts[1], &hosts[2]);
    let all = [h1, h2, h3];
    let key = key_file(&lab, "vrrp51.key", &KEY);
    let f = Node::spawn_with(
        &lab,
        h1,
        "",
        "debug",
        &[Instance::v4(200).extra(&floatip_hmac(&key, ""))],
    );
    wait_sole_owner(&all, h1, VIP4, SETTLE);
    let k = start_keepalived_upstream(
        &lab,
        h2,
        &KaInstance {
            extra: keepalived_hmac(&key, ""),
            ..KaInstance::v4(100, 3, "0.1")
        },
    );
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived 2.4.3 did not start as backup: {}",
        k.log()
    );
    let wire = VrrpWire::open(h3).expect("raw VRRP socket on h3");
    // The wire works: h3 hears h1's real signed adverts (message 12 bytes + trailer 28).
    let real = wire
        .capture(h1.ipv4, SETTLE, |p| p.len() == 12 + 28 && p[2] == 200)
        .expect("h3 hears h1's signed adverts");
    assert_eq!(real.ttl, 255);

    let wrong = Key {
        id: 1,
        bytes: vec![0x11; 32],
    };
    let unknown = Key {
        id: 9,
        bytes: KEY.to_vec(),
    };
    let mut seq = Sequencer::default();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let mut sent = 0u64;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end && sent < 100 {
        let a = forged_advert(255);
        wire.send(h3.ipv4, VRRP_GROUP, &encode(h3.ipv4, &a, TxAuth::None))
            .unwrap();
        let s = seq.next(now(), AntiReplay::Monotonic);
        let bad = TxAuth::Hmac {
            key: &wrong,
            seq: s,
        };
        wire.send(h3.ipv4, VRRP_GROUP, &encode(h3.ipv4, &a, bad))
            .unwrap();
        let s = seq.next(now(), AntiReplay::Monotonic);
        let unk = TxAuth::Hmac {
            key: &unknown,
            seq: s,
        };
        wire.send(h3.ipv4, VRRP_GROUP, &encode(h3.ipv4, &a, unk))
            .unwrap();
        sent += 1;
        assert_eq!(
            holders(&all, VIP4),
            vec!["h1".to_string()],
            "after {sent} rounds of forged adverts h1 must still hold {VIP4} alone; h1 log:\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_sole_owner_for(&all, h1, VIP4, Duration::from_millis(500), SAMPLE);
    let want = vec![
        ("auth_bad_tag".to_string(), sent),
        ("auth_missing".to_string(), sent),
        ("auth_unknown_key".to_string(), sent),
    ];
    let ok = floatip_lab::wait_until(SETTLE, POLL, || auth_drops(&f) == want);
    assert!(
        ok,
        "drops by reason: {:?}, want {want:?}; h1 log:\n{}",
        auth_drops(&f),
        f.log()
    );
    let st = f.status("files");
    assert_eq!(st["state"], "MASTER", "{st:#}");
    assert!(!f.log().contains("MASTER -> BACKUP"), "{}", f.log());
    assert!(
        f.log().contains("dropped an advert from 192.0.2.3"),
        "the drops are logged: {}",
        f.log()
    );
    // keepalived refused them too, and never claimed.
    assert!(!k.log().contains("Entering MASTER STATE"), "{}", k.log());
    assert!(
        k.log().contains("missing authentication trailer"),
        "{}",
        k.log()
    );
}

/// keepalived 2.4.3 master on h1 (200), floatip backup on h2 (100, `time_window = window`), same
/// key; h3 captures one of keepalived's real signed adverts; h1 is lost, floatip takes over; `age`
/// after the capture h3 sends it again, with h1's source address, 20 times. floatip drops every
/// copy as `want` and keeps the VIP (believing one would hand the VIP to a master that is gone).
fn replayed(name: &str, window: &str, age: Duration, want: &str) {
    if !require_root(name) || !require_keepalived_upstream(name) {
        return;
    }
    let (lab, hosts) = lab_with_hosts(name, 3, false);
    let (h1, h2, h3) = (&hosts[0], &hosts[1], &hosts[2]);
    let all = [h1, h2, h3];
    let key = key_file(&lab, "vrrp51.key", &KEY);
    let wire = VrrpWire::open(h3).expect("raw VRRP socket on h3");
    let ka = KaInstance {
        extra: keepalived_hmac(&key, ""),
        ..KaInstance::v4(200, 3, "0.1")
    };
    let k = start_keepalived_upstream(&lab, h1, &ka);
    wait_sole_owner(&all, h1, VIP4, SETTLE);
    assert!(k.log().contains("Entering MASTER STATE"), "{}", k.log());
    let window = format!("time_window = \"{window}\"");
    let f = Node::spawn(
        &lab,
        h2,
        &[Instance::v4(100).extra(&floatip_hmac(&key, &window))],
    );
    f.wait_up();
    f.wait_state("files", "BACKUP");
    let captured = wire
        .capture(h1.ipv4, SETTLE, |p| p.len() == 12 + 28 && p[2] == 200)
        .expect("h3 hears keepalived's signed adverts");
    let captured_at = Instant::now();
    // floatip accepted keepalived's adverts after the capture (so it knows a later sequence).
    let heard = received(&f);
    f.wait_status("files", "more of keepalived's adverts", |s| {
        s["counters"]["adverts_received"].as_u64().unwrap_or(0) > heard
    });
    h1.link_down().expect("link down");
    wait_sole_owner(&all, h2, VIP4, SETTLE);
    std::thread::sleep((captured_at + age).saturating_duration_since(Instant::now()));
    for i in 0..20 {
        wire.send_packet(&captured.packet).expect("replay");
        std::thread::sleep(Duration::from_millis(100));
        let who = holders(&all, VIP4);
        assert_eq!(
            who,
            ["h2"],
            "replay {i}: h2 must keep {VIP4}; log:\n{}",
            f.log()
        );
    }
    assert_sole_owner_for(&all, h2, VIP4, Duration::from_millis(500), SAMPLE);
    let ok = floatip_lab::wait_until(SETTLE, POLL, || drop_count(&f, want) == 20);
    assert!(ok, "drops: {:?}; h2 log:\n{}", auth_drops(&f), f.log());
    assert_eq!(f.status("files")["state"], "MASTER");
    assert_eq!(auth_drops(&f), vec![(want.to_string(), 20)]);
}

/// Within the window: refused for its sequence (floatip has heard later ones from that sender).
#[test]
fn auth_a_replayed_keepalived_advert_is_dropped() {
    let name = "auth_a_replayed_keepalived_advert_is_dropped";
    replayed(name, "120s", Duration::ZERO, "auth_replay");
}

/// Past the window: refused for its age, before any digest is computed.
#[test]
fn auth_a_stale_keepalived_advert_is_dropped() {
    let name = "auth_a_stale_keepalived_advert_is_dropped";
    replayed(name, "2s", Duration::from_secs(4), "auth_stale");
}

/// The adverts instance `files` of `node` accepted so far.
fn received(node: &Node) -> u64 {
    node.status("files")["counters"]["adverts_received"]
        .as_u64()
        .unwrap_or(0)
}

/// A rollout: keepalived 2.4.3 in `mode receive-only` (verifies, sends unsigned) master on h1
/// (200), floatip `mode = "permissive"` on h2 (100): floatip follows the unsigned master (in
/// enforce it would refuse its adverts and claim too); h1 lost -> floatip claims, signing;
/// h1 back -> keepalived accepts floatip's trailers, preempts, and floatip steps back.
#[test]
fn auth_permissive_follows_an_unsigned_master_during_a_rollout() {
    let name = "auth_permissive_follows_an_unsigned_master_during_a_rollout";
    if !require_root(name) || !require_keepalived_upstream(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts(name);
    let both = [&h1, &h2];
    let key = key_file(&lab, "vrrp51.key", &KEY);
    let k = start_keepalived_upstream(
        &lab,
        &h1,
        &KaInstance {
            extra: keepalived_hmac(&key, "    mode receive-only\n"),
            ..KaInstance::v4(200, 3, "0.1")
        },
    );
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let f = Node::spawn_with(
        &lab,
        &h2,
        "",
        "debug",
        &[Instance::v4(100).extra(&floatip_hmac(&key, "mode = \"permissive\""))],
    );
    f.wait_up();
    f.wait_state("files", "BACKUP");
    assert_sole_owner_for(&both, &h1, VIP4, watch(Duration::from_millis(100)), SAMPLE);
    assert!(!f.log().contains("-> MASTER"), "{}", f.log());
    assert_eq!(auth_drops(&f), vec![], "unsigned adverts are accepted");

    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    h1.link_up().expect("link up");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    assert!(
        f.wait_log("MASTER -> BACKUP", SETTLE),
        "floatip did not step back: {}",
        f.log()
    );
    let errors = keepalived_auth_errors(&k.log());
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(auth_drops(&f), vec![]);
}

/// Debian's keepalived 2.2.7 with `authentication { auth_type PASS auth_pass ... }` and floatip's
/// `type = "pass"` (VRRPv2, 1 s): floatip (150) master, keepalived (100) backup; h1 lost ->
/// keepalived claims; h1 back -> floatip preempts. Neither refuses the other's adverts.
#[test]
fn auth_pass_interoperates_with_debian_keepalived() {
    let name = "auth_pass_interoperates_with_debian_keepalived";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts(name);
    let both = [&h1, &h2];
    let f = Node::spawn_with(
        &lab,
        &h1,
        "",
        "debug",
        &[Instance::v4(150)
            .version(2)
            .interval("1s")
            .extra("\n[instance.auth]\ntype = \"pass\"\npassword = \"s3cr3t\"\n")],
    );
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let k = start_keepalived(
        &lab,
        &h2,
        &KaInstance {
            extra: "  authentication {\n    auth_type PASS\n    auth_pass s3cr3t\n  }\n".into(),
            ..KaInstance::v4(100, 2, "1")
        },
    );
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived did not start as backup: {}",
        k.log()
    );
    assert_sole_owner_for(&both, &h1, VIP4, watch(Duration::from_secs(1)), SAMPLE);
    assert!(!k.log().contains("Entering MASTER STATE"), "{}", k.log());

    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    let heard = received(&f);
    h1.link_up().expect("link up");
    f.wait_status("files", "keepalived's PASS adverts accepted", |s| {
        s["counters"]["adverts_received"].as_u64().unwrap_or(0) > heard
    });
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    assert_sole_owner_for(&both, &h1, VIP4, watch(Duration::from_secs(1)), SAMPLE);
    assert_eq!(auth_drops(&f), vec![]);
    let log = k.log();
    assert!(
        !log.contains("invalid passwd") && !log.contains("auth type") && !log.contains("auth from"),
        "keepalived refused floatip's password: {log}"
    );
    let rej = keepalived_rejections(&log);
    assert!(rej.is_empty(), "{}", rej.join("\n"));
}

/// Key rotation, make-before-break, with keepalived 2.4.3 (floatip 150 master on h1, keepalived 100
/// on h2): add key 2 everywhere (reload; SIGHUP), switch `active_key` to 2 everywhere, remove key 1
/// everywhere. The VIP never moves and neither side refuses an advert; afterwards a failover both
/// ways runs on key 2 alone (a floatip still signing with key 1 would be refused by keepalived,
/// which would then claim).
#[test]
fn auth_key_rotation_with_keepalived_243_is_hitless() {
    let name = "auth_key_rotation_with_keepalived_243_is_hitless";
    if !require_root(name) || !require_keepalived_upstream(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts(name);
    let both = [&h1, &h2];
    let k1 = key_file(&lab, "vrrp51-1.key", &KEY);
    let k2 = key_file(&lab, "vrrp51-2.key", &[0x7e; 40]);
    let floatip_keys = |ids: &[u8], active: u8| {
        let mut s = format!("\n[instance.auth]\ntype = \"hmac\"\nactive_key = {active}\n");
        for id in ids {
            let f = if *id == 1 { &k1 } else { &k2 };
            s.push_str(&format!(
                "[[instance.auth.key]]\nid = {id}\nfile = \"{}\"\n",
                f.display()
            ));
        }
        Instance::v4(150).extra(&s)
    };
    let ka = |ids: &[u8], active: u8| {
        let mut s = String::from("  auth_hmac {\n");
        for id in ids {
            let f = if *id == 1 { &k1 } else { &k2 };
            s.push_str(&format!("    key {id} file:{}\n", f.display()));
        }
        s.push_str(&format!("    active_key {active}\n  }}\n"));
        KaInstance {
            extra: s,
            ..KaInstance::v4(100, 3, "0.1")
        }
    };
    let f = Node::spawn_with(&lab, &h1, "", "debug", &[floatip_keys(&[1], 1)]);
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let k = start_keepalived_upstream(&lab, &h2, &ka(&[1], 1));
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived 2.4.3 did not start as backup: {}",
        k.log()
    );
    let steps: [(&[u8], u8); 3] = [(&[1, 2], 1), (&[1, 2], 2), (&[2], 2)];
    for (i, (ids, active)) in steps.into_iter().enumerate() {
        f.write_config(&[floatip_keys(ids, active)]);
        let msg = f.ctl_ok(&["reload"]);
        assert!(msg.contains("authentication"), "step {i}: {msg}");
        std::fs::write(&k.conf, keepalived_config(&h2.name, &ka(ids, active))).unwrap();
        let reloads = k.log().matches("Reloading").count();
        assert!(k.proc.signal(libc::SIGHUP), "keepalived is running");
        assert!(
            floatip_lab::wait_until(SETTLE, STEP, || k.log().matches("Reloading").count()
                > reloads),
            "step {i}: keepalived did not reload: {}",
            k.log()
        );
        assert_sole_owner_for(&both, &h1, VIP4, watch(Duration::from_millis(100)), SAMPLE);
        assert!(
            !k.log().contains("Entering MASTER STATE"),
            "step {i}: keepalived claimed: {}",
            k.log()
        );
    }
    // On key 2 alone: keepalived takes over when h1 goes, and floatip accepts its adverts.
    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    let heard = received(&f);
    h1.link_up().expect("link up");
    f.wait_status("files", "keepalived's key-2 adverts accepted", |s| {
        s["counters"]["adverts_received"].as_u64().unwrap_or(0) > heard
    });
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    assert_eq!(auth_drops(&f), vec![], "floatip refused an advert");
    let errors = keepalived_auth_errors(&k.log());
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// `floatip doctor` on a backup reads signed adverts as adverts (who, VRID, priority), not as
/// undecodable packets.
#[test]
fn auth_doctor_reads_signed_adverts() {
    let name = "auth_doctor_reads_signed_adverts";
    if !require_root(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts(name);
    let key = key_file(&lab, "vrrp51.key", &KEY);
    let inst = |p| Instance::v4(p).extra(&floatip_hmac(&key, ""));
    let _f = Node::spawn(&lab, &h1, &[inst(150)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let conf = write_file(
        &lab,
        "h2-doctor.toml",
        &floatip_config(&lab, &h2, &[inst(100)]),
    );
    let socket = lab.path("h2-none.sock");
    let out = h2
        .output(&[
            floatip_bin(),
            "--socket",
            path_str(&socket),
            "doctor",
            "--config",
            path_str(&conf),
        ])
        .expect("run floatip doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("heard 192.0.2.1 on VRID 51") && !text.contains("undecodable"),
        "doctor:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
