//! Planned moves of `election = "etcd"` instances and the LAN around them, against a real
//! three-member etcd: the operator's `takeover`, `release` (refused without a successor unless
//! `--force`) and `auto`, a preemption after a restart, each make-before-break (judged from the
//! kernel's address events: some host held the VIP at every instant), a `[[group]]` of etcd
//! instances moving together on one owner key, and the ARP/ND watch: no claim while another host
//! answers for the VIP, and an owner that reports such a host.

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
    let (t1, t2) = watch_move(h1, h2, if to_first { h1 } else { h2 }, act);
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
    wait_candidates(&n2, "files", 2);
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
    wait_candidates(&n1, "files", 2);
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
    wait_candidates(&n1, "files", 1);
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
    wait_candidates(&n2, "files", 2);
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
    let (lab, h1, h2, _cluster) = etcd_hosts(name);
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

/// The `[[group]]` "svc" of two etcd instances on one host: `files` (192.0.2.97) and `files2`
/// (192.0.2.98, with a check on `flag` when given), and the `[etcd]` table after them.
fn group_of_two(priority: u8, flag: Option<&std::path::Path>) -> Vec<Instance> {
    let (election, etcd_table) = etcd_parts();
    let check = flag.map_or(String::new(), flag_check);
    vec![
        Instance::v4(priority).extra(&format!("{election}\n")),
        Instance::named("files2", 52, priority, "192.0.2.98/24").extra(&format!(
            "{election}\n{check}\n[[group]]\nname = \"svc\"\ninstances = [\"files\", \"files2\"]\n\n{etcd_table}"
        )),
    ]
}

#[test]
fn etcd_a_group_moves_together_on_one_owner_key() {
    let name = "etcd_group";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (lab, h1, h2, _cluster) = etcd_hosts(name);
    let flag = write_file(&lab, "h1-files2-healthy", "");
    let n1 = Node::start(&lab, &h1, &group_of_two(150, Some(&flag)));
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    wait_sole_owner(&[&h1, &h2], &h1, "192.0.2.98", SETTLE);
    let n2 = Node::start(&lab, &h2, &group_of_two(100, None));
    wait_candidates(&n2, "files2", 2);
    // One key for the group, named after it.
    n1.wait_status("files", "the group's owner key", |s| {
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("/floatip/svc/owner"))
    });
    // files2's check fails on h1: both VIPs move to h2, each make-before-break.
    let w = |h: &Host, a: &str| AddrWatch::start(h, a).expect("watch");
    let (w1a, w2a, w1b, w2b) = (
        w(&h1, VIP4),
        w(&h2, VIP4),
        w(&h1, "192.0.2.98"),
        w(&h2, "192.0.2.98"),
    );
    std::fs::remove_file(&flag).expect("fail files2's check on h1");
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    wait_sole_owner(&[&h1, &h2], &h2, "192.0.2.98", SETTLE);
    std::thread::sleep(Duration::from_millis(300));
    let logs = || logs(&n1, &n2);
    assert_make_before_break(&w1a.stop(), &w2a.stop(), "files with its group", &logs());
    assert_make_before_break(&w1b.stop(), &w2b.stop(), "files2's check", &logs());
    // Both members FAULT on h1 (the fault names the member), and the group shows where it is.
    let st1 = n1.wait_state("files", "FAULT");
    assert!(
        st1["reason"]
            .as_str()
            .is_some_and(|r| r.contains("files2: check svc failing")),
        "{st1:#}"
    );
    // (`status` follows the kernel within a tick: wait for it.)
    let group_on_h2 = |out: &str| {
        let all: serde_json::Value = serde_json::from_str(out).expect("status json");
        let group = &all["groups"][0];
        group["name"] == "svc"
            && group["split"] == false
            && group["members"]
                .as_array()
                .is_some_and(|m| m.len() == 2 && m.iter().all(|m| m["state"] == "MASTER"))
    };
    assert!(
        wait_until(SETTLE, POLL, || group_on_h2(
            &n2.ctl_ok(&["status", "--json"])
        )),
        "h2's status shows the group svc, both members MASTER: {}",
        n2.ctl_ok(&["status", "--json"])
    );
    // Healthy again, h1 (150, preempt) takes the group back on its own.
    std::fs::write(&flag, "").expect("h1's check passes again");
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    wait_sole_owner(&[&h1, &h2], &h1, "192.0.2.98", SETTLE);
    n1.wait_state("files2", "MASTER");
    // The operator's command on the group's name moves the whole group.
    let said = n2.ctl_ok(&["takeover", "svc"]);
    assert!(said.contains("svc: taking over"), "{said}");
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    wait_sole_owner(&[&h1, &h2], &h2, "192.0.2.98", SETTLE);
}

#[test]
fn etcd_reload_changes_running_settings_in_place() {
    let name = "etcd_reload";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (_lab, h1, h2, _cluster, n1, n2) = etcd_lab(name, true);
    wait_candidates(&n1, "files", 2);
    // h2's priority 100 -> 200: its candidacy says so and it preempts, make-before-break.
    planned(
        (&h1, &h2),
        false,
        "h2 reloaded with priority 200",
        || logs(&n1, &n2),
        || {
            n2.write_config(&[etcd_inst(200, true)]);
            let said = n2.ctl_ok(&["reload"]);
            assert!(
                said.contains("etcd, changed in place: [files (priority)]"),
                "{said}"
            );
        },
    );
    // A second VIP while h2 holds the first: added (and announced) at once.
    let lines = EtcdCluster::instance_lines(ETCD_TTL);
    let mut two = Instance::v4(200).extra(&lines);
    two.addresses.push("192.0.2.98/24".to_string());
    n2.write_config(&[two]);
    let said = n2.ctl_ok(&["reload"]);
    assert!(said.contains("files (addresses)"), "{said}");
    wait_sole_owner(&[&h1, &h2], &h2, "192.0.2.98", SETTLE);
    // What cannot change in place is said, and nothing of it changes.
    n2.write_config(&[
        etcd_inst(200, true).extra(&lines.replace("lease_ttl = \"5s\"", "lease_ttl = \"7s\""))
    ]);
    let said = n2.ctl_ok(&["reload"]);
    assert!(
        said.contains("need a restart") && said.contains("the [etcd] table"),
        "{said}"
    );
    assert_eq!(n2.status("files")["etcd"]["lease_ttl_s"], 5);
}
