//! `[[group]]`: instances that are MASTER on one host together (keepalived's `vrrp_sync_group`). A
//! group's name is an instance-like name no instance uses; its members are instances of the same file,
//! at least two, each in one group at most.

use std::collections::HashMap;

use toml::Spanned;

use super::{is_valid_name, Facts};
use crate::config::error::{position, Cx};
use crate::config::model::GroupConfig;
use crate::config::raw::RawGroup;

/// Every `[[group]]`, checked against the instances' names (`facts`); `None` when any is invalid.
pub(super) fn validate_groups(
    cx: &mut Cx<'_>,
    raw: &[Spanned<RawGroup>],
    facts: &[Facts],
) -> Option<Vec<GroupConfig>> {
    let instances: Vec<&str> = facts
        .iter()
        .filter_map(|f| f.name.as_ref().map(|n| n.get_ref().as_str()))
        .collect();
    let mut names: HashMap<String, usize> = HashMap::new();
    // Instance name -> (group name, position of its mention there).
    let mut member_of: HashMap<String, (String, usize)> = HashMap::new();
    let mut groups = Vec::new();
    let mut ok = true;
    for spanned in raw {
        let g = spanned.get_ref();
        let name = match &g.name {
            None => {
                cx.missing(
                    spanned.span(),
                    "name",
                    "[[group]]",
                    "name = \"fileserver\" (shown in status, used by `floatip takeover NAME`)",
                );
                None
            }
            Some(n) if !is_valid_name(n.get_ref()) => {
                cx.at(
                    n.span(),
                    format!("group name \"{}\" is not a valid name", n.get_ref()),
                    "use 1-32 characters from a-z, 0-9, _ and -, e.g. name = \"fileserver\"",
                );
                None
            }
            Some(n) if instances.contains(&n.get_ref().as_str()) => {
                cx.at(
                    n.span(),
                    format!("group name \"{}\" is also an instance's name", n.get_ref()),
                    "commands like `floatip takeover NAME` take an instance or a group: give the group a name of its own, e.g. \"fileserver\"",
                );
                None
            }
            Some(n) => {
                if let Some(first) = names.get(n.get_ref()) {
                    let (line, _) = position(cx.text, *first);
                    cx.at(
                        n.span(),
                        format!(
                            "group name \"{}\" is already used (line {line})",
                            n.get_ref()
                        ),
                        "give each group its own name, or merge the two groups into one",
                    );
                    None
                } else {
                    names.insert(n.get_ref().clone(), n.span().start);
                    Some(n.get_ref().clone())
                }
            }
        };
        let label = name.clone().unwrap_or_else(|| "this group".to_string());
        let members = match &g.instances {
            None => {
                cx.missing(
                    spanned.span(),
                    "instances",
                    "[[group]]",
                    "instances = [\"files-v4\", \"files-v6\"]",
                );
                None
            }
            Some(list) => members(cx, list, &label, &instances, &mut member_of),
        };
        match (name, members) {
            (Some(name), Some(instances)) => groups.push(GroupConfig { name, instances }),
            _ => ok = false,
        }
    }
    ok.then_some(groups)
}

