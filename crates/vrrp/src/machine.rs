//! The per-instance VRRP state machine (RFC 5798 / RFC 9568 section 6.4, RFC 3768), sans-IO.
//!
//! API CONTRACT (shared with the daemon; add to it freely, change it only in agreement):
//! the caller feeds [`Event`]s with `now`, calls [`Instance::handle_timeout`] when
//! [`Instance::poll_timeout`] has passed, and drains [`Instance::poll_action`] after every call.
//!
//! The instance never reads a clock: every `now` is the caller's. Timers are a small table of
//! `Option<Instant>` (advert, master-down, handoff deadline); `poll_timeout` is the earliest.
//! `handle_event` first fires any timer already due at `now`, so a late caller sees events in the
//! order they really happened, and after any call `poll_timeout` is never before `now`.
//!
//! # How this module reads the RFCs (and where floatip goes further)
//! - Skew_Time = ((256 - priority) x interval) / 256 and Master_Down_Interval = 3 x interval + skew,
//!   in nanoseconds (RFC 9568's correction of RFC 5798's centisecond rounding). A VRRPv3 backup uses
//!   the interval advertised by the master it accepted (Master_Adver_Interval); VRRPv2 always uses the
//!   configured one (mismatches are dropped by [`crate::validate`]).
//! - Backup (6.4.2): priority 0 -> master-down in Skew_Time; priority >= ours, or preempt off -> reset
//!   master-down; lower priority with preempt on -> discard, so we claim when master-down runs out.
//!   An equal priority never preempts a running master, whatever the addresses: the address tie-break
//!   applies only between two masters (6.4.3), as the RFC says.
//! - Preempt delay (not in RFC 5798; keepalived has one): the delay starts at the first lower-priority
//!   advert heard as backup. Until it has passed, lower-priority adverts count as a live master (they
//!   reset master-down); after it, they are discarded as above, so the claim comes at most one
//!   master-down interval after the delay. It holds off preemption only: a master that goes silent, or
//!   steps down with priority 0, is replaced as usual. Hearing a priority >= ours restarts it.
//! - Master (6.4.3): priority 0 -> send an advert at once. Higher priority, or equal priority and a
//!   numerically higher source address (compared with our `Config::primary`) -> Backup, removing the
//!   addresses. Lower -> per RFC 9568 answer with an advert at once, and re-announce the addresses
//!   (at most once a second) so clients left on the loser's MAC after a split come back.
//! - Priority 255 (address owner) claims at once on startup and on recovery; `SetPriority` never
//!   changes it. A master whose effective priority changes advertises at once.
//! - Planned moves are make-before-break (floatip, not RFC): on `Shutdown`, `Override::Release` and
//!   `Fault(Some)` a master advertises priority 0 but keeps its addresses; the first advert with
//!   priority > 0 from anyone else (the successor) or [`Instance::handoff_window`] (our master-down
//!   interval) ends it: addresses removed, then Backup / Fault / Initialize. While handing off the
//!   priority-0 advert is repeated once per interval in case one was lost. `LinkDown` is not planned:
//!   addresses go at once.
//! - Faults: link and check faults are tracked apart; the instance leaves Fault when both are clear.
//! - `ClaimInhibit(Some)`: a backup whose master-down runs out stays backup (timer re-armed) and
//!   claims as soon as the inhibit ends if no master has been heard meanwhile; an owner does not claim
//!   at startup either. A master is not demoted. `Override::Takeover` is the operator's explicit word
//!   and claims even when inhibited (but never while in Fault).
//! - Probe before a claim after silence (floatip, not RFC; `Config::probe_before_claim`): when
//!   master-down runs out with no master heard, or after the master went quiet, the master may be
//!   frozen or killed with its addresses still on its interface (the kernel answers for them). The
//!   instance stays Backup and asks the daemon to probe ([`Action::Probe`]); it claims on
//!   [`Event::ProbeQuiet`]. A priority-0 step-down and a preempted lower-priority master are alive and
//!   let go themselves: no probe. An advert heard while probing ends the wait as usual.
//! - Overrides: Takeover = effective priority 254 until `Auto`, claim at once; Release = never claim
//!   until `Auto` (a master steps down make-before-break); Auto = configured behaviour again (a
//!   released backup whose master-down has passed claims at once; a takeover master stays master
//!   until normal rules move it).
//! - Adverts for another VRID or version, or from our own primary address, are ignored.
//! - `Follow` (floatip's sync groups, not RFC): the daemon moves an instance with its siblings, which
//!   live on one host. To `Master`: a backup claims now, unless released or inhibited. To `Backup`: a
//!   master gives its addresses up at once, as on hearing a better master (the group's better master
//!   is claiming them); one that is handing off ends its handoff as if its successor had spoken (the
//!   group's successor spoke on a sibling's VRID).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::packet::{address_list, Advert, Version};

