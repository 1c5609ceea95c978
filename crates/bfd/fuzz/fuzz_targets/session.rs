//! Fuzz one session with arbitrary configuration, peer packets (well-formed or raw bytes), timer
//! changes, admin up/down and time steps, and check what the API contract promises: no panic; the
//! deadline is never in the past after any call; state changes chain from Down with a reason; no
//! packet has both P and F, and every packet sent decodes to itself; a session is Up only while
//! the last packet it accepted is younger than its Detection Time.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bfd::packet::{decode, ControlPacket, Diag, State};
use bfd::{Action, Config, Session};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Ev {
    /// A well-formed packet from the peer (fields as given; decode may still refuse it).
    Packet {
        state: u8,
        diag: u8,
        poll: bool,
        final_: bool,
        demand: bool,
        detect_mult: u8,
        my: u32,
        /// 0: zero, 1: ours, else this value.
        your: u32,
        tx_us: u32,
        rx_us: u32,
    },
    Raw(Vec<u8>),
    Timeout,
    AdminDown,
    AdminUp,
    SetTimers {
        tx_us: u32,
        rx_us: u32,
        mult: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    local: u32,
    tx_us: u32,
    rx_us: u32,
    mult: u8,
    seed: u64,
    /// (microseconds to advance, event)
    steps: Vec<(u32, Ev)>,
}

fuzz_target!(|input: Input| {
    let t0 = Instant::now();
    let config = Config {
        peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        local_discriminator: input.local,
        desired_min_tx: Duration::from_micros(u64::from(input.tx_us)),
        required_min_rx: Duration::from_micros(u64::from(input.rx_us)),
        detect_mult: input.mult,
    };
    let Ok(mut s) = Session::new(t0, config, input.seed) else {
        return;
    };
    let mut told = State::Down;
    let mut heard: Option<Instant> = None;
    let mut now = t0;
    drain(&mut s, &mut told, now);
    for (step, ev) in input.steps.into_iter().take(500) {
        now += Duration::from_micros(u64::from(step));
        match ev {
            Ev::Packet {
                state,
                diag,
                poll,
                final_,
                demand,
                detect_mult,
                my,
                your,
                tx_us,
                rx_us,
            } => {
                let your = match your {
                    0 => 0,
                    1 => s.local_discriminator(),
                    other => other,
                };
                let p = ControlPacket {
                    diag: Diag::from_code(diag),
                    state: State::from_bits(state),
                    poll,
                    final_,
                    control_plane_independent: false,
                    demand,
                    detect_mult,
                    my_discriminator: my,
                    your_discriminator: your,
                    desired_min_tx_us: tx_us,
                    required_min_rx_us: rx_us,
                    required_min_echo_rx_us: 0,
                };
                if s.handle_packet(now, &p.encode()).is_ok() {
                    heard = Some(now);
                }
            }
            Ev::Raw(bytes) => {
                if s.handle_packet(now, &bytes).is_ok() {
                    heard = Some(now);
                }
            }
            Ev::Timeout => {
                let t = s.poll_timeout().unwrap_or(now).max(now);
                now = t;
                s.handle_timeout(now);
            }
            Ev::AdminDown => s.admin_down(now),
            Ev::AdminUp => s.admin_up(now),
            Ev::SetTimers { tx_us, rx_us, mult } => {
                let _ = s.set_timers(
                    now,
                    Duration::from_micros(u64::from(tx_us)),
                    Duration::from_micros(u64::from(rx_us)),
                    mult,
                );
            }
        }
        drain(&mut s, &mut told, now);
        if s.state() == State::Up {
            let heard = heard.expect("Up without an accepted packet");
            let detection = s.detection_time().expect("Up without a detection time");
            assert!(now - heard < detection, "Up after the detection time");
        }
    }
});

fn drain(s: &mut Session, told: &mut State, now: Instant) {
    let mut n = 0;
    while let Some(a) = s.poll_action() {
        n += 1;
        assert!(n < 100, "an action storm");
        match a {
            Action::Transmit(p) => {
                assert!(!(p.poll && p.final_), "P and F together");
                assert_eq!(
                    decode(&p.encode()),
                    Ok(p),
                    "we sent a packet we would refuse"
                );
                assert_eq!(p.my_discriminator, s.local_discriminator());
            }
            Action::StateChange(c) => {
                assert_eq!(c.from, *told, "state changes do not chain");
                assert!(!c.reason.is_empty());
                assert_eq!(c.at, now);
                *told = c.to;
            }
        }
    }
    assert_eq!(*told, s.state());
    if let Some(t) = s.poll_timeout() {
        assert!(t >= now, "deadline in the past");
    }
}
