//! Fuzz the election state machine with arbitrary event sequences at arbitrary time steps.
//!
//! Invariants: never panics; after every call `poll_timeout` is not before `now` (and `None` once
//! stopped); addresses are never added twice without a removal, never removed when not held, and
//! held exactly while the state is Master; every Transition starts from the state we were in and has
//! a reason.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vrrp::machine::{Action, Config, Event, Instance, Override, State};
use vrrp::{Advert, Version};

#[derive(Debug, Arbitrary)]
struct Input {
    v6: bool,
    v2: bool,
    priority: u8,
    interval_cs: u16,
    preempt: bool,
    preempt_delay_cs: u16,
    primary: u8,
    steps: Vec<Step>,
}

#[derive(Debug, Arbitrary)]
struct Step {
    /// Time passing before this step, in microseconds (up to ~65 ms) times a scale.
    advance_us: u16,
    scale: u8,
    op: Op,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// What a well-behaved driver does: fire the timer when it is due.
    Timeout,
    /// A driver that wakes at a random time.
    TimeoutNow,
    Startup,
    Shutdown,
    Advert {
        src: u8,
        priority: u8,
        interval_cs: u16,
        vrid_other: bool,
        version_other: bool,
    },
    SetPriority(u8),
    LinkDown,
    LinkUp,
    Fault(Option<u8>),
    ClaimInhibit(Option<u8>),
    Takeover,
    Release,
    Auto,
}

fn addr(v6: bool, last: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(last)))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }
}

fn interval(v2: bool, cs: u16) -> Duration {
    if v2 {
        Duration::from_secs(u64::from(cs % 255 + 1))
    } else {
        Duration::from_millis(u64::from(cs % 4095 + 1) * 10)
    }
}

fuzz_target!(|input: Input| {
    let v6 = input.v6;
    let v2 = input.v2 && !v6;
    let version = if v2 { Version::V2 } else { Version::V3 };
    let config = Config {
        vrid: 51,
        version,
        priority: input.priority,
        advert_interval: interval(v2, input.interval_cs),
        preempt: input.preempt,
        preempt_delay: Duration::from_millis(u64::from(input.preempt_delay_cs) * 10),
        addresses: vec![addr(v6, 97)],
        primary: addr(v6, input.primary),
    };
    let mut inst = Instance::new(config);
    let base = Instant::now();
    let mut now = base;
    let mut holds = false;
    let mut state = inst.state();

    for step in input.steps.iter().take(512) {
        let advance =
            Duration::from_micros(u64::from(step.advance_us) * u64::from(step.scale % 64 + 1));
        now += advance;
        match &step.op {
            Op::Timeout => {
                if let Some(t) = inst.poll_timeout() {
                    now = now.max(t);
                    inst.handle_timeout(now);
                }
            }
            Op::TimeoutNow => inst.handle_timeout(now),
            op => {
                let event = match op {
                    Op::Startup => Event::Startup,
                    Op::Shutdown => Event::Shutdown,
                    Op::Advert {
                        src,
                        priority,
                        interval_cs,
                        vrid_other,
                        version_other,
                    } => {
                        let version = if *version_other {
                            if v2 {
                                Version::V3
                            } else {
                                Version::V2
                            }
                        } else {
                            version
                        };
                        Event::Advert {
                            src: addr(v6, *src),
                            advert: Advert {
                                version,
                                vrid: if *vrid_other { 52 } else { 51 },
                                priority: *priority,
                                interval_cs: *interval_cs,
                                addresses: vec![addr(v6, 97)],
                            },
                        }
                    }
                    Op::SetPriority(p) => Event::SetPriority(*p),
                    Op::LinkDown => Event::LinkDown,
                    Op::LinkUp => Event::LinkUp,
                    Op::Fault(r) => Event::Fault(r.map(|r| format!("check {r} failing"))),
                    Op::ClaimInhibit(r) => {
                        Event::ClaimInhibit(r.map(|r| format!("witness {r} unreachable")))
                    }
                    Op::Takeover => Event::Override(Override::Takeover),
                    Op::Release => Event::Override(Override::Release),
                    Op::Auto => Event::Override(Override::Auto),
                    Op::Timeout | Op::TimeoutNow => unreachable!(),
                };
                inst.handle_event(now, event);
            }
        }

        if let Some(t) = inst.poll_timeout() {
            assert!(t >= now, "poll_timeout {:?} before now", now - t);
        }
        if inst.is_stopped() {
            assert_eq!(inst.poll_timeout(), None);
        }
        while let Some(action) = inst.poll_action() {
            match action {
                Action::AddAddresses(a) => {
                    assert!(!holds, "addresses added twice without a removal");
                    assert!(!a.is_empty());
                    holds = true;
                }
                Action::RemoveAddresses(_) => {
                    assert!(holds, "addresses removed while not held");
                    holds = false;
                }
                Action::Announce(_) => assert!(holds, "announce without holding the addresses"),
                Action::SendAdvert(a) => {
                    assert!(holds, "advert sent while not master");
                    assert!(a.interval_cs >= 1);
                }
                Action::Transition(t) => {
                    assert_eq!(t.from, state, "transition from a state we were not in");
                    assert_ne!(t.from, t.to);
                    assert!(!t.reason.is_empty());
                    assert_eq!(t.at, now);
                    state = t.to;
                }
            }
        }
        assert_eq!(state, inst.state());
        assert_eq!(
            holds,
            inst.state() == State::Master,
            "holds addresses iff master"
        );
    }
});
