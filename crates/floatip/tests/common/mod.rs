//! Shared helpers for the end-to-end lab tests (`lab_vrrp.rs`, `interop_keepalived.rs`): writing
//! floatip and keepalived configs, starting the daemons inside a lab host, and waiting for (or
//! checking) who holds a VIP.
//!
//! Every wait is bounded. Helpers panic with a readable message on failure (rather than returning an
//! error) so the `Lab` is dropped during a panic and prints the tail of every daemon's log.
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use floatip_lab::{Host, Lab, Proc};

/// The IPv4 service address every test moves around.
pub const VIP4: &str = "192.0.2.97";
/// The IPv6 service address.
pub const VIP6: &str = "2001:db8::97";

/// The floatip binary under test.
pub fn floatip_bin() -> &'static str {
    env!("CARGO_BIN_EXE_floatip")
}

/// Generous bound for elections and failovers: the suite runs its tests in parallel on small
/// machines, so this is "something is wrong", never a measurement.
pub const SETTLE: Duration = Duration::from_secs(15);

/// Poll step for ownership waits.
pub const STEP: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// floatip configuration

/// One `[[instance]]` of a floatip config.
#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
    pub advert_interval: String,
    pub preempt: bool,
    pub addresses: Vec<String>,
    pub unicast_peers: Vec<String>,
    /// Extra lines appended verbatim inside the `[[instance]]` table.
    pub extra: String,
}

impl Instance {
    /// VRRPv3 for 192.0.2.97/24 on eth0, VRID 51, adverts every 100 ms.
    pub fn v4(priority: u8) -> Instance {
        Instance {
            name: "files".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority,
            version: 3,
            advert_interval: "100ms".into(),
            preempt: true,
            addresses: vec![format!("{VIP4}/24")],
            unicast_peers: Vec::new(),
            extra: String::new(),
        }
    }

    /// VRRPv3 for 2001:db8::97/64 on eth0, VRID 52, adverts every 100 ms.
    pub fn v6(priority: u8) -> Instance {
        Instance {
            name: "files6".into(),
            vrid: 52,
            addresses: vec![format!("{VIP6}/64")],
            ..Instance::v4(priority)
        }
    }

    pub fn interval(mut self, d: &str) -> Instance {
        self.advert_interval = d.into();
        self
    }

    pub fn version(mut self, v: u8) -> Instance {
        self.version = v;
        self
    }

    pub fn preempt(mut self, p: bool) -> Instance {
        self.preempt = p;
        self
    }

    pub fn unicast(mut self, peers: &[&str]) -> Instance {
        self.unicast_peers = peers.iter().map(|s| s.to_string()).collect();
        self
    }

    fn write_to(&self, s: &mut String) {
        let list = |v: &[String]| {
            v.iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            s,
            "\n[[instance]]\nname = \"{}\"\ninterface = \"{}\"\nvrid = {}\npriority = {}\nversion = {}\n\
             advert_interval = \"{}\"\npreempt = {}\naddresses = [{}]\n",
            self.name,
            self.interface,
            self.vrid,
            self.priority,
            self.version,
            self.advert_interval,
            self.preempt,
            list(&self.addresses),
        );
        if !self.unicast_peers.is_empty() {
            let _ = writeln!(s, "unicast_peers = [{}]", list(&self.unicast_peers));
        }
        s.push_str(&self.extra);
    }
}

/// The text of a floatip config for `host` in `lab`: `[daemon]` with a state dir inside the lab's
/// temp dir (never /var/lib), then the instances.
pub fn floatip_config(lab: &Lab, host: &Host, instances: &[Instance]) -> String {
    let state = lab.path(&format!("{}-state", host.name));
    let mut s = format!(
        "# floatip test config for {}\n[daemon]\nstate_dir = \"{}\"\n",
        host.name,
        state.display()
    );
    for i in instances {
        i.write_to(&mut s);
    }
    s
}

/// Writes `text` to `<lab dir>/<stem>` and returns the path.
pub fn write_file(lab: &Lab, stem: &str, text: &str) -> PathBuf {
    let path = lab.path(stem);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

// ---------------------------------------------------------------------------------------------
// floatip daemons

/// A floatip daemon running inside a lab host.
pub struct Floatip {
    pub host: Host,
    pub proc: Proc,
    pub conf: PathBuf,
    pub socket: PathBuf,
}

impl Floatip {
    /// Its log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Waits (bounded) until its log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        floatip_lab::wait_until(timeout, STEP, || self.log().contains(needle))
    }
}

