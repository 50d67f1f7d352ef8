//! Starts pinbridge in-process for a test: SIP on an ephemeral loopback
//! port, RTP in a range shared by all tests (the allocator skips ports in
//! use), the database and server key in a fresh temporary directory of its
//! own (so no two servers share lockouts), everything else from the
//! embedded default unless the test changes it.

use std::net::SocketAddr;
use std::path::PathBuf;

use pinbridge::config::Config;
use pinbridge::ivr::prompts::{PromptId, PromptSet};
use pinbridge::server::{self, ServerHandle};

use super::process::TempDir;

/// The keypad test line of the test configuration.
pub const ECHO: &str = "*98";

pub struct TestServer {
    pub sip: SocketAddr,
    handle: Option<ServerHandle>,
    /// The database and key, unless the test put them elsewhere.
    _dir: TempDir,
}

/// The test configuration before a test's own changes.
pub fn test_config() -> Config {
    let mut c = Config::embedded_default();
    c.sip.listen = "127.0.0.1:0".parse().expect("address");
    c.rtp.ports = (20000, 29999);
    // "*98" reads back keys and hangs up after a second of silence: tests
    // that need a call the server ends on its own dial it.
    c.keypad_test = Some(pinbridge::config::KeypadTestSettings {
        numbers: vec![ECHO.into()],
        idle_timeout: std::time::Duration::from_secs(1),
    });
    for conf in &mut c.conferences {
        conf.pin = pinbridge::conference::pin::PinSecret::plain("1234").ok();
    }
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut Config)) -> TestServer {
        super::init_tracing();
        let dir = TempDir::new("server");
        let mut config = test_config();
        config.otp.store.path = dir.join("pinbridge.db");
        config.otp.verify.key_file = dir.join("pinbridge.key");
        change(&mut config);
        let prompts = PromptSet::load(&config.prompt_files).expect("prompts load");
        let handle = server::start(config, prompts).await.expect("server starts");
        TestServer {
            sip: handle.sip_addr,
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// The API for calls and messages through the trunk.
    pub fn sip_handle(&self) -> pinbridge::server::trunk::SipHandle {
        self.handle.as_ref().expect("server running").sip()
    }

    /// Graceful shutdown (BYE to every call) and wait for it.
    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.stop().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.shutdown();
        }
    }
}

/// A shipped prompt's path in the repository (what tests compare audio to).
pub fn prompt_path(id: PromptId) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("prompts")
        .join(format!("{}.wav", id.name()))
}

/// Reads a shipped prompt as 16-bit samples (they are 8 kHz mono).
pub fn prompt_samples(id: PromptId) -> Vec<i16> {
    let mut r = hound::WavReader::open(prompt_path(id)).expect("prompt wav");
    let spec = r.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16),
        "shipped prompts are 8 kHz mono 16-bit"
    );
    r.samples::<i16>().map(|s| s.expect("sample")).collect()
}
