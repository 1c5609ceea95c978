//! The mapping, keyword by keyword: what each keepalived setting becomes, which differences are said,
//! and that the output is a valid floatip configuration.

use std::path::Path;

use super::*;
use crate::config;

fn import(text: &str) -> Imported {
    import_text(
        Path::new("/etc/keepalived/keepalived.conf"),
        text,
        "main",
        &|p| p == Path::new("/usr/bin/pidof"),
    )
    .unwrap_or_else(|e| panic!("import failed: {e}"))
}

/// The output parsed by floatip's own config loader.
#[track_caller]
fn valid(imported: &Imported) -> config::Config {
    config::parse(&imported.toml, Path::new("/etc/floatip/floatip.toml")).unwrap_or_else(|e| {
        panic!(
            "the output is not a valid floatip config:\n{e}\n---\n{}",
            imported.toml
        )
    })
}

fn person(imported: &Imported) -> Vec<String> {
    imported
        .notes
        .iter()
        .filter(|n| n.needs_person)
        .map(|n| format!("{}: {}", n.pos.line, n.text))
        .collect()
}

const BASIC: &str = "\
global_defs {
    router_id main_router
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    @main priority 150
    @backup priority 100
    advert_int 1
    nopreempt
    virtual_ipaddress {
        192.0.2.97/24 dev eth0
        192.0.2.98
    }
    unicast_peer {
        192.0.2.2
    }
}
";

#[test]
fn a_plain_instance_maps_key_by_key_and_is_complete() {
    let i = import(BASIC);
    assert!(i.complete(), "{:?}", person(&i));
    let cfg = valid(&i);
    let inst = &cfg.instances[0];
    assert_eq!(inst.name, "vi_1");
    assert_eq!(inst.interface, "eth0");
    assert_eq!(inst.vrid, 51);
    assert_eq!(inst.priority, 150, "the @main line, config-id main");
    assert_eq!(
        inst.version,
        vrrp::Version::V2,
        "keepalived's IPv4 default is VRRPv2"
    );
    assert!(!inst.preempt);
    let addrs: Vec<String> = inst.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["192.0.2.97/24", "192.0.2.98/32"]);
    assert_eq!(
        inst.unicast_peers,
        ["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(
        i.toml.contains("(/etc/keepalived/keepalived.conf:7)"),
        "positions are kept:\n{}",
        i.toml
    );
}

#[test]
fn the_global_version_and_fractional_intervals() {
    let i = import("global_defs {\n vrrp_version 3\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 9\n advert_int 0.25\n virtual_ipaddress {\n 192.0.2.9/24\n }\n}\n");
    let inst = &valid(&i).instances[0];
    assert_eq!(inst.version, vrrp::Version::V3);
    assert_eq!(inst.advert_interval, std::time::Duration::from_millis(250));
    let v6 = import("vrrp_instance B {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n 2001:db8::9/64\n }\n}\n");
    assert_eq!(
        valid(&v6).instances[0].version,
        vrrp::Version::V3,
        "IPv6 is always VRRPv3"
    );
}

#[test]
fn scripts_become_exec_checks_with_their_weights() {
    let text = "\
vrrp_script chk {
    script \"pidof smbd\"
    interval 2
    timeout 1
    rise 2
    fall 3
    weight -60
}
vrrp_script piped {
    script \"/usr/bin/curl -s http://127.0.0.1/ | grep -q ok\"
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.97/24
    }
    track_script {
        chk
        piped weight 10
    }
    track_interface {
        eth1
        eth2 weight -20
    }
}
";
    let i = import(text);
    let inst = &valid(&i).instances[0];
    assert_eq!(inst.track_interfaces, ["eth1"]);
    let names: Vec<&str> = inst.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["link-eth2", "chk", "piped"]);
    let chk = &inst.checks[1];
    assert_eq!(chk.weight, Some(-60));
    assert_eq!((chk.rise, chk.fall), (2, 3));
    assert_eq!(chk.interval, std::time::Duration::from_secs(2));
    match &chk.kind {
        config::CheckKind::Exec { command } => assert_eq!(command, &["/usr/bin/pidof", "smbd"]),
        other => panic!("{other:?}"),
    }
    match &inst.checks[2].kind {
        config::CheckKind::Exec { command } => assert_eq!(command[..2], ["/bin/sh", "-c"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        inst.checks[2].weight,
        Some(10),
        "the instance's weight wins over the script's"
    );
    assert_eq!(inst.checks[0].weight, Some(-20));
    assert!(i.toml.contains("through /bin/sh"), "{}", i.toml);
}

#[test]
fn notify_scripts_become_hooks() {
    let text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n 192.0.2.97/24\n }\n notify_master \"/usr/local/bin/vrrp.sh MASTER 'VI 1'\"\n notify /etc/keepalived/notify.sh\n}\n";
    let i = import(text);
    let inst = &valid(&i).instances[0];
    assert_eq!(
        inst.notify.master.as_deref().unwrap(),
        ["/usr/local/bin/vrrp.sh", "MASTER", "VI 1"]
    );
    assert_eq!(
        inst.notify.backup.as_deref().unwrap(),
        [
            "/etc/keepalived/notify.sh",
            "INSTANCE",
            "VI_1",
            "BACKUP",
            "100"
        ]
    );
    assert!(
        !i.complete(),
        "notify and notify_master on one instance need a person"
    );
}

