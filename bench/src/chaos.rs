//! The chaos scenario (issue 13, finding 7): three hosts at 100 ms adverts under a seeded random
//! schedule of link pulls, kill -9 + restart, SIGSTOP/SIGCONT and VRRP-only partitions; who held
//! the VIP comes from each host's netlink address and link events (`floatip_lab::AddrWatch`), what
//! a client lost from the lab's pinger. floatip next to keepalived on the same schedule.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use floatip_lab::{intersect, ownership, subtract, total, AddrWatch, Host, Lab, Pinger, Span};

use crate::ctx::{check_interrupted, logs_hint, now, sleep, wait_until, Ctx};
use crate::daemons::{self, Daemon, Running};
use crate::report::{column, verdict_limit, verdict_limit_and_keepalived, Outcome, Row};
use crate::VIP;
use floatip_lab::kill_pid;

/// The seed when `--seed` is not given.
pub const DEFAULT_SEED: u64 = 1;
/// Length of the schedule.
pub const CHAOS_MS: u64 = 60_000;
const INTERVAL_MS: u32 = 100;
/// Priorities of h1, h2, h3.
const PRIORITIES: [u8; 3] = [150, 100, 50];
const PING_MS: u64 = 2;
/// After a partition heals, the two masters need an advert or two to hear each other: two
/// owners in this long after the heal count as the partition's, not as a failure.
const HEAL_GRACE: f64 = 1.0;
/// Quiet time after the last step before the books close.
const TAIL: Duration = Duration::from_secs(3);

static SEED: AtomicU64 = AtomicU64::new(DEFAULT_SEED);

/// `--seed N`: trial k of the chaos scenario uses seed N + k.
pub fn set_seed(seed: u64) {
    SEED.store(seed, Ordering::Relaxed);
}

/// SplitMix64: a few lines, good enough to shuffle a test schedule, same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (modulo bias is irrelevant here).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The host's switch port goes down for `hold_ms`, then up.
    LinkPull,
    /// The host's daemon is killed with SIGKILL and started again `hold_ms` later.
    Kill9,
    /// The host's daemon is frozen (SIGSTOP) for `hold_ms`, then SIGCONT.
    Freeze,
    /// VRRP (IP protocol 112) to and from the host is dropped at the bridge for `hold_ms`; ARP and
    /// other IP still flow.
    Partition,
}

pub const KINDS: [Kind; 4] = [Kind::LinkPull, Kind::Kill9, Kind::Freeze, Kind::Partition];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::LinkPull => "link pull",
            Kind::Kill9 => "kill -9 + restart",
            Kind::Freeze => "SIGSTOP/SIGCONT",
            Kind::Partition => "VRRP partition",
        }
    }
}

/// Whom a step hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Whoever holds the VIP (with its link up) when the step starts; the step's `fallback`
    /// host if nobody does.
    Master,
    /// Host number k (0 = h1).
    Host(usize),
}

/// One step of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Start, ms after the chaos begins.
    pub at_ms: u64,
    pub kind: Kind,
    pub target: Target,
    /// The host hit when the target is the master and there is none.
    pub fallback: usize,
    /// How long the fault lasts.
    pub hold_ms: u64,
}

impl Step {
    pub fn end_ms(&self) -> u64 {
        self.at_ms + self.hold_ms
    }
}

/// The schedule of `seed` for `hosts` hosts over `total_ms`: steps one after another (each fault
/// undone before the next begins, 1.5-3 s of quiet in between), in rounds that each contain every
/// kind once in a shuffled order, so a minute holds every kind. Link pulls 0.5-4 s, restarts after
/// 0.5-3 s, freezes 2-4 s, partitions 1-5 s. kill -9 and freezes hit the master; link pulls and
/// partitions the master or a random host, half and half. Every step ends within `total_ms`.
pub fn schedule(seed: u64, total_ms: u64, hosts: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let hosts = hosts.max(1) as u64;
    let mut steps = Vec::new();
    let mut t = 1_000;
    // Each step takes at least 1.5 s, so this bounds the loop whatever total_ms is.
    while steps.len() as u64 <= total_ms / 1_500 {
        let mut kinds = KINDS;
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.range(0, i as u64) as usize);
        }
        for kind in kinds {
            let hold_ms = match kind {
                Kind::LinkPull => rng.range(500, 4_000),
                Kind::Kill9 => rng.range(500, 3_000),
                Kind::Freeze => rng.range(2_000, 4_000),
                Kind::Partition => rng.range(1_000, 5_000),
            };
            let coin = rng.range(0, 1);
            let host = rng.range(0, hosts - 1) as usize;
            let target = match kind {
                Kind::Kill9 | Kind::Freeze => Target::Master,
                _ if coin == 0 => Target::Master,
                _ => Target::Host(host),
            };
            let quiet = rng.range(1_500, 3_000);
            if t + hold_ms > total_ms {
                return steps;
            }
            let step = Step {
                at_ms: t,
                kind,
                target,
                fallback: host,
                hold_ms,
            };
            t = step.end_ms() + quiet;
            steps.push(step);
        }
    }
    steps
}

