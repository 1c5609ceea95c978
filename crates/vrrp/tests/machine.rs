//! Unit-level scenarios for `vrrp::machine`, one rule each: timers, elections, planned moves, faults.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use vrrp::machine::{master_down_interval, skew_time, Handoff};
use vrrp::{Action, Advert, Config, Event, Instance, Override, State, Version};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn vip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 97))
}

fn cfg(priority: u8, primary: u8) -> Config {
    Config {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: vec![vip()],
        primary: ip(primary),
        probe_before_claim: false,
        follow_v2: false,
    }
}

fn advert(priority: u8, interval_cs: u16) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs,
        addresses: vec![vip()].into(),
    }
}

fn adv_event(src: u8, priority: u8) -> Event {
    Event::Advert {
        src: ip(src),
        advert: advert(priority, 100),
    }
}

fn drain(i: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| i.poll_action()).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn transitions(actions: &[Action]) -> Vec<&vrrp::Transition> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transition(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn adverts_sent(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvert(a) => Some(a.priority),
            _ => None,
        })
        .collect()
}

fn has_remove(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::RemoveAddresses(_)))
}

fn has_add(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::AddAddresses(_)))
}

fn has_announce(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Announce(_)))
}

/// A started backup at `t0` with its startup actions drained.
fn backup(config: Config, t0: Instant) -> Instance {
    let mut i = Instance::new(config);
    i.handle_event(t0, Event::Startup);
    drain(&mut i);
    assert_eq!(i.state(), State::Backup);
    i
}

/// A master at the returned instant: a backup whose master-down ran out.
fn master(config: Config, t0: Instant) -> (Instance, Instant) {
    let mut i = backup(config, t0);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    drain(&mut i);
    assert_eq!(i.state(), State::Master);
    (i, t)
}

#[test]
fn skew_and_master_down_are_exact_in_nanoseconds() {
    assert_eq!(skew_time(254, ms(10)), Duration::from_nanos(78_125));
    assert_eq!(
        master_down_interval(254, ms(10)),
        Duration::from_nanos(30_078_125)
    );
    assert_eq!(skew_time(100, ms(1000)), Duration::from_nanos(609_375_000));
    assert_eq!(
        master_down_interval(100, ms(1000)),
        Duration::from_nanos(3_609_375_000)
    );
    // And the instance arms exactly that at startup.
    let t0 = Instant::now();
    let i = backup(cfg(100, 1), t0);
    assert_eq!(
        i.poll_timeout(),
        Some(t0 + Duration::from_nanos(3_609_375_000))
    );
    assert_eq!(i.skew_time(), Duration::from_nanos(609_375_000));
}

#[test]
fn owner_claims_at_once_on_startup() {
    let t0 = Instant::now();
    let mut i = Instance::new(cfg(255, 1));
    i.handle_event(t0, Event::Startup);
    let a = drain(&mut i);
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a[0], Action::AddAddresses(vec![vip()]));
    assert_eq!(a[1], Action::Announce(vec![vip()]));
    assert_eq!(a[2], Action::SendAdvert(advert(255, 100)));
    let Action::Transition(t) = &a[3] else {
        panic!("{a:?}")
    };
    assert_eq!((t.from, t.to), (State::Initialize, State::Master));
    assert!(t.reason.contains("255"), "{}", t.reason);
    assert_eq!(i.poll_timeout(), Some(t0 + ms(1000)));
}

#[test]
fn backup_claims_when_master_goes_silent_and_says_why() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    i.handle_event(t0 + ms(500), adv_event(1, 150));
    let due = t0 + ms(500) + Duration::from_nanos(3_609_375_000);
    assert_eq!(i.poll_timeout(), Some(due));
    i.handle_timeout(due - Duration::from_nanos(1));
    assert!(drain(&mut i).is_empty());
    i.handle_timeout(due);
    let a = drain(&mut i);
    assert!(has_add(&a) && has_announce(&a));
    assert_eq!(adverts_sent(&a), vec![100]);
    let t = transitions(&a);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t[0].reason,
        "MASTER: no advert from 192.0.2.1 for 3.61 s (master down)"
    );
    assert_eq!(i.last_transition(), Some(t[0]));
}

