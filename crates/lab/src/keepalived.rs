//! keepalived as a lab peer: how the tests and the benchmarks start it inside a host.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{Host, Proc};

/// Debian's keepalived.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// Starts `keepalived -n -l -D -G -P -f CONF -p -r -c` in `host`: in the foreground, logging to the
/// console (that is, to `log`), no syslog, VRRP only, with its three pid files
/// (`keepalived-<host>-{main,vrrp,checkers}.pid`) in `pid_dir`. The lab stops it (the parent and
/// its VRRP child) when dropped.
pub fn spawn_keepalived(host: &Host, conf: &Path, pid_dir: &Path, log: &Path) -> Result<Proc> {
    let pid = |n: &str| pid_dir.join(format!("keepalived-{}-{n}.pid", host.name));
    let (pp, rp, cp) = (pid("main"), pid("vrrp"), pid("checkers"));
    let s = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .context("keepalived paths are UTF-8")
    };
    let (conf, pp, rp, cp) = (s(conf)?, s(&pp)?, s(&rp)?, s(&cp)?);
    host.spawn(
        &[
            KEEPALIVED, "-n", "-l", "-D", "-G", "-P", "-f", &conf, "-p", &pp, "-r", &rp, "-c", &cp,
        ],
        Some(log),
    )
}
