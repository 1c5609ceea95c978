//! One test per session rule of RFC 5880 (6.2, 6.5, 6.8.x): a session driven by hand-made peer
//! packets on a virtual clock.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bfd::packet::{ControlPacket, DecodeError, Diag, State};
use bfd::{check_ttl, Action, Config, ConfigError, DropReason, Session, StateChange};

const OURS: u32 = 0x1111;
const THEIRS: u32 = 0x2222;
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> Config {
    Config {
        peer: PEER,
        local_discriminator: OURS,
        desired_min_tx: ms(50),
        required_min_rx: ms(50),
        detect_mult: 3,
    }
}

/// What the peer sends: slow start (1 s) unless Up, 50 ms otherwise.
fn from_peer(state: State, your: u32) -> ControlPacket {
    let tx = if state == State::Up {
        50_000
    } else {
        1_000_000
    };
    ControlPacket {
        diag: Diag::NoDiagnostic,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: THEIRS,
        your_discriminator: your,
        desired_min_tx_us: tx,
        required_min_rx_us: 50_000,
        required_min_echo_rx_us: 0,
    }
}

fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn sent(actions: &[Action]) -> Vec<ControlPacket> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn changes(actions: &[Action]) -> Vec<StateChange> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChange(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn feed(s: &mut Session, now: Instant, p: ControlPacket) -> Vec<Action> {
    s.handle_packet(now, &p.encode()).expect("packet taken");
    drain(s)
}

/// A session brought Up by the three-way handshake at `t0` (Down -> Init -> Up), actions drained.
fn up_session(t0: Instant) -> Session {
    let mut s = Session::new(t0, config(), 1).unwrap();
    drain(&mut s);
    feed(&mut s, t0, from_peer(State::Down, 0));
    feed(&mut s, t0, from_peer(State::Up, OURS));
    assert_eq!(s.state(), State::Up);
    s
}

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
fn a_poll_is_answered_at_once_with_final_in_any_state() {
    let t0 = Instant::now();
    for up in [false, true] {
        let mut s = if up {
            up_session(t0)
        } else {
            let mut s = Session::new(t0, config(), 1).unwrap();
            drain(&mut s);
            s
        };
        let state = if up { State::Up } else { State::AdminDown };
        let p = ControlPacket {
            poll: true,
            ..from_peer(state, OURS)
        };
        let out = sent(&feed(&mut s, t0 + ms(1), p));
        assert_eq!(out.len(), 1, "{up}");
        assert!(
            out[0].final_ && !out[0].poll,
            "F, and never P with it: {:?}",
            out[0]
        );
    }
}

#[test]
fn a_final_ends_our_poll() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    assert!(s.polling());
    let p = ControlPacket {
        final_: true,
        ..from_peer(State::Up, OURS)
    };
    feed(&mut s, t0 + ms(5), p);
    assert!(!s.polling());
    let next = s.poll_timeout().unwrap();
    s.handle_timeout(next);
    let out = sent(&drain(&mut s));
    assert!(!out[0].poll, "periodic packets without P after the Final");
}

#[test]
fn the_poll_rides_on_periodic_packets_until_final() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let mut t = t0;
    for _ in 0..5 {
        t = s.poll_timeout().unwrap();
        s.handle_timeout(t);
        let out = sent(&drain(&mut s));
        assert_eq!(out.len(), 1);
        assert!(out[0].poll);
        // Keep the session alive: the peer answers without F (its Final was lost).
        feed(&mut s, t, from_peer(State::Up, OURS));
    }
    assert!(t - t0 < ms(300), "at the fast rate, not 1 s");
}

#[test]
fn periodic_packets_are_jittered_within_75_to_100_percent() {
    for (mult, top) in [(3u8, 100u64), (1, 90)] {
        let t0 = Instant::now();
        let c = Config {
            detect_mult: mult,
            ..config()
        };
        let mut s = Session::new(t0, c, 7).unwrap();
        drain(&mut s);
        let (mut t, mut seen_low, mut seen_high) = (t0, false, false);
        for _ in 0..200 {
            let next = s.poll_timeout().unwrap();
            let gap = next - t;
            assert!(gap >= ms(750) && gap < ms(10 * top), "mult {mult}: {gap:?}");
            seen_low |= gap < ms(800);
            seen_high |= gap > ms(10 * top - 50);
            s.handle_timeout(next);
            assert_eq!(sent(&drain(&mut s)).len(), 1);
            t = next;
        }
        assert!(seen_low && seen_high, "jitter spreads over the range");
    }
}

