//! Living under systemd (and without it): where logs go, what the service manager is told
//! (`READY=1`, `STATUS=`, `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`), which capabilities the daemon
//! keeps once its sockets are open.
//!
//! Every function here is a no-op outside systemd (no `NOTIFY_SOCKET`, no `WATCHDOG_USEC`), so the
//! daemon calls them unconditionally.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use caps::{CapSet, Capability};
use sd_notify::NotifyState;
use tracing::field::{Field, Visit};
use tracing::{debug, warn, Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

// ---------------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------------

/// Log format for `run` (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The journal's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Where [`init_logging`] sent the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Journald,
    Stderr,
}

/// True when stderr is the journal stream systemd gave us (`JOURNAL_STREAM` names stderr's device and
/// inode, as sd_journal_stream_fd(3) documents), so a redirected stderr (`floatip run 2>file` inside a
/// unit) still goes where it was redirected.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream
        .to_str()
        .and_then(|s| s.split_once(':'))
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
    else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(meta) => meta.dev() == dev && meta.ino() == ino,
        Err(_) => false,
    }
}

/// The log filter: `RUST_LOG` when set (and valid), else the config's `log_level`, else `info`.
pub fn log_filter(level: Option<&str>) -> EnvFilter {
    // netlink-packet-route warns about every attribute a newer kernel added (each time a link is
    // read); not news at 2am. `RUST_LOG` that names the crate gets what it asks for.
    let quiet = ",netlink_packet_route=error";
    if let Ok(env) = std::env::var("RUST_LOG") {
        let env = if env.contains("netlink_packet_route") {
            env
        } else {
            format!("{env}{quiet}")
        };
        match EnvFilter::try_new(&env) {
            Ok(f) => return f,
            Err(e) => eprintln!("floatip: ignoring RUST_LOG={env:?}: {e}"),
        }
    }
    EnvFilter::try_new(format!("{}{quiet}", level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new(format!("info{quiet}")))
}

/// Sets up tracing (replaces `daemon::init_logging`).
///
/// - `json`: JSON lines on stderr, always (log shippers read them; under systemd they land in the
///   journal as they are).
/// - `text` when stderr is systemd's journal stream: native journal entries with a priority and every
///   field as a journal field (`journalctl -u floatip INSTANCE=files`), the instance name leading the
///   message.
/// - `text` otherwise: human lines on stderr (colour only on a terminal).
///
/// The level comes from `RUST_LOG`, else `level` (the config's `log_level`), else `info`. Call once,
/// after the config is loaded; a second call is ignored.
pub fn init_logging(format: LogFormat, level: Option<&str>) -> LogTarget {
    let filter = log_filter(level);
    if format == LogFormat::Text && stderr_is_journal() {
        if let Ok(layer) = JournaldLayer::connect(Path::new(JOURNAL_SOCKET)) {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init();
            return LogTarget::Journald;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()));
    let _ = match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(fmt.json())
            .try_init(),
        // Under systemd with stderr redirected elsewhere, or no journal socket: still readable.
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init(),
    };
    LogTarget::Stderr
}

/// Native journal protocol (systemd.journal-fields(7), the "native protocol" of systemd-journald):
/// one datagram of `KEY=value` lines per event.
///
/// Why not only the tracing-journald crate: it puts nothing but the message in `MESSAGE`, so
/// `journalctl -u floatip` would show "BACKUP -> MASTER: ..." without saying which instance. Here the
/// instance leads the message ("files: BACKUP -> MASTER: ...") and other fields follow it as
/// `key=value`, while every field is also a journal field of its own.
pub struct JournaldLayer {
    sock: UnixDatagram,
}

impl JournaldLayer {
    pub fn connect(path: &Path) -> io::Result<JournaldLayer> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        Ok(JournaldLayer { sock })
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    instance: Option<String>,
    other: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, name: &str, value: String) {
        match name {
            "message" => self.message = value,
            "instance" => self.instance = Some(value),
            _ => self.other.push((name.to_string(), value)),
        }
    }
}

/// syslog priority of a tracing level.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// A journal field name: upper-case letters, digits and `_`, not starting with `_` or a digit.
fn journal_key(name: &str) -> String {
    let mut key: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if !key.starts_with(|c: char| c.is_ascii_uppercase()) {
        key.insert_str(0, "F_");
    }
    key.truncate(64);
    key
}