/// Starts `floatip --socket S run --config C` in `host` with `RUST_LOG=<rust_log>`; the config,
/// socket and log live in the lab's temp dir. The lab stops it when dropped.
pub fn start_floatip_log(
    lab: &Lab,
    host: &Host,
    instances: &[Instance],
    rust_log: &str,
) -> Floatip {
    let conf = write_file(
        lab,
        &format!("{}.toml", host.name),
        &floatip_config(lab, host, instances),
    );
    let socket = lab.path(&format!("{}.sock", host.name));
    let log = lab.path(&format!("floatip-{}.log", host.name));
    let env = format!("RUST_LOG={rust_log}");
    let argv = [
        "env",
        env.as_str(),
        floatip_bin(),
        "--socket",
        path_str(&socket),
        "run",
        "--config",
        path_str(&conf),
    ];
    let proc = host
        .spawn(&argv, Some(&log))
        .unwrap_or_else(|e| panic!("cannot start floatip on {}: {e:#}", host.name));
    Floatip {
        host: host.clone(),
        proc,
        conf,
        socket,
    }
}

/// [`start_floatip_log`] at the default log level (info).
pub fn start_floatip(lab: &Lab, host: &Host, instances: &[Instance]) -> Floatip {
    start_floatip_log(lab, host, instances, "info")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("lab paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Ownership

/// Names of the hosts among `hosts` whose eth0 has `vip`.
pub fn holders(hosts: &[&Host], vip: &str) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| h.has_address(vip))
        .map(|h| h.name.clone())
        .collect()
}

/// Waits until `owner` holds `vip` and no other host of `hosts` does. Panics (naming who holds it)
/// after `timeout`.
pub fn wait_sole_owner(hosts: &[&Host], owner: &Host, vip: &str, timeout: Duration) {
    let mut last = Vec::new();
    let ok = floatip_lab::wait_until(timeout, STEP, || {
        last = holders(hosts, vip);
        last.len() == 1 && last[0] == owner.name
    });
    assert!(
        ok,
        "expected {} to be the only holder of {vip} within {timeout:?}; holders: {last:?}",
        owner.name
    );
}

/// Waits until exactly one host of `hosts` holds `vip` and returns it.
pub fn wait_single_owner<'a>(hosts: &[&'a Host], vip: &str, timeout: Duration) -> &'a Host {
    let mut last = Vec::new();
    let ok = floatip_lab::wait_until(timeout, STEP, || {
        last = holders(hosts, vip);
        last.len() == 1
    });
    assert!(
        ok,
        "no single owner of {vip} within {timeout:?}; holders: {last:?}"
    );
    hosts
        .iter()
        .find(|h| h.name == last[0])
        .copied()
        .expect("holder is one of hosts")
}

/// Samples every `step` for `duration`: every sample must show `owner`, and only `owner`, holding
/// `vip`. (Exactly one owner, observed over several adverts.)
pub fn assert_sole_owner_for(
    hosts: &[&Host],
    owner: &Host,
    vip: &str,
    duration: Duration,
    step: Duration,
) {
    let end = Instant::now() + duration;
    let mut samples = 0u32;
    while Instant::now() < end {
        let h = holders(hosts, vip);
        samples += 1;
        assert!(
            h.len() == 1 && h[0] == owner.name,
            "sample {samples}: expected only {} to hold {vip}, holders: {h:?}",
            owner.name
        );
        std::thread::sleep(step);
    }
    assert!(samples > 0);
}

/// Waits until `host` does not hold `vip`.
pub fn wait_not_holding(host: &Host, vip: &str, timeout: Duration) -> bool {
    floatip_lab::wait_until(timeout, STEP, || !host.has_address(vip))
}

/// Which of `hosts` a MAC belongs to, for messages.
pub fn mac_name(hosts: &[&Host], mac: Option<[u8; 6]>) -> String {
    match mac {
        None => "(no entry)".into(),
        Some(m) => hosts
            .iter()
            .find(|h| h.mac == m)
            .map_or_else(|| floatip_lab::format_mac(&m), |h| h.name.clone()),
    }
}

/// Waits (bounded) until the client's neighbour entry for `vip` is `owner`'s MAC.
pub fn wait_client_points_at(c: &Host, vip: &str, owner: &Host, all: &[&Host]) {
    let mut last = None;
    let ok = floatip_lab::wait_until(Duration::from_secs(5), STEP, || {
        last = c.neigh_mac(vip);
        last == Some(owner.mac)
    });
    assert!(
        ok,
        "the client's neighbour entry for {vip} should point at {} ({}), it points at {}",
        owner.name,
        owner.mac_string(),
        mac_name(all, last)
    );
}

/// Waits (bounded) until the client gets an answer from `vip` and resolves it to `owner`.
pub fn wait_client_reaches(c: &Host, vip: &str, owner: &Host, all: &[&Host]) {
    let mut last = None;
    let ok = floatip_lab::wait_until(Duration::from_secs(8), STEP, || {
        let ok = c.can_ping(vip);
        last = c.neigh_mac(vip);
        ok && last == Some(owner.mac)
    });
    assert!(
        ok,
        "the client should reach {vip} at {} ({}); its neighbour entry points at {}",
        owner.name,
        owner.mac_string(),
        mac_name(all, last)
    );
}

