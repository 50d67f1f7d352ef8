//! Helpers for tests that run programs: the built `pinbridge` binary and
//! third-party peers. Every child is killed (by its own PID) and reaped
//! when its guard is dropped, temporary directories are removed, and every
//! wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ua::{random_token, TestUa};

/// The repository root (where Cargo.toml is).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/interop` in the repository (SIPp scenarios, baresip templates).
pub fn interop_dir() -> PathBuf {
    repo_dir().join("tests").join("interop")
}

// ------------------------------------------------------------ temp dirs

/// A fresh directory under the system temp dir, removed on drop (kept when
/// `PINBRIDGE_KEEP_TMP=1`, for debugging).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "pinbridge-{label}-{}-{}",
            std::process::id(),
            random_token()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("PINBRIDGE_KEEP_TMP").is_ok_and(|v| v == "1") {
            eprintln!("keeping {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------- ports

/// A loopback port that was free for both UDP and TCP a moment ago (bind
/// port 0, release). Another process may take it before we use it, so
/// starters retry on a bind failure.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port");
}

/// True if `port` on loopback can be bound for UDP and TCP right now.
pub fn port_is_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port `p` (found by binding port 0) such that `p .. p+len` are all free
/// on loopback (SIPp binds `-mp` and `-mp`+2, baresip picks from a range).
pub fn free_port_block(len: u16) -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p.checked_add(len).is_some() && (p..p + len).all(port_is_free) {
            return p;
        }
    }
    panic!("no block of {len} free loopback ports");
}

// ---------------------------------------------------------------- audio

/// Writes an 8 kHz mono 16-bit WAV of `secs` seconds: a tone (`freq_hz`)
/// with a gentle amplitude wobble, so it is clearly not silence.
pub fn write_tone_wav(path: &Path, secs: f64, freq_hz: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create WAV");
    let n = (secs * 8000.0) as usize;
    for i in 0..n {
        let t = i as f64 / 8000.0;
        let amp = 6000.0 + 2000.0 * (2.0 * std::f64::consts::PI * 0.5 * t).sin();
        let s = amp * (2.0 * std::f64::consts::PI * freq_hz * t).sin();
        w.write_sample(s as i16).expect("write sample");
    }
    w.finalize().expect("finalize WAV");
}

// -------------------------------------------------------------- children

/// Output of a child collected by background threads.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, s: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push_str(s);
    }

    /// Waits until the output contains `needle`; false after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads `r` line by line into a new buffer until EOF.
    pub fn spawn_reader(r: impl Read + Send + 'static) -> Captured {
        let out = Captured::default();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => sink.push(&line),
                }
            }
        });
        out
    }
}

/// A child process killed (SIGKILL, by its PID) and reaped on drop unless
/// it has exited already.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn new(name: &str, child: Child) -> ChildGuard {
        ChildGuard {
            child,
            name: name.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) with the shell's `kill`
    /// builtin (no libc, no procps needed).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{sig} {}", self.pid()))
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// The exit status if the child exited within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Async flavour of `wait_exit` for tokio tests.
    pub async fn wait_exit_async(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------- pinbridge

/// A configuration file for the binary: SIP on `127.0.0.1:<sip_port>`, RTP
/// in `rtp`, prompts replaced as given (name, path).
pub fn pinbridge_config(sip_port: u16, rtp: (u16, u16), prompts: &[(&str, &Path)]) -> String {
    let mut s = format!(
        "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\n\n[rtp]\nport_range = \"{}-{}\"\n\n[prompts]\n",
        rtp.0, rtp.1
    );
    for (name, path) in prompts {
        s.push_str(&format!("{name} = \"{}\"\n", path.display()));
    }
    // "*98" reads keys back and hangs up after a second of silence.
    s.push_str("\n[keypad_test]\nnumbers = [\"*98\"]\nidle_timeout_secs = 1\n");
    s.push_str("\n[[conference]]\nname = \"main\"\nnumbers = [\"*\"]\n");
    s
}

/// The built `pinbridge` binary, running.
pub struct Pinbridge {
    pub proc: ChildGuard,
    pub sip: SocketAddr,
    pub stdout: Captured,
    pub stderr: Captured,
    /// The working directory: relative paths of the embedded default (the
    /// database, the server key) land here, not in the repository.
    _cwd: TempDir,
}

impl Pinbridge {
    /// Runs `pinbridge run <args>` with `env` added (CONFERENCE_PIN is
    /// removed unless given) in a fresh working directory and returns as
    /// soon as the process started.
    pub fn spawn(args: &[&str], env: &[(&str, &str)], sip: SocketAddr) -> Pinbridge {
        let cwd = TempDir::new("cwd");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinbridge"));
        cmd.args(args)
            .current_dir(cwd.path())
            .env_remove("CONFERENCE_PIN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn pinbridge");
        let stdout = Captured::spawn_reader(child.stdout.take().expect("stdout"));
        let stderr = Captured::spawn_reader(child.stderr.take().expect("stderr"));
        Pinbridge {
            proc: ChildGuard::new("pinbridge", child),
            sip,
            stdout,
            stderr,
            _cwd: cwd,
        }
    }

    /// Starts `pinbridge run --config <config>` on a free SIP port (written
    /// into the file by `make_config`) and waits until it answers OPTIONS;
    /// retries with another port if the first was taken meanwhile.
    pub async fn start_with_config(
        dir: &TempDir,
        env: &[(&str, &str)],
        make_config: impl Fn(u16) -> String,
    ) -> Pinbridge {
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let path = dir.join("pinbridge.toml");
            std::fs::write(&path, make_config(port)).expect("write config");
            let sip = SocketAddr::from(([127, 0, 0, 1], port));
            let path = path.display().to_string();
            let mut pb = Pinbridge::spawn(&["run", "--config", &path], env, sip);
            match pb.wait_ready(Duration::from_secs(10)).await {
                Ok(()) => return pb,
                Err(e) => last = e,
            }
        }
        panic!("pinbridge did not start: {last}");
    }

    /// Polls with OPTIONS until the server answers 200; fails if the
    /// process exits or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut ua = TestUa::udp(self.sip).await.map_err(|e| e.to_string())?;
        while Instant::now() < deadline {
            if let Some(status) = self.proc.child.try_wait().ok().flatten() {
                // Give the reader threads a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "pinbridge exited with {status} before answering; stderr:\n{}",
                    self.stderr.text()
                ));
            }
            let tx = ua.options("ping").await.map_err(|e| e.to_string())?;
            if let Ok(r) = ua.expect_final_tx(&tx, Duration::from_millis(200)).await {
                if r.status() == Some(200) {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "pinbridge did not answer OPTIONS within {timeout:?}; stderr:\n{}",
            self.stderr.text()
        ))
    }
}
