//! floatip-bench: client-visible failover of floatip next to keepalived, in network namespaces.
//!
//! `cargo run --release -p floatip-bench -- [--trials N] [--scenario NAME...] [--quick]` as root.
//! See bench/README.md. This file: arguments, prerequisites, the scenario list and the run; the
//! roles live beside it (ctx, failover, cpu, report, daemons, parse, svg).

mod chaos;
mod cpu;
mod ctx;
mod daemons;
mod etcd;
mod failover;
mod group;
mod parse;
mod report;
mod svg;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use cpu::cpu_scenario;
use ctx::{utc_now_string, Ctx};
use failover::{failover_scenario, failover_scenario_with, Event};
use floatip_lab::run_output;
use report::{report, Outcome};

const VIP: &str = "192.0.2.97";
const CHECK_PORT: u16 = 9000;
const KILL9_CAP: f64 = 10.0;

const SCENARIOS: &[&str] = &[
    "hostloss-1s",
    "hostloss-10ms",
    "hostloss-100ms",
    "kill9",
    "kill9-100ms",
    "kill9-10ms",
    "sigstop-1s",
    "sigstop-100ms",
    "sigstop-10ms",
    "sigterm",
    "takeover",
    "release",
    "healthcheck",
    "cpu-10ms",
    "scale",
    "group-takeover",
    "vmac-hostloss-100ms",
    "vmac-hostloss-1s",
    "vmac-sigterm",
    "chaos",
    "etcd",
];

fn run_scenario(ctx: &mut Ctx, name: &str) -> Result<Vec<Outcome>> {
    eprintln!("== {name}");
    Ok(match name {
        "hostloss-1s" => vec![failover_scenario(ctx, name, Event::HostLoss, 1000)?],
        "hostloss-10ms" => vec![failover_scenario(ctx, name, Event::HostLoss, 10)?],
        "hostloss-100ms" => vec![failover_scenario(ctx, name, Event::HostLoss, 100)?],
        "kill9" => vec![failover_scenario(ctx, name, Event::Kill9, 1000)?],
        "kill9-100ms" => vec![failover_scenario(ctx, name, Event::Kill9, 100)?],
        "kill9-10ms" => vec![failover_scenario(ctx, name, Event::Kill9, 10)?],
        "sigstop-1s" => vec![failover_scenario(ctx, name, Event::Stop, 1000)?],
        "sigstop-100ms" => vec![failover_scenario(ctx, name, Event::Stop, 100)?],
        "sigstop-10ms" => vec![failover_scenario(ctx, name, Event::Stop, 10)?],
        "sigterm" => vec![failover_scenario(ctx, name, Event::Sigterm, 1000)?],
        "takeover" => vec![failover_scenario(ctx, name, Event::Takeover, 1000)?],
        "release" => vec![failover_scenario(ctx, name, Event::Release, 1000)?],
        "healthcheck" => vec![failover_scenario(ctx, name, Event::Health, 1000)?],
        "cpu-10ms" => vec![cpu_scenario(
            ctx,
            "1 instance, 10 ms adverts",
            &daemons::files_setup(10, None),
            Some(8.0),
            true,
            ctx.profile,
        )?],
        "scale" => {
            let mut v = Vec::new();
            for n in [1u8, 16, 64, 255] {
                v.push(cpu_scenario(
                    ctx,
                    &format!(
                        "scale: {n} instance{} (IPv6), 100 ms adverts",
                        if n == 1 { "" } else { "s" }
                    ),
                    &daemons::scale_setup(n, 100),
                    if n == 1 { Some(8.0) } else { None },
                    false,
                    false,
                )?);
            }
            v
        }
        "group-takeover" => vec![group::group_takeover_scenario(ctx)?],
        "vmac-hostloss-100ms" => vec![failover_scenario_with(
            ctx,
            name,
            Event::HostLoss,
            100,
            true,
        )?],
        "vmac-hostloss-1s" => vec![failover_scenario_with(
            ctx,
            name,
            Event::HostLoss,
            1000,
            true,
        )?],
        "vmac-sigterm" => vec![failover_scenario_with(
            ctx,
            name,
            Event::Sigterm,
            1000,
            true,
        )?],
        "chaos" => vec![chaos::chaos_scenario(ctx)?],
        // Writes bench/results/etcd.md itself (three ownership modes side by side).
        "etcd" => {
            etcd::etcd_scenario(ctx)?;
            Vec::new()
        }
        other => bail!("unknown scenario {other}; known: {}", SCENARIOS.join(", ")),
    })
}

fn check_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    for (tool, hint) in [
        (
            "/usr/sbin/keepalived",
            "keepalived (Debian: apt-get install keepalived)",
        ),
        ("ip", "ip (Debian: apt-get install iproute2)"),
        ("ping", "ping (Debian: apt-get install iputils-ping)"),
        ("/bin/bash", "bash"),
    ] {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
                .unwrap_or(false)
        };
        if !found {
            missing.push(hint.to_string());
        }
    }
    missing
}

