//! One test per session rule of RFC 5880 (6.2, 6.8.4, 6.8.6, 6.8.16): a session driven by
//! hand-made peer packets on a virtual clock. Timing rules (P/F, slow start, jitter, timer
//! changes) are in `tests/timing.rs`.

mod common;

use std::time::{Duration, Instant};

use bfd::packet::{ControlPacket, DecodeError, Diag, State};
use bfd::{check_ttl, Config, ConfigError, DropReason, Session};
use common::*;

#[test]
fn a_new_session_sends_down_at_once_with_slow_start() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    let p = sent(&drain(&mut s));
    assert_eq!(p.len(), 1);
    let p = p[0];
    assert_eq!((p.state, p.diag), (State::Down, Diag::NoDiagnostic));
    assert_eq!((p.my_discriminator, p.your_discriminator), (OURS, 0));
    assert_eq!(
        p.desired_min_tx_us, 1_000_000,
        "slow start: >= 1 s until Up"
    );
    assert_eq!(p.required_min_rx_us, 50_000);
    assert_eq!((p.detect_mult, p.required_min_echo_rx_us), (3, 0));
    assert!(!p.poll && !p.final_ && !p.demand);
    let next = s.poll_timeout().unwrap() - t0;
    assert!(next >= ms(750) && next < ms(1000), "{next:?}");
    assert!(!s.detector().up_ever);
}

#[test]
fn bad_configurations_are_refused() {
    let t0 = Instant::now();
    let cases = [
        (
            Config {
                local_discriminator: 0,
                ..config()
            },
            ConfigError::LocalDiscriminatorZero,
        ),
        (
            Config {
                detect_mult: 0,
                ..config()
            },
            ConfigError::DetectMultZero,
        ),
        (
            Config {
                desired_min_tx: Duration::from_nanos(999),
                ..config()
            },
            ConfigError::DesiredMinTxZero,
        ),
        (
            Config {
                required_min_rx: Duration::ZERO,
                ..config()
            },
            ConfigError::RequiredMinRxZero,
        ),
        (
            Config {
                required_min_rx: Duration::from_secs(5000),
                ..config()
            },
            ConfigError::IntervalTooLong,
        ),
    ];
    for (c, e) in cases {
        assert_eq!(Session::new(t0, c, 1).unwrap_err(), e);
    }
}

#[test]
fn down_hearing_down_goes_init_and_says_so_at_once() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    drain(&mut s);
    let a = feed(&mut s, t0 + ms(10), from_peer(State::Down, 0));
    let c = changes(&a);
    assert_eq!((c[0].from, c[0].to), (State::Down, State::Init));
    assert!(c[0].reason.contains("192.0.2.2"), "{}", c[0].reason);
    let p = sent(&a);
    assert_eq!(
        p.len(),
        1,
        "the change goes out without waiting for the timer"
    );
    assert_eq!((p[0].state, p[0].your_discriminator), (State::Init, THEIRS));
    assert_eq!(s.remote_discriminator(), THEIRS);
}

#[test]
fn down_hearing_init_goes_up_and_polls_the_fast_timers() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    drain(&mut s);
    let a = feed(&mut s, t0, from_peer(State::Init, OURS));
    let c = changes(&a);
    assert_eq!(
        (c[0].from, c[0].to, c[0].diag),
        (State::Down, State::Up, Diag::NoDiagnostic)
    );
    let p = sent(&a)[0];
    assert_eq!(p.state, State::Up);
    assert!(
        p.poll,
        "leaving slow start is a timer change: a Poll Sequence"
    );
    assert_eq!(p.desired_min_tx_us, 50_000);
    assert!(s.polling());
    assert_eq!(
        s.transmit_interval(),
        ms(50),
        "a faster rate applies at once"
    );
    assert!(s.detector().alive && s.detector().up_ever);
}

#[test]
fn init_hearing_init_or_up_goes_up() {
    for remote in [State::Init, State::Up] {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), 1).unwrap();
        feed(&mut s, t0, from_peer(State::Down, 0));
        assert_eq!(s.state(), State::Init);
        let c = changes(&feed(&mut s, t0, from_peer(remote, OURS)));
        assert_eq!((c[0].from, c[0].to), (State::Init, State::Up));
    }
}

