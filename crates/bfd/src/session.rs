//! One BFD session to one peer (RFC 5880 sections 6.2 and 6.8, asynchronous mode, single hop per
//! RFC 5881), sans-IO.
//!
//! API CONTRACT (shared with the daemon): the caller creates a [`Session`] per peer, feeds it
//! received packets ([`Session::handle_packet`]) and the operator's word ([`Session::admin_down`],
//! [`Session::admin_up`], [`Session::set_timers`]), calls [`Session::handle_timeout`] when
//! [`Session::poll_timeout`] has passed, and drains [`Session::poll_action`] after every call.
//! The session never reads a clock: every `now` is the caller's, and every `handle_*` first fires
//! the timers already due at `now`, so a late caller sees things in the order they happened. After
//! any call `poll_timeout` is never before `now`.
//!
//! # How this module reads RFC 5880
//! - **Active role only**: a session sends from the start, before it knows the remote's
//!   discriminator (6.1). The first packet is queued by [`Session::new`].
//! - **Reception** follows 6.8.6 step by step: the packet alone is checked by
//!   [`crate::packet::decode`]; here a non-zero Your Discriminator must be ours, then the remote's
//!   variables are taken, a Final ends our Poll Sequence, and a session in AdminDown discards the
//!   packet (after those updates, as the RFC orders them; it also restarts the Detection Time, whose
//!   only use in AdminDown is to forget a remote that went silent). The state table is 6.2's three-way
//!   handshake: Down + Down -> Init, Down + Init -> Up, Init + Init/Up -> Up, Up + Down -> Down
//!   (diag 3), anything + AdminDown -> Down (diag 3). A packet with P is answered at once with F
//!   (and never P and F together, 6.5).
//! - **Slow start** (6.8.3): while not Up, the advertised Desired Min TX is at least 1 s.
//! - **Timer changes** (6.8.3, 6.5): a change while Up (the slow-start step on reaching Up, or
//!   [`Session::set_timers`]) starts a Poll Sequence: P rides on the periodic packets until a
//!   packet with F comes back. A slower Desired Min TX is used only after that, and a smaller
//!   Required Min RX counts for our Detection Time only after that; faster sending and a longer
//!   Detection Time apply at once. A change during a poll waits for it, then gets its own poll
//!   (a Final might answer either packet, so the first poll commits only what is safe for both).
//!   While not Up a change applies at once with no poll: the session is not in use and every
//!   packet carries the new values.
//! - **Transmission** (6.8.7): every `transmit_interval` jittered to 75-100% (75-90% with Detect
//!   Mult 1); a packet whose content (all but P and F) differs from the last one sent goes out at
//!   once, so state changes travel without waiting for the timer; the periodic timer restarts after
//!   any packet. Nothing is sent periodically while the remote asks for Required Min RX 0, nor while
//!   it runs Demand mode with both sides Up (we never ask for Demand mode, but honour its request;
//!   Finals are always sent). In AdminDown packets keep going out at the slow rate (6.8.16 allows
//!   it indefinitely), so the peer learns why.
//! - **Detection** (6.8.4): Detection Time = the remote's Detect Mult x max(our Required Min RX,
//!   its Desired Min TX), counted from the last accepted packet. When it runs out in Init or Up:
//!   Down with diag 1. In any state it also forgets the remote (discriminator 0, Required Min RX
//!   back to 1 us: 6.8.1, 6.8.18).
//! - **Diagnostics**: set with the state change that has a reason (1, 3, 7), kept through Init so
//!   the peer still reads why we went down (as FRR does); reaching Up, or `admin_up`, clears it.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::packet::{self, ControlPacket, Diag, State};
use crate::rx::DropReason;
use crate::timers::{self, fmt_duration, Jitter, Timers, INITIAL_REMOTE_MIN_RX, SLOW_TX};

/// What a session is configured with. Checked by [`Session::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The peer, for reasons and logs; the daemon demultiplexes on it while Your Discriminator is 0.
    pub peer: IpAddr,
    /// bfd.LocalDiscr: picked by the caller, non-zero, unique among its sessions.
    pub local_discriminator: u32,
    /// bfd.DesiredMinTxInterval once Up (1 us ..= u32::MAX us); before Up at least 1 s.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval (1 us ..= u32::MAX us). 0, which asks the peer to send nothing
    /// (6.8.18's hold-down), is refused: such a session could detect nothing.
    pub required_min_rx: Duration,
    /// bfd.DetectMult, 1..=255.
    pub detect_mult: u8,
}

