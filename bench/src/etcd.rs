//! The `etcd` scenario: the owner h1 loses its cable ("host loss"), is cut off from its peers
//! while clients still reach it ("partition": nftables on h1 drops everything to and from h2 and the
//! etcd members), or its daemon gets SIGTERM ("planned": a make-before-break handoff for floatip),
//! with ownership decided three ways: floatip with `election = "etcd"` (lease 5 s,
//! a three-member etcd in lab hosts e1..e3), floatip with VRRP and keepalived (both 1 s adverts).
//! Measured per trial: the client's longest gap, when the VIP left h1, when h2 had it, and how long
//! both held it (from the kernel's address events of both hosts). Writes bench/results/etcd.md.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use floatip_lab::{
    etcd_unavailable, intersect, total, AddrWatch, EtcdCluster, Host, Pinger, Proc, WatchKind,
};

use crate::ctx::{new_lab, now, results_dir, sleep, wait_until, Ctx};
use crate::daemons::{self, Daemon};
use crate::parse;
use crate::VIP;

/// How long a trial watches after the event.
const WINDOW: Duration = Duration::from_secs(12);
/// `[etcd] lease_ttl` in etcd mode.
const LEASE_TTL_S: u64 = 5;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    FloatipEtcd,
    FloatipVrrp,
    Keepalived,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::FloatipEtcd => "floatip, election = \"etcd\" (lease 5 s)",
            Mode::FloatipVrrp => "floatip, VRRP (1 s adverts)",
            Mode::Keepalived => "keepalived 2.2.7 (1 s adverts)",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Cut {
    HostLoss,
    Partition,
    Planned,
}

impl Cut {
    fn name(self) -> &'static str {
        match self {
            Cut::HostLoss => "host loss (cable pulled)",
            Cut::Partition => "partition (h1 cut off from h2 and etcd, not from clients)",
            Cut::Planned => "planned (SIGTERM of h1's daemon)",
        }
    }

    /// What the section says under its table, if anything.
    fn note(self) -> Option<&'static str> {
        match self {
            Cut::Planned => Some(
                "A planned move in floatip is make-before-break: the successor adds and announces the \
                 VIP before the old owner removes it, so \"both held it\" is expected to be above 0 \
                 here (the overlap of the handoff, not two owners by fault) and the client gap \
                 near 0. keepalived removes first (a priority 0 advert) and h2 claims after its \
                 skew time.",
            ),
            Cut::HostLoss | Cut::Partition => None,
        }
    }
}

/// What one trial measured, in ms after the event.
struct Trial {
    gap: std::result::Result<f64, f64>,
    left: Option<f64>,
    taken: Option<f64>,
    both: f64,
    both_at_end: bool,
}

/// h1's side of the partition: nothing to or from h2 or the etcd members, VRRP adverts included.
const PARTITION: &str = "table inet bench_cut {
  chain out { type filter hook output priority 0; ip daddr { 192.0.2.2, 192.0.2.11, 192.0.2.12, 192.0.2.13, 224.0.0.18 } drop; }
  chain in { type filter hook input priority 0; ip saddr { 192.0.2.2, 192.0.2.11, 192.0.2.12, 192.0.2.13 } drop; }
}
";

pub fn etcd_scenario(ctx: &mut Ctx) -> Result<()> {
    if let Some(why) = etcd_unavailable() {
        bail!("{why} (Debian: apt-get install etcd-server)");
    }
    let modes = [Mode::FloatipEtcd, Mode::FloatipVrrp, Mode::Keepalived];
    let cuts = [Cut::HostLoss, Cut::Partition, Cut::Planned];
    let mut md = String::from(
        "# etcd mode next to VRRP: failover gap and two-owner time\n\n\
         `floatip-bench --scenario etcd` (see bench/src/etcd.rs). h1 (priority 150) owns 192.0.2.97, h2 \
         (100) waits, a client pings the VIP every 1 ms. Ownership from the kernel's address events of \
         both hosts. Per cell: median of the trials (min-max).\n\n",
    );
    let _ = writeln!(
        md,
        "{} trial(s) per cell (`--trials`), each in a fresh lab.\n",
        ctx.trials
    );
    for cut in cuts {
        let _ = writeln!(md, "## {}\n", cut.name());
        md.push_str("| ownership | client gap | VIP left h1 | h2 has it | both held it |\n|---|---|---|---|---|\n");
        for mode in modes {
            let mut trials = Vec::new();
            for t in 0..ctx.trials {
                match trial(ctx, mode, cut) {
                    Ok(tr) => trials.push(tr),
                    Err(e) => eprintln!("{} / {} trial {t}: {e:#}", mode.name(), cut.name()),
                }
            }
            let _ = writeln!(md, "{}", row(mode, &trials));
            eprintln!("{} / {}: {}", mode.name(), cut.name(), row(mode, &trials));
        }
        md.push('\n');
        if let Some(note) = cut.note() {
            let _ = writeln!(md, "{note}\n");
        }
    }
    let _ = writeln!(
        md,
        "A cell \"≥ N\" ran to the end of the {} s window (the two owners never resolved while the \
         partition lasted).",
        WINDOW.as_secs()
    );
    std::fs::write(results_dir().join("etcd.md"), md).context("write bench/results/etcd.md")?;
    Ok(())
}

