//! CPU and memory scenarios: labs whose masters are measured over one shared window (CPU, RSS,
//! context switches, threads), optional perf profiles, and their table rows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::ctx::{
    check_interrupted, logs_hint, master_down, new_lab, results_dir, sleep, wait_until, Ctx,
};
use crate::daemons::{self, Daemon, Setup};
use crate::parse;
use crate::report::{column, med, verdict_limit, verdict_limit_and_keepalived, Outcome, Row};
use floatip_lab::{run_output, Host, Lab};

/// CPU (per mille of a core) and RSS (MiB) of h1's daemon, the master, over the window.
/// What one CPU/RSS window measured on the master.
#[derive(Clone, Copy, Debug)]
pub struct CpuTrial {
    permille: f64,
    rss_mib: f64,
    /// Context switches per second, all threads of all the daemon's processes (its wakeups).
    switches: f64,
    threads: usize,
}

/// A lab whose master (h1) and backup (h2) run one daemon and have settled, ready to be measured.
pub struct CpuLab {
    daemon: Daemon,
    pids: Vec<u32>,
    dir: PathBuf,
    // Dropped in this order: the daemons, then the lab.
    _daemons: (daemons::Running, daemons::Running),
    _lab: Lab,
}

pub fn cpu_lab(ctx: &Ctx, daemon: Daemon, setup: &Setup) -> Result<CpuLab> {
    let (lab, hosts, dir) = new_lab(false)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    let d1 = daemons::start(daemon, &ctx.floatip_bin, h1, 150, setup, &dir)?;
    let n = setup.instances.len();
    let vips: Vec<String> = setup
        .instances
        .iter()
        .map(|i| i.vip.split('/').next().unwrap_or_default().to_string())
        .collect();
    let all_on = |host: &Host| -> Result<usize> {
        let a = host.addresses()?;
        Ok(vips.iter().filter(|v| parse::holds(&a, v)).count())
    };
    let startup = Duration::from_secs_f64(master_down(setup.interval_ms, 150) + 20.0);
    if !wait_until(startup, Duration::from_millis(50), || Ok(all_on(h1)? == n))? {
        bail!(
            "h1 ({}) holds {} of {n} VIPs; logs: {}",
            daemon.name(),
            all_on(h1)?,
            logs_hint(&dir)
        );
    }
    let d2 = daemons::start(daemon, &ctx.floatip_bin, h2, 100, setup, &dir)?;
    sleep(Duration::from_secs_f64(
        master_down(setup.interval_ms, 100) + 1.0,
    ))?;
    if all_on(h2)? > 0 || all_on(h1)? != n {
        bail!(
            "{}: not settled (h2 holds VIPs or h1 lost some); logs: {}",
            daemon.name(),
            logs_hint(&dir)
        );
    }
    Ok(CpuLab {
        daemon,
        pids: daemons::pids(&d1),
        dir,
        _daemons: (d1, d2),
        _lab: lab,
    })
}

/// Measure every lab's master over the same window: load from elsewhere on the machine then falls on
/// all of them alike, and their ratio is far steadier than either number. After the window (perf's
/// overhead must not count), `profile_to` says where a lab's `perf record -g` report goes, if anywhere.
pub fn cpu_window(
    ctx: &Ctx,
    labs: &[CpuLab],
    profile_to: impl Fn(Daemon) -> Option<PathBuf>,
) -> Result<Vec<CpuTrial>> {
    let mut start = Vec::new();
    for l in labs {
        start.push((
            daemons::cpu_rss(&l.pids)?.0,
            daemons::switches_threads(&l.pids).0,
        ));
    }
    let t0 = Instant::now();
    sleep(ctx.cpu_window)?;
    let mut end = Vec::new();
    for l in labs {
        let (ns, kb) = daemons::cpu_rss(&l.pids)?;
        end.push((ns, kb, daemons::switches_threads(&l.pids)));
    }
    let secs = t0.elapsed().as_secs_f64();
    for l in labs {
        if let Some(out) = profile_to(l.daemon) {
            if let Err(e) = profile(&l.pids, &l.dir, &out) {
                eprintln!("(profile of {} failed: {e:#}) ", l.daemon.name());
            }
        }
    }
    Ok(start
        .iter()
        .zip(&end)
        .map(|(&(ns0, sw0), &(ns1, kb, (sw1, threads)))| CpuTrial {
            permille: (ns1.saturating_sub(ns0)) as f64 / 1e9 / secs * 1000.0,
            rss_mib: kb as f64 / 1024.0,
            switches: sw1.saturating_sub(sw0) as f64 / secs,
            threads,
        })
        .collect())
}

