//! Prometheus metrics: every instance's status rendered as OpenMetrics text with prometheus-client,
//! for `GET /metrics` ([`super`] serves it). Counters are the daemon's own totals since start
//! (adverts, drops, send errors, transitions by from/to, conflicts), exported as they are. The
//! `floatip_etcd_*` series of `election = "etcd"` instances are in [`etcd`].

mod etcd;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::control::InstanceStatus;

/// The content type prometheus-client's text encoder produces (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The states the state gauge always reports (1 for the current one, 0 for the others).
pub const STATES: [&str; 4] = ["MASTER", "BACKUP", "FAULT", "INIT"];

type Labels = Vec<(&'static str, String)>;

/// `floatip_track_file_offset` of a track file that puts its instance in FAULT (keepalived's -254).
const TRACK_FAULT: i64 = -254;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// Renders every instance as OpenMetrics text (what `GET /metrics` returns).
pub fn render(instances: &[InstanceStatus]) -> String {
    let mut reg = Registry::with_prefix("floatip");

    let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]);
    reg.register("build", "The running floatip's version", build);

    let state = Family::<Labels, Gauge>::default();
    let priority = Family::<Labels, Gauge>::default();
    let transitions = Family::<Labels, Counter>::default();
    let sent = Family::<Labels, Counter>::default();
    let received = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let send_errors = Family::<Labels, Counter>::default();
    let conflicts = Family::<Labels, Counter>::default();
    let vip_restored = Family::<Labels, Counter>::default();
    let check_up = Family::<Labels, Gauge>::default();
    let check_latency = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let master_age = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let vip_present = Family::<Labels, Gauge>::default();
    let claim_inhibited = Family::<Labels, Gauge>::default();
    let clashes = Family::<Labels, Gauge>::default();
    let track_value = Family::<Labels, Gauge>::default();
    let track_offset = Family::<Labels, Gauge>::default();
    let interface_drops = Family::<Labels, Counter>::default();
    // Shared by the instances on one interface and family: exported once.
    let mut sockets_seen = std::collections::BTreeSet::new();

    for inst in instances {
        let name = inst.name.as_str();
        let mut states: Vec<&str> = STATES.to_vec();
        if !states.contains(&inst.state.as_str()) {
            states.push(&inst.state);
        }
        for s in states {
            state
                .get_or_create(&labels(&[("vrrp_instance", name), ("state", s)]))
                .set(i64::from(inst.state == s));
        }
        priority
            .get_or_create(&labels(&[("vrrp_instance", name), ("kind", "configured")]))
            .set(i64::from(inst.priority.configured));
        priority
            .get_or_create(&labels(&[("vrrp_instance", name), ("kind", "effective")]))
            .set(i64::from(inst.priority.effective));
        for (key, n) in &inst.counters.transitions {
            let (from, to) = key.split_once("->").unwrap_or((key.as_str(), ""));
            transitions
                .get_or_create(&labels(&[
                    ("vrrp_instance", name),
                    ("from", from),
                    ("to", to),
                ]))
                .inc_by(*n);
        }
        let one = labels(&[("vrrp_instance", name)]);
        let c = &inst.counters;
        for (family, n) in [
            (&sent, c.adverts_sent),
            (&received, c.adverts_received),
            (&send_errors, c.send_errors),
            (&vip_restored, c.vip_restored),
            (&conflicts, c.conflicts),
        ] {
            family.get_or_create(&one).inc_by(n);
        }
        for (reason, n) in &inst.counters.drops {
            dropped
                .get_or_create(&labels(&[("vrrp_instance", name), ("reason", reason)]))
                .inc_by(*n);
        }
        for check in &inst.checks {
            let l = labels(&[("vrrp_instance", name), ("check", &check.name)]);
            check_up.get_or_create(&l).set(i64::from(check.healthy));
            if let Some(ms) = check.latency_ms {
                check_latency.get_or_create(&l).set(ms / 1000.0);
            }
        }
        for tf in &inst.track_files {
            let l = labels(&[("vrrp_instance", name), ("track_file", &tf.name)]);
            track_value.get_or_create(&l).set(tf.value);
            track_offset
                .get_or_create(&l)
                .set(tf.offset.unwrap_or(TRACK_FAULT));
        }
        if let Some(m) = inst.master.as_ref().filter(|m| !m.is_self) {
            if let Some(age) = m.last_advert_age_ms {
                master_age.get_or_create(&one).set(age as f64 / 1000.0);
            }
        }
        for vip in &inst.vips {
            vip_present
                .get_or_create(&labels(&[
                    ("vrrp_instance", name),
                    ("address", &vip.address),
                ]))
                .set(i64::from(vip.present_in_kernel));
        }
        claim_inhibited
            .get_or_create(&one)
            .set(i64::from(inst.claim_inhibit.is_some()));
        clashes
            .get_or_create(&one)
            .set(i64::try_from(inst.clashes.len()).unwrap_or(i64::MAX));
        let family = if inst.vips.iter().any(|v| v.address.contains(':')) {
            "ipv6"
        } else {
            "ipv4"
        };
        // An etcd instance reads no VRRP packets: it must not take the socket's place.
        if inst.etcd.is_none() && sockets_seen.insert((inst.interface.clone(), family)) {
            for (reason, n) in &inst.counters.interface_drops {
                interface_drops
                    .get_or_create(&labels(&[
                        ("interface", &inst.interface),
                        ("family", family),
                        ("reason", reason),
                    ]))
                    .inc_by(*n);
            }
        }
    }

    reg.register(
        "instance_state",
        "1 for the instance's current VRRP state, 0 for the others",
        state,
    );
    reg.register(
        "priority",
        "VRRP priority: configured, and effective (after check weights, overrides, stepping down)",
        priority,
    );
    reg.register(
        "transitions",
        "State transitions since the daemon started, by from and to state",
        transitions,
    );
    reg.register("adverts_sent", "VRRP adverts sent", sent);
    reg.register(
        "adverts_received",
        "Valid VRRP adverts received on this instance's VRID",
        received,
    );
    reg.register(
        "adverts_dropped",
        "Received VRRP adverts dropped, by reason (ttl, checksum, interval, ...)",
        dropped,
    );
    reg.register(
        "interface_drops",
        "VRRP packets read on an interface that no instance took, by reason (truncated: under 8 bytes; vrid: a VRID no instance there runs)",
        interface_drops,
    );
    reg.register(
        "track_file_value",
        "The number in force of each [[instance.track_file]] (0 for a missing file)",
        track_value,
    );
    reg.register(
        "track_file_offset",
        "What each track file adds to the priority (number x weight); -254 when it puts the instance in FAULT",
        track_offset,
    );
    reg.register(
        "vrid_clashes",
        "Speakers on the instance's VRID whose adverts do not list its addresses (another virtual router), heard in the last minute",
        clashes,
    );
    reg.register(
        "advert_send_errors",
        "Adverts the kernel refused to send",
        send_errors,
    );
    reg.register(
        "conflicts",
        "Times another host (address, MAC) was seen answering for one of our VIPs",
        conflicts,
    );
    reg.register(
        "vip_restored",
        "Times our VIP vanished while we were master and was put back",
        vip_restored,
    );
    reg.register(
        "check_up",
        "1 if the health check currently passes, 0 if it fails",
        check_up,
    );
    reg.register_with_unit(
        "check_latency",
        "Duration of the last health check run",
        Unit::Seconds,
        check_latency,
    );
    reg.register_with_unit(
        "master_advert_age",
        "Time since the last advert from the master; absent while this host is master or no master is known",
        Unit::Seconds,
        master_age,
    );
    reg.register(
        "vip_present",
        "1 if the VIP is configured on the interface of this host right now",
        vip_present,
    );
    reg.register(
        "claim_inhibited",
        "1 if this host refuses to claim the VIP now (witness unreachable, ...)",
        claim_inhibited,
    );
    etcd::register(&mut reg, instances);

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

