//! `election = "etcd"` against a real three-member etcd cluster (Debian's etcd-server, one member in
//! each of the lab hosts e1..e3), floatip on h1 (priority 150) and h2 (priority 100). Every failure
//! of the owner (cable pulled, cut off from etcd by nftables, kill -9, SIGSTOP) moves the VIP to h2
//! with never two owners, judged from the kernel's address events of both hosts; one etcd member down
//! moves nothing; all members down leaves the VIP with nobody once the lease ends. A SIGTERM hands
//! over at once, with the successor's hook and its `floatip events` transitions.

mod common;

use std::time::Duration;

use common::*;

const TTL: Duration = ETCD_TTL;

/// Drops h1's traffic to and from etcd's client port, and nothing else.
const CUT_FROM_ETCD: &str = "table inet cut_etcd {
  chain out { type filter hook output priority 0; tcp dport 2379 drop; }
  chain in { type filter hook input priority 0; tcp sport 2379 drop; }
}
";

#[test]
fn etcd_owner_cut_off_from_etcd_lets_go_before_another_claims() {
    let name = "etcd_cut";
    if !require_root(name) || !require_etcd(name) || !require_nft(name) {
        return;
    }
    let (lab, h1, h2, _cluster, n1, n2) = etcd_lab(name, true);
    let w1 = AddrWatch::start(&h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(&h2, VIP4).expect("watch h2");
    let rules = write_file(&lab, "cut-etcd.nft", CUT_FROM_ETCD);
    h1.run(&["nft", "-f", path_str(&rules)])
        .expect("nft rules in h1");
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    std::thread::sleep(Duration::from_millis(300));
    let (t1, t2) = (w1.stop(), w2.stop());
    assert_handed_over(&t1, &t2, "h1 cut off from etcd", &logs(&n1, &n2));
    // It says why, in the words the docs use (the kernel may have dropped the VIP a little before
    // the daemon's own deadline: its lifetime ends first by design).
    let explained = wait_until(SETTLE, POLL, || {
        let log = n1.log();
        log.contains("etcd unreachable since") && log.contains("VIP released at")
    });
    assert!(explained, "h1 explains the release\n{}", n1.log());
    // And `status` says so too: h1 BACKUP with etcd unreachable since, h2 MASTER and the owner, with
    // its lease, the member in use and both candidates.
    let st1 = n1.wait_status("files", "etcd unreachable", |s| {
        s["state"] == "BACKUP" && s["etcd"]["unreachable_since"].is_number()
    });
    assert!(st1["etcd"]["released_at"].is_number(), "{st1:#}");
    let st2 = n2.wait_state("files", "MASTER");
    let e = &st2["etcd"];
    assert!(
        e["owner"]
            .as_str()
            .is_some_and(|o| o.ends_with(" 192.0.2.2"))
            && e["lease"].is_string()
            && e["lease_remaining_ms"]
                .as_u64()
                .is_some_and(|ms| ms <= 5000)
            && e["endpoint"]
                .as_str()
                .is_some_and(|u| u.starts_with("http://192.0.2.1")),
        "h2's status shows the lease and the owner: {st2:#}"
    );
    let human = n2.ctl_ok(&["status", "files"]);
    assert!(
        human.contains("owner") && human.contains("candidates") && human.contains("lease"),
        "{human}"
    );
    // Still cut off, h1 does not take the VIP back (it cannot prove it owns it).
    assert!(h1.can_ping("192.0.2.2"), "h1 still reaches the LAN");
    let w1 = AddrWatch::start(&h1, VIP4).expect("watch h1");
    std::thread::sleep(TTL);
    let t1 = w1.stop();
    assert!(
        t1.held(unix_now()).is_empty() && h2.has_address(VIP4),
        "a cut-off h1 stays without the VIP\n{t1:?}"
    );
}

#[test]
fn etcd_cable_pulled_on_the_owner_moves_the_vip_without_two_owners() {
    let name = "etcd_cable";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (_lab, h1, h2, _cluster, n1, n2) = etcd_lab(name, true);
    let (t1, t2) = watch_move(&h1, &h2, &h2, || {
        h1.link_down().expect("pull h1's cable");
    });
    assert_handed_over(&t1, &t2, "h1's cable pulled", &logs(&n1, &n2));
}

#[test]
fn etcd_kill9_of_the_owner_moves_the_vip_without_two_owners() {
    let name = "etcd_kill";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (_lab, h1, h2, _cluster, n1, n2) = etcd_lab(name, true);
    let (t1, t2) = watch_move(&h1, &h2, &h2, || {
        assert!(n1.kill(), "h1's daemon was running");
    });
    assert_handed_over(&t1, &t2, "kill -9 of h1's daemon", &logs(&n1, &n2));
}

#[test]
fn etcd_sigstop_of_the_owner_and_sigcont_after_the_lease_never_two_owners() {
    let name = "etcd_stop";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    // Without preempt, so that a resumed h1 has no reason of its own to take the VIP back.
    let (_lab, h1, h2, _cluster, n1, n2) = etcd_lab(name, false);
    let w1 = AddrWatch::start(&h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(&h2, VIP4).expect("watch h2");
    assert!(n1.proc.signal(libc::SIGSTOP));
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    // The lease has surely ended in etcd (h2 won the key): now h1 runs again.
    assert!(n1.proc.signal(libc::SIGCONT));
    std::thread::sleep(TTL);
    assert!(n1.proc.is_running(), "{}", n1.log());
    let (t1, t2) = (w1.stop(), w2.stop());
    assert_handed_over(&t1, &t2, "SIGSTOP, then SIGCONT of h1", &logs(&n1, &n2));
    let end = unix_now();
    let last_removal = t1
        .events
        .iter()
        .filter(|e| e.kind == WatchKind::AddrRemoved)
        .map(|e| e.at)
        .fold(0.0, f64::max);
    assert!(
        t1.held(end).iter().all(|s| s.to <= last_removal),
        "the resumed h1 put the VIP back\n{t1:?}\n{}",
        n1.log()
    );
    assert_sole_owner_for(&[&h1, &h2], &h2, VIP4, Duration::from_secs(1), SAMPLE);
}

#[test]
fn etcd_one_member_down_moves_nothing_all_down_releases_at_lease_end() {
    let name = "etcd_quorum";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (_lab, h1, h2, cluster, n1, n2) = etcd_lab(name, true);
    let w1 = AddrWatch::start(&h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(&h2, VIP4).expect("watch h2");
    cluster.kill(0);
    // Three leases' worth: every renewal that went to e1 had to find another member.
    std::thread::sleep(TTL * 3);
    let (t1, t2) = (w1.stop(), w2.stop());
    assert!(
        t1.events.iter().all(|e| e.kind != WatchKind::AddrRemoved)
            && t2.held(unix_now()).is_empty()
            && h1.has_address(VIP4),
        "one etcd member down: nothing moves\n{t1:?}\n{t2:?}\n{}",
        logs(&n1, &n2)
    );
    let w1 = AddrWatch::start(&h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(&h2, VIP4).expect("watch h2");
    cluster.kill(1);
    cluster.kill(2);
    assert!(
        wait_not_holding(&h1, VIP4, SETTLE),
        "with etcd gone, h1 releases the VIP when its lease ends\n{}",
        n1.log()
    );
    std::thread::sleep(TTL);
    let (t1, t2) = (w1.stop(), w2.stop());
    assert!(
        t2.held(unix_now()).is_empty() && !h1.has_address(VIP4),
        "nobody can prove ownership, so nobody holds the VIP\n{t1:?}\n{t2:?}"
    );
    assert!(n1.log().contains("etcd unreachable since"), "{}", n1.log());
}

#[test]
fn etcd_sigterm_hands_over_to_the_next_candidate() {
    let name = "etcd_term";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (lab, h1, h2, _cluster, mut n1, mut n2) = etcd_lab(name, true);
    // h2 with a master hook (restarted with it; the VIP stays on h1 meanwhile).
    let marker = lab.path("h2-master-hook");
    let (election, etcd_table) = etcd_parts();
    let with_hook = format!(
        "{election}\n[instance.notify]\nmaster = [\"/usr/bin/touch\", \"{}\"]\n\n{etcd_table}",
        path_str(&marker)
    );
    n2.stop();
    n2.write_config(&[Instance::v4(100).extra(&with_hook)]);
    n2.restart();
    // `floatip events` on h2, live once a reload (an operator record) shows up in it.
    let events = lab.path("h2-events.jsonl");
    let argv = [
        floatip_bin(),
        "--socket",
        path_str(&n2.socket),
        "events",
        "--json",
    ];
    let mut stream = h2
        .spawn(&argv, Some(&events))
        .expect("cannot start floatip events");
    let read_events = || std::fs::read_to_string(&events).unwrap_or_default();
    let live = wait_until(SETTLE, POLL, || {
        // Its answer does not matter: the record is published before the command runs.
        let _ = n2.ctl(&["reload"]);
        read_events().contains("\"kind\":\"operator\"")
    });
    assert!(live, "floatip events did not stream: {}", read_events());
    let w1 = AddrWatch::start(&h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(&h2, VIP4).expect("watch h2");
    let status = n1.stop();
    assert!(
        status.success(),
        "h1 stopped cleanly: {status:?}\n{}",
        n1.log()
    );
    // A planned move: h1 names h2 in etcd, h2 takes the key, adds and announces the VIP, and only
    // then does h1 remove it (make-before-break); then h1 revokes its lease.
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    std::thread::sleep(Duration::from_millis(300));
    let (t1, t2) = (w1.stop(), w2.stop());
    assert_make_before_break(&t1, &t2, "SIGTERM of h1", &logs(&n1, &n2));
    assert!(
        n1.log().contains("handing the VIPs over to 192.0.2.2") && n1.log().contains("revoked"),
        "{}",
        n1.log()
    );
    assert!(n2.log().contains("took the owner key over"), "{}", n2.log());
    assert!(
        wait_until(SETTLE, POLL, || marker.exists()),
        "h2's master hook ran\n{}",
        n2.log()
    );
    // The stream carried the etcd instance's transition to MASTER, as the hook ran it.
    let took_over = |t: &str| {
        t.lines().any(|l| {
            l.contains("\"kind\":\"transition\"")
                && l.contains("\"instance\":\"files\"")
                && l.contains("\"from\":\"BACKUP\"")
                && l.contains("\"to\":\"MASTER\"")
        })
    };
    assert!(
        wait_until(SETTLE, POLL, || took_over(&read_events())),
        "h2's events stream has the BACKUP -> MASTER transition:\n{}",
        read_events()
    );
    // Stopping h2: the stream gets the STOP transition, then ends with the daemon.
    n2.stop();
    assert!(
        stream.wait_exit(SETTLE).is_some(),
        "floatip events did not end with the daemon"
    );
    let last = read_events();
    let last = last
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    assert!(
        last.contains("\"to\":\"STOP\"") && last.contains("\"instance\":\"files\""),
        "the last record is the etcd instance's STOP: {last}"
    );
}

#[test]
fn etcd_failing_check_withdraws_the_candidacy_and_recovery_takes_it_back() {
    let name = "etcd_check";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (lab, h1, h2, _cluster) = etcd_hosts(name);
    let flag = write_file(&lab, "h1-healthy", "");
    let fault_marker = lab.path("h1-fault-hook");
    let (election, etcd_table) = etcd_parts();
    let with_check = format!(
        "{election}\n{}[instance.notify]\nfault = [\"/usr/bin/touch\", \"{}\"]\n\n{etcd_table}",
        flag_check(&flag),
        path_str(&fault_marker)
    );
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150).extra(&with_check)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let n2 = Node::start(&lab, &h2, &[etcd_inst(100, true)]);
    wait_candidates(&n2, "files", 2);
    // The check fails: h1 hands the VIP to h2 make-before-break and is FAULT, with its hook.
    let (t1, t2) = watch_move(&h1, &h2, &h2, || {
        std::fs::remove_file(&flag).expect("fail h1's check");
    });
    assert_make_before_break(&t1, &t2, "h1's check failed", &logs(&n1, &n2));
    let st1 = n1.wait_status("files", "h1 not a candidate", |s| {
        s["claim_inhibit"]
            .as_str()
            .is_some_and(|w| w.contains("check svc failing"))
    });
    assert_eq!(st1["state"], "FAULT", "{st1:#}");
    assert!(
        wait_until(SETTLE, POLL, || fault_marker.exists()),
        "h1's fault hook ran\n{}",
        n1.log()
    );
    // Healthy again: h1 (150, preempt) is the better candidate and gets the VIP back, the same way.
    let (t1, t2) = watch_move(&h1, &h2, &h1, || {
        std::fs::write(&flag, "").expect("h1's check passes again");
    });
    assert_make_before_break(&t2, &t1, "h1 recovered and preempted", &logs(&n1, &n2));
    assert_eq!(n1.status("files")["state"], "MASTER");
}

#[test]
fn etcd_over_tls_with_client_certificates() {
    let name = "etcd_tls";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (mut lab, mut hosts) = lab_with_hosts(name, 2, false);
    let h2 = hosts.pop().expect("h2");
    let h1 = hosts.pop().expect("h1");
    let certs = Certs::make(&lab);
    let _cluster = EtcdCluster::start_with(&mut lab, Some(&certs));
    let lines = EtcdCluster::instance_lines_with(TTL, Some(&certs));
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150).extra(&lines)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let n2 = Node::start(&lab, &h2, &[Instance::v4(100).extra(&lines)]);
    let st = n2.wait_status("files", "h2 a candidate over TLS", |s| {
        s["etcd"]["lease"].is_string()
    });
    assert!(
        st["etcd"]["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("https://")),
        "{st:#}"
    );
    let (t1, t2) = watch_move(&h1, &h2, &h2, || {
        assert!(n1.kill(), "h1's daemon was running");
    });
    assert_handed_over(&t1, &t2, "kill -9 of h1 (etcd over TLS)", &logs(&n1, &n2));
}
