//! Planned moves of `election = "etcd"` instances and the LAN around them, against a real
//! three-member etcd: the operator's `takeover`, `release` (refused without a successor unless
//! `--force`) and `auto`, a preemption after a restart, each make-before-break (judged from the
//! kernel's address events: some host held the VIP at every instant), and the ARP/ND watch: no
//! claim while another host answers for the VIP, and an owner that reports such a host.

mod common;

use std::time::Duration;

use common::*;
use floatip_lab::Pinger;

/// Watches h1 and h2 while `act` runs, then waits for `to` to be the sole owner and asserts the
/// move was make-before-break (`to_first`: the VIP goes from h2 to h1).
fn planned(
    (h1, h2): (&Host, &Host),
    to_first: bool,
    what: &str,
    logs: impl Fn() -> String,
    act: impl FnOnce(),
) {
    let w1 = AddrWatch::start(h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(h2, VIP4).expect("watch h2");
    act();
    let to = if to_first { h1 } else { h2 };
    wait_sole_owner(&[h1, h2], to, VIP4, SETTLE);
    std::thread::sleep(Duration::from_millis(300));
    let (t1, t2) = (w1.stop(), w2.stop());
    if to_first {
        assert_make_before_break(&t2, &t1, what, &logs());
    } else {
        assert_make_before_break(&t1, &t2, what, &logs());
    }
}

#[test]
fn etcd_takeover_release_and_auto_move_the_vip_make_before_break() {
    let name = "etcd_ops";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (mut lab, h1, h2, _cluster, n1, mut n2) = etcd_lab(name, true);
    let c = add_client(&mut lab);
    let pinger = Pinger::start(&c, VIP4, Duration::from_millis(5)).expect("pinger");
    assert!(
        pinger.wait_replies(20, SETTLE),
        "no replies before the moves"
    );
    n2.wait_status("files", "h2 a candidate", |s| {
        s["etcd"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    });
    let logs = || logs(&n1, &n2);

    // takeover on h2 (priority 100 < 150): it becomes the preferred candidate and h1 hands over.
    planned((&h1, &h2), false, "takeover on h2", logs, || {
        let said = n2.ctl_ok(&["takeover", "files"]);
        assert!(said.contains("taking over"), "{said}");
    });
    let st2 = n2.wait_state("files", "MASTER");
    assert_eq!(st2["override"], "takeover", "{st2:#}");
    assert_eq!(st2["priority"]["effective"], 254, "{st2:#}");

    // release on h2: answered once h1 has the VIP.
    planned((&h1, &h2), true, "release on h2", logs, || {
        let said = n2.ctl_ok(&["release", "files"]);
        assert!(said.contains("192.0.2.1 took over"), "{said}");
    });
    let st2 = n2.wait_state("files", "BACKUP");
    assert!(
        st2["claim_inhibit"]
            .as_str()
            .is_some_and(|w| w.contains("released")),
        "{st2:#}"
    );
    // auto on h2: a candidate again at 100, h1 (150) keeps the VIP.
    n2.ctl_ok(&["auto", "files"]);
    n1.wait_status("files", "h2 a candidate again", |s| {
        s["etcd"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    });
    assert_sole_owner_for(&[&h1, &h2], &h1, VIP4, Duration::from_secs(1), SAMPLE);
    let report = pinger.stop();
    eprintln!(
        "client pinging every 5 ms through takeover and release: {} sent, {} lost, {} duplicates, longest gap {:?}",
        report.sent,
        report.lost(),
        report.duplicates,
        report.longest_gap
    );

    // With no other candidate (h2 stopped), a release is refused and h1 keeps the VIP...
    n2.stop();
    n1.wait_status("files", "h1 the only candidate", |s| {
        s["etcd"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    });
    let refused = n1.ctl_err(&["release", "files"]);
    assert!(
        refused.contains("no other candidate") && refused.contains("--force"),
        "{refused}"
    );
    assert_sole_owner_for(&[&h1, &h2], &h1, VIP4, Duration::from_secs(1), SAMPLE);
    assert!(n1.status("files")["override"].is_null());
    // ...unless forced: then nobody holds it until `auto`.
    n1.ctl_ok(&["release", "files", "--force"]);
    assert!(wait_not_holding(&h1, VIP4, SETTLE), "{}", n1.log());
    assert_eq!(n1.wait_state("files", "BACKUP")["override"], "release");
    n1.ctl_ok(&["auto", "files"]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
}

#[test]
fn etcd_a_restarted_better_candidate_preempts_make_before_break() {
    let name = "etcd_preempt";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (_lab, h1, h2, _cluster, mut n1, n2) = etcd_lab(name, true);
    n2.wait_status("files", "h2 a candidate", |s| {
        s["etcd"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    });
    planned(
        (&h1, &h2),
        false,
        "SIGTERM of h1",
        || n2.log(),
        || {
            n1.stop();
        },
    );
    planned(
        (&h1, &h2),
        true,
        "h1 restarted and preempted",
        || n2.log(),
        || n1.restart(),
    );
    assert!(
        n2.log().contains("handing the VIPs over to 192.0.2.1"),
        "{}",
        n2.log()
    );
    let hist = n2.status("files")["history"].to_string();
    assert!(hist.contains("handed over to 192.0.2.1"), "{hist}");
}

#[test]
fn etcd_no_claim_while_another_host_answers_and_an_owner_reports_one() {
    let name = "etcd_lan";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (mut lab, mut hosts) = lab_with_hosts(name, 2, false);
    let h2 = hosts.pop().expect("h2");
    let h1 = hosts.pop().expect("h1");
    let _cluster = EtcdCluster::start(&mut lab);
    // h2 holds the VIP by hand (no floatip there): h1 may win nothing it would share.
    h2.add_address(&format!("{VIP4}/24")).expect("VIP by hand");
    let n1 = Node::start(&lab, &h1, &[etcd_inst(150, true)]);
    let st = n1.wait_status("files", "the claim waits", |s| {
        s["claim_inhibit"]
            .as_str()
            .is_some_and(|w| w.contains("answered for by"))
    });
    assert_eq!(st["state"], "BACKUP", "{st:#}");
    assert!(st["etcd"]["owner"].is_null(), "nobody owns the key: {st:#}");
    assert_sole_owner_for(&[&h1, &h2], &h2, VIP4, Duration::from_secs(1), SAMPLE);
    // The hand-made copy goes: h1 claims.
    h2.del_address(&format!("{VIP4}/24"))
        .expect("remove the VIP by hand");
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    // Someone adds it by hand again: h1 keeps it (etcd says it is the owner), reports the
    // conflict and keeps announcing.
    h2.add_address(&format!("{VIP4}/24")).expect("VIP by hand");
    let st = n1.wait_status("files", "a conflict", |s| {
        s["conflicts"].as_array().is_some_and(|c| !c.is_empty())
    });
    assert_eq!(st["state"], "MASTER", "{st:#}");
    // Reported once it persists (a second of answers: the owner probes at each renewal).
    assert!(n1.wait_log("conflict: 192.0.2.97", SETTLE), "{}", n1.log());
    assert!(h1.has_address(VIP4));
}