/// A configuration the session cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    LocalDiscriminatorZero,
    DetectMultZero,
    /// Desired Min TX must be at least 1 us (0 is reserved, 4.1).
    DesiredMinTxZero,
    /// Required Min RX must be at least 1 us: 0 asks for no packets, so nothing could be detected.
    RequiredMinRxZero,
    /// An interval beyond what the wire carries (u32 microseconds, about 71 minutes).
    IntervalTooLong,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::LocalDiscriminatorZero => "the local discriminator must not be 0",
            ConfigError::DetectMultZero => "the detect multiplier must be at least 1",
            ConfigError::DesiredMinTxZero => "the transmit interval must be at least 1 us",
            ConfigError::RequiredMinRxZero => "the receive interval must be at least 1 us",
            ConfigError::IntervalTooLong => "an interval is longer than BFD can carry (71 min)",
        })
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    fn check(&self) -> Result<(), ConfigError> {
        let max = timers::from_us(u32::MAX);
        if self.local_discriminator == 0 {
            Err(ConfigError::LocalDiscriminatorZero)
        } else if self.detect_mult == 0 {
            Err(ConfigError::DetectMultZero)
        } else if self.desired_min_tx < Duration::from_micros(1) {
            Err(ConfigError::DesiredMinTxZero)
        } else if self.required_min_rx < Duration::from_micros(1) {
            Err(ConfigError::RequiredMinRxZero)
        } else if self.desired_min_tx > max || self.required_min_rx > max {
            Err(ConfigError::IntervalTooLong)
        } else {
            Ok(())
        }
    }
}

/// Plain-data outputs, executed by the daemon in the order they are polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the peer (UDP to port 3784 from the session's source port, TTL 255):
    /// `packet.encode()` gives the bytes.
    Transmit(ControlPacket),
    StateChange(StateChange),
}

/// A state change with a reason a person can read at 2am.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub at: Instant,
    pub from: State,
    pub to: State,
    /// Our diagnostic after the change (what our packets now carry).
    pub diag: Diag,
    /// e.g. "Down: nothing from 192.0.2.2 for 150.00 ms (detection time 3 x 50.00 ms)"
    pub reason: String,
}

/// What the daemon needs to trust a session as a failure detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detector {
    pub state: State,
    /// The remote is known alive: the session is Up.
    pub alive: bool,
    /// The session has been Up at least once: one that never came up (a peer without BFD, a
    /// firewall) says nothing about the peer and should change nothing.
    pub up_ever: bool,
    /// How many times the session reached Up, and how many times it left Up (flap counting).
    pub ups: u32,
    pub downs: u32,
    /// When the state last changed (None: still in its first state).
    pub since: Option<Instant>,
    /// When the last packet was accepted from the remote.
    pub last_heard: Option<Instant>,
}

/// The two timer values our packets advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    tx: Duration,
    rx: Duration,
}

/// What the remote last told us (6.8.1's bfd.Remote* variables and the values we need for the
/// Detection Time).
#[derive(Debug, Clone, Copy)]
struct Remote {
    discriminator: u32,
    state: State,
    diag: Diag,
    demand: bool,
    min_rx: Duration,
    min_tx: Duration,
    /// 0: nothing heard since the last Detection Time ran out.
    detect_mult: u8,
}

impl Remote {
    const UNKNOWN: Remote = Remote {
        discriminator: 0,
        state: State::Down,
        diag: Diag::NoDiagnostic,
        demand: false,
        min_rx: INITIAL_REMOTE_MIN_RX,
        min_tx: Duration::ZERO,
        detect_mult: 0,
    };
}