#[test]
fn v3_backup_adopts_the_masters_interval() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    assert_eq!(i.current_interval(), ms(1000));
    i.handle_event(
        t0,
        Event::Advert {
            src: ip(1),
            advert: advert(200, 10),
        },
    );
    assert_eq!(i.current_interval(), ms(100));
    assert_eq!(
        i.poll_timeout(),
        Some(t0 + ms(300) + Duration::from_nanos(60_937_500))
    );
    assert_eq!(i.master_seen().unwrap().interval, ms(100));
    assert_eq!(i.master_seen().unwrap().priority, 200);
}

#[test]
fn v2_backup_keeps_its_configured_interval() {
    let t0 = Instant::now();
    let mut c = cfg(100, 2);
    c.version = Version::V2;
    let mut i = backup(c, t0);
    let mut a = advert(200, 300);
    a.version = Version::V2;
    i.handle_event(
        t0,
        Event::Advert {
            src: ip(1),
            advert: a,
        },
    );
    assert_eq!(i.current_interval(), ms(1000));
    assert_eq!(
        i.poll_timeout(),
        Some(t0 + Duration::from_nanos(3_609_375_000))
    );
}

#[test]
fn priority_zero_advert_makes_backup_wait_only_the_skew() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    i.handle_event(t0, adv_event(1, 200));
    i.handle_event(t0 + ms(200), adv_event(1, 0));
    let due = t0 + ms(200) + Duration::from_nanos(609_375_000);
    assert_eq!(i.poll_timeout(), Some(due));
    i.handle_timeout(due);
    let a = drain(&mut i);
    let t = transitions(&a);
    assert_eq!(t[0].to, State::Master);
    assert!(t[0].reason.contains("192.0.2.1"), "{}", t[0].reason);
    assert!(t[0].reason.contains("priority 0"), "{}", t[0].reason);
    assert!(t[0].reason.contains("609.38 ms"), "{}", t[0].reason);
}

#[test]
fn master_yields_to_higher_priority_and_removes_addresses() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(150, 1), t0);
    i.handle_event(
        t + ms(10),
        Event::Advert {
            src: ip(2),
            advert: advert(200, 50),
        },
    );
    let a = drain(&mut i);
    assert_eq!(a[0], Action::RemoveAddresses(vec![vip()]));
    let tr = transitions(&a);
    assert_eq!(
        tr[0].reason,
        "BACKUP: advert from 192.0.2.2 priority 200 > ours 150"
    );
    assert_eq!(i.state(), State::Backup);
    assert!(adverts_sent(&a).is_empty());
    // It adopted the new master's 500 ms interval for its master-down timer.
    assert_eq!(i.current_interval(), ms(500));
}

#[test]
fn equal_priority_masters_break_the_tie_by_primary_address() {
    let t0 = Instant::now();
    // We are .5: an equal-priority master at .9 wins.
    let (mut lower, t) = master(cfg(150, 5), t0);
    lower.handle_event(t, adv_event(9, 150));
    let a = drain(&mut lower);
    assert_eq!(lower.state(), State::Backup);
    assert!(has_remove(&a));
    let r = &transitions(&a)[0].reason;
    assert!(
        r.contains("150 = ours 150") && r.contains("192.0.2.9 > ours 192.0.2.5"),
        "{r}"
    );

    // We are .9: an equal-priority master at .5 loses, and we answer it.
    let (mut higher, t) = master(cfg(150, 9), t0);
    higher.handle_event(t, adv_event(5, 150));
    let a = drain(&mut higher);
    assert_eq!(higher.state(), State::Master);
    assert_eq!(adverts_sent(&a), vec![150]);
}