/// One line per step, for the report.
pub fn describe(steps: &[Step]) -> String {
    let mut s = String::new();
    for (i, st) in steps.iter().enumerate() {
        let who = match st.target {
            Target::Master => format!("master (else h{})", st.fallback + 1),
            Target::Host(k) => format!("h{}", k + 1),
        };
        let _ = write!(
            s,
            "{}{:.1}s {} {who} {:.1}s",
            if i == 0 { "" } else { "; " },
            st.at_ms as f64 / 1000.0,
            st.kind.label(),
            st.hold_ms as f64 / 1000.0
        );
    }
    s
}

/// What one run of the schedule measured.
struct ChaosTrial {
    /// ms with two or more reachable holders outside partitions (+ HEAL_GRACE).
    two_owners: f64,
    /// ms with two or more reachable holders during partitions (+ HEAL_GRACE).
    two_in_partition: f64,
    /// ms with no reachable holder.
    no_owner: f64,
    /// ms of client requests unanswered (lost requests × the ping interval).
    loss: f64,
    duplicates: u64,
    summary: String,
}

/// The switch's nftables table that makes partitions: a bridge forward chain, empty until one.
fn nft(lab: &Lab, cmd: &str) -> Result<()> {
    lab.switch_run(&["nft", cmd])
        .map(drop)
        .with_context(|| format!("nft {cmd}"))
}

fn partition(lab: &Lab, host: &Host) -> Result<()> {
    // A host's switch port is p-<name> (floatip_lab's topology).
    let port = format!("p-{}", host.name);
    for dir in ["iifname", "oifname"] {
        nft(
            lab,
            &format!("add rule bridge chaos vrrp {dir} \"{port}\" ip protocol 112 drop"),
        )?;
    }
    Ok(())
}

fn signal_all(r: &Running, sig: i32) {
    let main = r.proc.pid();
    for p in daemons::pids(r) {
        if p == main {
            r.proc.signal(sig);
        } else {
            kill_pid(p, sig);
        }
    }
}

