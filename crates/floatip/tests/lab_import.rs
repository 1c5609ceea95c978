//! `floatip import keepalived` against keepalived itself, in network namespaces: a VRRP-only sample
//! keepalived ships (addresses moved to 192.0.2.0/24, every interface to the lab's eth0) runs as is in
//! keepalived 2.2.7 on one host and, imported, in floatip on the other: every VIP has one owner, and
//! when the owner's host is lost the other takes every VIP. Then the migration the docs describe: a
//! keepalived pair, switched to floatip one host at a time with the client pinging the VIP; the
//! gaps it saw are printed (docs/migrating-from-keepalived.md quotes them), the test asserts only
//! that the service comes back and has one owner after each step.
//!
//! Needs root and /usr/sbin/keepalived; SKIPPED otherwise, unless CI=true.

mod common;

use std::time::Duration;

use common::*;
use floatip_lab::Pinger;

/// A Debian sample, rewritten for the lab: 192.168.200.X -> 192.0.2.X, 192.168.201.X ->
/// 192.0.2.(100+X), eth1 / eth2 / eth0.1 -> eth0.
fn lab_sample(name: &str) -> Option<String> {
    let dirs = [
        "/usr/share/doc/keepalived/samples",
        "/tmp/ka/keepalived-2.4.3/doc/samples",
    ];
    let text = dirs
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/{name}")).ok())?;
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        while let Some(at) = l.find("192.168.201.") {
            let rest = &l[at + 12..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let n: u32 = rest[..end].parse().unwrap_or(0);
            l = format!("{}192.0.2.{}{}", &l[..at], n + 100, &rest[end..]);
        }
        l = l.replace("192.168.200.", "192.0.2.");
        for dev in ["eth0.1", "eth1", "eth2"] {
            l = l
                .split_inclusive(char::is_whitespace)
                .map(|w| {
                    if w.trim() == dev {
                        w.replace(dev, "eth0")
                    } else {
                        w.to_string()
                    }
                })
                .collect();
        }
        out.push_str(&l);
        out.push('\n');
    }
    Some(out)
}

/// The VIPs of the imported config (every `addresses` entry), without prefix.
fn vips(toml: &str) -> Vec<String> {
    let cfg = floatip::config::parse(toml, std::path::Path::new("imported.toml"))
        .unwrap_or_else(|e| panic!("the import does not load:\n{e}\n{toml}"));
    cfg.instances
        .iter()
        .flat_map(|i| i.addresses.iter().map(|a| a.addr.to_string()))
        .collect()
}

/// `floatip import keepalived FILE`: its stdout (exit 0 or 3).
fn import(host: &Host, conf: &std::path::Path) -> String {
    let o = host
        .output(&[
            floatip_bin(),
            "import",
            "keepalived",
            path_str(conf),
            "--config-id",
            "lab",
        ])
        .expect("cannot run floatip import");
    let code = o.status.code();
    assert!(
        matches!(code, Some(0) | Some(3)),
        "import failed ({code:?}):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// keepalived runs `sample` on h1, floatip its import on h2: one owner per VIP, and on h1's loss h2
/// holds them all.
fn sample_elects_and_fails_over_with_keepalived(test: &str, sample: &str) {
    if !require_root(test) || !require_keepalived(test) {
        return;
    }
    let Some(text) = lab_sample(sample) else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{sample} not found: install Debian's keepalived package"
        );
        eprintln!("SKIPPED {test}: {sample} not found");
        return;
    };
    let (lab, h1, h2) = two_hosts(test);
    let conf = write_file(&lab, "keepalived-h1.conf", &text);
    let log = lab.path("keepalived-h1.log");
    let _ka = floatip_lab::spawn_keepalived(&h1, &conf, lab.dir(), &log).expect("keepalived");
    let imported = import(&h2, &conf);
    let all = vips(&imported);
    assert!(!all.is_empty());
    let _node = Node::start_text(&lab, &h2, &imported);
    for vip in &all {
        wait_single_owner(&[&h1, &h2], vip, SETTLE);
    }
    // Stable: nobody flaps for a few adverts (VRRPv2 samples: 1 s).
    std::thread::sleep(Duration::from_secs(4));
    for vip in &all {
        assert_eq!(
            holders(&[&h1, &h2], vip).len(),
            1,
            "{vip}: {:?}",
            holders(&[&h1, &h2], vip)
        );
    }
    // h1 (keepalived) lost: floatip on h2 takes every VIP.
    h1.link_down().unwrap();
    for vip in &all {
        wait_sole_owner(&[&h2], &h2, vip, SETTLE);
    }
    // Back: one owner per VIP again.
    h1.link_up().unwrap();
    for vip in &all {
        wait_single_owner(&[&h1, &h2], vip, SETTLE);
    }
}

#[test]
fn import_vrrp_sync_sample_elects_and_fails_over_with_keepalived() {
    sample_elects_and_fails_over_with_keepalived(
        "import_vrrp_sync_sample_elects_and_fails_over_with_keepalived",
        "keepalived.conf.vrrp.sync",
    );
}

