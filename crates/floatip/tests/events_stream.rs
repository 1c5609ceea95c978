//! The event stream over a real control socket, without a daemon: the server side
//! (`accept_loop_with_events`) with a broadcaster and a stand-in for the daemon loop that accepts
//! one name, and the CLI side (`events::follow`). No root, no namespaces.

mod common;

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use common::TempDir;
use floatip::control::events::{follow, EventHub, EventKind, EventRecord};
use floatip::control::{self, accept_loop_with_events, ControlCall, Request, Response};
use tokio::sync::mpsc;

/// Answers `events` for "files" (and for everything), refuses other names.
fn stand_in(mut rx: mpsc::Receiver<ControlCall>) {
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            let response = match call.request {
                Request::Events { name: None } => Response::Done {
                    message: "streaming every event".into(),
                },
                Request::Events { name: Some(n) } if n == "files" => Response::Done {
                    message: "streaming the events of instance files".into(),
                },
                Request::Events { name: Some(n) } => Response::Error {
                    message: format!("no instance named {n}"),
                },
                other => Response::Error {
                    message: format!("unexpected {other:?}"),
                },
            };
            let _ = call.reply.send(response);
        }
    });
}

fn record(kind: EventKind, instance: Option<&str>, reason: &str) -> EventRecord {
    EventRecord::new(kind, instance, reason)
}

#[tokio::test]
async fn events_stream_delivers_in_order_filters_and_ends_with_the_daemon() {
    let dir = TempDir::new("events");
    let path = dir.dir().join("floatip.sock");
    let (tx, rx) = mpsc::channel(8);
    let hub = EventHub::new();
    let listener = control::bind(&path).unwrap();
    tokio::spawn(accept_loop_with_events(listener, tx, Some(hub.clone())));
    stand_in(rx);

    // An unknown name is refused with the daemon's message, and leaves no subscriber behind.
    let p = path.clone();
    let err = tokio::task::spawn_blocking(move || follow(&p, Some("nope"), |_, _| Ok(())))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("no instance named nope"),
        "{err:#}"
    );
    assert_eq!(hub.subscribers(), 0);

    let (seen_tx, seen) = std_mpsc::channel::<(String, EventRecord)>();
    let p = path.clone();
    let client = std::thread::spawn(move || {
        follow(&p, Some("files"), |line, rec| {
            let _ = seen_tx.send((line.to_string(), rec.clone()));
            Ok(())
        })
    });
    let mut subscribed = false;
    for _ in 0..1000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if hub.subscribers() == 1 {
            subscribed = true;
            break;
        }
    }
    assert!(subscribed, "the client did not subscribe");

    let mut t = record(EventKind::Transition, Some("files"), "MASTER: no advert");
    t.from = Some("BACKUP".into());
    t.to = Some("MASTER".into());
    hub.publish(t);
    hub.publish(record(EventKind::Transition, Some("web"), "not ours"));
    hub.publish(record(EventKind::Operator, None, "reload"));
    // Received off the runtime's thread, which the server needs meanwhile.
    let (got, seen) = tokio::task::spawn_blocking(move || {
        let got: Vec<(String, EventRecord)> = (0..2)
            .map(|_| {
                seen.recv_timeout(Duration::from_secs(10))
                    .expect("an event")
            })
            .collect();
        (got, seen)
    })
    .await
    .unwrap();
    assert_eq!(got[0].1.kind, EventKind::Transition);
    assert_eq!(got[0].1.seq, 1);
    assert_eq!(got[0].1.to.as_deref(), Some("MASTER"));
    assert_eq!(got[1].1.kind, EventKind::Operator);
    assert_eq!(got[1].1.seq, 3, "web's event is not in files' stream");
    // `--json` prints the line as the daemon sent it: one object, parseable alone.
    let v: serde_json::Value = serde_json::from_str(&got[0].0).unwrap();
    assert_eq!(v["instance"], "files");

    // The daemon exits: the stream ends, without a lag record.
    hub.close(Duration::from_secs(10)).await;
    let end = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, None);
    assert!(seen.try_recv().is_err());
}

/// A client that asks for every event, reads the daemon's answer, and from then on never reads.
fn silent_reader(path: &std::path::Path) -> std::io::BufReader<std::os::unix::net::UnixStream> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"version\":1,\"request\":{\"type\":\"events\",\"name\":null}}\n")
        .unwrap();
    let mut r = std::io::BufReader::new(s);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.contains("\"done\""), "{first}");
    r
}

