//! The control socket: wire shape, server behaviour over a real Unix socket in a temporary directory,
//! client errors, overrides file, and the human status.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::TempDir;
use floatip::cli::commands::{cmd_release, cmd_status, cmd_takeover};
use floatip::cli::render::render;
use floatip::control::{self, *};
use floatip::instance::overrides::{
    load as load_overrides, save as save_overrides, FILE as OVERRIDES_FILE,
};
use serde_json::json;
use tokio::sync::mpsc;

fn sample_status() -> InstanceStatus {
    let since = (SystemTime::now() - Duration::from_secs(192))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    InstanceStatus {
        name: "files".into(),
        interface: "eth0".into(),
        vrid: 51,
        version: 3,
        version_why: None,
        state: "MASTER".into(),
        since: Some(since),
        reason: Some("MASTER: no advert from 192.0.2.2 for 3.61 s (master down)".into()),
        priority: PriorityStatus {
            configured: 150,
            effective: 150,
            why_different: None,
        },
        vips: vec![VipStatus {
            address: "192.0.2.97/24".into(),
            present_in_kernel: true,
        }],
        master: Some(MasterStatus {
            address: "192.0.2.1".parse().unwrap(),
            is_self: true,
            priority: 150,
            interval_ms: 1000,
            last_advert_age_ms: None,
        }),
        speakers: vec![SpeakerStatus {
            address: "192.0.2.2".parse().unwrap(),
            priority: 100,
            interval_ms: 1000,
            addresses: 1,
            advertised: vec!["192.0.2.97".parse().unwrap()],
            last_heard_age_ms: 400,
        }],
        counters: CountersStatus {
            adverts_sent: 182,
            adverts_received: 37,
            send_errors: 0,
            drops: BTreeMap::from([("ttl".to_string(), 2)]),
            vip_restored: 0,
            transitions: Default::default(),
            conflicts: 0,
            interface_drops: BTreeMap::from([("vrid".to_string(), 3)]),
        },
        override_mode: Some(OverrideMode::Takeover),
        claim_inhibit: None,
        conflicts: vec![ConflictStatus {
            address: "192.0.2.97".parse().unwrap(),
            mac: "02:00:00:00:00:03".into(),
            last_seen_age_ms: 1500,
        }],
        clashes: vec![ClashStatus {
            address: "192.0.2.9".parse().unwrap(),
            addresses: vec!["192.0.2.50".parse().unwrap()],
            priority: 200,
            adverts: 12,
            mac: Some("02:00:00:00:00:09".into()),
            last_heard_age_ms: 300,
        }],
        track_files: vec![],
        auth: None,
        checks: vec![CheckStatus {
            name: "smb".into(),
            healthy: false,
            latency_ms: Some(1.5),
            last_error: Some("connection refused".into()),
        }],
        history: vec![HistoryEntry {
            at: since,
            from: "BACKUP".into(),
            to: "MASTER".into(),
            reason: "MASTER: no advert from 192.0.2.2 for 3.61 s (master down)".into(),
        }],
        etcd: None,
    }
}

#[test]
fn request_lines_have_a_stable_shape() {
    assert_eq!(
        encode_request(&Request::Status { instance: None }),
        r#"{"version":1,"request":{"type":"status","instance":null}}"#
    );
    assert_eq!(
        encode_request(&Request::Release {
            instance: "files".into(),
            force: true
        }),
        r#"{"version":1,"request":{"type":"release","instance":"files","force":true}}"#
    );
    assert_eq!(
        encode_request(&Request::Reload),
        r#"{"version":1,"request":{"type":"reload"}}"#
    );
    for req in [
        Request::Status {
            instance: Some("files".into()),
        },
        Request::Takeover {
            instance: "files".into(),
        },
        Request::Auto {
            instance: "files".into(),
        },
    ] {
        assert_eq!(parse_request(encode_request(&req).as_bytes()).unwrap(), req);
    }
}