fn stats(v: &[f64]) -> String {
    if v.is_empty() {
        return "never".into();
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    let (lo, hi) = (v[0], v[v.len() - 1]);
    if lo == hi {
        format!("{med:.0} ms (all {})", v.len())
    } else {
        format!("{med:.0} ms ({lo:.0}-{hi:.0})")
    }
}

fn row(mode: Mode, trials: &[Trial]) -> String {
    if trials.is_empty() {
        return format!("| {} | no trial succeeded | | | |", mode.name());
    }
    let gaps: Vec<f64> = trials.iter().filter_map(|t| t.gap.ok()).collect();
    let open_gap = trials.iter().filter(|t| t.gap.is_err()).count();
    let left: Vec<f64> = trials.iter().filter_map(|t| t.left).collect();
    let taken: Vec<f64> = trials.iter().filter_map(|t| t.taken).collect();
    let both: Vec<f64> = trials.iter().map(|t| t.both).collect();
    let unresolved = trials.iter().any(|t| t.both_at_end);
    format!(
        "| {} | {}{} | {} | {} | {}{} |",
        mode.name(),
        stats(&gaps),
        if open_gap > 0 {
            format!(" ({open_gap} trial(s) without replies at the end)")
        } else {
            String::new()
        },
        stats(&left),
        stats(&taken),
        if unresolved { "≥ " } else { "" },
        stats(&both),
    )
}

fn start_floatip_etcd(ctx: &Ctx, host: &Host, priority: u8, dir: &std::path::Path) -> Result<Proc> {
    let name = &host.name;
    let state = dir.join(format!("floatip-{name}-state"));
    std::fs::create_dir_all(&state)?;
    let conf = dir.join(format!("floatip-{name}.toml"));
    let socket = dir.join(format!("floatip-{name}.sock"));
    std::fs::write(
        &conf,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n\n[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\n\
             priority = {priority}\naddresses = [\"{VIP}/24\"]\n{}",
            state.display(),
            EtcdCluster::instance_lines(Duration::from_secs(LEASE_TTL_S), None)
        ),
    )?;
    host.spawn(
        &[
            "env",
            "RUST_LOG=info",
            ctx.floatip_bin.to_str().context("path")?,
            "--socket",
            socket.to_str().context("path")?,
            "run",
            "--config",
            conf.to_str().context("path")?,
        ],
        Some(&dir.join(format!("floatip-{name}.log"))),
    )
}

fn trial(ctx: &Ctx, mode: Mode, cut: Cut) -> Result<Trial> {
    let (mut lab, hosts, dir) = new_lab(true)?;
    let (h1, h2, c) = (&hosts[0], &hosts[1], &hosts[2]);
    let _etcd = if mode == Mode::FloatipEtcd {
        Some(EtcdCluster::start(&mut lab, None)?)
    } else {
        None
    };
    let setup = daemons::files_setup(1000, None);
    let start = |h: &Host, prio: u8| -> Result<Proc> {
        Ok(match mode {
            Mode::FloatipEtcd => start_floatip_etcd(ctx, h, prio, &dir)?,
            Mode::FloatipVrrp => {
                daemons::start(Daemon::Floatip, &ctx.floatip_bin, h, prio, &setup, &dir)?.proc
            }
            Mode::Keepalived => {
                daemons::start(Daemon::Keepalived, &ctx.floatip_bin, h, prio, &setup, &dir)?.proc
            }
        })
    };
    let d1 = start(h1, 150)?;
    if !wait_until(Duration::from_secs(20), Duration::from_millis(5), || {
        Ok(h1.has_address(VIP))
    })? {
        bail!("h1 never claimed {VIP}");
    }
    let _d2 = start(h2, 100)?;
    sleep(Duration::from_secs(5))?;
    if !h1.has_address(VIP) || h2.has_address(VIP) {
        bail!("not settled: h1 should hold {VIP} and h2 not");
    }
    let pinger = Pinger::start(c, VIP, Duration::from_millis(1))?;
    let w1 = AddrWatch::start(h1, VIP)?;
    let w2 = AddrWatch::start(h2, VIP)?;
    sleep(Duration::from_millis(500))?;
    let t_event = now();
    match cut {
        Cut::HostLoss => h1.link_down()?,
        Cut::Partition => {
            let rules = dir.join("cut.nft");
            std::fs::write(&rules, PARTITION)?;
            h1.run(&["nft", "-f", rules.to_str().context("path")?])?;
        }
        // keepalived: its parent, which stops the VRRP child (as the `sigterm` scenario does).
        Cut::Planned => {
            if !d1.signal(libc::SIGTERM) {
                bail!("h1's daemon had exited before the SIGTERM:\n{}", d1.log());
            }
        }
    }
    sleep(WINDOW)?;
    let t_end = now();
    let report = pinger.stop();
    let (t1, t2) = (w1.stop(), w2.stop());
    let replies = parse::reply_times(&report, t_end);
    let gap = parse::longest_gap(&replies, t_event, t_end).map(|g| g * 1000.0);
    let gap = gap.map_err(|g| g * 1000.0);
    let left = t1
        .events
        .iter()
        .find(|e| e.kind == WatchKind::AddrRemoved && e.at >= t_event)
        .map(|e| (e.at - t_event) * 1000.0);
    let taken = t2
        .events
        .iter()
        .find(|e| e.kind == WatchKind::AddrAdded && e.at >= t_event)
        .map(|e| (e.at - t_event) * 1000.0);
    let both_spans = intersect(&t1.held(t_end), &t2.held(t_end));
    // Spans that touch at one instant add up to -0.0 or a few ns: report those as 0.
    let both = (total(&both_spans) * 1000.0).max(0.0);
    let both_at_end = t1.holds_at(t_end - 1e-3) && t2.holds_at(t_end - 1e-3);
    drop(lab);
    Ok(Trial {
        gap,
        left,
        taken,
        both,
        both_at_end,
    })
}
