//! `[etcd]`: the cluster that decides ownership for `election = "etcd"` instances, and the rules
//! that tie it to the instances (an etcd instance needs the table; a group's members are all etcd or
//! all VRRP).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::Facts;
use crate::config::error::Cx;
use crate::config::model::{EtcdConfig, DEFAULT_ETCD_LEASE_TTL, DEFAULT_ETCD_PREFIX};
use crate::config::raw::{RawEtcd, RawGroup};

/// etcd refuses leases shorter than about 1.5 election timeouts; below 3 s the margins of the timing
/// argument (docs/etcd.md) leave the VIP no kernel lifetime at all.
const MIN_LEASE_TTL: Duration = Duration::from_secs(3);
const MAX_LEASE_TTL: Duration = Duration::from_secs(60);

/// Validates `[etcd]` (when present) and the cross rules: `Some(None)` when there is no table and no
/// instance needs one.
pub(super) fn validate_etcd(
    cx: &mut Cx<'_>,
    raw: Option<&Spanned<RawEtcd>>,
    groups: &[Spanned<RawGroup>],
    facts: &[Facts],
) -> Option<Option<EtcdConfig>> {
    let mut ok = true;
    for f in facts {
        let (Some(span), Some(name)) = (&f.etcd, &f.name) else {
            continue;
        };
        if raw.is_none() {
            cx.at(
                span.clone(),
                format!(
                    "instance \"{}\" has election = \"etcd\" but the file has no [etcd] table",
                    name.get_ref()
                ),
                "add [etcd] with endpoints = [\"http://192.0.2.11:2379\", ...] (the cluster's client URLs), or remove the key for VRRP",
            );
            ok = false;
        }
    }
    // A group moves its members together, so they are elected one way: all etcd (one owner key
    // for the group) or all VRRP.
    for g in groups {
        let g = g.get_ref();
        let (Some(name), Some(members)) = (&g.name, &g.instances) else {
            continue;
        };
        let etcd: Vec<&str> = members
            .get_ref()
            .iter()
            .map(|m| m.get_ref().as_str())
            .filter(|m| {
                facts
                    .iter()
                    .any(|f| f.etcd.is_some() && f.name.as_ref().is_some_and(|n| n.get_ref() == m))
            })
            .collect();
        if !etcd.is_empty() && etcd.len() < members.get_ref().len() {
            cx.at(
                members.span(),
                format!(
                    "[[group]] \"{}\" mixes election = \"etcd\" ({}) with VRRP members",
                    name.get_ref(),
                    etcd.join(", ")
                ),
                "a group's members move together, so they are elected one way: give every member election = \"etcd\" (one owner key for the group) or none",
            );
            ok = false;
        }
    }
    let table = match raw {
        None => return ok.then_some(None),
        Some(t) => t,
    };
    let config = table_config(cx, table);
    if ok {
        config.map(Some)
    } else {
        None
    }
}

