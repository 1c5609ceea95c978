//! Two sessions wired through a simulated link on a virtual clock (the shape of quinn's
//! `tests/util.rs` `Pair::drive`): packets are encoded, carried with loss, delay and cuts per
//! direction (in order, as one LAN segment does), and decoded by the other side. Nothing here touches a socket or a clock.
//!
//! Checked on every step, in every scenario: a side is never Up once the other side's packets
//! have not arrived for its Detection Time; state changes chain (each `from` is the state the last
//! one told) with a non-empty reason; no packet has both P and F; every packet sent decodes to
//! itself; `poll_timeout` is never in the past.
//! Properties: on a working link both sides come Up within a few link delays of the later start
//! and stay Up through any timer changes (the Poll Sequence keeps them safe); after a cut each
//! side is Down within its Detection Time (plus a delay for the side told by the other), and
//! stays out of Up while the cut lasts.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bfd::packet::{decode, Diag, State};
use bfd::{Action, Config, Session};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const INTERVALS_MS: [u64; 6] = [10, 20, 50, 100, 300, 1000];

#[derive(Debug, Clone, Copy)]
struct Timing {
    tx: Duration,
    rx: Duration,
    mult: u8,
}

fn timing() -> impl Strategy<Value = Timing> {
    timing_with_mult(1..=5)
}

fn timing_with_mult(mult: std::ops::RangeInclusive<u8>) -> impl Strategy<Value = Timing> {
    (0..INTERVALS_MS.len(), 0..INTERVALS_MS.len(), mult).prop_map(|(t, r, mult)| Timing {
        tx: ms(INTERVALS_MS[t]),
        rx: ms(INTERVALS_MS[r]),
        mult,
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// Drop everything from side `.0` (and what it has in flight) until `Heal`.
    Cut(usize),
    CutBoth,
    Heal,
    AdminDown(usize),
    AdminUp(usize),
    SetTimers(usize, Timing),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..2).prop_map(Op::Cut),
        Just(Op::CutBoth),
        Just(Op::Heal),
        (0usize..2).prop_map(Op::AdminDown),
        (0usize..2).prop_map(Op::AdminUp),
        ((0usize..2), timing()).prop_map(|(i, t)| Op::SetTimers(i, t)),
    ]
}

struct Side {
    timing: Timing,
    start: Duration,
    session: Option<Session>,
    /// The state as the StateChange actions told it.
    told: State,
    /// When this side last accepted a packet from the other.
    arrived: Option<Duration>,
    changes: Vec<(Duration, State, Diag)>,
}

struct Flight {
    at: Duration,
    seq: u64,
    to: usize,
    bytes: [u8; 24],
}

struct Link {
    base: Instant,
    now: Duration,
    sides: [Side; 2],
    flight: Vec<Flight>,
    seq: u64,
    rng: u64,
    /// Per-mille chance that a packet is lost.
    loss_pm: u64,
    max_delay: Duration,
    /// `cut[i]`: packets from side i are dropped.
    cut: [bool; 2],
    /// Loss never takes two packets in a row from one side (`last_lost[i]`).
    isolated_loss: bool,
    last_lost: [bool; 2],
    /// The latest arrival time from each side: one link does not reorder a sender's packets.
    fifo: [Duration; 2],
}

fn peer(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8))
}

