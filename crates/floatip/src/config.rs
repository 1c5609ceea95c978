//! The configuration file: TOML in, a validated [`Config`] out, or every problem with file:line:column.
//!
//! Two stages, as in ripgrep's flags: the file is read into raw serde structs (every table
//! `deny_unknown_fields`, every value [`Spanned`] so it keeps its position, numbers kept wide so that
//! `vrid = 300` is our range error and not serde's), then [`validate`] turns them into typed config and
//! collects every problem instead of stopping at the first. Unknown keys are found by a separate walk over
//! the whole file, so that all of them are reported (with "did you mean" and keepalived-name hints), and
//! then blanked out so the rest of the file can still be checked in the same run.
//!
//! The reference for every key is `docs/config.md`; keep it in step with the constants below.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// Where `floatip run` and `floatip check` look without `--config`.
pub const DEFAULT_PATH: &str = "/etc/floatip/floatip.toml";
/// `[daemon] socket` when unset.
pub const DEFAULT_SOCKET: &str = "/run/floatip/floatip.sock";
/// `[daemon] state_dir` when unset.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/floatip";
pub const DEFAULT_PRIORITY: u8 = 100;
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_ANNOUNCE_COUNT: u32 = 5;
pub const DEFAULT_ANNOUNCE_SPACING: Duration = Duration::from_millis(200);
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_CHECK_RISE: u32 = 2;
pub const DEFAULT_CHECK_FALL: u32 = 3;
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest preempt_delay accepted: longer than any sane maintenance wait, short enough to catch a typo.
const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(3600);
/// A kernel address lifetime longer than this would defeat the point of having one.
const MAX_ADDRESS_LIFETIME: Duration = Duration::from_secs(3600);
/// A refresh must land this long before the lifetime runs out, so one late refresh does not drop the VIP.
const LIFETIME_MARGIN: Duration = Duration::from_millis(500);
/// VRRPv3 over IPv6 in one 1500-byte packet: (1500 - 40 IPv6 - 8 VRRP header) / 16.
const MAX_V6_ADDRESSES: usize = 90;
/// The advert's address count is one byte.
const MAX_ADDRESSES: usize = 255;

// ------------------------------------------------------------------------------------------------
// The validated configuration
// ------------------------------------------------------------------------------------------------

/// A whole, valid configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from (for messages and reload).
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub instances: Vec<InstanceConfig>,
}

/// `[daemon]`: settings of the process, not of any one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Control socket (root-only); `--socket` / `FLOATIP_SOCKET` override it.
    pub socket: PathBuf,
    /// Prometheus endpoint; off when `None`.
    pub metrics: Option<SocketAddr>,
    /// Where manual overrides survive restarts.
    pub state_dir: PathBuf,
    /// A tracing filter ("info", "floatip=debug"); `RUST_LOG` wins when set.
    pub log_level: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            metrics: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_level: None,
        }
    }
}

/// A virtual address with the prefix length it is added with ("192.0.2.97/24").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Vip {
    type Err = String;

    /// Parses "ADDR/LEN" and refuses what can never be a service address (network, broadcast, multicast...).
    /// The error is one line naming what is wrong and how to write it instead.
    fn from_str(s: &str) -> Result<Vip, String> {
        parse_vip(s).map_err(|(what, hint)| format!("{what} ({hint})"))
    }
}

/// One `[[instance]]`: a VRRP virtual router and the addresses it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 1-255; 255 = this host owns the addresses.
    pub priority: u8,
    pub version: vrrp::Version,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// One family, no duplicates, at least one.
    pub addresses: Vec<Vip>,
    /// Send adverts to these instead of the multicast group (same family as `addresses`).
    pub unicast_peers: Vec<IpAddr>,
    /// VRRPv3-over-IPv4 checksum form; the default everywhere else.
    pub checksum: vrrp::ChecksumMode,
    pub announce: AnnounceConfig,
    /// Kernel `valid_lft`/`preferred_lft` of each VIP, whole seconds, refreshed while master.
    pub address_lifetime: Duration,
    /// A backup does not claim while none of these answered recently (same family as `addresses`).
    pub witness: Vec<IpAddr>,
    /// FAULT while any of these links is down (the instance's own interface is always tracked).
    pub track_interfaces: Vec<String>,
    pub checks: Vec<CheckConfig>,
    pub notify: NotifyConfig,
}

impl InstanceConfig {
    /// Whether this instance carries IPv6 addresses (and so speaks VRRPv3 over IPv6).
    pub fn is_v6(&self) -> bool {
        self.addresses.first().is_some_and(|vip| vip.addr.is_ipv6())
    }

    /// The protocol core's view of this instance; `primary` is our own address on the interface.
    pub fn vrrp_config(&self, primary: IpAddr) -> vrrp::Config {
        vrrp::Config {
            vrid: self.vrid,
            version: self.version,
            priority: self.priority,
            advert_interval: self.advert_interval,
            preempt: self.preempt,
            preempt_delay: self.preempt_delay,
            addresses: self.addresses.iter().map(|vip| vip.addr).collect(),
            primary,
        }
    }
}

/// `[instance.announce]`: the gratuitous ARP / unsolicited NA burst after every claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// Packets per burst.
    pub count: u32,
    /// Time between the packets of a burst.
    pub spacing: Duration,
    /// While master, repeat the burst this often (for switches and clients that forget); `None` = never.
    pub refresh: Option<Duration>,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            count: DEFAULT_ANNOUNCE_COUNT,
            spacing: DEFAULT_ANNOUNCE_SPACING,
            refresh: None,
        }
    }
}

/// One `[[instance.check]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub name: String,
    pub kind: CheckKind,
    pub interval: Duration,
    /// Always shorter than `interval`.
    pub timeout: Duration,
    /// Consecutive successes before a failing check is healthy again.
    pub rise: u32,
    /// Consecutive failures before a healthy check is failing.
    pub fall: u32,
    /// `None`: a failing check puts the instance in FAULT. `Some(w)`: it adds `w` (negative) to the priority.
    pub weight: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Icmp {
        target: IpAddr,
    },
    Tcp {
        target: SocketAddr,
    },
    Http {
        url: String,
        /// `None` = any 2xx.
        expect_status: Option<u16>,
        /// A substring the body must contain.
        expect_body: Option<String>,
    },
    Exec {
        /// argv, no shell; `command[0]` is an absolute path.
        command: Vec<String>,
    },
}

/// `[instance.notify]`: hooks run in order, one at a time, on each transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub stop: Option<Vec<String>>,
    /// A hook still running after this is killed.
    pub timeout: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            master: None,
            backup: None,
            fault: None,
            stop: None,
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

/// Everything wrong with a configuration file. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// In file order.
    pub problems: Vec<Problem>,
}

/// One thing wrong, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole (it cannot be read).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub what: String,
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.what)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.what
            )?;
        }
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => {
            let shown = path.display();
            let (what, hint) = match e.kind() {
                std::io::ErrorKind::NotFound => (
                    format!("cannot read {shown}: no such file"),
                    "create it from examples/floatip.toml (see docs/config.md), or pass --config PATH"
                        .to_string(),
                ),
                std::io::ErrorKind::PermissionDenied => (
                    format!("cannot read {shown}: permission denied"),
                    "run as root, or make the file readable by this user (it holds no secrets)"
                        .to_string(),
                ),
                std::io::ErrorKind::InvalidData => (
                    format!("cannot read {shown}: it is not UTF-8 text"),
                    "a config is a UTF-8 TOML file; check that the path is the right file".to_string(),
                ),
                _ if path.is_dir() => (
                    format!("cannot read {shown}: it is a directory"),
                    format!("pass the file itself, e.g. --config {}", Path::new(DEFAULT_PATH).display()),
                ),
                _ => (
                    format!("cannot read {shown}: {e}"),
                    "check the path and its permissions".to_string(),
                ),
            };
            Err(ConfigError {
                problems: vec![Problem {
                    path: path.to_path_buf(),
                    line: 0,
                    column: 0,
                    what,
                    hint,
                }],
            })
        }
    }
}