#[test]
fn sync_groups_become_groups() {
    let text = "vrrp_sync_group G1 {\n group {\n V4\n V6\n }\n}\nvrrp_instance V4 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n 192.0.2.97/24\n }\n}\nvrrp_instance V6 {\n interface eth0\n virtual_router_id 52\n virtual_ipaddress {\n 2001:db8::97/64\n }\n}\n";
    let i = import(text);
    assert!(i.complete(), "{:?}", person(&i));
    let cfg = valid(&i);
    assert_eq!(cfg.groups[0].name, "g1");
    assert_eq!(cfg.groups[0].instances, ["v4", "v6"]);
}

#[test]
fn announce_settings_come_from_the_instance_or_the_globals() {
    let text = "global_defs {\n vrrp_garp_master_repeat 3\n vrrp_garp_interval 0.05\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 5\n garp_master_refresh 60\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n";
    let inst = valid(&import(text)).instances.remove(0);
    assert_eq!(inst.announce.count, 3);
    assert_eq!(inst.announce.spacing, std::time::Duration::from_millis(50));
    assert_eq!(
        inst.announce.refresh,
        Some(std::time::Duration::from_secs(60))
    );
}

#[test]
fn what_floatip_does_not_do_is_said_at_its_line_and_needs_a_person() {
    let text = "\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    smtp_alert
    virtual_ipaddress {
        192.0.2.97/24
        192.0.2.99/24 dev eth1
    }
    virtual_routes {
        198.51.100.0/24 via 192.0.2.254
    }
    authentication {
        auth_type AH
        auth_pass secret
    }
}
virtual_server 192.0.2.100 80 {
    lb_algo rr
}
";
    let i = import(text);
    let lines: Vec<usize> = i
        .notes
        .iter()
        .filter(|n| n.needs_person)
        .map(|n| n.pos.line)
        .collect();
    assert_eq!(lines, [4, 7, 9, 12, 17], "{:?}", person(&i));
    assert!(
        i.toml
            .contains("# NEEDS A PERSON (/etc/keepalived/keepalived.conf:17): virtual_server"),
        "{}",
        i.toml
    );
    assert!(!i.toml.contains("[instance.auth]"), "AH gets no auth table");
    assert!(summary(&i).contains("keepalived.conf:9: virtual_routes"));
    valid(&i);
}

