//! End-to-end tests of the operator's controls (issue 4) through the real `floatip` binary, in lab
//! network namespaces: `status --json` against what the kernel shows, `takeover` / `release` /
//! `auto`, overrides that survive a restart, conflicts with an address added by hand, the CLI without
//! a daemon, `reload` (and SIGHUP), and `floatip up` / `down`.
//!
//! Every test builds its own lab (unique namespaces, 192.0.2.0/24 only) and runs one daemon per host
//! with its own control socket, config and state directory inside the lab's temp dir. Adverts every
//! 100 ms keep elections short. Waits are bounded and generous (`SETTLE`): they say "something is
//! wrong", never measure. Helpers panic with a readable message so the `Lab` drops while unwinding
//! and prints the tail of every daemon's log.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::VIP4 as VIP;
use common::*;
use serde_json::Value;

const VIP_CIDR: &str = "192.0.2.97/24";
const VIP2: &str = "192.0.2.98";
const VIP2_CIDR: &str = "192.0.2.98/24";

/// A second service: `web`, VRID 52, 192.0.2.98/24.
fn web(priority: u8) -> Instance {
    Instance::named("web", 52, priority, VIP2_CIDR)
}

/// h1 (priority 150) and h2 (100) running `files`, h1 elected.
fn elected_pair(name: &str) -> (Lab, Node, Node) {
    let (lab, h1, h2) = two_hosts(name);
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150)]);
    let n2 = Node::start(&lab, &h2, &[Instance::v4(100)]);
    wait_owner(&[&h1, &h2], Some(&h1), VIP);
    n1.wait_state("files", "MASTER");
    n2.wait_state("files", "BACKUP");
    (lab, n1, n2)
}

