//! The lab's own tests. They need root (network namespaces); without it they print SKIPPED
//! (and fail when CI=true).

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use floatip_lab::{require_root, unix_now, wait_until, Lab, Pinger};

fn netns_list() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn ours(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect()
}

fn root_view(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Alive = exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

#[test]
fn two_hosts_ping_over_the_bridge_v4_and_v6() {
    if !require_root("two_hosts_ping_over_the_bridge_v4_and_v6") {
        return;
    }
    let mut lab = Lab::new("fiplab_ping").unwrap();
    let h1 = lab
        .add_host("h1", "192.0.2.1/24", Some("2001:db8::1/64"))
        .unwrap();
    let h2 = lab
        .add_host("h2", "192.0.2.2/24", Some("2001:db8::2/64"))
        .unwrap();
    assert_eq!(h1.mac, [2, 0, 0, 0, 0, 1]);
    assert_eq!(h2.mac_string(), "02:00:00:00:00:02");
    assert!(h1.can_ping("192.0.2.2"));
    assert!(h2.can_ping("192.0.2.1"));
    assert!(h1.can_ping("2001:db8::2"));
    assert!(h2.can_ping("2001:db8::1"));
    // Neighbour tables learnt the deterministic MACs.
    assert_eq!(h1.neigh_mac("192.0.2.2"), Some(h2.mac));
    assert_eq!(h2.neigh_mac("2001:db8::1"), Some(h1.mac));
    assert_eq!(h1.neigh_mac("192.0.2.50"), None);
    // Addresses as configured.
    let addrs = h1.addresses().unwrap();
    assert!(addrs.contains(&"192.0.2.1/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"2001:db8::1/64".to_string()), "{addrs:?}");
    assert!(h1.has_address("192.0.2.1"));
    assert!(h1.has_address("2001:db8::1/64"));
    assert!(!h1.has_address("192.0.2.2"));
    assert_eq!(lab.host("h2").ipv4.to_string(), "192.0.2.2");
    // A VIP with a finite lifetime shows its lifetime.
    h1.ip(&[
        "addr",
        "add",
        "192.0.2.97/32",
        "dev",
        "eth0",
        "valid_lft",
        "30",
        "preferred_lft",
        "30",
    ])
    .unwrap();
    let vip = h1
        .address_info()
        .unwrap()
        .into_iter()
        .find(|a| a.cidr == "192.0.2.97/32")
        .unwrap();
    assert!(vip.valid_lft.is_some_and(|s| s <= 30), "{vip:?}");
    assert!(h2.can_ping("192.0.2.97"));
}

#[test]
fn root_namespace_gains_nothing() {
    if !require_root("root_namespace_gains_nothing") {
        return;
    }
    let links = root_view(&["-o", "link"]);
    let addrs = root_view(&["-o", "addr"]);
    {
        let mut lab = Lab::new("fiplab_root").unwrap();
        lab.add_host("h1", "192.0.2.1/24", Some("2001:db8::1/64"))
            .unwrap();
        lab.add_host("h2", "192.0.2.2/24", None).unwrap();
        assert_eq!(
            root_view(&["-o", "link"]),
            links,
            "root namespace links changed"
        );
        assert_eq!(
            root_view(&["-o", "addr"]),
            addrs,
            "root namespace addresses changed"
        );
    }
    assert_eq!(root_view(&["-o", "link"]), links);
    assert_eq!(root_view(&["-o", "addr"]), addrs);
}

#[test]
fn refuses_addresses_outside_the_lab_ranges() {
    if !require_root("refuses_addresses_outside_the_lab_ranges") {
        return;
    }
    let mut lab = Lab::new("fiplab_refuse").unwrap();
    for (v4, v6) in [
        ("10.0.0.1/24", None),
        ("192.168.1.1/24", None),
        ("192.0.2.1/16", None),
        ("192.0.2.1/24", Some("fd00::1/64")),
        ("192.0.2.1/24", Some("2001:db8:1::1/64")),
    ] {
        let err = lab.add_host("h1", v4, v6).unwrap_err();
        assert!(format!("{err:#}").contains("refusing"), "{err:#}");
    }
    assert_eq!(ours(lab.prefix()).len(), 1, "only the switch namespace");
    let h = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
    assert!(h.add_address("172.16.0.1/32").is_err());
    assert!(
        lab.add_host("h1", "192.0.2.3/24", None).is_err(),
        "duplicate name"
    );
    assert!(
        lab.add_host("h2", "192.0.2.1/24", None).is_err(),
        "duplicate address"
    );
    assert!(lab.add_host("Bad Name", "192.0.2.4/24", None).is_err());
}

#[test]
fn drop_removes_namespaces_and_processes() {
    if !require_root("drop_removes_namespaces_and_processes") {
        return;
    }
    let prefix;
    let dir;
    let pids;
    {
        let mut lab = Lab::new("fiplab_drop").unwrap();
        prefix = lab.prefix().to_string();
        dir = lab.dir().to_path_buf();
        let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
        lab.add_host("h2", "192.0.2.2/24", None).unwrap();
        assert_eq!(ours(&prefix).len(), 3);
        let p = h1.spawn(&["sleep", "1000"], None).unwrap();
        // A process that ignores SIGTERM, and a grandchild the lab never saw.
        let stubborn = h1
            .spawn(
                &[
                    "sh",
                    "-c",
                    "trap '' TERM; echo $$; sleep 1000 & echo $!; wait",
                ],
                None,
            )
            .unwrap();
        assert!(wait_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || { stubborn.log().lines().count() >= 2 }
        ));
        let grandchild: u32 = stubborn
            .log()
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        pids = vec![p.pid(), stubborn.pid(), grandchild];
        for &pid in &pids {
            assert!(alive(pid), "{pid} should run");
        }
        assert!(dir.exists());
    }
    assert!(ours(&prefix).is_empty(), "left behind: {:?}", ours(&prefix));
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(10), || pids
            .iter()
            .all(|&p| !alive(p))),
        "processes survived the lab: {pids:?}"
    );
    assert!(!dir.exists() || std::env::var("FLOATIP_LAB_KEEP").is_ok());
}