#[cfg(test)]
pub(super) mod tests {
    pub(in crate::http) use super::etcd::tests::etcd_status;
    use super::*;
    use crate::control::{
        CheckStatus, CountersStatus, HistoryEntry, MasterStatus, PriorityStatus, VipStatus,
    };

    fn entry(at: f64, from: &str, to: &str) -> HistoryEntry {
        HistoryEntry {
            at,
            from: from.into(),
            to: to.into(),
            reason: format!("{from} to {to}"),
        }
    }

    /// An instance as the daemon reports it (also what the server tests' fake loop answers).
    pub(in crate::http) fn status(name: &str, state: &str) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            interface: "eth0".into(),
            vrid: 51,
            version: 3,
            version_why: None,
            state: state.into(),
            since: None,
            reason: None,
            priority: PriorityStatus {
                configured: 150,
                effective: 90,
                why_different: None,
            },
            vips: vec![VipStatus {
                address: "192.0.2.97/24".into(),
                present_in_kernel: state == "MASTER",
            }],
            master: Some(MasterStatus {
                address: "192.0.2.2".parse().unwrap(),
                is_self: state == "MASTER",
                priority: 200,
                interval_ms: 1000,
                last_advert_age_ms: (state != "MASTER").then_some(250),
            }),
            speakers: vec![],
            counters: CountersStatus {
                adverts_sent: 7,
                adverts_received: 11,
                send_errors: 0,
                drops: [("ttl".to_string(), 3)].into_iter().collect(),
                vip_restored: 1,
                transitions: [
                    ("INIT->BACKUP".to_string(), 1),
                    ("BACKUP->MASTER".to_string(), 1),
                ]
                .into_iter()
                .collect(),
                conflicts: 2,
                interface_drops: [("vrid".to_string(), 5)].into_iter().collect(),
            },
            override_mode: None,
            claim_inhibit: None,
            conflicts: vec![],
            clashes: vec![],
            track_files: vec![],
            auth: None,
            checks: vec![CheckStatus {
                name: "smb".into(),
                healthy: false,
                latency_ms: Some(12.5),
                last_error: Some("connection refused".into()),
            }],
            history: vec![entry(1.0, "INIT", "BACKUP"), entry(4.0, "BACKUP", "MASTER")],
            etcd: None,
        }
    }

    fn line_value(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    }

    #[test]
    fn renders_every_family_with_its_labels() {
        let instances = vec![status("files", "BACKUP")];
        let text = render(&instances);
        // Each line: a series and the value it must have.
        let expected = r#"
            floatip_instance_state{vrrp_instance="files",state="BACKUP"} 1
            floatip_instance_state{vrrp_instance="files",state="MASTER"} 0
            floatip_instance_state{vrrp_instance="files",state="FAULT"} 0
            floatip_instance_state{vrrp_instance="files",state="INIT"} 0
            floatip_priority{vrrp_instance="files",kind="configured"} 150
            floatip_priority{vrrp_instance="files",kind="effective"} 90
            floatip_transitions_total{vrrp_instance="files",from="INIT",to="BACKUP"} 1
            floatip_transitions_total{vrrp_instance="files",from="BACKUP",to="MASTER"} 1
            floatip_adverts_sent_total{vrrp_instance="files"} 7
            floatip_adverts_received_total{vrrp_instance="files"} 11
            floatip_adverts_dropped_total{vrrp_instance="files",reason="ttl"} 3
            floatip_conflicts_total{vrrp_instance="files"} 2
            floatip_vip_restored_total{vrrp_instance="files"} 1
            floatip_check_up{vrrp_instance="files",check="smb"} 0
            floatip_check_latency_seconds{vrrp_instance="files",check="smb"} 0.0125
            floatip_master_advert_age_seconds{vrrp_instance="files"} 0.25
            floatip_vip_present{vrrp_instance="files",address="192.0.2.97/24"} 0
            floatip_claim_inhibited{vrrp_instance="files"} 0
            floatip_vrid_clashes{vrrp_instance="files"} 0
            floatip_interface_drops_total{interface="eth0",family="ipv4",reason="vrid"} 5
        "#;
        for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert_eq!(
                line_value(&text, &format!("{series} ")).as_deref(),
                Some(value),
                "{series} in\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "floatip_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains("# TYPE floatip_transitions counter"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT floatip_check_latency_seconds seconds"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn master_has_no_advert_age_and_current_state_is_one() {
        let instances = vec![status("files", "MASTER"), status("web", "BACKUP")];
        let text = render(&instances);
        assert!(!text.contains(r#"floatip_master_advert_age_seconds{vrrp_instance="files"}"#));
        assert!(text.contains(r#"floatip_master_advert_age_seconds{vrrp_instance="web"}"#));
        assert!(text.contains(r#"floatip_instance_state{vrrp_instance="files",state="MASTER"} 1"#));
        assert!(text.contains(r#"floatip_instance_state{vrrp_instance="web",state="MASTER"} 0"#));
        assert!(text
            .contains(r#"floatip_vip_present{vrrp_instance="files",address="192.0.2.97/24"} 1"#));
    }

    #[test]
    fn interface_drops_are_exported_once_per_interface_and_family() {
        // Two instances on eth0 (IPv4) share one socket and show the same drops.
        let text = render(&[status("files", "MASTER"), status("web", "BACKUP")]);
        assert!(
            text.contains(
                r#"floatip_interface_drops_total{interface="eth0",family="ipv4",reason="vrid"} 5"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_vrid_clash_is_a_gauge_of_foreign_speakers() {
        let mut st = status("files", "MASTER");
        st.clashes = vec![crate::control::ClashStatus {
            address: "192.0.2.9".parse().unwrap(),
            addresses: vec!["192.0.2.50".parse().unwrap()],
            priority: 254,
            adverts: 40,
            mac: None,
            last_heard_age_ms: 100,
        }];
        st.counters.drops.insert("address_set".into(), 40);
        let text = render(&[st]);
        assert!(
            text.contains(r#"floatip_vrid_clashes{vrrp_instance="files"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"floatip_adverts_dropped_total{vrrp_instance="files",reason="address_set"} 40"#
            ),
            "{text}"
        );
    }

    #[test]
    fn track_files_export_their_number_and_what_they_add() {
        let mut st = status("files", "BACKUP");
        let tf = |name: &str, value: i64, offset: Option<i64>| crate::control::TrackFileStatus {
            name: name.into(),
            path: format!("/run/floatip/{name}"),
            weight: -1,
            value,
            offset,
            fault: offset.is_none(),
            note: None,
        };
        st.track_files = vec![tf("drain", 100, Some(-100)), tf("maint", 300, None)];
        let text = render(&[st]);
        for line in [
            r#"floatip_track_file_value{vrrp_instance="files",track_file="drain"} 100"#,
            r#"floatip_track_file_offset{vrrp_instance="files",track_file="drain"} -100"#,
            r#"floatip_track_file_offset{vrrp_instance="files",track_file="maint"} -254"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