/// Validates `text` as if read from `path` (which only names the file in messages).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut cx = Cx {
        text,
        path,
        problems: Vec::new(),
    };

    // Stage 0: every key of every table, so that all unknown keys are reported, not only the first.
    let mut cleaned = None;
    // If even this fails, it is a syntax error that stage 1 reports with its position. (A TOML datetime
    // anywhere also lands there; stage 1 then reports it as a value of the wrong type.)
    if let Ok(tree) = toml::from_str::<Node>(text) {
        let mut unknown = Vec::new();
        walk_keys(&tree, Schema::Root, 0..0, &mut unknown);
        let mut blanked = text.to_string();
        for u in &unknown {
            cx.at(u.key_span.clone(), u.what.clone(), u.hint.clone());
            blank_pair(&mut blanked, u);
        }
        cleaned = Some(blanked);
    }

    // Stage 1: the raw structs. With the unknown keys blanked (spaces, so positions do not move), what can
    // still fail here is syntax or a value of the wrong TOML type.
    let walked = cleaned.is_some();
    let config = match toml::from_str::<RawFile>(cleaned.as_deref().unwrap_or(text)) {
        Ok(raw) => validate(&mut cx, raw),
        Err(e) => {
            // An error in the blanked text may be of our making (a blanking gone wrong): report the file's own.
            let e = match &cleaned {
                Some(c) if c != text => toml::from_str::<RawFile>(text).err().unwrap_or(e),
                _ => e,
            };
            // Stage 0 read the whole file, so it has listed every unknown key already.
            let listed = walked
                && cx
                    .problems
                    .iter()
                    .any(|p| p.what.starts_with("unknown key"));
            if !(listed && e.message().starts_with("unknown field")) {
                cx.toml_error(&e);
            }
            None
        }
    };

    // Stage 2 happened inside validate(); report everything in file order.
    let mut problems = cx.problems;
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup_by(|a, b| a.line == b.line && a.column == b.column && a.what == b.what);
    match config {
        Some(instances_and_daemon) if problems.is_empty() => Ok(instances_and_daemon),
        _ => {
            if problems.is_empty() {
                // validate() returned nothing without saying why: a bug here, but never an empty error.
                problems.push(Problem {
                    path: path.to_path_buf(),
                    line: 0,
                    column: 0,
                    what: "the configuration was refused without a reason (a floatip bug)".into(),
                    hint: "please report it with the file attached".into(),
                });
            }
            Err(ConfigError { problems })
        }
    }
}

/// Parses a human duration: a number with a unit (`ms`, `s`, `m`, `h`; also `us`), decimals allowed, parts
/// may be combined ("1m30s"). Bare numbers are refused because "1" could mean seconds or milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let input = s.trim();
    if input.is_empty() {
        return Err("an empty duration; write it with a unit, e.g. \"1s\" or \"250ms\"".into());
    }
    if input.parse::<f64>().is_ok() {
        return Err(format!(
            "\"{input}\" has no unit; write \"{input}s\" for seconds or \"{input}ms\" for milliseconds"
        ));
    }
    let mut total: u128 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        if number.is_empty() {
            return Err(format!(
                "\"{input}\" is not a duration; write a number and a unit, e.g. \"1s\", \"250ms\", \"1.5s\", \"2m\""
            ));
        }
        let unit_nanos: u128 = match unit {
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" | "min" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "\"{input}\": {number} has no unit; add one of ms, s, m, h (e.g. \"{number}s\")"
                ))
            }
            other => {
                return Err(format!(
                "\"{input}\": unknown unit \"{other}\"; use ms, s, m or h (e.g. \"250ms\", \"1s\")"
            ))
            }
        };
        let (whole, frac) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(format!("\"{input}\": \"{number}\" is not a number"));
        }
        let too_long = || format!("\"{input}\" is far too long for a duration");
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_long())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        if !frac.is_empty() {
            if frac.len() > 9 {
                return Err(format!("\"{input}\" is more precise than a nanosecond"));
            }
            let frac_value: u128 = frac.parse().map_err(|_| too_long())?;
            let scaled = frac_value * unit_nanos;
            let divisor = 10u128.pow(frac.len() as u32);
            if scaled % divisor != 0 {
                return Err(format!("\"{input}\" is more precise than a nanosecond"));
            }
            nanos += scaled / divisor;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
    }
    let secs =
        u64::try_from(total / 1_000_000_000).map_err(|_| format!("\"{input}\" is too long"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Shows a duration the way a user would write it in the file ("1s", "250ms", "1.5s").
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".into()
    } else if nanos % 3_600_000_000_000 == 0 {
        format!("{}h", nanos / 3_600_000_000_000)
    } else if nanos % 60_000_000_000 == 0 {
        format!("{}m", nanos / 60_000_000_000)
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos >= 1_000_000_000 && nanos % 1_000_000 == 0 {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0'))
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// The `address_lifetime` used when the file sets none: gone before a backup claims, kept between refreshes.
///
/// A backup claims after Master_Down = 3 x interval + skew. The kernel removes an expired address up to about
/// a second late (valid_lft is whole seconds, and the expiry work is coarse), so the lifetime is one second
/// under 3 x interval, rounded down: 2 s at the default 1 s adverts. It is at least 1 s (the kernel's unit),
/// and at least interval + 0.5 s, so one late refresh by the master does not drop its own VIP.
pub fn default_address_lifetime(advert_interval: Duration) -> Duration {
    let three = advert_interval.saturating_mul(3);
    let under = three
        .saturating_sub(Duration::from_secs(1))
        .as_secs()
        .max(1);
    let floor = advert_interval + LIFETIME_MARGIN;
    let floor_secs = floor.as_secs() + u64::from(floor.subsec_nanos() > 0);
    Duration::from_secs(under.max(floor_secs))
}

// ------------------------------------------------------------------------------------------------
// Stage 1: raw structs
// ------------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    daemon: Option<RawDaemon>,
    #[serde(default)]
    instance: Vec<Spanned<RawInstance>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    socket: Option<Spanned<String>>,
    metrics: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    log_level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    name: Option<Spanned<String>>,
    interface: Option<Spanned<String>>,
    vrid: Option<Spanned<i64>>,
    priority: Option<Spanned<i64>>,
    version: Option<Spanned<i64>>,
    advert_interval: Option<Spanned<RawDuration>>,
    preempt: Option<Spanned<bool>>,
    preempt_delay: Option<Spanned<RawDuration>>,
    addresses: Option<Spanned<Vec<Spanned<String>>>>,
    unicast_peers: Option<Spanned<Vec<Spanned<String>>>>,
    checksum: Option<Spanned<String>>,
    announce: Option<RawAnnounce>,
    address_lifetime: Option<Spanned<RawDuration>>,
    witness: Option<Spanned<Vec<Spanned<String>>>>,
    track_interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnnounce {
    count: Option<Spanned<i64>>,
    spacing: Option<Spanned<RawDuration>>,
    refresh: Option<Spanned<RawDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    expect_status: Option<Spanned<i64>>,
    expect_body: Option<Spanned<String>>,
    command: Option<Spanned<RawArgv>>,
    interval: Option<Spanned<RawDuration>>,
    timeout: Option<Spanned<RawDuration>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
    weight: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    master: Option<Spanned<RawArgv>>,
    backup: Option<Spanned<RawArgv>>,
    fault: Option<Spanned<RawArgv>>,
    stop: Option<Spanned<RawArgv>>,
    timeout: Option<Spanned<RawDuration>>,
}

/// A duration as written: a string to parse, or a bare number that we refuse with a hint (not a type error).
enum RawDuration {
    Text(String),
    Number(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"1s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command as written: the argv array we want, or a single string we refuse with a hint.
enum RawArgv {
    List(Vec<Spanned<String>>),
    Text(String),
}

impl<'de> Deserialize<'de> for RawArgv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawArgv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a command as an array of strings, e.g. [\"/usr/local/bin/x\", \"--flag\"]",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawArgv, E> {
                Ok(RawArgv::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawArgv, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<Spanned<String>>()? {
                    argv.push(arg);
                }
                Ok(RawArgv::List(argv))
            }
        }
        d.deserialize_any(V)
    }
}

// ------------------------------------------------------------------------------------------------
// Stage 0: the key walk
// ------------------------------------------------------------------------------------------------

const ROOT_KEYS: &[&str] = &["daemon", "instance"];
const DAEMON_KEYS: &[&str] = &["socket", "metrics", "state_dir", "log_level"];
const INSTANCE_KEYS: &[&str] = &[
    "name",
    "interface",
    "vrid",
    "priority",
    "version",
    "advert_interval",
    "preempt",
    "preempt_delay",
    "addresses",
    "unicast_peers",
    "checksum",
    "announce",
    "address_lifetime",
    "witness",
    "track_interfaces",
    "check",
    "notify",
];
const ANNOUNCE_KEYS: &[&str] = &["count", "spacing", "refresh"];
const CHECK_KEYS: &[&str] = &[
    "name",
    "kind",
    "target",
    "url",
    "expect_status",
    "expect_body",
    "command",
    "interval",
    "timeout",
    "rise",
    "fall",
    "weight",
];
const NOTIFY_KEYS: &[&str] = &["master", "backup", "fault", "stop", "timeout"];

/// keepalived's names for the same things, so a migrating admin is told the floatip key.
const KEEPALIVED_NAMES: &[(&str, &str)] = &[
    ("virtual_router_id", "vrid"),
    ("advert_int", "advert_interval"),
    ("virtual_ipaddress", "addresses"),
    ("unicast_peer", "unicast_peers"),
    (
        "unicast_src_ip",
        "the interface's own address (floatip uses the primary address of `interface`)",
    ),
    ("nopreempt", "preempt = false"),
    ("preempt_delay_secs", "preempt_delay"),
    ("vrrp_version", "version"),
    ("track_interface", "track_interfaces"),
    ("track_script", "[[instance.check]] with kind = \"exec\""),
    ("notify_master", "master = [...] in [instance.notify]"),
    ("notify_backup", "backup = [...] in [instance.notify]"),
    ("notify_fault", "fault = [...] in [instance.notify]"),
    ("notify_stop", "stop = [...] in [instance.notify]"),
    ("garp_master_repeat", "count in [instance.announce]"),
    ("garp_master_refresh", "refresh in [instance.announce]"),
    ("vips", "addresses"),
    ("vip", "addresses"),
    ("address", "addresses"),
    ("peers", "unicast_peers"),
    ("interval", "advert_interval"),
    ("router_id", "vrid"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Schema {
    Root,
    Daemon,
    Instance,
    Announce,
    Check,
    Notify,
}

impl Schema {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Schema::Root => ROOT_KEYS,
            Schema::Daemon => DAEMON_KEYS,
            Schema::Instance => INSTANCE_KEYS,
            Schema::Announce => ANNOUNCE_KEYS,
            Schema::Check => CHECK_KEYS,
            Schema::Notify => NOTIFY_KEYS,
        }
    }

    fn table_name(self) -> &'static str {
        match self {
            Schema::Root => "the top level",
            Schema::Daemon => "[daemon]",
            Schema::Instance => "[[instance]]",
            Schema::Announce => "[instance.announce]",
            Schema::Check => "[[instance.check]]",
            Schema::Notify => "[instance.notify]",
        }
    }

    fn child(self, key: &str) -> Option<Schema> {
        match (self, key) {
            (Schema::Root, "daemon") => Some(Schema::Daemon),
            (Schema::Root, "instance") => Some(Schema::Instance),
            (Schema::Instance, "announce") => Some(Schema::Announce),
            (Schema::Instance, "check") => Some(Schema::Check),
            (Schema::Instance, "notify") => Some(Schema::Notify),
            _ => None,
        }
    }

    const ALL: [Schema; 6] = [
        Schema::Root,
        Schema::Daemon,
        Schema::Instance,
        Schema::Announce,
        Schema::Check,
        Schema::Notify,
    ];
}

// Tables that only exist through a dotted key or a deeper header (`a.b = 1`, `[x.y]` without `[x]`) have no
// position in toml, and `Spanned<T>` fails on them outright. The walk must read any file, so it asks for a
// span the way `Spanned` does (serde_spanned's protocol, stable across toml 0.8) and accepts a plain value
// when the deserializer has none to give.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

/// Any TOML value, with the position of each key and value where toml knows it (only tables and arrays
/// are looked into).
struct Node {
    span: Option<Range<usize>>,
    kind: NodeKind,
}

enum NodeKind {
    Table(Vec<(Key, Node)>),
    Array(Vec<Node>),
    Scalar,
}

struct Key {
    span: Option<Range<usize>>,
    name: String,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key {
                    span: None,
                    name: v.to_string(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
                let (span, first) = read_span(&mut map)?;
                match (span, first) {
                    (Some(span), None) => Ok(Key {
                        span: Some(span),
                        name: map.next_value::<String>()?,
                    }),
                    _ => Err(de::Error::custom("a key that is a table")),
                }
            }
        }
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, V)
    }
}

/// Reads serde_spanned's start and end fields if the map begins with them: `(Some(span), None)`, with the
/// value next. Otherwise `(None, Some(first key))` of an ordinary table.
#[allow(clippy::type_complexity)]
fn read_span<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<(Option<Range<usize>>, Option<Option<Key>>), A::Error> {
    let Some(first) = map.next_key::<Key>()? else {
        return Ok((None, Some(None)));
    };
    if first.name != SPANNED_START {
        return Ok((None, Some(Some(first))));
    }
    let start: usize = map.next_value()?;
    let _end_key = map.next_key::<Key>()?;
    let end: usize = map.next_value()?;
    let _value_key = map.next_key::<Key>()?;
    Ok((Some(start..end), None))
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node {
            span: None,
            kind: NodeKind::Array(items),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let first = match read_span(&mut map)? {
            (Some(span), _) => {
                let mut node = map.next_value::<Unspanned>()?.0;
                node.span = Some(span);
                return Ok(node);
            }
            (None, first) => first.flatten(),
        };
        let mut entries = Vec::new();
        let mut next = first;
        while let Some(key) = next {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
            next = map.next_key::<Key>()?;
        }
        Ok(Node {
            span: None,
            kind: NodeKind::Table(entries),
        })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

/// The value inside a span: asking for a span again here would recurse forever.
struct Unspanned(Node);

impl<'de> Deserialize<'de> for Unspanned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor).map(Unspanned)
    }
}

