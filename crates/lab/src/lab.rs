//! The lab: a switch namespace with a bridge, and hosts attached to it by veth pairs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::addr::{format_mac, parse_lab_cidr, parse_lab_ip, parse_lab_v4, parse_lab_v6};
use crate::proc::{run_checked, run_output, stop_all, Proc, SharedChild, COMMAND_TIMEOUT};
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

/// One host of a lab: a network namespace with `lo` and `eth0` on the lab's switch.
///
/// Cheap to clone; the clones refer to the same namespace. A `Host` outliving its [`Lab`] refers to
/// a namespace that no longer exists, and its methods then fail.
#[derive(Clone)]
pub struct Host {
    /// The name given to [`Lab::add_host`], e.g. "h1".
    pub name: String,
    /// The network namespace, for `ip netns exec` or `ip -n`.
    pub netns: String,
    /// eth0's MAC: 02:00:00:00:HH:LL where HHLL is the host number (1 for the first host added).
    pub mac: [u8; 6],
    /// eth0's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// eth0's IPv6 address, if one was given.
    pub ipv6: Option<Ipv6Addr>,
    /// 1-based number of the host within its lab.
    pub number: u16,
    ipv4_len: u8,
    ipv6_len: u8,
    switch_port: String,
    switch_ns: String,
    shared: Arc<Shared>,
}

/// Runs `ip ARGS...` in the root namespace's view, i.e. commands that name a namespace with `-n`.
fn ip(args: &[&str]) -> Result<String> {
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

fn spawn_in(
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

/// One address of an interface, from `ip -o addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// "192.0.2.97/32"
    pub cidr: String,
    /// The address alone.
    pub ip: IpAddr,
    /// "global", "link", "host"
    pub scope: String,
    /// Remaining valid lifetime in seconds; `None` = forever.
    pub valid_lft: Option<u64>,
    /// Remaining preferred lifetime in seconds; `None` = forever.
    pub preferred_lft: Option<u64>,
    /// Other flags `ip` printed (e.g. "nodad", "secondary", "deprecated").
    pub flags: Vec<String>,
}

fn parse_lft(s: &str) -> Option<u64> {
    s.strip_suffix("sec").and_then(|n| n.parse().ok())
}

/// Parses `ip -o addr show` lines.
pub(crate) fn parse_addr_lines(text: &str) -> Vec<AddrInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let toks: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '\\')
            .filter(|t| !t.is_empty())
            .collect();
        let Some(i) = toks.iter().position(|t| *t == "inet" || *t == "inet6") else {
            continue;
        };
        let Some(cidr) = toks.get(i + 1) else {
            continue;
        };
        let Ok(ip) = cidr.split('/').next().unwrap_or("").parse::<IpAddr>() else {
            continue;
        };
        let mut info = AddrInfo {
            cidr: cidr.to_string(),
            ip,
            scope: String::new(),
            valid_lft: None,
            preferred_lft: None,
            flags: Vec::new(),
        };
        let mut j = i + 2;
        while j < toks.len() {
            match toks[j] {
                "scope" | "valid_lft" | "preferred_lft" | "brd" | "peer" | "metric"
                    if j + 1 < toks.len() =>
                {
                    let v = toks[j + 1];
                    match toks[j] {
                        "scope" => info.scope = v.to_string(),
                        "valid_lft" => info.valid_lft = parse_lft(v),
                        "preferred_lft" => info.preferred_lft = parse_lft(v),
                        _ => {}
                    }
                    j += 2;
                }
                "eth0" => j += 1,
                f => {
                    info.flags.push(f.to_string());
                    j += 1;
                }
            }
        }
        out.push(info);
    }
    out
}

