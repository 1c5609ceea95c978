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
    /// curl's TLS arguments when the client port is TLS.
    curl_tls: Option<Vec<String>>,
}

/// A CA, a certificate per member (for its lab address) and a client certificate, made with the
/// `openssl` command in the lab's temp dir.
pub struct Certs {
    pub ca: std::path::PathBuf,
    pub members: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    pub client: (std::path::PathBuf, std::path::PathBuf),
}

impl Certs {
    pub fn make(lab: &Lab) -> Certs {
        let dir = lab.path("etcd-pki");
        std::fs::create_dir_all(&dir).expect("pki dir");
        let p = |name: &str| dir.join(name);
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ca_key = p("ca.key");
        let ca = p("ca.pem");
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=floatip-lab-ca",
            "-keyout",
            path_str(&ca_key),
            "-out",
            path_str(&ca),
        ]);
        let issue = |name: &str, san: &str| {
            let key = p(&format!("{name}.key"));
            let csr = p(&format!("{name}.csr"));
            let pem = p(&format!("{name}.pem"));
            let ext = p(&format!("{name}.ext"));
            std::fs::write(
                &ext,
                format!("subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n"),
            )
            .expect("ext file");
            run(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                path_str(&key),
                "-out",
                path_str(&csr),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                path_str(&csr),
                "-CA",
                path_str(&ca),
                "-CAkey",
                path_str(&ca_key),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                path_str(&ext),
                "-out",
                path_str(&pem),
            ]);
            (pem, key)
        };
        let members = (1..=3)
            .map(|i| issue(&format!("e{i}"), &format!("IP:192.0.2.{}", 10 + i)))
            .collect();
        let client = issue("floatip", "DNS:floatip");
        Certs {
            ca,
            members,
            client,
        }
    }
}

impl EtcdCluster {
    /// Adds e1..e3 to `lab`, starts one member in each and waits (within [`SETTLE`]) until every
    /// member reports a healthy cluster.
    pub fn start(lab: &mut Lab) -> EtcdCluster {
        EtcdCluster::start_with(lab, None)
    }

    /// [`EtcdCluster::start`], with TLS and client certificates on the client port when `certs`.
    pub fn start_with(lab: &mut Lab, certs: Option<&Certs>) -> EtcdCluster {
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
                let scheme = if certs.is_some() { "https" } else { "http" };
                let client = format!("{scheme}://{ip}:2379");
                let peer = format!("http://{ip}:2380");
                let name = format!("e{}", i + 1);
                let mut tls: Vec<String> = Vec::new();
                if let Some(c) = certs {
                    let (cert, key) = &c.members[i];
                    tls = vec![
                        "--cert-file".into(),
                        path_str(cert).into(),
                        "--key-file".into(),
                        path_str(key).into(),
                        "--trusted-ca-file".into(),
                        path_str(&c.ca).into(),
                        "--client-cert-auth".into(),
                    ];
                }
                let mut argv: Vec<&str> = vec![
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
                ];
                argv.extend(tls.iter().map(String::as_str));
                host.spawn(&argv, Some(&log))
                    .unwrap_or_else(|e| panic!("cannot start etcd in {}: {e:#}", host.name))
            })
            .collect();
        let cluster = EtcdCluster {
            hosts,
            procs,
            curl_tls: certs.map(|c| {
                vec![
                    "--cacert".into(),
                    path_str(&c.ca).into(),
                    "--cert".into(),
                    path_str(&c.client.0).into(),
                    "--key".into(),
                    path_str(&c.client.1).into(),
                ]
            }),
        };
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
        let scheme = if self.curl_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://192.0.2.{}:2379/health", 11 + i);
        let mut argv = vec!["curl", "-s", "-m", "1"];
        if let Some(tls) = &self.curl_tls {
            argv.extend(tls.iter().map(String::as_str));
        }
        argv.push(&url);
        self.hosts[i]
            .output(&argv)
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
    }

    /// SIGKILL member `i` (0-based).
    pub fn kill(&self, i: usize) {
        assert!(self.procs[i].kill9(), "etcd e{} was running", i + 1);
    }

    /// The lines that make the last `[[instance]]` of a floatip config an etcd one, with the
    /// `[etcd]` table after it (so it goes in the last instance's `extra`).
    pub fn instance_lines(lease_ttl: Duration) -> String {
        EtcdCluster::instance_lines_with(lease_ttl, None)
    }

    /// [`EtcdCluster::instance_lines`] for a cluster started with `certs`.
    pub fn instance_lines_with(lease_ttl: Duration, certs: Option<&Certs>) -> String {
        let (scheme, tls) = match certs {
            None => ("http", String::new()),
            Some(c) => (
                "https",
                format!(
                    "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                    path_str(&c.ca),
                    path_str(&c.client.0),
                    path_str(&c.client.1)
                ),
            ),
        };
        format!(
            "election = \"etcd\"\n\n[etcd]\nendpoints = [\"{scheme}://192.0.2.11:2379\", \"{scheme}://192.0.2.12:2379\", \"{scheme}://192.0.2.13:2379\"]\nlease_ttl = \"{}s\"\n{tls}",
            lease_ttl.as_secs()
        )
    }
}