impl Node {
    fn scalar() -> Node {
        Node {
            span: None,
            kind: NodeKind::Scalar,
        }
    }
}

struct UnknownKey {
    key_span: Range<usize>,
    value_span: Option<Range<usize>>,
    what: String,
    hint: String,
}

/// Collects every key that `schema` does not know, recursing into the tables floatip defines. `around` is
/// the best position known for the table itself, for keys toml has no position for.
fn walk_keys(node: &Node, schema: Schema, around: Range<usize>, out: &mut Vec<UnknownKey>) {
    let NodeKind::Table(entries) = &node.kind else {
        return;
    };
    let around = node.span.clone().unwrap_or(around);
    for (key, value) in entries {
        let name = key.name.as_str();
        let key_span = key
            .span
            .clone()
            .or_else(|| value.span.clone())
            .unwrap_or_else(|| around.clone());
        if !schema.keys().contains(&name) {
            out.push(UnknownKey {
                key_span,
                value_span: value.span.clone(),
                what: format!("unknown key `{name}` in {}", schema.table_name()),
                hint: unknown_key_hint(name, schema),
            });
            continue;
        }
        if let Some(child) = schema.child(name) {
            match &value.kind {
                NodeKind::Array(items) => {
                    for item in items {
                        walk_keys(item, child, key_span.clone(), out);
                    }
                }
                _ => walk_keys(value, child, key_span, out),
            }
        }
    }
}

fn unknown_key_hint(name: &str, schema: Schema) -> String {
    let valid = format!(
        "valid keys in {}: {}",
        schema.table_name(),
        schema.keys().join(", ")
    );
    if let Some((_, ours)) = KEEPALIVED_NAMES.iter().find(|(theirs, _)| *theirs == name) {
        return format!("`{name}` is keepalived's name; floatip calls it {ours}. {valid}");
    }
    if let Some(flat) = name.strip_prefix("announce_") {
        if ANNOUNCE_KEYS.contains(&flat) {
            return format!(
                "announcement settings go in their own table: write `{flat} = ...` under [instance.announce]"
            );
        }
    }
    if let Some(close) = closest(name, schema.keys()) {
        return format!("did you mean {close}? {valid}");
    }
    if let Some(other) = Schema::ALL
        .iter()
        .find(|s| **s != schema && **s != Schema::Root && s.keys().contains(&name))
    {
        return format!("`{name}` belongs in {}. {valid}", other.table_name());
    }
    valid
}