/// Waits (bounded) until the hub has `n` subscribers.
async fn wait_subscribers(hub: &EventHub, n: usize) -> bool {
    for _ in 0..1000 {
        if hub.subscribers() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A reader that never reads costs the daemon nothing once it has fallen behind: its stream is
/// closed (the daemon's socket and queue freed) while the reader still lives, and what it finds when
/// it reads at last ends with the lag record, whose count covers every event it did not get until
/// then.
#[tokio::test]
async fn a_reader_that_never_reads_is_closed_with_a_lag_record() {
    let dir = TempDir::new("events-silent");
    let path = dir.dir().join("floatip.sock");
    let (tx, rx) = mpsc::channel(8);
    let hub = EventHub::new();
    let listener = control::bind(&path).unwrap();
    tokio::spawn(accept_loop_with_events(listener, tx, Some(hub.clone())));
    stand_in(rx);

    let p = path.clone();
    let reader = tokio::task::spawn_blocking(move || silent_reader(&p))
        .await
        .unwrap();
    assert!(wait_subscribers(&hub, 1).await);
    const EVENTS: u64 = 3000;
    let reason = "BACKUP: advert from 192.0.2.2 priority 200 > ours 150 ".repeat(3);
    for _ in 0..EVENTS {
        hub.publish(record(EventKind::Transition, Some("files"), &reason));
        // The loop publishes between other work; let the stream's task run as it would.
        tokio::task::yield_now().await;
    }
    assert!(
        wait_subscribers(&hub, 0).await,
        "the stream of a reader that never reads is still open after it fell behind"
    );
    // Only now does the reader read: the lines the socket held, then the lag record, then the end.
    let text = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
        text
    })
    .await
    .unwrap();
    let lines: Vec<EventRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = lines.last().expect("at least the lag record");
    assert_eq!(last.kind, EventKind::Lagged, "{text}");
    let delivered = &lines[..lines.len() - 1];
    assert!(
        delivered
            .iter()
            .map(|r| r.seq)
            .eq(1..=delivered.len() as u64),
        "the first events, in order"
    );
    assert_eq!(
        delivered.len() as u64 + last.dropped.unwrap(),
        last.seq,
        "until the stream was closed, every event was either delivered or counted as dropped"
    );
}

/// At most `MAX_STREAMS` streams at once; one more is refused with a message that says why, and a
/// place that frees up can be taken again.
#[tokio::test]
async fn streams_beyond_the_limit_are_refused_with_a_reason() {
    use floatip::control::events::MAX_STREAMS;
    let dir = TempDir::new("events-limit");
    let path = dir.dir().join("floatip.sock");
    let (tx, rx) = mpsc::channel(8);
    let hub = EventHub::new();
    let listener = control::bind(&path).unwrap();
    tokio::spawn(accept_loop_with_events(listener, tx, Some(hub.clone())));
    stand_in(rx);

    let p = path.clone();
    let mut readers = tokio::task::spawn_blocking(move || {
        (0..MAX_STREAMS)
            .map(|_| silent_reader(&p))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(wait_subscribers(&hub, MAX_STREAMS).await);
    // The daemon's first answer, read with a deadline (a stream would send nothing more).
    let p = path.clone();
    let first = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"{\"version\":1,\"request\":{\"type\":\"events\",\"name\":null}}\n")
            .unwrap();
        let mut first = String::new();
        let _ = std::io::BufReader::new(s).read_line(&mut first);
        first
    })
    .await
    .unwrap();
    match control::parse_response(first.as_bytes()) {
        Ok(Response::Error { message }) => assert!(
            message.contains(&format!("{MAX_STREAMS} `floatip events` streams are open")),
            "{message}"
        ),
        other => panic!("stream {} was not refused: {other:?}", MAX_STREAMS + 1),
    }
    assert_eq!(
        hub.subscribers(),
        MAX_STREAMS,
        "the refused one left nothing behind"
    );
    drop(readers.pop());
    assert!(wait_subscribers(&hub, MAX_STREAMS - 1).await);
    let p = path.clone();
    let again = tokio::task::spawn_blocking(move || silent_reader(&p)).await;
    assert!(again.is_ok());
    assert!(wait_subscribers(&hub, MAX_STREAMS).await);
}
