//! Sync groups: members on one host, faults and planned moves of the whole group.

use super::*;

const VIP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 98);

/// Two instances on eth0 (a: VRID 51, VIP .97; b: VRID 52, VIP .98), b tracking eth1, and `group`.
fn two(group: &str) -> String {
    format!(
        "[[instance]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 51\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"{VIP}/24\"]\n\n\
         [[instance]]\nname = \"b\"\ninterface = \"eth0\"\nvrid = 52\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"{VIP_B}/24\"]\ntrack_interfaces = [\"eth1\"]\n\n{group}"
    )
}

const GROUP: &str = "[[group]]\nname = \"fs\"\ninstances = [\"a\", \"b\"]\n";
const ETH1: u32 = 3;

fn start_two(group: &str) -> Harness {
    Harness::start_with(&two(group), |host| host.add_link("eth1", ETH1))
}

/// The peer is master of VRID 51 only (priority `priority`), for `n` adverts 100 ms apart; VRID 52's
/// adverts do not reach us (filtered).
fn peer_on_a_only(h: &mut Harness, priority: u8, n: usize) {
    for _ in 0..n {
        h.advert_for(51, priority, VIP);
        h.advance(Duration::from_millis(100));
    }
}

fn vip_b() -> IpAddr {
    IpAddr::V4(VIP_B)
}

#[test]
fn without_a_group_the_member_that_hears_nothing_claims() {
    let mut h = start_two("");
    peer_on_a_only(&mut h, 200, 20);
    assert_eq!(h.state_of("a"), State::Backup);
    assert_eq!(h.state_of("b"), State::Master, "split: b claimed alone");
}

#[test]
fn a_member_that_hears_nothing_while_its_sibling_hears_a_master_does_not_claim_and_says_why() {
    let mut h = start_two(GROUP);
    peer_on_a_only(&mut h, 200, 20);
    assert_eq!(h.state_of("a"), State::Backup);
    assert_eq!(h.state_of("b"), State::Backup, "b does not split the group");
    assert!(!h.host.has(IFINDEX, vip_b()));
    let why = status_of(&h, "b").claim_inhibit.expect("b says why");
    assert_eq!(
        why,
        "not claiming: group fs: no adverts heard on VRID 52, but a hears master 192.0.2.2 on VRID 51: VRID 52 VRRP filtered between us?"
    );
    // The peer goes away: a claims after master-down, and b with it at once.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state_of("a"), State::Master);
    assert_eq!(h.state_of("b"), State::Master);
    assert!(h.host.has(IFINDEX, vip()) && h.host.has(IFINDEX, vip_b()));
    assert_eq!(status_of(&h, "b").claim_inhibit, None);
}

#[test]
fn a_member_that_yields_to_a_better_master_takes_its_siblings_along() {
    let mut h = start_two(GROUP);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Master, State::Master)
    );
    h.host.take_log();
    h.advert_for(51, 254, VIP);
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Backup, State::Backup)
    );
    assert!(!h.host.has(IFINDEX, vip_b()), "b gave up at once");
    let reason = status_of(&h, "b").reason.unwrap();
    assert_eq!(
        reason,
        "BACKUP: group fs: a became BACKUP (master 192.0.2.2, priority 254)"
    );
    // And b stays backup while a hears that master.
    peer_on_a_only(&mut h, 254, 20);
    assert_eq!(h.state_of("b"), State::Backup);
}

#[test]
fn a_fault_of_one_member_hands_over_the_whole_group_make_before_break() {
    let mut h = start_two(GROUP);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Master, State::Master)
    );
    h.host.take_log();
    {
        let _rt = h.runtime.enter();
        h.daemon.on_net_event(
            h.now,
            crate::net::netlink::NetEvent::Link {
                index: ETH1,
                name: "eth1".into(),
                up: false,
            },
        );
        h.daemon.carry_out(h.now);
    }
    // b faults (its tracked eth1), and a with it: both advertise 0 and keep their VIPs.
    let log = h.host.take_log();
    let zeros = log
        .iter()
        .filter(|c| matches!(c, Call::Advert { priority: 0, .. }))
        .count();
    assert_eq!(zeros, 2, "both members step down: {log:?}");
    assert!(h.host.has(IFINDEX, vip()) && h.host.has(IFINDEX, vip_b()));
    // The successor speaks on a's VRID only (b's is filtered): both let go.
    h.advance(Duration::from_millis(20));
    h.advert_for(51, 100, VIP);
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Fault, State::Fault)
    );
    assert!(!h.host.has(IFINDEX, vip()) && !h.host.has(IFINDEX, vip_b()));
    let reason = status_of(&h, "a").reason.unwrap();
    assert!(
        reason.starts_with("FAULT: group fs: b is in FAULT (tracked interface eth1 is down)"),
        "{reason}"
    );
    // eth1 back: both back in the election, neither claims while a better peer is heard.
    {
        let _rt = h.runtime.enter();
        h.daemon.on_net_event(
            h.now,
            crate::net::netlink::NetEvent::Link {
                index: ETH1,
                name: "eth1".into(),
                up: true,
            },
        );
    }
    peer_on_a_only(&mut h, 200, 20);
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Backup, State::Backup)
    );
}

#[test]
fn takeover_and_release_of_a_group_move_every_member() {
    let mut h = start_two(GROUP);
    peer_on_a_only(&mut h, 200, 10);
    let mut rx = h.call(Request::Takeover {
        instance: "fs".into(),
    });
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(
                message.contains("a: taking over") && message.contains("b: taking over"),
                "{message}"
            )
        }
        other => panic!("expected the takeover to be done, got {other:?}"),
    }
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Master, State::Master)
    );
    assert!(h.host.has(IFINDEX, vip()) && h.host.has(IFINDEX, vip_b()));
    let mut rx = h.call(Request::Status { instance: None });
    match answer(&mut rx) {
        Some(Response::Status { groups, .. }) => {
            assert_eq!(groups.len(), 1);
            assert_eq!(groups[0].name, "fs");
            assert!(!groups[0].split);
            assert_eq!(groups[0].members[1].state, "MASTER");
        }
        other => panic!("expected a status, got {other:?}"),
    }
    // Release: answered once both handed over; the successor is heard on a's VRID only.
    let mut rx = h.call(Request::Release {
        instance: "fs".into(),
        force: false,
    });
    h.advance(Duration::from_millis(30));
    assert_eq!(answer(&mut rx), None, "not before the members handed over");
    assert!(
        h.host.has(IFINDEX, vip_b()),
        "kept until the successor speaks"
    );
    h.advert_for(51, 200, VIP);
    h.advance(Duration::from_millis(10));
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(
                message.contains("a: released") && message.contains("b: released"),
                "{message}"
            )
        }
        other => panic!("expected the release to be done, got {other:?}"),
    }
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Backup, State::Backup)
    );
    assert!(!h.host.has(IFINDEX, vip()) && !h.host.has(IFINDEX, vip_b()));
}
