//! The firewall: finds nftables rules and chain policies that drop VRRP (IP protocol 112) in
//! `nft -j list ruleset`, and names each with the rule that lets VRRP through.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use super::{item, warn, Item, Mark, Section};
use crate::config::Config;

/// A firewall rule or policy that drops VRRP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftDrop {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The rule's handle; `None` for a chain policy.
    pub handle: Option<u64>,
    /// Whether it affects IPv4 / IPv6 VRRP.
    pub v4: bool,
    pub v6: bool,
    /// The base chain's hook, when it is one.
    pub hook: Option<String>,
}

fn is_vrrp(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "vrrp",
        Value::Number(n) => n.as_u64() == Some(112),
        Value::Object(o) => o
            .get("set")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(is_vrrp)),
        Value::Array(a) => a.iter().any(is_vrrp),
        _ => false,
    }
}

/// How one match expression relates to VRRP: `Some((positive, v4, v6))` when it tests the
/// protocol against VRRP.
fn vrrp_match(m: &Value) -> Option<(bool, bool, bool)> {
    let left = m.get("left")?;
    let (v4, v6) = if let Some(p) = left.get("payload") {
        match (
            p.get("protocol").and_then(Value::as_str),
            p.get("field").and_then(Value::as_str),
        ) {
            (Some("ip"), Some("protocol")) => (true, false),
            (Some("ip6"), Some("nexthdr")) => (false, true),
            _ => return None,
        }
    } else if let Some(meta) = left.get("meta") {
        match meta.get("key").and_then(Value::as_str) {
            Some("l4proto") => (true, true),
            _ => return None,
        }
    } else {
        return None;
    };
    if !is_vrrp(m.get("right")?) {
        return None;
    }
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let positive = matches!(op, "==" | "in");
    Some((positive, v4, v6))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Drop,
    Other,
}

/// (verdict, VRRP match, whether any other match exists)
fn classify(expr: &[Value]) -> (Verdict, Option<(bool, bool, bool)>, bool) {
    let mut verdict = Verdict::Other;
    let mut vrrp = None;
    let mut other = false;
    for e in expr {
        if let Some(m) = e.get("match") {
            match vrrp_match(m) {
                Some(v) => vrrp = Some(v),
                None => other = true,
            }
        } else if e.get("drop").is_some() || e.get("reject").is_some() {
            verdict = Verdict::Drop;
        } else if e.get("accept").is_some() {
            verdict = Verdict::Accept;
        } else if e.get("jump").is_some() || e.get("goto").is_some() || e.get("return").is_some() {
            verdict = Verdict::Other;
        }
    }
    (verdict, vrrp, other)
}

