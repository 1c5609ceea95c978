//! The lab: a switch namespace with a bridge, hosts attached to it by veth pairs, its processes'
//! logs, and teardown. What one host can do (commands, link, addresses) is in host.rs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::addr::{format_mac, parse_lab_v4, parse_lab_v6};
use crate::host::Host;
use crate::proc::{run_checked, stop_all, Proc, SharedChild, COMMAND_TIMEOUT};
use crate::sys;

/// How long processes get between SIGTERM and SIGKILL when a lab is dropped.
pub const STOP_GRACE: Duration = Duration::from_millis(1500);

/// Longest host name (the switch port is "p-" + name, and interface names stop at 15 bytes).
pub const MAX_HOST_NAME: usize = 12;

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// State shared by a lab and its hosts: where logs go and which processes to stop.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    procs: Mutex<Vec<SharedChild>>,
    log_counter: AtomicU32,
}

impl Shared {
    pub(crate) fn register(&self, child: SharedChild) {
        self.procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
    }

    fn log_path(&self, stem: &str) -> PathBuf {
        let n = self.log_counter.fetch_add(1, Ordering::Relaxed);
        let stem: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{n:03}-{stem}.log"))
    }
}

/// A lab: network namespaces on one machine, torn down when it is dropped.
///
/// Layout: one "switch" namespace holding bridge `br0`, and one namespace per host whose `eth0`
/// is a veth whose other end is a port of `br0`. Nothing is ever created in the root namespace.
///
/// Dropping the lab (also while unwinding from a panic) stops every process it started
/// (SIGTERM, then SIGKILL after [`STOP_GRACE`]), SIGKILLs anything else still inside its
/// namespaces, deletes every namespace it made and its temp directory (kept when
/// `FLOATIP_LAB_KEEP=1`). Drop does not run on SIGINT/SIGTERM: see
/// [`install_signal_cleanup`](crate::install_signal_cleanup).
pub struct Lab {
    prefix: String,
    switch_ns: String,
    namespaces: Vec<String>,
    hosts: Vec<Host>,
    shared: Arc<Shared>,
    keep: bool,
}

/// Runs `ip ARGS...` in the root namespace's view, i.e. commands that name a namespace with `-n`.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    run_checked(&argv, COMMAND_TIMEOUT)
}

fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

fn sanitize(name: &str, max: usize) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(max)
        .collect();
    if s.is_empty() {
        "lab".to_string()
    } else {
        s
    }
}

