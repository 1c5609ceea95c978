//! Prometheus metrics: the `[daemon] metrics = "127.0.0.1:9797"` endpoint (`GET /metrics`).
//!
//! The daemon loop knows nothing about metrics. On each scrape the server asks the loop for the same
//! status `floatip status` shows (a `control::Request::Status` over the control channel) and renders it
//! with prometheus-client. So the loop pays nothing between scrapes, the numbers can never disagree with
//! `floatip status`, and a hung loop shows up as a failing scrape (503), which is exactly what an alert
//! on `up == 0` catches.
//!
//! Counters are the daemon's own totals since start (adverts, drops, send errors, transitions by
//! from/to, conflicts), exported as they are.
//!
//! The HTTP side is deliberately tiny: one request per connection (`Connection: close`), requests
//! bounded in size and time, a bounded number of connections at once, errors answered with 400, 404,
//! 405, 431 or 503 and never propagated to the daemon.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

use crate::control::{ControlCall, InstanceStatus, Request, Response};

/// The content type prometheus-client's text encoder produces (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The largest request head (request line plus headers) read; a scrape sends about 200 bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, and we to write the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scrape waits for the daemon loop before answering 503.
pub const LOOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 16;

/// The states the state gauge always reports (1 for the current one, 0 for the others).
pub const STATES: [&str; 4] = ["MASTER", "BACKUP", "FAULT", "INIT"];

type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// Renders every instance as OpenMetrics text (what `GET /metrics` returns).
pub fn render(instances: &[InstanceStatus]) -> String {
    let mut reg = Registry::with_prefix("floatip");

    let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]);
    reg.register("build", "The running floatip's version", build);

    let state = Family::<Labels, Gauge>::default();
    let priority = Family::<Labels, Gauge>::default();
    let transitions = Family::<Labels, Counter>::default();
    let sent = Family::<Labels, Counter>::default();
    let received = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let send_errors = Family::<Labels, Counter>::default();
    let conflicts = Family::<Labels, Counter>::default();
    let vip_restored = Family::<Labels, Counter>::default();
    let check_up = Family::<Labels, Gauge>::default();
    let check_latency = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let master_age = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let vip_present = Family::<Labels, Gauge>::default();
    let claim_inhibited = Family::<Labels, Gauge>::default();

    for inst in instances {
        let name = inst.name.as_str();
        let mut states: Vec<&str> = STATES.to_vec();
        if !states.contains(&inst.state.as_str()) {
            states.push(&inst.state);
        }
        for s in states {
            state
                .get_or_create(&labels(&[("vrrp_instance", name), ("state", s)]))
                .set(i64::from(inst.state == s));
        }
        priority
            .get_or_create(&labels(&[("vrrp_instance", name), ("kind", "configured")]))
            .set(i64::from(inst.priority.configured));
        priority
            .get_or_create(&labels(&[("vrrp_instance", name), ("kind", "effective")]))
            .set(i64::from(inst.priority.effective));
        for (key, n) in &inst.counters.transitions {
            let (from, to) = key.split_once("->").unwrap_or((key.as_str(), ""));
            transitions
                .get_or_create(&labels(&[
                    ("vrrp_instance", name),
                    ("from", from),
                    ("to", to),
                ]))
                .inc_by(*n);
        }
        let one = labels(&[("vrrp_instance", name)]);
        sent.get_or_create(&one).inc_by(inst.counters.adverts_sent);
        received
            .get_or_create(&one)
            .inc_by(inst.counters.adverts_received);
        send_errors
            .get_or_create(&one)
            .inc_by(inst.counters.send_errors);
        vip_restored
            .get_or_create(&one)
            .inc_by(inst.counters.vip_restored);
        conflicts
            .get_or_create(&one)
            .inc_by(inst.counters.conflicts);
        for (reason, n) in &inst.counters.drops {
            dropped
                .get_or_create(&labels(&[("vrrp_instance", name), ("reason", reason)]))
                .inc_by(*n);
        }
        for check in &inst.checks {
            let l = labels(&[("vrrp_instance", name), ("check", &check.name)]);
            check_up.get_or_create(&l).set(i64::from(check.healthy));
            if let Some(ms) = check.latency_ms {
                check_latency.get_or_create(&l).set(ms / 1000.0);
            }
        }
        if let Some(m) = inst.master.as_ref().filter(|m| !m.is_self) {
            if let Some(age) = m.last_advert_age_ms {
                master_age.get_or_create(&one).set(age as f64 / 1000.0);
            }
        }
        for vip in &inst.vips {
            vip_present
                .get_or_create(&labels(&[
                    ("vrrp_instance", name),
                    ("address", &vip.address),
                ]))
                .set(i64::from(vip.present_in_kernel));
        }
        claim_inhibited
            .get_or_create(&one)
            .set(i64::from(inst.claim_inhibit.is_some()));
    }

    reg.register(
        "instance_state",
        "1 for the instance's current VRRP state, 0 for the others",
        state,
    );
    reg.register(
        "priority",
        "VRRP priority: configured, and effective (after check weights, overrides, stepping down)",
        priority,
    );
    reg.register(
        "transitions",
        "State transitions since the daemon started, by from and to state",
        transitions,
    );
    reg.register("adverts_sent", "VRRP adverts sent", sent);
    reg.register(
        "adverts_received",
        "Valid VRRP adverts received on this instance's VRID",
        received,
    );
    reg.register(
        "adverts_dropped",
        "Received VRRP adverts dropped, by reason (ttl, checksum, interval, ...)",
        dropped,
    );
    reg.register(
        "advert_send_errors",
        "Adverts the kernel refused to send",
        send_errors,
    );
    reg.register(
        "conflicts",
        "Times another host (address, MAC) was seen answering for one of our VIPs",
        conflicts,
    );
    reg.register(
        "vip_restored",
        "Times our VIP vanished while we were master and was put back",
        vip_restored,
    );
    reg.register(
        "check_up",
        "1 if the health check currently passes, 0 if it fails",
        check_up,
    );
    reg.register_with_unit(
        "check_latency",
        "Duration of the last health check run",
        Unit::Seconds,
        check_latency,
    );
    reg.register_with_unit(
        "master_advert_age",
        "Time since the last advert from the master; absent while this host is master or no master is known",
        Unit::Seconds,
        master_age,
    );
    reg.register(
        "vip_present",
        "1 if the VIP is configured on the interface of this host right now",
        vip_present,
    );
    reg.register(
        "claim_inhibited",
        "1 if this host refuses to claim the VIP now (witness unreachable, ...)",
        claim_inhibited,
    );

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// Binds the metrics listener before the daemon reports READY, so a taken port is a startup error
/// with the address in it, not a silent missing endpoint. Works outside a tokio runtime.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!("cannot serve metrics on {addr} ([daemon] metrics): is another process using that port?")
    })?;
    listener
        .set_nonblocking(true)
        .context("cannot make the metrics socket non-blocking")?;
    Ok(listener)
}

