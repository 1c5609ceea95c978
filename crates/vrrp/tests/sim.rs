//! A simulated LAN: several `Instance`s, one virtual clock, and a network that delivers each
//! `SendAdvert` to every other running router in the same partition, with optional loss and delay
//! (the shape of quinn's `tests/util.rs` `Pair::drive`). Nothing here touches a socket or a clock.
//!
//! Invariants checked on every step: a router holds the addresses (tracked from Add/Remove actions)
//! exactly while it is Master, adds only when not holding and removes only when holding, announces
//! and advertises only while holding; a make-before-break handoff never lasts longer than its
//! window; `poll_timeout` is never in the past; every Transition starts from the state the router
//! was in and has a non-empty reason. After the network has been quiet for a few master-down
//! intervals: exactly one master, and with preempt on everywhere it has the highest priority.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use vrrp::{Action, Advert, Config, Event, Instance, Override, State, Version};

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 97));

fn primary(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone)]
struct Spec {
    priority: u8,
    preempt: bool,
    interval: Duration,
    preempt_delay: Duration,
    version: Version,
}

impl Spec {
    fn new(priority: u8) -> Self {
        Spec {
            priority,
            preempt: true,
            interval: ms(100),
            preempt_delay: Duration::ZERO,
            version: Version::V3,
        }
    }

    fn config(&self, i: usize) -> Config {
        Config {
            vrid: 51,
            version: self.version,
            priority: self.priority,
            advert_interval: self.interval,
            preempt: self.preempt,
            preempt_delay: self.preempt_delay,
            addresses: vec![VIP],
            primary: primary(i),
            probe_before_claim: false,
            follow_v2: false,
        }
    }
}

struct Router {
    spec: Spec,
    /// None: crashed or not yet started (its addresses expired with the kernel lifetime).
    inst: Option<Instance>,
    holds: bool,
    /// Which side of a partition it is on; routers hear each other only within a group.
    group: u8,
    /// When the current make-before-break handoff began.
    handoff_since: Option<Duration>,
    transitions: Vec<vrrp::Transition>,
    /// The state as the Transition actions told it (a new instance starts in Initialize).
    told: State,
    announces: usize,
}

struct Packet {
    at: Duration,
    seq: u64,
    to: usize,
    src: IpAddr,
    advert: Advert,
}

struct Lan {
    base: Instant,
    now: Duration,
    routers: Vec<Router>,
    in_flight: Vec<Packet>,
    seq: u64,
    rng: u64,
    /// Per-mille chance that one delivery is lost.
    loss_pm: u64,
    max_delay: Duration,
    /// Time during which nobody held the VIP, and during which two routers in one group held it.
    gap: Duration,
    dual: Duration,
}

impl Lan {
    fn new(specs: Vec<Spec>, seed: u64) -> Self {
        let routers = specs
            .into_iter()
            .map(|spec| Router {
                spec,
                inst: None,
                holds: false,
                group: 0,
                handoff_since: None,
                transitions: vec![],
                told: State::Initialize,
                announces: 0,
            })
            .collect();
        Lan {
            base: Instant::now(),
            now: Duration::ZERO,
            routers,
            in_flight: vec![],
            seq: 0,
            rng: seed | 1,
            loss_pm: 0,
            max_delay: Duration::from_micros(200),
            gap: Duration::ZERO,
            dual: Duration::ZERO,
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: deterministic per seed, so a failing proptest case replays exactly.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn at(&self) -> Instant {
        self.base + self.now
    }

    fn start(&mut self, i: usize) {
        if self.routers[i]
            .inst
            .as_ref()
            .is_some_and(|x| !x.is_stopped())
        {
            return;
        }
        self.routers[i].holds = false;
        self.routers[i].handoff_since = None;
        self.routers[i].told = State::Initialize;
        let mut inst = Instance::new(self.routers[i].spec.config(i));
        inst.handle_event(self.at(), Event::Startup);
        self.routers[i].inst = Some(inst);
        self.process(i);
    }

    fn start_all(&mut self) {
        for i in 0..self.routers.len() {
            self.start(i);
        }
    }

    /// Kill -9: the instance is gone and the kernel lifetime takes its addresses.
    fn crash(&mut self, i: usize) {
        self.routers[i].inst = None;
        self.routers[i].holds = false;
        self.routers[i].handoff_since = None;
    }

    fn event(&mut self, i: usize, event: Event) {
        let now = self.at();
        if let Some(inst) = self.routers[i].inst.as_mut() {
            inst.handle_event(now, event);
            self.process(i);
        }
    }

    fn state(&self, i: usize) -> Option<State> {
        self.routers[i].inst.as_ref().map(|x| x.state())
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&i| self.state(i) == Some(State::Master))
            .collect()
    }

    fn holders(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&i| self.routers[i].holds)
            .collect()
    }

