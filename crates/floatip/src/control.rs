//! The control socket: one protocol definition shared by the daemon and the CLI, its server, its
//! client, the human rendering of `floatip status`, the CLI commands that talk to the daemon, and the
//! overrides file that keeps takeover/release across restarts.
//!
//! Wire format (stable; `docs/status-json.md` documents the status part): newline-delimited JSON over a
//! Unix stream socket, one request line and one response line per connection.
//!
//! ```text
//! -> {"version":1,"request":{"type":"status","instance":null}}
//! <- {"version":1,"response":{"type":"status","instances":[...]}}
//! ```
//!
//! The socket is root-only (mode 0600): whoever can talk to it can move the VIP.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Bumped when a request or response changes incompatibly. Adding a field to [`InstanceStatus`] is
/// compatible and does not bump it.
pub const PROTOCOL_VERSION: u32 = 1;
/// The default control socket (`[daemon] socket`, `--socket`, `FLOATIP_SOCKET` override it).
pub const DEFAULT_SOCKET: &str = "/run/floatip/floatip.sock";
/// The longest request line the daemon reads. A status request is about 60 bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long either side waits for the other before giving up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The name of the overrides file inside the state directory.
pub const OVERRIDES_FILE: &str = "overrides.json";

// ---------------------------------------------------------------------------------------------------
// Protocol
// ---------------------------------------------------------------------------------------------------

/// What the CLI asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// One instance (`Some(name)`) or all of them.
    Status { instance: Option<String> },
    /// Become master now and stay preferred until `Auto`.
    Takeover { instance: String },
    /// Step down and never claim until `Auto`. Without `force` the daemon refuses when no peer was heard
    /// recently (releasing would leave the VIP unowned).
    Release { instance: String, force: bool },
    /// Back to the configured behaviour.
    Auto { instance: String },
    /// Re-read the configuration file.
    Reload,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Status {
        instances: Vec<InstanceStatus>,
    },
    /// A command was carried out; `message` says what happened, for a person.
    Done {
        message: String,
    },
    /// A command was refused or failed; `message` says why and what to do.
    Error {
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct RequestEnvelope {
    version: u32,
    request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
struct ResponseEnvelope {
    version: u32,
    response: Response,
}

/// One request as the line the client sends (without the newline).
pub fn encode_request(request: &Request) -> String {
    serde_json::to_string(&RequestEnvelope {
        version: PROTOCOL_VERSION,
        request: request.clone(),
    })
    .expect("a request always serializes")
}

/// One response as the line the daemon sends (without the newline).
pub fn encode_response(response: &Response) -> String {
    serde_json::to_string(&ResponseEnvelope {
        version: PROTOCOL_VERSION,
        response: response.clone(),
    })
    .expect("a response always serializes")
}

const REQUEST_EXAMPLE: &str = r#"{"version":1,"request":{"type":"status","instance":null}}"#;

/// Parses one request line. The `Err` is the message of the [`Response::Error`] to send back.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        format!("malformed request (not JSON: {e}); send one JSON object per line, like {REQUEST_EXAMPLE}")
    })?;
    let version = value.get("version").ok_or_else(|| {
        format!("malformed request: no \"version\" field; expected {REQUEST_EXAMPLE}")
    })?;
    if version.as_u64() != Some(u64::from(PROTOCOL_VERSION)) {
        return Err(format!(
            "control protocol version {version} is not supported: this daemon speaks version \
             {PROTOCOL_VERSION}; use the floatip CLI from the same release as the running daemon \
             (after an upgrade, restart the daemon)"
        ));
    }
    let env: RequestEnvelope = serde_json::from_value(value).map_err(|e| {
        format!("malformed request: {e}; expected something like {REQUEST_EXAMPLE}")
    })?;
    Ok(env.request)
}

/// Parses one response line, as the client receives it.
pub fn parse_response(line: &[u8]) -> anyhow::Result<Response> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .context("the daemon sent something that is not JSON (is that socket really floatip's?)")?;
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        bail!(
            "the daemon speaks control protocol version {}, this floatip speaks {PROTOCOL_VERSION}; \
             run the floatip CLI from the same release as the daemon (after an upgrade, restart the daemon)",
            version.map_or_else(|| "(none)".to_string(), |v| v.to_string())
        );
    }
    let env: ResponseEnvelope = serde_json::from_value(value)
        .context("the daemon sent a response this floatip cannot read")?;
    Ok(env.response)
}

