//! A real etcd cluster for the lab: three members of Debian's `etcd-server`, each in a lab host of
//! its own (e1..e3 at 192.0.2.11-13), listening only on that host's lab address, data in the lab's
//! temp dir; the lab stops them when dropped. And the `[etcd]` lines a floatip config needs for it.

use std::time::Duration;

use floatip_lab::{require, wait_until, Host, Lab, Proc};

use super::{path_str, POLL, SETTLE};

/// Debian's etcd (package `etcd-server`).
pub const ETCD: &str = "/usr/bin/etcd";

/// Whether etcd is installed: [`require`]'s rule (a loud SKIPPED, or a failure under CI).
pub fn require_etcd(test_name: &str) -> bool {
    let missing = (!std::path::Path::new(ETCD).exists()).then_some("/usr/bin/etcd not found");
    require(test_name, missing, "apt-get install etcd-server")
}

/// The members: their hosts and processes.
pub struct EtcdCluster {
    pub hosts: Vec<Host>,
    pub procs: Vec<Proc>,
}

impl EtcdCluster {
    /// Adds e1..e3 to `lab`, starts one member in each and waits (within [`SETTLE`]) until every
    /// member reports a healthy cluster.
    pub fn start(lab: &mut Lab) -> EtcdCluster {
        let hosts: Vec<Host> = (1..=3)
            .map(|i| {
                lab.add_host(&format!("e{i}"), &format!("192.0.2.{}/24", 10 + i), None)
                    .unwrap_or_else(|e| panic!("cannot add e{i}: {e:#}"))
            })
            .collect();
        let initial = (1..=3)
            .map(|i| format!("e{i}=http://192.0.2.{}:2380", 10 + i))
            .collect::<Vec<_>>()
            .join(",");
        let token = lab.prefix().to_string();
        let procs = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let ip = format!("192.0.2.{}", 11 + i);
                let data = lab.path(&format!("e{}.etcd", i + 1));
                let log = lab.path(&format!("etcd-e{}.log", i + 1));
                let client = format!("http://{ip}:2379");
                let peer = format!("http://{ip}:2380");
                let name = format!("e{}", i + 1);
                host.spawn(
                    &[
                        ETCD,
                        "--name",
                        &name,
                        "--data-dir",
                        path_str(&data),
                        "--listen-client-urls",
                        &client,
                        "--advertise-client-urls",
                        &client,
                        "--listen-peer-urls",
                        &peer,
                        "--initial-advertise-peer-urls",
                        &peer,
                        "--initial-cluster",
                        &initial,
                        "--initial-cluster-token",
                        &token,
                        "--initial-cluster-state",
                        "new",
                    ],
                    Some(&log),
                )
                .unwrap_or_else(|e| panic!("cannot start etcd in {}: {e:#}", host.name))
            })
            .collect();
        let cluster = EtcdCluster { hosts, procs };
        for i in 0..3 {
            let healthy = wait_until(SETTLE, POLL * 4, || cluster.healthy(i));
            assert!(
                healthy,
                "etcd member e{} is not healthy after {SETTLE:?}; log:\n{}",
                i + 1,
                cluster.procs[i].log()
            );
        }
        cluster
    }

    /// Whether member `i` (0-based) answers `/health` with a leader, asked from its own host.
    pub fn healthy(&self, i: usize) -> bool {
        let url = format!("http://192.0.2.{}:2379/health", 11 + i);
        self.hosts[i]
            .output(&["curl", "-s", "-m", "1", &url])
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
    }

    /// SIGKILL member `i` (0-based).
    pub fn kill(&self, i: usize) {
        assert!(self.procs[i].kill9(), "etcd e{} was running", i + 1);
    }

    /// The lines that make the last `[[instance]]` of a floatip config an etcd one, with the
    /// `[etcd]` table after it (so it goes in the last instance's `extra`).
    pub fn instance_lines(lease_ttl: Duration) -> String {
        format!(
            "election = \"etcd\"\n\n[etcd]\nendpoints = [\"http://192.0.2.11:2379\", \"http://192.0.2.12:2379\", \"http://192.0.2.13:2379\"]\nlease_ttl = \"{}s\"\n",
            lease_ttl.as_secs()
        )
    }
}
