//! `floatip init` in network namespaces: with a keepalived speaker on VRID 51 on the wire it picks
//! another VRID and says whom it heard; with the VIP answered by another host it refuses, names that
//! host's MAC and writes nothing; the configuration it writes and the one its mirror command writes
//! on the other host elect one master and fail over.
//!
//! Needs root (and keepalived for the first test); SKIPPED otherwise, unless CI=true.

mod common;

use std::time::Duration;

use common::*;

/// Runs `floatip init ARGS --output <lab>/NAME` in `host`; returns (success, stdout, stderr, path).
fn init(
    lab: &Lab,
    host: &Host,
    out: &str,
    args: &[&str],
) -> (bool, String, String, std::path::PathBuf) {
    init_to(host, lab.path(out), args)
}

fn init_to(
    host: &Host,
    path: std::path::PathBuf,
    args: &[&str],
) -> (bool, String, String, std::path::PathBuf) {
    let mut argv = vec![floatip_bin(), "init"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--output", path_str(&path)]);
    let o = host.output(&argv).expect("cannot run floatip init");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        path,
    )
}

fn vrid_of(text: &str) -> u8 {
    text.lines()
        .find_map(|l| l.strip_prefix("vrid = "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no vrid in:\n{text}"))
}

#[test]
fn init_does_not_pick_a_vrid_keepalived_speaks_on() {
    if !require_root("init_does_not_pick_a_vrid_keepalived_speaks_on")
        || !require_keepalived("init_does_not_pick_a_vrid_keepalived_speaks_on")
    {
        return;
    }
    let (lab, h1, h2) = two_hosts("init_vrid");
    // keepalived on h2: VRID 51 (the first one init would try) for another address.
    let ka = start_keepalived(
        &lab,
        &h2,
        &KaInstance {
            vips: vec!["192.0.2.50/24".into()],
            ..KaInstance::v4(100, 3, "0.1")
        },
    );
    assert!(
        wait_until(SETTLE, STEP, || h2.has_address("192.0.2.50")),
        "keepalived did not become master; log:\n{}",
        ka.log()
    );
    let (ok, stdout, stderr, path) = init(
        &lab,
        &h1,
        "h1.toml",
        &["--vip", "192.0.2.97/24", "--listen", "2s"],
    );
    assert!(ok, "init failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("VRID 51 from 192.0.2.2"),
        "init must say whom it heard:\n{stdout}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_ne!(
        vrid_of(&text),
        51,
        "init picked the VRID keepalived speaks on:\n{text}"
    );
    assert!(text.contains("interface = \"eth0\""), "{text}");
    // Never overwrites without --force.
    let (ok, _, stderr, _) = init_to(
        &h1,
        path.clone(),
        &["--vip", "192.0.2.97/24", "--listen", "1s"],
    );
    assert!(
        !ok && stderr.contains("--force"),
        "ok={ok} stderr: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file was changed"
    );
}

/// Beside keepalived at its defaults (VRRPv2, which cannot hear VRRPv3) init writes `version = 2`,
/// and the file it writes elects with keepalived: it stays backup while keepalived is master.
#[test]
fn init_beside_keepalived_at_its_defaults_writes_version_2() {
    let name = "init_beside_keepalived_at_its_defaults_writes_version_2";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts("init_v2");
    // keepalived's defaults: no vrrp_version (2), advert_int 1.
    let ka = start_keepalived(&lab, &h2, &KaInstance::v4(150, 0, "1"));
    assert!(
        wait_until(SETTLE, STEP, || h2.has_address(VIP4)),
        "keepalived did not become master; log:\n{}",
        ka.log()
    );
    let (ok, stdout, stderr, path) = init(
        &lab,
        &h1,
        "h1.toml",
        &["--vip", "192.0.2.97/24", "--secondary", "--listen", "3s"],
    );
    assert!(ok, "init failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("speaks VRRPv2"), "{stdout}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\nversion = 2\n") && vrid_of(&text) == 51,
        "{text}"
    );
    let n1 = Node::start_text(&lab, &h1, &text);
    n1.wait_state("files", "BACKUP");
    assert_sole_owner_for(&[&h1, &h2], &h2, VIP4, Duration::from_millis(4500), SAMPLE);
    let st = n1.status("files");
    assert!(
        st["master"]["address"] == "192.0.2.2" && st["version"] == 2,
        "{st:#}"
    );
}

#[test]
fn init_refuses_a_vip_another_host_answers_and_names_its_mac() {
    if !require_root("init_refuses_a_vip_another_host_answers_and_names_its_mac") {
        return;
    }
    let (lab, h1, h2) = two_hosts("init_answered");
    h2.add_address(&format!("{VIP4}/24")).unwrap();
    let (ok, stdout, stderr, path) = init(
        &lab,
        &h1,
        "h1.toml",
        &["--vip", "192.0.2.97/24", "--listen", "1s"],
    );
    assert!(!ok, "init accepted a VIP that h2 answers for:\n{stdout}");
    assert!(
        stderr
            .to_lowercase()
            .contains(&h2.mac_string().to_lowercase()),
        "the refusal must name h2's MAC {}:\n{stderr}",
        h2.mac_string()
    );
    assert!(!path.exists(), "nothing may be written");
}

#[test]
fn init_and_its_mirror_command_elect_and_fail_over() {
    if !require_root("init_and_its_mirror_command_elect_and_fail_over") {
        return;
    }
    let (lab, h1, h2) = two_hosts("init_pair");
    let (ok, stdout, stderr, path1) = init(
        &lab,
        &h1,
        "h1-init.toml",
        &[
            "--vip",
            "192.0.2.97/24",
            "--peer",
            "192.0.2.2",
            "--listen",
            "1s",
        ],
    );
    assert!(ok, "init on h1 failed:\n{stdout}\n{stderr}");
    let mirror = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("floatip init "))
        .unwrap_or_else(|| panic!("no mirror command in:\n{stdout}"))
        .to_string();
    assert!(
        mirror.contains("--secondary") && mirror.contains("--peer 192.0.2.1"),
        "{mirror}"
    );
    let n1 = Node::start_text(&lab, &h1, &std::fs::read_to_string(&path1).unwrap());
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);

    // The mirror on h2 while h1 runs: it hears h1 on the same VRID for the same VIP (its pair) and
    // accepts that h1 answers for the VIP.
    let args: Vec<&str> = mirror.split_whitespace().skip(2).collect();
    let mut args = args;
    args.extend_from_slice(&["--listen", "2s"]);
    let (ok, stdout2, stderr2, path2) = init(&lab, &h2, "h2-init.toml", &args);
    assert!(ok, "the mirror command failed on h2:\n{stdout2}\n{stderr2}");
    assert!(
        stdout2.contains("192.0.2.1 already speaks it") && stdout2.contains("expected"),
        "the mirror must recognise h1 as its pair (adverts and ARP answer):\n{stdout2}"
    );
    let text2 = std::fs::read_to_string(&path2).unwrap();
    assert_eq!(
        vrid_of(&text2),
        vrid_of(&std::fs::read_to_string(&path1).unwrap())
    );
    assert!(
        text2.contains("priority = 100") && text2.contains("unicast_peers = [\"192.0.2.1\"]"),
        "{text2}"
    );
    let _n2 = Node::start_text(&lab, &h2, &text2);
    n1.wait_state("files", "MASTER");
    _n2.wait_state("files", "BACKUP");
    assert_sole_owner_for(&[&h1, &h2], &h1, VIP4, Duration::from_secs(3), SAMPLE);

    // Host loss: the secondary takes over.
    h1.link_down().unwrap();
    wait_sole_owner(&[&h2], &h2, VIP4, SETTLE);
}