/// Finds rules and policies that drop VRRP in `nft -j list ruleset` output.
///
/// Per chain, in order: a rule matching VRRP with drop/reject is reported (unless VRRP was accepted
/// earlier in that chain); in base chains hooked at input, output or prerouting (and netdev ingress),
/// an unconditional drop rule or a `policy drop` before any rule accepting VRRP is reported too.
/// Rules that also match other things (an interface, an address) are assumed to apply: the report
/// names them so a person can judge.
pub fn nft_drops(ruleset: &Value) -> Vec<NftDrop> {
    let Some(items) = ruleset.get("nftables").and_then(Value::as_array) else {
        return vec![];
    };
    struct Chain {
        hook: Option<String>,
        policy_drop: bool,
        rules: Vec<(u64, Vec<Value>)>,
    }
    let mut chains: BTreeMap<(String, String, String), Chain> = BTreeMap::new();
    let mut order: Vec<(String, String, String)> = Vec::new();
    let key_of = |o: &Value, name_key: &str| -> Option<(String, String, String)> {
        Some((
            o.get("family")?.as_str()?.to_string(),
            o.get("table")?.as_str()?.to_string(),
            o.get(name_key)?.as_str()?.to_string(),
        ))
    };
    for it in items {
        if let Some(c) = it.get("chain") {
            let Some(key) = key_of(c, "name") else {
                continue;
            };
            if !chains.contains_key(&key) {
                order.push(key.clone());
            }
            chains.insert(
                key,
                Chain {
                    hook: c.get("hook").and_then(Value::as_str).map(str::to_string),
                    policy_drop: c.get("policy").and_then(Value::as_str) == Some("drop"),
                    rules: vec![],
                },
            );
        } else if let Some(r) = it.get("rule") {
            let Some(key) = key_of(r, "chain") else {
                continue;
            };
            let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
            let expr = r
                .get("expr")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !chains.contains_key(&key) {
                order.push(key.clone());
                chains.insert(
                    key.clone(),
                    Chain {
                        hook: None,
                        policy_drop: false,
                        rules: vec![],
                    },
                );
            }
            if let Some(c) = chains.get_mut(&key) {
                c.rules.push((handle, expr));
            }
        }
    }
    let mut out = Vec::new();
    for key in order {
        let (family, table, chain) = key.clone();
        let c = &chains[&key];
        let fam_v4 = matches!(family.as_str(), "ip" | "inet" | "netdev" | "bridge");
        let fam_v6 = matches!(family.as_str(), "ip6" | "inet" | "netdev" | "bridge");
        if !fam_v4 && !fam_v6 {
            continue;
        }
        let watched = c
            .hook
            .as_deref()
            .is_some_and(|h| matches!(h, "input" | "output" | "prerouting" | "ingress"));
        // Which families are still undecided for VRRP in this chain.
        let (mut open4, mut open6) = (fam_v4, fam_v6);
        for (handle, expr) in &c.rules {
            let (verdict, vrrp, other) = classify(expr);
            let drop = |v4: bool, v6: bool| NftDrop {
                family: family.clone(),
                table: table.clone(),
                chain: chain.clone(),
                handle: Some(*handle),
                v4,
                v6,
                hook: c.hook.clone(),
            };
            match (verdict, vrrp) {
                (Verdict::Drop, Some((true, v4, v6))) => {
                    let (a, b) = (v4 && open4, v6 && open6);
                    if a || b {
                        out.push(drop(a, b));
                    }
                    if !other {
                        open4 &= !v4;
                        open6 &= !v6;
                    }
                }
                (Verdict::Accept, Some((true, v4, v6))) => {
                    open4 &= !v4;
                    open6 &= !v6;
                }
                (Verdict::Drop, None) if !other && watched => {
                    if open4 || open6 {
                        out.push(drop(open4, open6));
                    }
                    open4 = false;
                    open6 = false;
                }
                (Verdict::Accept, None) if !other => {
                    open4 = false;
                    open6 = false;
                }
                _ => {}
            }
        }
        if watched && c.policy_drop && (open4 || open6) {
            out.push(NftDrop {
                family,
                table,
                chain,
                handle: None,
                v4: open4,
                v6: open6,
                hook: c.hook.clone(),
            });
        }
    }
    out
}

/// `nft -a list ruleset` text: (family, table, chain, handle) -> rule text.
pub fn nft_rule_texts(text: &str) -> HashMap<(String, String, String, u64), String> {
    let mut out = HashMap::new();
    let (mut fam, mut table, mut chain) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("table ") {
            let mut p = rest.split_whitespace();
            fam = p.next().unwrap_or_default().to_string();
            table = p.next().unwrap_or_default().to_string();
        } else if let Some(rest) = t.strip_prefix("chain ") {
            chain = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        } else if let Some((rule, h)) = t.rsplit_once(" # handle ") {
            if let Ok(h) = h.trim().parse::<u64>() {
                out.insert(
                    (fam.clone(), table.clone(), chain.clone(), h),
                    rule.trim().to_string(),
                );
            }
        }
    }
    out
}

fn accept_rule(family: &str, v4: bool, v6: bool) -> &'static str {
    match family {
        "ip" => "ip protocol vrrp accept",
        "ip6" => "ip6 nexthdr vrrp accept",
        _ if v4 && !v6 => "ip protocol vrrp accept",
        _ if v6 && !v4 => "ip6 nexthdr vrrp accept",
        _ => "meta l4proto vrrp accept",
    }
}