/// The valid key nearest to a misspelt one, if it is near enough to be what was meant.
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // A prefix ("prio", "advert") is what someone remembering half the name writes.
    if name.len() >= 3 {
        if let Some(c) = candidates.iter().find(|c| c.starts_with(name)) {
            return Some(c);
        }
    }
    let best = candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .min_by_key(|(d, _)| *d)?;
    let limit = (name.chars().count() / 3).max(2);
    (best.0 <= limit).then_some(best.1)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Replaces `key = value` with spaces (newlines kept, multi-byte characters as as many spaces, so no
/// position moves), with its comma inside an inline table. Only plain pairs are touched; anything else (a
/// table header) stays, and stage 1 stops there, after stage 0 has listed it.
fn blank_pair(text: &mut String, key: &UnknownKey) {
    let Some(value_span) = &key.value_span else {
        return;
    };
    let (mut start, mut end) = (key.key_span.start, value_span.end);
    if value_span.start < key.key_span.end || end > text.len() {
        return;
    }
    if text[key.key_span.end..value_span.start].trim() != "=" {
        return;
    }
    // A dotted key (`notify.mastr = ...`): its position is the last part; blank the whole key.
    loop {
        let before = text[..start].trim_end_matches([' ', '\t']);
        let Some(parent) = before.strip_suffix('.') else {
            break;
        };
        let parent = parent.trim_end_matches([' ', '\t']);
        let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let segment_start = parent.rfind(|c: char| !bare(c)).map_or(0, |i| i + 1);
        if segment_start == parent.len() {
            return; // a quoted part: leave it to stage 1
        }
        start = segment_start;
    }
    let after = text[end..].len() - text[end..].trim_start_matches([' ', '\t']).len();
    if text[end + after..].starts_with(',') {
        end += after + 1;
    } else {
        let before = text[..start].trim_end_matches([' ', '\t']);
        if before.ends_with(',') {
            start = before.len() - 1;
        }
    }
    let blanked: String = text[start..end]
        .chars()
        .map(|c| match c {
            '\n' | '\r' => c.to_string(),
            _ => " ".repeat(c.len_utf8()),
        })
        .collect();
    text.replace_range(start..end, &blanked);
}

// ------------------------------------------------------------------------------------------------
// Stage 2: validation
// ------------------------------------------------------------------------------------------------

/// Collects problems against the text they are positioned in.
struct Cx<'a> {
    text: &'a str,
    path: &'a Path,
    problems: Vec<Problem>,
}

impl Cx<'_> {
    fn at(&mut self, span: Range<usize>, what: impl Into<String>, hint: impl Into<String>) {
        let (line, column) = position(self.text, span.start);
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            line,
            column,
            what: what.into(),
            hint: hint.into(),
        });
    }

    fn toml_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let line_text = line_at(self.text, span.start).trim();
        let hint = if line_text.starts_with("[instance]") || line_text.starts_with("[daemon.") {
            "instances are written [[instance]] (two brackets: there can be several)".to_string()
        } else if line_text.starts_with("[instance.check]") {
            "checks are written [[instance.check]] (two brackets: an instance can have several)"
                .into()
        } else if line_text.starts_with("[[daemon]]") {
            "the daemon table is written [daemon] (one bracket: there is only one)".into()
        } else if line_text.starts_with("[[instance.notify]]")
            || line_text.starts_with("[[instance.announce]]")
        {
            "notify and announce are single tables: [instance.notify], [instance.announce]".into()
        } else if message.starts_with("unknown field") {
            // Only reached when stage 0 could not read the file; name the table from serde's list.
            "see docs/config.md for the keys of each table".into()
        } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
            match key_on_line(line_text) {
                Some(key) => format!("{key} takes {}", key_type(&key)),
                None => "check the value's type in docs/config.md: durations, addresses and names are quoted strings, numbers are bare, lists use [ ]".into(),
            }
        } else if message.contains("duplicate key") {
            "each key may appear once per table; remove one of them".into()
        } else {
            "fix the TOML syntax here: strings need double quotes, lists use [ ], each table header is on its own line".into()
        };
        // serde's type names mean nothing to a config author.
        let what = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
            .replace("expected i64", "expected a number")
            .replace("expected a sequence", "expected a list [ ... ]")
            .replace("expected a boolean", "expected true or false");
        self.at(span, what, hint);
    }

    fn missing(&mut self, span: Range<usize>, key: &str, table: &str, example: &str) {
        self.at(
            span,
            format!("{table} has no `{key}`, which is required"),
            format!("add e.g. {example}"),
        );
    }

    fn duration(
        &mut self,
        value: Option<&Spanned<RawDuration>>,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(value) = value else {
            return Some(default);
        };
        let d = self.any_duration(value, key)?;
        if d < min || d > max {
            self.at(
                value.span(),
                format!("{key} {} is out of range", format_duration(d)),
                format!(
                    "{key} is {} to {}",
                    format_duration(min),
                    format_duration(max)
                ),
            );
            return None;
        }
        Some(d)
    }

    fn any_duration(&mut self, value: &Spanned<RawDuration>, key: &str) -> Option<Duration> {
        match value.get_ref() {
            RawDuration::Number(n) => {
                self.at(
                    value.span(),
                    format!("{key} = {n} has no unit"),
                    format!(
                        "durations are quoted strings with a unit: {key} = \"{n}s\" or {key} = \"{n}ms\""
                    ),
                );
                None
            }
            RawDuration::Text(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.at(value.span(), format!("{key}: {e}"), DURATION_HINT);
                    None
                }
            },
        }
    }

    fn int_in(
        &mut self,
        value: &Spanned<i64>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        hint: &str,
    ) -> Option<i64> {
        let v = *value.get_ref();
        if range.contains(&v) {
            Some(v)
        } else {
            self.at(value.span(), format!("{key} {v} is out of range"), hint);
            None
        }
    }

    fn argv(&mut self, value: &Spanned<RawArgv>, key: &str) -> Option<Vec<String>> {
        match value.get_ref() {
            RawArgv::Text(s) => {
                let words: Vec<String> = s.split_whitespace().map(|w| format!("\"{w}\"")).collect();
                self.at(
                    value.span(),
                    format!("{key} must be an argv array, not a string"),
                    format!(
                        "commands run without a shell; write {key} = [{}]",
                        if words.is_empty() {
                            "\"/usr/local/bin/...\"".to_string()
                        } else {
                            words.join(", ")
                        }
                    ),
                );
                None
            }
            RawArgv::List(args) => {
                let Some(program) = args.first() else {
                    self.at(
                        value.span(),
                        format!("{key} is an empty command"),
                        format!("write {key} = [\"/absolute/path/to/program\", \"arg\", ...] or remove the key"),
                    );
                    return None;
                };
                if !program.get_ref().starts_with('/') {
                    self.at(
                        program.span(),
                        format!("{key}: program \"{}\" is not an absolute path", program.get_ref()),
                        "commands run without a shell or PATH lookup; give the full path, e.g. \"/usr/local/sbin/start-samba\"",
                    );
                    return None;
                }
                Some(args.iter().map(|a| a.get_ref().clone()).collect())
            }
        }
    }
}

const DURATION_HINT: &str =
    "write a number with a unit: \"10ms\", \"250ms\", \"1s\", \"1.5s\", \"2m\" (units: ms, s, m, h)";

fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn line_at(text: &str, offset: usize) -> &str {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    &text[start..end]
}

fn key_on_line(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| key.to_string())
}

/// What each key takes, for type-error hints.
fn key_type(key: &str) -> &'static str {
    match key {
        "vrid" => "a bare number 1-255, e.g. vrid = 51",
        "priority" => "a bare number 1-255, e.g. priority = 150",
        "version" => "a bare number, 2 or 3",
        "rise" | "fall" => "a bare number, e.g. 3",
        "count" => "a bare number, e.g. count = 5",
        "weight" => "a bare number, e.g. weight = -60",
        "expect_status" => "a bare number, e.g. expect_status = 200",
        "preempt" => "true or false",
        "addresses" => {
            "a list of quoted \"ADDR/LEN\" strings, e.g. addresses = [\"192.0.2.97/24\"]"
        }
        "unicast_peers" | "witness" => "a list of quoted addresses, e.g. [\"192.0.2.2\"]",
        "track_interfaces" => "a list of quoted interface names, e.g. [\"eth1\"]",
        "command" | "master" | "backup" | "fault" | "stop" => {
            "an argv array, e.g. [\"/usr/local/bin/x\", \"--flag\"]"
        }
        "advert_interval" | "preempt_delay" | "address_lifetime" | "spacing" | "refresh"
        | "interval" | "timeout" => "a quoted duration with a unit, e.g. \"1s\" or \"250ms\"",
        _ => "a quoted string",
    }
}

fn validate(cx: &mut Cx<'_>, raw: RawFile) -> Option<Config> {
    let daemon = match &raw.daemon {
        Some(d) => validate_daemon(cx, d),
        None => Some(DaemonConfig::default()),
    };

    if raw.instance.is_empty() {
        cx.at(
            0..0,
            "no [[instance]] is defined",
            "add at least one [[instance]] with name, interface, vrid and addresses (see examples/floatip.toml)",
        );
    }

    let mut instances = Vec::new();
    let mut facts = Vec::new();
    let mut all_ok = true;
    for inst in &raw.instance {
        let (config, fact) = validate_instance(cx, inst);
        facts.push(fact);
        match config {
            Some(c) => instances.push(c),
            None => all_ok = false,
        }
    }
    cross_instance(cx, &facts);

    Some(Config {
        path: cx.path.to_path_buf(),
        daemon: daemon?,
        instances: all_ok.then_some(instances)?,
    })
}