/// Serves `GET /metrics` on `listener` until the daemon loop drops its receiver of `calls`. Errors on
/// single connections are logged at debug level and never end the server.
pub async fn serve(
    listener: std::net::TcpListener,
    calls: mpsc::Sender<ControlCall>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .context("cannot register the metrics socket with the runtime")?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut errors = 0u64;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            _ = calls.closed() => return Ok(()),
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let calls = calls.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(err) = handle(stream, &calls).await {
                            debug!("metrics: connection from {peer}: {err}");
                        }
                    });
                }
                Err(err) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        warn!("metrics: cannot accept a connection: {err} ({errors} so far)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = calls.closed() => return Ok(()),
        }
    }
}

/// What a request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Metrics {
        head: bool,
    },
    Index {
        head: bool,
    },
    /// An error answer: status code and reason phrase.
    Error(u16, &'static str),
}

/// Parses a request head (everything up to the blank line) into a route.
pub fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::Error(400, "Bad Request");
    };
    let Some(line) = text.split("\r\n").next() else {
        return Route::Error(400, "Bad Request");
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Error(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Route::Error(400, "Bad Request");
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::Error(405, "Method Not Allowed"),
    };
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => Route::Metrics { head },
        "/" => Route::Index { head },
        _ => Route::Error(404, "Not Found"),
    }
}

/// Reads the request head: up to the blank line, at most [`MAX_REQUEST_HEAD`] bytes.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Result<Vec<u8>, Route> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Route::Error(400, "Bad Request")),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Err(Route::Error(431, "Request Header Fields Too Large"));
        }
    }
}

