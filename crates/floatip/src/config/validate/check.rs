//! `[[instance.check]]`: a health check, its kind and the keys that kind takes, and its timing.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::is_valid_name;
use crate::config::duration::format_duration;
use crate::config::error::Cx;
use crate::config::keys;
use crate::config::model::*;
use crate::config::raw::RawCheck;

pub(super) fn validate_check(
    cx: &mut Cx<'_>,
    spanned: &Spanned<RawCheck>,
    instance: &str,
) -> Option<CheckConfig> {
    let raw = spanned.get_ref();
    let table = spanned.span();
    let mut ok = true;

    let name = match &raw.name {
        None => {
            cx.missing(
                table.clone(),
                "name",
                &format!("a check of instance {instance}"),
                "name = \"smb\"",
            );
            None
        }
        Some(n) if !is_valid_name(n.get_ref()) => {
            cx.at(
                n.span(),
                format!("check name \"{}\" is not a valid name", n.get_ref()),
                "use 1-32 characters from a-z, 0-9, _ and -, e.g. name = \"smb\"",
            );
            None
        }
        Some(n) => Some(n.get_ref().clone()),
    };
    let label = name.clone().unwrap_or_else(|| "this check".into());

    // Which optional keys each kind takes; the rest are errors (a key that silently does nothing misleads).
    let present: [(&str, Option<Range<usize>>); 12] = [
        ("target", raw.target.as_ref().map(|v| v.span())),
        ("url", raw.url.as_ref().map(|v| v.span())),
        (
            "expect_status",
            raw.expect_status.as_ref().map(|v| v.span()),
        ),
        ("expect_body", raw.expect_body.as_ref().map(|v| v.span())),
        ("command", raw.command.as_ref().map(|v| v.span())),
        ("process", raw.process.as_ref().map(|v| v.span())),
        ("args", raw.args.as_ref().map(|v| v.span())),
        ("min", raw.min.as_ref().map(|v| v.span())),
        ("max", raw.max.as_ref().map(|v| v.span())),
        ("ca_file", raw.ca_file.as_ref().map(|v| v.span())),
        (
            "tls_server_name",
            raw.tls_server_name.as_ref().map(|v| v.span()),
        ),
        (
            "insecure_skip_verify",
            raw.insecure_skip_verify.as_ref().map(|v| v.span()),
        ),
    ];
    let kind_name = raw.kind.as_ref().map(|k| k.get_ref().as_str());
    let usage = match kind_name {
        Some("icmp") => "an icmp check takes target = \"192.0.2.254\"",
        Some("tcp") => "a tcp check takes target = \"127.0.0.1:445\"",
        Some("http") => "an http check takes url = \"http://127.0.0.1:8080/health\" (or https://), and optionally expect_status, expect_body, and for https ca_file, tls_server_name, insecure_skip_verify",
        Some("exec") => "an exec check takes command = [\"/usr/local/bin/check-nfs\", \"--quick\"]",
        Some("process") => "a process check takes process = \"smbd\", and optionally args, min, max",
        _ => "",
    };
    let allowed = keys::check_kind_keys(kind_name.unwrap_or_default());
    if let Some(kind) = kind_name.filter(|_| !usage.is_empty()) {
        for (key, span) in &present {
            if let Some(span) = span {
                if !allowed.contains(key) {
                    cx.at(
                        span.clone(),
                        format!("check {label}: `{key}` does not apply to kind = \"{kind}\""),
                        format!("{usage}; remove `{key}`"),
                    );
                    ok = false;
                }
            }
        }
    }

    let kind = match (&raw.kind, kind_name) {
        (None, _) => {
            cx.missing(
                table.clone(),
                "kind",
                &format!("check {label}"),
                "kind = \"tcp\" (one of icmp, tcp, http, exec, process)",
            );
            None
        }
        (Some(_), Some("icmp")) => match &raw.target {
            None => {
                cx.missing(
                    table.clone(),
                    "target",
                    &format!("icmp check {label}"),
                    "target = \"192.0.2.254\"",
                );
                None
            }
            Some(t) => match t.get_ref().parse::<IpAddr>() {
                Ok(target) => Some(CheckKind::Icmp { target }),
                Err(_) => {
                    cx.at(
                        t.span(),
                        format!("check {label}: target \"{}\" is not an IP address", t.get_ref()),
                        "an icmp check pings an IP address (no host names, no port), e.g. target = \"192.0.2.254\"",
                    );
                    None
                }
            },
        },
        (Some(_), Some("tcp")) => match &raw.target {
            None => {
                cx.missing(
                    table.clone(),
                    "target",
                    &format!("tcp check {label}"),
                    "target = \"127.0.0.1:445\"",
                );
                None
            }
            Some(t) => match t.get_ref().parse::<SocketAddr>() {
                Ok(target) if target.port() != 0 => Some(CheckKind::Tcp { target }),
                _ => {
                    cx.at(
                        t.span(),
                        format!("check {label}: target \"{}\" is not an ADDRESS:PORT", t.get_ref()),
                        "a tcp check connects to an IP and port (no host names), e.g. target = \"127.0.0.1:445\" or \"[2001:db8::10]:445\"",
                    );
                    None
                }
            },
        },
        (Some(_), Some("http")) => {
            let url = match &raw.url {
                None => {
                    cx.missing(
                        table.clone(),
                        "url",
                        &format!("http check {label}"),
                        "url = \"http://127.0.0.1:8080/health\"",
                    );
                    None
                }
                Some(u) => match crate::config::parse_http_url(u.get_ref()) {
                    Ok(_) => Some(u.get_ref().clone()),
                    Err(e) => {
                        cx.at(
                            u.span(),
                            format!("check {label}: url \"{}\" {e}", u.get_ref()),
                            "write an http or https URL, e.g. url = \"http://127.0.0.1:8080/health\" or \"https://192.0.2.10/\"",
                        );
                        None
                    }
                },
            };
            let expect_status = match &raw.expect_status {
                None => Some(None),
                Some(s) => cx
                    .int_in(
                        s,
                        "expect_status",
                        100..=599,
                        "expect_status is an HTTP status, 100-599; leave it out to accept any 2xx",
                    )
                    .map(|s| Some(s as u16)),
            };
            let expect_body = match &raw.expect_body {
                Some(b) if b.get_ref().is_empty() => {
                    cx.at(
                        b.span(),
                        "expect_body is empty, so it checks nothing",
                        "give the text the body must contain, or remove the key",
                    );
                    None
                }
                other => Some(other.as_ref().map(|b| b.get_ref().clone())),
            };
            let tls = validate_tls(cx, raw, &label, url.as_deref());
            (|| {
                Some(CheckKind::Http {
                    url: url?,
                    expect_status: expect_status?,
                    expect_body: expect_body?,
                    tls: tls?,
                })
            })()
        }
        (Some(_), Some("exec")) => match &raw.command {
            None => {
                cx.missing(
                    table.clone(),
                    "command",
                    &format!("exec check {label}"),
                    "command = [\"/usr/local/bin/check-nfs\", \"--quick\"]",
                );
                None
            }
            Some(c) => cx
                .argv(c, "command")
                .map(|command| CheckKind::Exec { command }),
        },
        (Some(_), Some("process")) => process_kind(cx, raw, table.clone(), &label),
        (Some(k), Some(other)) => {
            cx.at(
                k.span(),
                format!("check {label}: kind \"{other}\" is not a check kind"),
                "kind is one of \"icmp\" (ping target), \"tcp\" (connect to target), \"http\" (GET url), \"exec\" (run command), \"process\" (count running processes)",
            );
            None
        }
        (Some(_), None) => None,
    };

    let interval = cx.duration(
        raw.interval.as_ref(),
        "interval",
        DEFAULT_CHECK_INTERVAL,
        Duration::from_millis(10),
        Duration::from_secs(3600),
    );
    // Without a timeout the default is 1s, or half a shorter interval, so `interval = "200ms"` alone is valid.
    let timeout = match (&raw.timeout, interval) {
        (None, Some(i)) => Some(DEFAULT_CHECK_TIMEOUT.min(i / 2)),
        (None, None) => None,
        (Some(t), interval) => cx.any_duration(t, "timeout").and_then(|d| {
            if d.is_zero() {
                cx.at(t.span(), format!("check {label}: timeout is zero"), "give the check time to answer, e.g. timeout = \"1s\"");
                return None;
            }
            match interval {
                Some(i) if d >= i => {
                    cx.at(
                        t.span(),
                        format!(
                            "check {label}: timeout {} is not shorter than interval {}",
                            format_duration(d),
                            format_duration(i)
                        ),
                        format!(
                            "a check must finish before the next one starts: use a timeout below {} (e.g. \"{}\") or a longer interval",
                            format_duration(i),
                            format_duration(i / 2)
                        ),
                    );
                    None
                }
                _ => Some(d),
            }
        }),
    };
    let rise = match &raw.rise {
        None => Some(DEFAULT_CHECK_RISE),
        Some(r) => cx
            .int_in(
                r,
                "rise",
                1..=100,
                "rise is 1-100 consecutive successes (default 2)",
            )
            .map(|r| r as u32),
    };
    let fall = match &raw.fall {
        None => Some(DEFAULT_CHECK_FALL),
        Some(f) => cx
            .int_in(
                f,
                "fall",
                1..=100,
                "fall is 1-100 consecutive failures (default 3)",
            )
            .map(|f| f as u32),
    };
    let weight = match &raw.weight {
        None => Some(None),
        Some(w) if *w.get_ref() == 0 => {
            cx.at(
                w.span(),
                format!("check {label}: weight 0 would make a failing check do nothing"),
                "use a negative weight such as -60 to lower the priority, or remove weight so a failing check means FAULT",
            );
            None
        }
        Some(w) => cx
            .int_in(w, "weight", -254..=254, "weight is -254 to 254 (not 0); a failing check adds it to the priority, e.g. weight = -60")
            .map(|w| Some(w as i32)),
    };

    if !ok {
        return None;
    }
    Some(CheckConfig {
        name: name?,
        kind: kind?,
        interval: interval?,
        timeout: timeout?,
        rise: rise?,
        fall: fall?,
        weight: weight?,
    })
}