fn validate_daemon(cx: &mut Cx<'_>, raw: &RawDaemon) -> Option<DaemonConfig> {
    let mut ok = true;
    let mut config = DaemonConfig::default();
    if let Some(socket) = &raw.socket {
        let s = socket.get_ref();
        if !s.starts_with('/') {
            cx.at(
                socket.span(),
                format!("socket \"{s}\" is not an absolute path"),
                format!("write an absolute path, e.g. socket = \"{DEFAULT_SOCKET}\""),
            );
            ok = false;
        } else if s.len() > 107 {
            cx.at(
                socket.span(),
                format!(
                    "socket path is {} bytes long; a Unix socket path is at most 107",
                    s.len()
                ),
                format!("use a shorter path, e.g. \"{DEFAULT_SOCKET}\""),
            );
            ok = false;
        } else {
            config.socket = PathBuf::from(s);
        }
    }
    if let Some(metrics) = &raw.metrics {
        match metrics.get_ref().parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => config.metrics = Some(addr),
            Ok(_) => {
                cx.at(
                    metrics.span(),
                    "metrics port 0 is not a fixed port",
                    "give the port Prometheus scrapes, e.g. metrics = \"127.0.0.1:9797\"",
                );
                ok = false;
            }
            Err(_) => {
                cx.at(
                    metrics.span(),
                    format!("metrics \"{}\" is not an ADDRESS:PORT", metrics.get_ref()),
                    "write an IP and port, e.g. metrics = \"127.0.0.1:9797\" (IPv6: \"[::1]:9797\"; no host names); remove the key to turn metrics off",
                );
                ok = false;
            }
        }
    }
    if let Some(dir) = &raw.state_dir {
        if dir.get_ref().starts_with('/') {
            config.state_dir = PathBuf::from(dir.get_ref());
        } else {
            cx.at(
                dir.span(),
                format!("state_dir \"{}\" is not an absolute path", dir.get_ref()),
                format!("write an absolute path, e.g. state_dir = \"{DEFAULT_STATE_DIR}\""),
            );
            ok = false;
        }
    }
    if let Some(level) = &raw.log_level {
        match check_log_filter(level.get_ref()) {
            Ok(()) => config.log_level = Some(level.get_ref().clone()),
            Err(e) => {
                cx.at(
                    level.span(),
                    format!("log_level \"{}\": {e}", level.get_ref()),
                    "use one of off, error, warn, info, debug, trace, optionally per module: \"info,floatip=debug\"",
                );
                ok = false;
            }
        }
    }
    ok.then_some(config)
}

fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    if filter.trim().is_empty() {
        return Err("empty".into());
    }
    for directive in filter.split(',') {
        let directive = directive.trim();
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (Some(t), l),
            None => (None, directive),
        };
        if let Some(t) = target {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c))
            {
                return Err(format!("\"{t}\" is not a module name"));
            }
        }
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("\"{level}\" is not a level"));
        }
    }
    Ok(())
}

/// What cross-instance rules need from each instance, as far as it could be read.
struct Facts {
    name: Option<Spanned<String>>,
    interface: Option<String>,
    vrid: Option<(u8, Range<usize>)>,
    is_v6: Option<bool>,
    vips: Vec<(Vip, Range<usize>)>,
}

