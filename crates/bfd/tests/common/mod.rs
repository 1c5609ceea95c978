//! Helpers shared by the session tests: a configuration, the peer's packets, and draining actions.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bfd::packet::{ControlPacket, Diag, State};
use bfd::{Action, Config, Session, StateChange};

pub const OURS: u32 = 0x1111;
pub const THEIRS: u32 = 0x2222;
pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn config() -> Config {
    Config {
        peer: PEER,
        local_discriminator: OURS,
        desired_min_tx: ms(50),
        required_min_rx: ms(50),
        detect_mult: 3,
    }
}

/// What the peer sends: slow start (1 s) unless Up, 50 ms otherwise.
pub fn from_peer(state: State, your: u32) -> ControlPacket {
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

pub fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

pub fn sent(actions: &[Action]) -> Vec<ControlPacket> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit(p) => Some(*p),
            _ => None,
        })
        .collect()
}

pub fn changes(actions: &[Action]) -> Vec<StateChange> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChange(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub fn feed(s: &mut Session, now: Instant, p: ControlPacket) -> Vec<Action> {
    s.handle_packet(now, &p.encode()).expect("packet taken");
    drain(s)
}

/// A session brought Up by the three-way handshake at `t0` (Down -> Init -> Up), actions drained.
pub fn up_session(t0: Instant) -> Session {
    let mut s = Session::new(t0, config(), 1).unwrap();
    drain(&mut s);
    feed(&mut s, t0, from_peer(State::Down, 0));
    feed(&mut s, t0, from_peer(State::Up, OURS));
    assert_eq!(s.state(), State::Up);
    s
}