fn speaker_addresses(s: &Value) -> Vec<String> {
    s["speakers"]
        .as_array()
        .expect("speakers is an array")
        .iter()
        .map(|p| p["address"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn u64_at(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{ptr} is not an integer in {v:#}"))
}

fn has_conflict(s: &Value, mac: &str) -> bool {
    s["conflicts"].as_array().is_some_and(|c| {
        c.iter()
            .any(|x| x["mac"] == mac && x["address"].as_str().is_some_and(|a| a.starts_with(VIP)))
    })
}

// ---------------------------------------------------------------------------------------------
// 1. status --json reflects the kernel

#[test]
fn status_json_reflects_kernel_and_vip_is_restored() {
    if !require_root("status_json_reflects_kernel_and_vip_is_restored") {
        return;
    }
    let (_lab, n1, n2) = elected_pair("ctlstatus");
    let (h1, h2) = (n1.host.clone(), n2.host.clone());

    // Wait until each has heard the other (the backup hears adverts at once; the master hears the
    // backup only from its adverts, which a backup does not send: speakers may be empty there).
    let s2 = n2.wait_status("files", "the master in speakers", |s| {
        speaker_addresses(s).contains(&"192.0.2.1".to_string())
    });
    let s1 = n1.status("files");

    // The master.
    assert_eq!(s1["state"], "MASTER");
    assert_eq!(s1["interface"], "eth0");
    assert_eq!(s1["vrid"], 51);
    assert_eq!(s1["version"], 3);
    assert_eq!(s1["priority"]["configured"], 150);
    assert_eq!(s1["priority"]["effective"], 150);
    assert!(s1["priority"]["why_different"].is_null(), "{s1:#}");
    assert_eq!(s1["vips"][0]["address"], VIP_CIDR);
    assert_eq!(s1["vips"][0]["present_in_kernel"], true, "{s1:#}");
    assert_eq!(s1["master"]["self"], true, "{s1:#}");
    assert_eq!(s1["master"]["address"], "192.0.2.1");
    assert!(s1["master"]["last_advert_age_ms"].is_null());
    assert!(u64_at(&s1, "/counters/adverts_sent") > 0, "{s1:#}");
    assert!(s1["override"].is_null());
    assert!(s1["conflicts"].as_array().is_some_and(|c| c.is_empty()));
    let hist = s1["history"].as_array().expect("history");
    assert_eq!(
        hist.last().map(|h| h["to"].clone()),
        Some(Value::from("MASTER")),
        "{s1:#}"
    );
    assert!(s1["reason"].as_str().is_some_and(|r| !r.is_empty()));

    // The backup.
    assert_eq!(s2["state"], "BACKUP");
    assert_eq!(s2["vips"][0]["present_in_kernel"], false, "{s2:#}");
    assert_eq!(s2["master"]["self"], false, "{s2:#}");
    assert_eq!(s2["master"]["address"], "192.0.2.1");
    assert_eq!(s2["master"]["priority"], 150);
    assert_eq!(s2["master"]["interval_ms"], 100);
    assert!(u64_at(&s2, "/counters/adverts_received") > 0);
    let sp = s2["speakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == "192.0.2.1")
        .expect("the master among the backup's speakers");
    assert_eq!(sp["priority"], 150);
    assert_eq!(sp["interval_ms"], 100);
    assert_eq!(sp["addresses"], 1);
    assert!(u64_at(sp, "/last_heard_age_ms") < 2000, "{sp}");

    // What the kernel shows agrees.
    assert!(h1.has_address(VIP) && !h2.has_address(VIP));

    // The human form names the state too.
    let human = n1.ctl_ok(&["status"]);
    assert!(
        human.contains("files") && human.contains("MASTER"),
        "{human}"
    );

    // The VIP removed by hand on the master is put back and counted.
    let before = u64_at(&s1, "/counters/vip_restored");
    h1.del_address(VIP_CIDR).expect("ip addr del on h1");
    let s1 = n1.wait_status("files", "vip_restored to increase", |s| {
        u64_at(s, "/counters/vip_restored") > before
    });
    assert_eq!(s1["state"], "MASTER");
    wait_owner(&[&h1, &h2], Some(&h1), VIP);
    let s1 = n1.wait_status("files", "the VIP present in the kernel again", |s| {
        s["vips"][0]["present_in_kernel"] == true
    });
    assert_eq!(s1["state"], "MASTER");
    assert!(n1.log().contains("putting it back"), "{}", n1.log());
    assert_owner_for(
        &[&h1, &h2],
        Some(&h1),
        VIP,
        Duration::from_millis(600),
        SAMPLE,
    );
}

// ---------------------------------------------------------------------------------------------
// 2. takeover on the backup, then auto

#[test]
fn takeover_moves_vip_and_auto_returns_it() {
    if !require_root("takeover_moves_vip_and_auto_returns_it") {
        return;
    }
    let (_lab, n1, n2) = elected_pair("ctltakeover");
    let hosts = [&n1.host, &n2.host];

    let msg = n2.ctl_ok(&["takeover", "files"]);
    assert!(msg.contains("files"), "{msg}");
    wait_owner(&hosts, Some(&n2.host), VIP);
    assert_owner_for(
        &hosts,
        Some(&n2.host),
        VIP,
        Duration::from_millis(1500),
        SAMPLE,
    );

    let s2 = n2.wait_state("files", "MASTER");
    assert_eq!(s2["override"], "takeover", "{s2:#}");
    assert_eq!(s2["priority"]["configured"], 100);
    assert_eq!(s2["priority"]["effective"], 254, "{s2:#}");
    assert_eq!(s2["vips"][0]["present_in_kernel"], true);
    let s1 = n1.wait_state("files", "BACKUP");
    assert!(s1["override"].is_null());
    assert_eq!(s1["master"]["address"], "192.0.2.2", "{s1:#}");
    assert_eq!(s1["master"]["priority"], 254, "{s1:#}");

    // auto: h2 falls back to 100, h1 (150, preempt) takes the VIP back.
    n2.ctl_ok(&["auto", "files"]);
    wait_owner(&hosts, Some(&n1.host), VIP);
    assert_owner_for(
        &hosts,
        Some(&n1.host),
        VIP,
        Duration::from_millis(1000),
        SAMPLE,
    );
    let s2 = n2.wait_state("files", "BACKUP");
    assert!(s2["override"].is_null(), "{s2:#}");
    assert_eq!(s2["priority"]["effective"], 100);
    n1.wait_state("files", "MASTER");
}

// ---------------------------------------------------------------------------------------------
// 3. release on the master, then auto

#[test]
fn release_moves_vip_and_stays_released_until_auto() {
    if !require_root("release_moves_vip_and_stays_released_until_auto") {
        return;
    }
    let (_lab, n1, n2) = elected_pair("ctlrelease");
    let hosts = [&n1.host, &n2.host];

    // h2 is a live backup, so a plain `release` must be accepted. A refusal here is a daemon bug
    // (see `bug` below); the rest of the flow is still exercised with --force, and the test fails
    // at the end.
    let mut bug = None;
    let out = n1.ctl(&["release", "files"]);
    if out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout);
        assert!(
            msg.contains("auto"),
            "the release message says how to undo it: {msg}"
        );
    } else {
        bug = Some(format!(
            "`floatip release files` on the master refused although h2 is a running backup: {}\n\
             h1's speakers: {} (a BACKUP sends no adverts, so the master never hears it)",
            String::from_utf8_lossy(&out.stderr).trim(),
            n1.status("files")["speakers"]
        ));
        n1.ctl_ok(&["release", "files", "--force"]);
    }
    wait_owner(&hosts, Some(&n2.host), VIP);
    // h1's master-down interval is 3 x 100 ms + skew (~0.34 s): 2 s is several of them, and h1 has
    // the higher priority, so only the override keeps it from preempting.
    assert_owner_for(&hosts, Some(&n2.host), VIP, Duration::from_secs(2), SAMPLE);
    let s1 = n1.wait_state("files", "BACKUP");
    assert_eq!(s1["override"], "release", "{s1:#}");
    assert_eq!(s1["vips"][0]["present_in_kernel"], false);
    n2.wait_state("files", "MASTER");

    n1.ctl_ok(&["auto", "files"]);
    wait_owner(&hosts, Some(&n1.host), VIP);
    assert_owner_for(
        &hosts,
        Some(&n1.host),
        VIP,
        Duration::from_millis(800),
        SAMPLE,
    );
    let s1 = n1.wait_state("files", "MASTER");
    assert!(s1["override"].is_null(), "{s1:#}");
    n2.wait_state("files", "BACKUP");
    if let Some(bug) = bug {
        panic!("{bug}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. release with no peer

#[test]
fn release_without_peer_refuses_unless_forced() {
    if !require_root("release_without_peer_refuses_unless_forced") {
        return;
    }
    let (lab, h1, h2) = two_hosts("ctlnopeer");
    let hosts = [&h1, &h2];
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150)]);
    wait_owner(&hosts, Some(&h1), VIP);
    n1.wait_state("files", "MASTER");

    let err = n1.ctl_err(&["release", "files"]);
    assert!(
        err.contains("no other router") && err.contains("--force"),
        "the refusal explains itself: {err}"
    );
    assert_owner_for(&hosts, Some(&h1), VIP, Duration::from_millis(800), SAMPLE);
    let s1 = n1.status("files");
    assert_eq!(s1["state"], "MASTER");
    assert!(
        s1["override"].is_null(),
        "a refused release leaves no override: {s1:#}"
    );
    assert!(
        !n1.state_dir.join("overrides.json").exists()
            || !std::fs::read_to_string(n1.state_dir.join("overrides.json"))
                .unwrap_or_default()
                .contains("release"),
        "a refused release is not persisted"
    );

    n1.ctl_ok(&["release", "files", "--force"]);
    wait_owner(&hosts, None, VIP);
    assert_owner_for(&hosts, None, VIP, Duration::from_millis(1500), SAMPLE);
    let s1 = n1.wait_state("files", "BACKUP");
    assert_eq!(s1["override"], "release", "{s1:#}");
    assert_eq!(s1["vips"][0]["present_in_kernel"], false);
}

// ---------------------------------------------------------------------------------------------
// 5. overrides survive a restart

#[test]
fn release_override_survives_daemon_restart() {
    if !require_root("release_override_survives_daemon_restart") {
        return;
    }
    let (_lab, mut n1, n2) = elected_pair("ctlrestart");
    let (h1, h2) = (n1.host.clone(), n2.host.clone());
    let hosts = [&h1, &h2];

    // --force: a plain release on a master is refused today although h2 is a live backup (see
    // release_moves_vip_and_stays_released_until_auto); what this test is about is the restart.
    n1.ctl_ok(&["release", "files", "--force"]);
    wait_owner(&hosts, Some(&h2), VIP);
    let saved = std::fs::read_to_string(n1.state_dir.join("overrides.json"))
        .expect("overrides.json in the state dir");
    assert!(
        saved.contains("files") && saved.contains("release"),
        "{saved}"
    );

    let st = n1.stop();
    assert!(st.success(), "SIGTERM: clean exit, got {st}");
    assert_owner_for(&hosts, Some(&h2), VIP, Duration::from_millis(300), SAMPLE);

    n1.restart();
    assert!(n1.log().contains("restoring"), "{}", n1.log());
    let s1 = n1.wait_state("files", "BACKUP");
    assert_eq!(s1["override"], "release", "{s1:#}");
    // h1 has the higher priority and preempt: without the override it would claim within ~0.4 s.
    assert_owner_for(&hosts, Some(&h2), VIP, Duration::from_secs(2), SAMPLE);
    assert_eq!(n1.status("files")["state"], "BACKUP");

    n1.ctl_ok(&["auto", "files"]);
    wait_owner(&hosts, Some(&h1), VIP);
    let s1 = n1.wait_state("files", "MASTER");
    assert!(s1["override"].is_null());
    let saved = std::fs::read_to_string(n1.state_dir.join("overrides.json")).unwrap_or_default();
    assert!(
        !saved.contains("release"),
        "auto removes the entry: {saved}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. conflicts with a copy added by hand on a host without a daemon

/// h1 (MAC ..:01) is master alone; h2 (MAC ..:02, no daemon) gets the VIP by hand. The higher MAC
/// keeps it: h1 reports the conflict, yields (FAULT, reason naming h2's MAC), removes its copy, and
/// claims again once the copy is gone.
#[test]
fn conflict_with_higher_mac_yields_and_heals() {
    if !require_root("conflict_with_higher_mac_yields_and_heals") {
        return;
    }
    let (lab, h1, h2) = two_hosts("ctlconfhi");
    assert!(
        h2.mac > h1.mac,
        "this test needs the by-hand host to have the higher MAC"
    );
    let hosts = [&h1, &h2];
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150)]);
    wait_owner(&hosts, Some(&h1), VIP);
    n1.wait_state("files", "MASTER");

    h2.add_address(VIP_CIDR).expect("ip addr add on h2");
    let mac2 = h2.mac_string();
    let s = n1.wait_status("files", "a conflict with h2's MAC", |s| {
        has_conflict(s, &mac2)
    });
    assert!(s["state"] == "MASTER" || s["state"] == "FAULT", "{s:#}");
    let s = n1.wait_status("files", "FAULT after yielding", |s| s["state"] == "FAULT");
    let reason = s["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&mac2),
        "the FAULT reason names the MAC: {reason}"
    );
    assert_eq!(s["vips"][0]["present_in_kernel"], false, "{s:#}");
    wait_owner(&hosts, Some(&h2), VIP);
    assert!(n1.log().contains("conflict"), "{}", n1.log());

    // The by-hand copy goes: probes find nobody, h1 comes back into the election and claims.
    h2.del_address(VIP_CIDR).expect("ip addr del on h2");
    wait_owner(&hosts, Some(&h1), VIP);
    let s = n1.wait_state("files", "MASTER");
    assert_eq!(s["vips"][0]["present_in_kernel"], true);
    let states: Vec<&str> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["to"].as_str())
        .collect();
    assert!(
        states.windows(2).any(|w| w[0] == "FAULT") && states.last() == Some(&"MASTER"),
        "history: {states:?}"
    );
}

/// The master (MAC ..:02) has the higher MAC than the host with the by-hand copy (MAC ..:01): it
/// keeps the VIP, shows the conflict and re-announces.
#[test]
fn conflict_with_lower_mac_master_keeps_vip() {
    if !require_root("conflict_with_lower_mac_master_keeps_vip") {
        return;
    }
    let mut lab = Lab::new("ctlconflo").expect("lab");
    // Added first, so it gets the lower MAC (02:00:00:00:00:01).
    let hand = lab.add_host("h3", "192.0.2.3/24", None).expect("h3");
    let h1 = lab.add_host("h1", "192.0.2.1/24", None).expect("h1");
    assert!(
        hand.mac < h1.mac,
        "this test needs the by-hand host to have the lower MAC"
    );
    let hosts = [&h1, &hand];
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150)]);
    wait_owner(&hosts, Some(&h1), VIP);
    n1.wait_state("files", "MASTER");

    hand.add_address(VIP_CIDR).expect("ip addr add on h3");
    let mac3 = hand.mac_string();
    n1.wait_status("files", "a conflict with h3's MAC", |s| {
        has_conflict(s, &mac3)
    });
    // Past the yield rule (3 s of conflict) the master still holds it and is still MASTER.
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        let s = n1.status("files");
        assert_eq!(s["state"], "MASTER", "the higher MAC keeps the VIP: {s:#}");
        assert!(h1.has_address(VIP), "h1 lost the VIP");
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = n1.log();
    assert!(
        log.contains("conflict") && log.contains("re-announcing") && log.contains(&mac3),
        "{log}"
    );
    hand.del_address(VIP_CIDR).expect("ip addr del on h3");
    assert_owner_for(&hosts, Some(&h1), VIP, Duration::from_millis(500), SAMPLE);
}