/// `ca_file`, `tls_server_name`, `insecure_skip_verify` of an http check: `https://` only, and
/// `insecure_skip_verify` not together with `ca_file` (one of them would be ignored).
fn validate_tls(
    cx: &mut Cx<'_>,
    raw: &RawCheck,
    label: &str,
    url: Option<&str>,
) -> Option<HttpTls> {
    let mut ok = true;
    let https = url.is_none_or(|u| u.starts_with("https://"));
    let mut tls = HttpTls::default();
    let plain = |cx: &mut Cx<'_>, key: &str, span: Range<usize>| {
        cx.at(
            span,
            format!("check {label}: `{key}` applies to https:// URLs only"),
            format!("use an https:// url, or remove `{key}`"),
        );
    };
    if let Some(ca) = &raw.ca_file {
        if !https {
            plain(cx, "ca_file", ca.span());
            ok = false;
        } else if !ca.get_ref().starts_with('/') {
            cx.at(
                ca.span(),
                format!("check {label}: ca_file \"{}\" is not an absolute path", ca.get_ref()),
                "write the absolute path of a PEM file, e.g. ca_file = \"/etc/floatip/home-ca.pem\"",
            );
            ok = false;
        } else {
            tls.ca_file = Some(ca.get_ref().into());
        }
    }
    if let Some(name) = &raw.tls_server_name {
        if !https {
            plain(cx, "tls_server_name", name.span());
            ok = false;
        } else if rustls_pki_types::ServerName::try_from(name.get_ref().as_str()).is_err() {
            cx.at(
                name.span(),
                format!("check {label}: tls_server_name \"{}\" is not a DNS name or IP address", name.get_ref()),
                "write the name the certificate is issued for, e.g. tls_server_name = \"nas.home.arpa\"",
            );
            ok = false;
        } else {
            tls.server_name = Some(name.get_ref().clone());
        }
    }
    if let Some(skip) = &raw.insecure_skip_verify {
        if *skip.get_ref() && !https {
            plain(cx, "insecure_skip_verify", skip.span());
            ok = false;
        } else if *skip.get_ref() && raw.ca_file.is_some() {
            cx.at(
                skip.span(),
                format!("check {label}: insecure_skip_verify = true together with ca_file: the CA would never be used"),
                "keep ca_file (the certificate is then checked) and remove insecure_skip_verify",
            );
            ok = false;
        } else {
            tls.insecure_skip_verify = *skip.get_ref();
        }
    }
    ok.then_some(tls)
}

