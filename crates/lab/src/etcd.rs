//! etcd as a lab service: how the tests and the benchmarks start a real three-member cluster of
//! Debian's `etcd-server`, each member in a lab host of its own (e1..e3 at 192.0.2.11-13),
//! listening only on that host's lab address, data in the lab's temp dir, optionally with TLS and
//! client certificates (made with `openssl`); and the lines a floatip config needs to use it. The
//! lab stops the members when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{interrupted, require, run_output, wait_until, Host, Lab, Proc};

/// Debian's etcd (package `etcd-server`).
pub const ETCD: &str = "/usr/bin/etcd";

/// How long [`EtcdCluster::start`] waits for every member to report a healthy cluster.
pub const ETCD_SETTLE: Duration = Duration::from_secs(20);

/// The members' lab hosts, addresses and names: e1..e3 at 192.0.2.11-13.
const MEMBERS: usize = 3;

fn member_ip(i: usize) -> String {
    format!("192.0.2.{}", 11 + i)
}

fn utf8(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("lab paths are UTF-8: {}", p.display()))
}

/// Why etcd cannot run here (it is not installed), or `None` if it can.
pub fn etcd_unavailable() -> Option<&'static str> {
    (!Path::new(ETCD).exists()).then_some("/usr/bin/etcd not found")
}

/// Whether etcd is installed: [`require`]'s rule (a loud SKIPPED, or a failure under CI).
pub fn require_etcd(test_name: &str) -> bool {
    require(test_name, etcd_unavailable(), "apt-get install etcd-server")
}

/// A CA, a certificate per member (for its lab address) and a client certificate, made with the
/// `openssl` command in the lab's temp dir.
pub struct EtcdCerts {
    pub ca: PathBuf,
    /// (certificate, key) of e1..e3.
    pub members: Vec<(PathBuf, PathBuf)>,
    /// (certificate, key) of the client (CN and DNS name `floatip`).
    pub client: (PathBuf, PathBuf),
}

impl EtcdCerts {
    /// Makes the CA (P-256, valid one day) and issues the members' and the client's certificates.
    pub fn make(lab: &Lab) -> Result<EtcdCerts> {
        let dir = lab.path("etcd-pki");
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let p = |name: &str| dir.join(name);
        let run = |args: &[&str]| -> Result<()> {
            let mut argv = vec!["openssl"];
            argv.extend_from_slice(args);
            let out = run_output(&argv, Duration::from_secs(30))
                .context("openssl runs (apt-get install openssl)")?;
            if !out.status.success() {
                bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
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
            utf8(&ca_key)?,
            "-out",
            utf8(&ca)?,
        ])?;
        let issue = |name: &str, san: &str| -> Result<(PathBuf, PathBuf)> {
            let key = p(&format!("{name}.key"));
            let csr = p(&format!("{name}.csr"));
            let pem = p(&format!("{name}.pem"));
            let ext = p(&format!("{name}.ext"));
            std::fs::write(
                &ext,
                format!("subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n"),
            )
            .with_context(|| format!("write {}", ext.display()))?;
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
                utf8(&key)?,
                "-out",
                utf8(&csr)?,
            ])?;
            run(&[
                "x509",
                "-req",
                "-in",
                utf8(&csr)?,
                "-CA",
                utf8(&ca)?,
                "-CAkey",
                utf8(&ca_key)?,
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                utf8(&ext)?,
                "-out",
                utf8(&pem)?,
            ])?;
            Ok((pem, key))
        };
        let members = (0..MEMBERS)
            .map(|i| issue(&format!("e{}", i + 1), &format!("IP:{}", member_ip(i))))
            .collect::<Result<Vec<_>>>()?;
        let client = issue("floatip", "DNS:floatip")?;
        Ok(EtcdCerts {
            ca,
            members,
            client,
        })
    }
}

/// The members: their hosts and processes (stopped when the lab drops).
pub struct EtcdCluster {
    pub hosts: Vec<Host>,
    pub procs: Vec<Proc>,
    /// curl's TLS arguments when the client port is TLS.
    curl_tls: Option<Vec<String>>,
}

