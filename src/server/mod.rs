//! The tokio shell: binds the sockets, starts the transport tasks, the SIP
//! task and (through it) one task per call, and shuts them down gracefully.
//!
//! Where a packet goes: `transport.rs` reads it, `sip_task.rs` hands it to
//! the SIP core (`crate::sip::ua`) and starts or informs the call, and
//! `call.rs` runs the call's media and IVR.

pub mod call;
pub mod fd_limit;
pub mod guard;
pub mod leg;
pub mod log_format;
pub mod otp_channels;
pub mod room;
pub mod rtp_ports;
pub mod sip_task;
pub mod supervise;
pub mod transport;
pub mod trunk;
pub mod verify_setup;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::conference::guard::BruteForceGuard;
use crate::config::otp::{ConferenceFlow, HttpSettings};
use crate::config::Config;
use crate::http::join::{JoinConference, JoinState};
use crate::http::{ApiState, HttpServer};
use crate::ivr::prompts::PromptSet;
use crate::sip::transaction::TimerValues;
use crate::sip::ua::{UaConfig, UserAgent};
use crate::store::{Store, StoreHandle, StoredGuard};
use crate::verify::clock::{Clock, SystemClock};
use crate::verify::delivery::Dispatcher;
use crate::verify::key::{load_or_create_key, ServerKey};
use crate::verify::sender::CodeSender;
use crate::verify::service::VerifyService;
use call::CallEnv;
use guard::{GuardService, WallAnchor};
use otp_channels::{SipMessageSender, TrunkLink, TrunkParts, VoiceSender};
use rtp_ports::RtpPortAllocator;
use sip_task::SipTask;
use supervise::{TaskEnded, TaskWatch};
use transport::ConnectionIds;
use trunk::SipHandle;

/// A running server.
pub struct ServerHandle {
    /// The SIP address actually bound (UDP and TCP share the port).
    pub sip_addr: SocketAddr,
    /// The HTTP API / join page address, when configured.
    pub http_addr: Option<SocketAddr>,
    /// The one-time-passcode service, when configured.
    pub verify: Option<VerifyService>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    side_tasks: Vec<JoinHandle<()>>,
    sip: SipHandle,
    /// Ends of the long-lived tasks (see `supervise`).
    ended: mpsc::UnboundedReceiver<TaskEnded>,
    guard: Arc<GuardService>,
}

impl ServerHandle {
    /// Places calls and sends messages through the configured trunk.
    pub fn sip(&self) -> SipHandle {
        self.sip.clone()
    }

    /// Waits until a long-lived task (the SIP task, a transport, the HTTP
    /// server) ends although no shutdown was asked for: the server can no
    /// longer do its job, and the caller should stop it and exit non-zero
    /// (see [`supervise`]). Pending forever while all is well.
    pub async fn task_ended(&mut self) -> TaskEnded {
        match self.ended.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// Starts a graceful shutdown: every call gets a BYE.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the SIP task has finished (after `shutdown`) and the
    /// brute-force guard's state is stored.
    pub async fn wait(self) {
        let _ = self.task.await;
        if !self.guard.flush(Duration::from_secs(5)).await {
            tracing::warn!("the brute-force guard's last changes may not have been stored");
        }
        for t in self.side_tasks {
            t.abort();
        }
    }

    pub async fn stop(self) {
        self.shutdown();
        self.wait().await;
    }
}

/// Binds UDP and TCP on the same port. With port 0, the port UDP gets is
/// tried for TCP too (and again with a new port if TCP finds it taken).
fn bind_sockets(
    config: &Config,
) -> io::Result<(
    Option<tokio::net::UdpSocket>,
    Option<tokio::net::TcpListener>,
    SocketAddr,
)> {
    let want = config.sip.listen;
    let mut last_err = None;
    for _ in 0..20 {
        let udp = if config.sip.udp {
            Some(transport::bind_udp(want)?)
        } else {
            None
        };
        let addr = match &udp {
            Some(u) => u.local_addr()?,
            None => want,
        };
        if !config.sip.tcp {
            return Ok((udp, None, addr));
        }
        match transport::bind_tcp(addr) {
            Ok(t) => {
                let addr = t.local_addr()?;
                return Ok((udp, Some(t), addr));
            }
            Err(e) if want.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                last_err = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not bind SIP sockets")))
}

/// Does anything in the configuration need the database and the
/// verification service?
fn needs_verify(config: &Config) -> bool {
    config
        .conferences
        .iter()
        .any(|c| c.flow != ConferenceFlow::Pin)
        || config.otp.http.is_some()
        || !config.otp.participants.is_empty()
}

/// The database and the server key, opened once at start-up for the
/// brute-force guard and (when configured) the verification service.
struct Opened {
    store: Store,
    key: ServerKey,
    guard: StoredGuard,
}

/// Opens (creating if needed) the database and the server key, and reads
/// the guard's stored lockouts and failure windows (on the blocking pool).
async fn open_store(config: &Config, anchor: WallAnchor) -> io::Result<Opened> {
    let path = config.otp.store.path.clone();
    let key_file = config.otp.verify.key_file.clone();
    let window_ms = i64::try_from(config.security.longest_window().as_millis()).unwrap_or(i64::MAX);
    let now_ms = anchor.unix_ms();
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&path).map_err(|e| e.to_string())?;
        let key = load_or_create_key(&key_file).map_err(|e| format!("[verify] key_file: {e}"))?;
        let guard = store
            .load_guard(now_ms, window_ms)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Opened { store, key, guard })
    })
    .await
    .map_err(|e| invalid(e.to_string()))?
    .map_err(invalid)
}