// ---------------------------------------------------------------------------------------------
// 7. a by-hand copy on a floatip backup

#[test]
fn byhand_copy_on_backup_is_removed() {
    if !require_root("byhand_copy_on_backup_is_removed") {
        return;
    }
    let (_lab, n1, n2) = elected_pair("ctlbyhand");
    let hosts = [&n1.host, &n2.host];
    n2.host.add_address(VIP_CIDR).expect("ip addr add on h2");
    wait_owner(&hosts, Some(&n1.host), VIP);
    assert!(
        wait_until(SETTLE, STEP, || n2.log().contains("two owners")),
        "h2's log explains the removal: {}",
        n2.log()
    );
    assert_owner_for(
        &hosts,
        Some(&n1.host),
        VIP,
        Duration::from_millis(800),
        SAMPLE,
    );
    n1.wait_state("files", "MASTER");
    n2.wait_state("files", "BACKUP");
}

// ---------------------------------------------------------------------------------------------
// 8. the CLI without a daemon, and unknown instance names

/// Needs no root and no namespace: the CLI only talks to a Unix socket that is not there.
#[test]
fn cli_without_daemon_says_so() {
    let dir = TempDir::new("ctl-nodaemon");
    let missing = dir.path("nonexistent.sock");
    // A stale socket: bound, then the listener is gone (a killed daemon leaves this behind).
    let stale = dir.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());

    for sock in [&missing, &stale] {
        for args in [
            &["status"][..],
            &["status", "files", "--json"],
            &["takeover", "files"],
            &["release", "files"],
            &["auto", "files"],
            &["reload"],
        ] {
            let out = std::process::Command::new(floatip_bin())
                .arg("--socket")
                .arg(sock)
                .args(args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} on {}: exit 0",
                sock.display()
            );
            assert!(
                err.contains("no floatip daemon is listening") && err.contains(path_str(sock)),
                "{args:?} on {}: {err}",
                sock.display()
            );
            assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        }
    }
}