// ---------------------------------------------------------------------------------------------------
// Status (stable JSON: docs/status-json.md)
// ---------------------------------------------------------------------------------------------------

/// Everything `floatip status` shows about one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 2 or 3.
    pub version: u8,
    /// "MASTER", "BACKUP", "FAULT" or "INIT".
    pub state: String,
    /// When the last transition happened (unix seconds); `None` before the first one.
    pub since: Option<f64>,
    /// Why the last transition happened; `None` before the first one.
    pub reason: Option<String>,
    pub priority: PriorityStatus,
    pub vips: Vec<VipStatus>,
    /// The master as seen on the wire, or ourselves (`is_self`) while we are master.
    pub master: Option<MasterStatus>,
    /// Every VRRP speaker heard on this VRID (ourselves excluded), by address.
    pub speakers: Vec<SpeakerStatus>,
    pub counters: CountersStatus,
    /// "takeover" or "release"; `None` = automatic.
    #[serde(rename = "override")]
    pub override_mode: Option<OverrideMode>,
    /// Why this node does not claim the VIP now (witness unreachable, ...); `None` = free to claim.
    pub claim_inhibit: Option<String>,
    /// Other hosts seen answering for our VIPs.
    pub conflicts: Vec<ConflictStatus>,
    pub checks: Vec<CheckStatus>,
    /// The last transitions, oldest first, newest last; at most [`HISTORY_MAX`].
    pub history: Vec<HistoryEntry>,
}

