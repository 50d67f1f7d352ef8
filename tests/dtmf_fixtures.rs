//! Every capture (and WAV) in `fixtures/dtmf/` through `detect-dtmf`'s
//! code path, compared with its `.expected` file.
//!
//! `.expected` format, one digit per line in order: `<start_ms> <digit>
//! <method>` (start within ±30 ms of what is detected) or `<digit>
//! <method>` (time not checked). Blank lines and `#` comments are ignored;
//! an empty file means "no digits". A `# event-pt N` line passes N as the
//! telephone-event payload type instead of letting it be inferred.

use std::path::{Path, PathBuf};

use pinbridge::media::dtmf::detect::{detect_capture, detect_wav, DetectedDigit};

const TOLERANCE_MS: u64 = 30;

#[derive(Debug, PartialEq)]
struct Expected {
    start_ms: Option<u64>,
    key: char,
    method: String,
}

struct Spec {
    digits: Vec<Expected>,
    event_pt: Option<u8>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dtmf")
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/dtmf exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng" | "wav")
            )
        })
        .collect();
    files.sort();
    files
}

fn parse_expected(path: &Path) -> Result<Spec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut spec = Spec {
        digits: Vec::new(),
        event_pt: None,
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(pt) = line.strip_prefix("# event-pt ") {
            spec.event_pt = Some(
                pt.trim()
                    .parse()
                    .map_err(|_| format!("{}:{}: bad event-pt", path.display(), n + 1))?,
            );
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("{}:{}: cannot read {line:?}", path.display(), n + 1);
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (start_ms, key, method) = match cols[..] {
            [t, k, m] => (Some(t.parse().map_err(|_| bad())?), k, m),
            [k, m] => (None, k, m),
            _ => return Err(bad()),
        };
        let mut chars = key.chars();
        let (Some(key), None) = (chars.next(), chars.next()) else {
            return Err(bad());
        };
        if !matches!(method, "rfc4733" | "inband") {
            return Err(bad());
        }
        spec.digits.push(Expected {
            start_ms,
            key,
            method: method.to_owned(),
        });
    }
    Ok(spec)
}

fn detect(path: &Path, event_pt: Option<u8>) -> Result<Vec<DetectedDigit>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if path.extension().is_some_and(|e| e == "wav") {
        detect_wav(&bytes)
    } else {
        detect_capture(&bytes, event_pt)
    }
}

fn matches(want: &Expected, got: &DetectedDigit) -> bool {
    want.key == got.key
        && want.method == got.method.as_str()
        && want
            .start_ms
            .is_none_or(|t| t.abs_diff(got.start_ms) <= TOLERANCE_MS)
}

fn show_expected(e: &[Expected]) -> String {
    e.iter()
        .map(|d| match d.start_ms {
            Some(t) => format!("{t} {} {}", d.key, d.method),
            None => format!("{} {}", d.key, d.method),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_got(g: &[DetectedDigit]) -> String {
    g.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn every_fixture_yields_its_expected_digits() {
    let files = fixture_files();
    assert!(
        files.len() >= 20,
        "expected the DTMF fixtures in {}, found {}",
        fixtures_dir().display(),
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let spec = match parse_expected(&file.with_extension("expected")) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: no usable .expected: {e}"));
                continue;
            }
        };
        let got = match detect(file, spec.event_pt) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name}: error: {e}"));
                continue;
            }
        };
        let ok = got.len() == spec.digits.len()
            && spec.digits.iter().zip(&got).all(|(w, g)| matches(w, g));
        if ok {
            eprintln!("ok    {name}");
        } else {
            eprintln!("FAIL  {name}");
            failures.push(format!(
                "{name}:\n    expected [{}]\n    detected [{}]",
                show_expected(&spec.digits),
                show_got(&got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expected_file_has_a_fixture() {
    for entry in std::fs::read_dir(fixtures_dir()).expect("fixtures/dtmf exists") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "expected") {
            let has_input = ["pcap", "pcapng", "wav"]
                .iter()
                .any(|ext| path.with_extension(ext).exists());
            assert!(has_input, "{} has no capture or WAV", path.display());
            parse_expected(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