#[test]
fn ipv6_ties_compare_numerically() {
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let t0 = Instant::now();
    let mut c = cfg(100, 1);
    c.primary = v6("fe80::9");
    c.addresses = vec![v6("2001:db8::97")];
    let (mut i, t) = master(c, t0);
    let mut a = advert(100, 100);
    a.addresses = vec![v6("2001:db8::97")].into();
    // fe80::10 (0x10) > fe80::9 numerically, though "10" < "9" as text.
    i.handle_event(
        t,
        Event::Advert {
            src: v6("fe80::10"),
            advert: a.clone(),
        },
    );
    assert_eq!(i.state(), State::Backup);
    drain(&mut i);
    let mut c = cfg(100, 1);
    c.primary = v6("fe80::10");
    let (mut j, t) = master(c, t0);
    j.handle_event(
        t,
        Event::Advert {
            src: v6("fe80::9"),
            advert: a,
        },
    );
    assert_eq!(j.state(), State::Master);
}

#[test]
fn backup_with_preempt_off_accepts_a_lower_master() {
    let t0 = Instant::now();
    let mut c = cfg(200, 2);
    c.preempt = false;
    let mut i = backup(c, t0);
    for k in 0..20 {
        let now = t0 + ms(1000 * k);
        i.handle_event(now, adv_event(1, 100));
        assert!(i.poll_timeout().unwrap() > now + ms(3000));
    }
    assert_eq!(i.state(), State::Backup);
    assert!(transitions(&drain(&mut i)).is_empty());
}

#[test]
fn backup_with_preempt_on_takes_over_from_a_lower_master() {
    let t0 = Instant::now();
    let mut i = backup(cfg(200, 2), t0);
    i.handle_event(t0, adv_event(1, 100));
    let due = i.poll_timeout().unwrap();
    // The lower master keeps advertising; we ignore it and claim at master-down all the same.
    let mut now = t0;
    while now + ms(1000) < due {
        now += ms(1000);
        i.handle_event(now, adv_event(1, 100));
        assert_eq!(i.poll_timeout(), Some(due));
    }
    i.handle_timeout(due);
    let a = drain(&mut i);
    let r = &transitions(&a)[0].reason;
    assert_eq!(i.state(), State::Master);
    assert!(
        r.contains("preempting 192.0.2.1") && r.contains("100 < ours 200"),
        "{r}"
    );
}

#[test]
fn preempt_delay_holds_off_the_claim_until_it_has_passed() {
    let t0 = Instant::now();
    let mut c = cfg(200, 2);
    c.preempt_delay = ms(10_000);
    let mut i = backup(c, t0);
    let mut claimed_at = None;
    // A lower master advertising every second for a minute.
    for k in 0..60 {
        let now = t0 + ms(1000 * k);
        i.handle_timeout(now);
        if i.state() == State::Master {
            claimed_at = Some(i.last_transition().unwrap().at);
            break;
        }
        i.handle_event(now, adv_event(1, 100));
    }
    let claimed = claimed_at.expect("claims once the delay has passed") - t0;
    assert!(claimed >= ms(10_000), "claimed after {claimed:?}");
    assert!(
        claimed <= ms(10_000) + master_down_interval(200, ms(1000)),
        "claimed after {claimed:?}"
    );
    // And the delay never holds off a failover: a silent master is replaced at master-down.
    let mut c = cfg(200, 2);
    c.preempt_delay = ms(60_000);
    let mut j = backup(c, t0);
    j.handle_event(t0, adv_event(1, 100));
    let due = j.poll_timeout().unwrap();
    assert!(due <= t0 + master_down_interval(200, ms(1000)));
    j.handle_timeout(due);
    assert_eq!(j.state(), State::Master);
}

#[test]
fn master_answers_a_lower_priority_advert_and_reannounces() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    let now = t + ms(500);
    i.handle_event(now, adv_event(1, 100));
    let a = drain(&mut i);
    assert_eq!(i.state(), State::Master);
    assert_eq!(adverts_sent(&a), vec![200]);
    assert!(a.contains(&Action::Announce(vec![vip()])), "{a:?}");
    assert!(!has_remove(&a));
    assert_eq!(i.poll_timeout(), Some(now + ms(1000)));
    // Within a second the answer repeats but the announce does not (no GARP storm).
    i.handle_event(now + ms(10), adv_event(1, 100));
    let a = drain(&mut i);
    assert_eq!(adverts_sent(&a), vec![200]);
    assert!(!has_announce(&a));
}