/// How many transitions [`InstanceStatus::history`] carries.
pub const HISTORY_MAX: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityStatus {
    pub configured: u8,
    /// The priority we advertise now.
    pub effective: u8,
    pub why_different: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipStatus {
    /// "192.0.2.97/24"
    pub address: String,
    /// Whether the kernel has the address on the interface right now.
    pub present_in_kernel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterStatus {
    pub address: IpAddr,
    /// True when the master is this node.
    #[serde(rename = "self")]
    pub is_self: bool,
    pub priority: u8,
    pub interval_ms: u64,
    /// Age of the last advert heard from it; `None` when the master is this node.
    pub last_advert_age_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerStatus {
    pub address: IpAddr,
    pub priority: u8,
    pub interval_ms: u64,
    /// How many addresses its last advert listed.
    pub addresses: usize,
    pub last_heard_age_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersStatus {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    /// Received adverts dropped, by reason label (e.g. "ttl", "vrid", "checksum").
    pub drops: BTreeMap<String, u64>,
    /// How often our VIP vanished while we were master and was put back.
    pub vip_restored: u64,
    /// State changes since the daemon started, keyed "FROM->TO" (e.g. "BACKUP->MASTER").
    #[serde(default)]
    pub transitions: BTreeMap<String, u64>,
    /// Conflicts confirmed since the daemon started (another MAC answering for our VIP).
    #[serde(default)]
    pub conflicts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideMode {
    Takeover,
    Release,
}

impl OverrideMode {
    /// `None` for `Auto` (no override).
    pub fn from_vrrp(o: vrrp::Override) -> Option<OverrideMode> {
        match o {
            vrrp::Override::Takeover => Some(OverrideMode::Takeover),
            vrrp::Override::Release => Some(OverrideMode::Release),
            vrrp::Override::Auto => None,
        }
    }

    pub fn to_vrrp(self) -> vrrp::Override {
        match self {
            OverrideMode::Takeover => vrrp::Override::Takeover,
            OverrideMode::Release => vrrp::Override::Release,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictStatus {
    /// The VIP someone else answered for.
    pub address: IpAddr,
    /// "02:00:00:00:00:02"
    pub mac: String,
    pub last_seen_age_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    pub name: String,
    pub healthy: bool,
    /// Duration of the last run.
    pub latency_ms: Option<f64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds.
    pub at: f64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The state as status shows it: "MASTER", "BACKUP", "FAULT", "INIT".
pub fn state_name(state: vrrp::State) -> &'static str {
    match state {
        vrrp::State::Initialize => "INIT",
        vrrp::State::Backup => "BACKUP",
        vrrp::State::Master => "MASTER",
        vrrp::State::Fault => "FAULT",
    }
}

/// A MAC as "02:00:00:00:00:02".
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn unix_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn age_ms(now: Instant, then: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(then).as_millis()).unwrap_or(u64::MAX)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One speaker as the daemon tracks it (`daemon::Speaker` plus its address).
#[derive(Debug, Clone)]
pub struct SpeakerFacts {
    pub address: IpAddr,
    pub priority: u8,
    pub interval_cs: u16,
    pub addresses: usize,
    pub last_heard: Instant,
}

/// One transition as the daemon records it (`daemon::Record`).
#[derive(Debug, Clone)]
pub struct RecordFacts {
    pub at: SystemTime,
    pub from: vrrp::State,
    pub to: vrrp::State,
    pub reason: String,
}

/// What the daemon knows about one instance, as plain data: the input of [`status_from_facts`].
///
/// The daemon fills it from its `Runtime` (config, `vrrp::Instance` getters, speakers, history,
/// counters); keeping it plain lets the status logic be tested without a kernel or a running core.
/// [`instance_status`] builds it from the daemon's `Runtime`.
#[derive(Debug, Clone)]
pub struct InstanceFacts {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: vrrp::Version,
    pub configured_priority: u8,
    /// `core.effective_priority()`
    pub effective_priority: u8,
    /// Why the effective priority differs, when the daemon knows better than the generic text (for
    /// example "check smb failing: weight -60").
    pub priority_note: Option<String>,
    /// `core.state()`
    pub state: vrrp::State,
    /// `core.override_mode()`
    pub override_mode: Option<vrrp::Override>,
    /// The configured VIPs with their prefix lengths.
    pub vips: Vec<(IpAddr, u8)>,
    /// Our advert source address.
    pub primary: IpAddr,
    /// `core.current_interval()`
    pub interval: Duration,
    /// `core.master_seen().cloned()`
    pub master_seen: Option<vrrp::machine::MasterSeen>,
    pub speakers: Vec<SpeakerFacts>,
    /// Oldest first.
    pub history: Vec<RecordFacts>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    pub drops: BTreeMap<String, u64>,
    pub vip_restored: u64,
    /// Transitions by (from, to) since start.
    pub transitions: BTreeMap<String, u64>,
    pub conflicts_total: u64,
    pub claim_inhibit: Option<String>,
    pub conflicts: Vec<ConflictStatus>,
    pub checks: Vec<CheckStatus>,
}

/// Builds the status of one instance from plain facts. `present` is every address the kernel has on the
/// instance's interface now; `now` is the clock the daemon's `Instant`s come from.
pub fn status_from_facts(
    facts: &InstanceFacts,
    present: &[IpAddr],
    now: Instant,
) -> InstanceStatus {
    let last = facts.history.last();
    let version = match facts.version {
        vrrp::Version::V2 => 2,
        vrrp::Version::V3 => 3,
    };
    let override_mode = facts.override_mode.and_then(OverrideMode::from_vrrp);
    let why_different = if override_mode == Some(OverrideMode::Takeover) {
        Some(format!(
            "takeover override: advertising {} until `floatip auto {}`",
            facts.effective_priority, facts.name
        ))
    } else if facts.effective_priority == facts.configured_priority {
        None
    } else if facts.effective_priority == 0 {
        Some("stepping down: advertising 0 so a backup takes over at once".to_string())
    } else {
        Some(
            facts
                .priority_note
                .clone()
                .unwrap_or_else(|| "changed by health-check weights".to_string()),
        )
    };
    let master = if facts.state == vrrp::State::Master {
        Some(MasterStatus {
            address: facts.primary,
            is_self: true,
            priority: facts.effective_priority,
            interval_ms: ms(facts.interval),
            last_advert_age_ms: None,
        })
    } else {
        facts.master_seen.as_ref().map(|m| MasterStatus {
            address: m.address,
            is_self: false,
            priority: m.priority,
            interval_ms: ms(m.interval),
            last_advert_age_ms: Some(age_ms(now, m.last_heard)),
        })
    };
    let mut speakers: Vec<SpeakerStatus> = facts
        .speakers
        .iter()
        .filter(|s| s.address != facts.primary)
        .map(|s| SpeakerStatus {
            address: s.address,
            priority: s.priority,
            interval_ms: u64::from(s.interval_cs) * 10,
            addresses: s.addresses,
            last_heard_age_ms: age_ms(now, s.last_heard),
        })
        .collect();
    speakers.sort_by_key(|s| s.address);
    let skip = facts.history.len().saturating_sub(HISTORY_MAX);
    InstanceStatus {
        name: facts.name.clone(),
        interface: facts.interface.clone(),
        vrid: facts.vrid,
        version,
        state: state_name(facts.state).to_string(),
        since: last.map(|r| unix_secs(r.at)),
        reason: last.map(|r| r.reason.clone()),
        priority: PriorityStatus {
            configured: facts.configured_priority,
            effective: facts.effective_priority,
            why_different,
        },
        vips: facts
            .vips
            .iter()
            .map(|(addr, len)| VipStatus {
                address: format!("{addr}/{len}"),
                present_in_kernel: present.contains(addr),
            })
            .collect(),
        master,
        speakers,
        counters: CountersStatus {
            adverts_sent: facts.adverts_sent,
            adverts_received: facts.adverts_received,
            send_errors: facts.send_errors,
            drops: facts.drops.clone(),
            vip_restored: facts.vip_restored,
            transitions: facts.transitions.clone(),
            conflicts: facts.conflicts_total,
        },
        override_mode,
        claim_inhibit: facts.claim_inhibit.clone(),
        conflicts: facts.conflicts.clone(),
        checks: facts.checks.clone(),
        history: facts.history[skip..]
            .iter()
            .map(|r| HistoryEntry {
                at: unix_secs(r.at),
                from: state_name(r.from).to_string(),
                to: state_name(r.to).to_string(),
                reason: r.reason.clone(),
            })
            .collect(),
    }
}

/// The answer to `Status { instance }`: all instances, the named one, or an error listing the names.
pub fn select_instances(all: Vec<InstanceStatus>, instance: Option<&str>) -> Response {
    let Some(name) = instance else {
        return Response::Status { instances: all };
    };
    if all.iter().any(|i| i.name == name) {
        return Response::Status {
            instances: all.into_iter().filter(|i| i.name == name).collect(),
        };
    }
    Response::Error {
        message: unknown_instance(name, all.iter().map(|i| i.name.as_str())),
    }
}

/// "no instance named X (configured: files, web)": for every command that names an instance.
pub fn unknown_instance<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let known: Vec<&str> = known.collect();
    if known.is_empty() {
        format!("no instance named {name}: this daemon manages no instances")
    } else {
        format!(
            "no instance named {name} (configured: {}; see `floatip status`)",
            known.join(", ")
        )
    }
}

// ---------------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------------

/// One request from a client, handed to the daemon loop, which answers on `reply`.
#[derive(Debug)]
pub struct ControlCall {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// Removes the socket file when dropped, if the file is still the one we created.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// A bound control socket (mode 0600). Dropping it removes the socket file.
#[derive(Debug)]
pub struct ControlListener {
    listener: std::os::unix::net::UnixListener,
    guard: SocketGuard,
}

impl ControlListener {
    pub fn path(&self) -> &Path {
        &self.guard.path
    }
}

/// Binds the control socket at `path`, so the daemon can do it before it reports READY: creates the
/// parent directory (0755) if missing, refuses if another daemon answers there, replaces a stale
/// socket file, and makes the socket 0600 before it appears at `path` (bound under a temporary name,
/// chmod, then renamed into place). Works outside a tokio runtime.
pub fn bind(path: &Path) -> anyhow::Result<ControlListener> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("cannot create {} for the control socket", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match StdUnixStream::connect(path) {
            Ok(_) => bail!(
                "another floatip is running on {}: stop it first (`systemctl stop floatip`), or give \
                 this one its own socket (--socket or [daemon] socket)",
                path.display()
            ),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                // Nobody listens: a daemon that was killed left it behind.
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale control socket {}", path.display())
                })?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot tell whether a floatip daemon is running on {}",
                        path.display()
                    )
                })
            }
        },
        Ok(_) => bail!(
            "{} exists and is not a socket; move it away or choose another control socket path \
             (--socket or [daemon] socket)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("control socket path {} has no file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e)
            .with_context(|| format!("cannot create the control socket {}", path.display()));
    }
    listener
        .set_nonblocking(true)
        .context("cannot make the control socket non-blocking")?;
    let meta = std::fs::symlink_metadata(path).with_context(|| {
        format!(
            "control socket {} vanished right after binding",
            path.display()
        )
    })?;
    Ok(ControlListener {
        listener,
        guard: SocketGuard {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    })
}

/// Binds `path` and serves it until the daemon loop drops its receiver of `calls` (or this future is
/// dropped). The socket file is removed either way.
pub async fn serve(path: PathBuf, calls: mpsc::Sender<ControlCall>) -> anyhow::Result<()> {
    let listener = bind(&path)?;
    accept_loop(listener, calls).await
}

/// Accepts connections concurrently, each on its own task, until `calls` is closed. Must run inside a
/// tokio runtime. The socket file is removed when this returns or is dropped.
pub async fn accept_loop(
    listener: ControlListener,
    calls: mpsc::Sender<ControlCall>,
) -> anyhow::Result<()> {
    let ControlListener { listener, guard } = listener;
    let listener = tokio::net::UnixListener::from_std(listener)
        .context("cannot register the control socket with the runtime")?;
    let _guard = guard;
    let mut errors = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(handle_connection(stream, calls.clone()));
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait, never exit.
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::warn!("control socket: cannot accept a connection: {err} ({errors} so far)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = calls.closed() => return Ok(()),
        }
    }
}

async fn handle_connection(stream: tokio::net::UnixStream, calls: mpsc::Sender<ControlCall>) {
    let (read, mut write) = stream.into_split();
    let response = match tokio::time::timeout(IO_TIMEOUT, read_request(read)).await {
        Err(_) => Response::Error {
            message: format!("no complete request line within {}s", IO_TIMEOUT.as_secs()),
        },
        Ok(Err(message)) => Response::Error { message },
        Ok(Ok(request)) => dispatch(request, &calls).await,
    };
    let mut line = encode_response(&response);
    line.push('\n');
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        write.write_all(line.as_bytes()).await?;
        write.shutdown().await
    })
    .await;
}

