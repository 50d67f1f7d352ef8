//! Guardrails on the shape of the code: checks that read `src/` and fail
//! when a change breaks a rule of ARCHITECTURE.md, naming the file and line
//! that broke it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules form layers (ARCHITECTURE.md, "Layout and the
/// direction of dependencies"): a module may name a module in a lower layer
/// or, without a cycle, one in its own layer; never one above. `main.rs`
/// (above everything) and `lib.rs` (only `mod` lines) are not modules here.
#[test]
fn top_level_modules_form_a_dag_in_the_documented_direction() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = layering::edges(&src);
    let problems = layering::problems(&edges);
    assert!(
        problems.is_empty(),
        "the top-level modules break the layering of ARCHITECTURE.md:\n\n{}",
        problems.join("\n\n")
    );
}

/// Helpers of `top_level_modules_form_a_dag_in_the_documented_direction`.
mod layering {
    use super::*;

    /// Top layer first.
    pub const LAYERS: &[&[&str]] = &[
        // Shells and tools.
        &["server", "http", "cli"],
        // Parses TOML into the settings types the modules below define.
        &["config"],
        // Implements the storage interfaces verify/ and conference/ define.
        &["store"],
        // Domain logic, clock injected.
        &["ivr", "conference", "verify"],
        // Protocol and signal cores.
        &["sip", "media", "net", "fault"],
        // Helpers of the tests and benches (the test PRNG): used from any
        // layer's tests, so it may use nothing.
        &["testing"],
    ];

    /// Edges inside one layer that the architecture rules out even without
    /// a cycle.
    pub const FORBIDDEN_IN_LAYER: &[(&str, &str)] = &[
        // "server may use http, never the reverse".
        ("http", "server"),
    ];

    /// Where a reference was made: file (relative to the crate) and line.
    pub type Site = (PathBuf, usize);

    /// (from, to) -> every place `from` names `to`.
    pub type Edges = BTreeMap<(String, String), Vec<Site>>;

