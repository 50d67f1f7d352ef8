//! A configuration file: TOML parsing and every validation step, from a
//! string. Relative paths resolve against a directory under the system's
//! temporary directory; nothing is read or written there (parsing only
//! joins paths).
//!
//! Properties checked beyond "no panic": an error names the file, a line
//! that exists, and says what is wrong; a configuration that loads answers
//! routing questions for any dialled number.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pinbridge::config::Config;

const FILE: &str = "fuzz.toml";

fn base_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join("pinbridge-fuzz-config"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, FILE, base_dir()) {
        Ok(config) => {
            for dialed in [
                None,
                Some(""),
                Some("1000"),
                Some("+15551234567"),
                Some("lobby"),
            ] {
                let route = config.route(dialed);
                let _ = config.dtmf_mode_for(route);
            }
        }
        Err(e) => {
            assert_eq!(e.file, FILE);
            assert!(!e.message.is_empty(), "an error without a message: {e:?}");
            if let Some(line) = e.line {
                let lines = text.split('\n').count();
                assert!(
                    (1..=lines).contains(&line),
                    "error on line {line} of a {lines}-line file: {e}"
                );
            }
            let _ = e.to_string();
        }
    }
});