#[test]
fn status_response_has_the_documented_json_shape() {
    let mut st = sample_status();
    st.since = Some(1700000000.5);
    st.history[0].at = 1700000000.5;
    let line = encode_response(&Response::Status {
        instances: vec![st.clone()],
        groups: Vec::new(),
    });
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let expected = json!({
        "version": 1,
        "response": {
            "type": "status",
            "instances": [{
                "name": "files",
                "interface": "eth0",
                "vrid": 51,
                "version": 3,
                "state": "MASTER",
                "since": 1700000000.5,
                "reason": "MASTER: no advert from 192.0.2.2 for 3.61 s (master down)",
                "priority": {"configured": 150, "effective": 150, "why_different": null},
                "vips": [{"address": "192.0.2.97/24", "present_in_kernel": true}],
                "master": {"address": "192.0.2.1", "self": true, "priority": 150, "interval_ms": 1000,
                           "last_advert_age_ms": null},
                "speakers": [{"address": "192.0.2.2", "priority": 100, "interval_ms": 1000, "addresses": 1,
                              "advertised": ["192.0.2.97"], "last_heard_age_ms": 400}],
                "counters": {"adverts_sent": 182, "adverts_received": 37, "send_errors": 0,
                             "drops": {"ttl": 2}, "vip_restored": 0,
                             "transitions": {}, "conflicts": 0, "interface_drops": {"vrid": 3}},
                "override": "takeover",
                "claim_inhibit": null,
                "conflicts": [{"address": "192.0.2.97", "mac": "02:00:00:00:00:03", "last_seen_age_ms": 1500}],
                "clashes": [{"address": "192.0.2.9", "addresses": ["192.0.2.50"], "priority": 200,
                             "adverts": 12, "mac": "02:00:00:00:00:09", "last_heard_age_ms": 300}],
                "checks": [{"name": "smb", "healthy": false, "latency_ms": 1.5, "last_error": "connection refused"}],
                "history": [{"at": 1700000000.5, "from": "BACKUP", "to": "MASTER",
                             "reason": "MASTER: no advert from 192.0.2.2 for 3.61 s (master down)"}]
            }]
        }
    });
    assert_eq!(value, expected);
    assert_eq!(
        parse_response(line.as_bytes()).unwrap(),
        Response::Status {
            instances: vec![st],
            groups: Vec::new(),
        }
    );
    // A daemon from before `advertised`, `interface_drops` and `clashes` still parses.
    let mut old = value.clone();
    let inst = &mut old["response"]["instances"][0];
    inst.as_object_mut().unwrap().remove("clashes");
    inst["speakers"][0]
        .as_object_mut()
        .unwrap()
        .remove("advertised");
    inst["counters"]
        .as_object_mut()
        .unwrap()
        .remove("interface_drops");
    let Response::Status { instances, .. } = parse_response(old.to_string().as_bytes()).unwrap()
    else {
        panic!("not a status")
    };
    assert!(instances[0].clashes.is_empty());
    assert!(instances[0].speakers[0].advertised.is_empty());
    assert!(instances[0].counters.interface_drops.is_empty());
    assert_eq!(
        encode_response(&Response::Done {
            message: "ok".into()
        }),
        r#"{"version":1,"response":{"type":"done","message":"ok"}}"#
    );
}

