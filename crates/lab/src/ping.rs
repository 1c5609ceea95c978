//! The client that measures what a user feels: a fast ping, every reply time recorded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::addr::parse_lab_ip;
use crate::proc::{lock, ChildSlot, SharedChild};
use crate::{unix_now, Host};

/// How many times a ping that died on its own is restarted before the pinger gives up.
const MAX_RESTARTS: u32 = 1000;
/// Consecutive runs that die at once without a reply before the pinger gives up.
const MAX_FAST_FAILURES: u32 = 5;

/// One reply line of ping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reply {
    /// When ping received it (ping's `-D` timestamp), unix seconds with microseconds.
    pub at: f64,
    /// ICMP sequence number (restarts from 1 when ping is restarted).
    pub seq: u32,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// A duplicate reply: two hosts answered the same echo request.
    pub duplicate: bool,
}

/// A period without replies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// Last reply before the gap (or the window start), unix seconds.
    pub from: f64,
    /// First reply after the gap (or the window end), unix seconds.
    pub to: f64,
}

impl Gap {
    /// Length of the gap.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64((self.to - self.from).max(0.0))
    }
}

#[derive(Default)]
struct State {
    replies: Vec<Reply>,
    /// Packets transmitted by runs that have finished (from ping's summary, or the highest
    /// sequence number seen when it printed none).
    sent_done: u64,
    /// Highest sequence number seen in the current run.
    run_max_seq: u64,
    errors: u64,
    outstanding_reports: u64,
    restarts: u32,
    messages: Vec<String>,
    gave_up: Option<String>,
}

impl State {
    fn message(&mut self, m: String) {
        if self.messages.len() < 200 {
            self.messages.push(m);
        }
    }
}

struct Inner {
    state: Mutex<State>,
    stopping: AtomicBool,
    current: Mutex<Option<SharedChild>>,
}

