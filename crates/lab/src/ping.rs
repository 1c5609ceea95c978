//! The client that measures what a user feels: echo requests every 1-2 ms, every reply recorded.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::addr::parse_lab_ip;
use crate::{sys, unix_now, Host};

/// Marks our echo payloads (so other ICMP traffic in the namespace is ignored).
const MAGIC: &[u8; 8] = b"fiplabpg";
/// How long the receiver keeps listening for late replies after the last request.
const LINGER: Duration = Duration::from_millis(50);
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// One echo reply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reply {
    /// When it was received, unix seconds.
    pub at: f64,
    /// Sequence number of the request it answers (0, 1, 2, ...; never wraps).
    pub seq: u64,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// A second (third...) reply to the same request: more than one host answered it.
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
    /// Per sequence number: how many replies came.
    answered: Vec<u8>,
    sent: u64,
    send_errors: u64,
    icmp_errors: u64,
    messages: Vec<String>,
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
}

impl Inner {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Non-duplicate reply times, in order.
    fn times(&self) -> Vec<f64> {
        self.st()
            .replies
            .iter()
            .filter(|r| !r.duplicate)
            .map(|r| r.at)
            .collect()
    }
}

/// Sends an ICMP echo request to a target every `interval` from a host's namespace and records
/// every reply: the client whose longest gap between replies is the failover time a user feels.
///
/// It uses its own raw ICMP socket opened inside the host's namespace, not iputils ping: ping
/// sends only every 10 ms (1000/HZ) while a request is unanswered, which would blur every outage
/// by up to 10 ms, and busy-waits at intervals under 10 ms. Here one thread sends on a fixed
/// schedule (requests are not delayed by missing replies) and another timestamps replies as they
/// arrive. Duplicate replies (two hosts answering) are counted. It keeps going whoever answers:
/// a failover only changes which MAC the client's neighbour entry points to.
pub struct Pinger {
    target: String,
    started: f64,
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

/// What a pinger saw, from [`Pinger::stop`].
#[derive(Clone, Debug)]
pub struct PingReport {
    /// The address pinged.
    pub target: String,
    /// Echo requests sent.
    pub sent: u64,
    /// Requests answered (duplicates not counted).
    pub received: u64,
    /// Duplicate replies: more than one host answered (two owners, or a make-before-break
    /// overlap).
    pub duplicates: u64,
    /// Requests the kernel refused to send (e.g. no route) plus ICMP errors about our requests
    /// (e.g. destination unreachable).
    pub errors: u64,
    /// Unix time the pinger started.
    pub started: f64,
    /// Unix time the pinger stopped.
    pub stopped: f64,
    /// Every reply, duplicates included, in order received.
    pub replies: Vec<Reply>,
    /// Longest period without a reply from the first reply to the stop (`None` without replies).
    pub longest_gap: Option<Duration>,
    /// The first 200 error messages, for diagnosis.
    pub messages: Vec<String>,
}

impl PingReport {
    /// Requests that got no reply.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: type, code, checksum, id, seq16, then MAGIC, seq64, send offset in ns.
fn echo_request(v6: bool, id: u16, seq: u64, sent_ns: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&(seq as u16).to_be_bytes());
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&sent_ns.to_be_bytes());
    if !v6 {
        // The kernel fills in ICMPv6 checksums on raw sockets; ICMPv4 is ours to compute.
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// What a received ICMP message means to us.
#[derive(Debug, PartialEq)]
enum Incoming {
    /// An echo reply to one of our requests: (seq, send offset in ns).
    Reply(u64, u64),
    /// An ICMP error about one of our requests.
    Error(u8, u8),
    Other,
}

fn parse_incoming(v6: bool, id: u16, buf: &[u8]) -> Incoming {
    // IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
    let icmp = if v6 {
        buf
    } else {
        let ihl = usize::from(buf.first().map_or(0, |b| b & 0x0f)) * 4;
        buf.get(ihl..).unwrap_or(&[])
    };
    if icmp.len() < 8 {
        return Incoming::Other;
    }
    let (ty, code) = (icmp[0], icmp[1]);
    let reply_type = if v6 { 129 } else { 0 };
    let ours = |echo: &[u8]| echo.len() >= 8 && echo[4..6] == id.to_be_bytes();
    if ty == reply_type {
        if !ours(icmp) || icmp.len() < 32 || &icmp[8..16] != MAGIC {
            return Incoming::Other;
        }
        let seq = u64::from_be_bytes(icmp[16..24].try_into().expect("8 bytes"));
        let sent = u64::from_be_bytes(icmp[24..32].try_into().expect("8 bytes"));
        return Incoming::Reply(seq, sent);
    }
    // Errors quote the offending packet after the 8-byte ICMP header.
    let is_error = if v6 {
        ty < 128
    } else {
        matches!(ty, 3 | 11 | 12)
    };
    if is_error {
        let inner = &icmp[8..];
        let echo = if v6 {
            inner.get(40..)
        } else {
            let ihl = usize::from(inner.first().map_or(0, |b| b & 0x0f)) * 4;
            inner.get(ihl..)
        };
        if echo.is_some_and(ours) {
            return Incoming::Error(ty, code);
        }
    }
    Incoming::Other
}

impl Pinger {
    /// Starts pinging `target` (a lab address, IPv4 or IPv6) from `host` every `interval` (at
    /// least 100 us; 1-2 ms is the intended use).
    pub fn start(host: &Host, target: &str, interval: Duration) -> Result<Pinger> {
        let ip = parse_lab_ip(target)?;
        if interval < Duration::from_micros(100) {
            bail!("ping interval {interval:?} is below 100 us: that floods the lab and distorts measurements");
        }
        let v6 = ip.is_ipv6();
        let sock = sys::raw_icmp_socket_in(&host.netns, v6)
            .with_context(|| format!("cannot open a raw ICMP socket in {}", host.netns))?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let rx = sock.try_clone()?;
        let id = (std::process::id() as u16) ^ NEXT_ID.fetch_add(0x9e37, Ordering::Relaxed);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
        });
        let t0 = Instant::now();
        let started = unix_now();
        let dest = SocketAddr::new(ip, 0);
        let mut threads = Vec::new();
        let inner_tx = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("pinger-tx-{ip}"))
                .spawn(move || send_loop(&inner_tx, &sock, dest, v6, id, t0, interval))
                .context("cannot start the pinger's sender")?,
        );
        let inner_rx = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("pinger-rx-{ip}"))
                .spawn(move || recv_loop(&inner_rx, &rx, v6, id, t0, started))
                .context("cannot start the pinger's receiver")?,
        );
        Ok(Pinger {
            target: ip.to_string(),
            started,
            inner,
            threads,
        })
    }

    /// The address pinged.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Unix time of every (non-duplicate) reply so far, in order.
    pub fn replies(&self) -> Vec<f64> {
        self.inner.times()
    }

    /// Every reply so far, duplicates included, with sequence numbers and round-trip times.
    pub fn reply_log(&self) -> Vec<Reply> {
        self.inner.st().replies.clone()
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.inner.st().sent
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
        self.inner.st().replies.last().map(|r| r.at)
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

    /// Every period without a reply longer than `min` in [`since`, `until`], counted as
    /// [`longest_gap`](Self::longest_gap) counts them, in time order.
    pub fn gaps(&self, since: f64, until: f64, min: Duration) -> Vec<Gap> {
        gaps_in(&self.replies(), since, until.min(unix_now()), min)
    }

    /// Stops sending, waits 50 ms for late replies, and reports what it saw.
    pub fn stop(mut self) -> PingReport {
        self.shutdown();
        let stopped = unix_now();
        let times = self.inner.times();
        let st = self.inner.st();
        let longest_gap = times.first().map(|&first| {
            gaps_in(&times, first, stopped, Duration::ZERO)
                .iter()
                .map(Gap::duration)
                .max()
                .unwrap_or_default()
        });
        PingReport {
            target: self.target.clone(),
            sent: st.sent,
            received: times.len() as u64,
            duplicates: st.replies.iter().filter(|r| r.duplicate).count() as u64,
            errors: st.send_errors + st.icmp_errors,
            started: self.started,
            stopped,
            replies: st.replies.clone(),
            longest_gap,
            messages: st.messages.clone(),
        }
    }

    fn shutdown(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        // Both threads notice within max(interval, 20 ms) + LINGER; join is therefore bounded.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn send_loop(
    inner: &Inner,
    sock: &UdpSocket,
    dest: SocketAddr,
    v6: bool,
    id: u16,
    t0: Instant,
    interval: Duration,
) {
    let mut seq: u64 = 0;
    let mut next = t0;
    while !inner.stopping.load(Ordering::SeqCst) && !crate::interrupted() {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let sent_ns = t0.elapsed().as_nanos() as u64;
        let pkt = echo_request(v6, id, seq, sent_ns);
        let res = sock.send_to(&pkt, dest);
        {
            let mut st = inner.st();
            st.sent += 1;
            if let Err(e) = res {
                st.send_errors += 1;
                st.message(format!("seq {seq}: send: {e}"));
            }
        }
        seq += 1;
        // A fixed schedule; if we fell behind (a stall), skip ahead rather than burst.
        next += interval;
        let now = Instant::now();
        if next + interval < now {
            next = now;
        }
    }
}

fn recv_loop(inner: &Inner, sock: &UdpSocket, v6: bool, id: u16, t0: Instant, started: f64) {
    let mut buf = [0u8; 2048];
    let mut stop_at: Option<Instant> = None;
    loop {
        if stop_at.is_none() && (inner.stopping.load(Ordering::SeqCst) || crate::interrupted()) {
            stop_at = Some(Instant::now() + LINGER);
        }
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                inner.st().message(format!("receive: {e}"));
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let now = t0.elapsed();
        match parse_incoming(v6, id, &buf[..n]) {
            Incoming::Reply(seq, sent_ns) => {
                let at = started + now.as_secs_f64();
                let mut st = inner.st();
                let i = seq as usize;
                if i >= st.answered.len() {
                    st.answered.resize(i + 1, 0);
                }
                st.answered[i] = st.answered[i].saturating_add(1);
                let duplicate = st.answered[i] > 1;
                let rtt_ms = (now.as_nanos() as f64 - sent_ns as f64) / 1e6;
                st.replies.push(Reply {
                    at,
                    seq,
                    rtt_ms,
                    duplicate,
                });
            }
            Incoming::Error(ty, code) => {
                let mut st = inner.st();
                st.icmp_errors += 1;
                let from: IpAddr = from.ip();
                st.message(format!("ICMP error type {ty} code {code} from {from}"));
            }
            Incoming::Other => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_roundtrip_and_checksum() {
        let req = echo_request(false, 0x1234, 70_000, 42);
        assert_eq!(checksum(&req), 0, "a correct checksum sums to zero");
        // Turn it into a reply behind a 20-byte IPv4 header.
        let mut pkt = vec![0x45u8];
        pkt.resize(20, 0);
        let mut rep = req.clone();
        rep[0] = 0;
        pkt.extend_from_slice(&rep);
        assert_eq!(
            parse_incoming(false, 0x1234, &pkt),
            Incoming::Reply(70_000, 42)
        );
        assert_eq!(parse_incoming(false, 0x4321, &pkt), Incoming::Other);
        // Our own request seen on the socket is not a reply.
        let mut own = vec![0x45u8];
        own.resize(20, 0);
        own.extend_from_slice(&req);
        assert_eq!(parse_incoming(false, 0x1234, &own), Incoming::Other);
        // IPv6: no IP header on receive, type 129.
        let mut r6 = echo_request(true, 7, 3, 9);
        r6[0] = 129;
        assert_eq!(parse_incoming(true, 7, &r6), Incoming::Reply(3, 9));
        // Destination unreachable quoting our request.
        let mut err = vec![0x45u8];
        err.resize(20, 0);
        err.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 0, 0x45]);
        err.resize(20 + 8 + 20, 0);
        err.extend_from_slice(&req[..8]);
        assert_eq!(parse_incoming(false, 0x1234, &err), Incoming::Error(3, 1));
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