#[test]
fn master_answers_priority_zero_at_once_and_advertises_every_interval() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    for k in 1..=5 {
        let due = i.poll_timeout().unwrap();
        assert_eq!(due, t + ms(1000 * k));
        i.handle_timeout(due);
        assert_eq!(adverts_sent(&drain(&mut i)), vec![200]);
    }
    let now = t + ms(5300);
    i.handle_event(now, adv_event(1, 0));
    assert_eq!(adverts_sent(&drain(&mut i)), vec![200]);
    assert_eq!(i.poll_timeout(), Some(now + ms(1000)));
}

#[test]
fn a_late_wakeup_keeps_the_advert_cadence_and_a_stall_restarts_it() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    // Woken 3 ms late: the advert goes now, the next one stays on the 1 s grid.
    i.handle_timeout(t + ms(1003));
    assert_eq!(adverts_sent(&drain(&mut i)), vec![200]);
    assert_eq!(i.poll_timeout(), Some(t + ms(2000)));
    // Stalled for more than an interval: one advert, then a fresh interval from now (no burst).
    i.handle_timeout(t + ms(4500));
    assert_eq!(adverts_sent(&drain(&mut i)), vec![200]);
    assert_eq!(i.poll_timeout(), Some(t + ms(5500)));
}

#[test]
fn shutdown_keeps_addresses_until_the_successor_is_heard() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    i.handle_event(t, Event::Shutdown);
    let a = drain(&mut i);
    assert_eq!(adverts_sent(&a), vec![0]);
    assert!(!has_remove(&a), "make before break: {a:?}");
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.handoff(), Some(Handoff::Shutdown));
    assert_eq!(i.effective_priority(), 0);
    // The backup's skew later, its advert arrives.
    i.handle_event(t + ms(700), adv_event(1, 100));
    let a = drain(&mut i);
    assert_eq!(a[0], Action::RemoveAddresses(vec![vip()]));
    let tr = transitions(&a);
    assert_eq!((tr[0].from, tr[0].to), (State::Master, State::Initialize));
    assert!(
        tr[0].reason.contains("successor 192.0.2.1 (priority 100)"),
        "{}",
        tr[0].reason
    );
    assert!(i.is_stopped());
    assert_eq!(i.poll_timeout(), None);
}

#[test]
fn shutdown_with_no_successor_removes_at_the_deadline() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    i.handle_event(t, Event::Shutdown);
    drain(&mut i);
    let deadline = t + master_down_interval(200, ms(1000));
    assert_eq!(i.handoff_window(), master_down_interval(200, ms(1000)));
    let mut sent = vec![];
    loop {
        let next = i.poll_timeout().expect("a deadline is armed");
        i.handle_timeout(next);
        let a = drain(&mut i);
        sent.extend(adverts_sent(&a));
        if i.is_stopped() {
            assert_eq!(next, deadline);
            assert!(has_remove(&a));
            let r = &transitions(&a)[0].reason;
            assert!(r.contains("no successor heard within 3.22 s"), "{r}");
            break;
        }
        assert!(!has_remove(&a));
    }
    // Only priority-0 re-sends, once per interval: no normal adverts while handing off.
    assert_eq!(sent, vec![0, 0, 0]);
    assert_eq!(i.state(), State::Initialize);
    assert_eq!(i.poll_timeout(), None);
}

#[test]
fn shutdown_as_backup_ends_at_once_and_removes_nothing() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    i.handle_event(t0 + ms(5), Event::Shutdown);
    let a = drain(&mut i);
    assert!(!has_remove(&a));
    assert!(adverts_sent(&a).is_empty());
    assert_eq!(transitions(&a)[0].to, State::Initialize);
    assert!(i.is_stopped());
    assert_eq!(i.poll_timeout(), None);
}

