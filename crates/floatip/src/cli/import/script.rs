//! keepalived script strings to floatip argv arrays: keepalived splits a script on unquoted spaces
//! (single or double quotes group words) and finds a bare program name in PATH when it loads the
//! configuration; a script that needs a shell (pipes, redirections, variables, globs, `&&`) becomes
//! `["/bin/sh", "-c", "..."]`, which the caller marks with a comment.

use std::path::Path;

/// An argv, and whether it had to go through `/bin/sh -c` (then the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    pub argv: Vec<String>,
    pub via_shell: Option<&'static str>,
}

/// Directories searched for a bare program name, as keepalived's default PATH for scripts.
const PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Splits `script` as keepalived does; `exists` says whether a path is an executable file (a
/// parameter, so tests do not depend on the machine).
pub fn to_argv(script: &str, exists: &dyn Fn(&Path) -> bool) -> Argv {
    let shell = |why| Argv {
        argv: vec!["/bin/sh".into(), "-c".into(), script.trim().to_string()],
        via_shell: Some(why),
    };
    if script.chars().any(|c| {
        matches!(
            c,
            '|' | '&' | ';' | '<' | '>' | '$' | '`' | '*' | '?' | '(' | ')' | '\n'
        )
    }) {
        return shell("it uses shell syntax (pipes, redirections, variables, globs or lists)");
    }
    let Some(words) = split(script) else {
        return shell("its quotes do not pair up");
    };
    let Some(program) = words.first() else {
        return shell("it is empty");
    };
    if program.contains('=') || program.starts_with('~') {
        return shell("it starts with a variable assignment or ~");
    }
    if program.starts_with('/') {
        return Argv {
            argv: words,
            via_shell: None,
        };
    }
    match PATH
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| exists(p))
    {
        Some(found) => {
            let mut argv = words;
            argv[0] = found.display().to_string();
            Argv {
                argv,
                via_shell: None,
            }
        }
        None => {
            shell("its program is not in PATH on this host (the shell looks it up at run time)")
        }
    }
}

/// Words separated by unquoted whitespace; `'...'` and `"..."` group (the quotes removed).
fn split(script: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in script.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Whether `path` is an executable regular file on this host.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Argv {
        to_argv(s, &|p| p == Path::new("/usr/bin/pidof"))
    }

    #[test]
    fn words_split_on_unquoted_spaces() {
        let a = argv("/usr/local/bin/vrrp.sh  BACKUP   'VI 1'");
        assert_eq!(a.argv, ["/usr/local/bin/vrrp.sh", "BACKUP", "VI 1"]);
        assert_eq!(a.via_shell, None);
    }

    #[test]
    fn a_bare_program_is_found_in_path() {
        assert_eq!(argv("pidof haproxy").argv, ["/usr/bin/pidof", "haproxy"]);
        let a = argv("killall -0 haproxy");
        assert_eq!(a.argv, ["/bin/sh", "-c", "killall -0 haproxy"]);
        assert!(a.via_shell.is_some());
    }

    #[test]
    fn shell_syntax_goes_through_sh() {
        let a = argv("/bin/check | grep -q ok");
        assert_eq!(a.argv, ["/bin/sh", "-c", "/bin/check | grep -q ok"]);
        assert!(argv("/x > /dev/null").via_shell.is_some());
        assert!(argv("/x 'unclosed").via_shell.is_some());
    }
}