#[test]
fn down_ignores_a_peer_that_says_up() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    drain(&mut s);
    let a = feed(&mut s, t0, from_peer(State::Up, OURS));
    assert!(changes(&a).is_empty());
    assert_eq!(s.state(), State::Down);
    // Its discriminator is new to our packets: they change, so one goes out at once.
    assert_eq!(sent(&a)[0].your_discriminator, THEIRS);
}

#[test]
fn up_hearing_down_goes_down_with_neighbor_signaled() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let p = ControlPacket {
        diag: Diag::ControlDetectionTimeExpired,
        ..from_peer(State::Down, OURS)
    };
    let a = feed(&mut s, t0 + ms(10), p);
    let c = changes(&a);
    assert_eq!((c[0].from, c[0].to), (State::Up, State::Down));
    assert_eq!(c[0].diag, Diag::NeighborSignaledSessionDown);
    assert!(
        c[0].reason.contains("control detection time expired"),
        "{}",
        c[0].reason
    );
    let out = sent(&a)[0];
    assert_eq!(
        (out.state, out.diag),
        (State::Down, Diag::NeighborSignaledSessionDown)
    );
    assert_eq!(out.desired_min_tx_us, 1_000_000, "back to slow start");
    assert!(!out.poll, "no poll outside Up");
    let d = s.detector();
    assert!(!d.alive && d.up_ever);
    assert_eq!((d.ups, d.downs), (1, 1));
}

#[test]
fn a_peer_going_admin_down_takes_us_down() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let c = changes(&feed(&mut s, t0, from_peer(State::AdminDown, OURS)));
    assert_eq!(
        (c[0].to, c[0].diag),
        (State::Down, Diag::NeighborSignaledSessionDown)
    );
    assert!(c[0].reason.contains("administratively down"));
    // Already Down: nothing more.
    assert!(changes(&feed(&mut s, t0, from_peer(State::AdminDown, OURS))).is_empty());
    // From Init too.
    let mut s = Session::new(t0, config(), 1).unwrap();
    feed(&mut s, t0, from_peer(State::Down, 0));
    let c = changes(&feed(&mut s, t0, from_peer(State::AdminDown, OURS)));
    assert_eq!((c[0].from, c[0].to), (State::Init, State::Down));
}

#[test]
fn another_sessions_discriminator_is_dropped() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let p = from_peer(State::Down, OURS + 1);
    assert_eq!(
        s.handle_packet(t0, &p.encode()),
        Err(DropReason::Discriminator(OURS + 1))
    );
    assert_eq!(s.state(), State::Up);
}

#[test]
fn undecodable_bytes_and_wrong_ttl_are_named() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    let e = s.handle_packet(t0, &[0x20, 0x40]).unwrap_err();
    assert_eq!(e, DropReason::Decode(DecodeError::Truncated { len: 2 }));
    assert_eq!(e.label(), "truncated");
    assert_eq!(check_ttl(255), Ok(()));
    assert_eq!(check_ttl(254), Err(DropReason::Ttl(254)));
    assert!(check_ttl(1).unwrap_err().to_string().contains("255"));
}

#[test]
fn detection_time_expiry_takes_the_session_down_on_the_dot() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let heard = t0 + ms(20);
    feed(&mut s, heard, from_peer(State::Up, OURS));
    assert_eq!(s.detection_time(), Some(ms(150)), "3 x max(50 ms, 50 ms)");
    s.handle_timeout(heard + ms(150) - Duration::from_nanos(1));
    assert_eq!(s.state(), State::Up);
    drain(&mut s);
    s.handle_timeout(heard + ms(150));
    let a = drain(&mut s);
    let c = changes(&a);
    assert_eq!((c[0].from, c[0].to), (State::Up, State::Down));
    assert_eq!(c[0].diag, Diag::ControlDetectionTimeExpired);
    assert!(c[0].reason.contains("150.00 ms"), "{}", c[0].reason);
    let out = sent(&a)[0];
    assert_eq!(
        (out.state, out.diag),
        (State::Down, Diag::ControlDetectionTimeExpired)
    );
    assert_eq!(out.your_discriminator, 0, "the remote is forgotten");
    assert_eq!(
        (s.remote_discriminator(), s.remote_state()),
        (0, State::Down)
    );
    assert_eq!(s.detection_time(), None);
}

#[test]
fn detection_time_uses_the_greater_interval_and_the_remote_mult() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let p = ControlPacket {
        desired_min_tx_us: 200_000,
        detect_mult: 2,
        ..from_peer(State::Up, OURS)
    };
    feed(&mut s, t0, p);
    assert_eq!(s.detection_time(), Some(ms(400)));
}