impl Lab {
    /// Makes a lab named after `name` (a test name, say): the prefix is `name` (alphanumerics,
    /// at most 16) followed by the pid and a per-process counter, so labs of parallel tests and
    /// parallel test binaries never collide. Creates the switch namespace `<prefix>-sw` with
    /// bridge `br0` (up, no address, STP off, forward delay 0, multicast snooping off so VRRP
    /// adverts reach every port) and a temp dir `/tmp/floatip-lab-<prefix>/` for logs.
    pub fn new(name: &str) -> Result<Lab> {
        crate::check_tools()?;
        let base = sanitize(name, 16);
        let pid = std::process::id();
        let tmp = std::env::temp_dir();
        // Bounded search for a free prefix (a stale namespace of a killed run may hold one).
        let mut found = None;
        for _ in 0..100 {
            let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
            let prefix = format!("{base}{pid}x{n}");
            let dir = tmp.join(format!("floatip-lab-{prefix}"));
            let switch_ns = format!("{prefix}-sw");
            if netns_exists(&switch_ns) {
                continue;
            }
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    found = Some((prefix, dir, switch_ns));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", dir.display()))
                }
            }
        }
        let Some((prefix, dir, switch_ns)) = found else {
            bail!("no free lab prefix for `{base}{pid}x*` after 100 tries: stale namespaces? see `ip netns list`");
        };
        let keep = std::env::var("FLOATIP_LAB_KEEP").is_ok_and(|v| v == "1");
        // From here on the lab exists, so any error drops it and undoes what was done.
        let mut lab = Lab {
            prefix,
            switch_ns: switch_ns.clone(),
            namespaces: Vec::new(),
            hosts: Vec::new(),
            shared: Arc::new(Shared {
                dir,
                procs: Mutex::new(Vec::new()),
                log_counter: AtomicU32::new(0),
            }),
            keep,
        };
        lab.add_netns(&switch_ns)?;
        let sw = switch_ns.as_str();
        // The switch is silent: no IPv6 (no link-local, no MLD, no RS) on the bridge or its ports.
        lab.exec_in(
            sw,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        ip(&["-n", sw, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", sw, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    fn add_netns(&mut self, ns: &str) -> Result<()> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        Ok(())
    }

    fn exec_in(&self, ns: &str, argv: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(argv);
        run_checked(&full, COMMAND_TIMEOUT)
    }

    /// Adds a host: namespace `<prefix>-<name>`, `lo` up, `eth0` on the switch (created directly
    /// inside the lab's namespaces), MAC 02:00:00:00:HH:LL (HHLL = host number, 1-based), IPv6 DAD
    /// off, and the given addresses (`"192.0.2.1/24"`, `"2001:db8::1/64"`). Addresses outside
    /// 192.0.2.0/24 and 2001:db8::/64 are refused. `name`: 1-12 of `[a-z0-9_-]`, unique in the lab.
    pub fn add_host(&mut self, name: &str, ipv4: &str, ipv6: Option<&str>) -> Result<Host> {
        if name.is_empty()
            || name.len() > MAX_HOST_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            bail!("host name `{name}`: use 1-{MAX_HOST_NAME} of [a-z0-9_-]");
        }
        if self.hosts.iter().any(|h| h.name == name) {
            bail!("host `{name}` already exists in lab {}", self.prefix);
        }
        let (v4, v4_len) = parse_lab_v4(ipv4, None)?;
        let v6 = ipv6.map(|s| parse_lab_v6(s, None)).transpose()?;
        for h in &self.hosts {
            if h.ipv4 == v4 || (v6.is_some() && h.ipv6 == v6.map(|x| x.0)) {
                bail!("host `{name}`: an address of host `{}` is reused", h.name);
            }
        }
        let number = u16::try_from(self.hosts.len() + 1).context("too many hosts")?;
        let mac = [2, 0, 0, 0, (number >> 8) as u8, number as u8];
        let ns = format!("{}-{name}", self.prefix);
        let port = format!("p-{name}");
        let sw = self.switch_ns.clone();
        self.add_netns(&ns)?;
        // Created in the switch namespace with its peer placed straight into the host's:
        // no interface ever exists in the root namespace, not even briefly.
        ip(&[
            "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "link",
            "set",
            "eth0",
            "address",
            &format_mac(&mac),
        ])?;
        self.exec_in(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.eth0.accept_dad=0",
            ],
        )?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "addr", "add", ipv4, "dev", "eth0"])?;
        if let Some(v6s) = ipv6 {
            ip(&["-n", &ns, "addr", "add", v6s, "dev", "eth0", "nodad"])?;
        }
        let host = Host {
            name: name.to_string(),
            netns: ns,
            mac,
            ipv4: v4,
            ipv6: v6.map(|x| x.0),
            number,
            ipv4_len: v4_len,
            ipv6_len: v6.map_or(0, |x| x.1),
            switch_port: port,
            switch_ns: sw,
            shared: self.shared.clone(),
        };
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// The host called `name`. Panics (naming the hosts there are) if there is none.
    pub fn host(&self, name: &str) -> &Host {
        self.try_host(name).unwrap_or_else(|| {
            let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
            panic!(
                "lab {} has no host `{name}` (hosts: {names:?})",
                self.prefix
            )
        })
    }

    /// The host called `name`, if any.
    pub fn try_host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Every host, in the order added.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The unique prefix of every namespace of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The switch namespace (holding `br0` and ports `p-<host>`), e.g. for `tcpdump -i br0`.
    pub fn switch_netns(&self) -> &str {
        &self.switch_ns
    }

    /// Every namespace this lab made (switch first).
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The lab's temp directory (logs), `/tmp/floatip-lab-<prefix>/`.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// A fresh path in the lab's temp directory, e.g. for a config file: `<dir>/NNN-<stem>`.
    pub fn path(&self, stem: &str) -> PathBuf {
        let p = self.shared.log_path(stem);
        p.with_extension("")
    }

    /// Runs `argv` in the switch namespace (stdout; non-zero exit is an error).
    pub fn switch_run(&self, argv: &[&str]) -> Result<String> {
        self.exec_in(&self.switch_ns, argv)
    }

    /// Starts `argv` in the switch namespace (e.g. `tcpdump -i br0`), stopped when the lab drops.
    pub fn switch_spawn(&self, argv: &[&str], log: Option<&Path>) -> Result<Proc> {
        spawn_in(&self.shared, &self.switch_ns, "switch", argv, log)
    }

    fn teardown(&mut self) {
        let procs: Vec<SharedChild> =
            std::mem::take(&mut *self.shared.procs.lock().unwrap_or_else(|e| e.into_inner()));
        stop_all(&procs, STOP_GRACE);
        let me = std::process::id();
        // Anything still inside our namespaces (a daemon's hook, a double fork) was started by
        // this lab, directly or not: SIGKILL it. Then delete the namespaces, hosts first.
        for ns in self.namespaces.iter().rev() {
            if let Ok(out) = ip(&["netns", "pids", ns]) {
                for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                    if pid != me && pid > 1 {
                        sys::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        for ns in std::mem::take(&mut self.namespaces).iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("floatip-lab: could not delete namespace {ns}: {e:#}");
            }
        }
    }

    fn dump_logs(&self) {
        let Ok(rd) = std::fs::read_dir(&self.shared.dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "log"))
        {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            eprintln!(
                "---- floatip-lab: last {} lines of {} ----",
                tail.len(),
                f.display()
            );
            for l in tail {
                eprintln!("  {l}");
            }
        }
    }
}