fn table_config(cx: &mut Cx<'_>, table: &Spanned<RawEtcd>) -> Option<EtcdConfig> {
    let raw = table.get_ref();
    let mut ok = true;
    let mut endpoints = Vec::new();
    match &raw.endpoints {
        None => {
            cx.missing(
                table.span(),
                "endpoints",
                "[etcd]",
                "endpoints = [\"http://192.0.2.11:2379\", \"http://192.0.2.12:2379\", \"http://192.0.2.13:2379\"]",
            );
            ok = false;
        }
        Some(list) if list.get_ref().is_empty() => {
            cx.at(
                list.span(),
                "endpoints is empty",
                "list the cluster's client URLs, e.g. endpoints = [\"http://192.0.2.11:2379\"]",
            );
            ok = false;
        }
        Some(list) => {
            let mut seen = HashSet::new();
            for url in list.get_ref() {
                let u = url.get_ref();
                let rest = u
                    .strip_prefix("http://")
                    .or_else(|| u.strip_prefix("https://"));
                match rest {
                    Some(hp) if valid_host_port(hp) => {
                        if !seen.insert(u.clone()) {
                            cx.at(
                                url.span(),
                                format!("endpoint \"{u}\" is listed twice"),
                                "list each member once",
                            );
                            ok = false;
                        }
                        endpoints.push(u.clone());
                    }
                    _ => {
                        cx.at(
                            url.span(),
                            format!("endpoint \"{u}\" is not an http:// or https:// HOST:PORT URL"),
                            "write the member's client URL, e.g. \"https://192.0.2.11:2379\" (IPv6: \"https://[2001:db8::11]:2379\"), with no path",
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    let mut path = |key: &str, value: &Option<Spanned<String>>| -> Option<PathBuf> {
        let v = value.as_ref()?;
        if v.get_ref().starts_with('/') {
            Some(PathBuf::from(v.get_ref()))
        } else {
            cx.at(
                v.span(),
                format!("{key} \"{}\" is not an absolute path", v.get_ref()),
                format!("write an absolute path, e.g. {key} = \"/etc/floatip/etcd/{key}.pem\""),
            );
            ok = false;
            None
        }
    };
    let ca_file = path("ca_file", &raw.ca_file);
    let cert_file = path("cert_file", &raw.cert_file);
    let key_file = path("key_file", &raw.key_file);
    match (&raw.cert_file, &raw.key_file) {
        (Some(c), None) => {
            cx.at(
                c.span(),
                "cert_file is set without key_file",
                "a client certificate needs its private key: add key_file = \"/etc/floatip/etcd/key.pem\"",
            );
            ok = false;
        }
        (None, Some(k)) => {
            cx.at(
                k.span(),
                "key_file is set without cert_file",
                "a private key needs its certificate: add cert_file = \"/etc/floatip/etcd/cert.pem\"",
            );
            ok = false;
        }
        _ => {}
    }
    if let (Some(ca), Some(list)) = (&raw.ca_file, &raw.endpoints) {
        if list
            .get_ref()
            .iter()
            .all(|u| u.get_ref().starts_with("http://"))
        {
            cx.at(
                ca.span(),
                "ca_file is set but every endpoint is plain http://",
                "use https:// endpoints for TLS, or remove ca_file",
            );
            ok = false;
        }
    }
    if let (None, Some(list)) = (&raw.ca_file, &raw.endpoints) {
        if let Some(https) = list
            .get_ref()
            .iter()
            .find(|u| u.get_ref().starts_with("https://"))
        {
            cx.at(
                https.span(),
                format!("endpoint \"{}\" is https:// but [etcd] has no ca_file", https.get_ref()),
                "add ca_file = \"/etc/floatip/etcd/ca.pem\" (the CA that signs the members' certificates)",
            );
            ok = false;
        }
    }
    let prefix = match &raw.prefix {
        None => Some(DEFAULT_ETCD_PREFIX.to_string()),
        Some(p) => {
            let s = p.get_ref();
            if s.len() >= 2 && s.starts_with('/') && s.ends_with('/') {
                Some(s.clone())
            } else {
                cx.at(
                    p.span(),
                    format!("prefix \"{s}\" must start and end with /"),
                    format!("e.g. prefix = \"{DEFAULT_ETCD_PREFIX}\" or \"/clusters/files/\""),
                );
                None
            }
        }
    };
    let lease_ttl = cx.duration(
        raw.lease_ttl.as_ref(),
        "lease_ttl",
        DEFAULT_ETCD_LEASE_TTL,
        MIN_LEASE_TTL,
        MAX_LEASE_TTL,
    );
    if let (Some(ttl), Some(raw_ttl)) = (lease_ttl, &raw.lease_ttl) {
        if ttl.subsec_nanos() != 0 {
            cx.at(
                raw_ttl.span(),
                "lease_ttl must be whole seconds (etcd leases count in seconds)",
                format!("e.g. lease_ttl = \"{}s\"", ttl.as_secs().max(3)),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(EtcdConfig {
        endpoints,
        ca_file,
        cert_file,
        key_file,
        prefix: prefix?,
        lease_ttl: lease_ttl?,
    })
}

/// `HOST:PORT` with a non-zero port and nothing after it; IPv6 in brackets.
fn valid_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::valid_host_port;
    use crate::config::{parse, Election};
    use std::path::Path;
    use std::time::Duration;

    const INSTANCE: &str = "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\naddresses = [\"192.0.2.97/24\"]\n";

    fn errors(text: &str) -> String {
        parse(text, Path::new("t.toml")).unwrap_err().to_string()
    }

    #[test]
    fn an_etcd_instance_with_its_table() {
        let text = format!(
            "{INSTANCE}election = \"etcd\"\n[etcd]\nendpoints = [\"http://192.0.2.11:2379\", \"https://[2001:db8::12]:2379\"]\nca_file = \"/etc/floatip/ca.pem\"\nlease_ttl = \"7s\"\n"
        );
        let cfg = parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.instances[0].election, Election::Etcd);
        let etcd = cfg.etcd.unwrap();
        assert_eq!(etcd.endpoints.len(), 2);
        assert_eq!(etcd.prefix, "/floatip/");
        assert_eq!(etcd.lease_ttl, Duration::from_secs(7));
        // Without the key: VRRP, and no [etcd] needed.
        let cfg = parse(INSTANCE, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.instances[0].election, Election::Vrrp);
        assert!(cfg.etcd.is_none());
    }

    #[test]
    fn bad_etcd_settings_are_explained_with_their_line() {
        let e = errors(&format!("{INSTANCE}election = \"etcd\"\n"));
        assert!(
            e.contains("t.toml:6") && e.contains("no [etcd] table"),
            "{e}"
        );
        let e = errors(&format!("{INSTANCE}election = \"raft\"\n"));
        assert!(e.contains("election \"raft\" is not known"), "{e}");
        let e = errors(&format!(
            "{INSTANCE}election = \"etcd\"\n[etcd]\nendpoints = [\"192.0.2.11:2379\"]\nlease_ttl = \"2s\"\nprefix = \"floatip\"\ncert_file = \"/c.pem\"\n"
        ));
        assert!(e.contains("not an http:// or https://"), "{e}");
        assert!(e.contains("lease_ttl 2s is out of range"), "{e}");
        assert!(e.contains("must start and end with /"), "{e}");
        assert!(e.contains("cert_file is set without key_file"), "{e}");
        let e = errors(&format!(
            "{INSTANCE}[etcd]\nendpoints = [\"https://192.0.2.11:2379\"]\n"
        ));
        assert!(e.contains("is https:// but [etcd] has no ca_file"), "{e}");
        let e = errors(&format!("{INSTANCE}[etcd]\n"));
        assert!(e.contains("[etcd] has no `endpoints`"), "{e}");
    }

    #[test]
    fn a_group_is_all_etcd_or_all_vrrp() {
        let group = |second: &str| {
            format!(
                "{INSTANCE}election = \"etcd\"\n[[instance]]\nname = \"files6\"\ninterface = \"eth0\"\nvrid = 52\naddresses = [\"2001:db8::97/64\"]\n{second}[[group]]\nname = \"g\"\ninstances = [\"files\", \"files6\"]\n[etcd]\nendpoints = [\"http://192.0.2.11:2379\"]\n"
            )
        };
        let e = errors(&group(""));
        assert!(
            e.contains("t.toml:14")
                && e.contains("[[group]] \"g\" mixes election = \"etcd\" (files)"),
            "{e}"
        );
        let cfg = parse(&group("election = \"etcd\"\n"), Path::new("t.toml")).unwrap();
        assert_eq!(cfg.groups[0].instances, ["files", "files6"]);
    }

    #[test]
    fn keys_an_etcd_instance_would_ignore_are_refused_with_their_line() {
        let etcd = "[etcd]\nendpoints = [\"http://192.0.2.11:2379\"]\n";
        let e = errors(&format!(
            "{INSTANCE}election = \"etcd\"\nvmac = true\n{etcd}"
        ));
        assert!(
            e.contains("t.toml:7") && e.contains("vmac does not apply to election = \"etcd\""),
            "{e}"
        );
        let e = errors(&format!(
            "{INSTANCE}election = \"etcd\"\nversion = 2\n[instance.auth]\ntype = \"pass\"\npassword = \"x\"\n{etcd}"
        ));
        assert!(e.contains("[instance.auth] does not apply"), "{e}");
        let e = errors(&format!(
            "{INSTANCE}election = \"etcd\"\n[[instance.track_file]]\npath = \"/run/floatip/drain\"\n{etcd}"
        ));
        assert!(e.contains("[[instance.track_file]] does not apply"), "{e}");
        let e = errors(&format!(
            "{INSTANCE}election = \"etcd\"\nwitness = [\"192.0.2.254\"]\n{etcd}"
        ));
        assert!(
            e.contains("t.toml:7") && e.contains("witness does not apply"),
            "{e}"
        );
        // vmac = false is the default, and fine.
        let text = format!("{INSTANCE}election = \"etcd\"\nvmac = false\n{etcd}");
        assert!(parse(&text, Path::new("t.toml")).is_ok());
    }

    #[test]
    fn host_port_forms() {
        assert!(valid_host_port("192.0.2.11:2379"));
        assert!(valid_host_port("etcd-1.example:2379"));
        assert!(valid_host_port("[2001:db8::11]:2379"));
        assert!(!valid_host_port("192.0.2.11"));
        assert!(!valid_host_port("192.0.2.11:0"));
        assert!(!valid_host_port("192.0.2.11:2379/v3"));
        assert!(!valid_host_port("2001:db8::11:2379"));
    }
}
