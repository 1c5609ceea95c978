//! Stage 0: every key of every table, so that all unknown keys are reported (with the hints of
//! [`super::hints`]), not only the first; then blanked out of the text so the rest can still be checked.

use std::ops::Range;

use toml_edit::{ArrayOfTables, ImDocument, Item, Key, Value};

use super::hints::unknown_key_hint;
use super::keys::{Table, ROOT};

/// A key that no table knows, where it is, and what to say about it.
pub(super) struct UnknownKey {
    pub(super) key_span: Range<usize>,
    value_span: Option<Range<usize>>,
    pub(super) what: String,
    pub(super) hint: String,
}

/// Every key of `text` that no table knows, or `None` when `text` is not TOML (stage 1 then reports the
/// syntax error with its position). The document is toml_edit's, the parser under toml's serde, so the
/// positions are the ones stage 1 reports. Tables that only exist through a dotted key or a deeper header
/// (`a.b = 1`, `[x.y]` without `[x]`) have no position of their own: their keys do.
pub(super) fn unknown_keys(text: &str) -> Option<Vec<UnknownKey>> {
    let doc = ImDocument::parse(text).ok()?;
    let mut unknown = Vec::new();
    walk(Node::Table(doc.as_table()), &ROOT, 0..0, &mut unknown);
    Some(unknown)
}

/// A value of the document: a `[header]` table, an array of them, or a value (inline tables included).
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a toml_edit::Table),
    Tables(&'a ArrayOfTables),
    Value(&'a Value),
    None,
}

impl<'a> Node<'a> {
    fn of(item: &'a Item) -> Node<'a> {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(v) => Node::Value(v),
            Item::None => Node::None,
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Tables(a) => a.span(),
            Node::Value(v) => v.span(),
            Node::None => None,
        }
    }

    /// The keys of a table, in file order (nothing for any other value).
    fn entries(self) -> Vec<(Option<&'a Key>, &'a str, Node<'a>)> {
        match self {
            Node::Table(t) => t
                .iter()
                .map(|(name, item)| (t.key(name), name, Node::of(item)))
                .collect(),
            Node::Value(Value::InlineTable(t)) => t
                .iter()
                .map(|(name, value)| (t.key(name), name, Node::Value(value)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The elements of an array (of tables or of values); `None` for anything else.
    fn elements(self) -> Option<Vec<Node<'a>>> {
        match self {
            Node::Tables(a) => Some(a.iter().map(Node::Table).collect()),
            Node::Value(Value::Array(a)) => Some(a.iter().map(Node::Value).collect()),
            _ => None,
        }
    }
}

/// Collects every key that `table` does not know, recursing into the tables floatip defines. `around` is
/// the best position known for the table itself, for keys toml has no position for.
fn walk(node: Node<'_>, table: &Table, around: Range<usize>, out: &mut Vec<UnknownKey>) {
    let around = node.span().unwrap_or(around);
    for (key, name, value) in node.entries() {
        let key_span = key
            .and_then(Key::span)
            .or_else(|| value.span())
            .unwrap_or_else(|| around.clone());
        let Some(def) = table.key(name) else {
            out.push(UnknownKey {
                key_span,
                value_span: value.span(),
                what: format!("unknown key `{name}` in {}", table.name),
                hint: unknown_key_hint(name, table),
            });
            continue;
        };
        let Some(child) = def.table else {
            continue;
        };
        match value.elements() {
            Some(items) => {
                for item in items {
                    walk(item, child, key_span.clone(), out);
                }
            }
            None => walk(value, child, key_span, out),
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
