//! The per-instance VRRP state machine (RFC 5798 / RFC 9568 section 6.4, RFC 3768), sans-IO.
//!
//! API CONTRACT (shared with the daemon; add to it freely, change it only in agreement):
//! the caller feeds [`Event`]s with `now`, calls [`Instance::handle_timeout`] when
//! [`Instance::poll_timeout`] has passed, and drains [`Instance::poll_action`] after every call.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::packet::{Advert, Version};

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// The daemon said the instance cannot serve (link down, failing check, tracked interface down).
    Fault,
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
    Advert { src: IpAddr, advert: Advert },
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
    Transition(Transition),
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

/// One VRRP instance's election.
#[derive(Debug)]
pub struct Instance {
    // implementation-defined
}

impl Instance {
    pub fn new(config: Config) -> Self {
        let _ = config;
        unimplemented!("state machine helper fills this in")
    }
    pub fn handle_event(&mut self, now: Instant, event: Event) {
        let _ = (now, event);
        unimplemented!()
    }
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        unimplemented!()
    }
    pub fn poll_action(&mut self) -> Option<Action> {
        unimplemented!()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!()
    }
    pub fn state(&self) -> State {
        unimplemented!()
    }
    pub fn config(&self) -> &Config {
        unimplemented!()
    }
    /// Priority currently advertised (254 under takeover, 0 while stepping down, else configured/SetPriority).
    pub fn effective_priority(&self) -> u8 {
        unimplemented!()
    }
    pub fn override_mode(&self) -> Option<Override> {
        unimplemented!()
    }
    pub fn master_seen(&self) -> Option<&MasterSeen> {
        unimplemented!()
    }
    /// The interval in force (a v3 backup adopts the master's).
    pub fn current_interval(&self) -> Duration {
        unimplemented!()
    }
    /// True once a Shutdown has completed (addresses removed, nothing more to do).
    pub fn is_stopped(&self) -> bool {
        unimplemented!()
    }
}
