//! floatip's lab: real networks of hosts on one machine, in Linux network namespaces, for
//! floatip's integration tests, `floatip demo` and the benchmarks.
//!
//! ```no_run
//! use std::time::Duration;
//! use floatip_lab::{require_root, Lab, Pinger};
//!
//! if !require_root("two_hosts") { return Ok(()); }
//! let mut lab = Lab::new("two_hosts")?;
//! let h1 = lab.add_host("h1", "192.0.2.1/24", Some("2001:db8::1/64"))?;
//! let c = lab.add_host("c", "192.0.2.100/24", None)?;
//! let daemon = h1.spawn(&["sleep", "60"], None)?;      // stopped when `lab` drops
//! let pinger = Pinger::start(&c, "192.0.2.1", Duration::from_millis(2))?;
//! h1.link_down()?;                                     // h1 vanishes from the LAN
//! std::thread::sleep(Duration::from_millis(300));
//! h1.link_up()?;
//! let report = pinger.stop();
//! println!("longest gap {:?}", report.longest_gap);
//! # drop(daemon);
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Safety rules it enforces: nothing is created in the root namespace (the bridge lives in a
//! "switch" namespace and veth pairs are created inside the lab's namespaces); only addresses from
//! 192.0.2.0/24 and 2001:db8::/64 are accepted; namespace names are unique per lab (test name,
//! pid, counter); every wait is bounded; dropping a [`Lab`] (also on panic) stops its processes
//! and deletes its namespaces. See README.md.

mod addr;
mod addrwatch;
mod etcd;
mod host;
mod keepalived;
mod lab;
mod owners;
mod ping;
mod proc;
mod sys;
mod vrrp_wire;

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

pub use addrwatch::{AddrWatch, MAX_WATCH_EVENTS};
pub use owners::{
    intersect, normalize, ownership, subtract, total, Ownership, SharedSpan, Span, Timeline,
    WatchEvent, WatchKind,
};

pub use addr::{
    format_mac, is_lab_address, parse_lab_cidr, parse_lab_ip, parse_lab_v4, parse_lab_v6, parse_mac,
};
pub use etcd::{etcd_unavailable, require_etcd, EtcdCerts, EtcdCluster, ETCD, ETCD_SETTLE};
pub use host::{AddrInfo, Host};
pub use keepalived::{spawn_keepalived, KEEPALIVED};
pub use lab::{Lab, MAX_HOST_NAME, STOP_GRACE};
pub use ping::{Gap, PingReport, Pinger, Reply};
pub use proc::{run_output, Proc, COMMAND_TIMEOUT};
pub use vrrp_wire::{ipv4_packet, Captured, VrrpWire, VRRP_GROUP};

/// Why labs cannot run here, or `None` if they can. Checked once per process.
pub fn lab_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        if sys::euid() != 0 {
            return Some("lab tests need root (CAP_NET_ADMIN)".into());
        }
        let cap_eff = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            });
        if let Some(caps) = cap_eff {
            const CAP_NET_ADMIN: u64 = 12;
            const CAP_SYS_ADMIN: u64 = 21;
            for (bit, name) in [
                (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
                (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            ] {
                if caps & (1 << bit) == 0 {
                    return Some(format!(
                        "lab tests need root with {name} (network namespaces); this root lacks it: \
                         use a privileged container"
                    ));
                }
            }
        }
        match proc::run_output(&["ip", "-V"], Duration::from_secs(5)) {
            Ok(o) if o.status.success() => None,
            _ => Some(
                "lab tests need the `ip` command (iproute2), which is not in PATH: \
                 apt-get install iproute2"
                    .into(),
            ),
        }
    })
    .as_deref()
}

pub(crate) fn check_tools() -> Result<()> {
    if let Some(why) = lab_unavailable() {
        bail!("{why}");
    }
    Ok(())
}

/// Whether labs can run here. If they cannot, prints a loud "SKIPPED <test_name>: <why>" and
/// returns false, so the test can return early; but when the environment says skips are not
/// acceptable (`CI=true` or `CI=1`, or `FLOATIP_LAB_REQUIRED=1`) it panics instead, so a CI job
/// cannot pass by skipping.
pub fn require_root(test_name: &str) -> bool {
    require(
        test_name,
        lab_unavailable(),
        "run as root, e.g. `sudo -E cargo test`",
    )
}

/// Whether a lab test can run, given what it lacks (`missing`, `None` when nothing): the rule of
/// [`require_root`] for any prerequisite (a tool, a package). `hint` says how to provide it.
pub fn require(test_name: &str, missing: Option<&str>, hint: &str) -> bool {
    let Some(why) = missing else {
        return true;
    };
    let strict =
        |k: &str| std::env::var(k).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if strict("CI") || strict("FLOATIP_LAB_REQUIRED") {
        panic!(
            "{test_name}: {why}; a skipped lab test fails when CI or FLOATIP_LAB_REQUIRED is set"
        );
    }
    // Written to the real stderr, not through eprintln!, which the test harness captures and hides
    // for passing tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         ************************************************************************\n\
         *** SKIPPED {test_name}: {why}\n\
         *** {hint}; set CI=true to make this fail\n\
         ************************************************************************\n"
    );
    false
}

/// Polls `f` every `step` until it returns true (then true) or `timeout` has passed (then false).
/// Also returns false, early, once [`interrupted`] is set.
pub fn wait_until(timeout: Duration, step: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline || interrupted() {
            return false;
        }
        std::thread::sleep(step.min(deadline - now).max(Duration::from_micros(100)));
    }
}

/// Now, as unix seconds (the clock ping's `-D` timestamps use).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Installs a SIGINT/SIGTERM handler that only records the signal (a signal handler cannot
/// safely stop processes or delete namespaces: that takes allocation, locks and fork).
/// Long-running users (`floatip demo`, benchmarks) poll [`interrupted`] in their loops and, when it
/// is set, return normally so their [`Lab`] is dropped and cleans up. The handler is one-shot: a
/// second Ctrl-C kills the process at once (leaving namespaces behind; `ip netns list` shows them).
/// [`wait_until`] returns early once interrupted.
pub fn install_signal_cleanup() -> Result<()> {
    sys::install_handlers()?;
    Ok(())
}

/// Sends `sig` to one process that is not a [`Proc`] but was started by this run, directly or not
/// (e.g. a daemon's own child, its pid read from /proc a moment before); false if kill(2) failed.
/// Only one positive pid: 0 and negative (process-group) pids are refused.
pub fn kill_pid(pid: u32, sig: i32) -> bool {
    sys::kill(pid, sig)
}

/// Whether SIGINT or SIGTERM arrived since [`install_signal_cleanup`].
pub fn interrupted() -> bool {
    sys::interrupted_signal().is_some()
}

/// The signal that arrived since [`install_signal_cleanup`], if any.
pub fn interrupted_by() -> Option<i32> {
    sys::interrupted_signal()
}