    /// Drain router `i`'s actions into the network and the address ledger, checking as we go.
    fn process(&mut self, i: usize) {
        let now = self.now;
        while let Some(action) = self.routers[i].inst.as_mut().unwrap().poll_action() {
            match action {
                Action::SendAdvert(advert) => {
                    assert!(
                        self.routers[i].holds,
                        "router {i} advertises without holding"
                    );
                    for to in 0..self.routers.len() {
                        if to == i
                            || self.routers[to].inst.is_none()
                            || self.routers[to].group != self.routers[i].group
                            || self.rand() % 1000 < self.loss_pm
                        {
                            continue;
                        }
                        let jitter = self.max_delay.as_nanos() as u64 + 1;
                        let at = now + Duration::from_nanos(self.rand() % jitter);
                        self.seq += 1;
                        self.in_flight.push(Packet {
                            at,
                            seq: self.seq,
                            to,
                            src: primary(i),
                            advert: advert.clone(),
                        });
                    }
                }
                Action::AddAddresses(a) => {
                    assert_eq!(a, vec![VIP]);
                    assert!(!self.routers[i].holds, "router {i} added the VIP twice");
                    self.routers[i].holds = true;
                }
                Action::RemoveAddresses(a) => {
                    assert_eq!(a, vec![VIP]);
                    assert!(
                        self.routers[i].holds,
                        "router {i} removed a VIP it did not hold"
                    );
                    self.routers[i].holds = false;
                }
                Action::Announce(_) => {
                    assert!(
                        self.routers[i].holds,
                        "router {i} announces without holding"
                    );
                    self.routers[i].announces += 1;
                }
                Action::Probe(_) => panic!("router {i} probes, but the simulated LAN does not ask"),
                Action::Transition(t) => {
                    assert!(!t.reason.trim().is_empty(), "empty reason: {t:?}");
                    assert_eq!(t.from, self.routers[i].told, "router {i}: {t:?}");
                    self.routers[i].told = t.to;
                    assert_eq!(t.at, self.base + now);
                    self.routers[i].transitions.push(t);
                }
                Action::SpeakV2 { .. } => {
                    panic!("router {i} switched to VRRPv2, but every simulated router speaks v3")
                }
            }
        }
        let r = &mut self.routers[i];
        let inst = r.inst.as_ref().unwrap();
        assert_eq!(
            r.told,
            inst.state(),
            "router {i}: transitions disagree with state()"
        );
        assert_eq!(
            r.holds,
            inst.state() == State::Master,
            "router {i} holds={} in {:?}",
            r.holds,
            inst.state()
        );
        if let Some(t) = inst.poll_timeout() {
            assert!(t >= self.base + now, "router {i} timeout in the past");
        }
        match (inst.handoff(), r.handoff_since) {
            (Some(_), None) => r.handoff_since = Some(now),
            (Some(_), Some(since)) => assert!(
                now - since <= inst.handoff_window(),
                "router {i} handed off for {:?}",
                now - since
            ),
            (None, _) => r.handoff_since = None,
        }
    }

    fn next_wakeup(&self) -> Option<(Duration, Option<usize>)> {
        let timer = (0..self.routers.len())
            .filter_map(|i| {
                let t = self.routers[i].inst.as_ref()?.poll_timeout()?;
                Some((t - self.base, Some(i)))
            })
            .min();
        let packet = self.in_flight.iter().map(|p| (p.at, None)).min();
        match (timer, packet) {
            (Some(t), Some(p)) => Some(if p.0 <= t.0 { p } else { t }),
            (t, p) => t.or(p),
        }
    }

