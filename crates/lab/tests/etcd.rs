//! EtcdCluster against the real etcd: three members in lab hosts e1..e3 report a healthy cluster,
//! a killed member stops answering while the other two keep quorum, and the TLS variant answers
//! only with the client certificate. Needs root and /usr/bin/etcd; without them the tests print
//! SKIPPED (and fail when CI=true).

use std::time::Duration;

use floatip_lab::{require_etcd, require_root, wait_until, EtcdCerts, EtcdCluster, Lab};

#[test]
fn etcd_cluster_starts_healthy_and_a_killed_member_stops_answering() {
    let name = "fiplab_etcd";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let mut lab = Lab::new(name).unwrap();
    let cluster = EtcdCluster::start(&mut lab, None).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(cluster.hosts.len(), 3);
    assert!((0..3).all(|i| cluster.healthy(i)));
    assert_eq!(
        cluster.endpoints(),
        [
            "http://192.0.2.11:2379",
            "http://192.0.2.12:2379",
            "http://192.0.2.13:2379"
        ]
    );
    assert!(cluster.kill(0), "e1 was running");
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            !cluster.healthy(0)
        }),
        "e1 still answers after SIGKILL"
    );
    assert!(!cluster.kill(0), "e1 is gone: nothing to kill");
    // Two of three keep quorum: e2 still reports a healthy cluster (with a leader).
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
            cluster.healthy(1)
        }),
        "e2 lost its cluster when only e1 died:\n{}",
        cluster.procs[1].log()
    );
}

#[test]
fn etcd_cluster_with_tls_answers_with_the_client_certificate() {
    let name = "fiplab_etcdtls";
    if !require_root(name) || !require_etcd(name) {
        return;
    }
    let mut lab = Lab::new(name).unwrap();
    let certs = EtcdCerts::make(&lab).unwrap_or_else(|e| panic!("{e:#}"));
    let cluster = EtcdCluster::start(&mut lab, Some(&certs)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(cluster
        .endpoints()
        .iter()
        .all(|e| e.starts_with("https://")));
    // Without the client certificate the member refuses (client-cert-auth).
    let out = cluster.hosts[0]
        .output(&[
            "curl",
            "-s",
            "-m",
            "2",
            "--cacert",
            certs.ca.to_str().unwrap(),
            "https://192.0.2.11:2379/health",
        ])
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"health\":\"true\""),
        "e1 answered without a client certificate"
    );
    let lines = EtcdCluster::instance_lines(Duration::from_secs(5), Some(&certs));
    assert!(
        lines.starts_with("election = \"etcd\"\n\n[etcd]\n"),
        "{lines}"
    );
    assert!(lines.contains("lease_ttl = \"5s\""), "{lines}");
    assert!(
        lines.contains(&format!("ca_file = \"{}\"", certs.ca.display())),
        "{lines}"
    );
}
