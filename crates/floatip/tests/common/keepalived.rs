//! keepalived as the tests' VRRP peer: its config, starting it in a lab host, and reading both
//! sides' logs for rejected adverts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use floatip_lab::{require, spawn_keepalived, wait_until, Host, Lab, Proc, KEEPALIVED};

use super::{write_file, SETTLE, STEP, VIP4};

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
    /// 2 or 3 (`vrrp_version` in global_defs; 0: not in the file, keepalived's default, 2).
    pub version: u8,
    /// keepalived's `advert_int`, in seconds: "1", or "0.1" with VRRPv3.
    pub advert_int: String,
    /// `virtual_ipaddress` entries, e.g. "192.0.2.97/24".
    pub vips: Vec<String>,
    pub preempt: bool,
    /// Lines written inside the `vrrp_instance` block as they are (e.g. an `auth_hmac { ... }`).
    pub extra: String,
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
            extra: String::new(),
            use_vmac: false,
        }
    }
}

/// keepalived.conf text: `state BACKUP` (priority decides), interface eth0.
pub fn keepalived_config(router_id: &str, k: &KaInstance) -> String {
    let version = match k.version {
        0 => String::new(),
        v => format!("  vrrp_version {v}\n"),
    };
    let mut s = format!(
        "global_defs {{\n  router_id {router_id}\n{version}  vrrp_garp_master_repeat 5\n  \
         vrrp_garp_master_delay 1\n}}\n\n",
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
    s.push_str("  }\n");
    s.push_str(&k.extra);
    s.push_str("}\n");
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

    /// Waits (at most [`SETTLE`]) until keepalived's log says `needle`; fails the test with the log
    /// when it never does.
    pub fn await_log(&self, needle: &str) {
        assert!(
            wait_until(SETTLE, STEP, || self.log().contains(needle)),
            "keepalived on {} never logged {needle:?}:\n{}",
            self.host.name,
            self.log()
        );
    }
}

/// [`start_keepalived`], then waits until keepalived says it is backup.
pub fn start_keepalived_backup(lab: &Lab, host: &Host, k: &KaInstance) -> Keepalived {
    let ka = start_keepalived(lab, host, k);
    ka.await_log("Entering BACKUP STATE");
    ka
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

/// Where keepalived 2.4.3 (upstream, the first with `auth_hmac`) is looked for when
/// `FLOATIP_KEEPALIVED_UPSTREAM` is not set: where `shared/vendor/build-keepalived.sh` installs it.
pub const KEEPALIVED_UPSTREAM_DEFAULT: &str = "/opt/keepalived-2.4.3/sbin/keepalived";

/// keepalived 2.4.3's binary: `$FLOATIP_KEEPALIVED_UPSTREAM`, else [`KEEPALIVED_UPSTREAM_DEFAULT`].
pub fn keepalived_upstream() -> PathBuf {
    std::env::var_os("FLOATIP_KEEPALIVED_UPSTREAM")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(KEEPALIVED_UPSTREAM_DEFAULT), PathBuf::from)
}

/// The script that builds keepalived 2.4.3, if this checkout has it beside it (`../shared/vendor`
/// of the repository, or /work/shared/vendor).
fn vendor_script() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        repo.join("../shared/vendor/build-keepalived.sh"),
        PathBuf::from("/work/shared/vendor/build-keepalived.sh"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// Whether keepalived 2.4.3 is here. Missing: a loud SKIPPED naming it; under `CI=true` a failure
/// only when the vendor script that builds it is on this machine (`.ci/run` builds it then), since
/// CI cannot be failed for a peer that is not on the machine.
pub fn require_keepalived_upstream(test_name: &str) -> bool {
    let bin = keepalived_upstream();
    if bin.exists() {
        return true;
    }
    let why = format!(
        "the peer keepalived 2.4.3 (upstream, for auth_hmac) is not at {} (FLOATIP_KEEPALIVED_UPSTREAM)",
        bin.display()
    );
    let hint = "build it with shared/vendor/build-keepalived.sh and export FLOATIP_KEEPALIVED_UPSTREAM=<the path it prints>";
    if vendor_script().is_some() {
        return require(test_name, Some(&why), hint);
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         ************************************************************************\n\
         *** SKIPPED {test_name}: {why}\n\
         *** and no build-keepalived.sh on this machine; {hint}\n\
         ************************************************************************\n"
    );
    false
}

/// Starts keepalived 2.4.3 ([`keepalived_upstream`]) in `host` with `k`'s config: in the
/// foreground, logging to the console (the Proc log), no syslog, with its pid files in the lab dir
/// (this build has no checker process, so no `-P` or `-c`).
pub fn start_keepalived_upstream(lab: &Lab, host: &Host, k: &KaInstance) -> Keepalived {
    let conf = write_file(
        lab,
        &format!("keepalived243-{}.conf", host.name),
        &keepalived_config(&host.name, k),
    );
    let log = lab.path(&format!("keepalived243-{}.log", host.name));
    let pid = |n: &str| lab.path(&format!("keepalived243-{}-{n}.pid", host.name));
    let (bin, pp, rp) = (keepalived_upstream(), pid("main"), pid("vrrp"));
    let s = |p: &Path| p.to_str().expect("lab paths are UTF-8").to_string();
    let argv = [
        s(&bin),
        "-n".into(),
        "-l".into(),
        "-D".into(),
        "-G".into(),
        "-f".into(),
        s(&conf),
        "-p".into(),
        s(&pp),
        "-r".into(),
        s(&rp),
    ];
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let proc = host
        .spawn(&argv, Some(&log))
        .unwrap_or_else(|e| panic!("cannot start keepalived 2.4.3 on {}: {e:#}", host.name));
    Keepalived {
        host: host.clone(),
        proc,
        conf,
    }
}
