//! Health checks: one task per configured check, each on its own interval, reporting to the daemon loop.
//!
//! Owns: running the checks (icmp, tcp, http, exec), rise/fall counting ([`RiseFall`]), what the daemon
//! keeps per check for `status` ([`CheckState`]), and turning check health into what the VRRP core
//! understands ([`evaluate`]: a fault reason and an effective priority). Nothing here can delay the
//! protocol loop: every check runs in its own task, every attempt is bounded by the check's `timeout`,
//! and an exec check's process group is killed and reaped when it overruns.
//!
//! Reading of the start state (documented in docs/checks.md): a check is *unknown* until its first
//! attempt, which runs at once; unknown counts as healthy (a booting backup is not in FAULT while its
//! checks run), and the first result decides immediately (a failing service is failing after one
//! attempt, not after `fall`). `rise` and `fall` apply to every change after that.

use std::io::{self, Read as _};
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::config::{CheckConfig, CheckKind};
use crate::exec::{describe_status, human, io_text, run_bounded, Finished};

/// The shortest interval a check runs at, whatever the config says (a zero interval would spin).
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// HTTP: the status line and headers may not exceed this.
const HTTP_MAX_HEAD: usize = 16 * 1024;
/// HTTP: `expect_body` is searched in the first this-many bytes of the body.
const HTTP_MAX_BODY: usize = 64 * 1024;

/// One attempt of one check, as the daemon loop receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Index of the instance in the config.
    pub instance: usize,
    /// Index of the check within the instance.
    pub check: usize,
    /// This attempt succeeded.
    pub ok: bool,
    /// How long this attempt took (up to the timeout).
    pub latency: Duration,
    /// Why this attempt failed, in words ("connect 127.0.0.1:445: connection refused").
    pub error: Option<String>,
    /// The check's health after rise/fall counting.
    pub healthy: bool,
    /// `healthy` changed with this attempt (or this was the first attempt): re-evaluate the instance.
    pub changed: bool,
}

/// Consecutive-result counting: failing after `fall` failures in a row, healthy after `rise` successes in
/// a row. Starts unknown; the first result decides at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    state: Option<bool>,
    /// Consecutive results that disagree with `state`.
    streak: u32,
}

