//! `[[instance.track_file]]`: a file whose number, times a weight, moves the instance's priority
//! (keepalived's `track_file`). Owns: the path (absolute, once per instance), the weight's range, the
//! name (default: the file name), and the address owner's rule (its priority does not move: weight 0).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::is_valid_name;
use crate::config::error::Cx;
use crate::config::model::TrackFileConfig;
use crate::config::raw::{RawInstance, RawTrackFile};

/// Every `[[instance.track_file]]` of one instance; `None` entries were reported. `priority` is the
/// instance's (when valid), for the address owner's rule.
pub(super) fn validate_track_files(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    instance: &str,
    priority: Option<u8>,
    ok: &mut bool,
) -> Vec<TrackFileConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for spanned in &raw.track_file {
        let Some(tf) = validate_one(cx, spanned, instance, priority) else {
            *ok = false;
            continue;
        };
        let raw = spanned.get_ref();
        if !paths.insert(tf.path.clone()) {
            let span = raw.path.as_ref().map_or(spanned.span(), |p| p.span());
            cx.at(
                span,
                format!("instance {instance} tracks {} twice", tf.path.display()),
                "list each file once; to count it more, give it a larger weight",
            );
            *ok = false;
            continue;
        }
        if !names.insert(tf.name.clone()) {
            let span = raw
                .name
                .as_ref()
                .or(raw.path.as_ref())
                .map_or(spanned.span(), |n| n.span());
            cx.at(
                span,
                format!(
                    "instance {instance} has two track files named \"{}\"",
                    tf.name
                ),
                "give each track file its own name = \"...\" (status and logs show it)",
            );
            *ok = false;
            continue;
        }
        out.push(tf);
    }
    out
}

fn validate_one(
    cx: &mut Cx<'_>,
    spanned: &Spanned<RawTrackFile>,
    instance: &str,
    priority: Option<u8>,
) -> Option<TrackFileConfig> {
    let raw = spanned.get_ref();
    let path = match &raw.path {
        None => {
            cx.missing(
                spanned.span(),
                "path",
                &format!("a track_file of instance {instance}"),
                "path = \"/run/floatip/drain\"",
            );
            None
        }
        Some(p) => {
            let path = PathBuf::from(p.get_ref());
            if !path.is_absolute() || path.file_name().is_none() {
                cx.at(
                    p.span(),
                    format!(
                        "track_file path \"{}\" is not an absolute file path",
                        p.get_ref()
                    ),
                    "write the full path of the file, e.g. path = \"/run/floatip/drain\"",
                );
                None
            } else {
                Some(path)
            }
        }
    };
    let weight = match &raw.weight {
        None => Some(1),
        Some(w) => cx
            .int_in(
                w,
                "weight",
                -254..=254,
                "a track_file weight is -254 to 254 (the file's number times it is added to the priority); 0: any non-zero number is FAULT",
            )
            .map(|w| w as i32),
    };
    if let (Some(w), Some(255)) = (weight, priority) {
        if w != 0 {
            let span = raw.weight.as_ref().map_or(spanned.span(), |w| w.span());
            cx.at(
                span,
                format!("instance {instance} has priority 255 (address owner), so a track_file weight of {w} cannot move it"),
                "set weight = 0 (any non-zero number in the file is then FAULT), as keepalived requires for an address owner",
            );
            return None;
        }
    }
    let name = match &raw.name {
        Some(n) if !is_valid_name(n.get_ref()) => {
            cx.at(
                n.span(),
                format!("track_file name \"{}\" is not a valid name", n.get_ref()),
                "use 1-32 characters from a-z, 0-9, _ and -, e.g. name = \"drain\"",
            );
            None
        }
        Some(n) => Some(n.get_ref().clone()),
        None => path.as_deref().map(default_name),
    };
    Some(TrackFileConfig {
        name: name?,
        path: path?,
        weight: weight?,
    })
}

/// The file name, as the name when none is given ("drain" for "/run/floatip/drain").
fn default_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse, TrackFileConfig};

    const BASE: &str = "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\naddresses = [\"192.0.2.97/24\"]\n";

    fn files(extra: &str) -> Vec<TrackFileConfig> {
        let text = format!("{BASE}{extra}");
        parse(&text, Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .instances[0]
            .track_files
            .clone()
    }

    fn error(extra: &str) -> String {
        let text = format!("{BASE}{extra}");
        match parse(&text, Path::new("t.toml")) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_weight_1_and_the_file_name() {
        let f = files("[[instance.track_file]]\npath = \"/run/floatip/drain\"\n");
        assert_eq!(
            f,
            vec![TrackFileConfig {
                name: "drain".into(),
                path: "/run/floatip/drain".into(),
                weight: 1,
            }]
        );
        let f = files(
            "[[instance.track_file]]\npath = \"/run/a\"\nweight = -10\nname = \"maint\"\n[[instance.track_file]]\npath = \"/run/b\"\nweight = 0\n",
        );
        assert_eq!((f[0].name.as_str(), f[0].weight), ("maint", -10));
        assert_eq!((f[1].name.as_str(), f[1].weight), ("b", 0));
    }

    #[test]
    fn bad_track_files_are_refused_with_line_and_hint() {
        let e = error("[[instance.track_file]]\nweight = 2\n");
        assert!(e.contains("has no `path`"), "{e}");
        let e = error("[[instance.track_file]]\npath = \"drain\"\n");
        assert!(
            e.contains("t.toml:7") && e.contains("not an absolute file path"),
            "{e}"
        );
        let e = error("[[instance.track_file]]\npath = \"/run/drain\"\nweight = 300\n");
        assert!(
            e.contains("weight 300 is out of range") && e.contains("-254 to 254"),
            "{e}"
        );
        let e = error("[[instance.track_file]]\npath = \"/run/a\"\n[[instance.track_file]]\npath = \"/run/a\"\n");
        assert!(e.contains("tracks /run/a twice"), "{e}");
        let e = error("[[instance.track_file]]\npath = \"/run/a/x\"\n[[instance.track_file]]\npath = \"/run/b/x\"\n");
        assert!(e.contains("two track files named \"x\""), "{e}");
        let e = error("[[instance.track_file]]\npath = \"/run/a\"\nname = \"Bad Name\"\n");
        assert!(e.contains("not a valid name"), "{e}");
        let e = error("[[instance.track_file]]\npath = \"/run/a\"\nfile = \"/run/b\"\n");
        assert!(e.contains("unknown key `file`"), "{e}");
    }

    #[test]
    fn an_address_owner_takes_only_weight_0() {
        let owner = BASE.replace("vrid = 51\n", "vrid = 51\npriority = 255\n");
        let text = format!("{owner}[[instance.track_file]]\npath = \"/run/a\"\n");
        let e = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(
            e.contains("priority 255") && e.contains("weight = 0"),
            "{e}"
        );
        let text = format!("{owner}[[instance.track_file]]\npath = \"/run/a\"\nweight = 0\n");
        assert!(parse(&text, Path::new("t.toml")).is_ok());
    }
}