    /// Run the LAN until `end` (virtual time), one event at a time, like `Pair::drive`.
    fn run_until(&mut self, end: Duration) {
        while let Some((at, who)) = self.next_wakeup() {
            if at > end {
                break;
            }
            self.advance(at);
            match who {
                Some(i) => {
                    let now = self.at();
                    self.routers[i].inst.as_mut().unwrap().handle_timeout(now);
                    self.process(i);
                }
                None => {
                    let k = (0..self.in_flight.len())
                        .min_by_key(|&k| (self.in_flight[k].at, self.in_flight[k].seq))
                        .unwrap();
                    let p = self.in_flight.swap_remove(k);
                    let same_group =
                        self.routers[p.to].group == self.routers[primary_index(p.src)].group;
                    if self.routers[p.to].inst.is_some() && same_group {
                        self.event(
                            p.to,
                            Event::Advert {
                                src: p.src,
                                advert: p.advert,
                            },
                        );
                    }
                }
            }
        }
        self.advance(end);
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Move the clock, accounting VIP gaps and dual ownership over the interval that passed.
    fn advance(&mut self, to: Duration) {
        if to <= self.now {
            return;
        }
        let dt = to - self.now;
        let holders = self.holders();
        if holders.is_empty() {
            self.gap += dt;
        }
        let mut per_group = BTreeMap::new();
        for &h in &holders {
            *per_group.entry(self.routers[h].group).or_insert(0) += 1;
        }
        if per_group.values().any(|&n| n > 1) {
            self.dual += dt;
        }
        self.now = to;
    }

    fn partition(&mut self, groups: &[u8]) {
        for (r, g) in self.routers.iter_mut().zip(groups) {
            r.group = *g;
        }
    }

    fn heal(&mut self) {
        for r in &mut self.routers {
            r.group = 0;
        }
    }

    fn max_master_down(&self) -> Duration {
        self.routers
            .iter()
            .map(|r| vrrp::machine::master_down_interval(1, r.spec.interval))
            .max()
            .unwrap()
    }

    fn reasons(&self, i: usize) -> Vec<String> {
        self.routers[i]
            .transitions
            .iter()
            .map(|t| t.reason.clone())
            .collect()
    }
}

fn primary_index(src: IpAddr) -> usize {
    match src {
        IpAddr::V4(a) => usize::from(a.octets()[3]) - 1,
        IpAddr::V6(_) => unreachable!(),
    }
}

fn lan(priorities: &[u8]) -> Lan {
    Lan::new(priorities.iter().map(|&p| Spec::new(p)).collect(), 7)
}

// ---- scenarios ----------------------------------------------------------------------------------

#[test]
fn three_routers_elect_the_highest_priority() {
    let mut l = lan(&[100, 200, 150]);
    l.start_all();
    l.run_for(ms(2000));
    assert_eq!(l.masters(), vec![1]);
    assert_eq!(l.holders(), vec![1]);
    assert!(l.reasons(1)[1].starts_with("MASTER:"), "{:?}", l.reasons(1));
}

#[test]
fn crash_of_the_master_fails_over_to_the_next_highest_once() {
    let mut l = lan(&[100, 200, 150]);
    l.start_all();
    l.run_for(ms(2000));
    l.crash(1);
    let crashed_at = l.now;
    l.run_for(ms(2000));
    assert_eq!(l.masters(), vec![2]);
    // The 150 backup's shorter skew means the 100 never claims: no dual master along the way.
    assert_eq!(l.routers[0].transitions.len(), 1, "{:?}", l.reasons(0));
    let claim = l.routers[2].transitions.last().unwrap();
    assert!(
        claim.reason.contains("no advert from 192.0.2.2"),
        "{}",
        claim.reason
    );
    let took = claim.at - (l.base + crashed_at);
    assert!(took <= vrrp::machine::master_down_interval(150, ms(100)));
    assert_eq!(l.dual, Duration::ZERO);
}

#[test]
fn graceful_shutdown_hands_over_without_a_gap() {
    let mut l = lan(&[100, 200, 150]);
    l.start_all();
    l.run_for(ms(2000));
    let gap_before = l.gap;
    l.event(1, Event::Shutdown);
    l.run_for(ms(2000));
    assert!(l.routers[1].inst.as_ref().unwrap().is_stopped());
    assert_eq!(l.masters(), vec![2]);
    // Make-before-break: at no moment did nobody hold the VIP.
    assert_eq!(l.gap, gap_before);
    let last = l.routers[1].transitions.last().unwrap();
    assert!(
        last.reason.contains("successor 192.0.2.3"),
        "{}",
        last.reason
    );
    // The overlap lasted about one network delay, far below the handoff window.
    assert!(l.dual <= ms(1), "{:?}", l.dual);
}

#[test]
fn release_and_takeover_move_the_vip_without_a_gap() {
    let mut l = lan(&[100, 200]);
    l.start_all();
    l.run_for(ms(2000));
    let gap = l.gap;
    l.event(1, Event::Override(Override::Release));
    l.run_for(ms(3000));
    assert_eq!(l.masters(), vec![0]);
    assert_eq!(l.gap, gap);
    // The released router never comes back by itself, though it outranks the master.
    l.run_for(ms(5000));
    assert_eq!(l.masters(), vec![0]);
    // Auto: preempt brings it back.
    l.event(1, Event::Override(Override::Auto));
    l.run_for(ms(2000));
    assert_eq!(l.masters(), vec![1]);
    // Takeover by the lower router: at once, and the other steps down on hearing 254.
    l.event(0, Event::Override(Override::Takeover));
    l.run_for(ms(10));
    assert_eq!(l.masters(), vec![0]);
    l.run_for(ms(5000));
    assert_eq!(l.masters(), vec![0]);
    assert_eq!(l.gap, gap);
    assert!(l
        .reasons(1)
        .last()
        .unwrap()
        .contains("priority 254 > ours 200"));
}

#[test]
fn partition_makes_two_masters_and_healing_leaves_the_highest_and_reannounces() {
    // The loser advertises fast, so after the heal its advert reaches the winner first.
    let mut specs = vec![Spec::new(100), Spec::new(200), Spec::new(150)];
    specs[1].interval = ms(1000);
    specs[2].interval = ms(10);
    let mut l = Lan::new(specs, 11);
    l.start_all();
    l.run_for(ms(2000));
    l.run_for(ms(2000));
    l.partition(&[0, 1, 0]);
    l.run_for(ms(5000));
    assert_eq!(l.masters(), vec![1, 2], "each side has its master");
    let announces = l.routers[1].announces;
    l.heal();
    l.run_for(ms(2000));
    assert_eq!(l.masters(), vec![1]);
    assert!(
        l.routers[1].announces > announces,
        "the winner re-announces to pull clients back from the loser's MAC"
    );
}

#[test]
fn restarted_higher_router_preempts_only_when_preempt_is_on() {
    for preempt in [true, false] {
        let mut specs = vec![Spec::new(100), Spec::new(200)];
        specs[1].preempt = preempt;
        let mut l = Lan::new(specs, 3);
        l.start_all();
        l.run_for(ms(1000));
        l.crash(1);
        l.run_for(ms(1000));
        assert_eq!(l.masters(), vec![0]);
        l.start(1);
        l.run_for(ms(2000));
        let want = if preempt { vec![1] } else { vec![0] };
        assert_eq!(l.masters(), want, "preempt {preempt}");
    }
}

#[test]
fn owner_takes_back_its_address_at_once() {
    let mut l = lan(&[255, 200]);
    l.start(1);
    l.run_for(ms(1000));
    assert_eq!(l.masters(), vec![1]);
    l.start(0);
    l.run_for(ms(5));
    assert_eq!(l.masters(), vec![0]);
}

#[test]
fn a_v3_backup_follows_a_slow_master_without_claiming() {
    // The master advertises every 500 ms; the backup is configured for 1 s but adopts 500 ms, so it
    // fails over in 3 x 0.5 s + skew, not 3 x 1 s + skew.
    let mut specs = vec![Spec::new(200), Spec::new(100)];
    specs[0].interval = ms(500);
    specs[1].interval = ms(1000);
    let mut l = Lan::new(specs, 5);
    l.start_all();
    l.run_for(ms(20_000));
    assert_eq!(l.masters(), vec![0]);
    assert_eq!(l.routers[1].transitions.len(), 1, "{:?}", l.reasons(1));
    let backup = l.routers[1].inst.as_ref().unwrap();
    assert_eq!(backup.current_interval(), ms(500));
    l.crash(0);
    let crashed = l.now;
    l.run_for(ms(10_000));
    let claim = l.routers[1].transitions.last().unwrap();
    assert_eq!(claim.to, State::Master);
    let took = claim.at - (l.base + crashed);
    assert!(
        took <= vrrp::machine::master_down_interval(100, ms(500)),
        "{took:?}"
    );
    assert!(claim.reason.contains("1.80 s"), "{}", claim.reason);
}

#[test]
fn heavy_loss_still_converges_once_the_network_is_quiet() {
    let mut l = lan(&[100, 200, 150, 50, 120]);
    l.loss_pm = 600;
    l.start_all();
    l.run_for(ms(10_000));
    l.loss_pm = 0;
    l.run_for(ms(2000));
    assert_eq!(l.masters(), vec![1]);
    assert_eq!(l.holders(), vec![1]);
}

#[test]
fn link_down_on_the_master_fails_over_and_link_up_preempts_back() {
    let mut l = lan(&[100, 200]);
    l.start_all();
    l.run_for(ms(1000));
    l.event(1, Event::LinkDown);
    assert!(!l.routers[1].holds);
    l.run_for(ms(1000));
    assert_eq!(l.masters(), vec![0]);
    l.event(1, Event::LinkUp);
    l.run_for(ms(1000));
    assert_eq!(l.masters(), vec![1]);
}

#[test]
fn an_inhibited_backup_does_not_claim_but_claims_when_the_witness_returns() {
    let mut l = lan(&[100, 200]);
    l.start_all();
    l.run_for(ms(1000));
    l.event(
        0,
        Event::ClaimInhibit(Some("witness 192.0.2.254 unreachable".into())),
    );
    l.crash(1);
    l.run_for(ms(3000));
    assert!(l.masters().is_empty());
    assert!(l.routers[0]
        .inst
        .as_ref()
        .unwrap()
        .not_claiming()
        .unwrap()
        .contains("witness"));
    l.event(0, Event::ClaimInhibit(None));
    assert_eq!(l.masters(), vec![0]);
}

// ---- random scenarios ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Partition(Vec<u8>),
    Heal,
    Crash(usize),
    Stop(usize),
    Start(usize),
    SetPriority(usize, u8),
    Override(usize, Override),
    LinkDown(usize),
    LinkUp(usize),
    Fault(usize, bool),
    Inhibit(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::collection::vec(0u8..3, 5).prop_map(Op::Partition),
        2 => Just(Op::Heal),
        2 => (0usize..5).prop_map(Op::Crash),
        2 => (0usize..5).prop_map(Op::Stop),
        3 => (0usize..5).prop_map(Op::Start),
        2 => (0usize..5, 1u8..=254).prop_map(|(i, p)| Op::SetPriority(i, p)),
        2 => (0usize..5, prop_oneof![
            Just(Override::Takeover),
            Just(Override::Release),
            Just(Override::Auto)
        ])
            .prop_map(|(i, o)| Op::Override(i, o)),
        1 => (0usize..5).prop_map(Op::LinkDown),
        1 => (0usize..5).prop_map(Op::LinkUp),
        1 => (0usize..5, any::<bool>()).prop_map(|(i, f)| Op::Fault(i, f)),
        1 => (0usize..5, any::<bool>()).prop_map(|(i, f)| Op::Inhibit(i, f)),
    ]
}

