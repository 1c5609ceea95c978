//! keepalived's words and blocks: splits the logical lines of [`super::reader`] into words (whitespace
//! separates them; `"` and `'` quote, with the shell-like escapes keepalived knows; `{` and `}` are words
//! of their own) and nests them into statements, each with its block (`keyword args { ... }`, the `{`
//! on the same line or the next), every one with its file:line.

use super::reader::{ImportError, Line, Pos};

/// One statement: `words` (the keyword first) and, when it opens one, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub pos: Pos,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The word after the keyword, if any.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i + 1).map(String::as_str)
    }

    /// The statements of the block (none when there is no block).
    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    End,
}

const MAX_NESTING: usize = 64;

/// The statements of the whole configuration.
pub fn parse(lines: &[Line]) -> Result<Vec<Node>, ImportError> {
    let mut toks: Vec<(Tok, Pos)> = Vec::new();
    for line in lines {
        tokenize(&line.text, &line.pos, &mut toks)?;
        toks.push((Tok::End, line.pos.clone()));
    }
    let mut at = 0;
    let nodes = block(&toks, &mut at, None, 0)?;
    Ok(nodes)
}

fn block(
    toks: &[(Tok, Pos)],
    at: &mut usize,
    opened: Option<&Pos>,
    depth: usize,
) -> Result<Vec<Node>, ImportError> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut start: Option<Pos> = None;
    while *at < toks.len() {
        let (tok, pos) = &toks[*at];
        *at += 1;
        match tok {
            Tok::Word(w) => {
                if words.is_empty() {
                    start = Some(pos.clone());
                }
                words.push(w.clone());
            }
            Tok::End => flush(&mut nodes, &mut words, &mut start),
            Tok::Open => {
                if depth + 1 > MAX_NESTING {
                    return Err(ImportError::at(
                        pos,
                        "blocks nested too deeply",
                        "a `}` is missing somewhere above",
                    ));
                }
                let children = block(toks, at, Some(pos), depth + 1)?;
                if words.is_empty() {
                    // `{` on the line after its keyword.
                    match nodes.last_mut() {
                        Some(prev) if prev.block.is_none() => prev.block = Some(children),
                        _ => {
                            return Err(ImportError::at(
                                pos,
                                "a `{` that belongs to no keyword",
                                "put the keyword before it, e.g. `virtual_ipaddress {`",
                            ))
                        }
                    }
                } else {
                    nodes.push(Node {
                        pos: start.take().unwrap_or_else(|| pos.clone()),
                        words: std::mem::take(&mut words),
                        block: Some(children),
                    });
                }
            }
            Tok::Close => {
                flush(&mut nodes, &mut words, &mut start);
                return match opened {
                    Some(_) => Ok(nodes),
                    None => Err(ImportError::at(
                        pos,
                        "a `}` that closes no block",
                        "remove it, or look for a `{` missing above",
                    )),
                };
            }
        }
    }
    flush(&mut nodes, &mut words, &mut start);
    match opened {
        Some(open) => Err(ImportError::at(
            open,
            "this `{` is never closed",
            "add the matching `}`; keepalived refuses a block that runs to the end of the file",
        )),
        None => Ok(nodes),
    }
}

fn flush(nodes: &mut Vec<Node>, words: &mut Vec<String>, start: &mut Option<Pos>) {
    if let Some(pos) = start.take() {
        nodes.push(Node {
            pos,
            words: std::mem::take(words),
            block: None,
        });
    }
}

fn tokenize(text: &str, pos: &Pos, out: &mut Vec<(Tok, Pos)>) -> Result<(), ImportError> {
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' {
                escape(&mut chars, &mut word);
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                in_word = true;
            }
            '{' | '}' => {
                if in_word {
                    out.push((Tok::Word(std::mem::take(&mut word)), pos.clone()));
                    in_word = false;
                }
                out.push((if c == '{' { Tok::Open } else { Tok::Close }, pos.clone()));
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push((Tok::Word(std::mem::take(&mut word)), pos.clone()));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(ImportError::at(
            pos,
            format!("a string opened with {q} is never closed"),
            format!("add the closing {q} on the same line"),
        ));
    }
    if in_word {
        out.push((Tok::Word(word), pos.clone()));
    }
    Ok(())
}

/// The character after a `\` in a quoted string: \a \b \E \f \n \r \t \v \nnn \xXX \cC, else itself.
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, word: &mut String) {
    let Some(c) = chars.next() else {
        word.push('\\');
        return;
    };
    let simple = match c {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'E' => Some('\x1b'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => None,
    };
    if let Some(s) = simple {
        word.push(s);
        return;
    }
    match c {
        '0'..='7' => {
            let mut v = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        v = v * 8 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            word.push(char::from_u32(v & 0xff).unwrap_or('?'));
        }
        'x' => {
            let mut v = 0;
            let mut n = 0;
            while n < 2 {
                match chars.peek().and_then(|d| d.to_digit(16)) {
                    Some(d) => {
                        v = v * 16 + d;
                        chars.next();
                        n += 1;
                    }
                    None => break,
                }
            }
            if n == 0 {
                word.push('x');
            } else {
                word.push(char::from_u32(v).unwrap_or('?'));
            }
        }
        'c' => match chars.next() {
            Some(k) => {
                word.push(char::from_u32((k.to_ascii_uppercase() as u32) ^ 0x40).unwrap_or('?'))
            }
            None => word.push('c'),
        },
        other => word.push(other),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::import::reader::read_text;

    fn tree(text: &str) -> Result<Vec<Node>, ImportError> {
        parse(&read_text(Path::new("k.conf"), text, "h")?)
    }

    #[test]
    fn blocks_nest_with_the_brace_on_either_line() {
        let nodes = tree("vrrp_instance VI_1 {\n interface eth0\n virtual_ipaddress\n {\n 1.2.3.4/24 dev eth0\n }\n}\nglobal_defs { router_id x }\n").unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].words, ["vrrp_instance", "VI_1"]);
        let kids = nodes[0].children();
        assert_eq!(kids[0].words, ["interface", "eth0"]);
        assert_eq!(kids[1].keyword(), "virtual_ipaddress");
        assert_eq!(kids[1].children()[0].words, ["1.2.3.4/24", "dev", "eth0"]);
        assert_eq!(kids[1].children()[0].pos.line, 5);
        assert_eq!(nodes[1].children()[0].words, ["router_id", "x"]);
    }

    #[test]
    fn quotes_join_words_and_escapes_are_read() {
        let nodes = tree("script \"/bin/x 'a b'\" ab\"c d\"e '\\x69\\\\'\n").unwrap();
        assert_eq!(nodes[0].words, ["script", "/bin/x 'a b'", "abc de", "i\\"]);
    }

    #[test]
    fn unbalanced_input_is_refused_with_the_line() {
        let err = tree("a {\n b\n").unwrap_err();
        assert_eq!(err.pos.unwrap().line, 1);
        assert!(err.what.contains("never closed"));
        let err = tree("a\n}\n").unwrap_err();
        assert_eq!(err.pos.unwrap().line, 2);
        let err = tree("x \"open\n").unwrap_err();
        assert!(err.what.contains("never closed"));
        let err = tree("{\n").unwrap_err();
        assert!(err.what.contains("belongs to no keyword") || err.what.contains("never closed"));
    }
}