impl Link {
    fn new(timing: [Timing; 2], start_b: Duration, seed: u64) -> Link {
        let side = |timing, start| Side {
            timing,
            start,
            session: None,
            told: State::Down,
            arrived: None,
            changes: vec![],
        };
        Link {
            base: Instant::now(),
            now: Duration::ZERO,
            sides: [side(timing[0], Duration::ZERO), side(timing[1], start_b)],
            flight: vec![],
            seq: 0,
            rng: seed | 1,
            loss_pm: 0,
            max_delay: Duration::from_micros(200),
            cut: [false; 2],
            isolated_loss: false,
            last_lost: [false; 2],
            fifo: [Duration::ZERO; 2],
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: deterministic per seed, so a failing case replays exactly.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn at(&self) -> Instant {
        self.base + self.now
    }

    fn state(&self, i: usize) -> State {
        self.sides[i].told
    }

    /// Run every event up to and including `until`.
    fn run_until(&mut self, until: Duration) {
        for _ in 0..10_000_000 {
            let next = self.next_event();
            match next {
                Some(t) if t <= until => self.step(t),
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("the link did not settle by {until:?}");
    }

    fn next_event(&self) -> Option<Duration> {
        let starts = self
            .sides
            .iter()
            .filter(|s| s.session.is_none())
            .map(|s| s.start);
        let timeouts = self
            .sides
            .iter()
            .filter_map(|s| s.session.as_ref()?.poll_timeout())
            .map(|t| t - self.base);
        let arrivals = self.flight.iter().map(|f| f.at);
        starts.chain(timeouts).chain(arrivals).min()
    }

    fn step(&mut self, t: Duration) {
        assert!(t >= self.now, "time went back");
        self.now = t;
        let now = self.at();
        for i in 0..2 {
            if self.sides[i].session.is_none() && self.sides[i].start <= t {
                let tm = self.sides[i].timing;
                let config = Config {
                    peer: peer(1 - i),
                    local_discriminator: 100 + i as u32,
                    desired_min_tx: tm.tx,
                    required_min_rx: tm.rx,
                    detect_mult: tm.mult,
                };
                let seed = self.rand();
                self.sides[i].session = Some(Session::new(now, config, seed).unwrap());
                self.drain(i);
            }
        }
        self.flight.sort_by_key(|f| (f.at, f.seq));
        let due = self.flight.iter().take_while(|f| f.at <= t).count();
        for f in self.flight.drain(..due).collect::<Vec<_>>() {
            if let Some(s) = self.sides[f.to].session.as_mut() {
                if s.handle_packet(now, &f.bytes).is_ok() {
                    self.sides[f.to].arrived = Some(t);
                }
                self.drain(f.to);
            }
        }
        for i in 0..2 {
            if let Some(s) = self.sides[i].session.as_mut() {
                if s.poll_timeout().is_some_and(|d| d <= now) {
                    s.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
        self.check();
    }

    fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(a) = self.sides[i]
            .session
            .as_mut()
            .and_then(Session::poll_action)
        {
            match a {
                Action::Transmit(p) => {
                    assert!(!(p.poll && p.final_), "P and F together: {p:?}");
                    let bytes = p.encode();
                    assert_eq!(decode(&bytes), Ok(p));
                    let mut lost = self.rand() % 1000 < self.loss_pm;
                    if self.isolated_loss {
                        lost &= !self.last_lost[i];
                        self.last_lost[i] = lost;
                    }
                    if self.cut[i] || lost {
                        continue;
                    }
                    let span = self.max_delay.as_nanos() as u64 + 1;
                    let delay = Duration::from_nanos(self.rand() % span);
                    let at = (now + delay).max(self.fifo[i]);
                    self.fifo[i] = at;
                    self.seq += 1;
                    self.flight.push(Flight {
                        at,
                        seq: self.seq,
                        to: 1 - i,
                        bytes,
                    });
                }
                Action::StateChange(c) => {
                    let side = &mut self.sides[i];
                    assert_eq!(c.from, side.told, "side {i}: {c:?}");
                    assert!(!c.reason.is_empty());
                    assert_eq!(c.at, self.base + now);
                    side.told = c.to;
                    side.changes.push((now, c.to, c.diag));
                }
            }
        }
    }

    /// The invariants that hold after every step.
    fn check(&self) {
        let now = self.at();
        for (i, side) in self.sides.iter().enumerate() {
            let Some(s) = side.session.as_ref() else {
                continue;
            };
            assert_eq!(s.state(), side.told);
            if let Some(t) = s.poll_timeout() {
                assert!(t >= now, "side {i}: deadline in the past");
            }
            if s.state() == State::Up {
                let heard = side.arrived.expect("Up without hearing the peer");
                let detection = s.detection_time().expect("Up without a detection time");
                assert!(
                    self.now - heard < detection,
                    "side {i} Up at {:?}, last heard {heard:?}, detection time {detection:?}",
                    self.now
                );
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.at();
        match *op {
            Op::Cut(i) => self.cut_from(i),
            Op::CutBoth => {
                self.cut_from(0);
                self.cut_from(1);
            }
            Op::Heal => self.cut = [false; 2],
            Op::AdminDown(i) => {
                if let Some(s) = self.sides[i].session.as_mut() {
                    s.admin_down(now);
                    self.drain(i);
                }
            }
            Op::AdminUp(i) => {
                if let Some(s) = self.sides[i].session.as_mut() {
                    s.admin_up(now);
                    self.drain(i);
                }
            }
            Op::SetTimers(i, tm) => {
                if let Some(s) = self.sides[i].session.as_mut() {
                    s.set_timers(now, tm.tx, tm.rx, tm.mult).unwrap();
                    self.drain(i);
                }
            }
        }
        self.check();
    }

    fn cut_from(&mut self, i: usize) {
        self.cut[i] = true;
        self.flight.retain(|f| f.to == i);
    }
}

/// Delays well under the fastest interval, so a working link never looks silent.
fn small_delay() -> impl Strategy<Value = Duration> {
    (0u64..=500).prop_map(Duration::from_micros)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_working_link_comes_up_fast_and_stays_up_through_timer_changes(
        timing in [timing(), timing()],
        start_b_ms in 0u64..3000,
        delay in small_delay(),
        changes in proptest::collection::vec((1u64..3000, 0usize..2, timing()), 0..6),
        seed in any::<u64>(),
    ) {
        let start_b = ms(start_b_ms);
        let mut link = Link::new(timing, start_b, seed);
        link.max_delay = delay;
        // Down -> Init -> Up takes three one-way trips after the later side starts.
        let bound = start_b + delay * 3 + Duration::from_nanos(1);
        link.run_until(bound);
        prop_assert_eq!((link.state(0), link.state(1)), (State::Up, State::Up));
        let mut t = bound;
        for (after, i, tm) in changes {
            t += ms(after);
            link.run_until(t);
            link.apply(&Op::SetTimers(i, tm));
        }
        link.run_until(t + ms(6000));
        for side in &link.sides {
            let downs: Vec<_> = side.changes.iter().filter(|c| c.1 != State::Up).collect();
            prop_assert!(downs.iter().all(|c| c.0 < bound), "left Up on a working link: {:?}", side.changes);
        }
    }

    /// The Poll Sequence's point (6.8.3): the packet announcing a slower rate may be lost, so the
    /// old rate holds until the peer has answered. With Detect Mult >= 3 a lone lost packet must
    /// never take a session down, whatever timers change.
    #[test]
    fn lone_losses_never_take_a_session_down_through_timer_changes(
        timing in [timing_with_mult(3..=5), timing_with_mult(3..=5)],
        delay in small_delay(),
        loss_pm in 100u64..700,
        changes in proptest::collection::vec((1u64..3000, 0usize..2, timing_with_mult(3..=5)), 1..8),
        seed in any::<u64>(),
    ) {
        let mut link = Link::new(timing, Duration::ZERO, seed);
        link.max_delay = delay;
        let up = delay * 3 + Duration::from_nanos(1);
        link.run_until(up);
        prop_assert_eq!((link.state(0), link.state(1)), (State::Up, State::Up));
        link.loss_pm = loss_pm;
        link.isolated_loss = true;
        let mut t = up;
        for (after, i, tm) in changes {
            t += ms(after);
            link.run_until(t);
            link.apply(&Op::SetTimers(i, tm));
        }
        link.run_until(t + ms(6000));
        for side in &link.sides {
            prop_assert_eq!(side.changes.len(), 2, "Init and Up, nothing after: {:?}", side.changes);
        }
    }

    #[test]
    fn a_cut_link_goes_down_within_the_detection_time(
        timing in [timing(), timing()],
        delay in small_delay(),
        which in 0usize..3,
        cut_after_ms in 0u64..5000,
        seed in any::<u64>(),
    ) {
        let mut link = Link::new(timing, Duration::ZERO, seed);
        link.max_delay = delay;
        let cut_at = ms(1000 + cut_after_ms);
        link.run_until(cut_at);
        prop_assert_eq!((link.state(0), link.state(1)), (State::Up, State::Up));
        let detection = |l: &Link, i: usize| l.sides[i].session.as_ref().unwrap().detection_time().unwrap();
        let (d0, d1) = (detection(&link, 0), detection(&link, 1));
        let op = match which { 0 => Op::Cut(0), 1 => Op::Cut(1), _ => Op::CutBoth };
        link.apply(&op);
        // A side that stops hearing goes Down by its detection time; one that still hears is told
        // at once by the other's Down packet, one delay later.
        let deaf = |i: usize| matches!((&op, i), (Op::CutBoth, _) | (Op::Cut(0), 1) | (Op::Cut(1), 0));
        let by = |i: usize, own: Duration, other: Duration| {
            if deaf(i) { cut_at + own } else { cut_at + other + delay }
        };
        let (by0, by1) = (by(0, d0, d1), by(1, d1, d0));
        link.run_until(by0.max(by1));
        for (i, by) in [(0usize, by0), (1, by1)] {
            let down = link.sides[i].changes.iter().find(|c| c.0 > cut_at && c.1 == State::Down);
            let down = down.unwrap_or_else(|| panic!("side {i} still {:?} at {:?}", link.state(i), link.now));
            prop_assert!(down.0 <= by, "side {} Down at {:?}, after {:?}", i, down.0, by);
            let want = if deaf(i) { Diag::ControlDetectionTimeExpired } else { Diag::NeighborSignaledSessionDown };
            prop_assert_eq!(down.2, want);
        }
        link.run_until(by0.max(by1) + ms(10_000));
        prop_assert!(link.state(0) != State::Up && link.state(1) != State::Up);
        // Healed, they come back (slow start: within a few seconds).
        link.apply(&Op::Heal);
        link.run_until(link.now + ms(5000));
        prop_assert_eq!((link.state(0), link.state(1)), (State::Up, State::Up));
    }

    #[test]
    fn a_lossy_link_with_faults_keeps_every_invariant(
        timing in [timing(), timing()],
        start_b_ms in 0u64..2000,
        loss_pm in 0u64..400,
        max_delay_us in 0u64..30_000,
        ops in proptest::collection::vec((0u64..4000, op()), 0..12),
        seed in any::<u64>(),
    ) {
        let mut link = Link::new(timing, ms(start_b_ms), seed);
        link.loss_pm = loss_pm;
        link.max_delay = Duration::from_micros(max_delay_us);
        let mut t = Duration::ZERO;
        for (after, op) in &ops {
            t += ms(*after);
            link.run_until(t);
            link.apply(op);
        }
        link.run_until(t + ms(5000));
    }
}
