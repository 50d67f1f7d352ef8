//! The `pinbridge` command line: parses the arguments, then runs the
//! server or one of the offline tools in `pinbridge::cli`.

// Peer- and operator-controlled text is never sliced by byte index: a
// multi-byte character at the cut panics. Use `get(..)`, `split_once`,
// `strip_prefix` or bytes (test code may allow it).
#![deny(clippy::string_slice)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rand::RngExt;

use pinbridge::cli;
use pinbridge::conference::pin::PinSecret;
use pinbridge::config::{parse_port_range, Config, LogFormat};
use pinbridge::ivr::prompts::PromptSet;

#[derive(Parser)]
#[command(
    name = "pinbridge",
    version,
    about = "A self-hosted SIP/RTP conference line gated by PIN or one-time passcode"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default, on the embedded configuration).
    Run(RunArgs),
    /// Validate a configuration file and exit (0 when valid).
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Manage the participant directory (the database at `[store] path`).
    Participants {
        /// Configuration file (TOML); without it the embedded default is used.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: pinbridge::cli::participants::ParticipantsCommand,
    },
    /// Print the DTMF digits in a WAV file or an RTP capture (pcap/pcapng):
    /// one line per digit, `<start_ms> <digit> <method>`.
    DetectDtmf {
        /// A WAV (any PCM rate) or a pcap/pcapng with RTP over UDP.
        file: PathBuf,
        /// Payload type of telephone-events (default: from SDP in the
        /// capture, else inferred).
        #[arg(long, value_name = "PT")]
        event_pt: Option<u8>,
    },
    /// Print an argon2 hash of a PIN for `pin_hash` / `moderator_pin_hash`.
    /// Reads the PIN from standard input unless given (an argument is
    /// visible to other users in the process list).
    HashPin { pin: Option<String> },
}

#[derive(clap::Args, Default)]
struct RunArgs {
    /// Configuration file (TOML); without it the embedded default is used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// SIP listen address for UDP and TCP, overriding the file.
    #[arg(long, value_name = "ADDR:PORT")]
    sip: Option<SocketAddr>,
    /// RTP port range, overriding the file.
    #[arg(long, value_name = "LO-HI")]
    rtp_ports: Option<String>,
    /// Log format, overriding the file.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        None => run(RunArgs::default()),
        Some(Command::Run(args)) => run(args),
        Some(Command::HashPin { pin }) => cli::hash_pin::main(pin),
        Some(Command::Participants { config, command }) => {
            cli::participants::main(config.as_deref(), command)
        }
        Some(Command::DetectDtmf { file, event_pt }) => cli::detect_dtmf::main(&file, event_pt),
        Some(Command::CheckConfig { file }) => cli::check_config::main(&file),
    }
}

fn load_config(args: &RunArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::embedded_default(),
    };
    if let Some(sip) = args.sip {
        config.sip.listen = sip;
    }
    if let Some(r) = &args.rtp_ports {
        config.rtp.ports = parse_port_range(r).map_err(|e| format!("--rtp-ports: {e}"))?;
    }
    match args.log_format {
        Some(LogFormatArg::Text) => config.log.format = LogFormat::Text,
        Some(LogFormatArg::Json) => config.log.format = LogFormat::Json,
        None => {}
    }
    apply_conference_pin(&mut config)?;
    Ok(config)
}

/// CONFERENCE_PIN sets the PIN of every conference that asks for one and
/// has none in the file (an `otp` conference asks for none); without it a random 6-digit PIN is generated and printed (to
/// stdout, once; PINs never go to the log).
fn apply_conference_pin(config: &mut Config) -> Result<(), String> {
    let env_pin = std::env::var("CONFERENCE_PIN")
        .ok()
        .filter(|p| !p.is_empty());
    let env_secret = match &env_pin {
        Some(p) => Some(PinSecret::plain(p).map_err(|e| format!("CONFERENCE_PIN: {e}"))?),
        None => None,
    };
    for conf in config
        .conferences
        .iter_mut()
        .filter(|c| c.pin.is_none() && c.flow.asks_for_pin())
    {
        match &env_secret {
            Some(secret) => conf.pin = Some(secret.clone()),
            None => {
                let pin = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
                println!(
                    "Conference \"{}\": PIN {pin} (set CONFERENCE_PIN to choose your own)",
                    conf.name
                );
                conf.pin = PinSecret::plain(&pin).ok();
            }
        }
    }
    Ok(())
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        // Peer-controlled values are escaped so they cannot forge a line.
        LogFormat::Text => builder
            .fmt_fields(pinbridge::server::log_format::EscapingFields)
            .init(),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config);
    // A panic anywhere is a bug: log it and exit non-zero so the service
    // manager restarts us, rather than run on with a dead task.
    pinbridge::server::supervise::exit_on_panic();
    match pinbridge::fault::arm_from_env() {
        Ok(None) => {}
        Ok(Some(site)) => tracing::warn!(
            %site,
            "{} is set: this process will panic on purpose (supervision tests only)",
            pinbridge::fault::ENV
        ),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    let prompts = match PromptSet::load(&config.prompt_files) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: prompts: {e}", config.source);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut server = match pinbridge::server::start(config, prompts).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        let code = tokio::select! {
            _ = wait_for_signal() => {
                tracing::info!("signal received: shutting down");
                ExitCode::SUCCESS
            }
            ended = server.task_ended() => {
                tracing::error!(
                    task = ended.task,
                    panicked = ended.panicked,
                    "internal error: a long-lived task stopped; shutting down so that the service manager restarts pinbridge"
                );
                ExitCode::from(pinbridge::server::supervise::EXIT_INTERNAL_ERROR)
            }
        };
        server.stop().await;
        code
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
