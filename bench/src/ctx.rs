//! The run's context and lab plumbing shared by every scenario: `Ctx` (options, findings), a fresh
//! lab of h1/h2/client, the clock, Ctrl-C-aware sleeps and bounded waits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

use floatip_lab::{Host, Lab};

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn check_interrupted() -> Result<()> {
    if floatip_lab::interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, waking every 50 ms to notice Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let deadline = Instant::now() + d;
    loop {
        check_interrupted()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Polls `cond` every `every` for at most `limit`; true if it came true.
pub fn wait_until(
    limit: Duration,
    every: Duration,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupted()?;
        if cond()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(every);
    }
}

/// RFC 5798 Master_Down_Interval of a backup at `priority` (seconds).
pub fn master_down(interval_ms: u32, priority: u8) -> f64 {
    let i = interval_ms as f64 / 1000.0;
    3.0 * i + (256.0 - priority as f64) * i / 256.0
}

pub struct Ctx {
    pub trials: usize,
    pub floatip_bin: PathBuf,
    pub self_bin: PathBuf,
    pub cpu_window: Duration,
    /// Why floatip cannot be measured in this build, if it cannot.
    pub floatip_missing: Option<String>,
    /// Findings worth a line in the report (deduplicated).
    pub notes: Vec<String>,
    /// `--profile`: perf profiles of the 10 ms CPU scenario into bench/results/.
    pub profile: bool,
}

pub fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

impl Ctx {
    pub fn note(&mut self, n: &str) {
        if !self.notes.iter().any(|x| x == n) {
            self.notes.push(n.to_string());
        }
    }
}

/// A fresh lab ("fipbench<pid>x<n>-*" namespaces) with hosts h1 (.1), h2 (.2) and optionally the
/// client c (.3), each with an IPv6 address too. Logs go to the lab's temp dir (kept with --keep).
pub fn new_lab(with_client: bool) -> Result<(Lab, Vec<Host>, PathBuf)> {
    let mut lab = Lab::new("fipbench")?;
    let mut hosts = Vec::new();
    let names: &[&str] = if with_client {
        &["h1", "h2", "c"]
    } else {
        &["h1", "h2"]
    };
    for (i, h) in names.iter().enumerate() {
        let n = i + 1;
        hosts.push(lab.add_host(
            h,
            &format!("192.0.2.{n}/24"),
            Some(&format!("2001:db8::{n}/64")),
        )?);
    }
    let dir = lab.dir().to_path_buf();
    Ok((lab, hosts, dir))
}

pub fn stop_proc(p: &mut floatip_lab::Proc) {
    // SIGINT first: `ip monitor` then exits with its output flushed.
    p.signal(libc::SIGINT);
    if p.wait_exit(Duration::from_secs(1)).is_none() {
        p.stop(Duration::from_secs(1));
    }
}

/// Where a failed trial's logs are: its lab dir with --keep, else how to keep them.
pub fn logs_hint(dir: &Path) -> String {
    if std::env::var("FLOATIP_LAB_KEEP").is_ok_and(|v| v == "1") {
        dir.display().to_string()
    } else {
        "rerun with --keep to keep them".into()
    }
}

pub fn utc_now_string() -> String {
    let secs = now() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // civil_from_days (Howard Hinnant).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