async fn read_request(read: tokio::net::unix::OwnedReadHalf) -> Result<Request, String> {
    use tokio::io::AsyncReadExt;
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_REQUEST {
        return Err(format!(
            "request line longer than {MAX_REQUEST} bytes; a request is one short JSON object per line"
        ));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "empty request; send one JSON object per line, like {REQUEST_EXAMPLE}"
        ));
    }
    parse_request(&line)
}

async fn dispatch(request: Request, calls: &mpsc::Sender<ControlCall>) -> Response {
    let (reply, answer) = oneshot::channel();
    if calls.send(ControlCall { request, reply }).await.is_err() {
        return Response::Error {
            message: "the daemon is shutting down; try again once it has restarted".to_string(),
        };
    }
    match answer.await {
        Ok(response) => response,
        Err(_) => Response::Error {
            message: "the daemon dropped the request without answering (is it shutting down?)"
                .to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------------

/// Sends one request and waits (at most [`IO_TIMEOUT`] per step) for the answer.
pub fn call(socket: &Path, request: Request) -> anyhow::Result<Response> {
    let stream = StdUnixStream::connect(socket).map_err(|e| connect_error(socket, &e))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = encode_request(&request);
    line.push('\n');
    (&stream).write_all(line.as_bytes()).with_context(|| {
        format!(
            "cannot send the request to the daemon on {}",
            socket.display()
        )
    })?;
    let mut reader = BufReader::new(&stream);
    let mut answer = Vec::new();
    reader.read_until(b'\n', &mut answer).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            anyhow!(
                "the daemon on {} did not answer within {}s (is it stuck? `journalctl -u floatip`)",
                socket.display(),
                IO_TIMEOUT.as_secs()
            )
        } else {
            anyhow!(
                "cannot read the daemon's answer on {}: {e}",
                socket.display()
            )
        }
    })?;
    if answer.is_empty() {
        bail!(
            "the daemon on {} closed the connection without answering (see `journalctl -u floatip`)",
            socket.display()
        );
    }
    parse_response(&answer)
}

