//! The config file as a user meets it: the shipped examples parse, defaults are what docs/config.md says,
//! and every mistake is reported (all of them at once) at its line with a hint that says what to do.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use floatip::config::{self, CheckKind, Config, ConfigError, Problem, Vip};

const FILE: &str = "/etc/floatip/floatip.toml";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    config::parse(text, Path::new(FILE))
}

#[track_caller]
fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}\n--- config ---\n{text}"),
    }
}

#[track_caller]
fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(c) => panic!("expected problems, got a valid config: {c:#?}\n--- config ---\n{text}"),
        Err(e) => {
            assert!(!e.problems.is_empty(), "a ConfigError must never be empty");
            e.problems
        }
    }
}

/// The one problem reported at `line`, checked to mention `what` and `hint`.
#[track_caller]
fn problem_at(text: &str, line: usize, what: &str, hint: &str) -> Problem {
    let all = problems(text);
    let shown = all
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let at_line: Vec<&Problem> = all.iter().filter(|p| p.line == line).collect();
    assert_eq!(
        at_line.len(),
        1,
        "expected one problem at line {line}, got:\n{shown}"
    );
    let p = at_line[0].clone();
    assert!(
        p.what.contains(what),
        "what {:?} should contain {what:?}\n{shown}",
        p.what
    );
    assert!(
        p.hint.contains(hint),
        "hint {:?} should contain {hint:?}\n{shown}",
        p.hint
    );
    assert_eq!(p.path, Path::new(FILE));
    p
}

/// A valid instance; tests append or replace lines to break exactly one thing.
const BASE: &str = r#"[[instance]]
name = "files"
interface = "eth0"
vrid = 51
addresses = ["192.0.2.97/24"]
"#;

fn with(extra: &str) -> String {
    format!("{BASE}{extra}\n")
}

// ---- the shipped examples -------------------------------------------------------------------------

#[test]
fn example_config_parses_into_the_file_server() {
    let path = workspace_root().join("examples/floatip.toml");
    let c = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.path, path);
    assert_eq!(c.instances.len(), 1);
    let files = &c.instances[0];
    assert_eq!(files.name, "files");
    assert_eq!(files.interface, "eth0");
    assert_eq!(files.vrid, 51);
    assert_eq!(files.priority, 150);
    assert_eq!(files.version, vrrp::Version::V3);
    assert_eq!(files.advert_interval, Duration::from_secs(1));
    assert_eq!(
        files.addresses,
        vec!["192.0.2.97/24".parse::<Vip>().unwrap()]
    );
    assert_eq!(c.daemon.socket, Path::new("/run/floatip/floatip.sock"));
}

#[test]
fn every_example_file_parses() {
    let dir = workspace_root().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            config::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected the examples in {}", dir.display());
}

