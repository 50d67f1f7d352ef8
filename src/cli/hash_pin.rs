//! `pinbridge hash-pin [PIN]`: an argon2 hash of a PIN for `pin_hash` /
//! `moderator_pin_hash`, so the configuration file need not hold the PIN.

use std::process::ExitCode;

use crate::conference::pin::hash_pin;

/// Prints the hash. The PIN comes from standard input unless given (an
/// argument is visible to other users in the process list).
pub fn main(pin: Option<String>) -> ExitCode {
    let pin = match pin {
        Some(p) => p,
        None => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!("cannot read the PIN from standard input");
                return ExitCode::FAILURE;
            }
            line.trim().to_string()
        }
    };
    match hash_pin(&pin) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
