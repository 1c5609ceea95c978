//! The event stream (`floatip events`): every transition, priority change, conflict, clash and operator
//! command, as it happens, in the order the daemon loop saw them.
//!
//! Owns: the event record and its two encodings ([`EventRecord`]: one JSON object per line on the wire
//! and for `--json`, [`EventRecord::human`] for people), the daemon's broadcaster ([`EventHub`]: one
//! bounded queue per subscriber, fed by the loop without ever waiting), the daemon's side of a streaming
//! connection ([`serve_stream`]) and the CLI's ([`follow`]).
//!
//! The protocol: the client sends `{"version":1,"request":{"type":"events","name":null}}`; the daemon
//! subscribes it first (so nothing is missed), answers one response line (`done`, or `error` for an
//! unknown name), then writes one [`EventRecord`] per line until the daemon stops, the client goes, or
//! the client falls behind: a subscriber whose queue ([`QUEUE`] records) is full is not waited for;
//! the events it misses are counted, and it gets one final `lagged` record ("lagged: N events
//! dropped") and the connection is closed. What was queued is still written if the client takes it
//! within [`DRAIN_TIMEOUT`], else it counts as dropped too: a reader that never reads costs the daemon
//! nothing once it has lagged (its socket is closed; the lines already in the socket, then the lag
//! record, stay readable on its side). Reconnect to go on.
//!
//! At most [`MAX_STREAMS`] streams at once; one more is refused with a message that says so.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use super::protocol::{Request, Response, IO_TIMEOUT};
use super::status::unix_secs;

/// Records queued per subscriber before it counts as fallen behind.
pub const QUEUE: usize = 256;
/// Event streams served at once (each holds a socket and its queue); one more is refused.
pub const MAX_STREAMS: usize = 32;
/// How long a stream that fell behind may take to read what was queued for it before the daemon
/// writes the lag record and closes it.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The socket buffer of a stream (the kernel doubles it): small, so that a reader that stops falls
/// behind within a few hundred events, and so the lag record still fits once the daemon doubles it.
const STREAM_SNDBUF: usize = 32 * 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A state change (`from`, `to`); the same reason as the status history and the hooks'
    /// `FLOATIP_REASON`, in the hooks' order.
    Transition,
    /// The priority the instance advertises from its checks and track files changed (`priority`,
    /// `previous_priority`).
    Priority,
    /// Another host answers for one of our VIPs while we are master, or we yielded to it.
    Conflict,
    /// A speaker on our VRID advertises other addresses (another virtual router).
    Clash,
    /// An operator's command arrived on the control socket (takeover, release, auto, reload).
    Operator,
    /// The last record of a stream that fell behind (`dropped` events were not delivered).
    Lagged,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Transition => "transition",
            EventKind::Priority => "priority",
            EventKind::Conflict => "conflict",
            EventKind::Clash => "clash",
            EventKind::Operator => "operator",
            EventKind::Lagged => "lagged",
        }
    }
}

/// One event, as one line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Counts every event of the daemon from 1 (a stream of one instance sees gaps).
    pub seq: u64,
    /// Unix seconds.
    pub at: f64,
    pub kind: EventKind,
    /// The instance it is about; absent for daemon-wide events (reload) and group commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The instance's `[[group]]`, or the group a command named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The priority after a `priority` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_priority: Option<u8>,
    /// Events not delivered, in a `lagged` record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Why, for a person ("MASTER: no advert from 192.0.2.2 for 3.61 s (master down)").
    pub reason: String,
}

impl EventRecord {
    /// A record of `kind` about `instance` now; the hub numbers it.
    pub fn new(kind: EventKind, instance: Option<&str>, reason: impl Into<String>) -> EventRecord {
        EventRecord {
            seq: 0,
            at: unix_secs(SystemTime::now()),
            kind,
            instance: instance.map(str::to_string),
            group: None,
            from: None,
            to: None,
            priority: None,
            previous_priority: None,
            dropped: None,
            reason: reason.into(),
        }
    }