#[test]
fn unknown_instance_lists_known_names() {
    if !require_root("unknown_instance_lists_known_names") {
        return;
    }
    let (lab, hosts) = lab_with_hosts("ctlunknown", 1, false);
    let h1 = &hosts[0];
    let n1 = Node::start(&lab, h1, &[Instance::v4(150), web(150)]);
    for args in [
        &["status", "nosuch"][..],
        &["status", "nosuch", "--json"],
        &["takeover", "nosuch"],
        &["release", "nosuch", "--force"],
        &["auto", "nosuch"],
    ] {
        let err = n1.ctl_err(args);
        assert!(
            err.contains("nosuch") && err.contains("files") && err.contains("web"),
            "{args:?}: {err}"
        );
    }
    // Nothing changed: no override stored.
    let s = n1.status("files");
    assert!(s["override"].is_null());
}

// ---------------------------------------------------------------------------------------------
// 9. reload

#[test]
fn reload_applies_priority_refuses_bad_config_and_adds_removes_instances() {
    if !require_root("reload_applies_priority_refuses_bad_config_and_adds_removes_instances") {
        return;
    }
    let (_lab, n1, n2) = elected_pair("ctlreload");
    let hosts = [&n1.host, &n2.host];
    let pid2 = n2.proc.pid();

    // A priority change applies in place: h2 (now 200) preempts, and its daemon keeps running.
    n2.write_config(&[Instance::v4(200)]);
    let msg = n2.ctl_ok(&["reload"]);
    assert!(msg.contains("priority 200"), "{msg}");
    wait_owner(&hosts, Some(&n2.host), VIP);
    let s2 = n2.wait_state("files", "MASTER");
    assert_eq!(s2["priority"]["configured"], 200);
    assert_eq!(s2["priority"]["effective"], 200);
    assert!(n2.proc.is_running());
    assert_eq!(n2.proc.pid(), pid2);
    assert_eq!(n2.log().matches("ready:").count(), 1, "not restarted");
    n1.wait_state("files", "BACKUP");

    // A broken file is refused with file:line and the running config stays.
    let good = n2.config_text(&[Instance::v4(200)]);
    let bad = good.replace("vrid = 51", "vrid = 300");
    let line = bad
        .lines()
        .position(|l| l == "vrid = 300")
        .expect("the broken line")
        + 1;
    n2.write_config_text(&bad);
    let err = n2.ctl_err(&["reload"]);
    let at = format!("{}:{line}", n2.conf.display());
    assert!(err.contains(&at), "the refusal names {at}: {err}");
    assert!(err.contains("stays"), "{err}");
    assert_owner_for(
        &hosts,
        Some(&n2.host),
        VIP,
        Duration::from_millis(800),
        SAMPLE,
    );
    let s2 = n2.status("files");
    assert_eq!(s2["state"], "MASTER");
    assert_eq!(s2["priority"]["configured"], 200);

    // A second instance added on both (h1 by SIGHUP, h2 by `floatip reload`) is elected.
    n1.write_config(&[Instance::v4(150), web(150)]);
    n2.write_config(&[Instance::v4(200), web(100)]);
    assert!(n1.proc.signal(libc::SIGHUP));
    n2.ctl_ok(&["reload"]);
    wait_owner(&hosts, Some(&n1.host), VIP2);
    n1.wait_state("web", "MASTER");
    n2.wait_state("web", "BACKUP");
    // files was not disturbed.
    assert_owner_for(
        &hosts,
        Some(&n2.host),
        VIP,
        Duration::from_millis(300),
        SAMPLE,
    );
    assert_eq!(n2.status("files")["state"], "MASTER");

    // Removed again (backup first, then master): its VIP is released, nobody holds it.
    n2.write_config(&[Instance::v4(200)]);
    let msg = n2.ctl_ok(&["reload"]);
    assert!(msg.contains("web"), "{msg}");
    n1.write_config(&[Instance::v4(150)]);
    let msg = n1.ctl_ok(&["reload"]);
    assert!(msg.contains("web"), "{msg}");
    wait_owner(&hosts, None, VIP2);
    assert_owner_for(&hosts, None, VIP2, Duration::from_millis(1000), SAMPLE);
    for n in [&n1, &n2] {
        let err = n.ctl_err(&["status", "web"]);
        assert!(err.contains("web"), "{err}");
        let all: Value = serde_json::from_str(&n.ctl_ok(&["status", "--json"])).unwrap();
        assert_eq!(
            all["instances"].as_array().map(Vec::len),
            Some(1),
            "{all:#}"
        );
    }
    // And files still has exactly one owner.
    assert_owner_for(
        &hosts,
        Some(&n2.host),
        VIP,
        Duration::from_millis(300),
        SAMPLE,
    );
    assert!(n1.proc.is_running() && n2.proc.is_running());
}