/// The brute-force guard, with what was stored before the restart, keyed
/// with a secret derived from the server key (so caller keys are the same
/// after a restart, and the database holds no caller ID).
fn start_guard(
    config: &Config,
    key: &ServerKey,
    stored: StoredGuard,
    anchor: WallAnchor,
    store: StoreHandle,
) -> Arc<GuardService> {
    let secret = key.mac(&[b"pinbridge brute-force guard caller keys"]);
    let mut core = BruteForceGuard::persistent(config.security.clone(), &secret);
    if stored.unreadable > 0 {
        tracing::warn!(
            rows = stored.unreadable,
            "ignoring unreadable brute-force guard rows in the database"
        );
    }
    let restored = anchor.restored(stored);
    let (lockouts, failures) = (restored.lockouts.len(), restored.failures.len());
    core.restore(std::time::Instant::now(), restored);
    if lockouts + failures > 0 {
        tracing::info!(lockouts, failures, "brute-force guard state restored");
    }
    let mut identity_sources = config.otp.identity.trusted_proxies.clone();
    identity_sources.extend(config.security.trusted_ips.iter().copied());
    GuardService::start(core, anchor, store, identity_sources)
}

/// Builds the verification service on the opened store with the
/// configured delivery channels (blocking work on the blocking pool), and
/// returns it with the handle to the store's thread.
async fn start_verify(
    config: &Config,
    clock: Arc<dyn Clock>,
    link: &TrunkLink,
    store: Store,
    key: ServerKey,
) -> io::Result<(VerifyService, StoreHandle)> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    // The service walks the channel order itself; the dispatcher sends on
    // exactly the channel it is asked for (it has no fallback order).
    let otp = &config.otp;
    let mut dispatcher =
        Dispatcher::from_settings(otp.webhook.as_ref(), otp.email.as_ref(), otp.log_channel)
            .map_err(|e| invalid(e.to_string()))?;
    if config.otp.trunk.is_some() {
        dispatcher = dispatcher
            .with_voice(Arc::new(VoiceSender { link: link.clone() }))
            .with_sip_message(Arc::new(SipMessageSender { link: link.clone() }));
    }
    let sender: Arc<dyn CodeSender> = Arc::new(dispatcher);
    let otp = config.otp.clone();
    let (service, handle, report) = tokio::task::spawn_blocking(move || {
        verify_setup::verify_service(&otp, store, key, sender, clock)
    })
    .await
    .map_err(|e| invalid(e.to_string()))?
    .map_err(|e| invalid(format!("{}: {e}", config.otp.store.path.display())))?;
    tracing::info!(db = %config.otp.store.path.display(), participants = ?report, "participant directory ready");
    Ok((service, handle))
}