/// Whether an error from [`call`] means that no daemon is there at all.
pub fn is_no_daemon(err: &anyhow::Error) -> bool {
    err.downcast_ref::<NoDaemon>().is_some()
}

/// No daemon listens on the socket (absent, or stale).
#[derive(Debug)]
struct NoDaemon(String);

impl std::fmt::Display for NoDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoDaemon {}

fn connect_error(socket: &Path, e: &std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ECONNREFUSED) | Some(libc::ENOTDIR) => {
            anyhow::Error::new(NoDaemon(format!(
                "no floatip daemon is listening on {} (is `floatip run` started? `systemctl status \
                 floatip`; or pass --socket)",
                socket.display()
            )))
        }
        Some(libc::EACCES) | Some(libc::EPERM) => anyhow!(
            "permission denied on {}: the control socket is root-only; run this as root (sudo floatip ...)",
            socket.display()
        ),
        _ => anyhow!("cannot connect to the floatip daemon on {}: {e}", socket.display()),
    }
}

// ---------------------------------------------------------------------------------------------------
// CLI commands
// ---------------------------------------------------------------------------------------------------

/// `floatip status [NAME] [--json]`. `--json` prints `{"version":1,"instances":[...]}`.
pub fn cmd_status(socket: &Path, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let response = call(
        socket,
        Request::Status {
            instance: name.map(str::to_string),
        },
    )?;
    match response {
        Response::Status { instances } => {
            if json {
                let out =
                    serde_json::json!({ "version": PROTOCOL_VERSION, "instances": instances });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", render(&instances));
            }
            Ok(ExitCode::SUCCESS)
        }
        other => Ok(print_outcome(other)),
    }
}

