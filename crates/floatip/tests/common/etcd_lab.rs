//! The etcd lab the `election = "etcd"` tests share: the cluster, floatip on h1 (150) and h2 (100)
//! with h1 the owner, and the two ways a move may look from the kernel's address events: a failure
//! (never two owners) and a planned move (make-before-break: never nobody).

use std::time::Duration;

use floatip_lab::{ownership, unix_now, Host, Lab, Timeline, WatchKind};

use super::{lab_with_hosts, wait_sole_owner, EtcdCluster, Instance, Node, SETTLE, VIP4};

/// The lease the tests use: the default.
pub const ETCD_TTL: Duration = Duration::from_secs(5);

/// An etcd instance of priority `priority` on the lab's cluster.
pub fn etcd_inst(priority: u8, preempt: bool) -> Instance {
    Instance::v4(priority)
        .preempt(preempt)
        .extra(&EtcdCluster::instance_lines(ETCD_TTL))
}

/// A lab with h1, h2 and the etcd cluster; floatip on h1 (150) and h2 (100); h1 owns the VIP.
pub fn etcd_lab(name: &str, preempt: bool) -> (Lab, Host, Host, EtcdCluster, Node, Node) {
    let (mut lab, mut hosts) = lab_with_hosts(name, 2, false);
    let h2 = hosts.pop().expect("h2");
    let h1 = hosts.pop().expect("h1");
    let cluster = EtcdCluster::start(&mut lab);
    let n1 = Node::start(&lab, &h1, &[etcd_inst(150, preempt)]);
    // h1 is the better candidate: let it claim first, so that the test starts from h1 either way.
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let n2 = Node::start(&lab, &h2, &[etcd_inst(100, preempt)]);
    (lab, h1, h2, cluster, n1, n2)
}

/// Both daemons' logs, for a failure message.
pub fn logs(n1: &Node, n2: &Node) -> String {
    format!("h1 log:\n{}\nh2 log:\n{}", n1.log(), n2.log())
}

/// A failure's move: the VIP left `from` and reached `to`, with no instant of two owners between
/// the watches' start and now.
pub fn assert_handed_over(from: &Timeline, to: &Timeline, what: &str, logs: &str) {
    let end = unix_now();
    assert!(
        from.events.iter().any(|e| e.kind == WatchKind::AddrRemoved) && !to.held(end).is_empty(),
        "{what}: the watches saw the VIP leave and arrive\n{from:?}\n{to:?}\n{logs}"
    );
    let own = ownership(&[from.clone(), to.clone()], from.since, end, false);
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
    let end = unix_now();
    assert!(
        from.events.iter().any(|e| e.kind == WatchKind::AddrRemoved) && !to.held(end).is_empty(),
        "{what}: the watches saw the VIP leave and arrive\n{from:?}\n{to:?}\n{logs}"
    );
    let own = ownership(&[from.clone(), to.clone()], from.since, end, false);
    assert!(
        own.none.is_empty(),
        "{what}: nobody held the VIP during {:?} (break-before-make)\n{from:?}\n{to:?}\n{logs}",
        own.none
    );
}
