//! `pinbridge detect-dtmf FILE`: the DTMF digits in a WAV file or an RTP
//! capture (pcap/pcapng), one line per digit: `<start_ms> <digit> <method>`.

use std::path::Path;
use std::process::ExitCode;

use crate::media::dtmf::detect::analyse_file;

/// Digits on stdout and nothing else; diagnostics on stderr; unreadable
/// input exits 2 with a message naming the problem.
pub fn main(file: &Path, event_pt: Option<u8>) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match analyse_file(&bytes, event_pt) {
        Ok(d) => {
            for note in &d.notes {
                eprintln!("{}: {note}", file.display());
            }
            for digit in &d.digits {
                println!("{digit}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}