/// What an instance is configured to do. Validated by the caller (the daemon's config layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub vrid: u8,
    pub version: Version,
    /// Configured priority, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Our advert interval (v3: multiple of 10 ms, 10 ms..=40.95 s; v2: whole seconds 1..=255).
    pub advert_interval: Duration,
    pub preempt: bool,
    /// How long a backup that could preempt waits (still hearing the lower-priority master) before it claims.
    pub preempt_delay: Duration,
    /// The virtual addresses (VIPs), one family.
    pub addresses: Vec<IpAddr>,
    /// Our primary address on the interface (the advert source); breaks priority ties.
    pub primary: IpAddr,
    /// Before a claim after silence (master-down with no master heard, or after the master went
    /// quiet), make sure nobody still answers for the addresses: see [`Action::Probe`].
    pub probe_before_claim: bool,
    /// An IPv4 VRRPv3 instance whose version the operator did not choose: the first VRRPv2 advert
    /// on its VRID makes it speak VRRPv2 from then on, at that advert's interval ([`Action::SpeakV2`]).
    /// A VRRPv2 router (keepalived's default for IPv4) drops VRRPv3 adverts, so without this both
    /// would be master (RFC 5798 section 8.4 describes the mixed operation).
    pub follow_v2: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// The daemon said the instance cannot serve (link down, failing check, tracked interface down).
    Fault,
}

/// The highest priority below an address owner's (255): what an operator's takeover advertises, and
/// the ceiling of every priority a check or the configuration gives a non-owner.
pub const TAKEOVER_PRIORITY: u8 = 254;

impl State {
    /// The name operators know from keepalived's logs: MASTER, BACKUP, FAULT, INIT.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manual override from an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Override {
    /// Become master now and stay preferred (effective priority 254) until `Auto`.
    Takeover,
    /// Step down (make-before-break) and never claim until `Auto`.
    Release,
    /// Back to the configured behaviour.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Leave Initialize (RFC: Startup event).
    Startup,
    /// Planned stop: a master advertises priority 0 and keeps its addresses until a successor's advert is
    /// heard or master-down passes; then removes them and ends in Initialize.
    Shutdown,
    /// A validated advert for this VRID from `src`.
    Advert {
        src: IpAddr,
        advert: Advert,
    },
    /// The effective priority changed (check weights). 1..=254; ignored for an address owner.
    SetPriority(u8),
    /// The interface lost its link: addresses go at once (nobody can be answered anyway), state Fault.
    LinkDown,
    LinkUp,
    /// A fault from checks or tracked interfaces (`Some(reason)`), or its end (`None`). Entering fault as
    /// master is make-before-break (priority-0 advert, keep addresses until a successor or master-down).
    Fault(Option<String>),
    /// A reason not to claim the VIP (witness unreachable), or its end (`None`). A master is not demoted.
    ClaimInhibit(Option<String>),
    Override(Override),
    /// After [`Action::Probe`]: nobody else answers for the addresses any more, so a claim waiting on
    /// it goes ahead.
    ProbeQuiet,
    /// The daemon's sync group moves this instance with a sibling (see the module header): `to` is
    /// `Master` or `Backup` (anything else is ignored), `reason` the transition's reason.
    Follow {
        to: State,
        reason: String,
    },
    /// Our primary address (the advert source, which breaks ties) is now this one: the interface was
    /// created again, or got its address only after start-up. Changes nothing else.
    Primary(IpAddr),
}

/// Plain-data outputs, executed by the daemon in the order they are polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert (to the group, or to each unicast peer).
    SendAdvert(Advert),
    AddAddresses(Vec<IpAddr>),
    RemoveAddresses(Vec<IpAddr>),
    /// Gratuitous ARP / unsolicited NA burst for these addresses.
    Announce(Vec<IpAddr>),
    /// A claim after silence is due, but a master that went quiet may be frozen or killed with its
    /// addresses still on its interface: ask the LAN who answers for these addresses (ARP probe /
    /// neighbour solicitation), keep asking while anyone does, and send [`Event::ProbeQuiet`] once
    /// nobody does. The instance stays Backup meanwhile; an advert heard ends the wait as usual.
    Probe(Vec<IpAddr>),
    Transition(Transition),
    /// A VRRPv2 router speaks on our VRID ([`Config::follow_v2`]): from now on we send and accept
    /// VRRPv2 adverts at `interval` (the one it advertises, as VRRPv2 requires the same on every
    /// router). The daemon changes what it accepts and says so.
    SpeakV2 {
        from: IpAddr,
        interval: Duration,
    },
}

/// A state change with a reason a person can read at 2am.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub at: Instant,
    pub from: State,
    pub to: State,
    /// e.g. "BACKUP: advert from 192.0.2.2 priority 200 > ours 150"
    pub reason: String,
}

/// The master as last heard on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterSeen {
    pub address: IpAddr,
    pub priority: u8,
    pub interval: Duration,
    pub last_heard: Instant,
}

