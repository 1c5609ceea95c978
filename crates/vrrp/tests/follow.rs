//! `Event::Follow`, the daemon's sync groups moving an instance with its siblings: a backup claims, a
//! master gives up at once, a handing-off master ends its handoff; nothing else moves.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vrrp::{Action, Config, Event, Instance, Override, State, Version};

fn cfg() -> Config {
    Config {
        vrid: 52,
        version: Version::V3,
        priority: 100,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 98))],
        primary: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        probe_before_claim: false,
        follow_v2: false,
    }
}

fn drain(i: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| i.poll_action()).collect()
}

fn follow(to: State) -> Event {
    Event::Follow {
        to,
        reason: "group g: a moved".to_string(),
    }
}

fn last_reason(actions: &[Action]) -> String {
    actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Transition(t) => Some(t.reason.clone()),
            _ => None,
        })
        .expect("a transition")
}

fn backup(t0: Instant) -> Instance {
    let mut i = Instance::new(cfg());
    i.handle_event(t0, Event::Startup);
    drain(&mut i);
    assert_eq!(i.state(), State::Backup);
    i
}

#[test]
fn a_backup_follows_to_master_at_once() {
    let t0 = Instant::now();
    let mut i = backup(t0);
    i.handle_event(t0, follow(State::Master));
    let actions = drain(&mut i);
    assert_eq!(i.state(), State::Master);
    assert!(actions.iter().any(|a| matches!(a, Action::AddAddresses(_))));
    assert_eq!(last_reason(&actions), "MASTER: group g: a moved");
}

#[test]
fn a_released_or_inhibited_backup_does_not_follow_to_master() {
    let t0 = Instant::now();
    let mut i = backup(t0);
    i.handle_event(t0, Event::Override(Override::Release));
    i.handle_event(t0, follow(State::Master));
    assert_eq!(i.state(), State::Backup);
    let mut j = backup(t0);
    j.handle_event(t0, Event::ClaimInhibit(Some("witness".into())));
    j.handle_event(t0, follow(State::Master));
    assert_eq!(j.state(), State::Backup);
    assert!(drain(&mut j).is_empty());
}

#[test]
fn a_master_follows_to_backup_giving_up_at_once() {
    let t0 = Instant::now();
    let mut i = backup(t0);
    i.handle_event(t0, follow(State::Master));
    drain(&mut i);
    i.handle_event(t0, follow(State::Backup));
    let actions = drain(&mut i);
    assert_eq!(i.state(), State::Backup);
    assert!(
        matches!(actions[0], Action::RemoveAddresses(_)),
        "{actions:?}"
    );
    assert_eq!(last_reason(&actions), "BACKUP: group g: a moved");
    // Back in the election: it claims again after master-down unless something holds it.
    i.handle_timeout(t0 + Duration::from_secs(4));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn a_master_handing_off_for_a_fault_ends_the_handoff_when_told_to_follow() {
    let t0 = Instant::now();
    let mut i = backup(t0);
    i.handle_event(t0, follow(State::Master));
    drain(&mut i);
    i.handle_event(t0, Event::Fault(Some("group g: a is in FAULT".into())));
    let actions = drain(&mut i);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RemoveAddresses(_))),
        "make-before-break"
    );
    assert_eq!(i.state(), State::Master);
    i.handle_event(t0 + Duration::from_millis(5), follow(State::Backup));
    let actions = drain(&mut i);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::RemoveAddresses(_))));
    assert_eq!(i.state(), State::Fault);
    assert_eq!(
        last_reason(&actions),
        "FAULT: group g: a is in FAULT; group g: a moved; addresses removed"
    );
}

#[test]
fn follow_moves_nothing_in_fault_or_to_other_states() {
    let t0 = Instant::now();
    let mut i = backup(t0);
    i.handle_event(t0, Event::Fault(Some("check".into())));
    drain(&mut i);
    i.handle_event(t0, follow(State::Master));
    assert_eq!(i.state(), State::Fault);
    let mut j = backup(t0);
    j.handle_event(t0, follow(State::Fault));
    j.handle_event(t0, follow(State::Initialize));
    assert_eq!(j.state(), State::Backup);
    assert!(drain(&mut j).is_empty());
}

#[test]
fn following_with_nobody_heard_waits_for_the_probe_when_probing() {
    let t0 = Instant::now();
    let mut i = Instance::new(Config {
        probe_before_claim: true,
        follow_v2: false,
        ..cfg()
    });
    i.handle_event(t0, Event::Startup);
    drain(&mut i);
    i.handle_event(
        t0 + Duration::from_millis(10),
        Event::Follow {
            to: State::Master,
            reason: "group fileserver: files-v4 became MASTER".into(),
        },
    );
    let a = drain(&mut i);
    assert!(a.iter().any(|a| matches!(a, Action::Probe(_))), "{a:?}");
    assert_eq!(i.state(), State::Backup);
    i.handle_event(t0 + Duration::from_millis(15), Event::ProbeQuiet);
    let a = drain(&mut i);
    assert_eq!(i.state(), State::Master);
    let reason = a
        .iter()
        .find_map(|a| match a {
            Action::Transition(t) => Some(t.reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(reason.starts_with("MASTER: group fileserver"), "{reason}");
    assert!(reason.contains("nobody else answers"), "{reason}");
}