fn spec(v2: bool) -> impl Strategy<Value = Spec> {
    (
        1u8..=254,
        prop::bool::weighted(0.8),
        prop_oneof![Just(10u64), Just(50), Just(100), Just(1000)],
        prop_oneof![Just(0u64), Just(300), Just(2000)],
    )
        .prop_map(move |(priority, preempt, interval, delay)| Spec {
            priority,
            preempt,
            interval: if v2 { ms(1000) } else { ms(interval) },
            preempt_delay: ms(delay),
            version: if v2 { Version::V2 } else { Version::V3 },
        })
}

#[derive(Debug, Clone)]
struct Scenario {
    specs: Vec<Spec>,
    owner: bool,
    loss_pm: u64,
    max_delay_us: u64,
    ops: Vec<(u64, Op)>,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (any::<bool>(), 1usize..=5)
        .prop_flat_map(|(v2, n)| {
            (
                proptest::collection::vec(spec(v2), n),
                prop::bool::weighted(0.15),
                prop_oneof![Just(0u64), 0u64..400],
                0u64..3000,
                proptest::collection::vec((0u64..8000, op()), 0..12),
                any::<u64>(),
            )
        })
        .prop_map(|(specs, owner, loss_pm, max_delay_us, mut ops, seed)| {
            ops.sort_by_key(|(at, _)| *at);
            Scenario {
                specs,
                owner,
                loss_pm,
                max_delay_us,
                ops,
                seed,
            }
        })
}