/// Appends one field in the native protocol's framing (length-prefixed when the value has a newline).
fn push_field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The journal entry of one event: the bytes sent to the journal socket.
pub fn journal_entry(
    level: &Level,
    target: &str,
    file: Option<&str>,
    line: Option<u32>,
    message: &str,
    instance: Option<&str>,
    other: &[(String, String)],
) -> Vec<u8> {
    let mut text = String::new();
    if let Some(inst) = instance {
        text.push_str(inst);
        text.push_str(": ");
    }
    text.push_str(message);
    for (k, v) in other {
        text.push_str(&format!(" {k}={v}"));
    }
    let mut out = Vec::with_capacity(text.len() + 256);
    push_field(&mut out, "MESSAGE", &text);
    push_field(&mut out, "PRIORITY", &priority(level).to_string());
    push_field(&mut out, "SYSLOG_IDENTIFIER", "floatip");
    push_field(&mut out, "TARGET", target);
    if let Some(f) = file {
        push_field(&mut out, "CODE_FILE", f);
    }
    if let Some(l) = line {
        push_field(&mut out, "CODE_LINE", &l.to_string());
    }
    if let Some(inst) = instance {
        push_field(&mut out, "INSTANCE", inst);
    }
    for (k, v) in other {
        push_field(&mut out, &journal_key(k), v);
    }
    out
}

impl<S: Subscriber> Layer<S> for JournaldLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut entry = journal_entry(
            meta.level(),
            meta.target(),
            meta.file(),
            meta.line(),
            &fields.message,
            fields.instance.as_deref(),
            &fields.other,
        );
        if self.sock.send(&entry).is_err() {
            // Too big for a datagram (a huge message): send it cut short rather than lose it.
            entry.truncate(32 * 1024);
            let cut = entry.iter().rposition(|&b| b == b'\n').unwrap_or(0);
            entry.truncate(cut + 1);
            let _ = self.sock.send(&entry);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// sd_notify
// ---------------------------------------------------------------------------------------------------

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("sd_notify failed: {e}");
    }
}

/// `READY=1` (with a `STATUS=` line): once the sockets are bound and the config is applied.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` before a reload starts; follow with [`ready`] when it is done (applied or refused).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
}

/// `STOPPING=1` when a stop begins (the make-before-break handoff can take a few advert intervals).
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stepping down")]);
}

/// `STATUS=` line: what `systemctl status floatip` shows next to "Status:".
pub fn status(line: &str) {
    notify(&[NotifyState::Status(line)]);
}

/// "files: MASTER; web: BACKUP" from (instance, state name) pairs.
pub fn status_line<'a>(instances: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let parts: Vec<String> = instances
        .into_iter()
        .map(|(name, state)| format!("{name}: {state}"))
        .collect();
    if parts.is_empty() {
        "no instances".to_string()
    } else {
        parts.join("; ")
    }
}

/// The systemd watchdog, kicked from the protocol loop itself: if the loop hangs, the kicks stop and
/// systemd restarts the daemon (the VIP's kernel lifetime covers the gap).
#[derive(Debug)]
pub struct Watchdog {
    interval: Option<Duration>,
    next: Instant,
}

