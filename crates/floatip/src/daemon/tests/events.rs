//! The event stream over the fake host: what the loop publishes, in which order, to whom; and that a
//! subscriber that never reads costs the loop nothing.

use std::sync::Arc;

use super::*;
use crate::control::events::{EventKind, EventRecord, QUEUE};
use crate::health::track_file::{Reading, TrackFileReport};

fn drain(rx: &mut mpsc::Receiver<Arc<str>>) -> Vec<EventRecord> {
    let mut out = Vec::new();
    while let Ok(line) = rx.try_recv() {
        out.push(serde_json::from_str(&line).unwrap());
    }
    out
}

fn summary(records: &[EventRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| match r.kind {
            EventKind::Transition => format!(
                "{} -> {}",
                r.from.as_deref().unwrap_or("?"),
                r.to.as_deref().unwrap_or("?")
            ),
            EventKind::Priority => format!("priority {}", r.priority.unwrap_or(0)),
            kind => format!("{kind:?}: {}", r.reason),
        })
        .collect()
}

#[test]
fn transitions_and_commands_are_streamed_in_order_with_their_reasons() {
    let mut h = Harness::start(&instance(51, 150));
    let (mut rx, _lag) = h.daemon.events.subscribe(None);
    h.become_master();
    h.advert_from_peer(51, 200);
    let mut rx_call = h.call(Request::Takeover {
        instance: "files".into(),
    });
    h.advance(Duration::from_secs(1));
    let _ = answer(&mut rx_call);
    let got = drain(&mut rx);
    assert_eq!(
        summary(&got),
        vec![
            "INIT -> BACKUP",
            "BACKUP -> MASTER",
            "MASTER -> BACKUP",
            "Operator: takeover files",
            "BACKUP -> MASTER",
        ],
        "{got:#?}"
    );
    assert!(got[1].reason.starts_with("MASTER: "), "{}", got[1].reason);
    assert!(got[2].reason.contains("priority 200"), "{}", got[2].reason);
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(got.iter().all(|r| r.instance.as_deref() == Some("files")));
    // The same transitions, in the same order, as the status history.
    let history: Vec<String> = h
        .status()
        .history
        .iter()
        .map(|e| e.reason.clone())
        .collect();
    let streamed: Vec<String> = got
        .iter()
        .filter(|r| r.kind == EventKind::Transition)
        .map(|r| r.reason.clone())
        .collect();
    assert_eq!(history, streamed);
    let history_at: Vec<f64> = h.status().history.iter().map(|e| e.at).collect();
    let streamed_at: Vec<f64> = got
        .iter()
        .filter(|r| r.kind == EventKind::Transition)
        .map(|r| r.at)
        .collect();
    // Equal but for the last digits that a JSON round trip of an f64 may change.
    assert_eq!(history_at.len(), streamed_at.len());
    assert!(
        history_at
            .iter()
            .zip(&streamed_at)
            .all(|(a, b)| (a - b).abs() < 1e-3),
        "the same times as the history: {history_at:?} {streamed_at:?}"
    );
}

#[test]
fn a_track_file_change_is_a_priority_event() {
    let config = format!(
        "{}[[instance.track_file]]\npath = \"/nonexistent-floatip-test/drain\"\n\n\
         [[instance]]\nname = \"other\"\ninterface = \"eth0\"\nvrid = 52\naddresses = [\"192.0.2.98/24\"]\n",
        instance(51, 150)
    );
    let mut h = Harness::start(&config);
    let (mut rx, _lag) = h.daemon.events.subscribe(Some("files".into()));
    let id = h.daemon.instances[0].id;
    {
        let _rt = h.runtime.enter();
        h.daemon.on_track_file(
            h.now,
            TrackFileReport {
                instance: id,
                file: 0,
                reading: Reading::Number(-40),
            },
        );
    }
    h.advance(Duration::from_secs(1));
    let got = drain(&mut rx);
    let p = got
        .iter()
        .find(|r| r.kind == EventKind::Priority)
        .expect("a priority event");
    assert_eq!((p.previous_priority, p.priority), (Some(150), Some(110)));
    assert_eq!(p.reason, "track file drain: -40 x weight 1 = -40");
    assert!(
        got.iter().all(|r| r.instance.as_deref() == Some("files")),
        "only the instance asked for: {got:#?}"
    );
}

#[test]
fn an_unknown_name_is_refused_and_a_known_one_accepted() {
    let mut h = Harness::start(&instance(51, 150));
    let mut rx = h.call(Request::Events {
        name: Some("nope".into()),
    });
    match answer(&mut rx) {
        Some(Response::Error { message }) => {
            assert!(message.contains("no instance named nope"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let mut rx = h.call(Request::Events {
        name: Some("files".into()),
    });
    assert!(matches!(answer(&mut rx), Some(Response::Done { .. })));
}

#[test]
fn a_subscriber_that_never_reads_costs_the_loop_nothing() {
    let config = format!(
        "{}[[instance.track_file]]\npath = \"/nonexistent-floatip-test/drain\"\n",
        instance(51, 150)
    );
    let mut h = Harness::start(&config);
    let (_rx, lag) = h.daemon.events.subscribe(None);
    h.become_master();
    h.host.take_log();
    // Flap the priority through the loop far more often than the queue holds.
    let id = h.daemon.instances[0].id;
    for i in 0..(QUEUE + 50) {
        let _rt = h.runtime.enter();
        h.daemon.on_track_file(
            h.now,
            TrackFileReport {
                instance: id,
                file: 0,
                reading: Reading::Number(1 + (i % 2) as i64),
            },
        );
    }
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Master);
    assert!(h.host.take_log().contains(&Call::Advert {
        dst: IpAddr::V4(GROUP_V4),
        priority: 152
    }));
    assert!(lag.dropped() >= 50, "dropped {}", lag.dropped());
}

#[test]
fn a_group_stream_has_its_members_events_each_named_with_the_group() {
    let config = "[[instance]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 51\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"192.0.2.97/24\"]\n\n\
         [[instance]]\nname = \"b\"\ninterface = \"eth0\"\nvrid = 52\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"192.0.2.98/24\"]\n\n\
         [[instance]]\nname = \"c\"\ninterface = \"eth0\"\nvrid = 53\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"192.0.2.99/24\"]\n\n\
         [[group]]\nname = \"fs\"\ninstances = [\"a\", \"b\"]\n";
    let mut h = Harness::start(config);
    let (mut rx, _lag) = h.daemon.events.subscribe(Some("fs".into()));
    let mut call = h.call(Request::Takeover {
        instance: "fs".into(),
    });
    h.advance(Duration::from_secs(1));
    let _ = answer(&mut call);
    let got = drain(&mut rx);
    assert_eq!(
        (
            got[0].kind,
            got[0].instance.as_deref(),
            got[0].group.as_deref()
        ),
        (EventKind::Operator, None, Some("fs")),
        "the command first: {got:#?}"
    );
    let masters: Vec<&str> = got
        .iter()
        .filter(|r| r.to.as_deref() == Some("MASTER"))
        .map(|r| r.instance.as_deref().unwrap())
        .collect();
    assert_eq!(masters.len(), 2, "{got:#?}");
    assert!(masters.contains(&"a") && masters.contains(&"b"));
    assert!(
        got.iter()
            .all(|r| r.group.as_deref() == Some("fs") && r.instance.as_deref() != Some("c")),
        "only the group's events, each named with it: {got:#?}"
    );
}