#[test]
fn contract_keys_are_written_as_agreed() {
    // Shared names (vmac, auth, track_file): floatip check knows them once those features are merged.
    let text = "\
track_file drain {
    file /run/floatip/drain
    weight -10
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    use_vmac vrrp.51
    virtual_ipaddress {
        192.0.2.97/24
    }
    authentication {
        auth_type PASS
        auth_pass 123456789
    }
    track_file {
        drain
    }
}
";
    let i = import(text);
    assert!(i.complete(), "{:?}", person(&i));
    let t = &i.toml;
    for want in [
        "vmac = true",
        "vmac_interface = \"vrrp.51\"",
        "[instance.auth]",
        "type = \"pass\"",
        "password = \"12345678\"",
        "[[instance.track_file]]",
        "path = \"/run/floatip/drain\"",
        "weight = -10",
        "name = \"drain\"",
    ] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
    let hmac = import("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n version 3\n virtual_ipaddress {\n 192.0.2.5/24\n }\n auth_hmac {\n key 1 file:/etc/keepalived/keys/k1\n key 2 hex:0011\n active_key 1\n mode permissive\n anti_replay monotonic\n }\n}\n");
    for want in [
        "type = \"hmac\"",
        "[[instance.auth.key]]\nid = 1\nfile = \"/etc/keepalived/keys/k1\"",
        "id = 2\nfile = \"/etc/floatip/keys/a-2\"",
        "active_key = 1",
        "mode = \"permissive\"",
        "anti_replay = \"monotonic\"",
    ] {
        assert!(hmac.toml.contains(want), "{want} missing:\n{}", hmac.toml);
    }
    assert!(hmac.unwritable.is_none(), "{:?}", hmac.unwritable);
    let mapping: Vec<String> = person(&hmac)
        .into_iter()
        .filter(|p| !p.contains("floatip check on this host"))
        .collect();
    assert_eq!(
        mapping.len(),
        1,
        "a key written inline must be moved to a file: {mapping:?}"
    );
}

#[test]
fn inputs_keepalived_refuses_are_errors_with_file_and_line() {
    let cases = [
        ("vrrp_instance A {\n interface eth0\n virtual_router_id 300\n}\n", 3, "virtual_router_id"),
        ("vrrp_instance A {\n virtual_router_id 3\n}\n", 1, "no interface"),
        ("vrrp_instance A {\n interface eth0\n virtual_router_id 3\n virtual_ipaddress {\n 192.0.2.300/24\n }\n}\n", 5, "not an address"),
        ("vrrp_instance A {\n interface eth0\n", 1, "never closed"),
        ("vrrp_instance A {\n interface eth0\n advert_int fast\n virtual_router_id 3\n}\n", 3, "advert_int"),
    ];
    for (text, line, what) in cases {
        let err = import_text(Path::new("/k.conf"), text, "h", &|_| false).unwrap_err();
        assert_eq!(err.pos.as_ref().map(|p| p.line), Some(line), "{err}");
        assert!(err.to_string().contains(what), "{err}");
        assert!(err.to_string().contains("hint:"), "{err}");
    }
}

#[test]
fn names_are_made_valid_and_unique() {
    let text = "vrrp_instance Web.Front {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 192.0.2.1/24\n }\n}\nvrrp_instance web-front {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n 192.0.2.2/24\n }\n}\n";
    let cfg = valid(&import(text));
    let names: Vec<&str> = cfg.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["web-front", "web-front-2"]);
}

#[test]
fn an_instance_without_addresses_is_commented_out() {
    let i = import("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 6\n virtual_ipaddress {\n 192.0.2.6/24\n }\n}\n");
    assert!(!i.complete());
    assert_eq!(valid(&i).instances.len(), 1);
    assert!(i.toml.contains("# name = \"a\""), "{}", i.toml);
}

#[test]
fn an_invalid_priority_runs_at_keepalived_s_default_and_needs_a_person() {
    // keepalived -t: "Priority not valid! must be between 1 & 255. Using default 100".
    let i = import("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n priority 0\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n");
    assert_eq!(valid(&i).instances[0].priority, 100);
    assert_eq!(person(&i).len(), 1, "{:?}", person(&i));
}

#[test]
fn an_hmac_key_from_a_systemd_credential_keeps_its_reference() {
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_some() {
        return; // run inside a unit with credentials: the reference is expanded, as keepalived does
    }
    let i = import("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n 192.0.2.5/24\n }\n auth_hmac {\n key 1 file:${_ENV CREDENTIALS_DIRECTORY}/vrrp_hmac\n }\n}\n");
    assert!(
        i.toml
            .contains("file = \"$CREDENTIALS_DIRECTORY/vrrp_hmac\""),
        "{}",
        i.toml
    );
    // Outside the unit floatip check cannot read the credential: written, and said.
    assert!(i.unwritable.is_none(), "{:?}", i.unwritable);
    assert_eq!(person(&i).len(), 1, "{:?}", person(&i));
    assert!(
        person(&i)[0].contains("CREDENTIALS_DIRECTORY"),
        "{:?}",
        person(&i)
    );
}