#[test]
fn release_steps_down_make_before_break_and_never_claims_until_auto() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    i.handle_event(t, Event::Override(Override::Release));
    let a = drain(&mut i);
    assert_eq!(adverts_sent(&a), vec![0]);
    assert!(!has_remove(&a));
    i.handle_event(t + ms(10), adv_event(1, 100));
    let a = drain(&mut i);
    assert!(has_remove(&a));
    assert_eq!(i.state(), State::Backup);
    assert!(transitions(&a)[0].reason.contains("released by operator"));
    // The successor dies; master-down passes many times; we do not claim.
    for k in 1..30 {
        i.handle_timeout(t + ms(1000 * k));
    }
    assert!(drain(&mut i).is_empty());
    assert_eq!(i.state(), State::Backup);
    assert!(i.not_claiming().unwrap().contains("released"));
    // Auto: eligible again, and master-down already passed, so claim at once.
    let now = t + ms(30_000);
    i.handle_event(now, Event::Override(Override::Auto));
    let a = drain(&mut i);
    assert_eq!(i.state(), State::Master);
    assert!(has_add(&a));
    assert_eq!(transitions(&a)[0].at, now);
}

#[test]
fn takeover_claims_at_once_at_254_and_auto_keeps_master() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    i.handle_event(t0, adv_event(1, 200));
    i.handle_event(t0 + ms(100), Event::Override(Override::Takeover));
    let a = drain(&mut i);
    assert!(has_add(&a) && has_announce(&a));
    assert_eq!(adverts_sent(&a), vec![254]);
    assert_eq!(i.state(), State::Master);
    assert!(transitions(&a)[0].reason.contains("254"));
    // The old master (200) hears 254 and steps down; its lower adverts don't move us.
    i.handle_event(t0 + ms(200), adv_event(1, 200));
    assert_eq!(i.state(), State::Master);
    drain(&mut i);
    // Auto: still master, now advertising the configured priority at once.
    i.handle_event(t0 + ms(300), Event::Override(Override::Auto));
    let a = drain(&mut i);
    assert_eq!(i.state(), State::Master);
    assert_eq!(adverts_sent(&a), vec![100]);
    assert_eq!(i.override_mode(), None);
    // Normal rules apply again: 200 > 100.
    i.handle_event(t0 + ms(400), adv_event(1, 200));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn link_down_removes_at_once_and_link_up_returns_to_backup() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    i.handle_event(t, Event::LinkDown);
    let a = drain(&mut i);
    assert_eq!(a[0], Action::RemoveAddresses(vec![vip()]));
    assert!(adverts_sent(&a).is_empty());
    assert_eq!(i.state(), State::Fault);
    assert_eq!(i.poll_timeout(), None);
    // Adverts are ignored in Fault.
    i.handle_event(t + ms(10), adv_event(1, 100));
    assert!(drain(&mut i).is_empty());
    i.handle_event(t + ms(20), Event::LinkUp);
    let a = drain(&mut i);
    assert_eq!(i.state(), State::Backup);
    assert!(!has_add(&a));
    assert!(transitions(&a)[0].reason.contains("link up"));

    // The owner goes straight back to master.
    let mut o = Instance::new(cfg(255, 3));
    o.handle_event(t0, Event::Startup);
    o.handle_event(t0, Event::LinkDown);
    o.handle_event(t0 + ms(5), Event::LinkUp);
    assert_eq!(o.state(), State::Master);
}

