//! `floatip events` through the real binary, with Debian's keepalived as the real peer, in network
//! namespaces: a stream running in the master's namespace during a failover to keepalived and back
//! shows the transitions in order, with their reasons, in the order the notify hooks ran; and a
//! consumer frozen with SIGSTOP delays nothing (floatip stays master and keeps advertising, keepalived
//! stays backup) and is cut off with a lag record.
//!
//! And readers that never read: refused past the daemon's limit, closed once behind (needs only root).
//!
//! Needs root and /usr/sbin/keepalived (`.ci/run` installs it); without them every test prints
//! SKIPPED and passes, unless CI=true.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// floatip's instance: a track file (to drain it) and hooks that log `STATE|REASON` lines in order.
fn instance(priority: u8, drain: &Path, weight: i32, hooks_log: &Path) -> Instance {
    let hook = |_: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo \\\"$FLOATIP_STATE|$FLOATIP_REASON\\\" >> {}\"]",
            hooks_log.display()
        )
    };
    Instance::v4(priority).extra(&format!(
        "\n[instance.notify]\nmaster = {}\nbackup = {}\nfault = {}\n\n\
         [[instance.track_file]]\nname = \"drain\"\npath = \"{}\"\nweight = {weight}\n",
        hook("MASTER"),
        hook("BACKUP"),
        hook("FAULT"),
        drain.display()
    ))
}