/// Which planned move a master is in the middle of (make-before-break).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handoff {
    /// The operator said `release`: end in Backup, never claiming until `Auto`.
    Release,
    /// A check or tracked-interface fault: end in Fault.
    Fault,
    /// The daemon is stopping: end in Initialize, stopped.
    Shutdown,
}

/// The smallest advert interval we ever run timers with (VRRPv3's minimum), so a zero or garbage
/// interval can never make a timer fire in a loop.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// A master that keeps hearing lower-priority adverts (it cannot make that router step down) announces
/// its addresses again at most this often, so a one-way link does not turn into a GARP storm.
const HEAL_ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// The timer table: every deadline the instance can be waiting for. `poll_timeout` is the earliest.
#[derive(Debug, Default, Clone)]
struct Timers {
    /// Master: send the next advert (during a handoff: re-send the priority-0 advert).
    advert: Option<Instant>,
    /// Backup: no advert heard for Master_Down_Interval (or Skew_Time after a priority-0 advert).
    master_down: Option<Instant>,
    /// Master handing off: give up waiting for a successor and remove the addresses anyway.
    handoff: Option<Instant>,
}

impl Timers {
    fn next(&self) -> Option<Instant> {
        [self.advert, self.master_down, self.handoff]
            .into_iter()
            .flatten()
            .min()
    }
}

/// What the backup's master-down timer is waiting on, so the claim can say why in the user's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// No master heard since we became backup.
    Nobody,
    /// A master we accepted; its adverts stopped.
    Master(IpAddr),
    /// That master sent priority 0 (it is leaving): we wait only the skew.
    SteppedDown(IpAddr),
    /// A lower-priority master whose adverts we ignore because preempt is on.
    Preempting { src: IpAddr, priority: u8 },
}

#[derive(Debug, Clone, Copy)]
struct ActiveHandoff {
    kind: Handoff,
    started: Instant,
}

/// One VRRP instance's election.
#[derive(Debug)]
pub struct Instance {
    config: Config,
    state: State,
    /// Configured priority as changed by `SetPriority` (unused for an address owner).
    base_priority: u8,
    override_mode: Option<Override>,
    link_down: bool,
    /// The check/tracked-interface fault, kept apart from the link so either can clear alone.
    fault: Option<String>,
    claim_inhibit: Option<String>,
    shutdown_requested: bool,
    stopped: bool,
    handoff: Option<ActiveHandoff>,
    timers: Timers,
    /// The interval in force: ours as master (and v2 always), the master's as a v3 backup.
    interval: Duration,
    master_seen: Option<MasterSeen>,
    wait: Wait,
    /// Preempt delay: lower-priority adverts count as a live master until this instant.
    preempt_hold_until: Option<Instant>,
    /// Master-down passed while a claim was held back (released or inhibited): claim as soon as allowed.
    claim_due: bool,
    /// A claim after silence waits for [`Event::ProbeQuiet`] ([`Action::Probe`] was sent).
    probing: bool,
    /// The reason of a group's claim that waits for the probe.
    follow_reason: Option<String>,
    last_heal_announce: Option<Instant>,
    last_transition: Option<Transition>,
    actions: VecDeque<Action>,
    /// `config.addresses` as adverts carry them, built once.
    advert_addresses: Arc<[IpAddr]>,
}

impl Instance {
    pub fn new(config: Config) -> Self {
        let mut config = config;
        config.priority = config.priority.max(1);
        config.advert_interval = config.advert_interval.max(MIN_INTERVAL);
        let base_priority = config.priority.min(TAKEOVER_PRIORITY);
        let interval = config.advert_interval;
        let advert_addresses = config.addresses.as_slice().into();
        Self {
            config,
            advert_addresses,
            state: State::Initialize,
            base_priority,
            override_mode: None,
            link_down: false,
            fault: None,
            claim_inhibit: None,
            shutdown_requested: false,
            stopped: false,
            handoff: None,
            timers: Timers::default(),
            interval,
            master_seen: None,
            wait: Wait::Nobody,
            preempt_hold_until: None,
            claim_due: false,
            probing: false,
            follow_reason: None,
            last_heal_announce: None,
            last_transition: None,
            actions: VecDeque::new(),
        }
    }

