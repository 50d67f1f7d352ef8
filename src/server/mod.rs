//! The tokio shell: binds the sockets, starts the transport tasks, the SIP
//! task and (through it) one task per call, and shuts them down gracefully.
//!
//! Where a packet goes: `transport.rs` reads it, `sip_task.rs` hands it to
//! the SIP core (`crate::sip::ua`) and starts or informs the call, and
//! `call.rs` runs the call's media and IVR.

pub mod call;
pub mod leg;
pub mod room;
pub mod rtp_ports;
pub mod sip_task;
pub mod transport;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::conference::guard::BruteForceGuard;
use crate::config::Config;
use crate::ivr::prompts::PromptSet;
use crate::sip::transaction::TimerValues;
use crate::sip::ua::{UaConfig, UserAgent};
use call::CallEnv;
use rtp_ports::RtpPortAllocator;
use sip_task::SipTask;
use transport::ConnectionIds;

/// A running server.
pub struct ServerHandle {
    /// The SIP address actually bound (UDP and TCP share the port).
    pub sip_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    side_tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// Starts a graceful shutdown: every call gets a BYE.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the SIP task has finished (after `shutdown`).
    pub async fn wait(self) {
        let _ = self.task.await;
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

/// Binds the sockets and starts serving on the current tokio runtime.
pub async fn start(config: Config, prompts: PromptSet) -> io::Result<ServerHandle> {
    let (udp, tcp, sip_addr) = bind_sockets(&config)?;
    let udp = udp.map(Arc::new);
    let (net_tx, net_rx) = mpsc::channel(4096);
    let (cmd_tx, cmd_rx) = mpsc::channel(4096);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let conn_ids = Arc::new(ConnectionIds::default());

    let mut side_tasks = Vec::new();
    if let Some(u) = &udp {
        side_tasks.push(tokio::spawn(transport::run_udp(u.clone(), net_tx.clone())));
    }
    if let Some(t) = tcp {
        side_tasks.push(tokio::spawn(transport::run_tcp_listener(
            t,
            conn_ids.clone(),
            net_tx.clone(),
        )));
    }

    let ua_cfg = UaConfig {
        timers: TimerValues {
            t1: config.sip.t1,
            t2: config.sip.t2,
            t4: config.sip.t4,
        },
        min_session_expires: config.sip.min_session_expires,
        max_calls: config.sip.max_calls,
        ..UaConfig::default()
    };
    let (lo, hi) = config.rtp.ports;
    let rtp_ip = config.sip.listen.ip();
    let mut conference_prompts = Vec::new();
    for c in &config.conferences {
        let set = prompts.with_overrides(&c.prompt_files).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("conference {}: {e}", c.name),
            )
        })?;
        conference_prompts.push(set);
    }
    let env = Arc::new(CallEnv {
        ports: RtpPortAllocator::new(lo, hi),
        prompts,
        conference_prompts,
        rtp_ip,
        rooms: Arc::new(room::RoomRegistry::default()),
        guard: std::sync::Mutex::new(BruteForceGuard::new(config.security.clone())),
        next_leg: std::sync::atomic::AtomicU64::new(1),
        config: Arc::new(config.clone()),
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
        env,
        shutdown: shutdown_rx,
        shutdown_grace: Duration::from_secs(5),
    };
    let task = tokio::spawn(sip.run());
    tracing::info!(sip = %sip_addr, udp = config.sip.udp, tcp = config.sip.tcp, rtp_ports = ?config.rtp.ports, "pinbridge listening");
    Ok(ServerHandle {
        sip_addr,
        shutdown: shutdown_tx,
        task,
        side_tasks,
    })
}