/// `floatip-bench serve-tcp ADDR`: accept and close connections until killed (at most 10 min).
fn serve_tcp(addr: &str) -> Result<()> {
    let l = std::net::TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
    println!("listening on {addr}");
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            drop(c);
        }
    });
    std::thread::sleep(Duration::from_secs(600));
    Ok(())
}

fn usage() -> String {
    format!(
        "usage: floatip-bench [--trials N] [--quick] [--scenario NAME]... [--cpu-window SECS] [--keep] [--profile] [--seed N]\n\
         \x20      floatip-bench serve-tcp ADDR\n\
         scenarios: {} (default: all)\n\
         Run as root. Writes bench/results/latest.md and bench/results/<scenario>.svg.",
        SCENARIOS.join(", ")
    )
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("floatip-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-tcp") {
        serve_tcp(args.get(1).context("serve-tcp ADDR")?)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut trials = 5usize;
    let mut scenarios: Vec<String> = Vec::new();
    let mut cpu_window = 10.0f64;
    let mut keep = false;
    let mut profile = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--trials" => {
                trials = it
                    .next()
                    .context("--trials N")?
                    .parse()
                    .context("--trials N")?
            }
            "--quick" => trials = 1,
            "--scenario" => scenarios.push(it.next().context("--scenario NAME")?.clone()),
            "--cpu-window" => cpu_window = it.next().context("--cpu-window SECS")?.parse()?,
            "--keep" => keep = true,
            "--profile" => profile = true,
            "--seed" => {
                chaos::set_seed(it.next().context("--seed N")?.parse().context("--seed N")?)
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(std::process::ExitCode::SUCCESS);
            }
            other => bail!("unknown argument {other}\n{}", usage()),
        }
    }
    if !(1..=50).contains(&trials) || !(1.0..=120.0).contains(&cpu_window) {
        bail!("--trials must be 1-50 and --cpu-window 1-120 s");
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    for s in &scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            bail!("unknown scenario {s}; known: {}", SCENARIOS.join(", "));
        }
    }
    if let Some(why) = floatip_lab::lab_unavailable() {
        bail!("{why} (run as root: sudo -E cargo run --release -p floatip-bench)");
    }
    let missing = check_prerequisites();
    if !missing.is_empty() {
        bail!(
            "missing: {} (the bench installs nothing itself)",
            missing.join(", ")
        );
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    let floatip_bin = std::env::var_os("FLOATIP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/release/floatip"));
    let floatip_missing = floatip_status(&floatip_bin);
    if let Some(why) = &floatip_missing {
        eprintln!("note: floatip side not measured: {why}");
    }
    floatip_lab::install_signal_cleanup()?;
    if keep {
        // Read by floatip_lab when a lab drops: keep its temp dir (configs and logs).
        std::env::set_var("FLOATIP_LAB_KEEP", "1");
    }
    let prefix = format!("fipbench{}", std::process::id());
    let mut ctx = Ctx {
        trials,
        floatip_bin,
        self_bin: std::env::current_exe()?,
        cpu_window: Duration::from_secs_f64(cpu_window),
        floatip_missing,
        notes: Vec::new(),
        profile,
    };
    let started = utc_now_string();
    let mut outcomes = Vec::new();
    let mut failure = None;
    for s in &scenarios {
        match run_scenario(&mut ctx, s) {
            Ok(o) => outcomes.extend(o),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let left = leftover_namespaces(&prefix);
    if !left.is_empty() {
        eprintln!("warning: namespaces left behind: {}", left.join(" "));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let md = report(&ctx, &outcomes, &scenarios, &started);
    println!("{md}");
    let results = workspace.join("bench/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("latest.md"), &md)?;
    for o in &outcomes {
        if let Some((name, svg)) = &o.svg {
            std::fs::write(results.join(name), svg)?;
        }
    }
    eprintln!("wrote {}", results.join("latest.md").display());
    Ok(std::process::ExitCode::SUCCESS)
}

/// None if `floatip run` looks usable, else why not.
fn floatip_status(bin: &Path) -> Option<String> {
    if !bin.exists() {
        return Some(format!(
            "not built ({}: run `cargo build --release -p floatip`)",
            bin.display()
        ));
    }
    if !daemons::floatip_has_command(bin, "run") {
        return Some("this floatip build has no `run` command yet".into());
    }
    None
}

/// Namespaces of this run still present (there should be none).
fn leftover_namespaces(prefix: &str) -> Vec<String> {
    run_output(&["ip", "netns", "list"], Duration::from_secs(10))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
