//! The `floatip_etcd_*` series of `GET /metrics`: the lease, etcd's reachability, the last release
//! for unreachability and the candidates of each `election = "etcd"` instance, from the `etcd` part
//! of its status ([`EtcdStatus`]). A VRRP instance gets none of them, and prometheus-client leaves out
//! a family without samples (its `# HELP` too), so a VRRP-only daemon's output has no etcd line.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::{labels, Labels};
use crate::control::status::EtcdStatus;
use crate::control::InstanceStatus;

/// Adds the etcd families to `reg` for the instances that have an `etcd` status (none at all when no
/// instance has one).
pub(super) fn register(reg: &mut Registry, instances: &[InstanceStatus]) {
    let etcd: Vec<(&str, &EtcdStatus)> = instances
        .iter()
        .filter_map(|i| i.etcd.as_ref().map(|e| (i.name.as_str(), e)))
        .collect();
    if etcd.is_empty() {
        return;
    }

    let remaining = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let ttl = Family::<Labels, Gauge>::default();
    let reachable = Family::<Labels, Gauge>::default();
    let released = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let candidates = Family::<Labels, Gauge>::default();

    for (name, e) in etcd {
        let one = labels(&[("vrrp_instance", name)]);
        // Without a lease there is no remaining time, so the series is absent rather than 0 or NaN:
        // 0 would read as "about to expire" and NaN makes comparisons quietly false (an alert on
        // `< 1` would never fire, `min` skips it). Absent is how Prometheus says "no value"; alert on
        // it with `absent(...)` or `unless`, next to floatip_instance_state, which is always there.
        if let Some(ms) = e.lease_remaining_ms {
            remaining.get_or_create(&one).set(ms as f64 / 1000.0);
        }
        ttl.get_or_create(&one)
            .set(i64::try_from(e.lease_ttl_s).unwrap_or(i64::MAX));
        reachable
            .get_or_create(&one)
            .set(i64::from(e.unreachable_since.is_none()));
        if let Some(at) = e.released_at {
            released.get_or_create(&one).set(at);
        }
        candidates
            .get_or_create(&one)
            .set(i64::try_from(e.candidates.len()).unwrap_or(i64::MAX));
    }

    reg.register_with_unit(
        "etcd_lease_remaining",
        "How long our etcd lease surely lives, by our own count; absent while we hold no lease",
        Unit::Seconds,
        remaining,
    );
    reg.register_with_unit(
        "etcd_lease_ttl",
        "The TTL etcd granted our lease (the configured lease_ttl while we hold none)",
        Unit::Seconds,
        ttl,
    );
    reg.register(
        "etcd_reachable",
        "1 while etcd answers our requests, 0 since a renewal failed (until one succeeds again)",
        reachable,
    );
    reg.register_with_unit(
        "etcd_last_release_timestamp",
        "Unix time this host last removed the VIPs because its lease could not be renewed; absent if never",
        Unit::Seconds,
        released,
    );
    reg.register(
        "etcd_candidates",
        "Candidacies for the instance in etcd (this host's too while it is a candidate)",
        candidates,
    );
}

#[cfg(test)]
pub(in crate::http) mod tests {
    use super::super::render;
    use super::super::tests::status;
    use crate::control::status::{EtcdCandidate, EtcdStatus};
    use crate::control::InstanceStatus;

    /// An etcd instance as its task publishes it: `lease` holds 3.2 s of a 5 s lease; `cut_off`:
    /// renewals fail since unix 1700000040 and the VIPs went at 1700000043.5.
    pub(in crate::http) fn etcd_status(
        name: &str,
        state: &str,
        lease: bool,
        cut_off: bool,
    ) -> InstanceStatus {
        let mut st = status(name, state);
        st.master = None;
        st.etcd = Some(EtcdStatus {
            endpoint: "http://192.0.2.11:2379".into(),
            lease: lease.then(|| "694d7a1b2c3d4e5f".into()),
            lease_ttl_s: 5,
            lease_remaining_ms: lease.then_some(3200),
            owner: Some("nas1 192.0.2.1".into()),
            candidates: vec![
                EtcdCandidate {
                    address: "192.0.2.1".parse().unwrap(),
                    priority: 150,
                },
                EtcdCandidate {
                    address: "192.0.2.2".parse().unwrap(),
                    priority: 100,
                },
            ],
            unreachable_since: cut_off.then_some(1_700_000_040.0),
            released_at: cut_off.then_some(1_700_000_043.5),
        });
        st
    }

