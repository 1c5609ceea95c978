//! `election = "etcd"` heals from every etcd fault (issue 27): a host whose lease ended while it was
//! cut off from etcd, or while etcd was frozen or without quorum, gets a new lease and is a
//! candidate again, so that once the cause is gone some host owns the VIP within the lease + 2 s;
//! and a member that hangs moves nothing while another answers. Never two owners, judged from both
//! hosts' kernel address events. Each test prints the time with no owner and with two owners.
//! Three etcd members (e1..e3), floatip on h1 (150) and h2 (100), a lease of 3 s.

mod common;

use std::time::{Duration, Instant};

use common::*;

const TTL: Duration = Duration::from_secs(3);
/// After the cause is gone, an owner within this: a bound that means "it does not heal" (before
/// the fix, never), not a measurement. The measured time is printed; the target is the lease + 2 s.
const HEALED: Duration = Duration::from_secs(13);

/// Drops the host's traffic to and from etcd's client port, and nothing else.
const CUT_FROM_ETCD: &str = "table inet cut_etcd {
  chain out { type filter hook output priority 0; tcp dport 2379 drop; }
  chain in { type filter hook input priority 0; tcp sport 2379 drop; }
}
";

fn cut(lab: &Lab, h: &Host) {
    let rules = write_file(lab, &format!("cut-etcd-{}.nft", h.name), CUT_FROM_ETCD);
    h.run(&["nft", "-f", path_str(&rules)]).expect("nft rules");
}

fn uncut(h: &Host) {
    h.run(&["nft", "delete", "table", "inet", "cut_etcd"])
        .expect("nft delete");
}

/// Both hosts' address events while the test runs.
struct Watch(AddrWatch, AddrWatch);

impl Watch {
    fn start(h1: &Host, h2: &Host) -> Watch {
        Watch(
            AddrWatch::start(h1, VIP4).expect("watch h1"),
            AddrWatch::start(h2, VIP4).expect("watch h2"),
        )
    }

    /// Never two owners over the whole watch; prints the times with no owner and two owners.
    fn finish(self, what: &str, logs: &str) -> Ownership {
        let (t1, t2) = (self.0.stop(), self.1.stop());
        let own = ownership(&[t1.clone(), t2.clone()], t1.since, unix_now(), false);
        println!(
            "MEASURED {what}: no owner {:.0} ms, two owners {:.0} ms",
            own.none_secs() * 1000.0,
            own.shared_secs() * 1000.0
        );
        assert!(
            own.shared.is_empty(),
            "{what}: two owners during {:?}\n{t1:?}\n{t2:?}\n{logs}",
            own.shared
        );
        own
    }
}

/// Waits until one of `hosts` (whose daemons run: a killed daemon's VIP stays until its kernel
/// lifetime ends) holds the VIP; returns it. Prints how long that took.
fn wait_an_owner<'a>(hosts: &[&'a Host], what: &str, logs: impl Fn() -> String) -> &'a Host {
    let start = Instant::now();
    let mut owner = None;
    wait_until(HEALED + Duration::from_secs(2), STEP, || {
        owner = hosts.iter().copied().find(|h| h.has_address(VIP4));
        owner.is_some()
    });
    let took = start.elapsed();
    let owner =
        owner.unwrap_or_else(|| panic!("{what}: nobody owns the VIP {took:?} later\n{}", logs()));
    println!(
        "MEASURED {what}: an owner ({}) {} ms after the cause was gone",
        owner.name,
        took.as_millis()
    );
    assert!(
        took <= HEALED,
        "{what}: an owner only {took:?} after the cause was gone (want <= {HEALED:?})\n{}",
        logs()
    );
    owner
}

