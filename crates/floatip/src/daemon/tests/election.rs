//! One instance over the fake host: claims, peers, releases, reloads, status.

use super::*;

#[test]
fn a_lone_instance_claims_adds_announces_and_reports_it() {
    let mut h = Harness::start(&instance(51, 150));
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(IFINDEX, vip()), "no claim before master-down");
    h.become_master();
    let log = h.host.take_log();
    let added = log.iter().position(|c| *c == Call::Add(vip())).unwrap();
    let announced = log
        .iter()
        .position(|c| *c == Call::Announce(vip()))
        .unwrap();
    assert!(added < announced, "announced after it was added: {log:?}");
    assert!(log.contains(&Call::Advert {
        dst: IpAddr::V4(GROUP_V4),
        priority: 150
    }));
    assert!(h.host.has(IFINDEX, vip()));
    let st = h.daemon.instances[0].status(&[vip()], h.now);
    assert_eq!(st.state, "MASTER");
    assert!(st.master.as_ref().unwrap().is_self);
    assert!(st.vips[0].present_in_kernel);
    assert_eq!(st.counters.transitions.get("BACKUP->MASTER"), Some(&1));
    assert!(st.reason.unwrap().contains("MASTER"));
}

#[test]
fn a_better_peer_is_followed_and_shown() {
    let mut h = Harness::start(&instance(51, 100));
    h.become_master();
    h.advert_from_peer(51, 200);
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(IFINDEX, vip()));
    let st = h.daemon.instances[0].status(&[], h.now);
    let master = st.master.unwrap();
    assert_eq!(master.address, IpAddr::V4(PEER));
    assert_eq!(master.priority, 200);
    assert_eq!(st.speakers.len(), 1);
    assert_eq!(st.counters.adverts_received, 1);
}

#[test]
fn a_release_nobody_answers_is_refused_and_the_master_stays() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    let mut rx = h.call(Request::Release {
        instance: "files".into(),
        force: false,
    });
    assert_eq!(answer(&mut rx), None, "answered once the handoff is over");
    assert!(h.host.take_log().contains(&Call::Advert {
        dst: IpAddr::V4(GROUP_V4),
        priority: 0
    }));
    h.advance(Duration::from_secs(2));
    match answer(&mut rx) {
        Some(Response::Error { message }) => {
            assert!(message.contains("no other router"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(h.state(), State::Master);
    assert!(h.host.has(IFINDEX, vip()));
    assert!(!h.host.take_log().contains(&Call::Remove(vip())));
}

#[test]
fn a_release_is_answered_when_the_successor_takes_over() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    let mut rx = h.call(Request::Release {
        instance: "files".into(),
        force: false,
    });
    h.advance(Duration::from_millis(50));
    assert!(h.host.has(IFINDEX, vip()), "kept until a successor speaks");
    h.advert_from_peer(51, 100);
    h.advance(Duration::from_millis(10));
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(
                message.contains("192.0.2.2 (priority 100) took over"),
                "{message}"
            )
        }
        other => panic!("expected the release to be done, got {other:?}"),
    }
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(IFINDEX, vip()));
}

#[test]
fn a_reloaded_priority_applies_in_place_without_a_failover() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    Harness::write_config(&h.dir, &instance(51, 120));
    let mut rx = h.call(Request::Reload);
    match answer(&mut rx) {
        Some(Response::Done { message }) => assert!(
            message.contains("changed in place: [files (priority 120)]"),
            "{message}"
        ),
        other => panic!("expected the reload to be done, got {other:?}"),
    }
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Master);
    assert!(!h.host.take_log().contains(&Call::Remove(vip())));
    assert_eq!(h.daemon.instances[0].core.effective_priority(), 120);
}

#[test]
fn a_reloaded_vrid_hands_over_before_the_new_instance_starts() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    Harness::write_config(&h.dir, &instance(52, 150));
    let mut rx = h.call(Request::Reload);
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(message.contains("stepping down: [files]"), "{message}");
            assert!(message.contains("started: [files]"), "{message}");
        }
        other => panic!("expected the reload to be done, got {other:?}"),
    }
    h.advance(Duration::from_secs(3));
    let log = h.host.take_log();
    let removed = log.iter().position(|c| *c == Call::Remove(vip()));
    let added = log.iter().position(|c| *c == Call::Add(vip()));
    assert!(
        matches!((removed, added), (Some(r), Some(a)) if r < a),
        "the retiring instance lets go before the new one claims: {log:?}"
    );
    assert_eq!(h.daemon.instances.len(), 1, "the retired instance is gone");
    assert_eq!(h.daemon.instances[0].cfg.vrid, 52);
    assert_eq!(h.state(), State::Master);
}

#[test]
fn history_is_capped_newest_last() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    let rt = &mut h.daemon.instances[0];
    for i in 0..60 {
        rt.record(Record {
            at: UNIX_EPOCH + Duration::from_secs(i as u64),
            from: State::Backup,
            to: State::Master,
            reason: format!("r{i}"),
        });
    }
    let st = rt.status(&[], h.now);
    assert_eq!(st.history.len(), HISTORY_MAX);
    assert_eq!(st.history.last().unwrap().reason, "r59");
    assert_eq!(st.reason.as_deref(), Some("r59"));
    assert!(st.master.unwrap().is_self);
    assert!(!st.vips[0].present_in_kernel);
}