impl RiseFall {
    /// `rise` and `fall` below 1 are taken as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            state: None,
            streak: 0,
        }
    }

    /// Counts one result; returns whether the health changed (the first result always counts as a
    /// change: the health became known).
    pub fn record(&mut self, ok: bool) -> bool {
        match self.state {
            None => {
                self.state = Some(ok);
                self.streak = 0;
                true
            }
            Some(state) if state == ok => {
                self.streak = 0;
                false
            }
            Some(_) => {
                self.streak += 1;
                let needed = if ok { self.rise } else { self.fall };
                if self.streak >= needed {
                    self.state = Some(ok);
                    self.streak = 0;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Healthy, or not yet known (unknown counts as healthy: see the module docs).
    pub fn healthy(&self) -> bool {
        self.state.unwrap_or(true)
    }

    /// At least one result was recorded.
    pub fn known(&self) -> bool {
        self.state.is_some()
    }
}

/// What the daemon keeps per check, for `status`, logs and fault reasons. Update it with
/// [`CheckState::apply`]; evaluate an instance with [`evaluate_states`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    pub name: String,
    /// "tcp 127.0.0.1:445", "http http://127.0.0.1:8080/health", ...
    pub target: String,
    /// Healthy after rise/fall (true while unknown).
    pub healthy: bool,
    /// At least one attempt finished.
    pub known: bool,
    /// The latest attempt succeeded.
    pub last_ok: Option<bool>,
    /// The latest attempt's duration.
    pub latency: Option<Duration>,
    /// The error of the latest failed attempt (kept after later successes, so status can show it).
    pub last_error: Option<String>,
    pub attempts: u64,
    pub failures: u64,
}

impl CheckState {
    pub fn new(check: &CheckConfig) -> Self {
        CheckState {
            name: check.name.clone(),
            target: describe(&check.kind),
            healthy: true,
            known: false,
            last_ok: None,
            latency: None,
            last_error: None,
            attempts: 0,
            failures: 0,
        }
    }

    /// One state per check, in config order (index = `CheckReport::check`).
    pub fn for_checks(checks: &[CheckConfig]) -> Vec<CheckState> {
        checks.iter().map(CheckState::new).collect()
    }

    pub fn apply(&mut self, report: &CheckReport) {
        self.healthy = report.healthy;
        self.known = true;
        self.last_ok = Some(report.ok);
        self.latency = Some(report.latency);
        self.attempts += 1;
        if !report.ok {
            self.failures += 1;
            self.last_error = Some(report.error.clone().unwrap_or_else(|| "failed".to_string()));
        }
    }
}

/// A check's kind and target in a few words, for status and logs.
pub fn describe(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Icmp { target } => format!("icmp {target}"),
        CheckKind::Tcp { target } => format!("tcp {target}"),
        CheckKind::Http { url, .. } => format!("http {url}"),
        CheckKind::Exec { command } => format!("exec {}", command.join(" ")),
    }
}

/// The instance's fault reason and effective priority, from each check's health (`healthy[i]` for
/// `checks[i]`; a missing entry counts as healthy).
///
/// keepalived's semantics: a check without `weight` (or with `weight = 0`) puts the instance in FAULT
/// while failing; a negative weight is subtracted from the priority while the check fails; a positive
/// weight is added while it is healthy. The result is clamped to 1..=254; an address owner (255) stays
/// 255 whatever the checks say (its faults still count).
pub fn evaluate(
    configured_priority: u8,
    checks: &[CheckConfig],
    healthy: &[bool],
) -> (Option<String>, u8) {
    evaluate_with(configured_priority, checks, |i| {
        (healthy.get(i).copied().unwrap_or(true), None)
    })
}

/// [`evaluate`] from the daemon's [`CheckState`]s: the same result, with each failing check's last error
/// in the fault reason ("check smb failing: connect 127.0.0.1:445: connection refused").
pub fn evaluate_states(
    configured_priority: u8,
    checks: &[CheckConfig],
    states: &[CheckState],
) -> (Option<String>, u8) {
    evaluate_with(configured_priority, checks, |i| match states.get(i) {
        Some(s) => (s.healthy, s.last_error.as_deref()),
        None => (true, None),
    })
}

fn evaluate_with<'a>(
    configured_priority: u8,
    checks: &[CheckConfig],
    state: impl Fn(usize) -> (bool, Option<&'a str>),
) -> (Option<String>, u8) {
    let mut faults = Vec::new();
    let mut delta: i64 = 0;
    for (i, check) in checks.iter().enumerate() {
        let (healthy, error) = state(i);
        match check.weight {
            None | Some(0) if !healthy => faults.push(match error {
                Some(e) => format!("check {} failing: {e}", check.name),
                None => format!("check {} failing", check.name),
            }),
            Some(w) if w > 0 && healthy => delta += i64::from(w),
            Some(w) if w < 0 && !healthy => delta += i64::from(w),
            _ => {}
        }
    }
    let priority = if configured_priority == 255 {
        255
    } else {
        (i64::from(configured_priority) + delta).clamp(1, 254) as u8
    };
    let fault = (!faults.is_empty()).then(|| faults.join("; "));
    (fault, priority)
}

/// Running tasks; dropping the set stops them (an exec check's or hook's process group is killed).
#[derive(Debug, Default)]
pub struct TaskSet(Vec<JoinHandle<()>>);

impl TaskSet {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Stop every task now (same as dropping the set).
    pub fn abort(self) {}
}

impl Drop for TaskSet {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl From<Vec<JoinHandle<()>>> for TaskSet {
    fn from(tasks: Vec<JoinHandle<()>>) -> Self {
        TaskSet(tasks)
    }
}

/// Starts one task per check of instance `instance`; each runs its first attempt at once and then every
/// `interval`, and sends a [`CheckReport`] per attempt. Reports whose health did not change are dropped
/// when the channel is full (the loop is busy; the next one will do); a change waits for room. A task
/// ends when the receiver is dropped or the returned set is dropped. Must be called inside a tokio
/// runtime; never blocks.
pub fn spawn(
    instance: usize,
    instance_name: &str,
    checks: &[CheckConfig],
    tx: mpsc::Sender<CheckReport>,
) -> TaskSet {
    checks
        .iter()
        .enumerate()
        .map(|(index, check)| {
            tokio::spawn(run_check(
                instance,
                instance_name.to_string(),
                index,
                check.clone(),
                tx.clone(),
            ))
        })
        .collect::<Vec<_>>()
        .into()
}

async fn run_check(
    instance: usize,
    instance_name: String,
    index: usize,
    check: CheckConfig,
    tx: mpsc::Sender<CheckReport>,
) {
    let mut counter = RiseFall::new(check.rise, check.fall);
    let mut ticker = tokio::time::interval(check.interval.max(MIN_INTERVAL));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let result = run_once(&check.kind, check.timeout).await;
        let latency = started.elapsed();
        let ok = result.is_ok();
        let error = result.err();
        let changed = counter.record(ok);
        let healthy = counter.healthy();
        match (&error, changed) {
            (None, true) => info!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} healthy", check.name
            ),
            (Some(e), true) if !healthy => warn!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} failing: {e}", check.name
            ),
            (Some(e), _) => debug!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} attempt failed: {e}", check.name
            ),
            (None, false) => debug!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} ok", check.name
            ),
        }
        let report = CheckReport {
            instance,
            check: index,
            ok,
            latency,
            error,
            healthy,
            changed,
        };
        if changed {
            if tx.send(report).await.is_err() {
                return;
            }
        } else if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(report) {
            return;
        }
    }
}