    fn etcd_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.contains("etcd")).collect()
    }

    #[test]
    fn an_etcd_instance_exports_its_lease_reachability_release_and_candidates() {
        let text = render(&[etcd_status("files", "BACKUP", true, true)]);
        for line in [
            r#"floatip_etcd_lease_remaining_seconds{vrrp_instance="files"} 3.2"#,
            r#"floatip_etcd_lease_ttl_seconds{vrrp_instance="files"} 5"#,
            r#"floatip_etcd_reachable{vrrp_instance="files"} 0"#,
            r#"floatip_etcd_last_release_timestamp_seconds{vrrp_instance="files"} 1700000043.5"#,
            r#"floatip_etcd_candidates{vrrp_instance="files"} 2"#,
            "# TYPE floatip_etcd_lease_remaining_seconds gauge",
            "# UNIT floatip_etcd_lease_remaining_seconds seconds",
            "# UNIT floatip_etcd_last_release_timestamp_seconds seconds",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // Five families: HELP, TYPE and one sample each, UNIT for the three in seconds.
        assert_eq!(etcd_lines(&text).len(), 5 * 3 + 3, "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn without_a_lease_there_is_no_remaining_time_and_without_a_release_no_timestamp() {
        let text = render(&[etcd_status("files", "BACKUP", false, false)]);
        for line in [
            r#"floatip_etcd_lease_ttl_seconds{vrrp_instance="files"} 5"#,
            r#"floatip_etcd_reachable{vrrp_instance="files"} 1"#,
            r#"floatip_etcd_candidates{vrrp_instance="files"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        let samples: Vec<&str> = etcd_lines(&text)
            .into_iter()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(samples.len(), 3, "{samples:?}");
        assert!(!text.contains("NaN"), "{text}");
    }

    #[test]
    fn only_etcd_instances_get_etcd_series() {
        let text = render(&[
            status("web", "MASTER"),
            etcd_status("files", "MASTER", true, false),
        ]);
        let samples: Vec<&str> = etcd_lines(&text)
            .into_iter()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(samples.len(), 4, "{samples:?}");
        assert!(
            samples
                .iter()
                .all(|l| l.contains(r#"{vrrp_instance="files"}"#)),
            "{samples:?}"
        );
    }

    #[test]
    fn an_etcd_instance_listed_first_does_not_hide_its_interfaces_vrrp_drops() {
        let mut etcd = etcd_status("db", "BACKUP", true, false);
        etcd.counters = Default::default();
        let text = render(&[etcd, status("web", "MASTER")]);
        assert!(
            text.contains(
                r#"floatip_interface_drops_total{interface="eth0",family="ipv4",reason="vrid"} 5"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_vrrp_only_daemon_exports_nothing_of_etcd() {
        let vrrp = [status("web", "MASTER"), status("files", "BACKUP")];
        let text = render(&vrrp);
        assert!(etcd_lines(&text).is_empty(), "{text}");
        // The same instances next to an etcd one: the VRRP instances' lines are the same (sorted:
        // the samples of a family come in hash order).
        let mut mixed = vrrp.to_vec();
        mixed.push(etcd_status("db", "BACKUP", true, false));
        let with_etcd = render(&mixed);
        let vrrp_part = |t: &str| -> Vec<String> {
            let mut lines: Vec<String> = t
                .lines()
                .filter(|l| !l.contains("etcd") && !l.contains(r#"vrrp_instance="db""#))
                .map(String::from)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(vrrp_part(&text), vrrp_part(&with_etcd));
    }
}