fn run_scenario(s: &Scenario) {
    let mut specs = s.specs.clone();
    if s.owner {
        specs[0].priority = 255;
    }
    let n = specs.len();
    let mut l = Lan::new(specs, s.seed);
    l.loss_pm = s.loss_pm;
    l.max_delay = Duration::from_micros(s.max_delay_us);
    l.start_all();

    // Chaos: operations at their times while the network loses, delays and partitions.
    for (at, op) in &s.ops {
        l.run_until(ms(*at));
        match op.clone() {
            Op::Partition(g) => l.partition(&g[..n]),
            Op::Heal => l.heal(),
            Op::Crash(i) => l.crash(i % n),
            Op::Stop(i) => l.event(i % n, Event::Shutdown),
            Op::Start(i) => l.start(i % n),
            Op::SetPriority(i, p) => l.event(i % n, Event::SetPriority(p)),
            Op::Override(i, o) => l.event(i % n, Event::Override(o)),
            Op::LinkDown(i) => l.event(i % n, Event::LinkDown),
            Op::LinkUp(i) => l.event(i % n, Event::LinkUp),
            Op::Fault(i, on) => l.event(
                i % n,
                Event::Fault(on.then(|| "smb check failing".to_string())),
            ),
            Op::Inhibit(i, on) => l.event(
                i % n,
                Event::ClaimInhibit(on.then(|| "witness unreachable".to_string())),
            ),
        }
    }
    l.run_for(ms(500));

    // Quiet: one LAN, no loss, everyone running, healthy and in auto. A router still handing off
    // before a stop finishes first (the handoff window is bounded), then starts again.
    l.heal();
    l.loss_pm = 0;
    l.run_for(l.max_master_down());
    for i in 0..n {
        assert!(
            l.routers[i].handoff_since.is_none() || l.state(i) != Some(State::Master) || {
                let inst = l.routers[i].inst.as_ref().unwrap();
                inst.handoff() != Some(vrrp::machine::Handoff::Shutdown)
            },
            "router {i} still stopping after a master-down interval"
        );
        l.start(i);
        for e in [
            Event::LinkUp,
            Event::Fault(None),
            Event::ClaimInhibit(None),
            Event::Override(Override::Auto),
        ] {
            l.event(i, e);
        }
    }
    let max_delay = l
        .routers
        .iter()
        .map(|r| r.spec.preempt_delay)
        .max()
        .unwrap();
    let settle = l.max_master_down() * 4 + max_delay;
    l.run_for(settle);

    let masters = l.masters();
    assert_eq!(masters.len(), 1, "masters {masters:?}");
    assert_eq!(l.holders(), masters);
    let m = masters[0];
    let prio = |i: usize| l.routers[i].inst.as_ref().unwrap().effective_priority();
    let best = (0..n).map(prio).max().unwrap();
    if l.routers.iter().all(|r| r.spec.preempt) {
        // Equal priorities never preempt a running master (RFC 5798 6.4.2), so only the
        // priority is promised, not the address tie-break.
        assert_eq!(
            prio(m),
            best,
            "master {m} has {} but {best} exists",
            prio(m)
        );
    }
    // And it stays that way.
    let counts: Vec<usize> = l.routers.iter().map(|r| r.transitions.len()).collect();
    l.run_for(l.max_master_down() * 2);
    let after: Vec<usize> = l.routers.iter().map(|r| r.transitions.len()).collect();
    assert_eq!(counts, after, "flapping after the network went quiet");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_lans_settle_on_one_master(s in scenario()) {
        run_scenario(&s);
    }
}