/// Runs the schedule of `seed` against `daemon` in a fresh lab.
fn trial(ctx: &Ctx, daemon: Daemon, steps: &[Step]) -> Result<ChaosTrial> {
    let mut lab = Lab::new("fipbench")?;
    let mut hosts = Vec::new();
    for n in 1..=3 {
        hosts.push(lab.add_host(&format!("h{n}"), &format!("192.0.2.{n}/24"), None)?);
    }
    let c = lab.add_host("c", "192.0.2.100/24", None)?;
    let dir = lab.dir().to_path_buf();
    nft(&lab, "add table bridge chaos")?;
    nft(
        &lab,
        "add chain bridge chaos vrrp { type filter hook forward priority 0 ; }",
    )?;
    let watches = hosts
        .iter()
        .map(|h| AddrWatch::start(h, VIP))
        .collect::<Result<Vec<_>>>()?;
    let setup = daemons::files_setup(INTERVAL_MS, None);
    let mut running = Vec::new();
    for (h, prio) in hosts.iter().zip(PRIORITIES) {
        running.push(daemons::start(
            daemon,
            &ctx.floatip_bin,
            h,
            prio,
            &setup,
            &dir,
        )?);
    }
    let settled = || watches[0].holds() && !watches[1].holds() && !watches[2].holds();
    if !wait_until(Duration::from_secs(15), Duration::from_millis(5), || {
        Ok(settled())
    })? {
        bail!(
            "{}: h1 never held {VIP} alone; logs: {}",
            daemon.name(),
            logs_hint(&dir)
        );
    }
    sleep(Duration::from_secs(1))?;
    let pinger = Pinger::start(&c, VIP, Duration::from_millis(PING_MS))?;
    if !pinger.wait_replies(10, Duration::from_secs(5)) {
        bail!("the client gets no reply from {VIP} before the chaos");
    }
    let exited = |running: &[Running]| match running.iter().find(|r| !r.proc.is_running()) {
        Some(r) => Err(anyhow::anyhow!(
            "{} on {} exited; logs: {}",
            daemon.name(),
            r.host.name,
            logs_hint(&dir)
        )),
        None => Ok(()),
    };
    let t0 = now();
    let mut partitions = Vec::new();
    for st in steps {
        exited(&running)?;
        sleep(Duration::from_secs_f64(
            (t0 + st.at_ms as f64 / 1000.0 - now()).max(0.0),
        ))?;
        let k = match st.target {
            Target::Host(k) => k,
            Target::Master => watches
                .iter()
                .position(|w| w.holds() && w.link_up())
                .unwrap_or(st.fallback),
        };
        let h = &hosts[k];
        let hold = Duration::from_millis(st.hold_ms);
        match st.kind {
            Kind::LinkPull => {
                h.link_down()?;
                let r = sleep(hold);
                h.link_up()?;
                r?;
            }
            Kind::Kill9 => {
                daemons::kill9(&running[k])?;
                running[k].proc.wait_exit(Duration::from_secs(2));
                sleep(hold)?;
                if daemon == Daemon::Keepalived {
                    // A crash leaves keepalived's pid files; its VRRP child may linger as a
                    // zombie (nobody reaps it here), which a restart takes for a running daemon
                    // ("daemon is already running"). A service manager clears them: so do we.
                    for n in ["main", "vrrp", "checkers"] {
                        let _ = std::fs::remove_file(
                            dir.join(format!("keepalived-{}-{n}.pid", h.name)),
                        );
                    }
                }
                running[k] =
                    daemons::start(daemon, &ctx.floatip_bin, h, PRIORITIES[k], &setup, &dir)?;
            }
            Kind::Freeze => {
                signal_all(&running[k], libc::SIGSTOP);
                let r = sleep(hold);
                signal_all(&running[k], libc::SIGCONT);
                r?;
            }
            Kind::Partition => {
                let from = now();
                partition(&lab, h)?;
                let r = sleep(hold);
                nft(&lab, "flush chain bridge chaos vrrp")?;
                partitions.push(Span::new(from, now() + HEAL_GRACE));
                r?;
            }
        }
        check_interrupted()?;
    }
    sleep(TAIL)?;
    exited(&running)?;
    let t_end = now();
    let report = pinger.stop();
    let timelines: Vec<_> = watches.into_iter().map(AddrWatch::stop).collect();
    for t in &timelines {
        if let Some(e) = &t.error {
            bail!("the address watch of {} is incomplete: {e}", t.host);
        }
    }
    let own = ownership(&timelines, t0, t_end, true);
    let shared = own.shared_spans();
    let outside = subtract(&shared, &partitions);
    let mut summary = String::new();
    for s in own
        .shared
        .iter()
        .filter(|s| total(&intersect(&[s.span], &outside)) > 0.0)
    {
        if summary.len() < 400 {
            let _ = write!(
                summary,
                " {}+{:.0}ms {};",
                fmt_t(s.span.from - t0),
                s.span.secs() * 1000.0,
                s.holders.join("+")
            );
        }
    }
    drop(running);
    drop(lab);
    Ok(ChaosTrial {
        two_owners: ms_of(total(&outside)),
        two_in_partition: ms_of(total(&intersect(&shared, &partitions))),
        no_owner: own.none_secs() * 1000.0,
        loss: report.lost() as f64 * PING_MS as f64,
        duplicates: report.duplicates,
        summary,
    })
}

fn fmt_t(secs: f64) -> String {
    format!("{secs:.2}s")
}

fn verdict_info(_: &Row) -> String {
    "(for information)".into()
}