/// One attempt of a check, bounded by `timeout`. `Err` carries the reason in words.
pub async fn run_once(kind: &CheckKind, timeout: Duration) -> Result<(), String> {
    match kind {
        // Exec handles its own deadline: on overrun it kills the process group and reaps the child.
        CheckKind::Exec { command } => exec_check(command, timeout).await,
        CheckKind::Icmp { target } => icmp_echo(*target, timeout).await.map(drop),
        CheckKind::Tcp { target } => {
            bounded(timeout, format!("connect {target}"), async {
                TcpStream::connect(target)
                    .await
                    .map(drop)
                    .map_err(|e| format!("connect {target}: {}", io_text(&e)))
            })
            .await
        }
        CheckKind::Http {
            url,
            expect_status,
            expect_body,
        } => {
            bounded(timeout, format!("GET {url}"), async {
                http_check(url, *expect_status, expect_body.as_deref()).await
            })
            .await
        }
    }
}

async fn bounded(
    timeout: Duration,
    what: String,
    attempt: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("{what}: no answer within {}", human(timeout))),
    }
}

// ---------------------------------------------------------------------------------------------------
// HTTP: a minimal HTTP/1.1 GET over plain TCP (http:// only), bounded head and body.

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpUrl {
    /// Host as written, without brackets (an IP literal or a name to resolve).
    host: String,
    port: u16,
    /// The Host header value (with brackets and port as needed).
    authority: String,
    /// Path and query, at least "/".
    path: String,
}

fn parse_url(url: &str) -> Result<HttpUrl, String> {
    let rest = match url.strip_prefix("http://") {
        Some(rest) => rest,
        None if url.starts_with("https://") => {
            return Err(format!(
                "{url}: https is not supported (http:// only; check a TLS service with a tcp or exec check)"
            ))
        }
        None => return Err(format!("{url}: the url must start with http://")),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(format!("{url}: user:password@ in the url is not supported"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{url}: missing ']' after the IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("{url}: unexpected text after ']'")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{url}: bad port {p:?}"))?,
    };
    Ok(HttpUrl {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path,
    })
}

async fn http_check(
    url: &str,
    expect_status: Option<u16>,
    expect_body: Option<&str>,
) -> Result<(), String> {
    let target = parse_url(url)?;
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("GET {url}: resolving {}: {}", target.host, io_text(&e)))?
            .collect(),
    };
    let mut last_error = format!("GET {url}: {} has no address", target.host);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("GET {url}: connect {addr}: {}", io_text(&e)),
        }
    }
    let mut stream = stream.ok_or(last_error)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: floatip-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET {url}: sending the request: {}", io_text(&e)))?;
    let response = read_response(&mut stream, expect_body.is_some())
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status_ok = match expect_status {
        Some(want) => response.status == want,
        None => (200..300).contains(&response.status),
    };
    if !status_ok {
        let want = expect_status.map_or("2xx".to_string(), |s| s.to_string());
        return Err(format!(
            "GET {url}: status {} {}, expected {want}",
            response.status, response.reason
        ));
    }
    if let Some(needle) = expect_body {
        if !contains(&response.body, needle.as_bytes()) {
            let scope = if response.truncated {
                format!(" (first {} KiB searched)", HTTP_MAX_BODY / 1024)
            } else {
                String::new()
            };
            return Err(format!(
                "GET {url}: status {} but the body does not contain {needle:?}{scope}",
                response.status
            ));
        }
    }
    Ok(())
}

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    reason: String,
    body: Vec<u8>,
    /// The body was longer than `HTTP_MAX_BODY` and was cut.
    truncated: bool,
}