/// Uses `authentication { auth_type PASS }`: floatip's `[instance.auth]` (issue 15's parity work).
#[test]
fn import_vrrp_sample_with_pass_auth_elects_and_fails_over_with_keepalived() {
    sample_elects_and_fails_over_with_keepalived(
        "import_vrrp_sample_with_pass_auth_elects_and_fails_over_with_keepalived",
        "keepalived.conf.vrrp",
    );
}

fn ka_pair_config(name: &str, priority: u8) -> String {
    format!(
        "global_defs {{\n  router_id {name}\n}}\n\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  \
         virtual_router_id 51\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP4}/24\n  }}\n}}\n"
    )
}

/// The migration guide's procedure: keepalived on h1 (150) and h2 (100); h2 switched to floatip,
/// then h1. After each step the client reaches the VIP and one host holds it.
#[test]
fn import_side_by_side_migration_keeps_the_service() {
    migrate("import_side_by_side_migration_keeps_the_service", false);
}

/// The same, with the address handed to h2's floatip (`floatip takeover`) before keepalived stops on
/// the master, and given back with `floatip auto` once h1 runs floatip.
#[test]
fn import_side_by_side_migration_with_a_handover() {
    migrate("import_side_by_side_migration_with_a_handover", true);
}

fn migrate(test: &str, handover: bool) {
    if !require_root(test) || !require_keepalived(test) {
        return;
    }
    let (mut lab, h1, h2) = two_hosts(test);
    let c = add_client(&mut lab);
    let conf1 = write_file(&lab, "ka-h1.conf", &ka_pair_config("h1", 150));
    let conf2 = write_file(&lab, "ka-h2.conf", &ka_pair_config("h2", 100));
    let mut ka1 =
        floatip_lab::spawn_keepalived(&h1, &conf1, lab.dir(), &lab.path("ka-h1.log")).unwrap();
    let mut ka2 =
        floatip_lab::spawn_keepalived(&h2, &conf2, lab.dir(), &lab.path("ka-h2.log")).unwrap();
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let pinger = Pinger::start(&c, VIP4, Duration::from_millis(2)).expect("pinger");
    assert!(
        pinger.wait_replies(50, SETTLE),
        "the client cannot reach the VIP"
    );
    let mut gaps = Vec::new();
    let t = unix_now();
    std::thread::sleep(Duration::from_secs(3));
    gaps.push((
        "nothing happens (the lab's noise)",
        pinger.longest_gap(t, unix_now()),
    ));

    // Step 1: the backup h2 switches (keepalived stopped, floatip with the import started).
    let t0 = unix_now();
    let imported2 = import(&h2, &conf2);
    ka2.stop(Duration::from_secs(10));
    let n2 = Node::start_text(&lab, &h2, &imported2);
    n2.wait_state("vi_1", "BACKUP");
    assert_sole_owner_for(&[&h1, &h2], &h1, VIP4, Duration::from_secs(3), SAMPLE);
    gaps.push(("switch the backup (h2)", pinger.longest_gap(t0, unix_now())));

    // Step 2: the master h1 switches. With `handover`, h2 first takes the address over by hand
    // (`floatip takeover`, make-before-break); else keepalived on h1 just stops (priority 0: h2's
    // floatip claims after its skew time). Then floatip with h1's import starts and preempts
    // (priority 150; after `floatip auto` on h2 in the handover case).
    let t1 = unix_now();
    let imported1 = import(&h1, &conf1);
    if handover {
        n2.ctl_ok(&["takeover", "vi_1"]);
        wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    }
    ka1.stop(Duration::from_secs(10));
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    let t2 = unix_now();
    let n1 = Node::start_text(&lab, &h1, &imported1);
    if handover {
        n1.wait_state("vi_1", "BACKUP");
        n2.ctl_ok(&["auto", "vi_1"]);
    }
    n1.wait_state("vi_1", "MASTER");
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    assert!(
        pinger.wait_reply_after(unix_now(), SETTLE),
        "the client lost the VIP"
    );
    let t3 = unix_now();
    let step = if handover {
        "`floatip takeover` on h2, then stop keepalived on h1"
    } else {
        "stop keepalived on the master (h1)"
    };
    gaps.push((step, pinger.longest_gap(t1, t2)));
    gaps.push((
        "start floatip on h1 (it preempts)",
        pinger.longest_gap(t2, t3),
    ));
    let report = pinger.stop();
    eprintln!("migration (handover: {handover}), client pinging every 2 ms:");
    for (step, gap) in &gaps {
        eprintln!("  {step}: longest gap {:.1} ms", gap.as_secs_f64() * 1000.0);
    }
    eprintln!(
        "  in all: {} sent, {} lost, {} duplicates",
        report.sent,
        report.lost(),
        report.duplicates
    );
}