    /// The line on the wire (and of `--json`), without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event always serializes")
    }

    /// One line for a person: `12:00:01.250 files transition BACKUP -> MASTER: MASTER: ...`.
    pub fn human(&self) -> String {
        let secs = self.at.max(0.0);
        let day = secs % 86_400.0;
        let (h, m, s) = (
            (day / 3600.0) as u64,
            ((day % 3600.0) / 60.0) as u64,
            day % 60.0,
        );
        let mut who = self.instance.clone().unwrap_or_default();
        if let Some(g) = &self.group {
            if who.is_empty() {
                who = format!("group {g}");
            } else {
                who = format!("{who} ({g})");
            }
        }
        if who.is_empty() {
            who = "daemon".to_string();
        }
        let what = match (self.kind, &self.from, &self.to, self.priority) {
            (EventKind::Transition, Some(f), Some(t), _) => format!("{f} -> {t}"),
            (EventKind::Priority, _, _, Some(p)) => match self.previous_priority {
                Some(old) => format!("priority {old} -> {p}"),
                None => format!("priority {p}"),
            },
            (kind, ..) => kind.as_str().to_string(),
        };
        format!("{h:02}:{m:02}:{s:06.3}Z {who} {what}: {}", self.reason)
    }
}

/// What a subscriber missed, shared by the hub (which counts) and its connection (which reports).
#[derive(Debug, Default)]
pub struct Lag {
    dropped: AtomicU64,
    /// The connection has ended: the hub forgets the subscriber.
    gone: AtomicBool,
    /// Signalled once when the subscriber falls behind, so a connection stuck writing to a reader
    /// that does not read finds out.
    fell_behind: Notify,
}

