//! Operations end to end, in namespace labs (root only; SKIPPED otherwise, a failure under CI=true):
//! the metrics endpoint scraped with a real HTTP client from inside each host's namespace, following
//! a failover; `floatip doctor` naming an nftables drop of protocol 112, a missing interface and a
//! down one.
//!
//! Every namespace carries the lab's prefix ("fipops..."), every address is 192.0.2.0/24 or the
//! namespace's own loopback, every wait is bounded, and the `Lab` removes everything on drop.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use common::VIP4 as VIP;
use common::*;
use floatip::cli::doctor::{Mark, Report};

const METRICS: &str = "127.0.0.1:9797";

/// The `[daemon]` line that turns the metrics endpoint on.
fn metrics_key() -> String {
    format!("metrics = \"{METRICS}\"\n")
}

/// A floatip daemon in `host` with the metrics endpoint on, running `instances`.
fn start(lab: &Lab, host: &Host, instances: &[Instance]) -> Node {
    Node::spawn_with(lab, host, &metrics_key(), "info", instances)
}

/// Runs `f` on a fresh thread that has joined `host`'s network namespace (the test's other threads
/// stay where they are).
fn in_netns<T: Send + 'static>(host: &Host, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = format!("/run/netns/{}", host.netns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("open {ns}: {e}"));
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {ns}: {e}"));
        f()
    })
    .join()
    .expect("netns thread panicked")
}

/// `GET /metrics` on the host's own loopback, with std's TcpStream: (status line, body).
fn scrape(host: &Host) -> Option<(String, String)> {
    in_netns(host, || {
        let mut s =
            TcpStream::connect_timeout(&METRICS.parse().unwrap(), Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_string(), body.to_string()))
    })
}

/// The value of one series in a scrape.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn state_is(host: &Host, instance: &str, state: &str) -> bool {
    let series = format!(r#"floatip_instance_state{{vrrp_instance="{instance}",state="{state}"}}"#);
    matches!(scrape(host), Some((status, body)) if status.contains(" 200 ") && value(&body, &series) == Some(1.0))
}

#[test]
fn metrics_follow_a_failover() -> anyhow::Result<()> {
    if !require_root("ops_metrics_failover") {
        return Ok(());
    }
    let (lab, h1, h2) = two_hosts("fipopsmetrics");
    let _d1 = start(&lab, &h1, &[Instance::v4(200)]);
    let _d2 = start(&lab, &h2, &[Instance::v4(100)]);

    assert!(
        wait_until(SETTLE, POLL, || state_is(&h1, "files", "MASTER")),
        "h1's metrics never showed MASTER: {:?}",
        scrape(&h1)
    );
    assert!(
        wait_until(SETTLE, POLL, || state_is(&h2, "files", "BACKUP")),
        "h2's metrics never showed BACKUP: {:?}",
        scrape(&h2)
    );
    assert!(h1.has_address(VIP));
    let (status, body) = scrape(&h1).expect("scrape h1");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    for (series, want) in [
        (
            r#"floatip_instance_state{vrrp_instance="files",state="BACKUP"}"#,
            0.0,
        ),
        (
            r#"floatip_priority{vrrp_instance="files",kind="configured"}"#,
            200.0,
        ),
        (
            r#"floatip_vip_present{vrrp_instance="files",address="192.0.2.97/24"}"#,
            1.0,
        ),
    ] {
        assert_eq!(value(&body, series), Some(want), "{series} in\n{body}");
    }
    assert!(
        value(
            &body,
            r#"floatip_adverts_sent_total{vrrp_instance="files"}"#
        )
        .unwrap_or(0.0)
            > 0.0,
        "{body}"
    );
    assert!(body.contains("floatip_build_info{version="), "{body}");
    // A backup hears the master: the age of its last advert is there, and small.
    let (_, body2) = scrape(&h2).expect("scrape h2");
    let age = value(
        &body2,
        r#"floatip_master_advert_age_seconds{vrrp_instance="files"}"#,
    );
    assert!(
        age.is_some_and(|a| a < 5.0),
        "master advert age {age:?} in\n{body2}"
    );
    assert!(
        value(
            &body2,
            r#"floatip_adverts_received_total{vrrp_instance="files"}"#
        )
        .unwrap_or(0.0)
            > 0.0,
        "{body2}"
    );

    // Host loss: h1's switch port goes down; h2 takes over and its metrics say so.
    h1.link_down()?;
    assert!(
        wait_until(SETTLE, POLL, || state_is(&h2, "files", "MASTER")),
        "h2's metrics never showed MASTER after h1 went away: {:?}",
        scrape(&h2)
    );
    assert!(
        wait_until(SETTLE, POLL, || state_is(&h1, "files", "FAULT")),
        "h1's metrics never showed FAULT with its link down: {:?}",
        scrape(&h1)
    );
    let (_, body2) = scrape(&h2).expect("scrape h2");
    assert!(
        value(
            &body2,
            r#"floatip_transitions_total{vrrp_instance="files",from="BACKUP",to="MASTER"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{body2}"
    );
    assert_eq!(
        value(
            &body2,
            r#"floatip_master_advert_age_seconds{vrrp_instance="files"}"#
        ),
        None,
        "a master reports no advert age:\n{body2}"
    );

    // Junk gets an HTTP error and the endpoint keeps serving.
    let junk = in_netns(&h2, || {
        let mut s = TcpStream::connect(METRICS).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"BREW /coffee HTCPCP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    });
    assert!(
        junk.as_deref()
            .is_some_and(|o| o.starts_with("HTTP/1.1 400")),
        "{junk:?}"
    );
    assert!(state_is(&h2, "files", "MASTER"));
    Ok(())
}

/// Runs the doctor in-process inside `host`'s namespace.
fn doctor_in(host: &Host, cfg: &Path, socket: &Path) -> Report {
    let cfg = floatip::config::load(cfg).expect("config");
    let socket = socket.to_path_buf();
    in_netns(host, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(floatip::cli::doctor::run(&cfg, &socket))
    })
}

fn failed<'a>(report: &'a Report, needle: &str) -> Option<&'a floatip::cli::doctor::Item> {
    report
        .items()
        .find(|i| i.mark == Mark::Fail && i.text.contains(needle))
}