/// `kind = "process"`: `process` (required, not empty), `args` (not empty), `min` and `max`.
fn process_kind(
    cx: &mut Cx<'_>,
    raw: &RawCheck,
    table: Range<usize>,
    label: &str,
) -> Option<CheckKind> {
    let name = match &raw.process {
        None => {
            cx.missing(
                table,
                "process",
                &format!("process check {label}"),
                "process = \"smbd\"",
            );
            None
        }
        Some(p) if p.get_ref().trim().is_empty() || p.get_ref().contains('/') => {
            cx.at(
                p.span(),
                format!(
                    "check {label}: process \"{}\" is not a process name",
                    p.get_ref()
                ),
                "give the name `ps -e` shows (e.g. process = \"smbd\"), without a path",
            );
            None
        }
        Some(p) => Some(p.get_ref().clone()),
    };
    let args = match &raw.args {
        Some(a) if a.get_ref().is_empty() => {
            cx.at(
                a.span(),
                "args is empty, so it matches every command line",
                "give a piece of the command line, e.g. args = \"--foreground\", or remove the key",
            );
            None
        }
        other => Some(other.as_ref().map(|a| a.get_ref().clone())),
    };
    let min = match &raw.min {
        None => Some(1),
        Some(m) => cx
            .int_in(
                m,
                "min",
                0..=65535,
                "min is how many matching processes at least, 0-65535",
            )
            .map(|m| m as u32),
    };
    let max = match &raw.max {
        None => Some(None),
        Some(m) => cx
            .int_in(
                m,
                "max",
                0..=65535,
                "max is how many matching processes at most, 0-65535",
            )
            .and_then(|v| match min {
                Some(lo) if (v as u32) < lo => {
                    cx.at(
                        m.span(),
                        format!(
                            "check {label}: max {v} is below min {lo}, so it can never be healthy"
                        ),
                        "set max at least min, or remove one of them",
                    );
                    None
                }
                _ => Some(Some(v as u32)),
            }),
    };
    Some(CheckKind::Process {
        name: name?,
        args: args?,
        min: min?,
        max: max?,
    })
}