#[test]
fn the_same_seed_sends_at_the_same_times() {
    let times = |seed| {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), seed).unwrap();
        (0..10)
            .map(|_| {
                let t = s.poll_timeout().unwrap();
                s.handle_timeout(t);
                t - t0
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(times(3), times(3));
    assert_ne!(times(3), times(4));
}

#[test]
fn slow_start_holds_until_up_and_returns_after() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    assert_eq!(s.transmit_interval(), ms(1000));
    feed(&mut s, t0, from_peer(State::Down, 0));
    assert_eq!(s.transmit_interval(), ms(1000), "Init is not Up");
    feed(&mut s, t0, from_peer(State::Up, OURS));
    assert_eq!(s.transmit_interval(), ms(50));
    feed(&mut s, t0, from_peer(State::Down, OURS));
    assert_eq!(s.transmit_interval(), ms(1000));
}

#[test]
fn the_peer_slows_our_sending_with_its_required_min_rx() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let p = ControlPacket {
        required_min_rx_us: 300_000,
        ..from_peer(State::Up, OURS)
    };
    feed(&mut s, t0, p);
    assert_eq!(s.transmit_interval(), ms(300));
}

#[test]
fn required_min_rx_zero_stops_periodic_packets_but_not_finals() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let p = ControlPacket {
        required_min_rx_us: 0,
        ..from_peer(State::Up, OURS)
    };
    feed(&mut s, t0, p);
    let detect = s.poll_timeout().unwrap();
    assert_eq!(detect - t0, ms(150), "only the detection timer is left");
    let out = sent(&feed(
        &mut s,
        t0 + ms(10),
        ControlPacket { poll: true, ..p },
    ));
    assert!(out.len() == 1 && out[0].final_);
}

#[test]
fn a_remote_in_demand_mode_stops_our_periodic_packets() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    feed(
        &mut s,
        t0,
        ControlPacket {
            final_: true,
            ..from_peer(State::Up, OURS)
        },
    );
    let d = ControlPacket {
        demand: true,
        ..from_peer(State::Up, OURS)
    };
    feed(&mut s, t0 + ms(1), d);
    assert_eq!(s.poll_timeout().unwrap() - t0, ms(151), "detection only");
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
fn a_slower_tx_waits_for_the_final() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    feed(
        &mut s,
        t0,
        ControlPacket {
            final_: true,
            ..from_peer(State::Up, OURS)
        },
    );
    s.set_timers(t0, ms(200), ms(50), 3).unwrap();
    let out = sent(&drain(&mut s));
    assert!(out[0].poll && out[0].desired_min_tx_us == 200_000);
    assert_eq!(
        s.transmit_interval(),
        ms(50),
        "the old rate until the peer has seen the new one"
    );
    feed(
        &mut s,
        t0 + ms(10),
        ControlPacket {
            final_: true,
            ..from_peer(State::Up, OURS)
        },
    );
    assert_eq!(s.transmit_interval(), ms(200));
    assert!(!s.polling());
}

#[test]
fn a_smaller_rx_counts_for_detection_only_after_the_final() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    feed(
        &mut s,
        t0,
        ControlPacket {
            final_: true,
            ..from_peer(State::Up, OURS)
        },
    );
    s.set_timers(t0, ms(50), ms(20), 3).unwrap();
    let p = ControlPacket {
        desired_min_tx_us: 10_000,
        ..from_peer(State::Up, OURS)
    };
    feed(&mut s, t0, p);
    assert_eq!(s.detection_time(), Some(ms(150)), "still 3 x 50 ms");
    feed(&mut s, t0, ControlPacket { final_: true, ..p });
    assert_eq!(s.detection_time(), Some(ms(60)), "now 3 x 20 ms");
}

#[test]
fn a_change_during_a_poll_gets_its_own_poll() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    assert!(s.polling());
    s.set_timers(t0, ms(100), ms(50), 3).unwrap();
    let fin = ControlPacket {
        final_: true,
        ..from_peer(State::Up, OURS)
    };
    feed(&mut s, t0 + ms(1), fin);
    assert!(s.polling(), "the second change is polled too");
    assert_eq!(
        s.transmit_interval(),
        ms(50),
        "not slower before its own Final"
    );
    feed(&mut s, t0 + ms(2), fin);
    assert!(!s.polling());
    assert_eq!(s.transmit_interval(), ms(100));
}

#[test]
fn timers_set_while_down_apply_at_once_without_poll() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config(), 1).unwrap();
    drain(&mut s);
    s.set_timers(t0, ms(2000), ms(70), 5).unwrap();
    let out = sent(&drain(&mut s));
    assert_eq!(out.len(), 1, "new values go out at once");
    assert!(!out[0].poll);
    assert_eq!(
        (
            out[0].desired_min_tx_us,
            out[0].required_min_rx_us,
            out[0].detect_mult
        ),
        (2_000_000, 70_000, 5)
    );
    assert_eq!(s.transmit_interval(), ms(2000));
    assert_eq!(
        s.set_timers(t0, ms(0), ms(70), 5),
        Err(ConfigError::DesiredMinTxZero)
    );
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