impl Inner {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Pings a target every `interval` from a host's namespace and records every reply time
/// (iputils `ping -D -n -O -i <interval>`, parsed on a thread).
///
/// If ping exits on its own (some send errors end it) it is restarted, at most 1000 times, so
/// replies keep being recorded across a failover, whoever answers. Stop it with
/// [`stop`](Self::stop); dropping it stops it too, and its lab stops the ping if it outlives it.
pub struct Pinger {
    target: String,
    started: f64,
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

/// What a pinger saw, from [`Pinger::stop`].
#[derive(Clone, Debug)]
pub struct PingReport {
    /// The address pinged.
    pub target: String,
    /// Echo requests sent.
    pub sent: u64,
    /// Replies received (duplicates not counted).
    pub received: u64,
    /// Duplicate replies: more than one host answered (two owners, or a make-before-break
    /// overlap).
    pub duplicates: u64,
    /// Error lines (e.g. "Destination Host Unreachable", send errors).
    pub errors: u64,
    /// Times ping died on its own and was restarted.
    pub restarts: u32,
    /// Unix time the pinger started and stopped.
    pub started: f64,
    pub stopped: f64,
    /// Every reply, in order received.
    pub replies: Vec<Reply>,
    /// Longest period without a reply from the first reply to the stop (`None` without replies).
    pub longest_gap: Option<Duration>,
    /// ping's stderr and error lines (the first 200), for diagnosis.
    pub messages: Vec<String>,
}

impl PingReport {
    /// Requests that got no reply.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

fn parse_num<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    let i = line.find(key)? + key.len();
    let rest = &line[i..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// What one line of `ping -D -n -O` output says.
#[derive(Debug, PartialEq)]
enum Line {
    Reply(Reply),
    NoAnswer,
    Error(String),
    Summary { transmitted: u64 },
    Other,
}

fn parse_line(line: &str) -> Line {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix('[') {
        let Some((ts, body)) = rest.split_once(']') else {
            return Line::Other;
        };
        let Ok(at) = ts.parse::<f64>() else {
            return Line::Other;
        };
        let body = body.trim();
        if body.contains(" bytes from ") && body.contains("icmp_seq=") {
            return Line::Reply(Reply {
                at,
                seq: parse_num(body, "icmp_seq=").unwrap_or(0),
                rtt_ms: parse_num(body, "time=").unwrap_or(f64::NAN),
                duplicate: body.contains("(DUP!)"),
            });
        }
        if body.starts_with("no answer yet") {
            return Line::NoAnswer;
        }
        return Line::Error(body.to_string());
    }
    if line.contains("packets transmitted") {
        let transmitted = line
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return Line::Summary { transmitted };
    }
    Line::Other
}

impl Pinger {
    /// Starts pinging `target` (a lab address) from `host` every `interval` (at least 1 ms; 1-2 ms
    /// is the intended use). Fails if ping cannot be started at all.
    pub fn start(host: &Host, target: &str, interval: Duration) -> Result<Pinger> {
        let ip = parse_lab_ip(target)?.to_string();
        if interval < Duration::from_millis(1) {
            bail!("ping interval {interval:?} is below 1 ms: that floods the lab and distorts measurements");
        }
        let interval_arg = format!("{:.6}", interval.as_secs_f64());
        let argv: Vec<String> = [
            "ip",
            "netns",
            "exec",
            &host.netns,
            "ping",
            "-D",
            "-n",
            "-O",
            "-i",
            &interval_arg,
            &ip,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
            current: Mutex::new(None),
        });
        // Start the first run here so that failing to start at all is an error for the caller.
        let first = start_run(&argv, host)?;
        let started = unix_now();
        let inner2 = inner.clone();
        let host2 = host.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pinger-{ip}"))
            .spawn(move || supervise(&inner2, &argv, &host2, first))
            .context("cannot start the pinger thread")?;
        Ok(Pinger {
            target: ip,
            started,
            inner,
            thread: Some(thread),
        })
    }

    /// The address pinged.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Unix time of every (non-duplicate) reply so far.
    pub fn replies(&self) -> Vec<f64> {
        self.inner
            .st()
            .replies
            .iter()
            .filter(|r| !r.duplicate)
            .map(|r| r.at)
            .collect()
    }

    /// Every reply so far, duplicates included, with sequence numbers and round-trip times.
    pub fn reply_log(&self) -> Vec<Reply> {
        self.inner.st().replies.clone()
    }

    /// Number of (non-duplicate) replies so far.
    pub fn received(&self) -> usize {
        self.inner
            .st()
            .replies
            .iter()
            .filter(|r| !r.duplicate)
            .count()
    }

    /// Number of duplicate replies so far.
    pub fn duplicates(&self) -> usize {
        self.inner
            .st()
            .replies
            .iter()
            .filter(|r| r.duplicate)
            .count()
    }

    /// Unix time of the latest reply.
    pub fn last_reply(&self) -> Option<f64> {
        self.inner
            .st()
            .replies
            .iter()
            .rev()
            .find(|r| !r.duplicate)
            .map(|r| r.at)
    }

    /// Waits (at most `timeout`) until `n` replies in all have been received.
    pub fn wait_replies(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_until(timeout, Duration::from_millis(2), || self.received() >= n)
    }

    /// Waits (at most `timeout`) for a reply received after unix time `after`.
    pub fn wait_reply_after(&self, after: f64, timeout: Duration) -> bool {
        crate::wait_until(timeout, Duration::from_millis(2), || {
            self.last_reply().is_some_and(|t| t > after)
        })
    }

    /// Why the pinger stopped restarting ping, if it did.
    pub fn gave_up(&self) -> Option<String> {
        self.inner.st().gave_up.clone()
    }

    /// The longest period without a reply in the window [`since`, `until`] (unix seconds),
    /// counting from `since` to the first reply and from the last reply to `until` (clamped to
    /// now). With no reply in the window, the whole window.
    pub fn longest_gap(&self, since: f64, until: f64) -> Duration {
        self.gaps(since, until, Duration::ZERO)
            .iter()
            .map(Gap::duration)
            .max()
            .unwrap_or_default()
    }

    /// Every period without a reply longer than `min` in [`since`, `until`], as
    /// [`longest_gap`](Self::longest_gap) counts them, in time order.
    pub fn gaps(&self, since: f64, until: f64, min: Duration) -> Vec<Gap> {
        gaps_in(&self.replies(), since, until.min(unix_now()), min)
    }

    /// Stops ping (SIGINT, so it prints its summary; SIGKILL if it has not gone after 2 s) and
    /// reports what it saw.
    pub fn stop(mut self) -> PingReport {
        self.shutdown();
        let stopped = unix_now();
        let st = self.inner.st();
        let times: Vec<f64> = st
            .replies
            .iter()
            .filter(|r| !r.duplicate)
            .map(|r| r.at)
            .collect();
        let longest_gap = times.first().map(|&first| {
            gaps_in(&times, first, stopped, Duration::ZERO)
                .iter()
                .map(Gap::duration)
                .max()
                .unwrap_or_default()
        });
        PingReport {
            target: self.target.clone(),
            sent: st.sent_done,
            received: times.len() as u64,
            duplicates: st.replies.iter().filter(|r| r.duplicate).count() as u64,
            errors: st.errors,
            restarts: st.restarts,
            started: self.started,
            stopped,
            replies: st.replies.clone(),
            longest_gap,
            messages: st.messages.clone(),
        }
    }

    fn shutdown(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        if let Some(c) = self
            .inner
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            lock(c).signal(libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !thread.is_finished() {
            if let Some(c) = self
                .inner
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                lock(c).signal(libc::SIGKILL);
            }
        }
        let _ = thread.join();
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn gaps_in(times: &[f64], since: f64, until: f64, min: Duration) -> Vec<Gap> {
    let mut v: Vec<f64> = times
        .iter()
        .copied()
        .filter(|t| *t >= since && *t <= until)
        .collect();
    v.sort_by(f64::total_cmp);
    let mut out = Vec::new();
    let mut prev = since;
    for t in v.into_iter().chain(std::iter::once(until)) {
        let g = Gap { from: prev, to: t };
        if t > prev && g.duration() > min {
            out.push(g);
        }
        prev = t;
    }
    out
}

struct Run {
    slot: SharedChild,
    stdout: std::process::ChildStdout,
    stderr: std::process::ChildStderr,
    began: Instant,
}

fn start_run(argv: &[String], host: &Host) -> Result<Run> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let slot = ChildSlot::shared(child);
    host.shared().register(slot.clone());
    Ok(Run {
        slot,
        stdout,
        stderr,
        began: Instant::now(),
    })
}

fn supervise(inner: &Inner, argv: &[String], host: &Host, first: Run) {
    let mut run = Some(first);
    let mut fast_failures = 0;
    loop {
        let Some(r) = run.take() else { break };
        *inner.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.slot.clone());
        if inner.stopping.load(Ordering::SeqCst) {
            // stop() may have looked for the child before it was published here.
            lock(&r.slot).signal(libc::SIGINT);
        }
        let err_inner_state = {
            let mut stderr = r.stderr;
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stderr.read_to_string(&mut s);
                s
            })
        };
        let mut replies_this_run = 0u64;
        let mut summary = None;
        inner.st().run_max_seq = 0;
        for line in BufReader::new(r.stdout).lines() {
            let Ok(line) = line else { break };
            let mut st = inner.st();
            match parse_line(&line) {
                Line::Reply(rep) => {
                    replies_this_run += 1;
                    st.run_max_seq = st.run_max_seq.max(u64::from(rep.seq));
                    st.replies.push(rep);
                }
                Line::NoAnswer => st.outstanding_reports += 1,
                Line::Error(e) => {
                    st.errors += 1;
                    st.message(e);
                }
                Line::Summary { transmitted } => summary = Some(transmitted),
                Line::Other => {}
            }
        }
        // Reap it, bounded: stdout closed, so it is exiting.
        let deadline = Instant::now() + Duration::from_secs(2);
        while lock(&r.slot).signal(0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        lock(&r.slot).signal(libc::SIGKILL);
        let stderr_text = err_inner_state.join().unwrap_or_default();
        {
            let mut st = inner.st();
            let max_seq = st.run_max_seq;
            st.sent_done += summary.unwrap_or(max_seq);
            for l in stderr_text.lines().filter(|l| !l.trim().is_empty()) {
                st.message(l.to_string());
            }
        }
        if inner.stopping.load(Ordering::SeqCst) {
            break;
        }
        if crate::interrupted() {
            inner.st().gave_up = Some("interrupted".into());
            break;
        }
        if replies_this_run == 0 && r.began.elapsed() < Duration::from_millis(500) {
            fast_failures += 1;
        } else {
            fast_failures = 0;
        }
        let why = {
            let st = inner.st();
            if st.restarts >= MAX_RESTARTS {
                Some(format!("ping died {MAX_RESTARTS} times"))
            } else if fast_failures >= MAX_FAST_FAILURES {
                Some(format!(
                    "ping died at once {MAX_FAST_FAILURES} times in a row: {}",
                    stderr_text.trim()
                ))
            } else {
                None
            }
        };
        if let Some(why) = why {
            inner.st().gave_up = Some(why);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        inner.st().restarts += 1;
        match start_run(argv, host) {
            Ok(r) => run = Some(r),
            Err(e) => {
                inner.st().gave_up = Some(format!("{e:#}"));
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ping_lines() {
        assert_eq!(
            parse_line(
                "[1795466616.25] 64 bytes from 192.0.2.2: icmp_seq=17 ttl=64 time=0.296 ms"
            ),
            Line::Reply(Reply {
                at: 1795466616.25,
                seq: 17,
                rtt_ms: 0.296,
                duplicate: false
            })
        );
        assert!(matches!(
            parse_line(
                "[1795466616.5] 64 bytes from 2001:db8::2: icmp_seq=3 ttl=64 time=0.1 ms (DUP!)"
            ),
            Line::Reply(Reply {
                seq: 3,
                duplicate: true,
                ..
            })
        ));
        assert_eq!(
            parse_line("[1795466616.5] no answer yet for icmp_seq=4"),
            Line::NoAnswer
        );
        assert!(matches!(
            parse_line("[1795466616.5] From 192.0.2.1 icmp_seq=5 Destination Host Unreachable"),
            Line::Error(_)
        ));
        assert_eq!(
            parse_line("299 packets transmitted, 299 received, 0% packet loss, time 298ms"),
            Line::Summary { transmitted: 299 }
        );
        assert_eq!(
            parse_line("PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data."),
            Line::Other
        );
    }

    #[test]
    fn gaps_count_window_edges() {
        let t = [10.0, 10.1, 10.2, 11.0, 11.1];
        let g = gaps_in(&t, 9.95, 11.15, Duration::ZERO);
        let longest = g.iter().map(Gap::duration).max().unwrap();
        assert!((longest.as_secs_f64() - 0.8).abs() < 1e-9);
        let big = gaps_in(&t, 9.95, 11.15, Duration::from_millis(500));
        assert_eq!(big.len(), 1);
        assert!((big[0].from - 10.2).abs() < 1e-9 && (big[0].to - 11.0).abs() < 1e-9);
        // No reply in the window: the whole window.
        let none = gaps_in(&t, 12.0, 13.0, Duration::ZERO);
        assert_eq!(
            none,
            vec![Gap {
                from: 12.0,
                to: 13.0
            }]
        );
    }
}