/// The `instances` of one group: known, not repeated, in no other group, at least two.
fn members(
    cx: &mut Cx<'_>,
    list: &Spanned<Vec<Spanned<String>>>,
    label: &str,
    instances: &[&str],
    member_of: &mut HashMap<String, (String, usize)>,
) -> Option<Vec<String>> {
    let mut ok = true;
    let mut out: Vec<String> = Vec::new();
    for m in list.get_ref() {
        let name = m.get_ref();
        if !instances.contains(&name.as_str()) {
            cx.at(
                m.span(),
                format!("group {label}: there is no instance named \"{name}\""),
                format!(
                    "list the names of [[instance]]s of this file; they are: {}",
                    instances.join(", ")
                ),
            );
            ok = false;
        } else if out.contains(name) {
            cx.at(
                m.span(),
                format!("group {label} lists \"{name}\" twice"),
                "remove the second mention",
            );
            ok = false;
        } else if let Some((other, at)) = member_of.get(name) {
            let (line, _) = position(cx.text, *at);
            cx.at(
                m.span(),
                format!("instance \"{name}\" is already in group {other} (line {line})"),
                "an instance lives on one host with one group: keep it in one group, or merge the groups",
            );
            ok = false;
        } else {
            member_of.insert(name.clone(), (label.to_string(), m.span().start));
            out.push(name.clone());
        }
    }
    if list.get_ref().len() < 2 {
        cx.at(
            list.span(),
            format!("group {label} has {} instance(s); a group needs at least 2", list.get_ref().len()),
            "list the instances that must be MASTER on the same host, e.g. instances = [\"files-v4\", \"files-v6\"]; an instance alone needs no group",
        );
        ok = false;
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse, ConfigError, GroupConfig};

    fn file(groups: &str) -> String {
        let mut s = String::new();
        for (name, vrid, vip) in [
            ("files-v4", 51, "192.0.2.97/24"),
            ("files-v6", 52, "2001:db8::97/64"),
            ("web", 53, "192.0.2.98/24"),
        ] {
            s.push_str(&format!(
                "[[instance]]\nname = \"{name}\"\ninterface = \"eth0\"\nvrid = {vrid}\naddresses = [\"{vip}\"]\n\n"
            ));
        }
        s + groups
    }

    fn refused(groups: &str) -> ConfigError {
        parse(&file(groups), Path::new("f.toml")).expect_err("refused")
    }

    #[test]
    fn a_group_of_two_instances_is_read() {
        let cfg = parse(
            &file("[[group]]\nname = \"fileserver\"\ninstances = [\"files-v4\", \"files-v6\"]\n"),
            Path::new("f.toml"),
        )
        .unwrap();
        assert_eq!(
            cfg.groups,
            vec![GroupConfig {
                name: "fileserver".into(),
                instances: vec!["files-v4".into(), "files-v6".into()],
            }]
        );
        assert!(parse(&file(""), Path::new("f.toml"))
            .unwrap()
            .groups
            .is_empty());
    }

    #[test]
    fn an_unknown_member_is_refused_with_its_line_and_the_names_there_are() {
        let e =
            refused("[[group]]\nname = \"fileserver\"\ninstances = [\"files-v4\", \"files-6\"]\n");
        let p = &e.problems[0];
        assert_eq!((p.line, p.column), (21, 26), "{e}");
        assert!(p.what.contains("no instance named \"files-6\""), "{e}");
        assert!(p.hint.contains("files-v4, files-v6, web"), "{e}");
    }

    #[test]
    fn bad_groups_are_refused_each_with_a_reason() {
        let cases = [
            (
                "name = \"files-v4\"\ninstances = [\"files-v4\", \"files-v6\"]",
                "also an instance's name",
            ),
            (
                "name = \"File Server\"\ninstances = [\"files-v4\", \"files-v6\"]",
                "not a valid name",
            ),
            (
                "name = \"g\"\ninstances = [\"files-v4\"]",
                "needs at least 2",
            ),
            (
                "name = \"g\"\ninstances = [\"files-v4\", \"files-v4\"]",
                "twice",
            ),
            ("instances = [\"files-v4\", \"files-v6\"]", "has no `name`"),
            ("name = \"g\"", "has no `instances`"),
            (
                "name = \"g\"\ninstances = [\"files-v4\", \"files-v6\"]\nmembers = 2",
                "unknown key `members`",
            ),
        ];
        for (body, want) in cases {
            let e = refused(&format!("[[group]]\n{body}\n"));
            assert!(e.to_string().contains(want), "{body}: {e}");
            assert!(e.problems.iter().all(|p| p.line > 0), "{e}");
            assert!(e.problems.iter().all(|p| !p.hint.is_empty()), "{e}");
        }
    }

    #[test]
    fn an_instance_in_two_groups_or_a_name_used_twice_is_refused() {
        let e = refused(
            "[[group]]\nname = \"a\"\ninstances = [\"files-v4\", \"files-v6\"]\n\n\
             [[group]]\nname = \"b\"\ninstances = [\"web\", \"files-v6\"]\n",
        );
        assert!(
            e.to_string()
                .contains("\"files-v6\" is already in group a (line 21)"),
            "{e}"
        );
        let e = refused(
            "[[group]]\nname = \"a\"\ninstances = [\"files-v4\", \"files-v6\"]\n\n\
             [[group]]\nname = \"a\"\ninstances = [\"web\", \"files-v4\"]\n",
        );
        assert!(
            e.to_string()
                .contains("group name \"a\" is already used (line 20)"),
            "{e}"
        );
    }
}