/// Reads the status line and headers, and the body if `want_body`.
async fn read_response(
    stream: &mut (impl AsyncRead + Unpin),
    want_body: bool,
) -> Result<HttpResponse, String> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > HTTP_MAX_HEAD {
            return Err(format!(
                "response headers longer than {} KiB",
                HTTP_MAX_HEAD / 1024
            ));
        }
        if read_more(stream, &mut buf, HTTP_MAX_HEAD + 4).await? == 0 {
            return Err(if buf.is_empty() {
                "connection closed without a response".to_string()
            } else {
                "connection closed in the middle of the response headers".to_string()
            });
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code, reason) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").trim(),
    );
    let status = match code.parse::<u16>() {
        Ok(s) if version.starts_with("HTTP/1.") && (100..1000).contains(&s) => s,
        _ => return Err(format!("not an HTTP/1.x status line: {status_line:?}")),
    };
    let mut response = HttpResponse {
        status,
        reason: reason.to_string(),
        body: Vec::new(),
        truncated: false,
    };
    if !want_body {
        return Ok(response);
    }
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let mut body = buf.split_off(head_end);
    // We asked for `Connection: close`: without a length, the body ends when the server closes.
    let want = match (chunked, content_length) {
        (false, Some(len)) => len.min(HTTP_MAX_BODY),
        _ => HTTP_MAX_BODY,
    };
    // Chunked framing takes a few bytes per chunk; read a little more so the decoded body can fill.
    let read_limit = if chunked { want + want / 8 } else { want };
    while body.len() < read_limit {
        if read_more(stream, &mut body, read_limit).await? == 0 {
            break;
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    response.truncated = body.len() > want || content_length.is_some_and(|len| len > want);
    body.truncate(want);
    response.body = body;
    Ok(response)
}

/// Appends at most `limit - buf.len()` bytes; returns how many were read (0 at end of stream).
async fn read_more(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, String> {
    let mut chunk = [0u8; 4096];
    let room = limit.saturating_sub(buf.len()).clamp(1, chunk.len());
    let n = stream
        .read(&mut chunk[..room])
        .await
        .map_err(|e| format!("reading the response: {}", io_text(&e)))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Decodes as much of a chunked body as is present (a cut-off last chunk is kept as far as it goes).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        raw = &raw[eol + 2..];
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        if take < size || raw.len() < size + 2 {
            break;
        }
        raw = &raw[size + 2..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || find(haystack, needle).is_some()
}

async fn exec_check(argv: &[String], timeout: Duration) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err("exec: empty command".to_string());
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut last_line = String::new();
    let finished = run_bounded(cmd, timeout, |_, line| {
        if !line.trim().is_empty() {
            last_line = line.trim().to_string();
        }
    })
    .await
    .map_err(|e| format!("{program}: {}", io_text(&e)))?;
    let with_stderr = |text: String| {
        if last_line.is_empty() {
            text
        } else {
            format!("{text}: {last_line}")
        }
    };
    match finished {
        Finished::Exited(status) if status.success() => Ok(()),
        Finished::Exited(status) => Err(with_stderr(format!(
            "{program}: {}",
            describe_status(status)
        ))),
        Finished::TimedOut { .. } => Err(with_stderr(format!(
            "{program}: no result within {}, killed",
            human(timeout)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------------
// ICMP echo (checks and the witness).

static ICMP_SEQ: AtomicU16 = AtomicU16::new(1);

/// Sends one echo request to `target` and waits up to `timeout` for the matching reply; returns the
/// round-trip time. Uses an unprivileged ping socket (`net.ipv4.ping_group_range`) when allowed, else a
/// raw socket (needs CAP_NET_RAW). `Err` says why in words.
pub async fn icmp_echo(target: IpAddr, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, echo(target)).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(format!("ping {target}: {e}")),
        Err(_) => Err(format!(
            "ping {target}: no echo reply within {}",
            human(timeout)
        )),
    }
}

/// An ICMP socket: `dgram` = a kernel ping socket (the kernel owns the echo id and filters replies; no
/// IP header on receive), else raw (we match id and payload; IPv4 receives include the IP header).
fn open_icmp(target: IpAddr) -> io::Result<(Socket, bool)> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, dgram) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => (s, true),
        Err(dgram_err) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, false),
            Err(raw_err) => {
                return Err(io::Error::new(
                    raw_err.kind(),
                    format!(
                        "cannot open an ICMP socket: ping socket: {}; raw socket: {} \
                         (allow ping sockets with sysctl net.ipv4.ping_group_range, or run with CAP_NET_RAW)",
                        io_text(&dgram_err),
                        io_text(&raw_err)
                    ),
                ))
            }
        },
    };
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::from(SocketAddr::new(target, 0)))?;
    Ok((socket, dgram))
}

