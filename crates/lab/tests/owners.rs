//! AddrWatch against the real kernel: address and link events in a lab host, and ownership over
//! two hosts' watches. Needs root; without it the tests print SKIPPED (and fail when CI=true).

use std::time::Duration;

use floatip_lab::{ownership, require_root, unix_now, AddrWatch, Lab, WatchKind};

const WAIT: Duration = Duration::from_secs(5);

fn kinds(w: &AddrWatch) -> Vec<WatchKind> {
    w.timeline().events.iter().map(|e| e.kind).collect()
}

#[test]
fn watch_sees_add_and_remove_of_v4_and_v6_and_link_changes() {
    if !require_root("watch_sees_add_and_remove_of_v4_and_v6_and_link_changes") {
        return;
    }
    let mut lab = Lab::new("fiplab_watch").unwrap();
    let h1 = lab
        .add_host("h1", "192.0.2.1/24", Some("2001:db8::1/64"))
        .unwrap();
    let w4 = AddrWatch::start(&h1, "192.0.2.97").unwrap();
    let w6 = AddrWatch::start(&h1, "2001:db8::97").unwrap();
    // Its own address is held from the start.
    let own = AddrWatch::start(&h1, "192.0.2.1").unwrap();
    assert!(own.holds() && own.link_up());
    assert!(!w4.holds() && w4.timeline().events.is_empty());

    let t0 = unix_now();
    h1.add_address("192.0.2.97/24").unwrap();
    assert!(w4.wait_holds(true, WAIT), "no RTM_NEWADDR seen");
    h1.add_address("2001:db8::97/64").unwrap();
    assert!(w6.wait_holds(true, WAIT));
    h1.del_address("192.0.2.97/24").unwrap();
    assert!(w4.wait_holds(false, WAIT), "no RTM_DELADDR seen");
    let t1 = unix_now();
    assert_eq!(
        kinds(&w4),
        vec![WatchKind::AddrAdded, WatchKind::AddrRemoved]
    );
    let tl = w4.timeline();
    assert!(tl.events.iter().all(|e| e.at >= t0 && e.at <= t1));
    assert_eq!(tl.held(t1).len(), 1);

    // The cable: the switch port goes down, eth0 loses carrier; then back.
    h1.link_down().unwrap();
    assert!(floatip_lab::wait_until(
        WAIT,
        Duration::from_millis(1),
        || !w4.link_up()
    ));
    h1.link_up().unwrap();
    assert!(floatip_lab::wait_until(
        WAIT,
        Duration::from_millis(1),
        || w4.link_up()
    ));
    let tl = w4.stop();
    let k: Vec<WatchKind> = tl.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        k,
        vec![
            WatchKind::AddrAdded,
            WatchKind::AddrRemoved,
            WatchKind::LinkDown,
            WatchKind::LinkUp
        ]
    );
    assert_eq!((tl.lost, tl.error.clone()), (0, None));
    assert_eq!(
        kinds(&w6),
        vec![WatchKind::AddrAdded, WatchKind::LinkDown, WatchKind::LinkUp]
    );
    // The host's own address never changed.
    assert!(own
        .stop()
        .events
        .iter()
        .all(|e| !matches!(e.kind, WatchKind::AddrAdded | WatchKind::AddrRemoved)));
}

#[test]
fn ownership_over_two_hosts_sees_the_overlap_and_the_gap() {
    if !require_root("ownership_over_two_hosts_sees_the_overlap_and_the_gap") {
        return;
    }
    let mut lab = Lab::new("fiplab_owners").unwrap();
    let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
    let h2 = lab.add_host("h2", "192.0.2.2/24", None).unwrap();
    let vip = "192.0.2.97/24";
    h1.add_address(vip).unwrap();
    let w1 = AddrWatch::start(&h1, vip).unwrap();
    let w2 = AddrWatch::start(&h2, vip).unwrap();
    let t0 = unix_now();
    // Both hold it (h2 adds before h1 removes), then nobody (h2 removes), then h1 again.
    h2.add_address(vip).unwrap();
    assert!(w2.wait_holds(true, WAIT));
    h1.del_address(vip).unwrap();
    assert!(w1.wait_holds(false, WAIT));
    h2.del_address(vip).unwrap();
    assert!(w2.wait_holds(false, WAIT));
    h1.add_address(vip).unwrap();
    assert!(w1.wait_holds(true, WAIT));
    let t1 = unix_now();
    let o = ownership(&[w1.stop(), w2.stop()], t0, t1, false);
    assert_eq!(o.shared.len(), 1, "{o:?}");
    assert_eq!(
        o.shared[0].holders,
        vec!["h1".to_string(), "h2".to_string()]
    );
    assert_eq!(o.none.len(), 1, "{o:?}");
    assert!(o.shared[0].span.to <= o.none[0].from);
    drop(lab);
}
