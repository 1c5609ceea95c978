//! Stage 0: every key of every table, so that all unknown keys are reported (with the hints of
//! [`super::keys`]), not only the first; then blanked out of the text so the rest can still be checked.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::hints::unknown_key_hint;
use super::keys::{Table, ROOT};

// Tables that only exist through a dotted key or a deeper header (`a.b = 1`, `[x.y]` without `[x]`) have no
// position in toml, and `Spanned<T>` fails on them outright. The walk must read any file, so it asks for a
// span the way `Spanned` does (serde_spanned's protocol, stable across toml 0.8) and accepts a plain value
// when the deserializer has none to give.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

/// Any TOML value, with the position of each key and value where toml knows it (only tables and arrays
/// are looked into).
struct Node {
    span: Option<Range<usize>>,
    kind: NodeKind,
}

enum NodeKind {
    Table(Vec<(Key, Node)>),
    Array(Vec<Node>),
    Scalar,
}

struct Key {
    span: Option<Range<usize>>,
    name: String,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key {
                    span: None,
                    name: v.to_string(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
                let (span, first) = read_span(&mut map)?;
                match (span, first) {
                    (Some(span), None) => Ok(Key {
                        span: Some(span),
                        name: map.next_value::<String>()?,
                    }),
                    _ => Err(de::Error::custom("a key that is a table")),
                }
            }
        }
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, V)
    }
}

/// Reads serde_spanned's start and end fields if the map begins with them: `(Some(span), None)`, with the
/// value next. Otherwise `(None, Some(first key))` of an ordinary table.
#[allow(clippy::type_complexity)]
fn read_span<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<(Option<Range<usize>>, Option<Option<Key>>), A::Error> {
    let Some(first) = map.next_key::<Key>()? else {
        return Ok((None, Some(None)));
    };
    if first.name != SPANNED_START {
        return Ok((None, Some(Some(first))));
    }
    let start: usize = map.next_value()?;
    let _end_key = map.next_key::<Key>()?;
    let end: usize = map.next_value()?;
    let _value_key = map.next_key::<Key>()?;
    Ok((Some(start..end), None))
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node {
            span: None,
            kind: NodeKind::Array(items),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let first = match read_span(&mut map)? {
            (Some(span), _) => {
                let mut node = map.next_value::<Unspanned>()?.0;
                node.span = Some(span);
                return Ok(node);
            }
            (None, first) => first.flatten(),
        };
        let mut entries = Vec::new();
        let mut next = first;
        while let Some(key) = next {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
            next = map.next_key::<Key>()?;
        }
        Ok(Node {
            span: None,
            kind: NodeKind::Table(entries),
        })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

/// The value inside a span: asking for a span again here would recurse forever.
struct Unspanned(Node);

impl<'de> Deserialize<'de> for Unspanned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor).map(Unspanned)
    }
}

impl Node {
    fn scalar() -> Node {
        Node {
            span: None,
            kind: NodeKind::Scalar,
        }
    }
}

pub(super) struct UnknownKey {
    pub(super) key_span: Range<usize>,
    value_span: Option<Range<usize>>,
    pub(super) what: String,
    pub(super) hint: String,
}

/// Every key of `text` that no table knows, or `None` when `text` is not TOML (stage 1 then reports the
/// syntax error with its position).
pub(super) fn unknown_keys(text: &str) -> Option<Vec<UnknownKey>> {
    let tree = toml::from_str::<Node>(text).ok()?;
    let mut unknown = Vec::new();
    walk_keys(&tree, &ROOT, 0..0, &mut unknown);
    Some(unknown)
}

/// Collects every key that `table` does not know, recursing into the tables floatip defines. `around` is
/// the best position known for the table itself, for keys toml has no position for.
fn walk_keys(node: &Node, table: &Table, around: Range<usize>, out: &mut Vec<UnknownKey>) {
    let NodeKind::Table(entries) = &node.kind else {
        return;
    };
    let around = node.span.clone().unwrap_or(around);
    for (key, value) in entries {
        let name = key.name.as_str();
        let key_span = key
            .span
            .clone()
            .or_else(|| value.span.clone())
            .unwrap_or_else(|| around.clone());
        let Some(def) = table.key(name) else {
            out.push(UnknownKey {
                key_span,
                value_span: value.span.clone(),
                what: format!("unknown key `{name}` in {}", table.name),
                hint: unknown_key_hint(name, table),
            });
            continue;
        };
        if let Some(child) = def.table {
            match &value.kind {
                NodeKind::Array(items) => {
                    for item in items {
                        walk_keys(item, child, key_span.clone(), out);
                    }
                }
                _ => walk_keys(value, child, key_span, out),
            }
        }
    }
}

/// Replaces `key = value` with spaces (newlines kept, multi-byte characters as as many spaces, so no
/// position moves), with its comma inside an inline table. Only plain pairs are touched; anything else (a
/// table header) stays, and stage 1 stops there, after stage 0 has listed it.
pub(super) fn blank_pair(text: &mut String, key: &UnknownKey) {
    let Some(value_span) = &key.value_span else {
        return;
    };
    let (mut start, mut end) = (key.key_span.start, value_span.end);
    if value_span.start < key.key_span.end || end > text.len() {
        return;
    }
    if text[key.key_span.end..value_span.start].trim() != "=" {
        return;
    }
    // A dotted key (`notify.mastr = ...`): its position is the last part; blank the whole key.
    loop {
        let before = text[..start].trim_end_matches([' ', '\t']);
        let Some(parent) = before.strip_suffix('.') else {
            break;
        };
        let parent = parent.trim_end_matches([' ', '\t']);
        let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let segment_start = parent.rfind(|c: char| !bare(c)).map_or(0, |i| i + 1);
        if segment_start == parent.len() {
            return; // a quoted part: leave it to stage 1
        }
        start = segment_start;
    }
    let after = text[end..].len() - text[end..].trim_start_matches([' ', '\t']).len();
    if text[end + after..].starts_with(',') {
        end += after + 1;
    } else {
        let before = text[..start].trim_end_matches([' ', '\t']);
        if before.ends_with(',') {
            start = before.len() - 1;
        }
    }
    let blanked: String = text[start..end]
        .chars()
        .map(|c| match c {
            '\n' | '\r' => c.to_string(),
            _ => " ".repeat(c.len_utf8()),
        })
        .collect();
    text.replace_range(start..end, &blanked);
}