#[test]
fn link_and_check_faults_are_tracked_separately() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    i.handle_event(t0, Event::LinkDown);
    i.handle_event(t0, Event::Fault(Some("smb check failing".into())));
    i.handle_event(t0 + ms(1), Event::LinkUp);
    assert_eq!(i.state(), State::Fault, "check fault still active");
    assert_eq!(i.fault(), Some("smb check failing"));
    i.handle_event(t0 + ms(2), Event::Fault(None));
    assert_eq!(i.state(), State::Backup);
    // And the other order.
    i.handle_event(t0 + ms(3), Event::Fault(Some("smb".into())));
    i.handle_event(t0 + ms(3), Event::LinkDown);
    i.handle_event(t0 + ms(4), Event::Fault(None));
    assert_eq!(i.state(), State::Fault, "link still down");
    i.handle_event(t0 + ms(5), Event::LinkUp);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn fault_while_master_is_make_before_break() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    i.handle_event(t, Event::Fault(Some("smb check failing (3 of 3)".into())));
    let a = drain(&mut i);
    assert_eq!(adverts_sent(&a), vec![0]);
    assert!(!has_remove(&a));
    assert_eq!(i.handoff(), Some(Handoff::Fault));
    // Nobody answers: at the deadline the addresses go and we are in Fault.
    let deadline = t + i.handoff_window();
    i.handle_timeout(deadline);
    let a = drain(&mut i);
    assert!(has_remove(&a));
    assert_eq!(i.state(), State::Fault);
    assert!(transitions(&a)[0]
        .reason
        .contains("smb check failing (3 of 3)"));
    i.handle_event(deadline + ms(1), Event::Fault(None));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn fault_cleared_during_handoff_keeps_master() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    i.handle_event(t, Event::Fault(Some("smb".into())));
    drain(&mut i);
    i.handle_event(t + ms(50), Event::Fault(None));
    let a = drain(&mut i);
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.handoff(), None);
    assert_eq!(adverts_sent(&a), vec![200]);
    assert!(!has_remove(&a));
    i.handle_timeout(t + ms(10_000));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn claim_inhibit_holds_a_backup_and_not_a_master() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    i.handle_event(t0, Event::ClaimInhibit(Some("witness unreachable".into())));
    for k in 1..20 {
        i.handle_timeout(t0 + ms(1000 * k));
        assert!(i.poll_timeout().unwrap() > t0 + ms(1000 * k));
    }
    assert_eq!(i.state(), State::Backup);
    assert!(drain(&mut i).is_empty());
    assert_eq!(i.claim_inhibit(), Some("witness unreachable"));
    assert_eq!(
        i.not_claiming().as_deref(),
        Some("not claiming: witness unreachable")
    );
    i.handle_event(t0 + ms(20_000), Event::ClaimInhibit(None));
    let a = drain(&mut i);
    assert_eq!(i.state(), State::Master);
    assert!(transitions(&a)[0].reason.contains("witness unreachable"));

    let (mut m, t) = master(cfg(100, 2), t0);
    m.handle_event(t, Event::ClaimInhibit(Some("witness unreachable".into())));
    m.handle_timeout(t + ms(5000));
    assert_eq!(m.state(), State::Master);
    assert!(!has_remove(&drain(&mut m)));
}

#[test]
fn set_priority_changes_what_a_master_advertises_but_not_an_owner() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(200, 2), t0);
    i.handle_event(t, Event::SetPriority(90));
    assert_eq!(i.effective_priority(), 90);
    assert_eq!(adverts_sent(&drain(&mut i)), vec![90]);
    i.handle_event(t + ms(1), adv_event(1, 100));
    assert_eq!(i.state(), State::Backup, "100 > 90 now");
    assert!(transitions(&drain(&mut i))[0]
        .reason
        .contains("100 > ours 90"));

    let mut o = Instance::new(cfg(255, 3));
    o.handle_event(t0, Event::Startup);
    o.handle_event(t0, Event::SetPriority(10));
    assert_eq!(o.effective_priority(), 255);
}

#[test]
fn a_late_event_fires_the_timers_that_were_due_first() {
    let t0 = Instant::now();
    let mut i = backup(cfg(100, 2), t0);
    // Master-down was due at 3.61 s; the caller only comes back at 10 s with an advert.
    let now = t0 + ms(10_000);
    i.handle_event(now, adv_event(1, 200));
    assert!(i.poll_timeout().unwrap() >= now);
    let a = drain(&mut i);
    let tr = transitions(&a);
    assert_eq!(tr.len(), 2, "claimed, then yielded to 200: {a:?}");
    assert_eq!(tr[1].to, State::Backup);
}

#[test]
fn adverts_for_other_vrids_versions_or_from_ourselves_are_ignored() {
    let t0 = Instant::now();
    let (mut i, t) = master(cfg(100, 2), t0);
    let mut other = advert(200, 100);
    other.vrid = 52;
    i.handle_event(
        t,
        Event::Advert {
            src: ip(1),
            advert: other,
        },
    );
    let mut v2 = advert(200, 100);
    v2.version = Version::V2;
    i.handle_event(
        t,
        Event::Advert {
            src: ip(1),
            advert: v2,
        },
    );
    i.handle_event(t, adv_event(2, 200));
    assert_eq!(i.state(), State::Master);
    assert!(drain(&mut i).is_empty());
}

