//! `floatip demo`: a file server's service address, failing over live between two hosts in network
//! namespaces.
//!
//! A switch, two file servers (araman and eldamar) and a client, all in namespaces
//! this run creates and removes (also on Ctrl-C). Both run this very binary as a daemon; the client
//! pings the service IP every 2 ms, so the gap it sees is what a user would feel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use floatip_lab::{format_mac, Host, Lab, Pinger};

const VIP: &str = "192.0.2.97";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

struct Show {
    start: Instant,
    color: bool,
}

impl Show {
    fn paint(&self, code: &'static str) -> &'static str {
        if self.color {
            code
        } else {
            ""
        }
    }
    fn step(&self, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        println!("{}[{t:5.1}s]{} {text}", self.paint(DIM), self.paint(RESET));
        let _ = std::io::stdout().flush();
    }
    fn detail(&self, text: &str) {
        println!("        {}{text}{}", self.paint(DIM), self.paint(RESET));
    }
}

pub fn run() -> Result<ExitCode> {
    if let Some(why) = floatip_lab::lab_unavailable() {
        bail!("the demo builds network namespaces and needs root: {why}\n  try: sudo floatip demo");
    }
    floatip_lab::install_signal_cleanup()?;
    let show = Show {
        start: Instant::now(),
        color: std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let exe = std::env::current_exe().context("cannot find the floatip binary")?;
    let result = demo(&show, &exe);
    match &result {
        Ok(()) => println!(
            "\n{}done{}: every namespace and process of the demo is gone; your network was never touched.",
            show.paint(GREEN),
            show.paint(RESET)
        ),
        Err(_) if floatip_lab::interrupted() => {
            println!("\ninterrupted: cleaned up every namespace and process of the demo.");
            return Ok(ExitCode::from(130));
        }
        Err(_) => {}
    }
    result.map(|()| ExitCode::SUCCESS)
}

fn demo(show: &Show, exe: &Path) -> Result<()> {
    let b = show.paint(BOLD);
    let r = show.paint(RESET);
    println!("{b}floatip demo{r}: a file server's address, failing over live between two hosts\n");
    let mut lab = Lab::new("fipdemo")?;
    let araman = lab.add_host("araman", "192.0.2.253/24", None)?;
    let eldamar = lab.add_host("eldamar", "192.0.2.254/24", None)?;
    let client = lab.add_host("client", "192.0.2.10/24", None)?;
    show.step(&format!(
        "a small LAN in network namespaces ({}-*): araman {}, eldamar {}, client {}",
        lab.prefix(),
        araman.ipv4,
        eldamar.ipv4,
        client.ipv4
    ));
    show.detail(&format!(
        "service IP {VIP}; araman priority 150, eldamar 100; adverts every second"
    ));

    let mut daemons = Vec::new();
    for (host, priority) in [(&araman, 150), (&eldamar, 100)] {
        let conf = write_config(&lab, host, priority)?;
        let sock = lab.path(&format!("{}.sock", host.name));
        let log = lab.path(&format!("{}.log", host.name));
        let argv = [
            exe.to_str().context("binary path is not UTF-8")?,
            "--socket",
            sock.to_str().context("lab path is not UTF-8")?,
            "run",
            "--config",
            conf.to_str().context("lab path is not UTF-8")?,
        ];
        daemons.push((host.clone(), host.spawn(&argv, Some(&log))?, log));
    }
    show.step(
        "started floatip on araman and eldamar; both begin as BACKUP and listen for 3 adverts",
    );

    let owner = wait_owner(show, &[&araman, &eldamar], Duration::from_secs(8))?;
    show.step(&format!(
        "{}{}{} holds {VIP}",
        show.paint(GREEN),
        owner.name,
        show.paint(RESET)
    ));
    show.detail(&last_reason(&daemons, &owner.name));

    let pinger = Pinger::start(&client, VIP, Duration::from_millis(2))?;
    if !pinger.wait_replies(50, Duration::from_secs(5)) {
        bail!(
            "the client gets no replies from {VIP}; see the logs in {}",
            lab.keep_logs().display()
        );
    }
    show.step(&format!(
        "the client pings {VIP} every 2 ms; its ARP entry points at {} ({})",
        mac_of(&client),
        who_has_mac(&client, &[&araman, &eldamar])
    ));
    pause(Duration::from_secs(2))?;

    // The failure: araman's cable is pulled (its switch port goes down).
    let cut = floatip_lab::unix_now();
    araman.link_down()?;
    show.step(&format!(
        "{}pulling araman's cable{} (its switch port goes down)",
        show.paint(RED),
        show.paint(RESET)
    ));
    let owner = wait_owner(show, &[&eldamar], Duration::from_secs(10))?;
    if !pinger.wait_reply_after(floatip_lab::unix_now(), Duration::from_secs(3)) {
        bail!("eldamar holds {VIP} but the client gets no replies");
    }
    let gap = pinger.longest_gap(cut, floatip_lab::unix_now());
    show.step(&format!(
        "{}{}{} holds {VIP}; the client lost the service for {b}{}{r}",
        show.paint(GREEN),
        owner.name,
        show.paint(RESET),
        ms(gap)
    ));
    show.detail(&last_reason(&daemons, "eldamar"));
    show.detail(&format!(
        "3 missed adverts + skew = 3.61 s is the RFC's bound; the client's ARP entry now points at {} ({})",
        mac_of(&client),
        who_has_mac(&client, &[&araman, &eldamar])
    ));
    pause(Duration::from_secs(2))?;

    // The repair: araman comes back and, with the higher priority, takes the address back.
    let back = floatip_lab::unix_now();
    araman.link_up()?;
    show.step(&format!(
        "{}plugging araman back in{}: it listens, hears eldamar's lower priority, and preempts",
        show.paint(YELLOW),
        show.paint(RESET)
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !araman.has_address(VIP) || eldamar.has_address(VIP) {
        if Instant::now() > deadline {
            bail!(
                "araman did not take {VIP} back within 10 s; logs in {}",
                lab.keep_logs().display()
            );
        }
        pause(Duration::from_millis(20))?;
    }
    pause(Duration::from_millis(500))?;
    let gap_back = pinger.longest_gap(back, floatip_lab::unix_now());
    show.step(&format!(
        "{}araman{} holds {VIP} again; the client's longest gap during the move: {b}{}{r}",
        show.paint(GREEN),
        show.paint(RESET),
        ms(gap_back)
    ));
    show.detail(&last_reason(&daemons, "araman"));

    // A planned stop: SIGTERM to the master hands over make-before-break.
    let stop = floatip_lab::unix_now();
    show.step("stopping floatip on araman (SIGTERM): it advertises priority 0 and keeps answering until eldamar has announced");
    daemons[0].1.signal(libc::SIGTERM);
    let status = daemons[0].1.wait_exit(Duration::from_secs(8));
    let owner = wait_owner(show, &[&eldamar], Duration::from_secs(5))?;
    pause(Duration::from_millis(300))?;
    let gap_stop = pinger.longest_gap(stop, floatip_lab::unix_now());
    show.step(&format!(
        "{}{}{} holds {VIP}; araman's daemon exited ({}) and left nothing behind; client gap: {b}{}{r}",
        show.paint(GREEN),
        owner.name,
        show.paint(RESET),
        status.map_or("still running".to_string(), |s| s.to_string()),
        ms(gap_stop)
    ));

    let report = pinger.stop();
    println!(
        "\n{b}summary{r}: the client sent {} pings and got {} replies",
        report.sent, report.received
    );
    println!(
        "  cable pulled      {:>9}   (keepalived here: ~3.5 s)",
        ms(gap)
    );
    println!("  cable back        {:>9}", ms(gap_back));
    println!(
        "  planned stop      {:>9}   (keepalived here: ~0.6 s)",
        ms(gap_stop)
    );
    if std::env::var("FLOATIP_LAB_KEEP").is_ok_and(|v| v == "1") {
        println!("  logs: kept in {}", lab.dir().display());
    } else {
        println!("  logs: removed with the lab (FLOATIP_LAB_KEEP=1 keeps them)");
    }
    drop(daemons);
    drop(lab);
    Ok(())
}

fn write_config(lab: &Lab, host: &Host, priority: u8) -> Result<PathBuf> {
    let path = lab.path(&format!("{}.toml", host.name));
    let state = lab.path(&format!("{}-state", host.name));
    let text = format!(
        "# floatip demo: {name}\n[daemon]\nstate_dir = \"{state}\"\n\n[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\naddresses = [\"{VIP}/24\"]\n",
        name = host.name,
        state = state.display(),
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Wait until exactly one of `hosts` holds the VIP; the others in the lab must not.
fn wait_owner<'a>(show: &Show, hosts: &[&'a Host], timeout: Duration) -> Result<&'a Host> {
    let deadline = Instant::now() + timeout;
    loop {
        let holders: Vec<&&Host> = hosts.iter().filter(|h| h.has_address(VIP)).collect();
        if holders.len() == 1 {
            return Ok(holders[0]);
        }
        if Instant::now() > deadline {
            show.detail("nobody claimed the address in time");
            bail!("no single owner of {VIP} after {timeout:?}");
        }
        pause(Duration::from_millis(20))?;
    }
}

fn pause(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if floatip_lab::interrupted() {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(10).min(d));
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn mac_of(client: &Host) -> String {
    client
        .neigh_mac(VIP)
        .map_or("(none)".to_string(), |m| format_mac(&m))
}

fn who_has_mac(client: &Host, hosts: &[&Host]) -> String {
    let mac = client.neigh_mac(VIP);
    hosts
        .iter()
        .find(|h| Some(h.mac) == mac)
        .map_or("unknown".to_string(), |h| h.name.clone())
}

/// The reason of the host's latest transition, from its daemon's log.
fn last_reason(daemons: &[(Host, floatip_lab::Proc, PathBuf)], host: &str) -> String {
    daemons
        .iter()
        .find(|(h, _, _)| h.name == host)
        .and_then(|(_, _, log)| std::fs::read_to_string(log).ok())
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| l.contains(" -> "))
                .and_then(|l| l.split_once(" -> "))
                .and_then(|(_, rest)| rest.split_once(": ").map(|(_, why)| why))
                .map(|why| {
                    why.rsplit_once(" instance=")
                        .map_or(why, |(w, _)| w)
                        .to_string()
                })
        })
        .map_or_else(
            || "(no transition logged yet)".to_string(),
            |why| format!("{host}: {why}"),
        )
}