/// Asks the loop for the status of every instance.
async fn snapshot(calls: &mpsc::Sender<ControlCall>) -> Result<Vec<InstanceStatus>, String> {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        calls
            .send(ControlCall {
                request: Request::Status { instance: None },
                reply,
            })
            .await
            .map_err(|_| "the daemon is shutting down".to_string())?;
        answer
            .await
            .map_err(|_| "the daemon dropped the request".to_string())
    };
    match tokio::time::timeout(LOOP_TIMEOUT, asked).await {
        Err(_) => Err(format!(
            "the daemon loop did not answer within {}s",
            LOOP_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Response::Status { instances })) => Ok(instances),
        Ok(Ok(other)) => Err(format!("unexpected answer from the daemon loop: {other:?}")),
    }
}

async fn handle(
    mut stream: tokio::net::TcpStream,
    calls: &mpsc::Sender<ControlCall>,
) -> std::io::Result<()> {
    let route = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Route::Error(408, "Request Timeout"),
        Ok(Err(r)) => r,
        Ok(Ok(head)) => route(&head),
    };
    let response = match route {
        Route::Metrics { head } => match snapshot(calls).await {
            Ok(instances) => response(200, "OK", CONTENT_TYPE, &render(&instances), head),
            Err(e) => {
                warn!("metrics: scrape failed: {e}");
                response(
                    503,
                    "Service Unavailable",
                    "text/plain; charset=utf-8",
                    &format!("{e}\n"),
                    false,
                )
            }
        },
        Route::Index { head } => response(
            200,
            "OK",
            "text/plain; charset=utf-8",
            "floatip: metrics are at /metrics\n",
            head,
        ),
        Route::Error(code, reason) => response(
            code,
            reason,
            "text/plain; charset=utf-8",
            &format!("{code} {reason}: this endpoint only serves GET /metrics\n"),
            false,
        ),
    };
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn response(code: u16, reason: &str, content_type: &str, body: &str, head_only: bool) -> String {
    let mut out = String::with_capacity(body.len() + 200);
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if code == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{
        CheckStatus, CountersStatus, HistoryEntry, MasterStatus, PriorityStatus, VipStatus,
    };

    fn entry(at: f64, from: &str, to: &str) -> HistoryEntry {
        HistoryEntry {
            at,
            from: from.into(),
            to: to.into(),
            reason: format!("{from} to {to}"),
        }
    }

    fn status(name: &str, state: &str) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            interface: "eth0".into(),
            vrid: 51,
            version: 3,
            state: state.into(),
            since: None,
            reason: None,
            priority: PriorityStatus {
                configured: 150,
                effective: 90,
                why_different: None,
            },
            vips: vec![VipStatus {
                address: "192.0.2.97/24".into(),
                present_in_kernel: state == "MASTER",
            }],
            master: Some(MasterStatus {
                address: "192.0.2.2".parse().unwrap(),
                is_self: state == "MASTER",
                priority: 200,
                interval_ms: 1000,
                last_advert_age_ms: (state != "MASTER").then_some(250),
            }),
            speakers: vec![],
            counters: CountersStatus {
                adverts_sent: 7,
                adverts_received: 11,
                send_errors: 0,
                drops: [("ttl".to_string(), 3)].into_iter().collect(),
                vip_restored: 1,
                transitions: [
                    ("INIT->BACKUP".to_string(), 1),
                    ("BACKUP->MASTER".to_string(), 1),
                ]
                .into_iter()
                .collect(),
                conflicts: 2,
            },
            override_mode: None,
            claim_inhibit: None,
            conflicts: vec![],
            checks: vec![CheckStatus {
                name: "smb".into(),
                healthy: false,
                latency_ms: Some(12.5),
                last_error: Some("connection refused".into()),
            }],
            history: vec![entry(1.0, "INIT", "BACKUP"), entry(4.0, "BACKUP", "MASTER")],
        }
    }

    fn line_value(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    }

    #[test]
    fn renders_every_family_with_its_labels() {
        let instances = vec![status("files", "BACKUP")];
        let text = render(&instances);
        for (series, value) in [
            (
                r#"floatip_instance_state{vrrp_instance="files",state="BACKUP"}"#,
                "1",
            ),
            (
                r#"floatip_instance_state{vrrp_instance="files",state="MASTER"}"#,
                "0",
            ),
            (
                r#"floatip_instance_state{vrrp_instance="files",state="FAULT"}"#,
                "0",
            ),
            (
                r#"floatip_instance_state{vrrp_instance="files",state="INIT"}"#,
                "0",
            ),
            (
                r#"floatip_priority{vrrp_instance="files",kind="configured"}"#,
                "150",
            ),
            (
                r#"floatip_priority{vrrp_instance="files",kind="effective"}"#,
                "90",
            ),
            (
                r#"floatip_transitions_total{vrrp_instance="files",from="INIT",to="BACKUP"}"#,
                "1",
            ),
            (
                r#"floatip_transitions_total{vrrp_instance="files",from="BACKUP",to="MASTER"}"#,
                "1",
            ),
            (r#"floatip_adverts_sent_total{vrrp_instance="files"}"#, "7"),
            (
                r#"floatip_adverts_received_total{vrrp_instance="files"}"#,
                "11",
            ),
            (
                r#"floatip_adverts_dropped_total{vrrp_instance="files",reason="ttl"}"#,
                "3",
            ),
            (r#"floatip_conflicts_total{vrrp_instance="files"}"#, "2"),
            (r#"floatip_vip_restored_total{vrrp_instance="files"}"#, "1"),
            (
                r#"floatip_check_up{vrrp_instance="files",check="smb"}"#,
                "0",
            ),
            (
                r#"floatip_check_latency_seconds{vrrp_instance="files",check="smb"}"#,
                "0.0125",
            ),
            (
                r#"floatip_master_advert_age_seconds{vrrp_instance="files"}"#,
                "0.25",
            ),
            (
                r#"floatip_vip_present{vrrp_instance="files",address="192.0.2.97/24"}"#,
                "0",
            ),
            (r#"floatip_claim_inhibited{vrrp_instance="files"}"#, "0"),
        ] {
            assert_eq!(
                line_value(&text, &format!("{series} ")).as_deref(),
                Some(value),
                "{series} in\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "floatip_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains("# TYPE floatip_transitions counter"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT floatip_check_latency_seconds seconds"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn master_has_no_advert_age_and_current_state_is_one() {
        let instances = vec![status("files", "MASTER"), status("web", "BACKUP")];
        let text = render(&instances);
        assert!(!text.contains(r#"floatip_master_advert_age_seconds{vrrp_instance="files"}"#));
        assert!(text.contains(r#"floatip_master_advert_age_seconds{vrrp_instance="web"}"#));
        assert!(text.contains(r#"floatip_instance_state{vrrp_instance="files",state="MASTER"} 1"#));
        assert!(text.contains(r#"floatip_instance_state{vrrp_instance="web",state="MASTER"} 0"#));
        assert!(text
            .contains(r#"floatip_vip_present{vrrp_instance="files",address="192.0.2.97/24"} 1"#));
    }

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1"),
            Route::Metrics { head: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1"), Route::Index { head: false });
        assert_eq!(route(b"GET /nope HTTP/1.1"), Route::Error(404, "Not Found"));
        assert_eq!(
            route(b"POST /metrics HTTP/1.1"),
            Route::Error(405, "Method Not Allowed")
        );
        for bad in [
            &b"GET /metrics"[..],
            b"GET  /metrics HTTP/1.1",
            b"GET metrics HTTP/1.1",
            b"GET /metrics SPDY/3",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(route(bad), Route::Error(400, "Bad Request"), "{bad:?}");
        }
    }

    /// The server end to end on loopback, with a fake loop answering status requests.
    #[tokio::test]
    async fn serves_scrapes_and_rejects_junk() {
        use std::io::{Read, Write};
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel::<ControlCall>(4);
        tokio::spawn(serve(listener, tx));
        tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                let _ = call.reply.send(Response::Status {
                    instances: vec![status("files", "MASTER")],
                });
            }
        });
        let get = |req: &'static [u8]| {
            tokio::task::spawn_blocking(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(req).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            })
        };
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(r#"floatip_instance_state{vrrp_instance="files",state="MASTER"} 1"#));
        let nf = get(b"GET /x HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let bad = get(b"hello\r\n\r\n").await.unwrap();
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        let huge: &'static [u8] = Box::leak(vec![b'a'; MAX_REQUEST_HEAD * 2].into_boxed_slice());
        let big = get(huge).await.unwrap();
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        // Still serving after all that.
        let again = get(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
    }

    #[tokio::test]
    async fn a_loop_that_never_answers_is_a_503() {
        use std::io::{Read, Write};
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel::<ControlCall>(4);
        tokio::spawn(serve(listener, tx));
        // Holds the calls without answering, like a stuck loop.
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Some(call) = rx.recv().await {
                kept.push(call);
            }
        });
        let out = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        held.abort();
    }
}