// ---- probe before a claim after silence -------------------------------------------------------

fn probing_cfg(priority: u8, primary: u8) -> Config {
    Config {
        probe_before_claim: true,
        follow_v2: false,
        ..cfg(priority, primary)
    }
}

fn has_probe(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Probe(_)))
}

#[test]
fn a_silent_master_is_probed_for_before_the_claim() {
    let t0 = Instant::now();
    let mut i = backup(probing_cfg(100, 2), t0);
    i.handle_event(t0 + ms(100), adv_event(1, 200));
    drain(&mut i);
    // The master goes quiet: at master-down the backup asks who still answers, and does not claim.
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    let a = drain(&mut i);
    assert!(has_probe(&a), "{a:?}");
    assert!(!has_add(&a));
    assert_eq!(i.state(), State::Backup);
    assert!(i.probing());
    assert!(i.not_claiming().unwrap().contains("192.0.2.97"));
    // Nobody answers any more: the claim goes ahead, with a reason that says so.
    i.handle_event(t + ms(5), Event::ProbeQuiet);
    let a = drain(&mut i);
    assert!(has_add(&a) && has_announce(&a));
    assert_eq!(i.state(), State::Master);
    let reason = &transitions(&a)[0].reason;
    assert!(reason.contains("no advert from 192.0.2.1"), "{reason}");
    assert!(reason.contains("nobody else answers"), "{reason}");
    assert!(!i.probing());
}

