//! The two daemons under test: their configuration files, how to start them, crash them and read
//! their CPU and memory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use floatip_lab::{Host, Proc};

use crate::parse;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    Floatip,
    Keepalived,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Floatip => "floatip",
            Daemon::Keepalived => "keepalived",
        }
    }
}

/// One VRRP instance as both daemons are configured.
#[derive(Clone, Debug)]
pub struct Inst {
    pub name: String,
    pub vrid: u8,
    /// With prefix length: "192.0.2.97/24", "2001:db8::1:1/64".
    pub vip: String,
}

/// What a host's daemon runs.
#[derive(Clone, Debug)]
pub struct Setup {
    pub interval_ms: u32,
    pub instances: Vec<Inst>,
    /// A tcp health check against 127.0.0.1:PORT (floatip: 200 ms interval, fall 2; keepalived:
    /// a vrrp_script probe at its minimum interval of 1 s, fall 2).
    pub check_port: Option<u16>,
    /// Every instance in one floatip `[[group]]` of this name (floatip only: the group scenario is
    /// a planned takeover, which keepalived does not have).
    pub group: Option<String>,
    /// Virtual MAC: floatip `vmac = true`, keepalived `use_vmac` (the VIP lives on `vrrp.{vrid}`).
    pub vmac: bool,
}

/// The main scenario's single instance: VRID 51, VIP 192.0.2.97.
pub fn files_setup(interval_ms: u32, check_port: Option<u16>) -> Setup {
    Setup {
        interval_ms,
        instances: vec![Inst {
            name: "files".into(),
            vrid: 51,
            vip: "192.0.2.97/24".into(),
        }],
        check_port,
        group: None,
        vmac: false,
    }
}

/// A dual-VIP file server in one group "fileserver": `files` (VRID 51, 192.0.2.97) and `files-b`
/// (VRID 52, 192.0.2.98).
pub fn group_setup(interval_ms: u32) -> Setup {
    let mut setup = files_setup(interval_ms, None);
    setup.instances.push(Inst {
        name: "files-b".into(),
        vrid: 52,
        vip: "192.0.2.98/24".into(),
    });
    setup.group = Some("fileserver".into());
    setup
}

/// N instances (VRIDs 1..=N) with IPv6 VIPs 2001:db8::1:<k in hex>/64: 255 IPv4 VIPs do not fit in
/// 192.0.2.0/24 next to the hosts' own addresses.
pub fn scale_setup(n: u8, interval_ms: u32) -> Setup {
    Setup {
        interval_ms,
        instances: (1..=n)
            .map(|k| Inst {
                name: format!("v{k}"),
                vrid: k,
                vip: format!("2001:db8::1:{k:x}/64"),
            })
            .collect(),
        check_port: None,
        group: None,
        vmac: false,
    }
}

fn duration_str(ms: u32) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// floatip's config. `state_dir` is per host and inside the lab's temp dir: the default
/// (/var/lib/floatip) is shared by every daemon on the machine, so a `takeover` override stored
/// there would leak into later trials (and outside the lab).
pub fn floatip_config(setup: &Setup, priority: u8, socket: &Path, state_dir: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n",
        socket.display(),
        state_dir.display()
    );
    for i in &setup.instances {
        let _ = writeln!(
            s,
            "[[instance]]\nname = \"{}\"\ninterface = \"eth0\"\nvrid = {}\npriority = {priority}\n\
             version = 3\nadvert_interval = \"{}\"\npreempt = true\naddresses = [\"{}\"]",
            i.name,
            i.vrid,
            duration_str(setup.interval_ms),
            i.vip
        );
        if setup.vmac {
            s.push_str("vmac = true\n");
        }
        if let Some(port) = setup.check_port {
            let _ = writeln!(
                s,
                "\n[[instance.check]]\nname = \"tcp\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{port}\"\n\
                 interval = \"200ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 2"
            );
        }
        s.push('\n');
    }
    if let Some(group) = &setup.group {
        let names: Vec<String> = setup
            .instances
            .iter()
            .map(|i| format!("\"{}\"", i.name))
            .collect();
        let _ = writeln!(
            s,
            "[[group]]\nname = \"{group}\"\ninstances = [{}]",
            names.join(", ")
        );
    }
    s
}

