//! Notify hooks with real processes: order, one at a time, environment, timeouts, failures, drain.
//! Scripts live in a temp dir and run as ["/bin/sh", script] (no exec bit, no ETXTBSY races).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TempDir;
use floatip::config::NotifyConfig;
use floatip::hooks;

fn notify(timeout: Duration) -> NotifyConfig {
    NotifyConfig {
        master: None,
        backup: None,
        fault: None,
        stop: None,
        timeout,
    }
}

/// Captures this thread's tracing output (the tests run on a current-thread runtime, so the hook task
/// logs on this thread too).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || log.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn hooks_run_one_at_a_time_in_order() {
    let dir = TempDir::new("order");
    let log = dir.file("log");
    let script = dir.sh(
        "hook",
        &format!(
            "echo \"start $FLOATIP_REASON\" >> {log}\nsleep 0.1\necho \"end $FLOATIP_REASON\" >> {log}"
        ),
    );
    let mut config = notify(Duration::from_secs(10));
    config.master = Some(script.clone());
    config.backup = Some(script);
    let hooks = hooks::spawn("files".into(), config);
    let states = ["MASTER", "BACKUP", "MASTER", "BACKUP", "MASTER"];
    for (n, state) in states.iter().enumerate() {
        hooks.transition(state, "INIT", &n.to_string(), &[]);
    }
    // transition() returned without running anything: the hook task has not even been polled yet.
    assert_eq!(hooks.pending(), 5);
    hooks.drain(Duration::from_secs(20)).await;

    let expected: Vec<String> = (0..5)
        .flat_map(|n| [format!("start {n}"), format!("end {n}")])
        .collect();
    assert_eq!(dir.read("log").lines().collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn hooks_get_the_environment() {
    let dir = TempDir::new("env");
    let out = dir.file("env");
    let mut config = notify(Duration::from_secs(10));
    // The variables a hook is given (the test's own environment, inherited by the hook, may hold other
    // FLOATIP_ names, such as CI's FLOATIP_KEEPALIVED_UPSTREAM).
    config.master = Some(dir.sh(
        "env",
        &format!(
            "env | grep -E '^FLOATIP_(ADDRESSES|INSTANCE|PREVIOUS_STATE|REASON|STATE)=' | sort > {out}"
        ),
    ));
    let hooks = hooks::spawn("files".into(), config);
    hooks.transition(
        "MASTER",
        "BACKUP",
        "advert from 127.0.0.1 stopped (master down)",
        &["127.0.0.1/8".to_string(), "::1/128".to_string()],
    );
    hooks.drain(Duration::from_secs(10)).await;
    assert_eq!(
        dir.read("env").lines().collect::<Vec<_>>(),
        [
            "FLOATIP_ADDRESSES=127.0.0.1/8 ::1/128",
            "FLOATIP_INSTANCE=files",
            "FLOATIP_PREVIOUS_STATE=BACKUP",
            "FLOATIP_REASON=advert from 127.0.0.1 stopped (master down)",
            "FLOATIP_STATE=MASTER",
        ]
    );
}

#[tokio::test]
async fn each_state_runs_its_own_hook() {
    let dir = TempDir::new("states");
    let log = dir.file("log");
    let mut config = notify(Duration::from_secs(10));
    for (slot, name) in [
        (&mut config.master, "master"),
        (&mut config.backup, "backup"),
        (&mut config.fault, "fault"),
        (&mut config.stop, "stop"),
    ] {
        *slot = Some(dir.sh(name, &format!("echo {name} $FLOATIP_STATE >> {log}")));
    }
    let hooks = hooks::spawn("files".into(), config);
    hooks.transition("BACKUP", "INIT", "start", &[]);
    hooks.transition("MASTER", "BACKUP", "master down", &[]);
    hooks.transition("FAULT", "MASTER", "check smb failing", &[]);
    hooks.transition("sideways", "FAULT", "not a state", &[]);
    hooks.transition("STOP", "FAULT", "daemon stopping", &[]);
    hooks.drain(Duration::from_secs(10)).await;
    assert_eq!(
        dir.read("log").lines().collect::<Vec<_>>(),
        ["backup BACKUP", "master MASTER", "fault FAULT", "stop STOP"]
    );
}

#[tokio::test]
async fn a_hung_hook_is_killed_and_the_next_one_runs() {
    let log = Log::default();
    let _guard = log.install();
    let dir = TempDir::new("timeout");
    let pid_file = dir.file("pid");
    let mut config = notify(Duration::from_millis(300));
    config.master = Some(dir.sh("hang", &format!("echo $$ > {pid_file}\nexec sleep 10")));
    config.backup = Some(dir.sh("next", &format!("echo ran > {}", dir.file("next"))));
    let hooks = hooks::spawn("files".into(), config);
    hooks.transition("MASTER", "BACKUP", "test", &[]);
    hooks.transition("BACKUP", "MASTER", "test", &[]);
    hooks.drain(Duration::from_secs(10)).await;

    assert_eq!(
        dir.read("next").trim(),
        "ran",
        "the hook after the hung one did not run"
    );
    let pid: u32 = dir
        .read("pid")
        .trim()
        .parse()
        .expect("the hung hook did not start");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the killed hook {pid} was not reaped"
    );
    let text = log.text();
    assert!(
        text.contains("master hook timed out after 300ms: killed /bin/sh"),
        "{text}"
    );
    assert!(
        text.contains("files"),
        "log lines carry the instance name: {text}"
    );
}