fn notes(imported: &Imported) -> String {
    imported
        .notes
        .iter()
        .map(|n| format!("{}: {}\n", n.pos.line, n.text))
        .collect()
}

#[test]
fn nopreempt_with_state_master_preempts_as_keepalived_runs_it() {
    // keepalived -t: "(A) Warning - nopreempt will not work with initial state MASTER - clearing",
    // and the same for preempt_delay.
    let i = import("vrrp_instance A {\n state MASTER\n nopreempt\n preempt_delay 30\n interface eth0\n virtual_router_id 5\n priority 150\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n");
    assert!(i.complete(), "{:?}", person(&i));
    let inst = &valid(&i).instances[0];
    assert!(inst.preempt, "{}", i.toml);
    assert!(!i.toml.contains("preempt_delay ="), "{}", i.toml);
    let n = notes(&i);
    assert!(
        n.contains("nopreempt will not work with initial state MASTER"),
        "{n}"
    );
    assert!(
        n.contains("preempt delay will not work with initial state MASTER"),
        "{n}"
    );
    // With state BACKUP, nopreempt stays.
    let b = import("vrrp_instance A {\n state BACKUP\n nopreempt\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n");
    assert!(!valid(&b).instances[0].preempt);
}

#[test]
fn tracking_weights_in_a_sync_group_are_dropped_as_keepalived_does() {
    let text = "\
vrrp_script chk {
    script \"/usr/bin/pidof haproxy\"
    weight -20
}
vrrp_sync_group G {
    group {
        A
        B
    }
}
vrrp_instance A {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.97/24
    }
    track_script {
        chk
    }
    track_interface {
        eth1 weight -10
    }
}
vrrp_instance B {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        2001:db8::97/64
    }
}
";
    let i = import(text);
    assert!(i.complete(), "{:?}", person(&i));
    let cfg = valid(&i);
    let a = &cfg.instances[0];
    assert_eq!(a.checks.len(), 1, "{}", i.toml);
    assert_eq!(
        a.checks[0].weight, None,
        "a failing script means FAULT, as in keepalived"
    );
    assert_eq!(a.track_interfaces, ["eth1"]);
    let n = notes(&i);
    assert!(n.contains("track_script chk: weight -20 of a script tracked by sync group G: keepalived ignores it (\"... due to SYNC group\")"), "{n}");
    assert!(
        n.contains(
            "track_interface eth1 weight -10: the weight of an interface tracked by sync group G"
        ),
        "{n}"
    );
    // sync_group_tracking_weight keeps them.
    let kept = import(&text.replace(
        "    group {\n",
        "    sync_group_tracking_weight\n    group {\n",
    ));
    let weights: Vec<(String, Option<i32>)> = valid(&kept).instances[0]
        .checks
        .iter()
        .map(|c| (c.name.clone(), c.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("link-eth1".to_string(), Some(-10)),
            ("chk".to_string(), Some(-20))
        ]
    );
}

#[test]
fn a_long_auth_pass_is_cut_to_8_and_said() {
    let i = import("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n 192.0.2.5/24\n }\n authentication {\n auth_type PASS\n auth_pass 0123456789abc\n }\n}\n");
    assert!(i.complete(), "{:?}", person(&i));
    assert!(i.toml.contains("password = \"01234567\""), "{}", i.toml);
    let n = notes(&i);
    assert!(
        n.contains("9: auth_pass is 13 characters")
            && n.contains("Truncating auth_pass to 8 characters"),
        "{n}"
    );
    assert!(
        !n.contains("0123456789abc"),
        "the password is not repeated on stderr: {n}"
    );
}

const PAIR: &str = "vrrp_instance A {\n interface eth0\n virtual_router_id 51\n PEERS_A\n virtual_ipaddress {\n 192.0.2.50/24\n }\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 51\n PEERS_B\n virtual_ipaddress {\n ADDR_B\n }\n}\n";

fn pair(a: &str, b: &str, addr_b: &str) -> String {
    PAIR.replace("PEERS_A", a)
        .replace("PEERS_B", b)
        .replace("ADDR_B", addr_b)
}