async fn echo(target: IpAddr) -> Result<(), String> {
    let (socket, dgram) = open_icmp(target).map_err(|e| io_text(&e))?;
    // SAFETY: the socket2::Socket owns its descriptor, keeps it open until the AsyncFd (which owns the
    // socket) drops it, and always returns the same one from as_raw_fd, which is what register needs.
    let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| io_text(&e.into_parts().1))?;
    let seq = ICMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let id = (std::process::id() as u16) ^ seq.rotate_left(8);
    let mut token = [0u8; 16];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    token[..8].copy_from_slice(b"floatip!");
    token[8..].copy_from_slice(&(nanos as u64).to_be_bytes());

    let v4 = target.is_ipv4();
    let mut request = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    request.extend_from_slice(&id.to_be_bytes());
    request.extend_from_slice(&seq.to_be_bytes());
    request.extend_from_slice(&token);
    if v4 {
        // ICMPv6 checksums are filled in by the kernel (they cover a pseudo-header we do not build).
        let sum = checksum(&request);
        request[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    loop {
        let mut guard = fd.writable().await.map_err(|e| io_text(&e))?;
        match guard.try_io(|s| s.get_ref().send(&request)) {
            Ok(Ok(_)) => break,
            Ok(Err(e)) => return Err(format!("sending the echo request: {}", io_text(&e))),
            Err(_would_block) => continue,
        }
    }
    let reply_type = if v4 { 0 } else { 129 };
    let mut buf = [0u8; 1500];
    loop {
        let mut guard = fd.readable().await.map_err(|e| io_text(&e))?;
        let n = match guard.try_io(|s| {
            let mut sock: &Socket = s.get_ref();
            sock.read(&mut buf)
        }) {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(io_text(&e)),
            Err(_would_block) => continue,
        };
        let mut packet = &buf[..n];
        if v4 && !dgram {
            let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
            packet = packet.get(header..).unwrap_or(&[]);
        }
        if packet.len() < 8 || packet[0] != reply_type {
            continue; // our own request on loopback, or other ICMP traffic a raw socket sees
        }
        let reply_id = u16::from_be_bytes([packet[4], packet[5]]);
        let reply_seq = u16::from_be_bytes([packet[6], packet[7]]);
        // A ping socket's id is chosen by the kernel, which only gives us our own replies.
        let ours =
            reply_seq == seq && (dgram || (reply_id == id && packet[8..].starts_with(&token)));
        if ours {
            return Ok(());
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_fall_first_result_decides() {
        let mut rf = RiseFall::new(2, 3);
        assert!(rf.healthy() && !rf.known());
        assert!(rf.record(false));
        assert!(!rf.healthy() && rf.known());

        let mut rf = RiseFall::new(2, 3);
        assert!(rf.record(true));
        assert!(rf.healthy());
    }

    #[test]
    fn rise_fall_counts_consecutive() {
        let mut rf = RiseFall::new(2, 3);
        rf.record(true);
        assert!(!rf.record(false));
        assert!(!rf.record(false));
        assert!(!rf.record(true)); // breaks the streak
        assert!(!rf.record(false));
        assert!(!rf.record(false));
        assert!(rf.healthy());
        assert!(rf.record(false)); // third in a row
        assert!(!rf.healthy());
        assert!(!rf.record(true));
        assert!(!rf.healthy());
        assert!(rf.record(true));
        assert!(rf.healthy());
    }

    #[test]
    fn rise_fall_zero_is_one() {
        let mut rf = RiseFall::new(0, 0);
        rf.record(true);
        assert!(rf.record(false));
        assert!(rf.record(true));
    }

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/health?x=1").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.path.as_str(),
                u.authority.as_str()
            ),
            ("127.0.0.1", 8080, "/health?x=1", "127.0.0.1:8080")
        );
        let u = parse_url("http://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 80, "/"));
        let u = parse_url("http://localhost?q").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("localhost", "/?q"));
        assert!(parse_url("https://x/")
            .unwrap_err()
            .contains("https is not supported"));
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://x:99999/").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            b"wikipedia"
        );
        assert_eq!(dechunk(b"a\r\nabc"), b"abc");
    }

    #[test]
    fn icmp_checksum() {
        // Echo request id 1 seq 1, no payload: 0x0800 + 0x0001 + 0x0001 = 0x0802 -> !0x0802.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), !0x0802);
    }
}
