//! Load harness for the verification API: starts the axum server in
//! process (temp database, a sender that does the `log` channel's work of
//! formatting the message and then drops it), and drives it with `wrk`:
//!
//! - `starts`: POST /v1/verifications, each to a new destination (every
//!   request makes a code, hashes it, writes the verification, the send
//!   and the delivery record);
//! - `checks`: POST /v1/verifications/check with the right code, each on a
//!   different pending verification made beforehand.
//!
//! Run: `cargo bench --bench verify_api -- [--duration SECS]
//! [--connections N] [--threads N]` (needs `wrk`: apt-get install -y wrk),
//! or `benches/verify_api_load.sh`. Prints requests/s and latency
//! percentiles as wrk measured them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use pinbridge::config::otp::{ChannelKind, HttpLimits, HttpSettings, RateLimit};
use pinbridge::http::{router, ApiState, HttpServer};
use pinbridge::store::{Store, StoreHandle};
use pinbridge::verify::clock::{Clock, SystemClock};
use pinbridge::verify::key::ServerKey;
use pinbridge::verify::otp::{Policy, StartRequest, Verifier};
use pinbridge::verify::sender::{CodeSender, DeliveryOutcome, DeliveryRequest};
use pinbridge::verify::service::{ChannelPolicy, VerifyService};

const KEY: &str = "bench-api-key-0123456789";

/// What the `log` channel does, minus the write: build the message.
struct LogLikeSender;

impl CodeSender for LogLikeSender {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        Box::pin(async move {
            let msg = format!(
                "[DEVELOPMENT ONLY] code {} for {} ({})",
                req.code.expose(),
                req.to_phone.as_deref().unwrap_or("-"),
                req.verification_id
            );
            std::hint::black_box(msg);
            DeliveryOutcome::Delivered {
                detail: "logged".into(),
            }
        })
    }
}

struct Args {
    duration: u64,
    connections: u32,
    threads: u32,
}

