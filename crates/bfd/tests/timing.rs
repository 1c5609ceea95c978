//! The timing rules of RFC 5880 (6.5 Poll Sequence, 6.8.2-6.8.3 intervals and slow start, 6.8.7
//! transmission and jitter): a session driven by hand-made peer packets on a virtual clock.

mod common;

use std::time::Instant;

use bfd::packet::{ControlPacket, State};
use bfd::{Config, ConfigError, Session};
use common::*;

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
