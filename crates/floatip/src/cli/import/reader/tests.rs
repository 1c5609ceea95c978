//! The reader against keepalived's rules: comments, `@` lines, definitions, sequences, includes.

use super::*;

fn lines(text: &str, id: &str) -> Vec<String> {
    read_text(Path::new("/nonexistent/k.conf"), text, id)
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect()
}

#[test]
fn comments_start_anywhere_outside_quotes() {
    assert_eq!(
        lines("a b # c\n! whole\nx \"y # z\" ! w\n", "h"),
        ["a b", "x \"y # z\""]
    );
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let text = "@high priority 170\n@low priority 85\n@^high other 1\n";
    assert_eq!(lines(text, "high"), ["priority 170"]);
    assert_eq!(lines(text, "low"), ["priority 85", "other 1"]);
}

#[test]
fn definitions_substitute_at_use_time_recursively() {
    let text = "$BASE=10.2.${SUB}\n$SUB=0\n${BASE}.100/32\n$SUB=10\n${BASE}.100/32\n$UNDEF_x stays\n$P=5\npriority $P\n";
    assert_eq!(
        lines(text, "h"),
        [
            "10.2.0.100/32",
            "10.2.10.100/32",
            "$UNDEF_x stays",
            "priority 5"
        ]
    );
}

#[test]
fn multiline_definitions_expand_to_lines_that_may_be_conditional() {
    let text = "$I= \\\n  a ${N} { \\\n  @high b 1 \\\n  }\n$N=0\n$I\n";
    assert_eq!(lines(text, "high"), ["a 0 {", "b 1", "}"]);
    assert_eq!(lines(text, "low"), ["a 0 {", "}"]);
}

#[test]
fn definitions_inside_a_multiline_value_apply_to_the_lines_after_them() {
    // The man page's nested example, shortened: $RS_NUM changes between two uses of $RS.
    let text = "$RS= \\\n  real_server 10.0.${VS}.${RS_NUM} 80\n$VS_BODY= \\\n  vs ${VS} { \\\n  $RS_NUM=1 \\\n  $RS \\\n  $RS_NUM=2 \\\n  $RS \\\n  }\n$VS=0\n$VS_BODY\n";
    assert_eq!(
        lines(text, "h"),
        [
            "vs 0 {",
            "real_server 10.0.0.1 80",
            "real_server 10.0.0.2 80",
            "}"
        ]
    );
}

#[test]
fn sequences_and_lists_repeat_the_rest_of_the_line() {
    assert_eq!(
        lines("~SEQ(S, 0, 3) ip 10.0.${S}.1\n", "h"),
        ["ip 10.0.0.1", "ip 10.0.1.1", "ip 10.0.2.1", "ip 10.0.3.1"]
    );
    assert_eq!(
        lines("~SEQx(S, 0x90, 0x10, 0xc0) fe80::${S}\n", "h"),
        ["fe80::90", "fe80::a0", "fe80::b0", "fe80::c0"]
    );
    assert_eq!(lines("~SEQ(S, 3) x${S}\n", "h"), ["x1", "x2", "x3"]);
    assert_eq!(
        lines("~LST({A, B}, {10,1},{20,4}) 192.168.${A}.${B}\n", "h"),
        ["192.168.10.1", "192.168.20.4"]
    );
    assert_eq!(
        lines("~SEQ(A, 1, 2) ~SEQ(B, 1, 2) ${A}.${B}\n", "h"),
        ["1.1", "1.2", "2.1", "2.2"]
    );
}

#[test]
fn runaway_expansion_is_an_error_with_the_line() {
    let err = read_text(Path::new("k.conf"), "x\n$A=$A $A \n$A\n", "h").unwrap_err();
    assert_eq!(err.pos.unwrap().line, 3);
    let err = read_text(Path::new("k.conf"), "~SEQ(A, 0, 1, 99999999) x\n", "h").unwrap_err();
    assert_eq!(err.pos.unwrap().line, 1);
    let err = read_text(Path::new("k.conf"), "~SEQ(A, x) y\n", "h").unwrap_err();
    assert!(err.what.contains("~SEQ"), "{err}");
}

#[test]
fn includes_resolve_relative_to_the_including_file_with_globs() {
    let dir = std::env::temp_dir().join(format!("floatip-import-inc-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("conf.d/b.conf"), "b 2\ninclude ../c.inc\n").unwrap();
    std::fs::write(dir.join("conf.d/a.conf"), "a 1\n").unwrap();
    std::fs::write(dir.join("conf.d/skip.txt"), "no\n").unwrap();
    std::fs::write(dir.join("c.inc"), "c 3\n").unwrap();
    std::fs::write(
        dir.join("main.conf"),
        "top\ninclude conf.d/*.conf\ninclude missing/*.conf\n",
    )
    .unwrap();
    let got = read(&dir.join("main.conf"), "h").unwrap();
    let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["top", "a 1", "b 2", "c 3"]);
    assert!(got[3].pos.file.ends_with("c.inc"));
    assert_eq!(got[2].pos.line, 1);
    let err = read_text(&dir.join("main.conf"), "includea missing.conf\n", "h").unwrap_err();
    assert!(err.to_string().contains("main.conf:1"), "{err}");
    std::fs::write(dir.join("loop.conf"), "include loop.conf\n").unwrap();
    assert!(read(&dir.join("loop.conf"), "h")
        .unwrap_err()
        .what
        .contains("includes itself"));
    std::fs::remove_dir_all(&dir).unwrap();
}