impl Lab {
    /// Keeps the lab's folder (configs and logs) when it is dropped, as `FLOATIP_LAB_KEEP=1` does:
    /// for a failure whose message points a person at the logs. Returns the folder.
    pub fn keep_logs(&mut self) -> &Path {
        self.keep = true;
        &self.shared.dir
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.teardown();
        if panicking {
            self.dump_logs();
        }
        if self.keep {
            eprintln!(
                "floatip-lab: FLOATIP_LAB_KEEP=1, keeping {}",
                self.shared.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.shared.dir);
        }
    }
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("hosts", &self.hosts)
            .field("dir", &self.shared.dir)
            .finish()
    }
}

pub(crate) fn spawn_in(
    shared: &Arc<Shared>,
    ns: &str,
    who: &str,
    argv: &[&str],
    log: Option<&Path>,
) -> Result<Proc> {
    let prog = argv.first().context("empty command line")?;
    let stem = format!(
        "{who}-{}",
        Path::new(prog)
            .file_name()
            .map_or("cmd".into(), |s| s.to_string_lossy())
    );
    let log = match log {
        Some(p) => p.to_path_buf(),
        None => shared.log_path(&stem),
    };
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(argv);
    let p = Proc::start(cmd, argv, &log)?;
    shared.register(p.shared());
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_names_short_and_safe() {
        assert_eq!(sanitize("my_test::Name-1", 16), "mytestname1");
        assert_eq!(sanitize("::", 16), "lab");
        assert_eq!(sanitize("abcdefghijklmnopqrstuvwxyz", 16).len(), 16);
    }
}