#[test]
fn doctor_names_firewall_and_interface_faults() -> anyhow::Result<()> {
    if !require_root("ops_doctor") || !require_nft("ops_doctor") {
        return Ok(());
    }
    let (lab, h1, h2) = two_hosts("fipopsdoctor");
    // h2 is the master the doctor on h1 should hear and see answering ARP.
    let _d2 = start(&lab, &h2, &[Instance::v4(200)]);
    // h1: no daemon; an interface that is down, and an interface that does not exist.
    // (a veth pair inside h1, left down: kernels without the dummy module have veth, the lab needs it)
    h1.ip(&[
        "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
    ])?;
    let socket = lab.path("h1.sock");
    let daemon_keys = format!("socket = \"{}\"\n{}", path_str(&socket), metrics_key());
    let instances = [
        Instance::v4(100),
        Instance::named("gone", 53, 100, "192.0.2.98/24").interface("eth9"),
        Instance::named("quiet", 54, 100, "192.0.2.99/24").interface("dum0"),
    ];
    let c1 = write_file(
        &lab,
        "h1.toml",
        &config_text(&lab.path("h1-state"), &daemon_keys, &instances),
    );
    assert!(
        wait_until(SETTLE, POLL, || h2.has_address(VIP)),
        "h2 never became master"
    );

    let before = doctor_in(&h1, &c1, &socket);
    let text = before.render();
    eprintln!("{text}");
    assert!(
        failed(&before, "interface eth9 does not exist").is_some(),
        "{text}"
    );
    assert!(
        failed(&before, "interface dum0 is down").is_some(),
        "{text}"
    );
    assert!(
        before
            .items()
            .any(|i| i.text.contains("heard 192.0.2.2 on VRID 51")
                && i.text.contains("priority 200")),
        "{text}"
    );
    assert!(
        before.items().any(|i| i.mark == Mark::Ok
            && i.text
                .contains("192.0.2.97 is answered by 02:00:00:00:00:02")),
        "{text}"
    );
    assert!(failed(&before, "nftables").is_none(), "{text}");
    assert!(
        before
            .items()
            .any(|i| i.mark == Mark::Fail && i.text.contains("no daemon answers")),
        "{text}"
    );

    // The classic: a firewall on h1 drops VRRP.
    h1.run(&["nft", "add", "table", "inet", "t"])?;
    h1.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        "t",
        "in",
        "{ type filter hook input priority 0; }",
    ])?;
    h1.run(&[
        "nft", "add", "rule", "inet", "t", "in", "ip", "protocol", "vrrp", "drop",
    ])?;
    let after = doctor_in(&h1, &c1, &socket);
    let text = after.render();
    eprintln!("{text}");
    let fw = failed(&after, "nftables drops VRRP").unwrap_or_else(|| panic!("{text}"));
    assert!(fw.text.contains("table inet t chain in"), "{text}");
    assert!(fw.text.contains("ip protocol vrrp drop"), "{text}");
    assert!(
        fw.fix
            .iter()
            .any(|f| f.contains("nft insert rule inet t in position")),
        "{text}"
    );
    assert!(
        after
            .items()
            .any(|i| i.text.contains("no adverts on VRID 51 heard on eth0")
                && i.fix.iter().any(|f| f.contains("protocol 112"))),
        "{text}"
    );
    Ok(())
}