fn is_valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn validate_instance(
    cx: &mut Cx<'_>,
    spanned: &Spanned<RawInstance>,
) -> (Option<InstanceConfig>, Facts) {
    let raw = spanned.get_ref();
    let table = spanned.span();
    let mut ok = true;
    let mut facts = Facts {
        name: None,
        interface: None,
        vrid: None,
        is_v6: None,
        vips: Vec::new(),
    };

    // name
    let name = match &raw.name {
        None => {
            cx.missing(
                table.clone(),
                "name",
                "[[instance]]",
                "name = \"files\" (shown in logs and status)",
            );
            None
        }
        Some(n) if !is_valid_name(n.get_ref()) => {
            cx.at(
                n.span(),
                format!("instance name \"{}\" is not a valid name", n.get_ref()),
                "use 1-32 characters from a-z, 0-9, _ and -, e.g. name = \"files\"",
            );
            None
        }
        Some(n) => {
            facts.name = Some(n.clone());
            Some(n.get_ref().clone())
        }
    };
    let label = name.clone().unwrap_or_else(|| "this instance".into());

    // interface
    let interface = match &raw.interface {
        None => {
            cx.missing(
                table.clone(),
                "interface",
                &format!("instance {label}"),
                "interface = \"eth0\" (the LAN the VIP lives on)",
            );
            None
        }
        Some(i) if !is_valid_ifname(i.get_ref()) => {
            cx.at(
                i.span(),
                format!("interface \"{}\" is not a valid Linux interface name", i.get_ref()),
                "an interface name is 1-15 characters without '/', ':' or spaces; `ip link` lists them",
            );
            None
        }
        Some(i) => {
            facts.interface = Some(i.get_ref().clone());
            Some(i.get_ref().clone())
        }
    };

    // vrid
    let vrid = match &raw.vrid {
        None => {
            cx.missing(
                table.clone(),
                "vrid",
                &format!("instance {label}"),
                "vrid = 51 (1-255, the same on every router of this instance)",
            );
            None
        }
        Some(v) => cx
            .int_in(
                v,
                "vrid",
                1..=255,
                "a VRID is 1-255 and must be the same on every router of this instance",
            )
            .map(|v| v as u8),
    };
    if let (Some(v), Some(span)) = (vrid, raw.vrid.as_ref().map(|v| v.span())) {
        facts.vrid = Some((v, span));
    }

    // priority
    let priority = match &raw.priority {
        None => Some(DEFAULT_PRIORITY),
        Some(p) if *p.get_ref() == 0 => {
            cx.at(
                p.span(),
                "priority 0 is reserved",
                "priority 0 is what a master sends when it leaves; use 1-254 (higher wins), or 255 if this host owns the address",
            );
            None
        }
        Some(p) => cx
            .int_in(p, "priority", 1..=255, "priority is 1-254 (higher wins the election); 255 means this host owns the address and claims it at once")
            .map(|p| p as u8),
    };

    // version
    let version = match &raw.version {
        None => Some(vrrp::Version::V3),
        Some(v) => match *v.get_ref() {
            3 => Some(vrrp::Version::V3),
            2 => Some(vrrp::Version::V2),
            other => {
                cx.at(
                    v.span(),
                    format!("version {other} is not a VRRP version floatip speaks"),
                    "use version = 3 (the default; IPv4 and IPv6, sub-second adverts) or version = 2 (IPv4, whole seconds; keepalived's IPv4 default)",
                );
                None
            }
        },
    };

    // addresses
    let mut addresses = Vec::new();
    let mut addresses_ok = true;
    let mut family: Option<(bool, String)> = None;
    match &raw.addresses {
        None => {
            cx.missing(
                table.clone(),
                "addresses",
                &format!("instance {label}"),
                "addresses = [\"192.0.2.97/24\"] (the VIPs this instance moves)",
            );
            addresses_ok = false;
        }
        Some(list) if list.get_ref().is_empty() => {
            cx.at(
                list.span(),
                "addresses is empty",
                "list the VIPs this instance moves, e.g. addresses = [\"192.0.2.97/24\"]",
            );
            addresses_ok = false;
        }
        Some(list) => {
            let mut seen: HashMap<IpAddr, String> = HashMap::new();
            for item in list.get_ref() {
                let vip = match parse_vip(item.get_ref()) {
                    Ok(vip) => vip,
                    Err((what, hint)) => {
                        cx.at(item.span(), what, hint);
                        addresses_ok = false;
                        continue;
                    }
                };
                if let Some((first_v6, first)) = &family {
                    if *first_v6 != vip.addr.is_ipv6() {
                        cx.at(
                            item.span(),
                            format!("{vip} mixes address families with {first} in one instance"),
                            format!(
                                "VRRP runs separately per family: put the IPv{} addresses in a second [[instance]] (it may use the same vrid)",
                                if vip.addr.is_ipv6() { 6 } else { 4 }
                            ),
                        );
                        addresses_ok = false;
                        continue;
                    }
                } else {
                    family = Some((vip.addr.is_ipv6(), vip.to_string()));
                }
                if let Some(first) = seen.get(&vip.addr) {
                    cx.at(
                        item.span(),
                        format!("{} is listed twice (as {first} and {vip})", vip.addr),
                        "list each address once",
                    );
                    addresses_ok = false;
                    continue;
                }
                seen.insert(vip.addr, vip.to_string());
                facts.vips.push((vip, item.span()));
                addresses.push(vip);
            }
            let max = if family.as_ref().is_some_and(|f| f.0) {
                MAX_V6_ADDRESSES
            } else {
                MAX_ADDRESSES
            };
            if list.get_ref().len() > max {
                cx.at(
                    list.span(),
                    format!(
                        "{} addresses do not fit in one advert (at most {max})",
                        list.get_ref().len()
                    ),
                    "split them over several instances with different vrids",
                );
                addresses_ok = false;
            }
        }
    }
    let is_v6 = family.as_ref().map(|f| f.0);
    facts.is_v6 = is_v6;

    if let (Some(vrrp::Version::V2), Some(true), Some(v)) = (version, is_v6, &raw.version) {
        cx.at(
            v.span(),
            "VRRPv2 is IPv4-only, but this instance's addresses are IPv6",
            "use version = 3 (the default) for IPv6 addresses",
        );
        ok = false;
    }

    // advert_interval
    let advert_interval = match &raw.advert_interval {
        None => Some(DEFAULT_ADVERT_INTERVAL),
        Some(v) => cx.any_duration(v, "advert_interval").and_then(|d| {
            let problem = match version {
                Some(vrrp::Version::V3) | None => {
                    if d < Duration::from_millis(10) || d > Duration::from_millis(40_950) {
                        Some(("is outside VRRPv3's 10ms to 40.95s", "VRRPv3 carries the interval in centiseconds (12 bits): use 10ms to 40.95s"))
                    } else if d.as_nanos() % 10_000_000 != 0 {
                        Some(("is not a multiple of 10ms", "VRRPv3 carries the interval in centiseconds: round it to 10 ms steps, e.g. \"10ms\", \"20ms\", \"1s\""))
                    } else {
                        None
                    }
                }
                Some(vrrp::Version::V2) => {
                    if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > 255 {
                        Some(("is not whole seconds from 1s to 255s, as VRRPv2 needs", "VRRPv2 carries the interval in whole seconds (1s to 255s); for sub-second adverts use version = 3 (keepalived: vrrp_version 3)"))
                    } else {
                        None
                    }
                }
            };
            match problem {
                Some((what, hint)) => {
                    cx.at(v.span(), format!("advert_interval {} {what}", format_duration(d)), hint);
                    None
                }
                None => Some(d),
            }
        }),
    };

    let preempt = raw.preempt.as_ref().is_none_or(|p| *p.get_ref());
    let preempt_delay = cx.duration(
        raw.preempt_delay.as_ref(),
        "preempt_delay",
        Duration::ZERO,
        Duration::ZERO,
        MAX_PREEMPT_DELAY,
    );
    if let (Some(_), Some(p), false) = (&raw.preempt_delay, &raw.preempt, preempt) {
        cx.at(
            p.span(),
            "preempt_delay is set but preempt = false, so it never applies",
            "remove preempt_delay, or set preempt = true",
        );
        ok = false;
    }

    // unicast_peers and witness: plain addresses of the instance's family.
    let unicast_peers = validate_addr_list(
        cx,
        raw.unicast_peers.as_ref(),
        "unicast_peers",
        is_v6,
        &addresses,
        "a peer router's own address on this LAN, e.g. \"192.0.2.2\"",
    );
    let witness = validate_addr_list(
        cx,
        raw.witness.as_ref(),
        "witness",
        is_v6,
        &addresses,
        "a node that is always up, typically the router, e.g. \"192.0.2.254\"",
    );

    // checksum
    let checksum = match &raw.checksum {
        None => Some(vrrp::ChecksumMode::PseudoHeader),
        Some(c) => {
            let mode = match c.get_ref().as_str() {
                "pseudo-header" => Some(vrrp::ChecksumMode::PseudoHeader),
                "message-only" => Some(vrrp::ChecksumMode::MessageOnly),
                "accept-either" => Some(vrrp::ChecksumMode::AcceptEither),
                other => {
                    cx.at(
                        c.span(),
                        format!("checksum \"{other}\" is not a checksum mode"),
                        "use \"pseudo-header\" (default; keepalived 2.2, Wireshark), \"message-only\" (RFC 9568) or \"accept-either\"",
                    );
                    None
                }
            };
            if mode.is_some() && (version == Some(vrrp::Version::V2) || is_v6 == Some(true)) {
                cx.at(
                    c.span(),
                    "checksum only applies to VRRPv3 over IPv4",
                    "VRRPv2 has no pseudo-header and IPv6 always uses one; remove the key",
                );
                ok = false;
            }
            mode
        }
    };

    // announce
    let announce = match &raw.announce {
        None => Some(AnnounceConfig::default()),
        Some(a) => validate_announce(cx, a),
    };

    // address_lifetime
    let address_lifetime = match (&raw.address_lifetime, advert_interval) {
        (None, Some(interval)) => Some(default_address_lifetime(interval)),
        (None, None) => None,
        (Some(v), interval) => cx.any_duration(v, "address_lifetime").and_then(|d| {
            if d.subsec_nanos() != 0 || d.is_zero() || d > MAX_ADDRESS_LIFETIME {
                cx.at(
                    v.span(),
                    format!("address_lifetime {} is not whole seconds from 1s to 1h", format_duration(d)),
                    "the kernel keeps address lifetimes in whole seconds; remove the key to use the default (2s at 1s adverts)",
                );
                return None;
            }
            if let Some(interval) = interval {
                if d < interval + LIFETIME_MARGIN {
                    cx.at(
                        v.span(),
                        format!(
                            "address_lifetime {} is too short for advert_interval {}",
                            format_duration(d),
                            format_duration(interval)
                        ),
                        format!(
                            "the master refreshes the lifetime once per advert, so it must be at least advert_interval + 0.5s: use \"{}\" or remove the key",
                            format_duration(default_address_lifetime(interval))
                        ),
                    );
                    return None;
                }
            }
            Some(d)
        }),
    };

    // track_interfaces
    let mut track_interfaces = Vec::new();
    if let Some(list) = &raw.track_interfaces {
        let mut seen = HashSet::new();
        for item in list.get_ref() {
            let ifname = item.get_ref();
            if !is_valid_ifname(ifname) {
                cx.at(
                    item.span(),
                    format!("track_interfaces: \"{ifname}\" is not a valid Linux interface name"),
                    "an interface name is 1-15 characters without '/', ':' or spaces; `ip link` lists them",
                );
                ok = false;
            } else if Some(ifname) == interface.as_ref() {
                cx.at(
                    item.span(),
                    format!("track_interfaces lists {ifname}, the instance's own interface"),
                    "the instance's own interface is always tracked; list only other links (e.g. the uplink)",
                );
                ok = false;
            } else if !seen.insert(ifname.clone()) {
                cx.at(
                    item.span(),
                    format!("track_interfaces lists {ifname} twice"),
                    "list each interface once",
                );
                ok = false;
            } else {
                track_interfaces.push(ifname.clone());
            }
        }
    }

    // checks
    let mut checks = Vec::new();
    let mut check_names: HashSet<String> = HashSet::new();
    for check in &raw.check {
        match validate_check(cx, check, &label) {
            Some(c) => {
                if !check_names.insert(c.name.clone()) {
                    let span = check
                        .get_ref()
                        .name
                        .as_ref()
                        .map_or(check.span(), |n| n.span());
                    cx.at(
                        span,
                        format!("instance {label} has two checks named \"{}\"", c.name),
                        "give each check of an instance its own name (status and logs show it)",
                    );
                    ok = false;
                } else {
                    checks.push(c);
                }
            }
            None => ok = false,
        }
    }

    // notify
    let notify = match &raw.notify {
        None => Some(NotifyConfig::default()),
        Some(n) => validate_notify(cx, n),
    };

    let config = (|| {
        if !ok || !addresses_ok {
            return None;
        }
        Some(InstanceConfig {
            name: name?,
            interface: interface?,
            vrid: vrid?,
            priority: priority?,
            version: version?,
            advert_interval: advert_interval?,
            preempt,
            preempt_delay: preempt_delay?,
            addresses,
            unicast_peers: unicast_peers?,
            checksum: checksum?,
            announce: announce?,
            address_lifetime: address_lifetime?,
            witness: witness?,
            track_interfaces,
            checks,
            notify: notify?,
        })
    })();
    (config, facts)
}

