//! keepalived as the tests' VRRP peer: its config, starting it in a lab host, and reading both
//! sides' logs for rejected adverts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use floatip_lab::{require, spawn_keepalived, Host, Lab, Proc, KEEPALIVED};

use super::{write_file, VIP4};

/// Whether keepalived is installed: [`require`]'s rule (a loud SKIPPED, or a failure under
/// `CI=true`, since `.ci/run` installs it).
pub fn require_keepalived(test_name: &str) -> bool {
    let missing = (!Path::new(KEEPALIVED).exists()).then(|| format!("{KEEPALIVED} not found"));
    require(test_name, missing.as_deref(), "apt-get install keepalived")
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
    /// `use_vmac` (the virtual MAC on the default interface `vrrp.{vrid}`).
    pub use_vmac: bool,
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
            use_vmac: false,
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
         priority {}\n  advert_int {}\n{}{}  virtual_ipaddress {{\n",
        k.vrid,
        k.priority,
        k.advert_int,
        if k.preempt { "" } else { "  nopreempt\n" },
        if k.use_vmac { "  use_vmac\n" } else { "" },
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

/// Writes the config and starts keepalived in `host` ([`spawn_keepalived`]: foreground, log to the
/// console = the Proc log, no syslog, VRRP only, pid files in the lab dir).
pub fn start_keepalived(lab: &Lab, host: &Host, k: &KaInstance) -> Keepalived {
    let conf = write_file(
        lab,
        &format!("keepalived-{}.conf", host.name),
        &keepalived_config(&host.name, k),
    );
    let log = lab.path(&format!("keepalived-{}.log", host.name));
    let proc = spawn_keepalived(host, &conf, lab.dir(), &log)
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