#[test]
fn init_over_ipv6_probes_with_neighbour_discovery() {
    if !require_root("init_over_ipv6_probes_with_neighbour_discovery") {
        return;
    }
    let (lab, hosts) = lab_with_hosts("init_v6", 2, true);
    let (h1, h2) = (&hosts[0], &hosts[1]);
    h2.add_address(&format!("{VIP6}/64")).unwrap();
    // Past duplicate address detection on h2 (about a second), so h2 answers for it.
    let answered = wait_until(SETTLE, STEP, || {
        h2.address_info().is_ok_and(|a| {
            a.iter()
                .any(|i| i.ip.to_string() == VIP6 && !i.flags.iter().any(|f| f == "tentative"))
        })
    });
    assert!(answered, "h2's {VIP6} stayed tentative");
    let (ok, stdout, stderr, path) = init(
        &lab,
        h1,
        "h1.toml",
        &["--vip", "2001:db8::97/64", "--listen", "1s"],
    );
    assert!(
        !ok,
        "init accepted an IPv6 VIP that h2 answers for:\n{stdout}"
    );
    assert!(
        stderr
            .to_lowercase()
            .contains(&h2.mac_string().to_lowercase()),
        "the refusal must name h2's MAC {}:\n{stderr}",
        h2.mac_string()
    );
    assert!(!path.exists());
    h2.del_address(&format!("{VIP6}/64")).unwrap();
    let (ok, stdout, stderr, path) = init(
        &lab,
        h1,
        "h1b.toml",
        &["--vip", "2001:db8::97/64", "--listen", "1s"],
    );
    assert!(ok, "init failed:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("addresses = [\"2001:db8::97/64\"]") && text.contains("interface = \"eth0\""),
        "{text}"
    );
}