/// The commented-out keys in the example are documentation; they must be valid when uncommented.
#[test]
fn example_config_is_valid_with_every_optional_key_uncommented() {
    let text = std::fs::read_to_string(workspace_root().join("examples/floatip.toml")).unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("# ").unwrap_or(line);
            let is_toml = rest.starts_with('[')
                || rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            if is_toml {
                format!("{rest}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let c = ok(&uncommented);
    let files = &c.instances[0];
    assert_eq!(c.daemon.http, Some("127.0.0.1:9797".parse().unwrap()));
    assert_eq!(
        files.unicast_peers,
        vec!["192.0.2.2".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        files.witness,
        vec!["192.0.2.254".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(files.track_interfaces, vec!["eth1".to_string()]);
    assert_eq!(files.announce.refresh, Some(Duration::from_secs(60)));
    assert_eq!(
        files.checks.len(),
        4,
        "every check kind is shown in the example"
    );
    assert!(files.notify.master.is_some() && files.notify.stop.is_some());
}

#[test]
fn full_example_has_checks_hooks_and_both_families() {
    let c = config::load(&workspace_root().join("examples/file-server-full.toml")).unwrap();
    let files = &c.instances[0];
    assert!(!files.is_v6());
    assert!(c.instances[1].is_v6());
    assert_eq!(c.instances[2].version, vrrp::Version::V2);
    let kinds: Vec<&CheckKind> = files.checks.iter().map(|c| &c.kind).collect();
    assert!(matches!(kinds[0], CheckKind::Tcp { target } if target.port() == 445));
    assert!(
        matches!(kinds[1], CheckKind::Exec { command } if command[0] == "/usr/local/bin/check-nfs")
    );
    assert!(matches!(kinds[2], CheckKind::Icmp { .. }));
    assert!(matches!(
        kinds[3],
        CheckKind::Http { expect_status: Some(200), expect_body: Some(b), .. } if b == "ok"
    ));
    assert_eq!(files.checks[2].weight, Some(-60));
    assert_eq!(files.preempt_delay, Duration::from_secs(10));
}

// ---- defaults -------------------------------------------------------------------------------------

#[test]
fn defaults_are_the_documented_ones() {
    let c = ok(BASE);
    assert_eq!(c.daemon.socket, Path::new("/run/floatip/floatip.sock"));
    assert_eq!(c.daemon.state_dir, Path::new("/var/lib/floatip"));
    assert_eq!(c.daemon.http, None);
    assert_eq!(c.daemon.log_level, None);
    let i = &c.instances[0];
    assert_eq!(i.priority, 100);
    assert_eq!(i.version, vrrp::Version::V3);
    assert_eq!(i.advert_interval, Duration::from_secs(1));
    assert!(i.preempt);
    assert_eq!(i.preempt_delay, Duration::ZERO);
    assert_eq!(i.checksum, vrrp::ChecksumMode::PseudoHeader);
    assert_eq!(i.announce.count, 5);
    assert_eq!(i.announce.spacing, Duration::from_millis(200));
    assert_eq!(i.announce.refresh, None);
    assert_eq!(i.address_lifetime, Duration::from_secs(2));
    assert!(i.unicast_peers.is_empty() && i.witness.is_empty() && i.track_interfaces.is_empty());
    assert!(i.checks.is_empty());
    assert_eq!(i.notify.timeout, Duration::from_secs(30));
    assert_eq!(i.notify.master, None);
}

#[test]
fn check_defaults_and_timeout_follows_a_short_interval() {
    let c = ok(&with(
        r#"[[instance.check]]
name = "smb"
kind = "tcp"
target = "127.0.0.1:445"

[[instance.check]]
name = "fast"
kind = "icmp"
target = "192.0.2.254"
interval = "200ms"
"#,
    ));
    let [smb, fast] = &c.instances[0].checks[..] else {
        panic!()
    };
    assert_eq!(
        (smb.interval, smb.timeout, smb.rise, smb.fall, smb.weight),
        (Duration::from_secs(2), Duration::from_secs(1), 2, 3, None)
    );
    // The default 1s timeout would not fit in 200 ms; half the interval is used instead.
    assert_eq!(fast.timeout, Duration::from_millis(100));
}

#[test]
fn address_lifetime_default_expires_before_a_backup_claims() {
    let cases = [
        ("10ms", 1),
        ("500ms", 1),
        ("990ms", 2), // 1 s would leave only 10 ms for the refresh
        ("1s", 2),
        ("2s", 5),
        ("40.95s", 121),
    ];
    for (interval, secs) in cases {
        let d = config::parse_duration(interval).unwrap();
        let lifetime = config::default_address_lifetime(d);
        assert_eq!(
            lifetime,
            Duration::from_secs(secs),
            "advert_interval {interval}"
        );
        assert!(
            lifetime > d,
            "the master's refresh must keep the address ({interval})"
        );
    }
    let c = ok(&with("advert_interval = \"10ms\""));
    assert_eq!(c.instances[0].address_lifetime, Duration::from_secs(1));
}

// ---- durations ------------------------------------------------------------------------------------

#[test]
fn durations_parse() {
    let d = |s| config::parse_duration(s).unwrap();
    assert_eq!(d("250ms"), Duration::from_millis(250));
    assert_eq!(d("10ms"), Duration::from_millis(10));
    assert_eq!(d("1s"), Duration::from_secs(1));
    assert_eq!(d("1.5s"), Duration::from_millis(1500));
    assert_eq!(d("2m"), Duration::from_secs(120));
    assert_eq!(d("1h"), Duration::from_secs(3600));
    assert_eq!(d("1m30s"), Duration::from_secs(90));
    assert_eq!(d(" 0s "), Duration::ZERO);
    assert_eq!(d("40.95s"), Duration::from_millis(40_950));
}

#[test]
fn durations_reject_with_a_hint() {
    let e = |s| config::parse_duration(s).unwrap_err();
    assert!(e("1").contains("\"1s\""), "{}", e("1"));
    assert!(e("1").contains("no unit"));
    assert!(e("250").contains("\"250ms\""));
    assert!(e("5sec").contains("unknown unit"));
    assert!(e("").contains("empty"));
    assert!(e("fast").contains("not a duration"));
    assert!(e("-1s").contains("not a duration"));
    assert!(e("1.2.3s").contains("not a number"));
    assert!(e("99999999999999999999999h").contains("too long"));
}

#[test]
fn bare_number_duration_in_the_file_points_at_the_value() {
    let p = problem_at(&with("advert_interval = 1"), 6, "no unit", "\"1s\"");
    assert_eq!(p.column, 19);
}

/// A number without a unit is answered with the readings the key can take: `advert_interval = 1`
/// is "1s" (VRRPv3's minimum is 10 ms, so never "1ms"), `100` is "100ms" (100 s is past 40.95 s),
/// and a VRRPv2 interval is whole seconds.
#[test]
fn a_bare_number_suggests_only_the_readings_the_key_takes() {
    let hint = |line: &str, at: usize| {
        let text = with(line);
        problem_at(&text, at, "has no unit", "durations are quoted strings").hint
    };
    let one = hint("advert_interval = 1", 6);
    assert!(one.contains("advert_interval = \"1s\""), "{one}");
    assert!(!one.contains("1ms"), "1 ms is below VRRPv3's 10 ms: {one}");
    let quoted = hint("advert_interval = \"1\"", 6);
    assert!(
        quoted.contains("\"1s\"") && !quoted.contains("1ms"),
        "{quoted}"
    );
    let hundred = hint("advert_interval = 100", 6);
    assert!(
        hundred.contains("\"100ms\"") && !hundred.contains("\"100s\""),
        "{hundred}"
    );
    let v2 = hint("version = 2\nadvert_interval = 2", 7);
    assert!(v2.contains("\"2s\"") && !v2.contains("2ms"), "{v2}");
    // A key without such limits keeps both readings.
    let both = hint("preempt_delay = 5", 6);
    assert!(
        both.contains("\"5s\"") && both.contains("\"5ms\""),
        "{both}"
    );
}

// ---- single rules, each at its line with its hint ---------------------------------------------------

#[test]
fn vrid_out_of_range_at_its_line_and_column() {
    let text = BASE.replace("vrid = 51", "vrid = 300");
    let p = problem_at(&text, 4, "vrid 300 is out of range", "1-255");
    assert_eq!(p.column, 8);
    assert_eq!(
        p.to_string(),
        "/etc/floatip/floatip.toml:4:8: vrid 300 is out of range\n  hint: a VRID is 1-255 and must be the same on every router of this instance"
    );
    problem_at(&BASE.replace("vrid = 51", "vrid = 0"), 4, "vrid 0", "1-255");
}

#[test]
fn priority_zero_and_too_high_explain_the_owner_value() {
    problem_at(
        &with("priority = 0"),
        6,
        "priority 0 is reserved",
        "255 if this host owns",
    );
    problem_at(
        &with("priority = 256"),
        6,
        "priority 256",
        "255 means this host owns the address",
    );
    assert_eq!(ok(&with("priority = 255")).instances[0].priority, 255);
}

#[test]
fn version_must_be_2_or_3() {
    problem_at(&with("version = 4"), 6, "version 4", "version = 3");
}

#[test]
fn v2_refuses_sub_second_intervals() {
    let text = with("version = 2\nadvert_interval = \"10ms\"");
    problem_at(&text, 7, "advert_interval 10ms", "whole seconds");
    problem_at(
        &with("version = 2\nadvert_interval = \"1.5s\""),
        7,
        "1.5s",
        "version = 3",
    );
    let c = ok(&with("version = 2\nadvert_interval = \"2s\""));
    assert_eq!(c.instances[0].advert_interval, Duration::from_secs(2));
}

#[test]
fn v3_needs_10ms_steps_up_to_40_95s() {
    problem_at(
        &with("advert_interval = \"15ms\""),
        6,
        "not a multiple of 10ms",
        "10 ms steps",
    );
    problem_at(
        &with("advert_interval = \"5ms\""),
        6,
        "10ms to 40.95s",
        "centiseconds",
    );
    problem_at(&with("advert_interval = \"41s\""), 6, "41s", "40.95s");
    assert_eq!(
        ok(&with("advert_interval = \"10ms\"")).instances[0].advert_interval,
        Duration::from_millis(10)
    );
}

#[test]
fn v2_is_ipv4_only() {
    let text = BASE.replace("192.0.2.97/24", "2001:db8::97/64") + "version = 2\n";
    problem_at(&text, 6, "VRRPv2 is IPv4-only", "version = 3");
}

#[test]
fn mixed_families_in_one_instance() {
    let text = BASE.replace(
        r#"["192.0.2.97/24"]"#,
        r#"["192.0.2.97/24", "2001:db8::97/64"]"#,
    );
    let p = problem_at(&text, 5, "mixes address families", "second [[instance]]");
    assert_eq!(p.column, 31, "points at the IPv6 address, not the list");
}

#[test]
fn peers_and_witness_must_match_the_family() {
    let text =
        with("unicast_peers = [\"2001:db8::2\"]\nwitness = [\"192.0.2.254\", \"2001:db8::1\"]");
    let all = problems(&text);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].line == 6 && all[0].what.contains("unicast_peers: 2001:db8::2 is IPv6"));
    assert!(all[1].line == 7 && all[1].what.contains("witness: 2001:db8::1 is IPv6"));
    problem_at(
        &with("unicast_peers = [\"192.0.2.2/24\"]"),
        6,
        "not an IP address",
        "without /LEN",
    );
}

#[test]
fn addresses_need_a_prefix_and_a_host_address() {
    let addr = |a: &str| BASE.replace("192.0.2.97/24", a);
    problem_at(&addr("192.0.2.97"), 5, "no prefix length", "192.0.2.97/24");
    problem_at(&addr("192.0.2.0/24"), 5, "network address", "host address");
    problem_at(
        &addr("192.0.2.255/24"),
        5,
        "broadcast address",
        "host address",
    );
    problem_at(&addr("192.0.2.97/33"), 5, "prefix length", "1-32");
    problem_at(&addr("224.0.0.18/24"), 5, "multicast", "unicast");
    problem_at(&addr("192.0.2.300/24"), 5, "not an IP address", "ADDR/LEN");
    // /31 and /32 have no network or broadcast address.
    ok(&addr("192.0.2.96/31"));
    ok(&addr("192.0.2.97/32"));
    ok(&addr("2001:db8::97/64"));
    problem_at(
        &BASE.replace(r#"["192.0.2.97/24"]"#, "[]"),
        5,
        "addresses is empty",
        "192.0.2.97/24",
    );
}

#[test]
fn duplicate_address_in_one_instance() {
    let text = BASE.replace(
        r#"["192.0.2.97/24"]"#,
        r#"["192.0.2.97/24", "192.0.2.97/25"]"#,
    );
    problem_at(&text, 5, "listed twice", "once");
}

#[test]
fn missing_required_keys_are_all_reported_at_the_instance_header() {
    let text = "[daemon]\n\n[[instance]]\npriority = 120\n";
    let all = problems(text);
    let missing: Vec<&str> = all
        .iter()
        .inspect(|p| assert_eq!((p.line, p.column), (3, 1), "{p}"))
        .map(|p| p.what.as_str())
        .collect();
    assert_eq!(missing.len(), 4, "{missing:?}");
    for key in ["`name`", "`interface`", "`vrid`", "`addresses`"] {
        assert!(
            missing.iter().any(|m| m.contains(key)),
            "{key} missing from {missing:?}"
        );
    }
}

#[test]
fn no_instance_at_all() {
    let all = problems("[daemon]\nsocket = \"/run/floatip/floatip.sock\"\n");
    assert_eq!(all.len(), 1);
    assert!(all[0].what.contains("no [[instance]]"));
    assert!(all[0].hint.contains("examples/floatip.toml"));
}

#[test]
fn names_must_be_simple() {
    problem_at(
        &BASE.replace("\"files\"", "\"File Server\""),
        2,
        "not a valid name",
        "a-z, 0-9",
    );
    problem_at(
        &BASE.replace("\"eth0\"", "\"eth0/1\""),
        3,
        "not a valid Linux interface name",
        "ip link",
    );
}

#[test]
fn checksum_modes_and_where_they_apply() {
    let c = ok(&with("checksum = \"accept-either\""));
    assert_eq!(c.instances[0].checksum, vrrp::ChecksumMode::AcceptEither);
    problem_at(
        &with("checksum = \"rfc\""),
        6,
        "not a checksum mode",
        "message-only",
    );
    problem_at(
        &with("version = 2\nchecksum = \"message-only\""),
        7,
        "only applies to VRRPv3 over IPv4",
        "remove",
    );
}

#[test]
fn address_lifetime_rules() {
    problem_at(
        &with("address_lifetime = \"1500ms\""),
        6,
        "not whole seconds",
        "whole seconds",
    );
    problem_at(
        &with("advert_interval = \"2s\"\naddress_lifetime = \"2s\""),
        7,
        "too short for advert_interval 2s",
        "\"5s\"",
    );
    assert_eq!(
        ok(&with("address_lifetime = \"10s\"")).instances[0].address_lifetime,
        Duration::from_secs(10)
    );
}

#[test]
fn track_interfaces_rules() {
    problem_at(
        &with("track_interfaces = [\"eth0\"]"),
        6,
        "own interface",
        "always tracked",
    );
    problem_at(
        &with("track_interfaces = [\"eth1\", \"eth1\"]"),
        6,
        "twice",
        "once",
    );
}

#[test]
fn vmac_rules_and_defaults() {
    let c = ok(&with("vmac = true"));
    assert_eq!(c.instances[0].vmac_name().as_deref(), Some("vrrp.51"));
    assert_eq!(c.instances[0].vmac_address(), [0, 0, 0x5e, 0, 1, 51]);
    assert_eq!(ok(BASE).instances[0].vmac_name(), None);
    let v6 = ok(
        "[[instance]]\nname = \"f6\"\ninterface = \"eth0\"\nvrid = 52\n\
                 addresses = [\"2001:db8::97/64\"]\nvmac = true\n",
    );
    assert_eq!(v6.instances[0].vmac_name().as_deref(), Some("vrrp6.52"));
    assert_eq!(v6.instances[0].vmac_address(), [0, 0, 0x5e, 0, 2, 52]);
    let named = ok(&with("vmac = true\nvmac_interface = \"vrrp251\""));
    assert_eq!(named.instances[0].vmac_name().as_deref(), Some("vrrp251"));
    problem_at(
        &with("vmac_interface = \"vrrp.51\""),
        6,
        "vmac is not on",
        "vmac = true",
    );
    problem_at(
        &with("vmac = true\nvmac_interface = \"a/b\""),
        7,
        "not a valid Linux interface name",
        "1-15 characters",
    );
    problem_at(
        &with("vmac = true\nvmac_interface = \"eth0\""),
        7,
        "own interface",
        "its own name",
    );
    problem_at(&with("use_vmac = true"), 6, "use_vmac", "vmac = true");
}

#[test]
fn preempt_delay_without_preempt_is_pointed_out() {
    problem_at(
        &with("preempt = false\npreempt_delay = \"5s\""),
        6,
        "never applies",
        "preempt = true",
    );
    problem_at(
        &with("preempt_delay = \"2h\""),
        6,
        "preempt_delay 2h is out of range",
        "0s to 1h",
    );
}

// ---- checks and hooks -------------------------------------------------------------------------------

#[test]
fn check_keys_that_do_not_belong_to_the_kind() {
    let text = with(
        r#"[[instance.check]]
name = "smb"
kind = "tcp"
target = "127.0.0.1:445"
url = "http://127.0.0.1/"
command = ["/bin/true"]"#,
    );
    let all = problems(&text);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].line, 10);
    assert!(all[0]
        .what
        .contains("`url` does not apply to kind = \"tcp\""));
    assert!(all[0].hint.contains("target = \"127.0.0.1:445\""));
    assert_eq!(all[1].line, 11);
}

#[test]
fn check_values_are_validated() {
    let check = |body: &str| with(&format!("[[instance.check]]\nname = \"c\"\n{body}"));
    problem_at(
        &check("kind = \"ping\"\ntarget = \"192.0.2.254\""),
        8,
        "not a check kind",
        "icmp",
    );
    problem_at(
        &check("kind = \"tcp\"\ntarget = \"127.0.0.1\""),
        9,
        "not an ADDRESS:PORT",
        "127.0.0.1:445",
    );
    problem_at(&check("kind = \"icmp\""), 6, "no `target`", "192.0.2.254");
    problem_at(
        &check("kind = \"http\"\nurl = \"ftp://x/\""),
        9,
        "does not start with http:// or https://",
        "http://127.0.0.1:8080/health",
    );
    problem_at(
        &check("kind = \"icmp\"\ntarget = \"192.0.2.254\"\ninterval = \"1s\"\ntimeout = \"1s\""),
        11,
        "not shorter than interval",
        "below 1s",
    );
    problem_at(
        &check("kind = \"icmp\"\ntarget = \"192.0.2.254\"\nweight = 0"),
        10,
        "weight 0",
        "-60",
    );
    problem_at(
        &check("kind = \"icmp\"\ntarget = \"192.0.2.254\"\nweight = -300"),
        10,
        "out of range",
        "-254 to 254",
    );
    problem_at(
        &check("kind = \"exec\"\ncommand = \"check-nfs --quick\""),
        9,
        "argv array",
        "[\"check-nfs\", \"--quick\"]",
    );
    problem_at(
        &check("kind = \"exec\"\ncommand = [\"check-nfs\"]"),
        9,
        "not an absolute path",
        "full path",
    );
}

#[test]
fn a_process_check_counts_processes_within_bounds() {
    let check = |body: &str| with(&format!("[[instance.check]]\nname = \"c\"\n{body}"));
    let cfg = floatip::config::parse(
        &check("kind = \"process\"\nprocess = \"smbd\"\nargs = \"--foreground\"\nmax = 2"),
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    assert_eq!(
        cfg.instances[0].checks[0].kind,
        floatip::config::CheckKind::Process {
            name: "smbd".into(),
            args: Some("--foreground".into()),
            min: 1,
            max: Some(2),
        }
    );
    problem_at(
        &check("kind = \"process\""),
        6,
        "no `process`",
        "process = \"smbd\"",
    );
    problem_at(
        &check("kind = \"process\"\nprocess = \"/usr/sbin/smbd\""),
        9,
        "not a process name",
        "without a path",
    );
    problem_at(
        &check("kind = \"process\"\nprocess = \"smbd\"\nmin = 2\nmax = 1"),
        11,
        "below min",
        "at least min",
    );
    problem_at(
        &check("kind = \"process\"\nprocess = \"smbd\"\ncommand = [\"/bin/true\"]"),
        10,
        "does not apply",
        "a process check takes",
    );
}

#[test]
fn duplicate_check_names_in_one_instance() {
    let check = "[[instance.check]]\nname = \"smb\"\nkind = \"icmp\"\ntarget = \"192.0.2.254\"\n";
    problem_at(
        &with(&format!("{check}{check}")),
        11,
        "two checks named \"smb\"",
        "own name",
    );
}

#[test]
fn notify_hooks_are_absolute_argv_arrays() {
    let text = with(
        r#"[instance.notify]
master = ["/usr/local/sbin/start-samba"]
backup = "/usr/local/sbin/stop-samba"
fault = []
stop = ["stop-samba"]
timeout = "30""#,
    );
    let all = problems(&text);
    let lines: Vec<usize> = all.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![8, 9, 10, 11], "{all:?}");
    assert!(all[0]
        .hint
        .contains("backup = [\"/usr/local/sbin/stop-samba\"]"));
    assert!(all[1].what.contains("empty command"));
    assert!(all[2].what.contains("not an absolute path"));
    assert!(all[3].what.contains("no unit"));
}

// ---- unknown keys and TOML errors -------------------------------------------------------------------

#[test]
fn unknown_key_at_its_line_with_a_suggestion() {
    let p = problem_at(
        &with("advert_intervl = \"1s\""),
        6,
        "unknown key `advert_intervl`",
        "did you mean advert_interval?",
    );
    assert_eq!(p.column, 1);
    assert!(
        p.hint
            .contains("valid keys in [[instance]]: name, interface, vrid"),
        "{}",
        p.hint
    );
}

#[test]
fn keepalived_names_and_misplaced_keys_are_translated() {
    problem_at(
        &with("advert_int = 1"),
        6,
        "unknown key `advert_int`",
        "floatip calls it advert_interval",
    );
    problem_at(
        &with("virtual_router_id = 51"),
        6,
        "virtual_router_id",
        "vrid",
    );
    problem_at(
        &with("socket = \"/run/x.sock\""),
        6,
        "unknown key `socket`",
        "belongs in [daemon]",
    );
    problem_at(
        &with("announce_count = 3"),
        6,
        "announce_count",
        "[instance.announce]",
    );
    problem_at(
        &with("[instance.notify]\nmastr = [\"/bin/true\"]"),
        7,
        "in [instance.notify]",
        "did you mean master?",
    );
    problem_at(
        "[daemon]\nmetric = \"127.0.0.1:9797\"\n",
        2,
        "in [daemon]",
        "did you mean metrics?",
    );
}

#[test]
fn every_unknown_key_is_reported_and_the_rest_is_still_checked() {
    let text = BASE.replace("vrid = 51", "vrid = 300\nprio = 10")
        + "advert_intervl = \"1s\"\nversion = 5\n";
    let all = problems(&text);
    let lines: Vec<usize> = all.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![4, 5, 7, 8], "{all:#?}");
    assert!(all[0].what.contains("vrid 300"));
    assert!(all[1].hint.contains("did you mean priority?"));
    assert!(all[2].hint.contains("did you mean advert_interval?"));
    assert!(all[3].what.contains("version 5"));
}

#[test]
fn several_problems_across_instances_are_reported_together() {
    let text = r#"[daemon]
socket = "floatip.sock"
metrics = "localhost:9797"

[[instance]]
name = "files"
interface = "eth0"
vrid = 51
addresses = ["192.0.2.97/24"]

[[instance]]
name = "files"
interface = "eth0"
vrid = 51
addresses = ["192.0.2.97/24", "192.0.2.98/24"]

[[instance]]
name = "files-v6"
interface = "eth0"
vrid = 51
addresses = ["2001:db8::97/64"]
"#;
    let e = parse(text).unwrap_err();
    let summary: Vec<(usize, &str)> = e
        .problems
        .iter()
        .map(|p| (p.line, p.what.as_str()))
        .collect();
    assert_eq!(summary.len(), 5, "{e}");
    assert!(summary[0].0 == 2 && summary[0].1.contains("not an absolute path"));
    assert!(summary[1].0 == 3 && summary[1].1.contains("not an ADDRESS:PORT"));
    assert!(summary[2].0 == 12 && summary[2].1.contains("already used (line 6)"));
    assert!(summary[3].0 == 14 && summary[3].1.contains("vrid 51 on eth0 for IPv4"));
    assert!(
        summary[4].0 == 15
            && summary[4]
                .1
                .contains("192.0.2.97 is already managed by instance files")
    );
    // The same vrid on the same interface for the other family is a separate virtual router: no problem.
    assert!(!e.to_string().contains("files-v6"));
    // Display: every problem, one block each, separated by a blank line.
    assert_eq!(e.to_string().matches("\n\n").count(), 4);
    assert_eq!(e.to_string().matches("  hint: ").count(), 5);
}

#[test]
fn toml_syntax_errors_have_a_position_and_a_hint() {
    let all = problems(&with("priority = = 3"));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].line, 6, "{}", all[0]);
    assert!(all[0].column > 0);
    assert!(!all[0].hint.is_empty());

    let p = problem_at("[instance]\nname = \"files\"\n", 1, "", "[[instance]]");
    assert_eq!(p.column, 1);

    let p = problem_at(&with("vrid = \"52\""), 6, "", "");
    assert!(
        p.what.contains("duplicate key") || p.hint.contains("once"),
        "{p}"
    );
    problem_at(
        &BASE.replace("vrid = 51", "vrid = \"51\""),
        4,
        "invalid type",
        "vrid takes a bare number",
    );
}