/// One BFD session.
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: State,
    diag: Diag,
    remote: Remote,
    /// What our packets say (bfd.DesiredMinTxInterval, bfd.RequiredMinRxInterval).
    advertised: Timing,
    /// The Desired Min TX our transmit interval is computed from (lags an increase during a poll).
    tx_in_use: Duration,
    /// The Required Min RX our Detection Time is computed from (lags a decrease during a poll).
    rx_in_use: Duration,
    /// A Poll Sequence in progress, for these advertised values.
    poll: Option<Timing>,
    /// A packet with P came in: answer with F at once.
    final_due: bool,
    last_sent: Option<ControlPacket>,
    last_heard: Option<Instant>,
    timers: Timers,
    jitter: Jitter,
    up_ever: bool,
    ups: u32,
    downs: u32,
    since: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Session {
    /// A session in Down, which sends its first packet at once (drain [`Session::poll_action`]).
    /// `jitter_seed` seeds the transmit jitter: random in the daemon, fixed in tests.
    pub fn new(now: Instant, config: Config, jitter_seed: u64) -> Result<Session, ConfigError> {
        config.check()?;
        let advertised = Timing {
            tx: config.desired_min_tx.max(SLOW_TX),
            rx: config.required_min_rx,
        };
        let mut s = Session {
            config,
            state: State::Down,
            diag: Diag::NoDiagnostic,
            remote: Remote::UNKNOWN,
            advertised,
            tx_in_use: advertised.tx,
            rx_in_use: advertised.rx,
            poll: None,
            final_due: false,
            last_sent: None,
            last_heard: None,
            timers: Timers::default(),
            jitter: Jitter::new(jitter_seed),
            up_ever: false,
            ups: 0,
            downs: 0,
            since: None,
            actions: VecDeque::new(),
        };
        s.flush(now);
        Ok(s)
    }

    /// Call with each UDP payload received from the peer on port 3784 (after [`crate::rx::check_ttl`]).
    /// `Err` says why it was dropped (count it by `label()`); the session may still have changed
    /// (an AdminDown session notes the remote's values). Drain `poll_action` afterwards.
    pub fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<(), DropReason> {
        match packet::decode(payload) {
            Ok(p) => self.handle_control(now, &p),
            Err(e) => {
                self.handle_timeout(now);
                Err(e.into())
            }
        }
    }

    /// [`Session::handle_packet`] for a packet already decoded (the daemon decodes once to find
    /// the session by Your Discriminator).
    pub fn handle_control(&mut self, now: Instant, p: &ControlPacket) -> Result<(), DropReason> {
        self.fire_expired(now);
        let result = self.receive(now, p);
        self.flush(now);
        result
    }

    /// Call when [`Session::poll_timeout`] has passed (calling early or late is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fire_expired(now);
        self.flush(now);
    }

    /// The next output, in order; `None` when drained. Call after every `handle_*`.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Session::handle_timeout`] next (None: nothing is scheduled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Take the session administratively down (6.8.16, diag 7): it stops detecting and tells the
    /// peer, which goes Down with "neighbor signaled session down".
    pub fn admin_down(&mut self, now: Instant) {
        self.fire_expired(now);
        if self.state != State::AdminDown {
            let reason = "AdminDown: disabled by the operator".to_string();
            self.set_state(now, State::AdminDown, Diag::AdministrativelyDown, reason);
        }
        self.flush(now);
    }

    /// Enable a session that was AdminDown: it starts again from Down.
    pub fn admin_up(&mut self, now: Instant) {
        self.fire_expired(now);
        if self.state == State::AdminDown {
            let reason = "Down: enabled by the operator, waiting for the peer".to_string();
            self.set_state(now, State::Down, Diag::NoDiagnostic, reason);
        }
        self.flush(now);
    }

    /// Change the timers of a running session (6.8.3): negotiated with a Poll Sequence while Up.
    pub fn set_timers(
        &mut self,
        now: Instant,
        desired_min_tx: Duration,
        required_min_rx: Duration,
        detect_mult: u8,
    ) -> Result<(), ConfigError> {
        let config = Config {
            desired_min_tx,
            required_min_rx,
            detect_mult,
            ..self.config.clone()
        };
        // Time passes whatever the answer: timers due at `now` fire first.
        self.fire_expired(now);
        let result = config.check().map(|()| {
            self.config = config;
            self.retime(now);
        });
        self.flush(now);
        result
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The remote's state as its last packet said (Down once a Detection Time passed in silence).
    pub fn remote_state(&self) -> State {
        self.remote.state
    }

    /// The diagnostic our packets carry.
    pub fn diag(&self) -> Diag {
        self.diag
    }

    /// The remote's diagnostic as its last packet said.
    pub fn remote_diag(&self) -> Diag {
        self.remote.diag
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn local_discriminator(&self) -> u32 {
        self.config.local_discriminator
    }

    /// bfd.RemoteDiscr: 0 until heard, and again after a Detection Time of silence.
    pub fn remote_discriminator(&self) -> u32 {
        self.remote.discriminator
    }

    /// The Detection Time now in force (None: nothing heard from the remote).
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote.detect_mult > 0).then(|| {
            timers::detection_time(self.remote.detect_mult, self.rx_in_use, self.remote.min_tx)
        })
    }

    /// The negotiated transmit interval before jitter.
    pub fn transmit_interval(&self) -> Duration {
        timers::transmit_interval(self.tx_in_use, self.remote.min_rx)
    }

    /// A Poll Sequence is in progress.
    pub fn polling(&self) -> bool {
        self.poll.is_some()
    }

    pub fn detector(&self) -> Detector {
        Detector {
            state: self.state,
            alive: self.state == State::Up,
            up_ever: self.up_ever,
            ups: self.ups,
            downs: self.downs,
            since: self.since,
            last_heard: self.last_heard,
        }
    }

    // ---- reception (6.8.6) ----------------------------------------------------------------

    fn receive(&mut self, now: Instant, p: &ControlPacket) -> Result<(), DropReason> {
        if p.your_discriminator != 0 && p.your_discriminator != self.config.local_discriminator {
            return Err(DropReason::Discriminator(p.your_discriminator));
        }
        self.remote = Remote {
            discriminator: p.my_discriminator,
            state: p.state,
            diag: p.diag,
            demand: p.demand,
            min_rx: timers::from_us(p.required_min_rx_us),
            min_tx: timers::from_us(p.desired_min_tx_us),
            detect_mult: p.detect_mult,
        };
        if p.final_ {
            self.end_poll(now);
        }
        if self.state == State::AdminDown {
            // Discarded (6.8.6), but the remote is alive: keep its values rather than forget them
            // a Detection Time from now and learn them again from its next packet.
            self.heard(now);
            return Err(DropReason::AdminDown);
        }
        let peer = self.config.peer;
        match (self.state, p.state) {
            (State::Down | State::AdminDown, State::AdminDown) => {}
            (_, State::AdminDown) => {
                let reason = format!("Down: peer {peer} is administratively down");
                self.set_state(now, State::Down, Diag::NeighborSignaledSessionDown, reason);
            }
            (State::Down, State::Down) => {
                let reason = format!(
                    "Init: heard peer {peer} (discriminator {}) in Down",
                    p.my_discriminator
                );
                self.set_state(now, State::Init, self.diag, reason);
            }
            (State::Down, State::Init) => {
                let reason = format!("Up: peer {peer} answered in Init (three-way handshake)");
                self.set_state(now, State::Up, Diag::NoDiagnostic, reason);
            }
            (State::Init, State::Init | State::Up) => {
                let reason = format!("Up: peer {peer} is {} (three-way handshake)", p.state);
                self.set_state(now, State::Up, Diag::NoDiagnostic, reason);
            }
            (State::Up, State::Down) => {
                let why = match p.diag {
                    Diag::NoDiagnostic => String::new(),
                    d => format!(" ({d})"),
                };
                let reason = format!("Down: peer {peer} says its session is Down{why}");
                self.set_state(now, State::Down, Diag::NeighborSignaledSessionDown, reason);
            }
            _ => {}
        }
        if p.poll {
            self.final_due = true;
        }
        self.heard(now);
        Ok(())
    }

    fn heard(&mut self, now: Instant) {
        self.last_heard = Some(now);
        self.rearm_detect(now);
    }

    // ---- timer changes (6.8.3, 6.5) -------------------------------------------------------

    /// The values our packets should advertise now: slow start before Up.
    fn wanted(&self) -> Timing {
        let tx = if self.state == State::Up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        };
        Timing {
            tx,
            rx: self.config.required_min_rx,
        }
    }

    /// Bring the advertised values in line with the state and configuration (see the module docs).
    fn retime(&mut self, now: Instant) {
        let wanted = self.wanted();
        if self.state != State::Up {
            self.poll = None;
            self.advertised = wanted;
            self.tx_in_use = wanted.tx;
            self.rx_in_use = wanted.rx;
        } else if wanted != self.advertised {
            self.tx_in_use = self.tx_in_use.min(wanted.tx);
            self.rx_in_use = self.rx_in_use.max(wanted.rx);
            self.advertised = wanted;
            if self.poll.is_none() {
                self.poll = Some(wanted);
            }
        }
        self.rearm_detect(now);
    }

    /// A Final arrived: the remote has seen the polled values, or (after a second change) newer ones.
    fn end_poll(&mut self, now: Instant) {
        let Some(polled) = self.poll.take() else {
            return;
        };
        // Safe whichever of our packets the Final answered: the faster send, the longer detection.
        self.tx_in_use = polled.tx.min(self.advertised.tx);
        self.rx_in_use = polled.rx.max(self.advertised.rx);
        if self.advertised != polled && self.state == State::Up {
            self.poll = Some(self.advertised);
        }
        self.rearm_detect(now);
    }

    /// The Detection Time counts from the last packet heard, with the values in force now. A
    /// shorter Detection Time (a smaller Required Min RX while not Up) may already have run out:
    /// then it is due now, never in the past.
    fn rearm_detect(&mut self, now: Instant) {
        self.timers.detect = match (self.last_heard, self.detection_time()) {
            (Some(at), Some(d)) => Some((at + d).max(now)),
            _ => None,
        };
    }

    // ---- state and timers -----------------------------------------------------------------

    fn set_state(&mut self, now: Instant, to: State, diag: Diag, reason: String) {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        if to == State::Up {
            self.up_ever = true;
            self.ups = self.ups.saturating_add(1);
        }
        if from == State::Up {
            self.downs = self.downs.saturating_add(1);
        }
        self.since = Some(now);
        self.actions.push_back(Action::StateChange(StateChange {
            at: now,
            from,
            to,
            diag,
            reason,
        }));
        self.retime(now);
    }

    fn fire_expired(&mut self, now: Instant) {
        if self.timers.detect.is_some_and(|t| t <= now) {
            self.timers.detect = None;
            self.detection_expired(now);
        }
        if self.timers.tx.is_some_and(|t| t <= now) {
            self.timers.tx = None;
            if self.periodic_allowed() {
                self.send(now, false);
            }
        }
    }

    fn detection_expired(&mut self, now: Instant) {
        let detection = self.detection_time().unwrap_or_default();
        let (mult, peer) = (self.remote.detect_mult, self.config.peer);
        if matches!(self.state, State::Init | State::Up) {
            let per = detection / u32::from(mult.max(1));
            let reason = format!(
                "Down: nothing from {peer} for {} (detection time {mult} x {})",
                fmt_duration(detection),
                fmt_duration(per)
            );
            self.set_state(now, State::Down, Diag::ControlDetectionTimeExpired, reason);
        }
        // 6.8.1 / 6.8.18: after a Detection Time of silence the remote is forgotten.
        self.remote = Remote::UNKNOWN;
        self.retime(now);
    }

    /// 6.8.7: periodic packets are not sent while the remote asks for none (Required Min RX 0)
    /// or runs Demand mode with both sides Up (unless we are polling).
    fn periodic_allowed(&self) -> bool {
        let remote_demand = self.remote.demand
            && self.state == State::Up
            && self.remote.state == State::Up
            && self.poll.is_none();
        !self.remote.min_rx.is_zero() && !remote_demand
    }

    fn build(&self, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.diag,
            state: self.state,
            poll: self.poll.is_some() && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.config.local_discriminator,
            your_discriminator: self.remote.discriminator,
            desired_min_tx_us: timers::to_us(self.advertised.tx),
            required_min_rx_us: timers::to_us(self.advertised.rx),
            required_min_echo_rx_us: 0,
        }
    }

    fn send(&mut self, now: Instant, final_: bool) {
        let p = self.build(final_);
        self.last_sent = Some(p);
        self.actions.push_back(Action::Transmit(p));
        self.timers.tx = None;
        self.rearm_tx(now);
    }

    /// Schedule the next periodic packet: none if not allowed, else within one jittered interval.
    fn rearm_tx(&mut self, now: Instant) {
        if !self.periodic_allowed() {
            self.timers.tx = None;
            return;
        }
        let interval = self.transmit_interval();
        match self.timers.tx {
            // Still within the (possibly shorter) new interval: keep the jittered deadline.
            Some(t) if t <= now + interval => {}
            _ => {
                let r = self.jitter.next_u32();
                self.timers.tx = Some(now + timers::jittered(interval, self.config.detect_mult, r));
            }
        }
    }

    /// After every call: answer a Poll, send a changed packet at once, keep the timers armed.
    fn flush(&mut self, now: Instant) {
        if std::mem::take(&mut self.final_due) {
            self.send(now, true);
        } else if self.periodic_allowed()
            && !self
                .last_sent
                .is_some_and(|last| last.same_content(&self.build(false)))
        {
            self.send(now, false);
        }
        self.rearm_tx(now);
    }
}