#[tokio::test]
async fn a_failing_hook_is_logged_with_its_status_and_output() {
    let log = Log::default();
    let _guard = log.install();
    let dir = TempDir::new("fail");
    let mut config = notify(Duration::from_secs(10));
    config.master = Some(dir.sh(
        "fail",
        "echo 'starting smbd'\necho 'smbd: no such share' >&2\nexit 3",
    ));
    config.backup = Some(dir.sh("next", &format!("echo ran > {}", dir.file("next"))));
    config.fault = Some(vec!["/nonexistent/floatip-hook".to_string()]);
    let hooks = hooks::spawn("files".into(), config);
    hooks.transition("MASTER", "BACKUP", "test", &[]);
    hooks.transition("FAULT", "MASTER", "test", &[]);
    hooks.transition("BACKUP", "FAULT", "test", &[]);
    hooks.drain(Duration::from_secs(10)).await;

    assert_eq!(dir.read("next").trim(), "ran");
    let text = log.text();
    assert!(
        text.contains("master hook failed: /bin/sh: exit status 3"),
        "{text}"
    );
    assert!(text.contains("master hook: starting smbd"), "{text}");
    assert!(
        text.contains("master hook (stderr): smbd: no such share"),
        "{text}"
    );
    assert!(
        text.contains("fault hook could not start: /nonexistent/floatip-hook"),
        "{text}"
    );
    assert!(text.contains("backup hook finished"), "{text}");
}

#[tokio::test]
async fn drain_is_bounded_and_kills_the_running_hook() {
    let dir = TempDir::new("drain");
    let pid_file = dir.file("pid");
    let mut config = notify(Duration::from_secs(60));
    config.stop = Some(dir.sh("slow-stop", &format!("echo $$ > {pid_file}\nexec sleep 30")));
    let hooks = hooks::spawn("files".into(), config);
    hooks.transition("STOP", "MASTER", "daemon stopping", &[]);
    let started = std::time::Instant::now();
    hooks.drain(Duration::from_millis(500)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drain did not respect its bound"
    );
    let pid: u32 = dir
        .read("pid")
        .trim()
        .parse()
        .expect("the stop hook did not start");
    // Aborting the hook task kills the process group; tokio reaps the child in the background.
    for _ in 0..100 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        match state
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, r)| r.trim_start())
        {
            None => return,
            Some(rest) if rest.starts_with('Z') => return, // killed; reaped at tokio's next SIGCHLD
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the stop hook {pid} kept running after drain gave up");
}