/// `floatip events --json` in the node's host, its output in the lab dir; returns once the stream
/// is live (an operator command it was sent shows up in it).
fn start_stream(lab: &Lab, f: &Node, log: &str) -> (Proc, PathBuf) {
    let path = lab.path(log);
    let argv = [
        floatip_bin(),
        "--socket",
        path_str(&f.socket),
        "events",
        "--json",
    ];
    let proc = f
        .host
        .spawn(&argv, Some(&path))
        .expect("cannot start floatip events");
    let live = wait_until(SETTLE, POLL, || {
        f.ctl_ok(&["auto", "files"]);
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\"kind\":\"operator\""))
    });
    assert!(
        live,
        "floatip events did not stream: {}",
        std::fs::read_to_string(&path).unwrap_or_default()
    );
    (proc, path)
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        // The CLI's own message (stderr, same file) is not a record.
        .filter(|l| !l.starts_with("floatip: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn events_of_a_failover_to_keepalived_and_back_come_in_the_hooks_order() {
    let name = "events_of_a_failover_to_keepalived_and_back_come_in_the_hooks_order";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts("events_order");
    let both = [&h1, &h2];
    let drain = lab.path("h1-drain");
    let hooks_log = lab.path("h1-hooks.log");
    let mut f = Node::start(&lab, &h1, &[instance(150, &drain, -1, &hooks_log)]);
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let _k = start_keepalived_backup(&lab, &h2, &KaInstance::v4(100, 3, "0.1"));
    // The hooks of start-up (BACKUP, MASTER) have run before the stream starts.
    assert!(wait_until(SETTLE, STEP, || std::fs::read_to_string(
        &hooks_log
    )
    .is_ok_and(|t| t.lines().count() >= 2)));
    let hooks_before = std::fs::read_to_string(&hooks_log).unwrap().lines().count();
    let (mut stream, out) = start_stream(&lab, &f, "h1-events.jsonl");

    write_path(&drain, "100\n");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    write_path(&drain, "0\n");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let done = |recs: &[Value]| {
        recs.iter()
            .filter(|r| r["kind"] == "transition")
            .any(|r| r["to"] == "MASTER")
    };
    assert!(
        wait_until(SETTLE, POLL, || done(&records(&out))),
        "the stream has no transition back to MASTER: {:#?}",
        records(&out)
    );
    assert!(
        wait_until(SETTLE, STEP, || std::fs::read_to_string(&hooks_log)
            .is_ok_and(|t| t.lines().count() >= hooks_before + 2)),
        "the hooks did not run"
    );
    assert!(
        stream.is_running(),
        "the stream ended: {:#?}",
        records(&out)
    );

    let recs = records(&out);
    let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let summary: Vec<String> = recs
        .iter()
        .filter(|r| r["kind"] != "operator")
        .map(|r| match r["kind"].as_str().unwrap() {
            "transition" => format!(
                "{} -> {}",
                r["from"].as_str().unwrap(),
                r["to"].as_str().unwrap()
            ),
            "priority" => format!("priority {}", r["priority"]),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "priority 50",
            "MASTER -> BACKUP",
            "priority 150",
            "BACKUP -> MASTER"
        ],
        "{recs:#?}"
    );
    let transitions: Vec<String> = recs
        .iter()
        .filter(|r| r["kind"] == "transition")
        .map(|r| {
            format!(
                "{}|{}",
                r["to"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        transitions[0].starts_with("BACKUP|BACKUP: advert from 192.0.2.2 priority 100"),
        "{transitions:?}"
    );
    // The hooks ran the same transitions, with the same reasons, in the same order.
    let hooks: Vec<String> = std::fs::read_to_string(&hooks_log)
        .unwrap()
        .lines()
        .skip(hooks_before)
        .map(str::to_string)
        .collect();
    assert_eq!(hooks, transitions);
    let priority = recs.iter().find(|r| r["kind"] == "priority").unwrap();
    assert_eq!(priority["previous_priority"], 150);
    assert_eq!(
        priority["reason"],
        "track file drain: 100 x weight -1 = -100"
    );

    // Stopping the daemon: the stream gets the stop transition, then ends.
    f.stop();
    let status = stream
        .wait_exit(SETTLE)
        .unwrap_or_else(|| panic!("floatip events did not end with the daemon"));
    assert!(status.success(), "{}", stream.log());
    let recs = records(&out);
    let last = recs.last().expect("records");
    assert_eq!(
        (&last["kind"], &last["to"]),
        (&"transition".into(), &"STOP".into()),
        "{last:#}"
    );
}

#[test]
fn events_consumer_frozen_by_sigstop_delays_nothing_and_is_cut_off_with_a_lag_record() {
    let name = "events_consumer_frozen_by_sigstop_delays_nothing_and_is_cut_off_with_a_lag_record";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts("events_lag");
    let both = [&h1, &h2];
    let drain = lab.path("h1-flap");
    let hooks_log = lab.path("h1-hooks.log");
    let f = Node::start(&lab, &h1, &[instance(150, &drain, 1, &hooks_log)]);
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let k = start_keepalived_backup(&lab, &h2, &KaInstance::v4(100, 3, "0.1"));
    let (mut stream, out) = start_stream(&lab, &f, "h1-events.jsonl");
    assert!(stream.signal(libc::SIGSTOP), "cannot stop the consumer");
    let sent_before = f.status("files")["counters"]["adverts_sent"]
        .as_u64()
        .unwrap();

    // Flap the priority (151, 152: still above keepalived's 100) until the daemon says the frozen
    // stream fell behind; bounded in writes.
    let mut writes = 0;
    let lagged = |f: &Node| f.log().contains("stream fell behind");
    while !lagged(&f) && writes < 20_000 {
        write_path(&drain, if writes % 2 == 0 { "1" } else { "2" });
        writes += 1;
        if writes % 200 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        wait_until(SETTLE, STEP, || lagged(&f)),
        "no lag after {writes} writes; log:\n{}",
        f.log()
    );
    // The daemon went on: master, advertising, and keepalived never claimed.
    assert_sole_owner_for(&both, &h1, VIP4, Duration::from_millis(800), SAMPLE);
    let st = f.status("files");
    assert_eq!(st["state"], "MASTER", "{st:#}");
    assert!(
        st["counters"]["adverts_sent"].as_u64().unwrap() > sent_before,
        "{st:#}"
    );
    assert!(
        !k.log().contains("Entering MASTER STATE"),
        "keepalived claimed while the consumer was frozen: {}",
        k.log()
    );

    // Thawed, the consumer reads what was queued, then the lag record, and exits with status 3.
    assert!(stream.signal(libc::SIGCONT));
    let status = stream
        .wait_exit(SETTLE)
        .unwrap_or_else(|| panic!("floatip events did not exit after its lag record"));
    assert_eq!(status.code(), Some(3), "{}", stream.log());
    let recs = records(&out);
    let last = recs.last().expect("records");
    assert_eq!(last["kind"], "lagged", "{last:#}");
    assert!(last["dropped"].as_u64().unwrap() > 0, "{last:#}");
    assert!(
        last["reason"].as_str().unwrap().starts_with("lagged: "),
        "{last:#}"
    );
    assert_eq!(recs.iter().filter(|r| r["kind"] == "lagged").count(), 1);
    eprintln!(
        "events_lag: the frozen stream lagged after {writes} track-file writes; {} records delivered, then the lag record ({} dropped)",
        recs.len() - 1,
        last["dropped"]
    );
}

/// Open file descriptors and resident memory (KiB) of process `pid`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

/// One request line on the control socket; returns the first answer line.
fn ask(socket: &Path, request: &str) -> (std::os::unix::net::UnixStream, String) {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(&s).read_line(&mut line);
    (s, line)
}

/// 50 `floatip events` readers that never read (issue 26: they took the daemon from 23 to 294 open
/// files): the daemon serves 32 streams and refuses the rest with a reason, and once the events they
/// do not read pass the lag bound, every stream is closed while its reader lives, so the daemon's
/// open files come back to where they were. Prints the numbers.
#[test]
fn readers_that_never_read_are_refused_past_the_limit_and_closed_once_behind() {
    let name = "readers_that_never_read_are_refused_past_the_limit_and_closed_once_behind";
    if !require_root(name) {
        return;
    }
    let (lab, h1, _h2) = two_hosts("events_silent");
    let f = Node::start(&lab, &h1, &[Instance::v4(150)]);
    f.wait_state("files", "MASTER");
    let pid = f.proc.pid();
    let before = fds_and_rss(pid);

    let events = r#"{"version":1,"request":{"type":"events","name":null}}"#;
    let mut readers = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..50 {
        let (s, first) = ask(&f.socket, events);
        if first.contains("\"error\"") {
            refused.push(first);
        } else {
            readers.push(s);
        }
    }
    let open = fds_and_rss(pid);
    // Operator commands: one event each for every stream, far past what a stream may leave unread.
    let auto = r#"{"version":1,"request":{"type":"auto","instance":"files"}}"#;
    for _ in 0..1500 {
        let (_s, answer) = ask(&f.socket, auto);
        assert!(answer.contains("\"done\""), "{answer}");
    }
    let closed = wait_until(SETTLE, POLL, || fds_and_rss(pid).0 <= before.0 + 2);
    let after = fds_and_rss(pid);
    eprintln!(
        "daemon (open files, RSS KiB): before {before:?}; with {} silent readers ({} refused) {open:?}; \
         after 1500 events {after:?}",
        readers.len(),
        refused.len()
    );
    assert_eq!(readers.len(), 32, "{refused:?}");
    assert!(
        refused[0].contains("32 `floatip events` streams are open"),
        "{}",
        refused[0]
    );
    assert!(
        closed,
        "the daemon still holds the streams of readers that never read: {after:?} (before {before:?})"
    );
    // What a reader finds when it reads at last ends with the lag record.
    let mut text = String::new();
    let mut r = readers.pop().unwrap();
    let _ = std::io::Read::read_to_string(&mut r, &mut text);
    let last: Value = serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(last["kind"], "lagged", "{text}");
}