/// `perf record -g` of `pids` for 5 s, then `perf report` (flat, by symbol) into `out`.
pub fn profile(pids: &[u32], dir: &Path, out: &Path) -> Result<()> {
    let data = dir.join("perf.data");
    let data_s = data.to_str().context("path")?;
    let pid_list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rec = run_output(
        &[
            "perf", "record", "-F", "999", "-g", "-o", data_s, "-p", &pid_list, "--", "sleep", "5",
        ],
        Duration::from_secs(30),
    )?;
    if !rec.status.success() {
        bail!(
            "perf record: {}",
            String::from_utf8_lossy(&rec.stderr).trim()
        );
    }
    let rep = run_output(
        &[
            "perf",
            "report",
            "-i",
            data_s,
            "--stdio",
            "--no-children",
            "--sort",
            "dso,symbol",
            "--percent-limit",
            "1.5",
            "-g",
            "none",
        ],
        Duration::from_secs(60),
    )?;
    std::fs::write(out, &rep.stdout)?;
    Ok(())
}

pub fn cpu_scenario(
    ctx: &mut Ctx,
    label: &str,
    setup: &Setup,
    rss_limit: Option<f64>,
    with_profile: bool,
    profile: bool,
) -> Result<Outcome> {
    let mut res: [Vec<std::result::Result<CpuTrial, String>>; 2] = [Vec::new(), Vec::new()];
    // floatip's CPU over keepalived's, per trial where both were measured (in the same window).
    let mut ratios = Vec::new();
    let slug = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>();
    for trial in 0..ctx.trials {
        check_interrupted()?;
        if let (Some(why), 0) = (&ctx.floatip_missing, trial) {
            res[0].push(Err(why.clone()));
        }
        // Both daemons' labs are built (in alternating order), then measured at the same time.
        let mut order = vec![Daemon::Floatip, Daemon::Keepalived];
        if ctx.floatip_missing.is_some() {
            order.retain(|d| *d != Daemon::Floatip);
        }
        if trial % 2 == 1 {
            order.reverse();
        }
        eprint!("  {label} trial {}/{} ... ", trial + 1, ctx.trials);
        let mut labs = Vec::new();
        for d in &order {
            match cpu_lab(ctx, *d, setup) {
                Ok(l) => labs.push(l),
                Err(e) => {
                    eprint!("{} failed: {e:#}; ", d.name());
                    res[*d as usize].push(Err(format!("{e:#}")));
                }
            }
            check_interrupted()?;
        }
        let measured = if labs.is_empty() {
            Vec::new()
        } else {
            cpu_window(ctx, &labs, |d| {
                (profile && trial == 0)
                    .then(|| results_dir().join(format!("profile-{}-{slug}.txt", d.name())))
            })?
        };
        let mut permille = [None, None];
        for (l, t) in labs.iter().zip(measured) {
            eprint!(
                "{}: {:.2} ‰ CPU, {:.1} MiB RSS, {:.0} context switches/s, {} threads; ",
                l.daemon.name(),
                t.permille,
                t.rss_mib,
                t.switches,
                t.threads
            );
            permille[l.daemon as usize] = Some(t.permille);
            res[l.daemon as usize].push(Ok(t));
        }
        if let [Some(f), Some(k)] = permille {
            if k > 0.0 {
                ratios.push(Some(f / k));
                eprint!("ratio {:.2}", f / k);
            }
        }
        eprintln!();
        drop(labs);
        check_interrupted()?;
    }
    let col = |i: usize, which: usize| {
        column(&res[i], |t| {
            Some(match which {
                0 => t.permille,
                1 => t.rss_mib,
                2 => t.switches,
                _ => t.threads as f64,
            })
        })
    };
    let mut rows = vec![Row {
        scenario: format!("{label}: master CPU"),
        unit: "‰",
        floatip: col(0, 0),
        keepalived: col(1, 0),
        never: "-",
        target: "≤ keepalived".into(),
        verdict: verdict_limit_and_keepalived,
        limit: None,
    }];
    rows.push(Row {
        scenario: format!("{label}: master CPU, floatip ÷ keepalived (same window)"),
        unit: "×",
        floatip: if ratios.is_empty() {
            Err("not measured".into())
        } else {
            Ok(ratios)
        },
        keepalived: Err("1 (the reference)".into()),
        never: "-",
        target: "≤ 1".into(),
        verdict: verdict_limit,
        limit: Some(1.0),
    });
    rows.push(Row {
        scenario: format!("{label}: master RSS"),
        unit: "MiB",
        floatip: col(0, 1),
        keepalived: col(1, 1),
        never: "-",
        target: match rss_limit {
            Some(l) => format!("≤ {l} MiB"),
            None => "(reported)".into(),
        },
        verdict: if rss_limit.is_some() {
            verdict_limit
        } else {
            |r: &Row| match med(&r.floatip) {
                Some(Some(_)) => "reported".into(),
                _ => "not measured".into(),
            }
        },
        limit: rss_limit,
    });
    if with_profile {
        for (which, what) in [(2, "context switches/s"), (3, "threads")] {
            rows.push(Row {
                scenario: format!("{label}: master {what}"),
                unit: if which == 2 { "1/s" } else { "n" },
                floatip: col(0, which),
                keepalived: col(1, which),
                never: "-",
                target: "(profile)".into(),
                verdict: |_| "-".into(),
                limit: None,
            });
        }
    }
    Ok(Outcome { rows, svg: None })
}