// ---- the rest of the API ------------------------------------------------------------------------------

#[test]
fn load_explains_a_missing_file() {
    let e = config::load(Path::new("/nonexistent/floatip/floatip.toml")).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    let text = e.to_string();
    assert!(
        text.starts_with("/nonexistent/floatip/floatip.toml: cannot read"),
        "{text}"
    );
    assert!(text.contains("no such file"));
    assert!(text.contains("examples/floatip.toml"));
}

#[test]
fn vrrp_config_carries_the_protocol_settings() {
    let c = ok(&with(
        "priority = 150\nadvert_interval = \"100ms\"\npreempt_delay = \"3s\"",
    ));
    let i = &c.instances[0];
    let primary: IpAddr = "192.0.2.1".parse().unwrap();
    let v = i.vrrp_config(primary);
    assert_eq!(v.vrid, 51);
    assert_eq!(v.priority, 150);
    assert_eq!(v.version, vrrp::Version::V3);
    assert_eq!(v.advert_interval, Duration::from_millis(100));
    assert!(v.preempt);
    assert_eq!(v.preempt_delay, Duration::from_secs(3));
    assert_eq!(v.addresses, vec!["192.0.2.97".parse::<IpAddr>().unwrap()]);
    assert_eq!(v.primary, primary);
    assert!(!i.is_v6());
}