impl Host {
    /// Runs `argv` inside the host (`ip netns exec <ns> argv...`, bounded to 30 s) and returns its
    /// stdout. A non-zero exit is an error quoting the command line and its stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.netns];
        full.extend_from_slice(argv);
        run_checked(&full, COMMAND_TIMEOUT)
    }

    /// Runs `argv` inside the host and returns its output whatever the exit status.
    pub fn output(&self, argv: &[&str]) -> Result<Output> {
        let mut full = vec!["ip", "netns", "exec", &self.netns];
        full.extend_from_slice(argv);
        run_output(&full, COMMAND_TIMEOUT)
    }

    /// `ip -n <ns> ARGS...` (faster than `run(["ip", ...])`): stdout, or an error with stderr.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Starts `argv` in the host's namespace with stdout and stderr going to `log` (default: a
    /// fresh file in the lab's temp dir, see [`Proc::log_path`]). The lab stops it when dropped;
    /// dropping the `Proc` does not.
    pub fn spawn(&self, argv: &[&str], log: Option<&Path>) -> Result<Proc> {
        spawn_in(&self.shared, &self.netns, &self.name, argv, log)
    }

    /// Host loss: sets the host's port on the switch down, so its eth0 loses carrier and no
    /// frame passes either way. Everything inside the host keeps running.
    pub fn link_down(&self) -> Result<()> {
        ip(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.switch_port,
            "down",
        ])
        .map(drop)
    }

    /// Undoes [`link_down`](Self::link_down).
    pub fn link_up(&self) -> Result<()> {
        ip(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.switch_port,
            "up",
        ])
        .map(drop)
    }

    /// eth0's MAC as "02:00:00:00:00:01".
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }

    /// "192.0.2.1/24", as given to `add_host`.
    pub fn ipv4_cidr(&self) -> String {
        format!("{}/{}", self.ipv4, self.ipv4_len)
    }

    /// "2001:db8::1/64", as given to `add_host`.
    pub fn ipv6_cidr(&self) -> Option<String> {
        self.ipv6.map(|a| format!("{a}/{}", self.ipv6_len))
    }

    /// eth0's addresses with their lifetimes and flags.
    pub fn address_info(&self) -> Result<Vec<AddrInfo>> {
        Ok(parse_addr_lines(
            &self.ip(&["-o", "addr", "show", "dev", "eth0"])?,
        ))
    }

    /// eth0's addresses as "ADDR/LEN" (both families, link-local included).
    pub fn addresses(&self) -> Result<Vec<String>> {
        Ok(self.address_info()?.into_iter().map(|a| a.cidr).collect())
    }

    /// Whether eth0 has `addr` ("192.0.2.97" or "192.0.2.97/24": the length is ignored).
    /// False if the address cannot be parsed or `ip` fails.
    pub fn has_address(&self, addr: &str) -> bool {
        let Ok(want) = addr.split('/').next().unwrap_or("").parse::<IpAddr>() else {
            return false;
        };
        self.address_info()
            .is_ok_and(|v| v.iter().any(|a| a.ip == want))
    }

    /// Adds a lab address to eth0 (refusing anything outside the lab ranges); IPv6 with nodad.
    pub fn add_address(&self, cidr: &str) -> Result<()> {
        let (ip, len) = parse_lab_cidr(cidr)?;
        let c = format!("{ip}/{len}");
        let mut args = vec!["addr", "add", c.as_str(), "dev", "eth0"];
        if ip.is_ipv6() {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Removes an address from eth0.
    pub fn del_address(&self, cidr: &str) -> Result<()> {
        let (ip, len) = parse_lab_cidr(cidr)?;
        self.ip(&["addr", "del", &format!("{ip}/{len}"), "dev", "eth0"])
            .map(drop)
    }

    /// The MAC the host's neighbour table holds for `addr`, if it has a usable entry (none for
    /// INCOMPLETE or FAILED).
    pub fn neigh_mac(&self, addr: &str) -> Option<[u8; 6]> {
        let ip = parse_lab_ip(addr).ok()?.to_string();
        let out = self.ip(&["neigh", "show", "to", &ip, "dev", "eth0"]).ok()?;
        let line = out.lines().next()?;
        let mut toks = line.split_whitespace();
        toks.find(|t| *t == "lladdr")?;
        crate::addr::parse_mac(toks.next()?)
    }

    /// Empties the host's neighbour (ARP/ND) table on eth0.
    pub fn neigh_flush(&self) -> Result<()> {
        self.ip(&["neigh", "flush", "dev", "eth0"]).map(drop)
    }

    /// One ping (`ping -c 1 -W 1`): whether `target` answered within a second.
    pub fn can_ping(&self, target: &str) -> bool {
        if parse_lab_ip(target).is_err() {
            return false;
        }
        self.output(&["ping", "-n", "-q", "-c", "1", "-W", "1", target])
            .is_ok_and(|o| o.status.success())
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("netns", &self.netns)
            .field("mac", &self.mac_string())
            .field("ipv4", &self.ipv4_cidr())
            .field("ipv6", &self.ipv6_cidr())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_o_addr() {
        let text = "2: eth0    inet 192.0.2.1/24 scope global eth0\\       valid_lft forever preferred_lft forever\n\
2: eth0    inet 192.0.2.97/32 scope global eth0\\       valid_lft 9sec preferred_lft 9sec\n\
2: eth0    inet6 2001:db8::1/64 scope global nodad \\       valid_lft forever preferred_lft forever\n\
2: eth0    inet6 fe80::ff:fe00:1/64 scope link \\       valid_lft forever preferred_lft forever\n";
        let v = parse_addr_lines(text);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].cidr, "192.0.2.1/24");
        assert_eq!(v[0].valid_lft, None);
        assert_eq!(v[1].valid_lft, Some(9));
        assert_eq!(v[1].preferred_lft, Some(9));
        assert_eq!(v[2].flags, vec!["nodad".to_string()]);
        assert_eq!(v[3].scope, "link");
    }

    #[test]
    fn sanitize_keeps_names_short_and_safe() {
        assert_eq!(sanitize("my_test::Name-1", 16), "mytestname1");
        assert_eq!(sanitize("::", 16), "lab");
        assert_eq!(sanitize("abcdefghijklmnopqrstuvwxyz", 16).len(), 16);
    }
}