// ---------------------------------------------------------------------------------------------
// 10. floatip up / down through the binary

#[test]
fn up_refuses_taken_address_and_moves_client_on_free_one() {
    if !require_root("up_refuses_taken_address_and_moves_client_on_free_one") {
        return;
    }
    let (mut lab, h1, h2) = two_hosts("ctlup");
    let c = lab.add_host("c", "192.0.2.100/24", None).expect("c");
    // No daemon anywhere: point the CLI at a socket nobody listens on (never the host's default).
    let sock = lab.path("none.sock");
    let floatip = |host: &Host, args: &[&str]| -> Output {
        let mut argv = vec![floatip_bin(), "--socket", path_str(&sock)];
        argv.extend_from_slice(args);
        host.output(&argv).expect("run floatip")
    };

    // Taken: h2 holds .97; `up` on h1 adds nothing, exits non-zero and names h2's MAC.
    h2.add_address(VIP_CIDR).unwrap();
    let out = floatip(&h1, &["up", VIP_CIDR, "--dev", "eth0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up on a taken address must fail");
    assert!(
        err.contains(&h2.mac_string()),
        "names the holder's MAC: {err}"
    );
    assert!(!h1.has_address(VIP), "nothing added");
    assert!(h2.has_address(VIP));

    // Free: the client's ARP entry for .98 points at h2 from before; `up` on h1 moves it.
    h2.add_address(VIP2_CIDR).unwrap();
    assert!(c.can_ping(VIP2), "c reaches .98 on h2");
    assert_eq!(c.neigh_mac(VIP2), Some(h2.mac));
    h2.del_address(VIP2_CIDR).unwrap();
    let out = floatip(&h1, &["up", VIP2_CIDR, "--dev", "eth0", "--count", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "up on a free address: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("added") && text.contains(VIP2), "{text}");
    assert!(h1.has_address(VIP2));
    let moved = wait_until(Duration::from_secs(5), STEP, || {
        c.neigh_mac(VIP2) == Some(h1.mac)
    });
    assert!(
        moved,
        "the client's ARP entry follows the announcement: {:?}",
        c.neigh_mac(VIP2)
    );
    assert!(c.can_ping(VIP2));

    // down removes it; a second down says it is not there.
    let out = floatip(&h1, &["down", VIP2_CIDR, "--dev", "eth0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!h1.has_address(VIP2));
    let out = floatip(&h1, &["down", VIP2_CIDR, "--dev", "eth0"]);
    assert!(!out.status.success());
}

/// A reload that changes the master's instance in a way that needs a fresh start (here: an
/// `[instance.announce]` table) must step down make-before-break: the retiring instance keeps the
/// VIP until the successor is heard, and the replacement must not touch that copy.
#[test]
fn reload_of_changed_master_instance_does_not_fight_over_vip() {
    if !require_root("reload_of_changed_master_instance_does_not_fight_over_vip") {
        return;
    }
    let (_lab, n1, n2) = elected_pair("ctlreload2");
    let hosts = [&n1.host, &n2.host];
    let text = n1.config_text(&[Instance::v4(150)]) + "\n[instance.announce]\ncount = 3\n";
    n1.write_config_text(&text);
    let before = n1.log().len();
    let msg = n1.ctl_ok(&["reload"]);
    assert!(msg.contains("files"), "{msg}");
    // h1 (150) wins the election again once its new instance runs.
    wait_owner(&hosts, Some(&n1.host), VIP);
    n1.wait_state("files", "MASTER");
    n2.wait_state("files", "BACKUP");
    assert_owner_for(
        &hosts,
        Some(&n1.host),
        VIP,
        Duration::from_millis(500),
        SAMPLE,
    );
    let log = n1.log();
    let after = log.get(before..).unwrap_or_default();
    let fights: Vec<&str> = after
        .lines()
        .filter(|l| {
            l.contains("stale copy") || l.contains("two owners") || l.contains("putting it back")
        })
        .collect();
    assert!(
        fights.is_empty(),
        "after the reload the replacement instance removed the retiring instance's VIP and the two \
         fought over it ({} log lines), e.g.:\n{}",
        fights.len(),
        fights.iter().take(4).copied().collect::<Vec<_>>().join("\n")
    );
}

/// `floatip doctor` on a host with a config and no daemon: a problem (exit 1) with the fix, not a
/// warning (issue 26: "0 problems and 2 warnings", exit 0). The socket comes from the config's
/// `[daemon] socket`, as for every command.
#[test]
fn doctor_without_a_daemon_is_a_problem() {
    if !require_root("doctor_without_a_daemon_is_a_problem") {
        return;
    }
    let (lab, h1, _h2) = two_hosts("ctldoctordead");
    let socket = lab.path("h1-files.sock");
    let conf = write_file(
        &lab,
        "h1.toml",
        &config_text(
            &lab.path("h1-state"),
            &format!("socket = \"{}\"\n", path_str(&socket)),
            &[Instance::v4(150)],
        ),
    );
    let out = h1
        .output(&[floatip_bin(), "doctor", "--config", path_str(&conf)])
        .expect("run floatip doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "doctor exits 1:\n{text}");
    assert!(
        text.contains(&format!("✗ no daemon answers on {}", socket.display()))
            && text.contains("fix: start it: `systemctl start floatip`"),
        "{text}"
    );
}

/// `floatip check` on h1 (192.0.2.1) warns about what it used to pass in silence: the page served
/// on every interface, a unicast peer that is another instance's VIP, and one that is h1 itself.
#[test]
fn check_warns_about_an_exposed_page_and_misplaced_peers() {
    if !require_root("check_warns_about_an_exposed_page_and_misplaced_peers") {
        return;
    }
    let (lab, h1, _h2) = two_hosts("ctlcheckwarn");
    let conf = write_file(
        &lab,
        "h1.toml",
        &config_text(
            &lab.path("h1-state"),
            "http = \"0.0.0.0:9797\"\n",
            &[
                Instance::v4(150).unicast(&["192.0.2.2", "192.0.2.98", "192.0.2.1"]),
                web(150),
            ],
        ),
    );
    let out = h1
        .output(&[floatip_bin(), "check", "--config", path_str(&conf)])
        .expect("run floatip check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "warnings do not fail check:\n{text}");
    for needle in [
        "warning: [daemon] http = \"0.0.0.0:9797\" serves the status page",
        "warning: instance files: unicast_peers lists 192.0.2.98, a VIP of instance web",
        "warning: instance files: unicast_peers lists 192.0.2.1, an address of this host",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    assert!(!text.contains("lists 192.0.2.2"), "{text}");
}
