//! Authentication in the loop: with auth_hmac, an unsigned, forged or replayed advert is dropped and
//! counted by reason and never moves the election; a signed one does. A reload changes the keys in
//! place.

use std::os::unix::fs::PermissionsExt;

use vrrp::auth::{AntiReplay, Key, Sequencer};
use vrrp::packet::TxAuth;

use super::*;

const KEY: [u8; 32] = [0x42; 32];

/// Our instance with auth_hmac over the key file `dir/k1` (written 0600; tests run as root).
fn hmac_instance(dir: &std::path::Path, extra: &str) -> String {
    let f = dir.join("k1");
    std::fs::write(&f, format!("hex:{}", "42".repeat(32))).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "{}\n[instance.auth]\ntype = \"hmac\"\n{extra}\n[[instance.auth.key]]\nid = 1\nfile = \"{}\"\n",
        instance(51, 150),
        f.display()
    )
}

fn key_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("floatip-dauth-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `advert` from `src`, signed with `key`.
fn signed(src: IpAddr, advert: &Advert, key: &Key, seq: &mut Sequencer) -> Vec<u8> {
    let mut out = Vec::new();
    let s = seq.next(super::super::auth::wall_now(), AntiReplay::Monotonic);
    packet::encode_auth_into(
        advert,
        src,
        IpAddr::V4(GROUP_V4),
        ChecksumMode::PseudoHeader,
        TxAuth::Hmac { key, seq: s },
        &mut out,
    );
    out
}

fn peer_advert(priority: u8) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 10,
        addresses: Arc::from([IpAddr::V4(VIP)]),
    }
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn forged_unsigned_and_replayed_adverts_never_move_a_master() {
    if !root() {
        eprintln!("SKIP: key files must be root's; run as root");
        return;
    }
    let d = key_dir("forged");
    let mut h = Harness::start(&hmac_instance(&d, ""));
    h.become_master();
    h.host.take_log();
    let good = Key {
        id: 1,
        bytes: KEY.to_vec(),
    };
    let wrong = Key {
        id: 1,
        bytes: vec![0x43; 32],
    };
    let unknown = Key {
        id: 2,
        bytes: KEY.to_vec(),
    };
    let mut seq = Sequencer::default();
    let peer = IpAddr::V4(PEER);
    // A priority-200 advert signed with our key, heard once: it is a real master (accepted)...
    let real = signed(peer, &peer_advert(100), &good, &mut seq);
    h.packet_from(peer, &real);
    for _ in 0..20 {
        h.advert_from(peer, &peer_advert(255)); // unsigned
        h.packet_from(peer, &signed(peer, &peer_advert(255), &wrong, &mut seq));
        h.packet_from(peer, &signed(peer, &peer_advert(255), &unknown, &mut seq));
        h.packet_from(peer, &real); // replayed
        h.advance(Duration::from_millis(100));
        assert_eq!(h.state(), State::Master);
    }
    let log = h.host.take_log();
    assert!(!log.contains(&Call::Remove(vip())), "never yields: {log:?}");
    let st = h.status();
    assert_eq!(st.state, "MASTER");
    assert_eq!(st.counters.drops.get("auth_missing"), Some(&20));
    assert_eq!(st.counters.drops.get("auth_bad_tag"), Some(&20));
    assert_eq!(st.counters.drops.get("auth_unknown_key"), Some(&20));
    assert_eq!(st.counters.drops.get("auth_replay"), Some(&20));
    assert_eq!(st.counters.adverts_received, 1);
    // A signed better master is followed.
    h.packet_from(peer, &signed(peer, &peer_advert(200), &good, &mut seq));
    h.advance(Duration::from_millis(10));
    assert_eq!(h.state(), State::Backup);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn permissive_accepts_unsigned_adverts_and_a_reload_switches_to_enforce() {
    if !root() {
        eprintln!("SKIP: key files must be root's; run as root");
        return;
    }
    let d = key_dir("permissive");
    let mut h = Harness::start(&hmac_instance(&d, "mode = \"permissive\""));
    h.become_master();
    let peer = IpAddr::V4(PEER);
    // Permissive: an unsigned better master is followed (a rollout in progress).
    h.advert_from(peer, &peer_advert(200));
    h.advance(Duration::from_millis(10));
    assert_eq!(h.state(), State::Backup);
    // Reloaded to enforce: the same unsigned adverts are dropped; we take over once they are all
    // that is heard.
    Harness::write_config(&h.dir, &hmac_instance(&d, "mode = \"enforce\""));
    match answer(&mut h.call(Request::Reload)) {
        Some(Response::Done { message }) => assert!(
            message.contains("changed in place: [files (authentication)]"),
            "{message}"
        ),
        other => panic!("expected the reload to be done, got {other:?}"),
    }
    for _ in 0..20 {
        h.advert_from(peer, &peer_advert(200));
        h.advance(Duration::from_millis(100));
    }
    assert_eq!(h.state(), State::Master);
    assert!(h
        .status()
        .counters
        .drops
        .get("auth_missing")
        .is_some_and(|n| *n >= 10));
    let _ = std::fs::remove_dir_all(d);
}