/// Waits until `node` lists both hosts as candidates, with a lease of its own.
fn wait_both_candidates(node: &Node, what: &str) {
    node.wait_status("files", &format!("{what}: both candidates, a lease"), |s| {
        s["etcd"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
            && s["etcd"]["lease"].is_string()
    });
}

/// A log that loops fails the test: no line may repeat more than a few times a second.
fn assert_no_loop(node: &Node, host: &str, seconds: f64) {
    let log = node.log();
    let unreachable = log.matches("etcd unreachable:").count();
    let refused = log.matches("etcd refused").count();
    let member = log.matches("failed:").count();
    let lines = unreachable + refused + member;
    assert!(
        (lines as f64) <= 6.0 + seconds,
        "{host} logs {lines} failures in {seconds:.0} s: it loops\n{log}"
    );
}

#[test]
fn etcd_owner_cut_off_longer_than_its_lease_is_a_candidate_again() {
    let name = "etcd_heal_owner";
    if !require_root(name) || !require_etcd(name) || !require_nft(name) {
        return;
    }
    let (lab, h1, h2, _cluster, n1, mut n2) = etcd_lab_ttl(name, false, TTL);
    wait_both_candidates(&n1, "before");
    let start = Instant::now();
    let watch = Watch::start(&h1, &h2);
    cut(&lab, &h1);
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    // h1's lease has surely ended in etcd (h2 won the key); the cut lasts a little longer.
    std::thread::sleep(Duration::from_secs(1));
    uncut(&h1);
    // h1 starts over with a new lease and is a candidate again (as both daemons see it).
    wait_both_candidates(&n2, "after the cut");
    wait_both_candidates(&n1, "after the cut (h1)");
    assert!(
        n1.log().contains("starting over with a new one"),
        "{}",
        n1.log()
    );
    // Now the owner dies: h1 takes the VIP once h2's lease ends.
    assert!(n2.kill());
    wait_an_owner(
        &[&h1],
        "owner cut, healed, then the new owner killed",
        || n1.log(),
    );
    watch.finish("owner cut from etcd for the lease + 1 s", &logs(&n1, &n2));
    assert_no_loop(&n1, "h1", start.elapsed().as_secs_f64());
    n2.restart();
}

#[test]
fn etcd_backup_cut_off_with_a_member_down_is_a_candidate_again() {
    let name = "etcd_heal_backup";
    if !require_root(name) || !require_etcd(name) || !require_nft(name) {
        return;
    }
    let (lab, h1, h2, cluster, n1, n2) = etcd_lab_ttl(name, false, TTL);
    wait_both_candidates(&n1, "before");
    // One member down for good: the cut and the healing happen on two members.
    cluster.kill(2);
    let start = Instant::now();
    let watch = Watch::start(&h1, &h2);
    cut(&lab, &h2);
    // Longer than the lease: h2's candidacy leaves etcd with its lease.
    wait_until(Duration::from_secs(10), POLL, || {
        n1.status("files")["etcd"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    });
    std::thread::sleep(Duration::from_secs(1));
    uncut(&h2);
    wait_both_candidates(&n1, "after the cut");
    assert!(n1.kill());
    wait_an_owner(&[&h2], "backup cut, healed, then the owner killed", || {
        n2.log()
    });
    watch.finish(
        "backup cut from etcd for 4 s, one member down",
        &logs(&n1, &n2),
    );
    assert_no_loop(&n2, "h2", start.elapsed().as_secs_f64());
}

/// SIGSTOP of `members` for 10 s, then SIGCONT: an owner within the lease + 2 s of the resume, both
/// hosts candidates again, never two owners.
fn frozen(name: &str, members: &[usize], what: &str) {
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (_lab, h1, h2, cluster, n1, n2) = etcd_lab_ttl(name, false, TTL);
    wait_both_candidates(&n1, "before");
    let start = Instant::now();
    let watch = Watch::start(&h1, &h2);
    for &i in members {
        assert!(cluster.procs[i].signal(libc::SIGSTOP));
    }
    std::thread::sleep(Duration::from_secs(10));
    for &i in members {
        assert!(cluster.procs[i].signal(libc::SIGCONT));
    }
    wait_an_owner(&[&h1, &h2], what, || logs(&n1, &n2));
    wait_both_candidates(&n1, "after the freeze");
    wait_both_candidates(&n2, "after the freeze (h2)");
    std::thread::sleep(Duration::from_millis(500));
    watch.finish(what, &logs(&n1, &n2));
    let secs = start.elapsed().as_secs_f64();
    assert_no_loop(&n1, "h1", secs);
    assert_no_loop(&n2, "h2", secs);
}

#[test]
fn etcd_frozen_for_10s_then_resumed_an_owner_within_the_lease() {
    frozen(
        "etcd_heal_frozen",
        &[0, 1, 2],
        "every etcd member stopped for 10 s",
    );
}

#[test]
fn etcd_quorum_lost_for_10s_then_back_an_owner_within_the_lease() {
    frozen(
        "etcd_heal_quorum",
        &[0, 1],
        "two of three etcd members stopped for 10 s",
    );
}

/// Member `i`'s id and the id of the leader it knows, from its own `/v3/maintenance/status`.
fn member_ids(cluster: &EtcdCluster, i: usize) -> (String, String) {
    let url = format!("{}/v3/maintenance/status", cluster.endpoints()[i]);
    let out = cluster.hosts[i]
        .output(&["curl", "-s", "-m", "2", "-X", "POST", "-d", "{}", &url])
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let id = |x: &serde_json::Value| {
        x.as_str()
            .map(String::from)
            .unwrap_or_else(|| x.to_string())
    };
    (id(&v["header"]["member_id"]), id(&v["leader"]))
}

/// Makes member `i` the leader (`want`) or a follower (`!want`), through the gateway's
/// transfer-leadership, and waits until every member agrees.
fn make_leader(cluster: &EtcdCluster, i: usize, want: bool) {
    let ok = wait_until(Duration::from_secs(15), Duration::from_millis(300), || {
        let (me, leader) = member_ids(cluster, i);
        let agreed = (0..3).all(|j| member_ids(cluster, j).1 == leader);
        if agreed && (me == leader) == want {
            return true;
        }
        let target = if want { i } else { (i + 1) % 3 };
        let (target_id, _) = member_ids(cluster, target);
        let from = (0..3)
            .find(|&j| member_ids(cluster, j).0 == leader)
            .unwrap_or(i);
        let url = format!(
            "{}/v3/maintenance/transfer-leadership",
            cluster.endpoints()[from]
        );
        let body = format!("{{\"targetID\":\"{target_id}\"}}");
        let _ =
            cluster.hosts[from].output(&["curl", "-s", "-m", "5", "-X", "POST", "-d", &body, &url]);
        false
    });
    assert!(
        ok,
        "cannot make e{} {}",
        i + 1,
        if want { "the leader" } else { "a follower" }
    );
}

/// SIGSTOP of the member h1 uses (e1, made the leader or a follower first) for three leases: the
/// owner renews through the other members, and the VIP never blinks.
fn hung(name: &str, leader: bool, ttl: Duration) {
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let (lab, h1, h2, cluster) = etcd_hosts(name);
    make_leader(&cluster, 0, leader);
    let n1 = Node::start(&lab, &h1, &[etcd_inst_ttl(150, false, ttl)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let n2 = Node::start(&lab, &h2, &[etcd_inst_ttl(100, false, ttl)]);
    wait_both_candidates(&n1, "before");
    let endpoint = n1.status("files")["etcd"]["endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(endpoint, cluster.endpoints()[0], "h1 uses e1");
    let role = if leader { "the leader" } else { "a follower" };
    let what = format!(
        "e1 ({role}, in use by the owner) hung for three leases of {}s",
        ttl.as_secs()
    );
    let watch = Watch::start(&h1, &h2);
    assert!(cluster.procs[0].signal(libc::SIGSTOP));
    std::thread::sleep(ttl * 3);
    // While e1 hangs: the owner keeps the VIP, renewing through the other members.
    let own = watch.finish(&what, &logs(&n1, &n2));
    assert!(
        own.none.is_empty(),
        "{what}: the VIP blinked out for {:?}\n{}",
        own.none,
        logs(&n1, &n2)
    );
    assert!(
        h1.has_address(VIP4) && !h2.has_address(VIP4),
        "{}",
        logs(&n1, &n2)
    );
    // e1 resumes. A resumed leader of an etcd without upstream's fix (etcd PR 16822; Debian's
    // 3.4.23 predates it) revokes the leases it believes expired, ours among them: the owner then
    // lets go and the next candidate claims. Never two owners either way, and one owner after.
    let watch = Watch::start(&h1, &h2);
    assert!(cluster.procs[0].signal(libc::SIGCONT));
    std::thread::sleep(ttl + Duration::from_secs(2));
    watch.finish(&format!("{what}, then resumed"), &logs(&n1, &n2));
    assert_eq!(holders(&[&h1, &h2], VIP4).len(), 1, "{}", logs(&n1, &n2));
}

#[test]
fn etcd_a_hung_follower_in_use_moves_nothing_at_a_3s_lease() {
    hung("etcd_heal_hungf", false, TTL);
}

/// A hung leader: the others need an election (1-2 s at etcd's defaults) before anyone can renew,
/// which the default lease of 5 s covers (at 3 s it may not: docs/etcd.md says so).
#[test]
fn etcd_a_hung_leader_in_use_moves_nothing_at_the_default_lease() {
    hung("etcd_heal_hungl", true, ETCD_TTL);
}