/// `floatip takeover NAME`
pub fn cmd_takeover(socket: &Path, name: &str) -> anyhow::Result<ExitCode> {
    command(
        socket,
        Request::Takeover {
            instance: name.to_string(),
        },
    )
}

/// `floatip release NAME [--force]`
pub fn cmd_release(socket: &Path, name: &str, force: bool) -> anyhow::Result<ExitCode> {
    command(
        socket,
        Request::Release {
            instance: name.to_string(),
            force,
        },
    )
}

/// `floatip auto NAME`
pub fn cmd_auto(socket: &Path, name: &str) -> anyhow::Result<ExitCode> {
    command(
        socket,
        Request::Auto {
            instance: name.to_string(),
        },
    )
}

/// `floatip reload`
pub fn cmd_reload(socket: &Path) -> anyhow::Result<ExitCode> {
    command(socket, Request::Reload)
}

fn command(socket: &Path, request: Request) -> anyhow::Result<ExitCode> {
    Ok(print_outcome(call(socket, request)?))
}

fn print_outcome(response: Response) -> ExitCode {
    match response {
        Response::Done { message } => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Response::Error { message } => {
            eprintln!("floatip: {message}");
            ExitCode::FAILURE
        }
        Response::Status { .. } => {
            eprintln!(
                "floatip: the daemon answered with a status where a confirmation was expected"
            );
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Human rendering
// ---------------------------------------------------------------------------------------------------

/// `floatip status` for people: one block per instance.
pub fn render(instances: &[InstanceStatus]) -> String {
    render_at(instances, SystemTime::now())
}

/// How many transitions the human form shows (`--json` has all of them).
const HISTORY_SHOWN: usize = 5;

fn render_at(instances: &[InstanceStatus], now: SystemTime) -> String {
    if instances.is_empty() {
        return "no instances configured\n".to_string();
    }
    let now_s = unix_secs(now);
    let mut out = String::new();
    for (n, st) in instances.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        render_one(&mut out, st, now_s);
    }
    out
}

fn line(out: &mut String, label: &str, text: &str) {
    let _ = writeln!(out, "  {:<11}{text}", format!("{label}:"));
}

fn render_one(out: &mut String, st: &InstanceStatus, now_s: f64) {
    let mut head = format!("{}  {}", st.name, st.state);
    if let Some(since) = st.since {
        let _ = write!(
            head,
            " since {} ({})",
            clock(since, now_s),
            human_age_secs(now_s - since)
        );
    }
    let vips: Vec<String> = st
        .vips
        .iter()
        .map(|v| {
            let presence = match (v.present_in_kernel, st.state == "MASTER") {
                (true, _) => "present",
                (false, true) => "MISSING",
                (false, false) => "absent",
            };
            format!("{} {presence}", v.address)
        })
        .collect();
    let _ = writeln!(out, "{head}   {}", vips.join(", "));

    if let Some(reason) = &st.reason {
        line(out, "why", reason);
    }
    line(
        out,
        "vrrp",
        &format!("vrid {} VRRPv{} on {}", st.vrid, st.version, st.interface),
    );
    let p = &st.priority;
    let mut prio = format!("{} (configured {})", p.effective, p.configured);
    if let Some(why) = &p.why_different {
        let _ = write!(prio, ": {why}");
    }
    line(out, "priority", &prio);
    if let Some(mode) = st.override_mode {
        let text = match mode {
            OverrideMode::Takeover => {
                format!("takeover: stays MASTER until `floatip auto {}`", st.name)
            }
            OverrideMode::Release => format!(
                "release: never claims the VIP until `floatip auto {}`",
                st.name
            ),
        };
        line(out, "override", &text);
    }
    if let Some(why) = &st.claim_inhibit {
        line(out, "claim", &format!("inhibited: {why}"));
    }
    let master = match &st.master {
        None => "none heard".to_string(),
        Some(m) if m.is_self => format!(
            "us ({}), adverts every {}",
            m.address,
            human_interval(m.interval_ms)
        ),
        Some(m) => {
            let mut s = format!(
                "{} priority {}, adverts every {}",
                m.address,
                m.priority,
                human_interval(m.interval_ms)
            );
            if let Some(age) = m.last_advert_age_ms {
                let _ = write!(
                    s,
                    ", last heard {} ago",
                    human_age_secs(age as f64 / 1000.0)
                );
            }
            s
        }
    };
    line(out, "master", &master);
    if st.speakers.is_empty() {
        line(out, "speakers", "none heard");
    }
    for (i, s) in st.speakers.iter().enumerate() {
        let text = format!(
            "{} priority {} every {}, heard {} ago",
            s.address,
            s.priority,
            human_interval(s.interval_ms),
            human_age_secs(s.last_heard_age_ms as f64 / 1000.0)
        );
        line(out, if i == 0 { "speakers" } else { "" }, &text);
    }
    let c = &st.counters;
    let dropped: u64 = c.drops.values().sum();
    let mut counters = format!(
        "sent {}, received {}, dropped {dropped}",
        c.adverts_sent, c.adverts_received
    );
    if dropped > 0 {
        let by: Vec<String> = c.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = write!(counters, " ({})", by.join(", "));
    }
    if c.send_errors > 0 {
        let _ = write!(counters, ", send errors {}", c.send_errors);
    }
    if c.vip_restored > 0 {
        let _ = write!(counters, ", VIP restored {}", c.vip_restored);
    }
    line(out, "counters", &counters);
    for (i, cf) in st.conflicts.iter().enumerate() {
        let text = format!(
            "{} also answered by {}, {} ago",
            cf.address,
            cf.mac,
            human_age_secs(cf.last_seen_age_ms as f64 / 1000.0)
        );
        line(out, if i == 0 { "CONFLICT" } else { "" }, &text);
    }
    for (i, ck) in st.checks.iter().enumerate() {
        let mut text = format!(
            "{} {}",
            ck.name,
            if ck.healthy { "healthy" } else { "FAILING" }
        );
        if let Some(l) = ck.latency_ms {
            let _ = write!(text, " ({l:.1}ms)");
        }
        if let Some(e) = &ck.last_error {
            let _ = write!(text, ": {e}");
        }
        line(out, if i == 0 { "checks" } else { "" }, &text);
    }
    let skip = st.history.len().saturating_sub(HISTORY_SHOWN);
    if skip > 0 {
        line(
            out,
            "history",
            &format!("({skip} older in `floatip status --json`)"),
        );
    }
    for (i, h) in st.history[skip..].iter().enumerate() {
        // Reasons start with the new state ("MASTER: ..."), which the arrow already shows.
        let prefix = format!("{}: ", h.to);
        let reason = h.reason.strip_prefix(&prefix).unwrap_or(&h.reason);
        let text = format!("{} {} -> {}  {reason}", clock(h.at, now_s), h.from, h.to);
        line(out, if i == 0 && skip == 0 { "history" } else { "" }, &text);
    }
}

/// "14:02:11" in local time, with the date when it is not today-ish (over 20 hours ago).
fn clock(at: f64, now_s: f64) -> String {
    let secs = at.floor() as i64;
    let Some(tm) = local_time(secs) else {
        return format!("@{secs}");
    };
    if (now_s - at).abs() > 20.0 * 3600.0 {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    } else {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

fn local_time(secs: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::uninit();
    // SAFETY: localtime_r reads `t` and writes a complete `tm` into the buffer we own, returning null
    // (and writing nothing we read) on failure. It is the thread-safe variant.
    let res = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if res.is_null() {
        return None;
    }
    // SAFETY: localtime_r succeeded, so it initialised the whole struct.
    Some(unsafe { tm.assume_init() })
}

/// "0.4s", "12.3s", "3m12s", "2h03m", "3d04h".
fn human_age_secs(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86400, (s % 86400) / 3600)
    }
}

/// "10ms", "1s", "1.5s".
fn human_interval(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

// ---------------------------------------------------------------------------------------------------
// Overrides file
// ---------------------------------------------------------------------------------------------------

/// The overrides that survive a restart, by instance name. A missing file means none.
pub fn load_overrides(state_dir: &Path) -> anyhow::Result<BTreeMap<String, vrrp::Override>> {
    let path = state_dir.join(OVERRIDES_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let stored: BTreeMap<String, OverrideMode> = serde_json::from_slice(&text).map_err(|e| {
        anyhow!(
            "{} is corrupt ({e}); it should look like {{\"files\": \"release\"}}. Delete it \
             (`rm {}`) to put every instance back to automatic, then repeat any takeover/release",
            path.display(),
            path.display()
        )
    })?;
    Ok(stored.into_iter().map(|(k, v)| (k, v.to_vrrp())).collect())
}

/// Writes the overrides atomically (temporary file, fsync, rename). `Auto` entries are not stored:
/// automatic is what a missing entry means.
pub fn save_overrides(
    state_dir: &Path,
    overrides: &BTreeMap<String, vrrp::Override>,
) -> anyhow::Result<()> {
    if !state_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .with_context(|| {
                format!("cannot create the state directory {}", state_dir.display())
            })?;
    }
    let stored: BTreeMap<&str, OverrideMode> = overrides
        .iter()
        .filter_map(|(k, v)| OverrideMode::from_vrrp(*v).map(|m| (k.as_str(), m)))
        .collect();
    let mut text = serde_json::to_string_pretty(&stored)?;
    text.push('\n');
    let path = state_dir.join(OVERRIDES_FILE);
    let tmp = state_dir.join(format!(".{OVERRIDES_FILE}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        // Make the rename itself durable: a reboot right after must not bring back the old file.
        std::fs::File::open(state_dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_intervals_read_well() {
        assert_eq!(human_age_secs(0.42), "0.4s");
        assert_eq!(human_age_secs(192.0), "3m12s");
        assert_eq!(human_age_secs(7380.0), "2h03m");
        assert_eq!(human_interval(1000), "1s");
        assert_eq!(human_interval(10), "10ms");
        assert_eq!(human_interval(1500), "1.5s");
    }

    #[test]
    fn history_is_capped_newest_last() {
        let now = Instant::now();
        let rec = |i: usize| RecordFacts {
            at: UNIX_EPOCH + Duration::from_secs(i as u64),
            from: vrrp::State::Backup,
            to: vrrp::State::Master,
            reason: format!("r{i}"),
        };
        let facts = InstanceFacts {
            name: "files".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: vrrp::Version::V3,
            configured_priority: 150,
            effective_priority: 150,
            priority_note: None,
            state: vrrp::State::Master,
            override_mode: None,
            vips: vec![("192.0.2.97".parse().unwrap(), 24)],
            primary: "192.0.2.1".parse().unwrap(),
            interval: Duration::from_secs(1),
            master_seen: None,
            speakers: vec![],
            history: (0..60).map(rec).collect(),
            adverts_sent: 0,
            adverts_received: 0,
            send_errors: 0,
            drops: BTreeMap::new(),
            vip_restored: 0,
            transitions: BTreeMap::new(),
            conflicts_total: 0,
            claim_inhibit: None,
            conflicts: vec![],
            checks: vec![],
        };
        let st = status_from_facts(&facts, &[], now);
        assert_eq!(st.history.len(), HISTORY_MAX);
        assert_eq!(st.history.last().unwrap().reason, "r59");
        assert_eq!(st.reason.as_deref(), Some("r59"));
        assert!(st.master.unwrap().is_self);
        assert!(!st.vips[0].present_in_kernel);
    }
}
