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