fn parse_args() -> Args {
    let mut a = Args {
        duration: 10,
        connections: 32,
        threads: 2,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let next = argv.get(i + 1).and_then(|v| v.parse().ok());
        match (argv[i].as_str(), next) {
            ("--duration", Some(v)) => a.duration = v,
            ("--connections", Some(v)) => a.connections = v as u32,
            ("--threads", Some(v)) => a.threads = v as u32,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("verify API load harness: run it with `cargo bench --bench verify_api` or benches/verify_api_load.sh");
        return;
    }
    let args = parse_args();
    if Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("the verify API harness needs wrk: apt-get install -y wrk");
        std::process::exit(2);
    }
    let dir = std::env::temp_dir().join(format!("pinbridge-verify-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("bench.db");
    let key = ServerKey::from_bytes([7; 32]);
    let policy = Policy {
        max_sends_per_hour: 1000,
        ..Policy::default()
    };

    // Pending verifications for the checks, made directly on the store.
    // More than the checks wrk will make, so that each check is the first on
    // its verification (a re-check of an approved one is a read only);
    // how many were is printed after the run.
    let checks_needed = 40_000 * args.duration as usize;
    let pairs = prepare_checks(&db, &key, policy, checks_needed);
    let lua_checks = dir.join("checks.lua");
    write_checks_script(&lua_checks, &pairs, args.threads);
    let lua_starts = dir.join("starts.lua");
    std::fs::write(&lua_starts, STARTS_LUA).expect("write starts.lua");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = runtime.block_on(start_server(&db, key, policy));
    println!(
        "machine: {} cores; server: 2 tokio workers + 1 store thread, SQLite WAL synchronous=NORMAL",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "wrk: {} threads, {} connections, {} s per run",
        args.threads, args.connections, args.duration
    );
    for (name, script, path) in [
        ("starts", &lua_starts, "/v1/verifications"),
        ("checks", &lua_checks, "/v1/verifications/check"),
    ] {
        let out = Command::new("wrk")
            .arg(format!("-t{}", args.threads))
            .arg(format!("-c{}", args.connections))
            .arg(format!("-d{}s", args.duration))
            .arg("--latency")
            .arg("-s")
            .arg(script)
            .arg(format!("http://{addr}{path}"))
            .output()
            .expect("run wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        println!("--- {name}: wrk output");
        print!("{text}");
        let rps = field(&text, "Requests/sec:");
        let p99 = text
            .lines()
            .find(|l| l.trim_start().starts_with("99%"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?");
        let p50 = text
            .lines()
            .find(|l| l.trim_start().starts_with("50%"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?");
        let non2xx = field(&text, "Non-2xx or 3xx responses:");
        println!(
            "RESULT {name}: {rps} req/s, p50 {p50}, p99 {p99}, non-2xx {}",
            if non2xx == "?" { "0" } else { non2xx }
        );
    }
    if let Ok(store) = Store::open(&db) {
        let approved: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM verifications WHERE status = 'approved'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(-1);
        println!(
            "checks: {approved} of the {} prepared verifications approved (first checks; any further checks re-read approved ones)",
            pairs.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
        .unwrap_or("?")
}

fn prepare_checks(db: &Path, key: &ServerKey, policy: Policy, n: usize) -> Vec<(String, String)> {
    let mut store = Store::open(db).expect("open db");
    let mut v = Verifier::new(key.clone(), policy).expect("policy");
    let now = SystemClock.now_ms();
    let mut out = Vec::with_capacity(n);
    store.connection().execute_batch("BEGIN").expect("begin");
    for i in 0..n {
        let st = v
            .start(
                &mut store,
                StartRequest {
                    destination: format!("+1999{i:08}"),
                    channel: Some(ChannelKind::Log),
                    participant_id: None,
                },
                now,
            )
            .expect("start");
        out.push((st.verification.id, st.code.expose().to_string()));
    }
    store.connection().execute_batch("COMMIT").expect("commit");
    out
}

fn write_checks_script(path: &PathBuf, pairs: &[(String, String)], threads: u32) {
    let mut s = format!("local threads = {threads}\nlocal bodies = {{\n");
    for (id, code) in pairs {
        s.push_str(&format!("'{{\"id\":\"{id}\",\"code\":\"{code}\"}}',\n"));
    }
    s.push_str("}\n");
    s.push_str(CHECKS_LUA);
    std::fs::write(path, s).expect("write checks.lua");
}

async fn start_server(db: &Path, key: ServerKey, policy: Policy) -> SocketAddr {
    let store = StoreHandle::spawn(Store::open(db).expect("open db")).expect("store thread");
    let service = VerifyService::new(
        store,
        key,
        policy,
        ChannelPolicy {
            enabled: vec![ChannelKind::Log],
            default_order: vec![ChannelKind::Log],
            default_country_code: "1".into(),
        },
        Arc::new(LogLikeSender),
        Arc::new(SystemClock),
    )
    .expect("service");
    let roomy = RateLimit {
        per_minute: u32::MAX,
        burst: u32::MAX,
    };
    let settings = HttpSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        api_key_hashes: vec![Sha256::digest(KEY.as_bytes()).into()],
        max_body_bytes: 16 * 1024,
        join_page: false,
        dialin_code_ttl: Duration::from_secs(300),
        cookie_key_file: db.with_extension("cookie"),
        // wrk drives the API from one address: the server's defences stay
        // on (every request goes through the buckets and the connection
        // counts), with allowances wrk never exhausts.
        limits: HttpLimits {
            max_connections_per_address: 1024,
            rate: Some(roomy),
            join_rate: Some(roomy),
            ..HttpLimits::default()
        },
    };
    let state = ApiState::new(service, &settings, Vec::new());
    let server = HttpServer::bind(
        settings.listen,
        router(state, settings.max_body_bytes),
        settings.limits.clone(),
    )
    .await
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// Each wrk thread numbers its own destinations, so no two requests share
/// one (no send limit, no pending re-send: every request is a new code).
const STARTS_LUA: &str = r#"
-- thread_id is a global set by setup() in each thread's own Lua state
-- (a `local` of the same name would hide it).
local counter = 0
local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-api-key-0123456789"
function request()
  counter = counter + 1
  local to = string.format("+1555%d%07d", thread_id, counter)
  return wrk.format(nil, nil, nil, '{"to":"' .. to .. '","channel":"log"}')
end
"#;

/// Each wrk thread walks its own share of the prepared verifications.
const CHECKS_LUA: &str = r#"
local next_id = 0
local i = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-api-key-0123456789"
function request()
  local idx = (i * threads + thread_id) % #bodies + 1
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[idx])
end
"#;
