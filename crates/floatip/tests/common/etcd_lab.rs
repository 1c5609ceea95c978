//! The etcd lab the `election = "etcd"` tests share: the cluster, floatip on h1 (150) and h2 (100)
//! with h1 the owner, and the two ways a move may look from the kernel's address events: a failure
//! (never two owners) and a planned move (make-before-break: never nobody).

use std::time::Duration;

use floatip_lab::{ownership, unix_now, AddrWatch, Host, Lab, Ownership, Timeline, WatchKind};

use super::{lab_with_hosts, wait_sole_owner, EtcdCluster, Instance, Node, SETTLE, VIP4};

/// The lease the tests use: the default.
pub const ETCD_TTL: Duration = Duration::from_secs(5);

/// An etcd instance of priority `priority` on the lab's cluster.
pub fn etcd_inst(priority: u8, preempt: bool) -> Instance {
    etcd_inst_ttl(priority, preempt, ETCD_TTL)
}

/// [`etcd_inst`] with a lease of `ttl`.
pub fn etcd_inst_ttl(priority: u8, preempt: bool, ttl: Duration) -> Instance {
    Instance::v4(priority)
        .preempt(preempt)
        .extra(&EtcdCluster::instance_lines(ttl))
}

/// `election = "etcd"` and the `[etcd]` table for the lab's cluster, apart: an instance's own lines
/// go between them, and the table must come last.
pub fn etcd_parts() -> (String, String) {
    let lines = EtcdCluster::instance_lines(ETCD_TTL);
    let (election, table) = lines.split_once("\n\n").expect("two parts");
    (election.to_string(), table.to_string())
}

/// `[[instance.check]]` "svc": healthy while `flag` exists, looked at every 200 ms.
pub fn flag_check(flag: &std::path::Path) -> String {
    format!(
        "[[instance.check]]\nname = \"svc\"\nkind = \"exec\"\ncommand = [\"/usr/bin/test\", \"-e\", \"{}\"]\ninterval = \"200ms\"\nrise = 1\nfall = 1\n",
        flag.display()
    )
}

/// A lab with h1, h2 and the etcd cluster, nothing started on the hosts.
pub fn etcd_hosts(name: &str) -> (Lab, Host, Host, EtcdCluster) {
    let (mut lab, mut hosts) = lab_with_hosts(name, 2, false);
    let h2 = hosts.pop().expect("h2");
    let h1 = hosts.pop().expect("h1");
    let cluster = EtcdCluster::start(&mut lab);
    (lab, h1, h2, cluster)
}

/// Waits until `node` sees `n` candidates of `instance` in etcd.
pub fn wait_candidates(node: &Node, instance: &str, n: usize) {
    node.wait_status(instance, &format!("{n} candidates in etcd"), |s| {
        s["etcd"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == n)
    });
}

/// A lab with h1, h2 and the etcd cluster; floatip on h1 (150) and h2 (100); h1 owns the VIP.
pub fn etcd_lab(name: &str, preempt: bool) -> (Lab, Host, Host, EtcdCluster, Node, Node) {
    etcd_lab_ttl(name, preempt, ETCD_TTL)
}

/// [`etcd_lab`] with a lease of `ttl`.
pub fn etcd_lab_ttl(
    name: &str,
    preempt: bool,
    ttl: Duration,
) -> (Lab, Host, Host, EtcdCluster, Node, Node) {
    let (lab, h1, h2, cluster) = etcd_hosts(name);
    let n1 = Node::start(&lab, &h1, &[etcd_inst_ttl(150, preempt, ttl)]);
    // h1 is the better candidate: let it claim first, so that the test starts from h1 either way.
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let n2 = Node::start(&lab, &h2, &[etcd_inst_ttl(100, preempt, ttl)]);
    (lab, h1, h2, cluster, n1, n2)
}

/// Watches h1 and h2 for the VIP while `act` runs, waits until `to` is its sole owner, and returns
/// h1's and h2's timelines a moment later (for [`assert_handed_over`] or
/// [`assert_make_before_break`]).
pub fn watch_move(h1: &Host, h2: &Host, to: &Host, act: impl FnOnce()) -> (Timeline, Timeline) {
    let w1 = AddrWatch::start(h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(h2, VIP4).expect("watch h2");
    act();
    wait_sole_owner(&[h1, h2], to, VIP4, SETTLE);
    std::thread::sleep(Duration::from_millis(300));
    (w1.stop(), w2.stop())
}

/// Both daemons' logs, for a failure message.
pub fn logs(n1: &Node, n2: &Node) -> String {
    format!("h1 log:\n{}\nh2 log:\n{}", n1.log(), n2.log())
}

/// A failure's move: the VIP left `from` and reached `to`, with no instant of two owners between
/// the watches' start and now.
pub fn assert_handed_over(from: &Timeline, to: &Timeline, what: &str, logs: &str) {
    let own = moved(from, to, what, logs);
    assert!(
        own.shared.is_empty(),
        "{what}: two owners during {:?}\n{from:?}\n{to:?}\n{logs}",
        own.shared
    );
}

/// A planned move, make-before-break: the VIP left `from` and reached `to`, and some host held it
/// at every instant between the watches' start and now (the successor added it before the old
/// owner removed it).
pub fn assert_make_before_break(from: &Timeline, to: &Timeline, what: &str, logs: &str) {
    let own = moved(from, to, what, logs);
    assert!(
        own.none.is_empty(),
        "{what}: nobody held the VIP during {:?} (break-before-make)\n{from:?}\n{to:?}\n{logs}",
        own.none
    );
}

/// The VIP left `from` and is on `to` now; who held it since the watches started.
fn moved(from: &Timeline, to: &Timeline, what: &str, logs: &str) -> Ownership {
    let end = unix_now();
    assert!(
        from.events.iter().any(|e| e.kind == WatchKind::AddrRemoved) && !to.held(end).is_empty(),
        "{what}: the watches saw the VIP leave and arrive\n{from:?}\n{to:?}\n{logs}"
    );
    ownership(&[from.clone(), to.clone()], from.since, end, false)
}