// ---------------------------------------------------------------------------------------------
// keepalived

/// Debian's keepalived.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// Whether keepalived is installed. If not: a loud SKIPPED and false, but with `CI=true` (or
/// `FLOATIP_LAB_REQUIRED=1`) a panic, since `.ci/run` installs it.
pub fn require_keepalived(test_name: &str) -> bool {
    if Path::new(KEEPALIVED).exists() {
        return true;
    }
    let strict =
        |k: &str| std::env::var(k).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if strict("CI") || strict("FLOATIP_LAB_REQUIRED") {
        panic!(
            "{test_name}: {KEEPALIVED} is missing (apt-get install keepalived); CI must not skip"
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         ************************************************************************\n\
         *** SKIPPED {test_name}: {KEEPALIVED} not found\n\
         *** apt-get install keepalived; set CI=true to make this fail\n\
         ************************************************************************\n"
    );
    false
}

/// One keepalived `vrrp_instance`.
#[derive(Clone, Debug)]
pub struct KaInstance {
    pub vrid: u8,
    pub priority: u8,
    /// 2 or 3 (`vrrp_version` in global_defs).
    pub version: u8,
    /// keepalived's `advert_int`, in seconds: "1", or "0.1" with VRRPv3.
    pub advert_int: String,
    /// `virtual_ipaddress` entries, e.g. "192.0.2.97/24".
    pub vips: Vec<String>,
    pub preempt: bool,
}

impl KaInstance {
    pub fn v4(priority: u8, version: u8, advert_int: &str) -> KaInstance {
        KaInstance {
            vrid: 51,
            priority,
            version,
            advert_int: advert_int.into(),
            vips: vec![format!("{VIP4}/24")],
            preempt: true,
        }
    }
}

/// keepalived.conf text: `state BACKUP` (priority decides), interface eth0.
pub fn keepalived_config(router_id: &str, k: &KaInstance) -> String {
    let mut s = format!(
        "global_defs {{\n  router_id {router_id}\n  vrrp_version {}\n  vrrp_garp_master_repeat 5\n  \
         vrrp_garp_master_delay 1\n}}\n\n",
        k.version
    );
    let _ = write!(
        s,
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {}\n  \
         priority {}\n  advert_int {}\n{}  virtual_ipaddress {{\n",
        k.vrid,
        k.priority,
        k.advert_int,
        if k.preempt { "" } else { "  nopreempt\n" }
    );
    for v in &k.vips {
        let _ = writeln!(s, "    {v}");
    }
    s.push_str("  }\n}\n");
    s
}

/// keepalived running in a lab host (parent plus VRRP child; the lab's cleanup reaches both).
pub struct Keepalived {
    pub host: Host,
    pub proc: Proc,
    pub conf: PathBuf,
}

impl Keepalived {
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// Starts `keepalived -n -l -D -G -P -f CONF -p -r -c` (foreground, log to the console = the
/// Proc log, no syslog, VRRP only, pid files in the lab dir) in `host`.
pub fn start_keepalived(lab: &Lab, host: &Host, k: &KaInstance) -> Keepalived {
    let conf = write_file(
        lab,
        &format!("keepalived-{}.conf", host.name),
        &keepalived_config(&host.name, k),
    );
    let pid = |n: &str| lab.path(&format!("keepalived-{}-{n}.pid", host.name));
    let (pp, rp, cp) = (pid("main"), pid("vrrp"), pid("checkers"));
    let log = lab.path(&format!("keepalived-{}.log", host.name));
    let argv = [
        KEEPALIVED,
        "-n",
        "-l",
        "-D",
        "-G",
        "-P",
        "-f",
        path_str(&conf),
        "-p",
        path_str(&pp),
        "-r",
        path_str(&rp),
        "-c",
        path_str(&cp),
    ];
    let proc = host
        .spawn(&argv, Some(&log))
        .unwrap_or_else(|e| panic!("cannot start keepalived on {}: {e:#}", host.name));
    Keepalived {
        host: host.clone(),
        proc,
        conf,
    }
}

/// Lines of a floatip debug log that report a dropped advert for any reason other than our own
/// packet looping back.
pub fn foreign_drops(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("dropped an advert"))
        .filter(|l| !l.contains("our own packet"))
        .map(str::to_string)
        .collect()
}

/// Lines of a keepalived log where it rejected a peer's advert.
pub fn keepalived_rejections(log: &str) -> Vec<String> {
    const BAD: [&str; 6] = [
        "Invalid VRRPv3 checksum",
        "Invalid VRRPv2 checksum",
        "wrong version",
        "invalid TTL",
        "advertisement interval mismatch",
        "Expected ",
    ];
    log.lines()
        .filter(|l| BAD.iter().any(|b| l.contains(b)))
        .map(str::to_string)
        .collect()
}