#[test]
fn bad_requests_get_a_clear_message() {
    let e =
        parse_request(br#"{"version":2,"request":{"type":"status","instance":null}}"#).unwrap_err();
    assert!(
        e.contains("version 2") && e.contains("speaks version 1"),
        "{e}"
    );
    let e = parse_request(br#"{"request":{"type":"status","instance":null}}"#).unwrap_err();
    assert!(e.contains("no \"version\""), "{e}");
    let e = parse_request(b"status please").unwrap_err();
    assert!(e.contains("not JSON"), "{e}");
    let e = parse_request(br#"{"version":1,"request":{"type":"explode"}}"#).unwrap_err();
    assert!(e.contains("malformed request"), "{e}");
    let e =
        parse_response(br#"{"version":7,"response":{"type":"done","message":"x"}}"#).unwrap_err();
    assert!(format!("{e:#}").contains("version 7"), "{e:#}");
}

/// A stand-in for the daemon loop: answers status with one sample, takeover with Done, others with Error.
fn fake_loop(mut rx: mpsc::Receiver<ControlCall>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 0;
        while let Some(call) = rx.recv().await {
            n += 1;
            let response = match call.request {
                Request::Status { instance } => {
                    select_instances(vec![sample_status()], instance.as_deref())
                }
                Request::Takeover { instance } => Response::Done {
                    message: format!("{instance}: taking over"),
                },
                _ => Response::Error {
                    message: "refused: no peer heard recently".into(),
                },
            };
            let _ = call.reply.send(response);
        }
        n
    })
}

/// Sends raw bytes and returns the raw answer line (blocking; run off the runtime thread).
fn raw_exchange(path: &Path, bytes: Vec<u8>) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before it has read everything we send: ignore write errors.
    let _ = s.write_all(&bytes);
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    line
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn error_message(line: &str) -> String {
    match parse_response(line.as_bytes()).unwrap() {
        Response::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn server_answers_and_survives_bad_input() {
    let dir = TempDir::new("serve");
    let path = dir.dir().join("run/floatip.sock");
    let (tx, rx) = mpsc::channel(8);
    let listener = control::bind(&path).unwrap();
    let server = tokio::spawn(accept_loop(listener, tx));
    let fake = fake_loop(rx);

    // Permissions: root-only socket, parent created 0755.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o755);

    // A client that connects and says nothing must not block the others.
    let idle = UnixStream::connect(&path).unwrap();

    let p = path.clone();
    let line = blocking(move || raw_exchange(&p, b"{not json\n".to_vec())).await;
    assert!(error_message(&line).contains("not JSON"));

    let p = path.clone();
    let line = blocking(move || raw_exchange(&p, b"\n".to_vec())).await;
    assert!(error_message(&line).contains("empty request"));

    let p = path.clone();
    let line = blocking(move || raw_exchange(&p, vec![b'x'; 70 * 1024])).await;
    assert!(error_message(&line).contains("longer than 65536"), "{line}");

    let p = path.clone();
    let line = blocking(move || {
        raw_exchange(
            &p,
            b"{\"version\":9,\"request\":{\"type\":\"reload\"}}\n".to_vec(),
        )
    })
    .await;
    assert!(error_message(&line).contains("version 9"));

    let p = path.clone();
    let resp = blocking(move || call(&p, Request::Status { instance: None }))
        .await
        .unwrap();
    match resp {
        Response::Status { instances, .. } => {
            assert_eq!(instances.len(), 1);
            assert_eq!(instances[0].name, "files");
        }
        other => panic!("{other:?}"),
    }

    let p = path.clone();
    let resp = blocking(move || {
        call(
            &p,
            Request::Status {
                instance: Some("web".into()),
            },
        )
    })
    .await
    .unwrap();
    match resp {
        Response::Error { message } => {
            assert!(message.contains("no instance named web"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let p = path.clone();
    let code = blocking(move || cmd_takeover(&p, "files")).await.unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let p = path.clone();
    let code = blocking(move || cmd_release(&p, "files", false))
        .await
        .unwrap();
    assert_eq!(code, ExitCode::FAILURE);

    drop(idle);
    // The daemon loop goes away: the server stops and removes its socket.
    fake.abort();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops when the loop is gone")
        .unwrap()
        .unwrap();
    assert!(!path.exists(), "socket file removed on stop");
}

#[tokio::test]
async fn live_socket_is_refused_and_stale_one_replaced() {
    let dir = TempDir::new("live");
    let path = dir.dir().join("floatip.sock");

    // Stale: a socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let first = control::bind(&path).expect("a stale socket is replaced");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Live: the first listener still answers.
    let err = control::bind(&path).unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("another floatip is running on {}", path.display())),
        "{err:#}"
    );
    assert!(path.exists(), "a refused bind leaves the live socket alone");

    // The guard removes the file on drop.
    drop(first);
    assert!(!path.exists());

    // A regular file in the way is not deleted.
    std::fs::write(&path, "not a socket").unwrap();
    let err = control::bind(&path).unwrap_err();
    assert!(format!("{err:#}").contains("is not a socket"), "{err:#}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[test]
fn client_without_daemon_says_so() {
    let dir = TempDir::new("nodaemon");
    let path = dir.dir().join("floatip.sock");
    let err = call(&path, Request::Status { instance: None }).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no floatip daemon is listening on {} (is `floatip run` started? `systemctl status floatip`; or pass --socket)",
            path.display()
        )
    );
    assert!(is_no_daemon(&err));

    // A stale socket reads the same way.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = call(&path, Request::Reload).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("no floatip daemon is listening on"));
    assert!(cmd_status(&path, None, false).is_err());
}

#[test]
fn overrides_round_trip_and_corrupt_file_is_explained() {
    let dir = TempDir::new("overrides");
    let state = dir.dir().join("var/lib/floatip");
    assert!(
        load_overrides(&state).unwrap().is_empty(),
        "no file = no overrides"
    );

    let map = BTreeMap::from([
        ("files".to_string(), vrrp::Override::Release),
        ("web".to_string(), vrrp::Override::Takeover),
        ("db".to_string(), vrrp::Override::Auto),
    ]);
    save_overrides(&state, &map).unwrap();
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let loaded = load_overrides(&state).unwrap();
    assert_eq!(
        loaded,
        BTreeMap::from([
            ("files".to_string(), vrrp::Override::Release),
            ("web".to_string(), vrrp::Override::Takeover),
        ])
    );
    let file = state.join(OVERRIDES_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        json!({"files": "release", "web": "takeover"})
    );
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 1);

    std::fs::write(&file, "{\"files\": \"relea").unwrap();
    let err = format!("{:#}", load_overrides(&state).unwrap_err());
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("Delete it"), "{err}");
}

#[test]
fn render_shows_the_key_lines() {
    let mut backup = sample_status();
    backup.name = "web".into();
    backup.state = "BACKUP".into();
    backup.vips[0].present_in_kernel = false;
    backup.override_mode = Some(OverrideMode::Release);
    backup.claim_inhibit = Some("witness 192.0.2.254 unreachable".into());
    backup.track_files = vec![
        floatip::control::TrackFileStatus {
            name: "drain".into(),
            path: "/run/floatip/drain".into(),
            weight: -1,
            value: 100,
            offset: Some(-100),
            fault: false,
            note: None,
        },
        floatip::control::TrackFileStatus {
            name: "maint".into(),
            path: "/run/floatip/maint".into(),
            weight: 0,
            value: 0,
            offset: Some(0),
            fault: false,
            note: Some("missing: counts as 0".into()),
        },
    ];
    backup.master = Some(MasterStatus {
        address: "192.0.2.2".parse().unwrap(),
        is_self: false,
        priority: 200,
        interval_ms: 1000,
        last_advert_age_ms: Some(300),
    });
    let out = render(&[sample_status(), backup]);
    println!("{out}");
    for needle in [
        "files  MASTER since ",
        "(3m12s)   192.0.2.97/24 present",
        "  why:       MASTER: no advert from 192.0.2.2 for 3.61 s (master down)",
        "  priority:  150 (configured 150)",
        "  master:    us (192.0.2.1), adverts every 1s",
        "  speakers:  192.0.2.2 priority 100 every 1s, heard 0.4s ago, for 192.0.2.97",
        "  counters:  sent 182, received 37, dropped 2 (ttl 2)",
        "  unmatched: 3 packets on eth0 that no instance took (vrid 3)",
        "  CLASH:     192.0.2.9 (02:00:00:00:00:09) speaks on VRID 51 (priority 200) for 192.0.2.50, not for ours; heard 0.3s ago, 12 adverts ignored: pick another VRID on one of the two clusters",
        "  override:  takeover",
        "  CONFLICT:  192.0.2.97 also answered by 02:00:00:00:00:03",
        "  checks:    smb FAILING (1.5ms): connection refused",
        " BACKUP -> MASTER  no advert from 192.0.2.2 for 3.61 s (master down)",
        "web  BACKUP since ",
        "192.0.2.97/24 absent",
        "  master:    192.0.2.2 priority 200, adverts every 1s, last heard 0.3s ago",
        "  override:  release: never claims the VIP until `floatip auto web`",
        "  claim:     inhibited: witness 192.0.2.254 unreachable",
        "  track:     drain = 100 x weight -1 (-100) [/run/floatip/drain]",
        "             maint = 0 x weight 0 (+0) [/run/floatip/maint]: missing: counts as 0",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let mut missing = sample_status();
    missing.vips[0].present_in_kernel = false;
    assert!(render(&[missing]).contains("192.0.2.97/24 MISSING"));
}

/// On a master no backup advertises: `speakers: none heard` is normal there and says so; on a
/// backup it is the symptom of a firewall or a VRID mismatch.
#[test]
fn render_says_silent_backups_are_normal_on_a_master() {
    let mut master = sample_status();
    master.speakers.clear();
    assert!(render(&[master.clone()]).contains(
        "  speakers:  none heard (as it should be on a master: backups send no adverts)"
    ));
    master.state = "BACKUP".into();
    let out = render(&[master]);
    assert!(out.contains("  speakers:  none heard\n"), "{out}");
}

#[test]
fn render_shows_an_etcd_instance_by_its_lease_and_owner_not_the_wire() {
    use floatip::control::status::{EtcdCandidate, EtcdStatus};
    let mut st = sample_status();
    st.master = None;
    st.speakers.clear();
    st.etcd = Some(EtcdStatus {
        endpoint: "http://192.0.2.11:2379".into(),
        lease: Some("694d7a1b2c3d4e5f".into()),
        lease_ttl_s: 5,
        lease_remaining_ms: Some(3200),
        owner: Some("h1 192.0.2.1".into()),
        candidates: vec![EtcdCandidate {
            address: "192.0.2.1".parse().unwrap(),
            priority: 150,
        }],
        unreachable_since: None,
        released_at: None,
    });
    let out = render(&[st]);
    for needle in [
        "  etcd:      http://192.0.2.11:2379 (in use); lease 694d7a1b2c3d4e5f, TTL 5 s,",
        "  owner:     h1 192.0.2.1",
        "  candidates: 192.0.2.1 priority 150",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    for absent in ["  vrrp:", "  master:", "  speakers:"] {
        assert!(
            !out.contains(absent),
            "{absent:?} in an etcd instance's status:\n{out}"
        );
    }
}

#[test]
fn status_groups_are_optional_on_the_wire() {
    use floatip::control::{GroupMemberStatus, GroupStatus};
    // A daemon without groups (or from before groups) sends none, and it reads as none.
    let old = r#"{"version":1,"response":{"type":"status","instances":[]}}"#;
    assert_eq!(
        parse_response(old.as_bytes()).unwrap(),
        Response::Status {
            instances: vec![],
            groups: vec![]
        }
    );
    let member = |name: &str, state: &str| GroupMemberStatus {
        name: name.into(),
        state: state.into(),
    };
    let g = GroupStatus::new(
        "fileserver",
        vec![member("files-v4", "MASTER"), member("files-v6", "BACKUP")],
    );
    let line = encode_response(&Response::Status {
        instances: vec![],
        groups: vec![g],
    });
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        value["response"]["groups"],
        json!([{"name": "fileserver", "members": [{"name": "files-v4", "state": "MASTER"},
                {"name": "files-v6", "state": "BACKUP"}], "split": true}])
    );
}

/// Every command that talks to the daemon finds its socket as `doctor` does: from `--config`'s
/// `[daemon] socket` when no `--socket` is given (issue 26: they all looked at the default socket).
#[tokio::test]
async fn every_command_finds_the_socket_named_in_the_config() {
    let dir = TempDir::new("cfgsocket");
    let path = dir.dir().join("run/files.sock");
    let conf = dir.dir().join("floatip.toml");
    std::fs::write(
        &conf,
        format!(
            "[daemon]\nsocket = \"{}\"\n\n[[instance]]\nname = \"files\"\ninterface = \"eth0\"\n\
             vrid = 51\naddresses = [\"192.0.2.97/24\"]\n",
            path.display()
        ),
    )
    .unwrap();
    let (tx, rx) = mpsc::channel(8);
    let listener = control::bind(&path).unwrap();
    let server = tokio::spawn(accept_loop(listener, tx));
    let fake = fake_loop(rx);

    let commands: [&[&str]; 6] = [
        &["status", "--json"],
        &["takeover", "files"],
        &["release", "files"],
        &["auto", "files"],
        &["reload"],
        &["events"],
    ];
    for args in commands {
        let conf = conf.clone();
        let argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = blocking(move || {
            std::process::Command::new(common::floatip_bin())
                .args(&argv)
                .arg("--config")
                .arg(&conf)
                .env_remove("FLOATIP_SOCKET")
                .output()
                .unwrap()
        })
        .await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            !stderr.contains("no floatip daemon") && !stderr.contains("error:"),
            "{args:?}: {stderr}"
        );
        let reached = match args[0] {
            "status" => stdout.contains("\"files\""),
            "takeover" => stdout.contains("files: taking over"),
            // The stand-in refuses the rest; its message proves they reached it.
            "events" => stderr.contains("this control socket has no event stream"),
            _ => stderr.contains("refused: no peer heard recently"),
        };
        assert!(
            reached,
            "{args:?} did not reach {}: {stdout}{stderr}",
            path.display()
        );
    }
    // --socket still overrides the config.
    let other = dir.dir().join("other.sock");
    let (c, o) = (conf.clone(), other.clone());
    let out = blocking(move || {
        std::process::Command::new(common::floatip_bin())
            .arg("--socket")
            .arg(&o)
            .args(["status", "--config"])
            .arg(&c)
            .output()
            .unwrap()
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "no floatip daemon is listening on {}",
            other.display()
        )),
        "{stderr}"
    );
    server.abort();
    fake.abort();
}