#[test]
fn one_vrid_twice_on_an_interface_is_refused_or_left_out_with_the_reason() {
    let err = |text: &str| import_text(Path::new("/k.conf"), text, "h", &|_| false).unwrap_err();
    // keepalived refuses both of these (keepalived -t says so, in these words).
    let e = err(&pair("", "", "192.0.2.51/24"));
    assert!(
        e.what
            .contains("A and B both use VRID 51 with IPv4 on interface eth0"),
        "{e}"
    );
    assert_eq!(e.pos.unwrap().line, 9);
    let e = err(&pair(
        "unicast_peer {\n 192.0.2.2\n }",
        "unicast_peer {\n 192.0.2.2\n }",
        "192.0.2.51/24",
    ));
    assert!(
        e.what
            .contains("(A) duplicate VRID conflict with B VRID 51"),
        "{e}"
    );
    // keepalived runs these two; floatip one: the second is left commented out, and said.
    for (a, b) in [
        (
            "unicast_peer {\n 192.0.2.2\n }",
            "unicast_peer {\n 192.0.2.3\n }",
        ),
        ("unicast_peer {\n 192.0.2.2\n }", ""),
    ] {
        let i = import(&pair(a, b, "192.0.2.51/24"));
        assert!(!i.complete());
        let cfg = valid(&i);
        assert_eq!(cfg.instances.len(), 1, "{}", i.toml);
        assert!(i.toml.contains("# name = \"b\""), "{}", i.toml);
        assert!(
            person(&i)[0].contains("also vrrp_instance A's"),
            "{:?}",
            person(&i)
        );
    }
}

#[test]
fn an_address_in_two_instances_stays_in_the_first() {
    let text = pair("", "", "192.0.2.50/24\n 192.0.2.52/24")
        .replacen("virtual_router_id 51", "virtual_router_id 52", 2)
        .replacen("virtual_router_id 52", "virtual_router_id 51", 1);
    let i = import(&text);
    let cfg = valid(&i);
    let b: Vec<String> = cfg.instances[1]
        .addresses
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(b, ["192.0.2.52/24"]);
    assert!(
        person(&i)[0].contains("192.0.2.50 is also in vrrp_instance A"),
        "{:?}",
        person(&i)
    );
    // Nothing left: the instance is commented out.
    let only = pair("", "", "192.0.2.50/24")
        .replacen("virtual_router_id 51", "virtual_router_id 52", 2)
        .replacen("virtual_router_id 52", "virtual_router_id 51", 1);
    let i = import(&only);
    assert_eq!(valid(&i).instances.len(), 1, "{}", i.toml);
}

#[test]
fn comments_say_where_the_version_comes_from() {
    let v6 = import("vrrp_instance B {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n 2001:db8::9/64\n }\n}\n");
    assert!(
        v6.toml
            .contains("version = 3   # IPv6: keepalived speaks VRRPv3 for it"),
        "{}",
        v6.toml
    );
    assert!(!v6.toml.contains("default for IPv4"), "{}", v6.toml);
    let v4 = import(BASIC);
    assert!(
        v4.toml
            .contains("version = 2   # keepalived's default for IPv4"),
        "{}",
        v4.toml
    );
}

#[test]
fn without_an_instance_floatip_can_run_nothing_is_written() {
    let lvs = import("virtual_server 192.0.2.100 80 {\n lb_algo rr\n}\n");
    assert!(lvs.unwritable.is_some() && !lvs.complete());
    assert!(
        summary(&lvs).contains("nothing to write"),
        "{}",
        summary(&lvs)
    );
    let empty = import("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n}\n");
    assert!(empty.unwritable.is_some(), "{}", empty.toml);
}

#[test]
fn a_second_definition_of_an_instance_is_ignored_as_keepalived_does() {
    let i = import("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 6\n virtual_ipaddress {\n 192.0.2.6/24\n }\n}\n");
    assert!(i.complete(), "{:?}", person(&i));
    let cfg = valid(&i);
    assert_eq!(cfg.instances.len(), 1);
    assert_eq!(cfg.instances[0].vrid, 5);
    assert!(
        notes(&i).contains("8: vrrp instance A already defined"),
        "{}",
        notes(&i)
    );
}

#[test]
fn a_missing_file_is_no_such_file() {
    let e = import_file(Path::new("/nonexistent/keepalived.conf"), "h").unwrap_err();
    assert!(e.pos.is_none());
    assert!(
        e.what
            .starts_with("no such file: /nonexistent/keepalived.conf"),
        "{e}"
    );
}