#[test]
fn init_times_out_too() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    feed(&mut s, t0, from_peer(State::Down, 0));
    // The peer's slow start: 3 x max(50 ms, 1 s).
    assert_eq!(s.detection_time(), Some(ms(3000)));
    s.handle_timeout(t0 + ms(3000));
    let c = changes(&drain(&mut s));
    assert_eq!((c[0].from, c[0].to), (State::Init, State::Down));
}

#[test]
fn a_late_caller_sees_the_timeout_before_the_packet() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    drain(&mut s);
    // The loop slept through the detection time; the packet it now reads is too late.
    let a = feed(&mut s, t0 + ms(500), from_peer(State::Up, OURS));
    let c = changes(&a);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].to, c[0].diag),
        (State::Down, Diag::ControlDetectionTimeExpired)
    );
    assert_eq!(s.state(), State::Down, "Down + Up stays Down");
}

#[test]
fn admin_down_tells_the_peer_and_discards_its_packets() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    s.admin_down(t0 + ms(1));
    let a = drain(&mut s);
    let c = changes(&a);
    assert_eq!((c[0].from, c[0].to), (State::Up, State::AdminDown));
    assert_eq!(c[0].diag, Diag::AdministrativelyDown);
    let out = sent(&a)[0];
    assert_eq!(
        (out.state, out.diag),
        (State::AdminDown, Diag::AdministrativelyDown)
    );
    // It keeps telling the peer, at the slow rate (and at once when it forgets the silent peer's
    // discriminator after a detection time).
    let mut t = t0 + ms(1);
    let mut sends = vec![];
    while sends.len() < 4 {
        t = s.poll_timeout().unwrap();
        s.handle_timeout(t);
        for p in sent(&drain(&mut s)) {
            assert_eq!(p.state, State::AdminDown);
            sends.push((t - t0, p.your_discriminator));
        }
    }
    assert_eq!(sends[0], (ms(150), 0), "{sends:?}");
    for w in sends[1..].windows(2) {
        assert!(w[1].0 - w[0].0 >= ms(750), "{sends:?}");
    }
    let p = from_peer(State::Down, OURS);
    assert_eq!(s.handle_packet(t, &p.encode()), Err(DropReason::AdminDown));
    assert_eq!(s.state(), State::AdminDown);
    // Silence while AdminDown changes no state either.
    s.handle_timeout(t0 + ms(5000));
    assert!(changes(&drain(&mut s)).is_empty());
    s.admin_up(t0 + ms(6000));
    let c = changes(&drain(&mut s));
    assert_eq!(
        (c[0].from, c[0].to, c[0].diag),
        (State::AdminDown, State::Down, Diag::NoDiagnostic)
    );
    // And the handshake runs again.
    feed(&mut s, t0 + ms(6001), from_peer(State::Init, OURS));
    assert_eq!(s.state(), State::Up);
    assert_eq!(s.detector().ups, 2);
}

#[test]
fn poll_timeout_is_never_in_the_past() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    for i in 0..50u64 {
        let now = t0 + ms(i * 37);
        if i % 3 == 0 {
            let _ = s.handle_packet(now, &from_peer(State::Up, OURS).encode());
        } else {
            s.handle_timeout(now);
        }
        drain(&mut s);
        if let Some(t) = s.poll_timeout() {
            assert!(t >= now);
        }
    }
}

#[test]
fn a_refused_timer_change_still_lets_time_pass() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let late = t0 + ms(1000);
    assert_eq!(
        s.set_timers(late, ms(50), ms(50), 0),
        Err(ConfigError::DetectMultZero)
    );
    assert_eq!(
        s.state(),
        State::Down,
        "the detection time ran out before the call"
    );
    assert!(s.poll_timeout().unwrap() >= late);
}

#[test]
fn the_diagnostic_stays_through_init_and_clears_at_up() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    s.handle_timeout(t0 + ms(150));
    assert_eq!(s.diag(), Diag::ControlDetectionTimeExpired);
    let a = feed(&mut s, t0 + ms(200), from_peer(State::Down, 0));
    assert_eq!(s.state(), State::Init);
    assert_eq!(sent(&a)[0].diag, Diag::ControlDetectionTimeExpired);
    let a = feed(&mut s, t0 + ms(201), from_peer(State::Init, OURS));
    assert_eq!(s.state(), State::Up);
    assert_eq!(sent(&a)[0].diag, Diag::NoDiagnostic);
}