fn validate_addr_list(
    cx: &mut Cx<'_>,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
    key: &str,
    is_v6: Option<bool>,
    vips: &[Vip],
    example: &str,
) -> Option<Vec<IpAddr>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let mut ok = true;
    let mut out = Vec::new();
    for item in list.get_ref() {
        let s = item.get_ref();
        let addr = match s.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                let hint = if s.contains('/') {
                    format!("{key} takes plain addresses without /LEN: {example}")
                } else {
                    format!("{key} takes IP addresses (no host names): {example}")
                };
                cx.at(
                    item.span(),
                    format!("{key}: \"{s}\" is not an IP address"),
                    hint,
                );
                ok = false;
                continue;
            }
        };
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            cx.at(
                item.span(),
                format!("{key}: {addr} is not a host on the LAN"),
                format!("{key} takes {example}"),
            );
            ok = false;
        } else if is_v6.is_some_and(|v6| v6 != addr.is_ipv6()) {
            cx.at(
                item.span(),
                format!(
                    "{key}: {addr} is IPv{} but the instance's addresses are IPv{}",
                    if addr.is_ipv6() { 6 } else { 4 },
                    if addr.is_ipv6() { 4 } else { 6 }
                ),
                format!("{key} must be of the same family as addresses; a dual-stack setup is two instances"),
            );
            ok = false;
        } else if vips.iter().any(|v| v.addr == addr) {
            cx.at(
                item.span(),
                format!("{key}: {addr} is one of this instance's own VIPs"),
                format!("{key} takes {example}"),
            );
            ok = false;
        } else if out.contains(&addr) {
            cx.at(
                item.span(),
                format!("{key} lists {addr} twice"),
                "list each address once",
            );
            ok = false;
        } else {
            out.push(addr);
        }
    }
    ok.then_some(out)
}

fn validate_announce(cx: &mut Cx<'_>, raw: &RawAnnounce) -> Option<AnnounceConfig> {
    let count = match &raw.count {
        None => Some(DEFAULT_ANNOUNCE_COUNT),
        Some(c) => cx
            .int_in(c, "count", 1..=100, "count is 1-100 packets per announcement (default 5); every claim is announced, so 0 is not allowed")
            .map(|c| c as u32),
    };
    let spacing = cx.duration(
        raw.spacing.as_ref(),
        "spacing",
        DEFAULT_ANNOUNCE_SPACING,
        Duration::from_millis(1),
        Duration::from_secs(10),
    );
    let refresh = match &raw.refresh {
        None => Some(None),
        Some(r) => cx
            .duration(
                Some(r),
                "refresh",
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )
            .map(Some),
    };
    Some(AnnounceConfig {
        count: count?,
        spacing: spacing?,
        refresh: refresh?,
    })
}

fn validate_notify(cx: &mut Cx<'_>, raw: &RawNotify) -> Option<NotifyConfig> {
    let mut ok = true;
    let mut hook = |value: &Option<Spanned<RawArgv>>, key: &str| -> Option<Vec<String>> {
        let v = value.as_ref()?;
        let argv = cx.argv(v, key);
        ok &= argv.is_some();
        argv
    };
    let master = hook(&raw.master, "master");
    let backup = hook(&raw.backup, "backup");
    let fault = hook(&raw.fault, "fault");
    let stop = hook(&raw.stop, "stop");
    let timeout = cx.duration(
        raw.timeout.as_ref(),
        "timeout",
        DEFAULT_NOTIFY_TIMEOUT,
        Duration::from_millis(100),
        Duration::from_secs(3600),
    );
    Some(NotifyConfig {
        master,
        backup,
        fault,
        stop,
        timeout: timeout?,
    })
    .filter(|_| ok)
}

fn validate_check(
    cx: &mut Cx<'_>,
    spanned: &Spanned<RawCheck>,
    instance: &str,
) -> Option<CheckConfig> {
    let raw = spanned.get_ref();
    let table = spanned.span();
    let mut ok = true;

    let name = match &raw.name {
        None => {
            cx.missing(
                table.clone(),
                "name",
                &format!("a check of instance {instance}"),
                "name = \"smb\"",
            );
            None
        }
        Some(n) if !is_valid_name(n.get_ref()) => {
            cx.at(
                n.span(),
                format!("check name \"{}\" is not a valid name", n.get_ref()),
                "use 1-32 characters from a-z, 0-9, _ and -, e.g. name = \"smb\"",
            );
            None
        }
        Some(n) => Some(n.get_ref().clone()),
    };
    let label = name.clone().unwrap_or_else(|| "this check".into());

    // Which optional keys each kind takes; the rest are errors (a key that silently does nothing misleads).
    let present: [(&str, Option<Range<usize>>); 5] = [
        ("target", raw.target.as_ref().map(|v| v.span())),
        ("url", raw.url.as_ref().map(|v| v.span())),
        (
            "expect_status",
            raw.expect_status.as_ref().map(|v| v.span()),
        ),
        ("expect_body", raw.expect_body.as_ref().map(|v| v.span())),
        ("command", raw.command.as_ref().map(|v| v.span())),
    ];
    let kind_name = raw.kind.as_ref().map(|k| k.get_ref().as_str());
    let (allowed, usage): (&[&str], &str) = match kind_name {
        Some("icmp") => (&["target"], "an icmp check takes target = \"192.0.2.254\""),
        Some("tcp") => (&["target"], "a tcp check takes target = \"127.0.0.1:445\""),
        Some("http") => (
            &["url", "expect_status", "expect_body"],
            "an http check takes url = \"http://127.0.0.1:8080/health\", and optionally expect_status and expect_body",
        ),
        Some("exec") => (&["command"], "an exec check takes command = [\"/usr/local/bin/check-nfs\", \"--quick\"]"),
        _ => (&["target", "url", "expect_status", "expect_body", "command"], ""),
    };
    if let Some(kind) = kind_name.filter(|_| !usage.is_empty()) {
        for (key, span) in &present {
            if let Some(span) = span {
                if !allowed.contains(key) {
                    cx.at(
                        span.clone(),
                        format!("check {label}: `{key}` does not apply to kind = \"{kind}\""),
                        format!("{usage}; remove `{key}`"),
                    );
                    ok = false;
                }
            }
        }
    }

    let kind = match (&raw.kind, kind_name) {
        (None, _) => {
            cx.missing(
                table.clone(),
                "kind",
                &format!("check {label}"),
                "kind = \"tcp\" (one of icmp, tcp, http, exec)",
            );
            None
        }
        (Some(_), Some("icmp")) => match &raw.target {
            None => {
                cx.missing(
                    table.clone(),
                    "target",
                    &format!("icmp check {label}"),
                    "target = \"192.0.2.254\"",
                );
                None
            }
            Some(t) => match t.get_ref().parse::<IpAddr>() {
                Ok(target) => Some(CheckKind::Icmp { target }),
                Err(_) => {
                    cx.at(
                        t.span(),
                        format!("check {label}: target \"{}\" is not an IP address", t.get_ref()),
                        "an icmp check pings an IP address (no host names, no port), e.g. target = \"192.0.2.254\"",
                    );
                    None
                }
            },
        },
        (Some(_), Some("tcp")) => match &raw.target {
            None => {
                cx.missing(
                    table.clone(),
                    "target",
                    &format!("tcp check {label}"),
                    "target = \"127.0.0.1:445\"",
                );
                None
            }
            Some(t) => match t.get_ref().parse::<SocketAddr>() {
                Ok(target) if target.port() != 0 => Some(CheckKind::Tcp { target }),
                _ => {
                    cx.at(
                        t.span(),
                        format!("check {label}: target \"{}\" is not an ADDRESS:PORT", t.get_ref()),
                        "a tcp check connects to an IP and port (no host names), e.g. target = \"127.0.0.1:445\" or \"[2001:db8::10]:445\"",
                    );
                    None
                }
            },
        },
        (Some(_), Some("http")) => {
            let url = match &raw.url {
                None => {
                    cx.missing(
                        table.clone(),
                        "url",
                        &format!("http check {label}"),
                        "url = \"http://127.0.0.1:8080/health\"",
                    );
                    None
                }
                Some(u) => match check_http_url(u.get_ref()) {
                    Ok(()) => Some(u.get_ref().clone()),
                    Err(e) => {
                        cx.at(
                            u.span(),
                            format!("check {label}: url \"{}\" {e}", u.get_ref()),
                            "write a plain http URL to a local health endpoint, e.g. url = \"http://127.0.0.1:8080/health\"",
                        );
                        None
                    }
                },
            };
            let expect_status = match &raw.expect_status {
                None => Some(None),
                Some(s) => cx
                    .int_in(
                        s,
                        "expect_status",
                        100..=599,
                        "expect_status is an HTTP status, 100-599; leave it out to accept any 2xx",
                    )
                    .map(|s| Some(s as u16)),
            };
            let expect_body = match &raw.expect_body {
                Some(b) if b.get_ref().is_empty() => {
                    cx.at(
                        b.span(),
                        "expect_body is empty, so it checks nothing",
                        "give the text the body must contain, or remove the key",
                    );
                    None
                }
                other => Some(other.as_ref().map(|b| b.get_ref().clone())),
            };
            (|| {
                Some(CheckKind::Http {
                    url: url?,
                    expect_status: expect_status?,
                    expect_body: expect_body?,
                })
            })()
        }
        (Some(_), Some("exec")) => match &raw.command {
            None => {
                cx.missing(
                    table.clone(),
                    "command",
                    &format!("exec check {label}"),
                    "command = [\"/usr/local/bin/check-nfs\", \"--quick\"]",
                );
                None
            }
            Some(c) => cx
                .argv(c, "command")
                .map(|command| CheckKind::Exec { command }),
        },
        (Some(k), Some(other)) => {
            cx.at(
                k.span(),
                format!("check {label}: kind \"{other}\" is not a check kind"),
                "kind is one of \"icmp\" (ping target), \"tcp\" (connect to target), \"http\" (GET url), \"exec\" (run command)",
            );
            None
        }
        (Some(_), None) => None,
    };

    let interval = cx.duration(
        raw.interval.as_ref(),
        "interval",
        DEFAULT_CHECK_INTERVAL,
        Duration::from_millis(10),
        Duration::from_secs(3600),
    );
    // Without a timeout the default is 1s, or half a shorter interval, so `interval = "200ms"` alone is valid.
    let timeout = match (&raw.timeout, interval) {
        (None, Some(i)) => Some(DEFAULT_CHECK_TIMEOUT.min(i / 2)),
        (None, None) => None,
        (Some(t), interval) => cx.any_duration(t, "timeout").and_then(|d| {
            if d.is_zero() {
                cx.at(t.span(), format!("check {label}: timeout is zero"), "give the check time to answer, e.g. timeout = \"1s\"");
                return None;
            }
            match interval {
                Some(i) if d >= i => {
                    cx.at(
                        t.span(),
                        format!(
                            "check {label}: timeout {} is not shorter than interval {}",
                            format_duration(d),
                            format_duration(i)
                        ),
                        format!(
                            "a check must finish before the next one starts: use a timeout below {} (e.g. \"{}\") or a longer interval",
                            format_duration(i),
                            format_duration(i / 2)
                        ),
                    );
                    None
                }
                _ => Some(d),
            }
        }),
    };
    let rise = match &raw.rise {
        None => Some(DEFAULT_CHECK_RISE),
        Some(r) => cx
            .int_in(
                r,
                "rise",
                1..=100,
                "rise is 1-100 consecutive successes (default 2)",
            )
            .map(|r| r as u32),
    };
    let fall = match &raw.fall {
        None => Some(DEFAULT_CHECK_FALL),
        Some(f) => cx
            .int_in(
                f,
                "fall",
                1..=100,
                "fall is 1-100 consecutive failures (default 3)",
            )
            .map(|f| f as u32),
    };
    let weight = match &raw.weight {
        None => Some(None),
        Some(w) if *w.get_ref() == 0 => {
            cx.at(
                w.span(),
                format!("check {label}: weight 0 would make a failing check do nothing"),
                "use a negative weight such as -60 to lower the priority, or remove weight so a failing check means FAULT",
            );
            None
        }
        Some(w) => cx
            .int_in(w, "weight", -254..=254, "weight is -254 to 254 (not 0); a failing check adds it to the priority, e.g. weight = -60")
            .map(|w| Some(w as i32)),
    };

    if !ok {
        return None;
    }
    Some(CheckConfig {
        name: name?,
        kind: kind?,
        interval: interval?,
        timeout: timeout?,
        rise: rise?,
        fall: fall?,
        weight: weight?,
    })
}

