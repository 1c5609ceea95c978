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
    assert_eq!(
        person(&hmac).len(),
        1,
        "a key written inline must be moved to a file: {:?}",
        person(&hmac)
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
    assert!(i.complete(), "{:?}", person(&i));
}
