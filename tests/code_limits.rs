//! Guardrails on the shape of the code: no source file under `src/` with
//! more than [`MAX_FILE_LINES`] lines outside its tests, and no function
//! longer than [`MAX_FN_LINES`] lines. A file or function that grows past
//! them has more than one job; split it by job (see ARCHITECTURE.md)
//! rather than raising the limits.
//!
//! The scan is a small Rust lexer (comments, strings, raw strings, char
//! literals versus lifetimes) that matches braces, not a parser: enough to
//! find where a function's body ends.

use std::fs;
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 1200;
const MAX_FN_LINES: usize = 150;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            (rel, text)
        })
        .collect()
}

/// Whether a whole file is tests (a `*_tests.rs` file, or one under a
/// `tests/` folder inside `src/`).
fn is_test_file(path: &str) -> bool {
    path.ends_with("_tests.rs") || path.ends_with("/tests.rs") || path.contains("/tests/")
}

/// Lines before the file's `#[cfg(test)]` module (all of them if none).
fn non_test_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    for (i, pair) in lines.windows(2).enumerate() {
        if pair[0].trim() == "#[cfg(test)]" && !pair[0].starts_with(' ') {
            // An inline test module (`mod tests {`); a declaration of one
            // in its own file (`mod tests;`) can sit anywhere and ends
            // nothing.
            let next = pair[1].trim();
            if next.starts_with("mod ") && next.ends_with('{') {
                return i;
            }
        }
    }
    lines.len()
}

/// The text with comments, string and char literals blanked out (newlines
/// kept), so braces and `fn` can be found by plain search.
fn code_only(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if (rest.starts_with(b"r#") || rest.starts_with(b"r\"") || rest.starts_with(b"br"))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string: r"..", r#".."#, br#".."#.
            let start = i;
            let mut j = i + if rest.starts_with(b"br") { 2 } else { 1 };
            let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
            j += hashes;
            if b.get(j) != Some(&b'"') {
                i += 1;
                continue;
            }
            j += 1;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            j = (j + close.len()).min(b.len());
            blank(&mut out, start, j);
            i = j;
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let j = (j + 1).min(b.len());
            blank(&mut out, i, j);
            i = j;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '{') or a lifetime ('a).
            let end = if rest.get(1) == Some(&b'\\') {
                rest.iter()
                    .skip(2)
                    .position(|&c| c == b'\'')
                    .map(|n| i + n + 3)
            } else if rest.get(2) == Some(&b'\'') {
                Some(i + 3)
            } else {
                // Multi-byte UTF-8 char literal, or a lifetime.
                let len = std::str::from_utf8(&b[i + 1..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 2 + len)
            };
            match end {
                Some(e) => {
                    blank(&mut out, i, e.min(b.len()));
                    i = e;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out
}

/// (first line, line count, name) of every function with a body.
fn functions(text: &str) -> Vec<(usize, usize, String)> {
    let code = code_only(text);
    let line_of = |pos: usize| code[..pos].iter().filter(|&&c| c == b'\n').count() + 1;
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(n) = find_word(&code, i, b"fn") {
        i = n + 2;
        let name: String = code[i..]
            .iter()
            .skip_while(|c| c.is_ascii_whitespace())
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .map(|&c| char::from(c))
            .collect();
        if name.is_empty() {
            continue; // `fn(` pointer types
        }
        // The body starts at the first `{` before any `;` (a declaration
        // in a trait has none), skipping `<..>`/`(..)` nesting is not
        // needed: neither contains `{` or `;` outside closures in bounds.
        let Some(open) = code[i..]
            .iter()
            .position(|&c| c == b'{' || c == b';')
            .map(|p| i + p)
        else {
            break;
        };
        if code[open] == b';' {
            continue;
        }
        let mut depth = 0usize;
        let mut close = open;
        for (k, &c) in code.iter().enumerate().skip(open) {
            if c == b'{' {
                depth += 1;
            } else if c == b'}' {
                depth -= 1;
                if depth == 0 {
                    close = k;
                    break;
                }
            }
        }
        let first = line_of(n);
        found.push((first, line_of(close) - first + 1, name));
    }
    found
}

fn find_word(code: &[u8], from: usize, word: &[u8]) -> Option<usize> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    (from..code.len().saturating_sub(word.len() - 1)).find(|&i| {
        code[i..].starts_with(word)
            && (i == 0 || !ident(code[i - 1]))
            && code.get(i + word.len()).is_none_or(|&c| !ident(c))
    })
}

#[test]
fn no_source_file_has_more_than_1200_lines_outside_its_tests() {
    let too_long: Vec<String> = sources()
        .iter()
        .filter(|(path, _)| !is_test_file(path))
        .map(|(path, text)| (path, non_test_lines(text)))
        .filter(|&(_, n)| n > MAX_FILE_LINES)
        .map(|(path, n)| format!("{path}: {n} lines"))
        .collect();
    assert!(
        too_long.is_empty(),
        "over {MAX_FILE_LINES} non-test lines (split by job):\n{}",
        too_long.join("\n")
    );
}

#[test]
fn no_function_is_longer_than_150_lines() {
    let mut too_long = Vec::new();
    for (path, text) in sources() {
        for (line, n, name) in functions(&text) {
            if n > MAX_FN_LINES {
                too_long.push(format!("{path}:{line}: fn {name}: {n} lines"));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn the_scanner_sees_through_strings_comments_and_chars() {
    let text = r##"
fn a() {
    let s = "}}} fn fake() {";
    let r = r#"{ "quoted" }"#;
    let c = '{';
    let e = '\'';
    // }
    /* { /* nested } */ } */
    let l: &'static str = "x";
}
fn b<'a>(x: &'a str) -> &'a str { x }
trait T { fn decl(&self); }
"##;
    let f = functions(text);
    let names: Vec<&str> = f.iter().map(|(_, _, n)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!((f[0].0, f[0].1), (2, 9));
    assert_eq!((f[1].0, f[1].1), (11, 1));
    assert_eq!(non_test_lines("a\nb\n#[cfg(test)]\nmod tests {\n}\n"), 2);
    assert_eq!(non_test_lines("a\n    #[cfg(test)]\n    mod inner {}\n"), 3);
    assert_eq!(
        non_test_lines("a\n#[cfg(test)]\nmod tests;\nb\nc\n"),
        5,
        "an outlined test module does not end the code"
    );
}
