//! The key reference of `docs/config.md`, generated from [`super::keys`]: each table between
//! `<!-- keys:begin TABLE -->` and `<!-- keys:end -->` is rewritten from the key definitions, the prose
//! around it is left alone. A test fails when the file differs; `FLOATIP_BLESS=1` makes it rewrite it.

use super::keys::{KeyDef, Table, CHECK, TABLES};

const BEGIN: &str = "<!-- keys:begin ";
const END: &str = "<!-- keys:end -->";
/// The marker suffix of the table of `[[instance.check]]` keys that belong to one kind.
const KINDS: &str = " kinds";

/// `doc` with every marked reference table regenerated, or what is wrong with its markers.
pub fn render_reference(doc: &str) -> Result<String, String> {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let close = after
            .find(" -->")
            .ok_or("a `<!-- keys:begin` marker is not closed with ` -->`")?;
        let id = &after[..close];
        let body = &after[close + " -->".len()..];
        let end = body
            .find(END)
            .ok_or_else(|| format!("`{BEGIN}{id} -->` has no `{END}` after it"))?;
        out.push_str(&rest[..start + BEGIN.len() + close + " -->".len()]);
        out.push('\n');
        out.push_str(&render_table(id)?);
        out.push_str(END);
        rest = &body[end + END.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The markdown table named by a marker: a table's name ("[daemon]"), or "[[instance.check]] kinds".
fn render_table(id: &str) -> Result<String, String> {
    let (name, by_kind) = match id.strip_suffix(KINDS) {
        Some(name) => (name, true),
        None => (id, false),
    };
    let table: &Table = TABLES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| format!("`{BEGIN}{id} -->` names no table of the config"))?;
    let mut s = String::new();
    if by_kind {
        if !std::ptr::eq(table, &CHECK) {
            return Err(format!("only {} has keys per kind", CHECK.name));
        }
        s.push_str("| Kind | Key | Type | Default | Range / rule | Meaning |\n");
        s.push_str("|---|---|---|---|---|---|\n");
        for kind in ["icmp", "tcp", "http", "exec", "process"] {
            for key in table.keys.iter().filter(|k| k.kinds.contains(&kind)) {
                s.push_str(&row([vec![format!("`{kind}`")], key_cells(key)].concat()));
            }
        }
    } else {
        s.push_str("| Key | Type | Default | Range / rule | Meaning |\n");
        s.push_str("|---|---|---|---|---|\n");
        for key in table.keys.iter().filter(|k| k.kinds.is_empty()) {
            s.push_str(&row(key_cells(key)));
        }
    }
    Ok(s)
}

/// A key's cells: name, type, default, range, meaning.
fn key_cells(key: &KeyDef) -> Vec<String> {
    let name = format!("`{}`", key.name);
    [name.as_str(), key.ty, key.default, key.range, key.doc]
        .map(String::from)
        .to_vec()
}

/// One markdown row; an empty cell is written `| |`.
fn row(cells: Vec<String>) -> String {
    let mut s = String::from("|");
    for cell in cells {
        if cell.is_empty() {
            s.push_str(" |");
        } else {
            s.push_str(&format!(" {cell} |"));
        }
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// To regenerate after changing a key in `keys.rs`:
    /// `FLOATIP_BLESS=1 cargo test -p floatip --lib config::reference`, then review the diff of docs/config.md.
    #[test]
    fn docs_config_md_key_tables_are_the_ones_keys_rs_defines() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
        let doc = std::fs::read_to_string(&path).expect("docs/config.md");
        let want = render_reference(&doc).unwrap_or_else(|e| panic!("docs/config.md: {e}"));
        for table in TABLES {
            assert!(
                doc.contains(&format!("{BEGIN}{} -->", table.name)),
                "docs/config.md has no `{BEGIN}{} -->` for the reference of {}",
                table.name,
                table.name
            );
        }
        if want == doc {
            return;
        }
        if std::env::var_os("FLOATIP_BLESS").is_some() {
            std::fs::write(&path, want).expect("write docs/config.md");
            return;
        }
        let first = doc
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or(0, |i| i + 1);
        panic!(
            "docs/config.md's key tables differ from src/config/keys.rs (first at line {first}); \
             regenerate them with `FLOATIP_BLESS=1 cargo test -p floatip --lib config::reference` \
             and review the diff"
        );
    }

    #[test]
    fn markers_that_name_no_table_are_refused() {
        assert!(render_reference("<!-- keys:begin [nope] -->\n<!-- keys:end -->").is_err());
        assert!(render_reference("<!-- keys:begin [daemon] -->\n").is_err());
        assert!(render_reference("<!-- keys:begin [daemon] kinds -->\n<!-- keys:end -->").is_err());
    }
}