/// The web join page's state: the cookie key loaded (or created, mode
/// 0600) from `[http] cookie_key_file`, and the conferences that take a
/// dial-in code.
async fn join_state(
    config: &Config,
    http: &HttpSettings,
    service: &VerifyService,
) -> io::Result<JoinState> {
    let path = http.cookie_key_file.clone();
    let key = tokio::task::spawn_blocking(move || load_or_create_key(&path))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("[http] cookie_key_file: {e}"),
            )
        })?;
    let conferences = JoinConference::from_config(config);
    if conferences.is_empty() {
        tracing::warn!("join page: no conference takes a dial-in code (it needs the pin or pin+otp flow and a PIN entry that holds 8 digits)");
    }
    Ok(JoinState::new(
        service.clone(),
        key,
        conferences,
        http.dialin_code_ttl,
    ))
}

/// The per-source limits, with the total of half-open INVITEs kept to
/// half the RTP ports: each holds a port until it is ACKed, so a flood of
/// them can never leave an admitted call without one.
fn source_limits(config: &Config) -> crate::sip::ua::SourceLimitSettings {
    let mut limits = config.sip.limits.clone();
    let (lo, hi) = config.rtp.ports;
    let ports = RtpPortAllocator::new(lo, hi).capacity();
    let bound = u32::try_from(ports / 2).unwrap_or(u32::MAX).max(1);
    if limits.max_half_open > bound {
        tracing::info!(
            configured = limits.max_half_open,
            rtp_ports = ports,
            max_half_open = bound,
            "[sip.limits] max_half_open lowered to half the RTP ports"
        );
        limits.max_half_open = bound;
    }
    limits
}

/// The SIP user agent's settings from the config.
fn ua_config(config: &Config) -> UaConfig {
    UaConfig {
        timers: TimerValues {
            t1: config.sip.t1,
            t2: config.sip.t2,
            t4: config.sip.t4,
        },
        min_session_expires: config.sip.min_session_expires,
        max_calls: config.sip.max_calls,
        limits: source_limits(config),
        ..UaConfig::default()
    }
}

/// Each conference's prompts: the global set with its own files over it.
fn conference_prompt_sets(config: &Config, prompts: &PromptSet) -> io::Result<Vec<PromptSet>> {
    config
        .conferences
        .iter()
        .map(|c| {
            prompts.with_overrides(&c.prompt_files).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("conference {}: {e}", c.name),
                )
            })
        })
        .collect()
}

/// Binds the HTTP API (and the join page when enabled) and starts serving
/// it until shutdown. Returns its address and its task.
async fn start_http(
    config: &Config,
    http: &HttpSettings,
    service: &VerifyService,
    shutdown_tx: watch::Sender<bool>,
    watch: &TaskWatch,
) -> io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let names = config.conferences.iter().map(|c| c.name.clone()).collect();
    let join = if http.join_page {
        Some(join_state(config, http, service).await?)
    } else {
        None
    };
    let app = crate::http::app(
        ApiState::new(service.clone(), http, names),
        http.max_body_bytes,
        join,
    );
    let server = HttpServer::bind(http.listen, app, http.limits.clone()).await?;
    let addr = server.local_addr()?;
    let mut stop = shutdown_tx.subscribe();
    let mut stopping = shutdown_tx.subscribe();
    let task = watch.spawn("HTTP server", async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = server.run(shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
        // Its end is expected only once the server is stopping.
        if *stopping.borrow_and_update() {
            std::future::pending::<()>().await;
        }
    });
    tracing::info!(http = %addr, join_page = http.join_page, "HTTP API listening");
    Ok((addr, task))
}

/// Binds the sockets and starts serving on the current tokio runtime.
pub async fn start(config: Config, prompts: PromptSet) -> io::Result<ServerHandle> {
    start_with_clock(config, prompts, Arc::new(SystemClock)).await
}

