//! The config keys of issue 17: an http check's `https://` URL and its TLS keys (`ca_file`,
//! `tls_server_name`, `insecure_skip_verify`), and `[daemon] http` with `metrics` as its old name.
//! Each bad value is one problem at its line, with a hint.

use std::path::Path;

use floatip::config::{self, CheckKind, Config, ConfigError, HttpTls, Problem};

const FILE: &str = "/etc/floatip/floatip.toml";

/// A valid instance; tests append lines to break exactly one thing.
const BASE: &str = r#"[[instance]]
name = "files"
interface = "eth0"
vrid = 51
addresses = ["192.0.2.97/24"]
"#;

fn with(extra: &str) -> String {
    format!("{BASE}{extra}\n")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    config::parse(text, Path::new(FILE))
}

/// The one problem reported at `line`, checked to mention `what` and `hint`.
#[track_caller]
fn problem_at(text: &str, line: usize, what: &str, hint: &str) {
    let all = match parse(text) {
        Ok(c) => panic!("expected problems, got a valid config: {c:#?}\n--- config ---\n{text}"),
        Err(e) => e.problems,
    };
    let shown: Vec<String> = all.iter().map(Problem::to_string).collect();
    let at_line: Vec<&Problem> = all.iter().filter(|p| p.line == line).collect();
    assert_eq!(
        at_line.len(),
        1,
        "expected one problem at line {line}, got:\n{shown:#?}"
    );
    let p = at_line[0];
    assert!(
        p.what.contains(what),
        "what {:?} should contain {what:?}",
        p.what
    );
    assert!(
        p.hint.contains(hint),
        "hint {:?} should contain {hint:?}",
        p.hint
    );
}

#[test]
fn bad_tls_keys_are_refused_each_at_its_line() {
    let check = |body: &str| with(&format!("[[instance.check]]\nname = \"c\"\n{body}"));
    problem_at(
        &check("kind = \"http\"\nurl = \"http://x:99999/\""),
        9,
        "bad port",
        "https://",
    );
    problem_at(
        &check("kind = \"http\"\nurl = \"http://x/\"\nca_file = \"/etc/ca.pem\""),
        10,
        "`ca_file` applies to https:// URLs only",
        "remove `ca_file`",
    );
    problem_at(
        &check("kind = \"http\"\nurl = \"https://x/\"\nca_file = \"ca.pem\""),
        10,
        "not an absolute path",
        "/etc/floatip/home-ca.pem",
    );
    problem_at(
        &check("kind = \"http\"\nurl = \"https://x/\"\ntls_server_name = \"not a name\""),
        10,
        "not a DNS name or IP address",
        "nas.home.arpa",
    );
    problem_at(
        &check("kind = \"http\"\nurl = \"https://x/\"\nca_file = \"/etc/ca.pem\"\ninsecure_skip_verify = true"),
        11,
        "together with ca_file",
        "remove insecure_skip_verify",
    );
    problem_at(
        &check("kind = \"tcp\"\ntarget = \"127.0.0.1:443\"\ninsecure_skip_verify = true"),
        10,
        "`insecure_skip_verify` does not apply to kind = \"tcp\"",
        "remove `insecure_skip_verify`",
    );
}

#[test]
fn https_checks_take_their_tls_keys() {
    let c = config::parse(
        &with("[[instance.check]]\nname = \"nas\"\nkind = \"http\"\nurl = \"https://192.0.2.10:8443/ui\"\nca_file = \"/etc/floatip/home-ca.pem\"\ntls_server_name = \"nas.home.arpa\"\n\n[[instance.check]]\nname = \"hv\"\nkind = \"http\"\nurl = \"https://192.0.2.11/\"\ninsecure_skip_verify = true"),
        Path::new("/etc/floatip/floatip.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let checks = &c.instances[0].checks;
    let CheckKind::Http { url, tls, .. } = &checks[0].kind else {
        panic!("{checks:?}")
    };
    assert_eq!(url, "https://192.0.2.10:8443/ui");
    assert_eq!(
        tls,
        &HttpTls {
            ca_file: Some("/etc/floatip/home-ca.pem".into()),
            server_name: Some("nas.home.arpa".into()),
            insecure_skip_verify: false,
        }
    );
    let CheckKind::Http { tls, .. } = &checks[1].kind else {
        panic!("{checks:?}")
    };
    assert!(tls.insecure_skip_verify && tls.ca_file.is_none());
}

#[test]
fn daemon_http_is_the_listener_and_metrics_its_old_name() {
    let c = config::parse(
        &format!("[daemon]\nhttp = \"127.0.0.1:9797\"\n\n{BASE}"),
        Path::new("/etc/floatip/floatip.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.daemon.http, Some("127.0.0.1:9797".parse().unwrap()));
    problem_at(
        &format!("[daemon]\nhttp = \"127.0.0.1:9797\"\nmetrics = \"127.0.0.1:9798\"\n\n{BASE}"),
        3,
        "both http and metrics are set",
        "keep one",
    );
    problem_at(
        &format!("[daemon]\nhttp = \"127.0.0.1:0\"\n\n{BASE}"),
        2,
        "http port 0",
        "http = \"127.0.0.1:9797\"",
    );
}