#[test]
fn vip_parses_and_displays() {
    let vip: Vip = "2001:db8::97/64".parse().unwrap();
    assert_eq!(vip.prefix_len, 64);
    assert_eq!(vip.to_string(), "2001:db8::97/64");
    assert_eq!(
        "192.0.2.97/24".parse::<Vip>().unwrap().to_string(),
        "192.0.2.97/24"
    );
    let e = "192.0.2.97".parse::<Vip>().unwrap_err();
    assert!(
        e.contains("no prefix length") && e.contains("192.0.2.97/24"),
        "{e}"
    );
}

#[test]
fn daemon_settings() {
    let text = format!(
        "[daemon]\nsocket = \"/run/test/f.sock\"\nmetrics = \"[::1]:9797\"\nstate_dir = \"/var/lib/test\"\nlog_level = \"info,floatip=debug\"\n\n{BASE}"
    );
    let c = ok(&text);
    assert_eq!(c.daemon.socket, Path::new("/run/test/f.sock"));
    assert_eq!(c.daemon.http, Some("[::1]:9797".parse().unwrap()));
    assert_eq!(c.daemon.state_dir, Path::new("/var/lib/test"));
    assert_eq!(c.daemon.log_level.as_deref(), Some("info,floatip=debug"));
    problem_at(
        &format!("[daemon]\nlog_level = \"loud\"\n{BASE}"),
        2,
        "not a level",
        "debug",
    );
}

