//! `pinbridge check-config FILE`: validates a configuration file and the
//! prompts it names, and exits 0 when both are usable.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::ivr::prompts::PromptSet;

/// `FILE: OK` on stdout and exit 0; otherwise the error (naming file, line
/// and key, or the prompt) on stderr and exit 1.
pub fn main(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(c) => match PromptSet::load(&c.prompt_files) {
            Ok(_) => {
                println!("{}: OK", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: prompts: {e}", file.display());
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
