//! Helpers for interop tests that drive third-party peers (SIPp, baresip,
//! ...). A missing peer skips the test LOUDLY on a developer machine and
//! fails it in CI (`PINBRIDGE_REQUIRE_PEERS=1`), so a green CI run can never
//! hide interop tests that did not run.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The Debian package that provides a tool (for the skip message).
fn package_for(tool: &str) -> &str {
    match tool {
        "sipp" => "sip-tester",
        "baresip" => "baresip-core",
        "twinkle-console" | "twinkle" => "twinkle-console",
        "chromedriver" => "chromium-driver",
        "linphonec" | "linphonecsh" | "linphone-daemon" => "linphone-cli",
        other => other,
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Looks a tool up in `PATH` (plus /usr/sbin and /sbin, which a non-login
/// PATH may lack).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True when CI demands that every interop peer is present.
pub fn peers_required() -> bool {
    std::env::var("PINBRIDGE_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// The tool's path, or `None` after printing a loud skip message; panics
/// instead when `PINBRIDGE_REQUIRE_PEERS=1` (a missing peer fails CI).
/// The test name is taken from the test thread's name (libtest names each
/// test's thread after the test).
pub fn require_tool(name: &str) -> Option<PathBuf> {
    if let Some(path) = find_tool(name) {
        return Some(path);
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    let message = format!(
        "SKIPPED: {test} needs {name}; install it with apt-get install -y {}",
        package_for(name)
    );
    if peers_required() {
        panic!("{message} (PINBRIDGE_REQUIRE_PEERS=1)");
    }
    // Straight to the stderr handle, not eprintln!: libtest captures the
    // print macros of passing tests, and a skip must never be silent.
    let bar = "=".repeat(72);
    let _ = writeln!(std::io::stderr(), "\n{bar}\n{message}\n{bar}\n");
    None
}