    pub fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    /// Every `crate::<module>` (and `crate::{a, b}` group member) named by
    /// each top-level module's files, outside comments; a `super::` chain
    /// that climbs to the crate root counts too.
    pub fn edges(src: &Path) -> Edges {
        let mut edges = Edges::new();
        let entries = std::fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if path.is_dir() {
                rust_files(&path, &mut files, &name);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                if stem != "main" && stem != "lib" {
                    files.push((stem.to_owned(), path.clone()));
                }
            }
        }
        let crate_dir = src.parent().unwrap_or(src);
        for (module, file) in files {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let shown = file.strip_prefix(crate_dir).unwrap_or(&file).to_path_buf();
            let depth = module_depth(src, &file);
            for (line, target) in references(&text, depth) {
                if target != module {
                    edges
                        .entry((module.clone(), target))
                        .or_default()
                        .push((shown.clone(), line));
                }
            }
        }
        edges
    }

    fn rust_files(dir: &Path, out: &mut Vec<(String, PathBuf)>, module: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out, module);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((module.to_owned(), path));
            }
        }
    }

    /// How many path segments below the crate root the file's module is:
    /// `src/fault.rs` and `src/verify/mod.rs` 1, `src/verify/otp.rs` 2.
    fn module_depth(src: &Path, file: &Path) -> usize {
        let rel = file.strip_prefix(src).unwrap_or(file);
        let parts = rel.components().count();
        if rel.file_name().is_some_and(|n| n == "mod.rs") {
            parts - 1
        } else {
            parts
        }
    }

    /// The text of a line before a `//` comment (one inside a string
    /// literal does not count).
    fn code_part(line: &str) -> &str {
        let bytes = line.as_bytes();
        let mut in_string = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_string => i += 1,
                b'"' => in_string = !in_string,
                b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                    return line.get(..i).unwrap_or(line);
                }
                _ => {}
            }
            i += 1;
        }
        line
    }

    fn is_ident(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }

    /// The identifier at the start of `s` (after whitespace).
    fn ident(s: &str) -> &str {
        let s = s.trim_start();
        let end = s.bytes().position(|b| !is_ident(b)).unwrap_or(s.len());
        s.get(..end).unwrap_or("")
    }

    /// (line, top-level module) for every reference in a file whose module
    /// is `depth` segments below the root.
    pub fn references(text: &str, depth: usize) -> Vec<(usize, String)> {
        // Comments out, line numbers kept.
        let code: Vec<&str> = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("//") {
                    ""
                } else {
                    code_part(l)
                }
            })
            .collect();
        let mut out = Vec::new();
        for (i, line) in code.iter().enumerate() {
            let mut from = 0;
            while let Some(at) = line.get(from..).and_then(|l| l.find("crate::")) {
                let start = from + at;
                from = start + "crate::".len();
                if start > 0 && is_ident(line.as_bytes()[start - 1]) {
                    continue;
                }
                let rest = line.get(from..).unwrap_or("");
                if rest.trim_start().starts_with('{') {
                    out.extend(group(&code, i, from));
                } else {
                    out.push((i + 1, ident(rest).to_owned()));
                }
            }
            // `super::super::x` from a file `depth` deep names the root's x
            // when the chain is as long as the depth.
            let mut from = 0;
            while let Some(at) = line.get(from..).and_then(|l| l.find("super::")) {
                let start = from + at;
                from = start + "super::".len();
                if start > 0 && is_ident(line.as_bytes()[start - 1]) {
                    continue;
                }
                let mut ups = 1;
                while line.get(from..).is_some_and(|r| r.starts_with("super::")) {
                    ups += 1;
                    from += "super::".len();
                }
                if ups == depth {
                    let name = ident(line.get(from..).unwrap_or(""));
                    if layer_of(name).is_some() {
                        out.push((i + 1, name.to_owned()));
                    }
                }
            }
        }
        out.retain(|(_, m)| !m.is_empty() && m != "self");
        out
    }

    /// The first identifier of each member of the `{ ... }` group that
    /// opens at `code[line][col..]`, which may span lines.
    fn group(code: &[&str], line: usize, col: usize) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut expecting = false;
        for (n, text) in code.iter().enumerate().skip(line) {
            let start = if n == line { col } else { 0 };
            let bytes = text.as_bytes();
            let mut j = start;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' => {
                        depth += 1;
                        expecting = depth == 1;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return out;
                        }
                    }
                    b',' if depth == 1 => expecting = true,
                    b if expecting && is_ident(b) => {
                        let name = ident(text.get(j..).unwrap_or(""));
                        out.push((n + 1, name.to_owned()));
                        expecting = false;
                        j += name.len().max(1);
                        continue;
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        out
    }

    /// Every broken rule, each with the file:line that made it.
    pub fn problems(edges: &Edges) -> Vec<String> {
        let mut problems = Vec::new();
        let modules: BTreeSet<&str> = edges
            .keys()
            .flat_map(|(a, b)| [a.as_str(), b.as_str()])
            .collect();
        for m in &modules {
            if layer_of(m).is_none() {
                problems.push(format!(
                    "`{m}` is in no layer: add it to LAYERS in tests/architecture.rs (and to ARCHITECTURE.md)"
                ));
            }
        }
        for ((from, to), sites) in edges {
            let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) else {
                continue;
            };
            if lt < lf {
                problems.push(format!(
                    "{from} -> {to} points up (layer {lf} -> {lt}; top is 0):\n{}",
                    list(sites)
                ));
            } else if FORBIDDEN_IN_LAYER.contains(&(from.as_str(), to.as_str())) {
                problems.push(format!(
                    "{from} -> {to} is ruled out by ARCHITECTURE.md:\n{}",
                    list(sites)
                ));
            }
        }
        for cycle in cycles(edges) {
            let mut text = format!("cycle: {}", cycle.join(" -> "));
            for pair in cycle.windows(2) {
                if let Some(sites) = edges.get(&(pair[0].clone(), pair[1].clone())) {
                    text.push_str(&format!("\n  {} -> {}:\n{}", pair[0], pair[1], list(sites)));
                }
            }
            problems.push(text);
        }
        problems
    }

    fn list(sites: &[Site]) -> String {
        sites
            .iter()
            .map(|(f, l)| format!("    {}:{l}", f.display()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The shortest cycle through each module that is on one, as closed
    /// paths `a -> b -> ... -> a` (each cycle once, starting from its
    /// first module by name).
    pub fn cycles(edges: &Edges) -> Vec<Vec<String>> {
        let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (a, b) in edges.keys() {
            next.entry(a.as_str()).or_default().push(b.as_str());
        }
        let reach = |from: &str| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.to_owned()];
            while let Some(m) = todo.pop() {
                for n in next.get(m.as_str()).into_iter().flatten() {
                    if seen.insert((*n).to_owned()) {
                        todo.push((*n).to_owned());
                    }
                }
            }
            seen
        };
        let mut out: Vec<Vec<String>> = Vec::new();
        for start in next.keys() {
            if !reach(start).contains(*start) {
                continue;
            }
            // Its component: the modules it reaches that reach it back.
            let component: BTreeSet<String> = reach(start)
                .into_iter()
                .filter(|m| reach(m).contains(*start))
                .collect();
            let cycle = rotated(path_back(&next, start, &component));
            if !out.contains(&cycle) {
                out.push(cycle);
            }
        }
        out
    }

    /// A closed path started at its smallest module, so that one cycle
    /// found from two of its modules compares equal.
    fn rotated(path: Vec<String>) -> Vec<String> {
        let ring = &path[..path.len() - 1];
        let first = (0..ring.len()).min_by_key(|&i| &ring[i]).unwrap_or(0);
        let mut out: Vec<String> = ring[first..]
            .iter()
            .chain(&ring[..first])
            .cloned()
            .collect();
        out.push(out[0].clone());
        out
    }

    /// A shortest path from `start` back to itself inside `component`.
    fn path_back<'a>(
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        start: &'a str,
        component: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(m) = queue.pop_front() {
            for &n in next.get(m).into_iter().flatten() {
                if n == start {
                    let mut back = Vec::new();
                    let mut at = m;
                    while at != start {
                        back.push(at);
                        at = parent.get(at).copied().unwrap_or(start);
                    }
                    let mut path = vec![start.to_owned()];
                    path.extend(back.iter().rev().map(|s| (*s).to_owned()));
                    path.push(start.to_owned());
                    return path;
                }
                if component.contains(n) && !parent.contains_key(n) {
                    parent.insert(n, m);
                    queue.push_back(n);
                }
            }
        }
        vec![start.to_owned(), start.to_owned()]
    }

    #[test]
    fn reads_uses_groups_and_ignores_comments() {
        let text = "use crate::config::otp::X;\n\
                    // use crate::store::Y;\n\
                    /// [`crate::http::Z`]\n\
                    use crate::{\n    media::g711,\n    sip::{a, b},\n};\n\
                    let url = \"http://x\"; // crate::server\n\
                    fn f() { super::super::net::x() }\n\
                    let s = pinbridge_crate::thing;\n";
        let refs = references(text, 2);
        assert_eq!(
            refs,
            vec![
                (1, "config".to_owned()),
                (5, "media".to_owned()),
                (6, "sip".to_owned()),
                (9, "net".to_owned()),
            ]
        );
    }

    #[test]
    fn finds_an_upward_edge_and_a_cycle_with_their_lines() {
        let mut edges = Edges::new();
        let site = |f: &str, l| vec![(PathBuf::from(f), l)];
        edges.insert(
            ("verify".into(), "store".into()),
            site("src/verify/a.rs", 3),
        );
        edges.insert(("store".into(), "verify".into()), site("src/store/b.rs", 7));
        edges.insert(("server".into(), "http".into()), site("src/server/c.rs", 1));
        let p = problems(&edges);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0].starts_with("verify -> store points up"), "{}", p[0]);
        assert!(p[0].contains("src/verify/a.rs:3"), "{}", p[0]);
        assert!(
            p[1].starts_with("cycle: store -> verify -> store"),
            "{}",
            p[1]
        );
        assert!(
            p[1].contains("src/store/b.rs:7") && p[1].contains("src/verify/a.rs:3"),
            "{}",
            p[1]
        );
        edges.insert(("http".into(), "server".into()), site("src/http/d.rs", 2));
        let p = problems(&edges);
        assert!(p
            .iter()
            .any(|p| p.starts_with("http -> server is ruled out")));
        assert!(p
            .iter()
            .any(|p| p.starts_with("cycle: http -> server -> http")));
    }
}