#[test]
fn drop_cleans_up_after_a_panic() {
    if !require_root("drop_cleans_up_after_a_panic") {
        return;
    }
    let seen: Mutex<Option<(String, u32)>> = Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let mut lab = Lab::new("fiplab_panic").unwrap();
        let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
        let p = h1.spawn(&["sleep", "1000"], None).unwrap();
        *seen.lock().unwrap() = Some((lab.prefix().to_string(), p.pid()));
        panic!("deliberate panic inside a lab test");
    });
    assert!(result.is_err());
    let (prefix, pid) = seen.lock().unwrap().clone().unwrap();
    assert!(ours(&prefix).is_empty(), "left behind: {:?}", ours(&prefix));
    assert!(!alive(pid));
}

#[test]
fn link_down_stops_traffic_and_link_up_restores_it() {
    if !require_root("link_down_stops_traffic_and_link_up_restores_it") {
        return;
    }
    let mut lab = Lab::new("fiplab_link").unwrap();
    let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
    let c = lab.add_host("c", "192.0.2.100/24", None).unwrap();
    assert!(c.can_ping("192.0.2.1"));
    h1.link_down().unwrap();
    assert!(!c.can_ping("192.0.2.1"));
    h1.link_up().unwrap();
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || c.can_ping("192.0.2.1")
    ));
}

