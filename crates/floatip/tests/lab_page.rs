//! Lab test for the status page (issue 17), in a real browser: a pair h1 (priority 200) / h2 (100),
//! each serving `[daemon] http` on its lab address, and headless Chromium (Debian's `chromium`) run
//! inside the client's namespace. Before the failover h1's page says MASTER and why; a failing check on
//! h1 (weight -150) hands the VIP to h2, whose page then says MASTER with its reason, while h1's shows
//! BACKUP, the failing check and both states on its timeline. A screenshot of h1's page is kept in
//! `target/test-artifacts/status-page.png`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const PORT: u16 = 9797;
const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium is installed: [`require`]'s rule (a loud SKIPPED, or a failure under CI).
fn require_chromium(test: &str) -> bool {
    let missing = (!Path::new(CHROMIUM).exists()).then_some("chromium not found");
    require(test, missing, "apt-get install chromium")
}

/// Headless Chromium inside `client`'s namespace, pointed at `url`, with `mode` (`--dump-dom` or
/// `--screenshot=PATH`); bounded by `timeout(1)` under the lab's 30 s command limit. Returns stdout.
fn chromium(lab: &Lab, client: &Host, mode: &str, url: &str) -> String {
    let profile = TempDir::new("page-chromium");
    let user_data = format!("--user-data-dir={}", path_str(profile.dir()));
    let argv = [
        "timeout",
        "-k",
        "3",
        "25",
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=900,760",
        &user_data,
        mode,
        url,
    ];
    let out = client
        .output(&argv)
        .unwrap_or_else(|e| panic!("cannot run chromium in {}: {e:#}", client.name));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium {mode} {url} failed ({}) in lab {}: {}\n{stdout}",
        out.status,
        lab.prefix(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The page of `host` as Chromium's DOM, once it shows `files` in `state` (the page reloads itself;
/// here each look is a fresh load).
fn dom_in_state(lab: &Lab, client: &Host, host: &Host, state: &str) -> String {
    let url = format!("http://{}:{PORT}/", host_ip(host));
    let want = format!(r#"id="instance-files" data-state="{state}""#);
    let mut dom = String::new();
    let seen = wait_until(Duration::from_secs(60), Duration::from_millis(500), || {
        dom = chromium(lab, client, "--dump-dom", &url);
        dom.contains(&want)
    });
    assert!(
        seen,
        "{url} never showed files {state} in Chromium; last DOM:\n{dom}"
    );
    dom
}

fn host_ip(host: &Host) -> String {
    host.ipv4_cidr()
        .split('/')
        .next()
        .expect("an address")
        .to_string()
}

/// Text as it appears in a serialized DOM text node.
fn dom_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

#[test]
fn page_shows_the_master_and_why_across_a_failover_in_chromium() {
    if !require_root("page_shows_the_master_and_why_across_a_failover_in_chromium")
        || !require_chromium("page_shows_the_master_and_why_across_a_failover_in_chromium")
    {
        return;
    }
    let (mut lab, h1, h2) = two_hosts("pagefail");
    let client = add_client(&mut lab);
    let drain = lab.path("h1-drain");
    let check = format!(
        "[[instance.check]]\nname = \"drain\"\nkind = \"exec\"\n\
         command = [\"/bin/sh\", \"-c\", \"test ! -e {}\"]\n\
         interval = \"200ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\nweight = -150\n",
        path_str(&drain)
    );
    let keys = |h: &Host| format!("http = \"{}:{PORT}\"\n", host_ip(h));
    let n1 = Node::spawn_with(
        &lab,
        &h1,
        &keys(&h1),
        "info",
        &[Instance::v4(200).extra(&check)],
    );
    let n2 = Node::spawn_with(&lab, &h2, &keys(&h2), "info", &[Instance::v4(100)]);
    n1.wait_up();
    n2.wait_up();
    let s1 = n1.wait_state("files", "MASTER");
    n2.wait_state("files", "BACKUP");

    // Before: h1's page says MASTER, and why, as `floatip status` does.
    let dom = dom_in_state(&lab, &client, &h1, "MASTER");
    let reason = s1["reason"].as_str().expect("a master has a reason");
    assert!(
        dom.contains(&dom_text(reason)),
        "reason {reason:?} not in:\n{dom}"
    );
    assert!(dom.contains(r#"<span class="name">files</span>"#), "{dom}");
    assert!(dom.contains("192.0.2.97/24"), "{dom}");

    // The drain check fails on h1: 200 - 150 = 50 < 100, so h2 takes over.
    std::fs::write(&drain, "").expect("write the drain file");
    let s2 = n2.wait_state("files", "MASTER");
    n1.wait_state("files", "BACKUP");

    let dom2 = dom_in_state(&lab, &client, &h2, "MASTER");
    let reason2 = s2["reason"].as_str().expect("the new master has a reason");
    assert!(
        dom2.contains(&dom_text(reason2)),
        "reason {reason2:?} not in:\n{dom2}"
    );
    assert!(
        dom2.contains(r#"<span class="state master">MASTER</span>"#),
        "{dom2}"
    );

    // h1: BACKUP now, the failing check named, and a timeline with its MASTER and BACKUP times.
    let dom1 = dom_in_state(&lab, &client, &h1, "BACKUP");
    assert!(dom1.contains("drain failing"), "{dom1}");
    assert!(
        dom1.contains("192.0.2.2 priority 100"),
        "the master on the wire:\n{dom1}"
    );
    assert!(dom1.contains(r#"<rect class="seg master""#), "{dom1}");
    assert!(dom1.contains(r#"<rect class="seg backup""#), "{dom1}");

    let shot = artifact_dir().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &lab,
        &client,
        &format!("--screenshot={}", path_str(&shot)),
        &format!("http://{}:{PORT}/", host_ip(&h1)),
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} is not a real screenshot ({} bytes)",
        shot.display(),
        png.len()
    );
}