impl EtcdCluster {
    /// Adds e1..e3 to `lab`, starts one member in each (TLS and client certificates on the client
    /// port when `certs`; peers talk plain HTTP) and waits (within [`ETCD_SETTLE`]) until every
    /// member reports a healthy cluster. The error quotes the log of a member that is not.
    pub fn start(lab: &mut Lab, certs: Option<&EtcdCerts>) -> Result<EtcdCluster> {
        let hosts = (0..MEMBERS)
            .map(|i| {
                lab.add_host(
                    &format!("e{}", i + 1),
                    &format!("{}/24", member_ip(i)),
                    None,
                )
                .with_context(|| format!("cannot add e{}", i + 1))
            })
            .collect::<Result<Vec<Host>>>()?;
        let initial = (0..MEMBERS)
            .map(|i| format!("e{}=http://{}:2380", i + 1, member_ip(i)))
            .collect::<Vec<_>>()
            .join(",");
        let token = lab.prefix().to_string();
        let scheme = if certs.is_some() { "https" } else { "http" };
        let mut procs = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let ip = member_ip(i);
            let name = format!("e{}", i + 1);
            let data = lab.path(&format!("{name}.etcd"));
            let log = lab.path(&format!("etcd-{name}.log"));
            let client = format!("{scheme}://{ip}:2379");
            let peer = format!("http://{ip}:2380");
            let mut argv: Vec<&str> = vec![
                ETCD,
                "--name",
                &name,
                "--data-dir",
                utf8(&data)?,
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
            if let Some(c) = certs {
                let (cert, key) = &c.members[i];
                argv.extend([
                    "--cert-file",
                    utf8(cert)?,
                    "--key-file",
                    utf8(key)?,
                    "--trusted-ca-file",
                    utf8(&c.ca)?,
                    "--client-cert-auth",
                ]);
            }
            procs.push(
                host.spawn(&argv, Some(&log))
                    .with_context(|| format!("cannot start etcd in {}", host.name))?,
            );
        }
        let curl_tls = match certs {
            None => None,
            Some(c) => Some(vec![
                "--cacert".to_string(),
                utf8(&c.ca)?.to_string(),
                "--cert".to_string(),
                utf8(&c.client.0)?.to_string(),
                "--key".to_string(),
                utf8(&c.client.1)?.to_string(),
            ]),
        };
        let cluster = EtcdCluster {
            hosts,
            procs,
            curl_tls,
        };
        for i in 0..MEMBERS {
            let healthy = wait_until(ETCD_SETTLE, Duration::from_millis(200), || {
                cluster.healthy(i)
            });
            if interrupted() {
                bail!("interrupted while etcd started");
            }
            if !healthy {
                bail!(
                    "etcd member e{} is not healthy after {ETCD_SETTLE:?}; log:\n{}",
                    i + 1,
                    cluster.procs[i].log()
                );
            }
        }
        Ok(cluster)
    }

    /// The client URLs of e1..e3 (`https` with TLS).
    pub fn endpoints(&self) -> Vec<String> {
        endpoints(self.curl_tls.is_some())
    }

    /// Whether member `i` (0-based) answers `/health` with a leader, asked from its own host.
    pub fn healthy(&self, i: usize) -> bool {
        let url = format!("{}/health", endpoints(self.curl_tls.is_some())[i]);
        let mut argv = vec!["curl", "-s", "-m", "1"];
        if let Some(tls) = &self.curl_tls {
            argv.extend(tls.iter().map(String::as_str));
        }
        argv.push(&url);
        self.hosts[i]
            .output(&argv)
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
    }

    /// SIGKILL member `i` (0-based); false if it was not running.
    pub fn kill(&self, i: usize) -> bool {
        self.procs[i].kill9()
    }

    /// The lines that make the last `[[instance]]` of a floatip config an etcd one, with the
    /// `[etcd]` table after it: `election = "etcd"`, a blank line, then `[etcd]` with the three
    /// endpoints, `lease_ttl` (whole seconds) and, for a cluster started with `certs`, the CA and
    /// the client's certificate and key.
    pub fn instance_lines(lease_ttl: Duration, certs: Option<&EtcdCerts>) -> String {
        let tls = match certs {
            None => String::new(),
            Some(c) => format!(
                "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                c.ca.display(),
                c.client.0.display(),
                c.client.1.display()
            ),
        };
        let endpoints = endpoints(certs.is_some())
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "election = \"etcd\"\n\n[etcd]\nendpoints = [{endpoints}]\nlease_ttl = \"{}s\"\n{tls}",
            lease_ttl.as_secs()
        )
    }
}

fn endpoints(tls: bool) -> Vec<String> {
    let scheme = if tls { "https" } else { "http" };
    (0..MEMBERS)
        .map(|i| format!("{scheme}://{}:2379", member_ip(i)))
        .collect()
}