pub fn keepalived_config(setup: &Setup, host: &str, priority: u8, initial_master: bool) -> String {
    let mut s = String::new();
    // GARP: keepalived's defaults (5 gratuitous ARPs / NAs at once on becoming master, 5 more
    // after 5 s), written out so the report can say what was compared.
    let _ = writeln!(
        s,
        "global_defs {{\n  router_id {host}\n  vrrp_version 3\n  vrrp_garp_master_repeat 5\n  \
         vrrp_garp_master_delay 5\n  script_user root\n  enable_script_security\n}}\n"
    );
    if let Some(port) = setup.check_port {
        let _ = writeln!(
            s,
            "vrrp_script chk_tcp {{\n  script \"/bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'\"\n  \
             interval 1\n  timeout 1\n  fall 2\n  rise 1\n}}\n"
        );
    }
    let advert = format!("{}", setup.interval_ms as f64 / 1000.0);
    for i in &setup.instances {
        let _ = writeln!(
            s,
            "vrrp_instance {} {{\n  state {}\n  interface eth0\n  virtual_router_id {}\n  \
             priority {priority}\n  advert_int {advert}\n{}  virtual_ipaddress {{\n    {}\n  }}",
            i.name,
            if initial_master { "MASTER" } else { "BACKUP" },
            i.vrid,
            if setup.vmac { "  use_vmac\n" } else { "" },
            i.vip
        );
        if setup.check_port.is_some() {
            let _ = writeln!(s, "  track_script {{\n    chk_tcp\n  }}");
        }
        s.push_str("}\n\n");
    }
    s
}

/// A daemon started on one host.
pub struct Running {
    pub daemon: Daemon,
    pub host: Host,
    pub proc: Proc,
    pub socket: PathBuf,
}

/// Starts `daemon` on `host` with `setup` at `priority`. Files go to `dir`.
pub fn start(
    daemon: Daemon,
    floatip_bin: &Path,
    host: &Host,
    priority: u8,
    setup: &Setup,
    dir: &Path,
) -> Result<Running> {
    let name = host.name.as_str();
    let log = dir.join(format!("{}-{name}.log", daemon.name()));
    let socket = dir.join(format!("floatip-{name}.sock"));
    let proc = match daemon {
        Daemon::Floatip => {
            let conf = dir.join(format!("floatip-{name}.toml"));
            let state = dir.join(format!("floatip-{name}-state"));
            std::fs::create_dir_all(&state)?;
            std::fs::write(&conf, floatip_config(setup, priority, &socket, &state))?;
            let bin = floatip_bin.to_str().context("floatip path")?;
            let sock = socket.to_str().context("socket path")?;
            let conf = conf.to_str().context("conf path")?;
            host.spawn(
                &[
                    "env",
                    "RUST_LOG=info",
                    bin,
                    "--socket",
                    sock,
                    "run",
                    "--config",
                    conf,
                ],
                Some(&log),
            )?
        }
        Daemon::Keepalived => {
            let conf = dir.join(format!("keepalived-{name}.conf"));
            std::fs::write(
                &conf,
                keepalived_config(setup, name, priority, priority > 100),
            )?;
            floatip_lab::spawn_keepalived(host, &conf, dir, &log)?
        }
    };
    Ok(Running {
        daemon,
        host: host.clone(),
        proc,
        socket,
    })
}

/// The daemon's processes: floatip and its guard; keepalived, the parent and its VRRP child.
pub fn pids(r: &Running) -> Vec<u32> {
    let main = r.proc.pid();
    let mut v = vec![main];
    v.extend(children(main));
    v
}

/// Pids whose parent is `pid`, from /proc/*/stat.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            if parse::stat_ppid(&st) == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

/// A crash of the whole daemon. keepalived respawns a dead child and its child stops gracefully
/// when the parent dies, so: freeze the parent, SIGKILL the children, SIGKILL the parent.
pub fn kill9(r: &Running) -> Result<()> {
    match r.daemon {
        Daemon::Floatip => {
            if !r.proc.kill9() {
                bail!("floatip had already exited");
            }
        }
        Daemon::Keepalived => {
            if !r.proc.signal(libc::SIGSTOP) {
                bail!("keepalived had already exited");
            }
            for c in children(r.proc.pid()) {
                floatip_lab::kill_pid(c, libc::SIGKILL);
            }
            r.proc.kill9();
        }
    }
    Ok(())
}