impl Lag {
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The connection is over: the hub forgets the subscriber.
    pub fn end(&self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

struct Subscriber {
    /// An instance or group name; `None`: everything.
    filter: Option<String>,
    /// `None` once it fell behind: from then on its events are only counted.
    tx: Option<mpsc::Sender<Arc<str>>>,
    lag: Arc<Lag>,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    subscribers: Vec<Subscriber>,
    /// Each grouped instance's `[[group]]`, to name it in its events.
    groups: HashMap<String, String>,
}

/// The daemon's broadcaster. [`EventHub::publish`] never waits: a full queue makes its subscriber a
/// lagging one, whatever that subscriber does (a stopped `floatip events` costs the loop nothing).
#[derive(Default)]
pub struct EventHub(Mutex<Inner>);

impl EventHub {
    pub fn new() -> Arc<EventHub> {
        Arc::new(EventHub::default())
    }

    /// A new subscriber to the events of `filter` (an instance or a group; `None`: all).
    pub fn subscribe(&self, filter: Option<String>) -> (mpsc::Receiver<Arc<str>>, Arc<Lag>) {
        match self.add(filter, usize::MAX) {
            Ok(sub) => sub,
            Err(_) => unreachable!("no limit"),
        }
    }

    /// A subscriber, unless `limit` are subscribed (`Err(how many)`).
    fn add(
        &self,
        filter: Option<String>,
        limit: usize,
    ) -> Result<(mpsc::Receiver<Arc<str>>, Arc<Lag>), usize> {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Also those whose connection dropped its queue without saying so.
        inner.subscribers.retain(|s| {
            !s.lag.gone.load(Ordering::Relaxed) && !s.tx.as_ref().is_some_and(|t| t.is_closed())
        });
        if inner.subscribers.len() >= limit {
            return Err(inner.subscribers.len());
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let lag = Arc::new(Lag::default());
        inner.subscribers.push(Subscriber {
            filter,
            tx: Some(tx),
            lag: lag.clone(),
        });
        Ok((rx, lag))
    }

    /// [`EventHub::subscribe`] for a connection: refused while [`MAX_STREAMS`] streams are open.
    pub fn try_subscribe(
        &self,
        filter: Option<String>,
    ) -> Result<(mpsc::Receiver<Arc<str>>, Arc<Lag>), String> {
        self.add(filter, MAX_STREAMS).map_err(|open| {
            format!(
                "{open} `floatip events` streams are open, the most this daemon serves; close one \
                 (a stopped or never-reading `floatip events` holds its stream until it falls behind \
                 or exits) and try again"
            )
        })
    }

    /// The `[[group]]`s of the running config (`(group, members)`), so each event names its group.
    pub fn set_groups<'a>(&self, groups: impl IntoIterator<Item = (&'a str, &'a [String])>) {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.groups.clear();
        for (group, members) in groups {
            for m in members {
                inner.groups.insert(m.clone(), group.to_string());
            }
        }
    }

    /// Streams subscribed now.
    pub fn subscribers(&self) -> usize {
        let inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .subscribers
            .iter()
            .filter(|s| !s.lag.gone.load(Ordering::Relaxed))
            .count()
    }

    /// Numbers `record` and queues it for every subscriber it concerns; returns its number.
    pub fn publish(&self, mut record: EventRecord) -> u64 {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        record.seq = inner.seq;
        if record.group.is_none() {
            if let Some(i) = &record.instance {
                record.group = inner.groups.get(i).cloned();
            }
        }
        inner
            .subscribers
            .retain(|s| !s.lag.gone.load(Ordering::Relaxed));
        if inner.subscribers.is_empty() {
            return record.seq;
        }
        let line: Arc<str> = Arc::from(record.to_json());
        for s in &mut inner.subscribers {
            let concerned = match &s.filter {
                None => true,
                Some(f) => {
                    (record.instance.is_none() && record.group.is_none())
                        || record.instance.as_ref() == Some(f)
                        || record.group.as_ref() == Some(f)
                }
            };
            if !concerned {
                continue;
            }
            match &s.tx {
                Some(tx) => match tx.try_send(line.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(
                            "events: a `floatip events` stream fell behind ({QUEUE} events unread); \
                             it is no longer fed: it gets a lag record and is closed, whether it reads or not"
                        );
                        s.lag.dropped.fetch_add(1, Ordering::Relaxed);
                        // Closing the queue and the signal: the connection finds out even while it
                        // waits on a socket its reader does not read.
                        s.tx = None;
                        s.lag.fell_behind.notify_one();
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        s.lag.gone.store(true, Ordering::Relaxed);
                    }
                },
                None => {
                    s.lag.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        record.seq
    }

    /// The daemon is exiting: every stream gets what is queued for it and is closed; waits until they
    /// are, at most `bound`.
    pub async fn close(&self, bound: std::time::Duration) {
        {
            let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
            for s in &mut inner.subscribers {
                s.tx = None;
            }
        }
        let deadline = tokio::time::Instant::now() + bound;
        while self.subscribers() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn seq(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).seq
    }
}

/// The daemon's side of a stream: writes each queued record as a line until the client goes, a write
/// fails, the daemon stops (the queue closes), or the subscriber falls behind: then what is queued
/// is written if the client takes it within [`DRAIN_TIMEOUT`] (the rest counts as dropped), the
/// `lagged` record follows, and the connection is closed, whether the client reads or not.
///
/// A line is written whole or not at all: a Unix stream socket takes a write shorter than half its
/// buffer in one piece, so a write given up on leaves no half line in front of the lag record.
pub async fn serve_stream(
    mut read: tokio::net::unix::OwnedReadHalf,
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Arc<str>>,
    lag: Arc<Lag>,
    hub: Arc<EventHub>,
) {
    let _ = socket2::SockRef::from(write.as_ref()).set_send_buffer_size(STREAM_SNDBUF);
    let mut probe = [0u8; 64];
    let mut behind = false;
    loop {
        tokio::select! {
            biased;
            _ = lag.fell_behind.notified() => {
                behind = true;
                break;
            }
            line = rx.recv() => match line {
                Some(line) => tokio::select! {
                    biased;
                    w = write_line(&mut write, &line) => if w.is_err() {
                        lag.end();
                        return;
                    },
                    // Stuck on a reader that does not read: this line is lost, like the rest.
                    _ = lag.fell_behind.notified() => {
                        lag.dropped.fetch_add(1, Ordering::Relaxed);
                        behind = true;
                        break;
                    }
                },
                // The daemon is stopping: what was queued has been written.
                None => break,
            },
            // The client closed its side (or sent something, which a stream does not take).
            n = read.read(&mut probe) => {
                if !matches!(n, Ok(n) if n > 0) {
                    lag.end();
                    return;
                }
            }
        }
    }
    if behind {
        // The hub has closed the queue: what is in it, if the client takes it soon.
        let mut in_flight = false;
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(line) = rx.recv().await {
                in_flight = true;
                write_line(&mut write, &line).await?;
                in_flight = false;
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        match drained {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                lag.end();
                return;
            }
            Err(_) => {
                let mut unsent = u64::from(in_flight);
                while rx.try_recv().is_ok() {
                    unsent += 1;
                }
                lag.dropped.fetch_add(unsent, Ordering::Relaxed);
            }
        }
        let dropped = lag.dropped();
        let mut rec = EventRecord::new(
            EventKind::Lagged,
            None,
            format!("lagged: {dropped} events dropped; this stream fell behind and is closed (reconnect to go on)"),
        );
        rec.seq = hub.seq();
        rec.dropped = Some(dropped);
        // The reader may not be reading: the buffer doubles so the record fits behind what is
        // there, and it is sent at once (the runtime would wait for the socket to be reported
        // writable, which for a Unix socket means three quarters of its buffer free).
        let line = format!("{}\n", rec.to_json());
        let sock = socket2::SockRef::from(write.as_ref());
        if let Ok(size) = sock.send_buffer_size() {
            let _ = sock.set_send_buffer_size(size);
        }
        if sock.send(line.as_bytes()).is_err() {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, write.write_all(line.as_bytes())).await;
        }
    }
    lag.end();
    let _ = tokio::time::timeout(IO_TIMEOUT, write.shutdown()).await;
}

/// One record and its newline, in one write.
async fn write_line(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    line: &str,
) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

/// The CLI's side: subscribes to `name`'s events (all without) and hands each record to `each` (the
/// raw line, the record) until the stream ends. `Ok(Some(dropped))` when the daemon closed it because
/// it fell behind.
pub fn follow(
    socket: &Path,
    name: Option<&str>,
    mut each: impl FnMut(&str, &EventRecord) -> std::io::Result<()>,
) -> anyhow::Result<Option<u64>> {
    let request = Request::Events {
        name: name.map(str::to_string),
    };
    let (first, mut reader) = super::client::open(socket, &request)?;
    match first {
        Response::Done { .. } => {}
        Response::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer to an events request: {other:?}"),
    }
    // Events come when they happen: no read timeout from here on.
    reader.get_ref().set_read_timeout(None)?;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader
            .read_line(&mut buf)
            .with_context(|| format!("reading events from {}", socket.display()))?;
        if n == 0 {
            return Ok(None);
        }
        let text = buf.trim_end();
        let record: EventRecord = serde_json::from_str(text).with_context(|| {
            format!("the daemon sent an event this floatip cannot read: {text}")
        })?;
        if let Err(e) = each(text, &record) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(None);
            }
            return Err(e).context("cannot write the event");
        }
        if record.kind == EventKind::Lagged {
            return Ok(Some(record.dropped.unwrap_or(0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(instance: &str) -> EventRecord {
        let mut r = EventRecord::new(
            EventKind::Transition,
            Some(instance),
            "MASTER: no advert from 192.0.2.2 for 3.61 s (master down)",
        );
        r.from = Some("BACKUP".into());
        r.to = Some("MASTER".into());
        r.at = 1_700_000_001.25;
        r
    }

    #[test]
    fn a_record_is_one_json_line_without_empty_fields() {
        let mut r = transition("files");
        r.seq = 7;
        let json = r.to_json();
        assert!(!json.contains('\n'));
        assert_eq!(
            json,
            r#"{"seq":7,"at":1700000001.25,"kind":"transition","instance":"files","from":"BACKUP","to":"MASTER","reason":"MASTER: no advert from 192.0.2.2 for 3.61 s (master down)"}"#
        );
        let back: EventRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_record_for_people() {
        assert_eq!(
            transition("files").human(),
            "22:13:21.250Z files BACKUP -> MASTER: MASTER: no advert from 192.0.2.2 for 3.61 s (master down)"
        );
        let mut p = EventRecord::new(
            EventKind::Priority,
            Some("files"),
            "track file drain: 100 x weight -1 = -100",
        );
        p.at = 0.0;
        p.priority = Some(50);
        p.previous_priority = Some(150);
        p.group = Some("fileserver".into());
        assert_eq!(
            p.human(),
            "00:00:00.000Z files (fileserver) priority 150 -> 50: track file drain: 100 x weight -1 = -100"
        );
        let mut o = EventRecord::new(EventKind::Operator, None, "reload");
        o.at = 0.0;
        assert_eq!(o.human(), "00:00:00.000Z daemon operator: reload");
    }

    #[test]
    fn the_hub_numbers_filters_and_keeps_order() {
        let hub = EventHub::new();
        let (mut all, _) = hub.subscribe(None);
        let (mut files, _) = hub.subscribe(Some("files".into()));
        let (mut group, _) = hub.subscribe(Some("fileserver".into()));
        assert_eq!(hub.publish(transition("files")), 1);
        let mut other = transition("printers");
        other.group = Some("fileserver".into());
        assert_eq!(hub.publish(other), 2);
        assert_eq!(
            hub.publish(EventRecord::new(EventKind::Operator, None, "reload")),
            3
        );
        let seqs = |rx: &mut mpsc::Receiver<Arc<str>>| {
            let mut v = Vec::new();
            while let Ok(line) = rx.try_recv() {
                v.push(serde_json::from_str::<EventRecord>(&line).unwrap().seq);
            }
            v
        };
        assert_eq!(seqs(&mut all), vec![1, 2, 3]);
        assert_eq!(
            seqs(&mut files),
            vec![1, 3],
            "its own, and daemon-wide ones"
        );
        assert_eq!(seqs(&mut group), vec![2, 3]);
    }

    #[test]
    fn a_full_queue_never_blocks_and_counts_what_it_drops() {
        let hub = EventHub::new();
        let (mut rx, lag) = hub.subscribe(None);
        for _ in 0..QUEUE + 10 {
            hub.publish(transition("files"));
        }
        assert_eq!(lag.dropped(), 10);
        let mut got = 0;
        while let Ok(_line) = rx.try_recv() {
            got += 1;
        }
        assert_eq!(got, QUEUE, "what was queued is still delivered");
        assert!(
            rx.is_closed(),
            "then the queue is closed: the connection sends the lag record"
        );
        hub.publish(transition("files"));
        assert_eq!(lag.dropped(), 11);
        lag.gone.store(true, Ordering::Relaxed);
        hub.publish(transition("files"));
        assert_eq!(hub.subscribers(), 0, "a finished connection is forgotten");
    }

    #[tokio::test]
    async fn a_stream_ends_with_one_lag_record() {
        let hub = EventHub::new();
        let (rx, lag) = hub.subscribe(None);
        for _ in 0..QUEUE + 3 {
            hub.publish(transition("files"));
        }
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let (read, write) = ours.into_split();
        let task = tokio::spawn(serve_stream(read, write, rx, lag, hub.clone()));
        let mut text = String::new();
        let (mut r, _w) = theirs.into_split();
        r.read_to_string(&mut text).await.unwrap();
        task.await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), QUEUE + 1);
        let last: EventRecord = serde_json::from_str(lines[QUEUE]).unwrap();
        assert_eq!(last.kind, EventKind::Lagged);
        assert_eq!(last.dropped, Some(3));
        assert!(last.reason.starts_with("lagged: 3 events dropped"));
    }
}