    pub fn handle_event(&mut self, now: Instant, event: Event) {
        // A timer that expired before this event happened first; the caller may have been busy.
        self.fire_expired(now);
        let priority_before = self.effective_priority();
        let handing_off_before = self.handoff.is_some();
        let state_before = self.state;
        match event {
            Event::Startup => self.on_startup(now),
            Event::Shutdown => self.on_shutdown(now),
            Event::Advert { src, advert } => self.on_advert(now, src, &advert),
            Event::SetPriority(p) => {
                if self.config.priority != 255 {
                    self.base_priority = p.clamp(1, TAKEOVER_PRIORITY);
                }
            }
            Event::LinkDown => self.on_link_down(now),
            Event::LinkUp => {
                self.link_down = false;
                if self.state == State::Fault && self.fault.is_none() {
                    self.recover(now, "link up");
                }
            }
            Event::Fault(Some(reason)) => self.on_fault(now, reason),
            Event::Fault(None) => {
                let old = self.fault.take();
                match self.state {
                    State::Master => self.reconcile_master(now),
                    State::Fault if !self.link_down => {
                        let why = match old {
                            Some(old) => format!("fault cleared (was: {old})"),
                            None => "fault cleared".to_string(),
                        };
                        self.recover(now, &why);
                    }
                    _ => {}
                }
            }
            Event::ClaimInhibit(reason) => {
                let old = std::mem::replace(&mut self.claim_inhibit, reason);
                if let (Some(old), None) = (old, &self.claim_inhibit) {
                    self.claim_if_due(now, &format!("claim inhibit ended (was: {old})"));
                }
            }
            Event::Override(o) => self.on_override(now, o),
            Event::ProbeQuiet => {
                if std::mem::take(&mut self.probing)
                    && self.state == State::Backup
                    && self.claim_due
                    && self.auto_claim_allowed()
                {
                    let why = match self.follow_reason.take() {
                        Some(follow) => follow,
                        None => self.claim_reason(),
                    };
                    let reason = format!(
                        "{why}; nobody else answers for {} any more",
                        address_list(&self.config.addresses)
                    );
                    self.become_master(now, reason);
                }
            }
            Event::Follow { to, reason } => self.on_follow(now, to, &reason),
            Event::Primary(addr) => self.config.primary = addr,
        }
        // A master tells the group about a new priority at once rather than at the next advert.
        if self.state == State::Master
            && state_before == State::Master
            && !handing_off_before
            && self.handoff.is_none()
            && self.effective_priority() != priority_before
        {
            self.send_advert_now(now);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.fire_expired(now);
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        self.timers.next()
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Priority currently advertised (254 under takeover, 0 while stepping down, else configured/SetPriority).
    pub fn effective_priority(&self) -> u8 {
        if self.handoff.is_some() {
            0
        } else if self.config.priority == 255 {
            255
        } else if self.override_mode == Some(Override::Takeover) {
            TAKEOVER_PRIORITY
        } else {
            self.base_priority
        }
    }

    pub fn override_mode(&self) -> Option<Override> {
        self.override_mode
    }

    pub fn master_seen(&self) -> Option<&MasterSeen> {
        self.master_seen.as_ref()
    }

    /// The interval in force (a v3 backup adopts the master's).
    pub fn current_interval(&self) -> Duration {
        self.interval
    }

    /// True once a Shutdown has completed (addresses removed, nothing more to do).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Why this instance will not claim the VIP when master-down fires (witness unreachable, ...).
    pub fn claim_inhibit(&self) -> Option<&str> {
        self.claim_inhibit.as_deref()
    }

    /// The check/tracked-interface fault in force, if any (the link is [`Instance::link_is_down`]).
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// True between `LinkDown` and `LinkUp`.
    pub fn link_is_down(&self) -> bool {
        self.link_down
    }

    /// The planned move a master is in the middle of: it advertises priority 0 and still holds its
    /// addresses until a successor is heard or [`Instance::handoff_window`] has passed.
    pub fn handoff(&self) -> Option<Handoff> {
        self.handoff.map(|h| h.kind)
    }

    /// The most recent state change and its reason.
    pub fn last_transition(&self) -> Option<&Transition> {
        self.last_transition.as_ref()
    }

    /// True while a claim waits for [`Event::ProbeQuiet`] (see [`Action::Probe`]).
    pub fn probing(&self) -> bool {
        self.probing && self.state == State::Backup
    }

    /// For `floatip status`: why a backup is not claiming even though it would otherwise, e.g.
    /// "not claiming: witness unreachable" or "not claiming: released by operator".
    pub fn not_claiming(&self) -> Option<String> {
        if self.state != State::Backup {
            return None;
        }
        if self.override_mode == Some(Override::Release) {
            return Some("not claiming: released by operator (until auto)".to_string());
        }
        if let Some(r) = &self.claim_inhibit {
            return Some(format!("not claiming: {r}"));
        }
        self.probing.then(|| {
            format!(
                "not claiming yet: {} may still be answered by a master that went quiet (frozen or \
                 killed, its addresses still up); claiming once nobody answers",
                address_list(&self.config.addresses)
            )
        })
    }

    /// Skew_Time for our effective priority at the interval in force, to the nanosecond.
    pub fn skew_time(&self) -> Duration {
        skew_time(self.effective_priority(), self.interval)
    }

    /// Master_Down_Interval = 3 x interval + Skew_Time, for our effective priority and the interval in force.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(self.effective_priority(), self.interval)
    }

    /// How long a handing-off master keeps its addresses without hearing a successor: the master-down
    /// interval of our own configuration, which bounds how long any backup can take to claim.
    pub fn handoff_window(&self) -> Duration {
        let priority = if self.config.priority == 255 {
            255
        } else {
            self.base_priority
        };
        master_down_interval(priority, self.config.advert_interval)
    }

    // ---- events -------------------------------------------------------------------------------

    fn on_startup(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        self.stopped = false;
        self.shutdown_requested = false;
        self.interval = self.config.advert_interval;
        if let Some(why) = self.fault_reason() {
            self.timers = Timers::default();
            self.transition(now, State::Fault, format!("FAULT: {why} at startup"));
        } else {
            self.recover(now, "startup");
        }
    }

    fn on_shutdown(&mut self, now: Instant) {
        self.shutdown_requested = true;
        match self.state {
            State::Master => self.reconcile_master(now),
            State::Initialize => {
                self.timers = Timers::default();
                self.stopped = true;
            }
            State::Backup | State::Fault => {
                let was = if self.state == State::Backup {
                    "backup"
                } else {
                    "fault"
                };
                self.timers = Timers::default();
                self.stopped = true;
                self.transition(
                    now,
                    State::Initialize,
                    format!("INIT: shutdown (was {was}, held no addresses)"),
                );
            }
        }
    }

    fn on_link_down(&mut self, now: Instant) {
        self.link_down = true;
        match self.state {
            State::Master => {
                self.remove_addresses();
                self.handoff = None;
                self.timers = Timers::default();
                if self.shutdown_requested {
                    self.stopped = true;
                    self.transition(
                        now,
                        State::Initialize,
                        "INIT: shutdown; link went down meanwhile, addresses removed at once"
                            .to_string(),
                    );
                } else {
                    self.transition(
                        now,
                        State::Fault,
                        "FAULT: link down; addresses removed at once".to_string(),
                    );
                }
            }
            State::Backup => {
                self.timers = Timers::default();
                self.transition(now, State::Fault, "FAULT: link down".to_string());
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn on_fault(&mut self, now: Instant, reason: String) {
        self.fault = Some(reason.clone());
        match self.state {
            State::Master => self.reconcile_master(now),
            State::Backup => {
                self.timers = Timers::default();
                self.transition(now, State::Fault, format!("FAULT: {reason}"));
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn on_override(&mut self, now: Instant, o: Override) {
        self.override_mode = match o {
            Override::Auto => None,
            o => Some(o),
        };
        match self.state {
            State::Master => self.reconcile_master(now),
            State::Backup => match o {
                Override::Takeover => self.become_master(
                    now,
                    format!("MASTER: operator takeover (priority {TAKEOVER_PRIORITY} until auto)"),
                ),
                Override::Release => {}
                Override::Auto => {
                    if self.claims_at_once() {
                        self.become_master(
                            now,
                            "MASTER: back to auto; address owner (priority 255) claims at once"
                                .to_string(),
                        );
                    } else {
                        self.claim_if_due(now, "back to auto");
                    }
                }
            },
            State::Initialize | State::Fault => {}
        }
    }

    fn on_follow(&mut self, now: Instant, to: State, reason: &str) {
        match (self.state, to) {
            (State::Backup, State::Master) if self.auto_claim_allowed() && !self.stopped => {
                // Nobody heard on our own VRID lately: the old master may be frozen with our
                // addresses still up, so the claim waits for the probe like any claim after silence.
                if self.config.probe_before_claim && self.master_silent(now) {
                    self.follow_reason = Some(format!("MASTER: {reason}"));
                    self.start_probe(now);
                } else {
                    self.become_master(now, format!("MASTER: {reason}"));
                }
            }
            (State::Master, State::Backup) if self.handoff.is_some() => {
                self.end_handoff(now, reason.to_string(), None);
            }
            (State::Master, State::Backup) => {
                self.remove_addresses();
                self.enter_backup_after(now, None, format!("BACKUP: {reason}"));
            }
            _ => {}
        }
    }

    fn on_advert(&mut self, now: Instant, src: IpAddr, advert: &Advert) {
        if advert.vrid != self.config.vrid || src == self.config.primary {
            return;
        }
        if advert.version != self.config.version {
            if advert.version == Version::V2 && self.config.follow_v2 {
                self.speak_v2(now, src, advert.interval());
            } else {
                return;
            }
        }
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => self.backup_advert(now, src, advert),
            State::Master if self.handoff.is_some() => {
                // Anyone advertising a real priority now is the successor (or outranks us anyway).
                if advert.priority > 0 {
                    self.finish_handoff(now, Some((src, advert)));
                }
            }
            State::Master => self.master_advert(now, src, advert),
        }
    }

    /// RFC 5798 6.4.2, with the preempt delay.
    fn backup_advert(&mut self, now: Instant, src: IpAddr, advert: &Advert) {
        let advertised = advert.interval().max(MIN_INTERVAL);
        self.master_seen = Some(MasterSeen {
            address: src,
            priority: advert.priority,
            interval: advertised,
            last_heard: now,
        });
        if advert.priority == 0 {
            self.timers.master_down = Some(now + self.skew_time());
            self.wait = Wait::SteppedDown(src);
            self.claim_due = false;
            self.probing = false;
            self.follow_reason = None;
            self.preempt_hold_until = None;
            return;
        }
        let ours = self.effective_priority();
        let lower = advert.priority < ours;
        if lower && self.config.preempt {
            let until = *self
                .preempt_hold_until
                .get_or_insert(now + self.config.preempt_delay);
            if now >= until {
                // Discard: the master-down timer runs out and we claim over the lower master.
                self.wait = Wait::Preempting {
                    src,
                    priority: advert.priority,
                };
                return;
            }
            // Still inside the preempt delay: treat the lower master as a live one.
        } else {
            self.preempt_hold_until = None;
        }
        if self.config.version == Version::V3 {
            self.interval = advertised;
        }
        self.timers.master_down = Some(now + self.master_down_interval());
        self.wait = Wait::Master(src);
        self.claim_due = false;
        self.probing = false;
        self.follow_reason = None;
    }

    /// RFC 5798 6.4.3 / RFC 9568 6.4.3.
    fn master_advert(&mut self, now: Instant, src: IpAddr, advert: &Advert) {
        if advert.priority == 0 {
            // A master leaving: make sure backups hear us at once instead of claiming after skew.
            self.send_advert_now(now);
            return;
        }
        let ours = self.effective_priority();
        let theirs_wins = advert.priority > ours
            || (advert.priority == ours && addr_key(src) > addr_key(self.config.primary));
        if theirs_wins {
            let reason = if advert.priority > ours {
                format!(
                    "BACKUP: advert from {src} priority {} > ours {ours}",
                    advert.priority
                )
            } else {
                format!(
                    "BACKUP: advert from {src} priority {} = ours {ours} and its address {src} > ours {}",
                    advert.priority, self.config.primary
                )
            };
            let advertised = advert.interval().max(MIN_INTERVAL);
            self.master_seen = Some(MasterSeen {
                address: src,
                priority: advert.priority,
                interval: advertised,
                last_heard: now,
            });
            self.remove_addresses();
            self.enter_backup_after(now, Some((src, advertised)), reason);
        } else {
            // RFC 9568: answer at once so the other master steps down, and re-announce so clients
            // that moved to its MAC during a split come back.
            self.send_advert_now(now);
            let due = self
                .last_heal_announce
                .is_none_or(|t| now.saturating_duration_since(t) >= HEAL_ANNOUNCE_EVERY);
            if due {
                self.last_heal_announce = Some(now);
                self.actions
                    .push_back(Action::Announce(self.config.addresses.clone()));
            }
        }
    }

    // ---- timers -------------------------------------------------------------------------------

    fn fire_expired(&mut self, now: Instant) {
        // Each handler re-arms strictly in the future, so this settles; the bound is belt and braces.
        for _ in 0..8 {
            if self.timers.handoff.is_some_and(|t| t <= now) {
                self.timers.handoff = None;
                self.finish_handoff(now, None);
            } else if self.timers.master_down.is_some_and(|t| t <= now) {
                self.timers.master_down = None;
                self.master_down_fired(now);
            } else if let Some(due) = self.timers.advert.filter(|t| *t <= now) {
                self.timers.advert = None;
                if self.state == State::Master {
                    self.send_advert_now(now);
                    // Keep the cadence: a late wakeup does not stretch the next interval, so adverts
                    // go out exactly one interval apart on average and the deadline sequence is
                    // periodic (the daemon's timer then needs no re-arming). After a stall of more
                    // than an interval it restarts from now rather than sending a burst.
                    let next = due + self.config.advert_interval;
                    if next > now {
                        self.timers.advert = Some(next);
                    }
                }
            } else {
                break;
            }
        }
    }

    fn master_down_fired(&mut self, now: Instant) {
        if self.state != State::Backup {
            return;
        }
        if !self.auto_claim_allowed() {
            self.claim_due = true;
            self.timers.master_down = Some(now + self.master_down_interval());
            return;
        }
        if self.must_probe() {
            self.start_probe(now);
            return;
        }
        let reason = self.claim_reason();
        self.become_master(now, reason);
    }

    /// A claim after silence, with probing configured, that no probe has cleared yet. (A master that
    /// stepped down with priority 0, or a lower-priority one we preempt, is alive and lets go itself.)
    fn must_probe(&self) -> bool {
        self.config.probe_before_claim && matches!(self.wait, Wait::Nobody | Wait::Master(_))
    }

    /// No master heard on our VRID within a master-down interval.
    fn master_silent(&self, now: Instant) -> bool {
        self.master_seen.as_ref().is_none_or(|m| {
            now.saturating_duration_since(m.last_heard) >= self.master_down_interval()
        })
    }

    /// Hold the claim until [`Event::ProbeQuiet`]; master-down stays armed so that a change of who we
    /// wait for (a lower-priority master appearing) is acted on.
    fn start_probe(&mut self, now: Instant) {
        self.claim_due = true;
        self.timers.master_down = Some(now + self.master_down_interval());
        if !self.probing {
            self.probing = true;
            self.actions
                .push_back(Action::Probe(self.config.addresses.clone()));
        }
    }

    fn claim_reason(&self) -> String {
        let md = fmt_duration(self.master_down_interval());
        match self.wait {
            Wait::Nobody => format!("MASTER: no advert heard for {md} (master down)"),
            Wait::Master(src) => format!("MASTER: no advert from {src} for {md} (master down)"),
            Wait::SteppedDown(src) => format!(
                "MASTER: {src} stepped down (priority 0 advert); claimed after skew {}",
                fmt_duration(self.skew_time())
            ),
            Wait::Preempting { src, priority } => format!(
                "MASTER: preempting {src}: its priority {priority} < ours {} (preempt on)",
                self.effective_priority()
            ),
        }
    }

    /// A claim that master-down allowed earlier but something held back, now released.
    fn claim_if_due(&mut self, now: Instant, why: &str) {
        if self.state == State::Backup && self.claim_due && self.auto_claim_allowed() {
            if self.must_probe() {
                self.start_probe(now);
                return;
            }
            let reason = format!("{}; {why}", self.claim_reason());
            self.become_master(now, reason);
        }
    }

    // ---- transitions --------------------------------------------------------------------------

    fn auto_claim_allowed(&self) -> bool {
        self.override_mode != Some(Override::Release) && self.claim_inhibit.is_none()
    }

    /// Takeover claims even when inhibited: it is the operator's explicit word.
    fn claims_at_once(&self) -> bool {
        self.override_mode == Some(Override::Takeover)
            || (self.config.priority == 255 && self.auto_claim_allowed())
    }

    fn fault_reason(&self) -> Option<String> {
        match (&self.fault, self.link_down) {
            (Some(f), true) => Some(format!("link down and {f}")),
            (Some(f), false) => Some(f.clone()),
            (None, true) => Some("link down".to_string()),
            (None, false) => None,
        }
    }

    /// Leave Initialize or Fault for a running state.
    fn recover(&mut self, now: Instant, why: &str) {
        self.interval = self.config.advert_interval;
        if self.claims_at_once() {
            let who = if self.override_mode == Some(Override::Takeover) {
                format!("operator takeover (priority {TAKEOVER_PRIORITY} until auto)")
            } else {
                "address owner (priority 255) claims at once".to_string()
            };
            self.become_master(now, format!("MASTER: {why}; {who}"));
        } else {
            let reason = format!(
                "BACKUP: {why}; priority {}, claiming after {} without adverts",
                self.effective_priority(),
                fmt_duration(self.master_down_interval())
            );
            self.enter_backup_after(now, None, reason);
        }
    }

    fn become_master(&mut self, now: Instant, reason: String) {
        self.timers = Timers {
            advert: Some(now + self.config.advert_interval),
            ..Timers::default()
        };
        self.handoff = None;
        self.interval = self.config.advert_interval;
        self.claim_due = false;
        self.probing = false;
        self.follow_reason = None;
        self.preempt_hold_until = None;
        self.wait = Wait::Nobody;
        // The claim's own announce does not count: after a split the loser announced later than we did.
        self.last_heal_announce = None;
        let addresses = self.config.addresses.clone();
        self.actions
            .push_back(Action::AddAddresses(addresses.clone()));
        self.actions.push_back(Action::Announce(addresses));
        self.actions.push_back(Action::SendAdvert(self.advert()));
        self.transition(now, State::Master, reason);
    }

    /// Into Backup with the master-down timer armed; `heard` is the master we just heard, if any.
    fn enter_backup_after(
        &mut self,
        now: Instant,
        heard: Option<(IpAddr, Duration)>,
        reason: String,
    ) {
        self.timers = Timers::default();
        self.handoff = None;
        self.claim_due = false;
        self.probing = false;
        self.follow_reason = None;
        self.preempt_hold_until = None;
        self.wait = match heard {
            Some((src, interval)) => {
                if self.config.version == Version::V3 {
                    self.interval = interval;
                }
                Wait::Master(src)
            }
            None => Wait::Nobody,
        };
        if self.config.version == Version::V2 {
            self.interval = self.config.advert_interval;
        }
        self.timers.master_down = Some(now + self.master_down_interval());
        self.transition(now, State::Backup, reason);
    }

    /// Which planned move a master should be making right now, if any.
    fn wanted_handoff(&self) -> Option<Handoff> {
        if self.shutdown_requested {
            Some(Handoff::Shutdown)
        } else if self.fault.is_some() {
            Some(Handoff::Fault)
        } else if self.override_mode == Some(Override::Release) {
            Some(Handoff::Release)
        } else {
            None
        }
    }

    /// Start, retarget or cancel a make-before-break handoff to match what is wanted now.
    fn reconcile_master(&mut self, now: Instant) {
        if self.state != State::Master {
            return;
        }
        let wanted = self.wanted_handoff();
        match (self.handoff.as_mut(), wanted) {
            (None, Some(kind)) => {
                self.handoff = Some(ActiveHandoff { kind, started: now });
                self.timers.handoff = Some(now + self.handoff_window());
                self.send_advert_now(now);
            }
            (Some(h), Some(kind)) => h.kind = kind,
            (Some(_), None) => {
                self.handoff = None;
                self.timers.handoff = None;
                self.send_advert_now(now);
            }
            (None, None) => {}
        }
    }

    fn finish_handoff(&mut self, now: Instant, successor: Option<(IpAddr, &Advert)>) {
        let Some(h) = self.handoff else {
            return;
        };
        let how = match successor {
            Some((src, advert)) => format!(
                "successor {src} (priority {}) heard after {}",
                advert.priority,
                fmt_duration(now.saturating_duration_since(h.started))
            ),
            None => format!(
                "no successor heard within {}",
                fmt_duration(self.handoff_window())
            ),
        };
        let heard = successor.map(|(src, advert)| MasterSeen {
            address: src,
            priority: advert.priority,
            interval: advert.interval().max(MIN_INTERVAL),
            last_heard: now,
        });
        self.end_handoff(now, how, heard);
    }

    /// Remove the addresses and end the handoff in its end state; `how` says how it ended.
    fn end_handoff(&mut self, now: Instant, how: String, successor: Option<MasterSeen>) {
        let Some(h) = self.handoff.take() else {
            return;
        };
        self.timers = Timers::default();
        self.remove_addresses();
        match h.kind {
            Handoff::Release => {
                let heard = successor.map(|m| {
                    let heard = (m.address, m.interval);
                    self.master_seen = Some(m);
                    heard
                });
                self.enter_backup_after(
                    now,
                    heard,
                    format!("BACKUP: released by operator; {how}; addresses removed"),
                );
            }
            Handoff::Fault => {
                let why = self.fault_reason().unwrap_or_else(|| "fault".to_string());
                self.transition(
                    now,
                    State::Fault,
                    format!("FAULT: {why}; {how}; addresses removed"),
                );
            }
            Handoff::Shutdown => {
                self.stopped = true;
                self.transition(
                    now,
                    State::Initialize,
                    format!("INIT: shutdown; {how}; addresses removed"),
                );
            }
        }
    }

    fn transition(&mut self, now: Instant, to: State, reason: String) {
        let t = Transition {
            at: now,
            from: self.state,
            to,
            reason,
        };
        self.state = to;
        self.last_transition = Some(t.clone());
        self.actions.push_back(Action::Transition(t));
    }

    // ---- outputs ------------------------------------------------------------------------------

    fn remove_addresses(&mut self) {
        self.actions
            .push_back(Action::RemoveAddresses(self.config.addresses.clone()));
    }

    /// Send an advert now and restart the advert timer from here.
    fn send_advert_now(&mut self, now: Instant) {
        self.actions.push_back(Action::SendAdvert(self.advert()));
        self.timers.advert = Some(now + self.config.advert_interval);
    }

    /// Switches to VRRPv2 at the v2 router's interval (whole seconds, 1 s at least); a master
    /// advertises at once in the new version, so the v2 router hears it now.
    fn speak_v2(&mut self, now: Instant, from: IpAddr, interval: Duration) {
        let interval = Duration::from_secs(interval.as_secs().clamp(1, 255));
        self.config.version = Version::V2;
        self.config.follow_v2 = false;
        self.config.advert_interval = interval;
        self.interval = interval;
        self.actions.push_back(Action::SpeakV2 { from, interval });
        if self.state == State::Master && self.handoff.is_none() {
            self.send_advert_now(now);
        }
    }

    fn advert(&self) -> Advert {
        let cs = self.config.advert_interval.as_millis() / 10;
        let interval_cs = match self.config.version {
            Version::V3 => cs.clamp(1, 4095) as u16,
            Version::V2 => (cs / 100).clamp(1, 255) as u16 * 100,
        };
        Advert {
            version: self.config.version,
            vrid: self.config.vrid,
            priority: self.effective_priority(),
            interval_cs,
            addresses: self.advert_addresses.clone(),
        }
    }
}

/// Skew_Time = ((256 - priority) x interval) / 256, in nanoseconds (RFC 5798 6.1 as RFC 9568 fixed it).
pub fn skew_time(priority: u8, interval: Duration) -> Duration {
    let ns = (256 - u128::from(priority)) * interval.as_nanos() / 256;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Master_Down_Interval = 3 x interval + Skew_Time.
pub fn master_down_interval(priority: u8, interval: Duration) -> Duration {
    interval
        .saturating_mul(3)
        .saturating_add(skew_time(priority, interval))
}

/// Tie-break order for primary addresses: numeric within a family (IPv4 below IPv6 if ever mixed).
fn addr_key(ip: IpAddr) -> (u8, u128) {
    match ip {
        IpAddr::V4(a) => (4, u128::from(u32::from(a))),
        IpAddr::V6(a) => (6, u128::from(a)),
    }
}

/// "3.61 s", "30.08 ms", "78.1 us": short, and exact enough to compare with the config.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} us", d.as_secs_f64() * 1e6)
    }
}