/// Signals the daemon and its children (keepalived's VRRP child does the work; floatip's guard is
/// left alone: it is what a frozen floatip has besides itself).
pub fn signal_all(r: &Running, sig: i32) -> Result<()> {
    if !r.proc.signal(sig) {
        bail!("{} had already exited", r.daemon.name());
    }
    if r.daemon == Daemon::Keepalived {
        for c in children(r.proc.pid()) {
            floatip_lab::kill_pid(c, sig);
        }
    }
    Ok(())
}

/// Total CPU time (ns, every thread) and RSS (kB) of `pids` now.
pub fn cpu_rss(pids: &[u32]) -> Result<(u64, u64)> {
    let (mut ns, mut kb) = (0, 0);
    for p in pids {
        // /proc/PID/schedstat is the main thread's alone: sum every thread's.
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .with_context(|| format!("/proc/{p}/task (did the daemon exit?)"))?;
        for t in tasks {
            let path = t?.path().join("schedstat");
            // A thread that exited between listing and reading has nothing more to count.
            if let Ok(st) = std::fs::read_to_string(&path) {
                ns += parse::schedstat_ns(&st).with_context(|| format!("{}", path.display()))?;
            }
        }
        let status = std::fs::read_to_string(format!("/proc/{p}/status"))?;
        kb += parse::vmrss_kb(&status).context("VmRSS")?;
    }
    Ok((ns, kb))
}

/// Context switches (voluntary + involuntary) summed over every thread of `pids`, and the number
/// of threads. Unreadable entries count as 0.
pub fn switches_threads(pids: &[u32]) -> (u64, usize) {
    let (mut sw, mut threads) = (0, 0);
    for p in pids {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in rd.flatten() {
            threads += 1;
            if let Ok(st) = std::fs::read_to_string(t.path().join("status")) {
                sw += parse::ctxt_switches(&st);
            }
        }
    }
    (sw, threads)
}

/// Runs a floatip CLI command against `r`'s control socket, inside its host's namespace.
/// Ok(None) when this build's CLI does not have the command.
pub fn floatip_cli(floatip_bin: &Path, r: &Running, args: &[&str]) -> Result<Option<String>> {
    let bin = floatip_bin.to_str().context("path")?;
    let sock = r.socket.to_str().context("path")?;
    let mut argv = vec![bin, "--socket", sock];
    argv.extend_from_slice(args);
    let out = r.host.output(&argv)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    if stderr.contains("unrecognized subcommand") || stderr.contains("not implemented") {
        return Ok(None);
    }
    bail!("`floatip {}` failed: {}", args.join(" "), stderr.trim())
}

/// Whether this floatip build's CLI lists `cmd`.
pub fn floatip_has_command(floatip_bin: &Path, cmd: &str) -> bool {
    let Some(bin) = floatip_bin.to_str() else {
        return false;
    };
    floatip_lab::run_output(&[bin, "--help"], Duration::from_secs(5))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(cmd))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_mention_everything() {
        let s = files_setup(10, Some(9000));
        let f = floatip_config(&s, 150, Path::new("/tmp/x.sock"), Path::new("/tmp/st"));
        assert!(f.contains("advert_interval = \"10ms\""));
        assert!(f.contains("vrid = 51"));
        assert!(f.contains("state_dir = \"/tmp/st\""));
        assert!(f.contains("target = \"127.0.0.1:9000\""));
        let k = keepalived_config(&s, "h1", 150, true);
        assert!(k.contains("advert_int 0.01"));
        assert!(k.contains("vrrp_version 3"));
        assert!(k.contains("track_script"));
        assert!(k.contains("state MASTER"));
        let k = keepalived_config(&files_setup(1000, None), "h2", 100, false);
        assert!(k.contains("advert_int 1\n"));
        assert!(!k.contains("vrrp_script"));
        let sc = scale_setup(255, 100);
        assert_eq!(sc.instances.len(), 255);
        assert_eq!(sc.instances[254].vip, "2001:db8::1:ff/64");
        assert_eq!(duration_str(1000), "1s");
        assert_eq!(duration_str(100), "100ms");
    }
}