fn check_http_url(url: &str) -> Result<(), &'static str> {
    if url.starts_with("https://") {
        return Err("uses https, which http checks do not speak");
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("does not start with http://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err("has no host");
    }
    if authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err("has an invalid host part");
    }
    if url.contains(char::is_whitespace) {
        return Err("contains spaces");
    }
    Ok(())
}

fn cross_instance(cx: &mut Cx<'_>, facts: &[Facts]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut routers: HashMap<(&str, u8, bool), (usize, String)> = HashMap::new();
    let mut vips: HashMap<IpAddr, String> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        let name = f.name.as_ref().map(|n| n.get_ref().as_str());
        let label = name.map_or_else(
            || format!("instance #{}", i + 1),
            |n| format!("instance {n}"),
        );
        if let Some(n) = &f.name {
            if let Some(first) = names.get(n.get_ref().as_str()) {
                let (line, _) = position(
                    cx.text,
                    facts[*first].name.as_ref().map_or(0, |n| n.span().start),
                );
                cx.at(
                    n.span(),
                    format!("instance name \"{}\" is already used (line {line})", n.get_ref()),
                    "give each instance its own name: status, logs and commands like `floatip takeover NAME` use it",
                );
            } else {
                names.insert(n.get_ref(), i);
            }
        }
        if let (Some(ifname), Some((vrid, span)), Some(v6)) = (&f.interface, &f.vrid, f.is_v6) {
            let key = (ifname.as_str(), *vrid, v6);
            if let Some((_, other)) = routers.get(&key) {
                cx.at(
                    span.clone(),
                    format!(
                        "{label} uses vrid {vrid} on {ifname} for IPv{}, like {other}",
                        if v6 { 6 } else { 4 }
                    ),
                    "one VRID is one virtual router on a LAN: give each instance on the same interface and family its own vrid",
                );
            } else {
                routers.insert(key, (i, label.clone()));
            }
        }
        for (vip, span) in &f.vips {
            if let Some(other) = vips.get(&vip.addr) {
                cx.at(
                    span.clone(),
                    format!("{} is already managed by {other}", vip.addr),
                    "two instances may not share a VIP (they would fight over it); keep it in one of them",
                );
            } else {
                vips.insert(vip.addr, label.clone());
            }
        }
    }
}

/// Parses "ADDR/LEN" into a [`Vip`], or says what is wrong and how to write it (`(what, hint)`).
fn parse_vip(s: &str) -> Result<Vip, (String, String)> {
    let example = "write ADDR/LEN with the prefix length of the LAN, e.g. \"192.0.2.97/24\" or \"2001:db8::97/64\"";
    let Some((addr, len)) = s.trim().split_once('/') else {
        return Err((
            format!("\"{s}\" has no prefix length"),
            format!("{example} (the prefix decides the VIP's subnet route and broadcast address)"),
        ));
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        (
            format!("\"{s}\": \"{addr}\" is not an IP address"),
            example.to_string(),
        )
    })?;
    let max: u8 = if addr.is_ipv6() { 128 } else { 32 };
    let prefix_len: u8 = match len.parse::<u8>() {
        Ok(l) if (1..=max).contains(&l) => l,
        _ => {
            return Err((
                format!("\"{s}\": prefix length \"{len}\" is not 1-{max}"),
                format!(
                    "{example}; an IPv{} prefix is 1-{max}",
                    if addr.is_ipv6() { 6 } else { 4 }
                ),
            ))
        }
    };
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err((
            format!("{s} cannot be a service address (unspecified, multicast or loopback)"),
            "a VIP is a unicast address of the LAN the interface is on, e.g. \"192.0.2.97/24\""
                .into(),
        ));
    }
    if let IpAddr::V4(v4) = addr {
        if v4.is_broadcast() {
            return Err((format!("{s} is the broadcast address"), example.into()));
        }
        if prefix_len <= 30 {
            let host_mask = u32::MAX >> prefix_len;
            let host = u32::from(v4) & host_mask;
            if host == 0 {
                return Err((
                    format!("{s} is the network address of its subnet"),
                    "pick a host address inside the subnet (not the first one), e.g. \"192.0.2.97/24\"".into(),
                ));
            }
            if host == host_mask {
                return Err((
                    format!("{s} is the broadcast address of its subnet"),
                    "pick a host address inside the subnet (not the last one), e.g. \"192.0.2.97/24\"".into(),
                ));
            }
        }
    }
    Ok(Vip { addr, prefix_len })
}