#[test]
fn a_start_with_nobody_heard_probes_too() {
    let t0 = Instant::now();
    let mut i = backup(probing_cfg(100, 2), t0);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    assert!(has_probe(&drain(&mut i)));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn a_master_heard_while_probing_ends_the_wait() {
    let t0 = Instant::now();
    let mut i = backup(probing_cfg(100, 2), t0);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    drain(&mut i);
    // The old master was only slow: it speaks again before the probe came back quiet.
    i.handle_event(t + ms(2), adv_event(1, 200));
    drain(&mut i);
    assert!(!i.probing());
    i.handle_event(t + ms(4), Event::ProbeQuiet);
    assert!(
        !has_add(&drain(&mut i)),
        "a stale ProbeQuiet does not claim"
    );
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn the_probe_is_asked_for_once_while_it_runs() {
    let t0 = Instant::now();
    let mut i = backup(probing_cfg(100, 2), t0);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    assert!(has_probe(&drain(&mut i)));
    // Someone keeps answering for a long time (a frozen master's kernel): master-down passes again.
    let t2 = i.poll_timeout().unwrap();
    i.handle_timeout(t2);
    assert!(!has_probe(&drain(&mut i)), "the daemon is still probing");
    assert_eq!(i.state(), State::Backup);
    i.handle_event(t2 + ms(1), Event::ProbeQuiet);
    drain(&mut i);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn a_step_down_and_a_preemption_claim_without_a_probe() {
    let t0 = Instant::now();
    // Priority 0 from the master: it keeps its addresses until it hears the successor.
    let mut i = backup(probing_cfg(100, 2), t0);
    i.handle_event(t0 + ms(10), adv_event(1, 0));
    drain(&mut i);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    let a = drain(&mut i);
    assert!(!has_probe(&a) && has_add(&a), "{a:?}");
    // A lower-priority master is alive: it steps down when it hears us.
    let mut i = backup(probing_cfg(200, 2), t0);
    i.handle_event(t0 + ms(10), adv_event(1, 100));
    drain(&mut i);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    let a = drain(&mut i);
    assert!(!has_probe(&a) && has_add(&a), "{a:?}");
}

#[test]
fn an_inhibit_during_the_probe_holds_the_claim_and_probes_again_after() {
    let t0 = Instant::now();
    let mut i = backup(probing_cfg(100, 2), t0);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    drain(&mut i);
    i.handle_event(
        t + ms(1),
        Event::ClaimInhibit(Some("witness unreachable".into())),
    );
    i.handle_event(t + ms(2), Event::ProbeQuiet);
    assert!(!has_add(&drain(&mut i)));
    i.handle_event(t + ms(3), Event::ClaimInhibit(None));
    let a = drain(&mut i);
    assert!(has_probe(&a) && !has_add(&a), "{a:?}");
    i.handle_event(t + ms(8), Event::ProbeQuiet);
    drain(&mut i);
    assert_eq!(i.state(), State::Master);
}

fn v2_advert(src: u8, priority: u8, seconds: u16) -> Event {
    Event::Advert {
        src: ip(src),
        advert: Advert {
            version: Version::V2,
            ..advert(priority, seconds * 100)
        },
    }
}

fn speaks_v2(actions: &[Action]) -> Option<(IpAddr, Duration)> {
    actions.iter().find_map(|a| match a {
        Action::SpeakV2 { from, interval } => Some((*from, *interval)),
        _ => None,
    })
}

/// RFC 5798 8.4: a VRRPv2 router cannot hear VRRPv3. A v3 backup that may follow v2 treats the v2
/// master's adverts as its master's, and once it is master itself it advertises in VRRPv2.
#[test]
fn a_v3_backup_that_follows_v2_hears_a_v2_master_and_later_advertises_v2() {
    let t0 = Instant::now();
    let mut c = cfg(100, 1);
    c.follow_v2 = true;
    let mut b = backup(c, t0);
    b.handle_event(t0 + ms(100), v2_advert(2, 200, 2));
    let acts = drain(&mut b);
    assert_eq!(speaks_v2(&acts), Some((ip(2), Duration::from_secs(2))));
    assert_eq!(b.config().version, Version::V2);
    assert_eq!(b.state(), State::Backup);
    // The v2 master's interval (2 s): master down after 3 x 2 s + skew (7.22 s at priority 100),
    // not 3 x 1 s.
    b.handle_timeout(t0 + ms(100) + Duration::from_secs(4));
    assert_eq!(
        b.state(),
        State::Backup,
        "still within the v2 master's master-down interval"
    );
    b.handle_timeout(t0 + ms(100) + ms(7300));
    assert_eq!(b.state(), State::Master);
    let sent: Vec<Advert> = drain(&mut b)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendAdvert(a) => Some(a),
            _ => None,
        })
        .collect();
    assert!(!sent.is_empty());
    assert!(
        sent.iter()
            .all(|a| a.version == Version::V2 && a.interval_cs == 200),
        "{sent:?}"
    );
    // Only once: no second switch.
    b.handle_event(t0 + Duration::from_secs(9), v2_advert(2, 50, 2));
    assert_eq!(speaks_v2(&drain(&mut b)), None);
}

/// A v3 master that hears a lower-priority v2 router (which became master because it cannot hear
/// us) answers at once in VRRPv2, so that router steps down, and stays master.
#[test]
fn a_v3_master_that_follows_v2_answers_a_lower_v2_router_in_v2() {
    let t0 = Instant::now();
    let mut c = cfg(150, 1);
    c.follow_v2 = true;
    let (mut m, t) = master(c, t0);
    m.handle_event(t + ms(10), v2_advert(2, 100, 1));
    let acts = drain(&mut m);
    assert_eq!(speaks_v2(&acts), Some((ip(2), Duration::from_secs(1))));
    let first = acts.iter().find_map(|a| match a {
        Action::SendAdvert(a) => Some(a.clone()),
        _ => None,
    });
    let first = first.expect("an advert at once");
    assert_eq!(
        (first.version, first.priority, first.interval_cs),
        (Version::V2, 150, 100)
    );
    assert_eq!(m.state(), State::Master);
}

/// Without `follow_v2` (the version is chosen, or IPv6, or authenticated) a v2 advert is ignored.
#[test]
fn an_instance_that_does_not_follow_v2_ignores_v2_adverts() {
    let t0 = Instant::now();
    let mut b = backup(cfg(100, 1), t0);
    b.handle_event(t0 + ms(100), v2_advert(2, 200, 1));
    let acts = drain(&mut b);
    assert_eq!(speaks_v2(&acts), None);
    assert_eq!(b.config().version, Version::V3);
    assert!(b.master_seen().is_none());
}