#[test]
fn processes_run_in_the_host_and_log() {
    if !require_root("processes_run_in_the_host_and_log") {
        return;
    }
    let mut lab = Lab::new("fiplab_proc").unwrap();
    let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
    let out = h1
        .run(&["ip", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(out.contains("192.0.2.1/24"));
    let err = h1.run(&["sh", "-c", "echo oops >&2; exit 4"]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("oops") && msg.contains("exit 4"), "{msg}");
    let mut p = h1
        .spawn(
            &[
                "sh",
                "-c",
                "echo hello; ip -o addr show dev eth0; echo bye >&2; exit 3",
            ],
            None,
        )
        .unwrap();
    let st = p.wait_exit(Duration::from_secs(5)).unwrap();
    assert_eq!(st.code(), Some(3));
    let log = p.log();
    assert!(
        log.contains("hello") && log.contains("192.0.2.1/24") && log.contains("bye"),
        "{log}"
    );
    // Freeze and thaw, then terminate.
    let mut s = h1.spawn(&["sleep", "1000"], None).unwrap();
    assert!(s.signal(libc::SIGSTOP));
    assert!(s.signal(libc::SIGCONT));
    assert!(s.is_running());
    assert!(s.stop(Duration::from_secs(2)).is_some());
    assert!(!s.signal(libc::SIGTERM), "no signal to an exited process");
}

#[test]
fn pinger_measures_a_link_loss_gap() {
    if !require_root("pinger_measures_a_link_loss_gap") {
        return;
    }
    let mut lab = Lab::new("fiplab_gap").unwrap();
    let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
    let c = lab.add_host("c", "192.0.2.100/24", None).unwrap();
    let pinger = Pinger::start(&c, "192.0.2.1", Duration::from_millis(2)).unwrap();
    assert!(
        pinger.wait_replies(50, Duration::from_secs(5)),
        "no baseline replies"
    );
    let t0 = unix_now();
    h1.link_down().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    h1.link_up().unwrap();
    let t1 = unix_now();
    assert!(
        pinger.wait_reply_after(t1, Duration::from_secs(5)),
        "no reply after link_up"
    );
    std::thread::sleep(Duration::from_millis(100));
    let gap = pinger.longest_gap(t0 - 0.05, unix_now());
    let report = pinger.stop();
    // Resolution, for the record: typical spacing between replies outside the outage.
    let mut steps: Vec<f64> = report
        .replies
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .filter(|d| *d < 0.1)
        .collect();
    steps.sort_by(f64::total_cmp);
    eprintln!(
        "gap {gap:?}; report: sent {} received {} dup {} errors {} longest {:?}; \
         reply spacing median {:.3} ms p99 {:.3} ms",
        report.sent,
        report.received,
        report.duplicates,
        report.errors,
        report.longest_gap,
        steps[steps.len() / 2] * 1e3,
        steps[steps.len() * 99 / 100] * 1e3
    );
    assert!(gap >= Duration::from_millis(250), "{gap:?}");
    assert!(gap < Duration::from_secs(2), "{gap:?}");
    assert_eq!(
        report.longest_gap,
        Some(gap.max(report.longest_gap.unwrap()))
    );
    assert!(report.sent >= report.received && report.received > 50);
}

#[test]
fn pinger_keeps_recording_when_the_address_moves() {
    if !require_root("pinger_keeps_recording_when_the_address_moves") {
        return;
    }
    let mut lab = Lab::new("fiplab_move").unwrap();
    let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
    let h2 = lab.add_host("h2", "192.0.2.2/24", None).unwrap();
    let c = lab.add_host("c", "192.0.2.100/24", None).unwrap();
    h1.add_address("192.0.2.97/32").unwrap();
    let pinger = Pinger::start(&c, "192.0.2.97", Duration::from_millis(2)).unwrap();
    assert!(pinger.wait_replies(20, Duration::from_secs(5)));
    assert_eq!(c.neigh_mac("192.0.2.97"), Some(h1.mac));
    // Move the address, and make the client forget the old MAC (what a gratuitous ARP does).
    h1.del_address("192.0.2.97/32").unwrap();
    h2.add_address("192.0.2.97/32").unwrap();
    c.neigh_flush().unwrap();
    let moved = unix_now();
    assert!(
        pinger.wait_reply_after(moved, Duration::from_secs(5)),
        "no reply from the new owner"
    );
    let before = pinger.received();
    assert!(pinger.wait_replies(before + 20, Duration::from_secs(5)));
    assert_eq!(c.neigh_mac("192.0.2.97"), Some(h2.mac));
    let report = pinger.stop();
    assert!(report.received > 40, "{report:?}");
    assert_eq!(report.duplicates, 0);
}

#[test]
fn pinger_works_over_ipv6() {
    if !require_root("pinger_works_over_ipv6") {
        return;
    }
    let mut lab = Lab::new("fiplab_ping6").unwrap();
    lab.add_host("h1", "192.0.2.1/24", Some("2001:db8::1/64"))
        .unwrap();
    let c = lab
        .add_host("c", "192.0.2.100/24", Some("2001:db8::64/64"))
        .unwrap();
    let pinger = Pinger::start(&c, "2001:db8::1", Duration::from_millis(1)).unwrap();
    assert!(
        pinger.wait_replies(100, Duration::from_secs(5)),
        "{}",
        pinger.received()
    );
    let report = pinger.stop();
    assert!(report.sent >= report.received);
    assert!(report
        .replies
        .iter()
        .all(|r| r.rtt_ms >= 0.0 && r.rtt_ms < 1000.0));
    assert!(Pinger::start(&c, "fd00::1", Duration::from_millis(1)).is_err());
}