#[test]
fn dotted_keys_and_inline_tables_work_and_are_checked_too() {
    let c = ok(&with("announce.count = 3\nnotify = { timeout = \"5s\" }"));
    assert_eq!(c.instances[0].announce.count, 3);
    assert_eq!(c.instances[0].notify.timeout, Duration::from_secs(5));
    ok(&format!("daemon.socket = \"/run/x.sock\"\n{BASE}"));

    let text = BASE.replace("vrid = 51", "vrid = 300")
        + "announce = { count = 3, bogus = 1 }\nnotify.mastr = [\"/bin/true\"]\n";
    let all = problems(&text);
    let summary: Vec<(usize, &str)> = all.iter().map(|p| (p.line, p.what.as_str())).collect();
    assert_eq!(summary.len(), 3, "{all:#?}");
    assert!(summary[0].0 == 4 && summary[0].1.contains("vrid 300"));
    assert!(
        summary[1].0 == 6
            && summary[1]
                .1
                .contains("unknown key `bogus` in [instance.announce]")
    );
    assert!(summary[2].0 == 7 && all[2].hint.contains("did you mean master?"));
}

#[test]
fn unknown_tables_are_reported_once() {
    let text = with("[instance.annonce]\ncount = 3");
    let all = problems(&text);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].line, 6);
    assert!(all[0].hint.contains("did you mean announce?"));
    let all = problems(&format!("[server.x]\ny = 1\n{BASE}"));
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0]
        .what
        .contains("unknown key `server` in the top level"));
    assert_eq!(all[0].line, 1);
}

#[test]
fn a_control_character_in_a_comment_is_named_at_its_position() {
    for (byte, name) in [
        ('\u{7f}', "U+007F DEL"),
        ('\0', "U+0000 NUL"),
        ('\u{1b}', "U+001B"),
    ] {
        let text = format!(
            "[[instance]]\nname = \"files\" # bad {byte} byte\ninterface = \"eth0\"\nvrid = 51\naddresses = [\"192.0.2.97/24\"]\n"
        );
        let p = problem_at(&text, 2, name, "delete it");
        assert_eq!(p.column, 22, "{p}");
        assert!(p.what.contains("control character"), "{p}");
    }
}