/// The chaos scenario: `ctx.trials` seeds (the `--seed`, then +1, ...), each run once with
/// floatip and once with keepalived.
pub fn chaos_scenario(ctx: &mut Ctx) -> Result<Outcome> {
    let first = SEED.load(Ordering::Relaxed);
    let daemons = [Daemon::Floatip, Daemon::Keepalived];
    let mut results: [Vec<std::result::Result<ChaosTrial, String>>; 2] = [Vec::new(), Vec::new()];
    for trial_no in 0..ctx.trials {
        let seed = first.wrapping_add(trial_no as u64);
        let steps = schedule(seed, CHAOS_MS, 3);
        ctx.note(&format!(
            "chaos seed {seed} ({} steps): {}",
            steps.len(),
            describe(&steps)
        ));
        for (i, d) in daemons.iter().enumerate() {
            check_interrupted()?;
            if *d == Daemon::Floatip {
                if let Some(why) = &ctx.floatip_missing {
                    results[i].push(Err(why.clone()));
                    continue;
                }
            }
            eprint!(
                "  chaos {} seed {seed} ({} steps) ... ",
                d.name(),
                steps.len()
            );
            let r = trial(ctx, *d, &steps);
            match &r {
                Ok(t) => {
                    let line = format!(
                        "two reachable owners {:.0} ms (in partitions {:.0} ms), no owner {:.0} ms, \
                         client loss {:.0} ms, {} duplicate replies",
                        t.two_owners, t.two_in_partition, t.no_owner, t.loss, t.duplicates
                    );
                    eprintln!("{line}");
                    let spans = if t.summary.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; two owners outside partitions at (s after start):{}",
                            t.summary
                        )
                    };
                    ctx.note(&format!("chaos {} seed {seed}: {line}{spans}", d.name()));
                }
                Err(e) => eprintln!("failed: {e:#}"),
            }
            results[i].push(r.map_err(|e| format!("{e:#}")));
        }
    }
    let col = |i: usize, f: &dyn Fn(&ChaosTrial) -> f64| column(&results[i], |t| Some(f(t)));
    let what = format!(
        "chaos, 3 hosts, {INTERVAL_MS} ms adverts, {} s schedule",
        CHAOS_MS / 1000
    );
    let row = |metric: &str,
               unit: &'static str,
               f: &dyn Fn(&ChaosTrial) -> f64,
               target: &str,
               verdict: fn(&Row) -> String,
               limit: Option<f64>| Row {
        scenario: format!("{what}: {metric}"),
        unit,
        floatip: col(0, f),
        keepalived: col(1, f),
        never: "-",
        target: target.into(),
        verdict,
        limit,
    };
    let rows = vec![
        row(
            "two reachable owners outside partitions",
            "ms",
            &|t| t.two_owners,
            "0 ms",
            verdict_limit,
            Some(0.0),
        ),
        row(
            "no reachable owner",
            "ms",
            &|t| t.no_owner,
            "≤ keepalived",
            verdict_limit_and_keepalived,
            None,
        ),
        row(
            "client loss (unanswered 2 ms pings × 2 ms)",
            "ms",
            &|t| t.loss,
            "≤ keepalived",
            verdict_limit_and_keepalived,
            None,
        ),
        row(
            &format!("two owners in partitions (+{HEAL_GRACE:.0} s after the heal)"),
            "ms",
            &|t| t.two_in_partition,
            "-",
            verdict_info,
            None,
        ),
        row(
            "duplicate replies at the client",
            "replies",
            &|t| t.duplicates as f64,
            "-",
            verdict_info,
            None,
        ),
    ];
    Ok(Outcome { rows, svg: None })
}

/// Seconds to ms, never negative: span arithmetic can leave a -0.0 that would print as "-0".
fn ms_of(secs: f64) -> f64 {
    if secs > 0.0 {
        secs * 1000.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.range(3, 5);
            assert!((3..=5).contains(&x));
            b.range(3, 5);
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn schedule_is_deterministic_per_seed() {
        assert_eq!(schedule(42, CHAOS_MS, 3), schedule(42, CHAOS_MS, 3));
        assert_ne!(schedule(42, CHAOS_MS, 3), schedule(43, CHAOS_MS, 3));
    }

    #[test]
    fn schedule_is_bounded_and_sequential() {
        for seed in 0..500 {
            let s = schedule(seed, CHAOS_MS, 3);
            assert!(
                !s.is_empty() && s.len() <= 40,
                "seed {seed}: {} steps",
                s.len()
            );
            for w in s.windows(2) {
                assert!(w[1].at_ms >= w[0].end_ms() + 1_500, "seed {seed}: overlap");
            }
            for st in &s {
                assert!(
                    st.end_ms() <= CHAOS_MS,
                    "seed {seed}: {st:?} runs past the end"
                );
                assert!(st.fallback < 3);
                if let Target::Host(k) = st.target {
                    assert!(k < 3);
                }
                if matches!(st.kind, Kind::Kill9 | Kind::Freeze) {
                    assert_eq!(st.target, Target::Master);
                }
            }
        }
        // Degenerate lengths stay bounded.
        assert!(schedule(1, 0, 3).is_empty());
        assert!(schedule(1, 3_600_000, 1).len() <= 3_600_000 / 1_500 + 4);
    }

    #[test]
    fn every_kind_occurs_within_a_minute() {
        for seed in 0..500 {
            let s = schedule(seed, CHAOS_MS, 3);
            for k in KINDS {
                assert!(
                    s.iter().any(|st| st.kind == k),
                    "seed {seed}: no {k:?} in {}",
                    describe(&s)
                );
            }
        }
    }

    #[test]
    fn describe_names_every_step() {
        let s = schedule(5, CHAOS_MS, 3);
        let d = describe(&s);
        assert_eq!(d.split("; ").count(), s.len());
        assert!(d.contains("VRRP partition"));
    }
}
