//! `Node`: one floatip daemon in a lab host, with its config, control socket, state dir and log in
//! the lab's temp dir; started, asked for its status, stopped (SIGTERM) or killed (-9).

use std::path::PathBuf;
use std::process::{ExitStatus, Output};
use std::time::Duration;

use floatip_lab::{wait_until, Host, Lab, Proc};
use serde_json::Value;

use super::{config_text, floatip_bin, path_str, Instance, POLL, SETTLE, STEP};

/// A floatip daemon running inside a lab host. The lab stops it when dropped.
pub struct Node {
    pub host: Host,
    pub conf: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    /// The running (or last) `floatip run` process.
    pub proc: Proc,
    /// Extra `[daemon]` lines of every config written for it.
    daemon_keys: String,
    rust_log: String,
}

impl Node {
    /// Writes the config and starts `floatip --socket S run --config C` with `RUST_LOG=info`;
    /// does not wait for it.
    pub fn spawn(lab: &Lab, host: &Host, instances: &[Instance]) -> Node {
        Node::spawn_with(lab, host, "", "info", instances)
    }

    /// [`Node::spawn`], then waits until its control socket answers.
    pub fn start(lab: &Lab, host: &Host, instances: &[Instance]) -> Node {
        let node = Node::spawn(lab, host, instances);
        node.wait_up();
        node
    }

    /// [`Node::spawn`] with extra `[daemon]` lines (`daemon_keys`) and `RUST_LOG=<rust_log>`.
    pub fn spawn_with(
        lab: &Lab,
        host: &Host,
        daemon_keys: &str,
        rust_log: &str,
        instances: &[Instance],
    ) -> Node {
        let conf = lab.path(&format!("{}.toml", host.name));
        let socket = lab.path(&format!("{}.sock", host.name));
        let state_dir = lab.path(&format!("{}-state", host.name));
        let log_path = lab.path(&format!("floatip-{}.log", host.name));
        let text = config_text(&state_dir, daemon_keys, instances);
        write(&conf, &text);
        let proc = launch(host, &socket, &conf, &log_path, rust_log);
        Node {
            host: host.clone(),
            conf,
            socket,
            state_dir,
            log_path,
            proc,
            daemon_keys: daemon_keys.into(),
            rust_log: rust_log.into(),
        }
    }

    /// Starts the daemon again with the same config, socket, state dir and log (appended to), and
    /// waits until its control socket answers.
    pub fn restart(&mut self) {
        self.proc = launch(
            &self.host,
            &self.socket,
            &self.conf,
            &self.log_path,
            &self.rust_log,
        );
        self.wait_up();
    }

    /// Starts floatip with a config written elsewhere (`floatip init`, `floatip import`): `text`
    /// under a `[daemon]` table that puts its state dir in the lab; waits until it answers.
    pub fn start_text(lab: &Lab, host: &Host, text: &str) -> Node {
        let conf = lab.path(&format!("{}.toml", host.name));
        let socket = lab.path(&format!("{}.sock", host.name));
        let state_dir = lab.path(&format!("{}-state", host.name));
        let log_path = lab.path(&format!("floatip-{}.log", host.name));
        write(
            &conf,
            &format!(
                "[daemon]\nstate_dir = \"{}\"\n\n{text}",
                state_dir.display()
            ),
        );
        let proc = launch(host, &socket, &conf, &log_path, "info");
        let node = Node {
            host: host.clone(),
            conf,
            socket,
            state_dir,
            log_path,
            proc,
            daemon_keys: String::new(),
            rust_log: "info".into(),
        };
        node.wait_up();
        node
    }

    /// Waits (within [`SETTLE`]) until the daemon answers on its control socket; panics with its
    /// log if it does not, or exits.
    pub fn wait_up(&self) {
        let up = wait_until(SETTLE, STEP, || {
            !self.proc.is_running() || self.ctl(&["status", "--json"]).status.success()
        });
        assert!(
            up && self.proc.is_running(),
            "floatip on {} did not answer on its control socket within {SETTLE:?} (running: {}); log:\n{}",
            self.host.name,
            self.proc.is_running(),
            self.log()
        );
    }

    /// The text of its config with `instances` (same state dir and `[daemon]` lines).
    pub fn config_text(&self, instances: &[Instance]) -> String {
        config_text(&self.state_dir, &self.daemon_keys, instances)
    }

    /// Rewrites its config file with `instances` (for `reload` or SIGHUP).
    pub fn write_config(&self, instances: &[Instance]) {
        self.write_config_text(&self.config_text(instances));
    }

    pub fn write_config_text(&self, text: &str) {
        write(&self.conf, text);
    }

    /// SIGTERM (make-before-break stop), SIGKILL after 10 s; waits for it to exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.proc
            .stop(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("floatip on {} did not exit", self.host.name))
    }

    /// SIGKILL: a crash. Returns whether it was still running.
    pub fn kill(&self) -> bool {
        self.proc.kill9()
    }

    /// Its log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Waits (bounded) until its log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, STEP, || self.log().contains(needle))
    }

    /// `floatip --socket S ARGS...` inside the host, whatever its exit status.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut argv = vec![floatip_bin(), "--socket", path_str(&self.socket)];
        argv.extend_from_slice(args);
        self.host
            .output(&argv)
            .unwrap_or_else(|e| panic!("cannot run floatip {args:?} on {}: {e:#}", self.host.name))
    }

    /// `floatip ARGS...` that must succeed; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "`floatip {}` on {} failed ({}): stdout: {} stderr: {}",
            args.join(" "),
            self.host.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `floatip ARGS...` that must fail; returns stderr.
    pub fn ctl_err(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            !out.status.success(),
            "`floatip {}` on {} should have failed; stdout: {}",
            args.join(" "),
            self.host.name,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `status NAME --json`, parsed; returns that instance's object.
    pub fn status(&self, name: &str) -> Value {
        let text = self.ctl_ok(&["status", name, "--json"]);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {text}"));
        assert_eq!(v["version"], 1, "protocol version: {v}");
        let list = v["instances"].as_array().expect("instances is an array");
        assert_eq!(list.len(), 1, "status {name} lists one instance: {v}");
        assert_eq!(list[0]["name"], name);
        list[0].clone()
    }

    /// Polls `status NAME --json` until `pred` holds; panics naming `what` and the last status
    /// after [`SETTLE`].
    pub fn wait_status(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let ok = wait_until(SETTLE, POLL, || {
            last = self.status(name);
            pred(&last)
        });
        assert!(
            ok,
            "{}: {what} not seen within {SETTLE:?}; last status: {last:#}",
            self.host.name
        );
        last
    }

    /// Waits until instance `name` is in `state` ("MASTER", "BACKUP", "FAULT", ...).
    pub fn wait_state(&self, name: &str, state: &str) -> Value {
        self.wait_status(name, &format!("state {state}"), |s| s["state"] == state)
    }
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Starts `env RUST_LOG=<rust_log> floatip --socket S run --config C` in `host`, logging to `log`.
fn launch(
    host: &Host,
    socket: &std::path::Path,
    conf: &std::path::Path,
    log: &std::path::Path,
    rust_log: &str,
) -> Proc {
    let env = format!("RUST_LOG={rust_log}");
    let argv = [
        "env",
        env.as_str(),
        floatip_bin(),
        "--socket",
        path_str(socket),
        "run",
        "--config",
        path_str(conf),
    ];
    host.spawn(&argv, Some(log))
        .unwrap_or_else(|e| panic!("cannot start floatip on {}: {e:#}", host.name))
}