impl Watchdog {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`); disabled when systemd did not ask for it.
    pub fn from_env() -> Watchdog {
        Watchdog::new(sd_notify::watchdog_enabled())
    }

    /// A watchdog with systemd's timeout `timeout` (`None` = disabled); kicks at half of it.
    pub fn new(timeout: Option<Duration>) -> Watchdog {
        let interval = timeout
            .filter(|t| !t.is_zero())
            .map(|t| (t / 2).max(Duration::from_millis(1)));
        Watchdog {
            interval,
            next: Instant::now(),
        }
    }

    /// How often the loop must kick; `None` when the watchdog is off.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Sends `WATCHDOG=1` now.
    pub fn kick(&mut self) {
        if let Some(i) = self.interval {
            notify(&[NotifyState::Watchdog]);
            self.next = Instant::now() + i;
        }
    }

    /// When the next kick is due; `None` when the watchdog is off. The protocol loop wakes for it and
    /// calls [`Watchdog::kick_if_due`]: a loop that hangs stops the kicks.
    pub fn due(&self) -> Option<Instant> {
        self.interval.map(|_| self.next)
    }

    /// Sends `WATCHDOG=1` if it is due at `now`.
    pub fn kick_if_due(&mut self, now: Instant) {
        if self.due().is_some_and(|d| d <= now) {
            self.kick();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------------------------------

/// What the daemon keeps once its sockets are open: addresses and links (netlink), raw sockets
/// (adverts, GARP/NA, probes, SO_BINDTODEVICE for sockets opened on reload).
pub const KEEP: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW];

/// What [`drop_capabilities`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapsOutcome {
    /// Nothing beyond [`KEEP`] was held (a systemd unit with a bounding set, or an unprivileged run).
    NothingToDrop,
    /// Dropped; `bounding` says whether the bounding set was reduced too (needs CAP_SETPCAP).
    Dropped { dropped: usize, bounding: bool },
}

/// Keeps only CAP_NET_ADMIN and CAP_NET_RAW in the effective, permitted and bounding sets (and
/// clears the inheritable and ambient sets), so neither the daemon nor any hook it runs can do more
/// than move addresses and send raw packets.
///
/// Call once, after every socket is open (VRRP, announcers, control, metrics) and before the loop
/// spawns threads: capabilities are per thread on Linux, and threads created later inherit the
/// calling thread's sets, while threads that already exist keep theirs.
pub fn drop_capabilities() -> anyhow::Result<CapsOutcome> {
    use anyhow::Context as _;
    let keep: HashSet<Capability> = KEEP.into_iter().collect();
    let permitted = caps::read(None, CapSet::Permitted).context("reading capabilities")?;
    let bounding = caps::read(None, CapSet::Bounding).unwrap_or_default();
    let extra_permitted = permitted.difference(&keep).count();
    let extra_bounding = bounding.difference(&keep).count();
    if extra_permitted == 0
        && (extra_bounding == 0 || !permitted.contains(&Capability::CAP_SETPCAP))
    {
        return Ok(CapsOutcome::NothingToDrop);
    }
    let mut reduced_bounding = false;
    if permitted.contains(&Capability::CAP_SETPCAP) {
        // Bounding first: dropping from it needs CAP_SETPCAP, which goes next.
        caps::raise(None, CapSet::Effective, Capability::CAP_SETPCAP)
            .context("raising CAP_SETPCAP to reduce the bounding set")?;
        for cap in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
        reduced_bounding = extra_bounding > 0;
    }
    // Ambient is best effort: old kernels lack it.
    let _ = caps::clear(None, CapSet::Ambient);
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable set")?;
    let kept: caps::CapsHashSet = permitted.intersection(&keep).copied().collect();
    caps::set(None, CapSet::Effective, &kept).context("reducing the effective set")?;
    caps::set(None, CapSet::Permitted, &kept).context("reducing the permitted set")?;
    Ok(CapsOutcome::Dropped {
        dropped: extra_permitted,
        bounding: reduced_bounding,
    })
}

/// [`drop_capabilities`] with the outcome logged; never fails the daemon (the unit's
/// CapabilityBoundingSet is the first line of defence, this is the second).
pub fn drop_capabilities_logged() {
    match drop_capabilities() {
        Ok(CapsOutcome::NothingToDrop) => {
            debug!("capabilities: nothing beyond CAP_NET_ADMIN and CAP_NET_RAW to drop")
        }
        Ok(CapsOutcome::Dropped { dropped, bounding }) => debug!(
            "capabilities: dropped {dropped} (bounding set {}); keeping CAP_NET_ADMIN and CAP_NET_RAW",
            if bounding { "reduced too" } else { "unchanged" }
        ),
        Err(e) => warn!("cannot drop capabilities (continuing with them): {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_names_every_instance() {
        assert_eq!(
            status_line([("files", "MASTER"), ("web", "BACKUP")]),
            "files: MASTER; web: BACKUP"
        );
        assert_eq!(status_line([]), "no instances");
    }

    #[test]
    fn watchdog_kicks_at_half_the_timeout() {
        assert_eq!(Watchdog::new(None).interval(), None);
        assert_eq!(Watchdog::new(Some(Duration::ZERO)).interval(), None);
        assert_eq!(
            Watchdog::new(Some(Duration::from_secs(10))).interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(Watchdog::new(None).due(), None);
        let w = Watchdog::new(Some(Duration::from_secs(10)));
        assert!(
            w.due().is_some_and(|d| d <= Instant::now()),
            "the first kick is due at once"
        );
    }

    #[test]
    fn journal_entry_leads_with_the_instance() {
        let e = journal_entry(
            &Level::WARN,
            "floatip::daemon",
            Some("src/daemon/mod.rs"),
            Some(7),
            "BACKUP -> MASTER: master down",
            Some("files"),
            &[("vip".into(), "192.0.2.97/24".into())],
        );
        let text = String::from_utf8(e).unwrap();
        assert!(
            text.starts_with("MESSAGE=files: BACKUP -> MASTER: master down vip=192.0.2.97/24\n")
        );
        assert!(text.contains("\nPRIORITY=4\n"));
        assert!(text.contains("\nINSTANCE=files\n"));
        assert!(text.contains("\nVIP=192.0.2.97/24\n"));
        assert!(text.contains("\nSYSLOG_IDENTIFIER=floatip\n"));
    }

    #[test]
    fn multi_line_values_are_length_prefixed() {
        let mut out = Vec::new();
        push_field(&mut out, "MESSAGE", "a\nb");
        assert_eq!(out, b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n");
    }

    #[test]
    fn journal_keys_are_valid() {
        assert_eq!(journal_key("vip"), "VIP");
        assert_eq!(journal_key("log.target"), "LOG_TARGET");
        assert_eq!(journal_key("_x"), "F__X");
        assert_eq!(journal_key("1x"), "F_1X");
    }

    /// The layer's datagrams as a journal would receive them.
    #[test]
    fn layer_sends_native_entries() {
        let dir = std::env::temp_dir().join(format!("floatip-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let journal = UnixDatagram::bind(&path).unwrap();
        journal
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let layer = JournaldLayer::connect(&path).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(instance = "web", "link eth0 is up");
        });
        let mut buf = vec![0u8; 4096];
        let n = journal.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            text.starts_with("MESSAGE=web: link eth0 is up\nPRIORITY=6\n"),
            "{text}"
        );
    }
}