async fn run_nft(args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("nft")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "nft did not answer within 10 s".to_string())?
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) async fn firewall_section(config: &Config) -> Section {
    let mut s = Section {
        title: "Firewall".into(),
        items: vec![],
    };
    let uses_v4 = config.instances.iter().any(|i| !i.is_v6());
    let uses_v6 = config.instances.iter().any(|i| i.is_v6());
    let json = match run_nft(&["-j", "list", "ruleset"]).await {
        Ok(j) => j,
        Err(e) if e.contains("No such file") || e.contains("not found") => {
            s.items.push(item(
                Mark::Info,
                "nft is not installed: nftables rules not checked (check iptables by hand: `iptables -S | grep -E 'vrrp|112'`)",
            ));
            return s;
        }
        Err(e) => {
            s.items.push(warn(
                format!("cannot list nftables rules: {e}"),
                &["run doctor as root"],
            ));
            return s;
        }
    };
    let ruleset: Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => {
            s.items.push(warn(
                format!("cannot read `nft -j list ruleset` output: {e}"),
                &[],
            ));
            return s;
        }
    };
    let texts = run_nft(&["-a", "list", "ruleset"])
        .await
        .map(|t| nft_rule_texts(&t))
        .unwrap_or_default();
    let drops: Vec<NftDrop> = nft_drops(&ruleset)
        .into_iter()
        .filter(|d| (d.v4 && uses_v4) || (d.v6 && uses_v6))
        .collect();
    if drops.is_empty() {
        s.items.push(item(
            Mark::Ok,
            "no nftables rule or policy drops VRRP (IP protocol 112)",
        ));
        return s;
    }
    for d in drops {
        let fams = match (d.v4, d.v6) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4",
            _ => "IPv6",
        };
        let accept = accept_rule(&d.family, d.v4, d.v6);
        match d.handle {
            Some(h) => {
                let text = texts
                    .get(&(d.family.clone(), d.table.clone(), d.chain.clone(), h))
                    .map(|t| format!(": `{t}`"))
                    .unwrap_or_default();
                s.items.push(Item {
                    mark: Mark::Fail,
                    text: format!(
                        "nftables drops VRRP (IP protocol 112, {fams}): table {} {} chain {} rule handle {h}{text}",
                        d.family, d.table, d.chain
                    ),
                    fix: vec![
                        format!(
                            "accept VRRP before it: nft insert rule {} {} {} position {h} {accept}",
                            d.family, d.table, d.chain
                        ),
                        format!(
                            "or remove it: nft delete rule {} {} {} handle {h}; then persist in /etc/nftables.conf",
                            d.family, d.table, d.chain
                        ),
                    ],
                });
            }
            None => s.items.push(Item {
                mark: Mark::Fail,
                text: format!(
                    "nftables drops VRRP (IP protocol 112, {fams}): chain {} {} {} (hook {}) has policy drop and no rule accepting VRRP",
                    d.family,
                    d.table,
                    d.chain,
                    d.hook.as_deref().unwrap_or("?")
                ),
                fix: vec![format!(
                    "nft insert rule {} {} {} {accept}; then persist in /etc/nftables.conf",
                    d.family, d.table, d.chain
                )],
            }),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruleset(rules: &str) -> Value {
        serde_json::from_str(&format!(r#"{{"nftables": [{rules}]}}"#)).unwrap()
    }

    const CHAIN: &str = r#"{"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}"#;
    const CHAIN_DROP: &str = r#"{"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}"#;
    const VRRP_DROP: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "vrrp"}}, {"drop": null}]}}"#;
    const VRRP_ACCEPT: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 3, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": 112}}, {"accept": null}]}}"#;
    const SSH_ACCEPT: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}"#;
    const NOT_VRRP_DROP: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 5, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "vrrp"}}, {"drop": null}]}}"#;
    const SET_REJECT: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "nexthdr"}}, "right": {"set": ["tcp", "vrrp"]}}}, {"reject": {"type": "icmpx", "expr": "port-unreachable"}}]}}"#;

    #[test]
    fn a_vrrp_drop_rule_is_found() {
        let d = nft_drops(&ruleset(&format!("{CHAIN}, {VRRP_DROP}")));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].handle, Some(2));
        assert!(d[0].v4 && !d[0].v6);
        assert_eq!(
            (
                d[0].family.as_str(),
                d[0].table.as_str(),
                d[0].chain.as_str()
            ),
            ("inet", "t", "in")
        );
    }

    #[test]
    fn an_earlier_accept_wins() {
        assert!(nft_drops(&ruleset(&format!("{CHAIN}, {VRRP_ACCEPT}, {VRRP_DROP}"))).is_empty());
        assert!(nft_drops(&ruleset(&format!("{CHAIN_DROP}, {VRRP_ACCEPT}"))).is_empty());
    }

    #[test]
    fn policy_drop_without_vrrp_accept_is_found() {
        let d = nft_drops(&ruleset(&format!("{CHAIN_DROP}, {SSH_ACCEPT}")));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].handle, None);
        assert!(d[0].v4 && d[0].v6);
    }

    #[test]
    fn negated_and_set_matches() {
        assert!(nft_drops(&ruleset(&format!("{CHAIN}, {NOT_VRRP_DROP}"))).is_empty());
        let d = nft_drops(&ruleset(&format!("{CHAIN}, {SET_REJECT}")));
        assert_eq!(d.len(), 1);
        assert!(!d[0].v4 && d[0].v6);
    }

    #[test]
    fn rule_texts_by_handle() {
        let text = "table inet t { # handle 1\n\tchain in { # handle 1\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip protocol vrrp drop # handle 2\n\t}\n}\n";
        let t = nft_rule_texts(text);
        assert_eq!(
            t.get(&("inet".into(), "t".into(), "in".into(), 2))
                .map(String::as_str),
            Some("ip protocol vrrp drop")
        );
    }
}