/// `start` with the verification clock injected (tests of expiry).
pub async fn start_with_clock(
    config: Config,
    prompts: PromptSet,
    clock: Arc<dyn Clock>,
) -> io::Result<ServerHandle> {
    let link = TrunkLink::default();
    // The store is always open: the brute-force guard keeps its lockouts
    // there across restarts.
    let anchor = WallAnchor::now();
    let opened = open_store(&config, anchor).await?;
    let guard_key = opened.key.clone();
    let (verify, store) = if needs_verify(&config) {
        let (service, store) =
            start_verify(&config, clock, &link, opened.store, opened.key).await?;
        (Some(service), store)
    } else {
        let store = StoreHandle::spawn(opened.store)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        (None, store)
    };
    let tcp_limits = fd_limit::tcp_limits_at_startup(&config);
    let guard = start_guard(&config, &guard_key, opened.guard, anchor, store);
    let (udp, tcp, sip_addr) = bind_sockets(&config)?;
    let udp = udp.map(Arc::new);
    let (net_tx, net_rx) = mpsc::channel(4096);
    let (cmd_tx, cmd_rx) = mpsc::channel(4096);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let conn_ids = Arc::new(ConnectionIds::default());
    let (watch, ended) = TaskWatch::new();

    let mut side_tasks = Vec::new();
    if let Some(u) = &udp {
        side_tasks.push(watch.spawn(
            "SIP UDP receiver",
            transport::run_udp(u.clone(), net_tx.clone()),
        ));
    }
    if let Some(t) = tcp {
        side_tasks.push(watch.spawn(
            "SIP TCP listener",
            transport::run_tcp_listener(t, conn_ids.clone(), net_tx.clone(), tcp_limits),
        ));
    }

    // The trunk's address: resolved now, or retried in the background.
    let (trunk_tx, trunk_rx) = watch::channel(None);
    if let Some(t) = &config.otp.trunk {
        let prefer_v4 = sip_addr.is_ipv4();
        match trunk::resolve_once(&t.proxy, prefer_v4).await {
            Some(a) => {
                tracing::info!(proxy = %t.proxy, address = %a, "SIP trunk resolved");
                let _ = trunk_tx.send(Some(a));
            }
            None => side_tasks.push(tokio::spawn(trunk::resolve_until_found(
                t.proxy.clone(),
                prefer_v4,
                trunk_tx,
            ))),
        }
    }
    let (req_tx, req_rx) = mpsc::channel(256);
    let sip_handle = SipHandle {
        requests: req_tx,
        trunk: trunk_rx.clone(),
        public_address: config.sip.public_address,
        listen: sip_addr,
    };

    let ua_cfg = ua_config(&config);
    let (lo, hi) = config.rtp.ports;
    let rtp_ip = config.sip.listen.ip();
    let conference_prompts = conference_prompt_sets(&config, &prompts)?;
    let env = Arc::new(CallEnv {
        ports: Arc::new(RtpPortAllocator::new(lo, hi)),
        prompts,
        conference_prompts,
        rtp_ip,
        rooms: Arc::new(room::RoomRegistry::default()),
        guard: guard.clone(),
        next_leg: std::sync::atomic::AtomicU64::new(1),
        admission: Arc::new(config.admission_rules(verify.is_some())),
        verify: verify.clone(),
        name_prompts: Default::default(),
        config: Arc::new(config.clone()),
    });
    link.bind(TrunkParts {
        sip: sip_handle.clone(),
        ports: env.ports.clone(),
        rtp_ip,
        prompts: env.prompts.clone(),
        codecs: config.rtp.codecs.clone(),
    });
    let sip = SipTask {
        ua: UserAgent::new(ua_cfg),
        udp,
        listen: sip_addr,
        public_address: config.sip.public_address,
        net_tx,
        net_rx,
        cmd_tx,
        cmd_rx,
        conn_ids,
        tcp_timeouts: tcp_limits.timeouts,
        env,
        shutdown: shutdown_rx,
        shutdown_grace: Duration::from_secs(5),
        requests: req_rx,
        trunk: config.otp.trunk.clone(),
        trunk_address: trunk_rx,
    };
    let task = watch.spawn("SIP", sip.run());

    let mut http_addr = None;
    if let (Some(http), Some(service)) = (&config.otp.http, &verify) {
        let (addr, server) =
            start_http(&config, http, service, shutdown_tx.clone(), &watch).await?;
        http_addr = Some(addr);
        side_tasks.push(server);
    }
    tracing::info!(sip = %sip_addr, udp = config.sip.udp, tcp = config.sip.tcp, rtp_ports = ?config.rtp.ports, "pinbridge listening");
    Ok(ServerHandle {
        sip_addr,
        http_addr,
        verify,
        shutdown: shutdown_tx,
        task,
        side_tasks,
        sip: sip_handle,
        ended,
        guard,
    })
}
