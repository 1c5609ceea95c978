//! Fuzz the election state machine with arbitrary configurations and event sequences.
//!
//! Drive one `Instance` with arbitrary events at non-decreasing times, fire timeouts when due, drain
//! actions, and check what the API contract promises: no panic; the deadline is never in the past after
//! any call; `Transition`s chain (each `from` is the previous `to`, starting at Initialize) and end in
//! `state()`; addresses are added only when not held and removed only when held; adverts and
//! announcements come only from a router holding the addresses; it holds them exactly while MASTER;
//! and a probe is asked for only by a backup that then waits for it.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vrrp::machine::{Action, Config, Event, Instance, Override, State};
use vrrp::packet::{Advert, Version};

#[derive(Debug, Arbitrary)]
enum Ev {
    Startup,
    Shutdown,
    Advert {
        src: u8,
        priority: u8,
        interval_cs: u16,
    },
    SetPriority(u8),
    LinkDown,
    LinkUp,
    Fault(bool),
    ClaimInhibit(bool),
    Takeover,
    Release,
    Auto,
    ProbeQuiet,
}

#[derive(Debug, Arbitrary)]
struct Input {
    v6: bool,
    v2: bool,
    vrid: u8,
    priority: u8,
    interval_cs: u16,
    preempt: bool,
    preempt_delay_cs: u8,
    probe_before_claim: bool,
    follow_v2: bool,
    /// (milliseconds to advance, event)
    steps: Vec<(u16, Ev)>,
}

fn addr(v6: bool, host: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host)))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, host))
    }
}

/// What the fuzzer knows of the instance from its actions alone.
struct Seen {
    state: State,
    holding: bool,
}

/// Drain all actions and check them against what was seen before.
fn drain(inst: &mut Instance, seen: &mut Seen, now: Instant) {
    for _ in 0..10_000 {
        match inst.poll_action() {
            None => {
                assert_eq!(seen.state, inst.state(), "transitions do not end in state()");
                assert_eq!(
                    seen.holding,
                    inst.state() == State::Master,
                    "holds the addresses outside MASTER (or not in MASTER)"
                );
                if let Some(next) = inst.poll_timeout() {
                    assert!(next >= now, "deadline in the past");
                }
                return;
            }
            Some(Action::Transition(t)) => {
                assert_eq!(t.from, seen.state, "{t:?}");
                assert!(!t.reason.is_empty(), "a transition without a reason");
                seen.state = t.to;
            }
            Some(Action::AddAddresses(_)) => {
                assert!(!seen.holding, "added the addresses twice");
                seen.holding = true;
            }
            Some(Action::RemoveAddresses(_)) => {
                assert!(seen.holding, "removed addresses it did not hold");
                seen.holding = false;
            }
            Some(Action::SendAdvert(_)) | Some(Action::Announce(_)) => {
                assert!(seen.holding, "advertised or announced without holding the addresses");
            }
            Some(Action::Probe(_)) => {
                assert!(!seen.holding, "probed for addresses it holds");
                assert!(inst.probing(), "asked for a probe without waiting for it");
            }
        }
    }
    panic!("poll_action never returned None");
}

fuzz_target!(|input: Input| {
    let v2 = input.v2 && !input.v6;
    // Respect the caller-side validation the Config documents.
    let interval = if v2 {
        Duration::from_secs(u64::from(input.interval_cs % 255 + 1))
    } else {
        Duration::from_millis(u64::from(input.interval_cs % 4095 + 1) * 10)
    };
    let config = Config {
        vrid: input.vrid.max(1),
        version: if v2 { Version::V2 } else { Version::V3 },
        priority: input.priority.max(1),
        advert_interval: interval,
        preempt: input.preempt,
        preempt_delay: Duration::from_millis(u64::from(input.preempt_delay_cs) * 10),
        addresses: vec![addr(input.v6, 97)],
        primary: addr(input.v6, 1),
        probe_before_claim: input.probe_before_claim,
        follow_v2: input.follow_v2 && !v2 && !input.v6,
    };
    let mut now = Instant::now();
    let mut inst = Instance::new(config.clone());
    let mut seen = Seen {
        state: State::Initialize,
        holding: false,
    };
    drain(&mut inst, &mut seen, now);
    for (advance_ms, ev) in input.steps.into_iter().take(256) {
        let target = now + Duration::from_millis(u64::from(advance_ms));
        // Fire every deadline that falls before the next event (bounded).
        for _ in 0..1000 {
            match inst.poll_timeout() {
                Some(t) if t <= target => {
                    now = now.max(t);
                    inst.handle_timeout(now);
                    drain(&mut inst, &mut seen, now);
                }
                _ => break,
            }
        }
        now = target;
        let event = match ev {
            Ev::Startup => Event::Startup,
            Ev::Shutdown => Event::Shutdown,
            Ev::Advert {
                src,
                priority,
                interval_cs,
            } => Event::Advert {
                src: addr(input.v6, src),
                advert: Advert {
                    version: config.version,
                    vrid: config.vrid,
                    priority,
                    interval_cs: if v2 {
                        config.advert_interval.as_secs() as u16 * 100
                    } else {
                        interval_cs % 4095 + 1
                    },
                    addresses: config.addresses.as_slice().into(),
                },
            },
            Ev::SetPriority(p) => Event::SetPriority(p.clamp(1, 254)),
            Ev::LinkDown => Event::LinkDown,
            Ev::LinkUp => Event::LinkUp,
            Ev::Fault(on) => Event::Fault(on.then(|| "check failed".to_owned())),
            Ev::ClaimInhibit(on) => Event::ClaimInhibit(on.then(|| "witness".to_owned())),
            Ev::Takeover => Event::Override(Override::Takeover),
            Ev::Release => Event::Override(Override::Release),
            Ev::Auto => Event::Override(Override::Auto),
            Ev::ProbeQuiet => Event::ProbeQuiet,
        };
        inst.handle_event(now, event);
        drain(&mut inst, &mut seen, now);
        let _ = (
            inst.effective_priority(),
            inst.current_interval(),
            inst.is_stopped(),
        );
    }
});
