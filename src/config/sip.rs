//! `[sip]` and `[sip.tcp]`: where SIP is spoken and over which transports,
//! the call limit, the RFC 3261 timers, and the TCP connection limits.
//! `[sip.limits]` has its own file (`limits.rs`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use super::{limits, ConfigError, Ctx, Seg, SipSettings, TcpSettings};
use crate::sip::ua::SourceLimitSettings;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSip {
    listen: String,
    transports: Vec<String>,
    public_address: Option<String>,
    max_calls: i64,
    min_session_expires: i64,
    t1_ms: i64,
    t2_ms: i64,
    t4_ms: i64,
    answer_delay_ms: i64,
    pub(super) limits: limits::RawSipLimits,
    tcp: RawSipTcp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSipTcp {
    max_connections: Option<i64>,
    max_connections_per_source: i64,
    message_timeout_ms: i64,
    idle_timeout_secs: i64,
}

impl Default for RawSipTcp {
    fn default() -> Self {
        RawSipTcp {
            max_connections: None,
            max_connections_per_source: 32,
            message_timeout_ms: 5000,
            idle_timeout_secs: 300,
        }
    }
}

impl Default for RawSip {
    fn default() -> Self {
        RawSip {
            listen: "0.0.0.0:5060".into(),
            transports: vec!["udp".into(), "tcp".into()],
            public_address: None,
            max_calls: 5000,
            min_session_expires: 90,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            answer_delay_ms: 0,
            limits: limits::RawSipLimits::default(),
            tcp: RawSipTcp::default(),
        }
    }
}

/// `[sip]` and `[sip.tcp]`.
///
/// The `limits` of the result are the defaults: `Config::parse` checks
/// `[sip.limits]` later, after the conferences, as it always has, so that a
/// file with several mistakes keeps reporting the same one first.
pub(super) fn validate(ctx: &Ctx<'_>, s: &RawSip) -> Result<SipSettings, ConfigError> {
    let key = |key| [Seg::Key("sip"), Seg::Key(key)];
    let listen: SocketAddr = s.listen.parse().map_err(|_| {
        ctx.err(
            &key("listen"),
            format!("`{}` is not an IP:port address", s.listen),
        )
    })?;
    let (udp, tcp) = transports(ctx, &s.transports)?;
    let public_address = match &s.public_address {
        None => None,
        Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
            ctx.err(
                &key("public_address"),
                format!("`{a}` is not an IP address"),
            )
        })?),
    };
    let positive = |v: i64, name: &'static str, max: i64| {
        if v < 1 || v > max {
            Err(ctx.err(&key(name), format!("must be between 1 and {max}, got {v}")))
        } else {
            Ok(v)
        }
    };
    let max_calls = positive(s.max_calls, "max_calls", 1_000_000)? as usize;
    let min_se = positive(s.min_session_expires, "min_session_expires", 86_400)? as u32;
    let t1 = positive(s.t1_ms, "t1_ms", 60_000)? as u64;
    let t2 = positive(s.t2_ms, "t2_ms", 600_000)? as u64;
    let t4 = positive(s.t4_ms, "t4_ms", 600_000)? as u64;
    if !(0..=60_000).contains(&s.answer_delay_ms) {
        return Err(ctx.err(
            &key("answer_delay_ms"),
            "must be between 0 and 60000".into(),
        ));
    }
    if t2 < t1 {
        return Err(ctx.err(&key("t2_ms"), format!("must not be below t1_ms ({t1})")));
    }
    let tcp_connections = validate_tcp(ctx, &s.tcp)?;
    Ok(SipSettings {
        listen,
        udp,
        tcp,
        public_address,
        max_calls,
        min_session_expires: min_se,
        t1: Duration::from_millis(t1),
        t2: Duration::from_millis(t2),
        t4: Duration::from_millis(t4),
        answer_delay: Duration::from_millis(s.answer_delay_ms as u64),
        limits: SourceLimitSettings::default(),
        tcp_connections,
    })
}

/// `transports`: whether UDP and TCP are on; at least one must be.
fn transports(ctx: &Ctx<'_>, names: &[String]) -> Result<(bool, bool), ConfigError> {
    let (mut udp, mut tcp) = (false, false);
    for (i, t) in names.iter().enumerate() {
        match t.to_ascii_lowercase().as_str() {
            "udp" => udp = true,
            "tcp" => tcp = true,
            other => {
                return Err(ctx.err(
                    &[Seg::Key("sip"), Seg::Key("transports"), Seg::Index(i)],
                    format!("unknown transport `{other}` (use \"udp\" and/or \"tcp\")"),
                ))
            }
        }
    }
    if !udp && !tcp {
        return Err(ctx.err(
            &[Seg::Key("sip"), Seg::Key("transports")],
            "at least one transport is needed".into(),
        ));
    }
    Ok((udp, tcp))
}

/// `[sip.tcp]`: every count and time within bounds, and a per-source cap
/// no larger than the total one.
fn validate_tcp(ctx: &Ctx<'_>, t: &RawSipTcp) -> Result<TcpSettings, ConfigError> {
    let within = |v: i64, key: &'static str, lo: i64, hi: i64| {
        if (lo..=hi).contains(&v) {
            Ok(v as u64)
        } else {
            Err(ctx.err(
                &[Seg::Key("sip"), Seg::Key("tcp"), Seg::Key(key)],
                format!("must be between {lo} and {hi}, got {v}"),
            ))
        }
    };
    let max_connections = match t.max_connections {
        None => None,
        Some(v) => Some(within(v, "max_connections", 1, 1_000_000)? as usize),
    };
    let per_source = within(
        t.max_connections_per_source,
        "max_connections_per_source",
        1,
        1_000_000,
    )? as usize;
    if let Some(total) = max_connections.filter(|&total| per_source > total) {
        return Err(ctx.err(
            &[
                Seg::Key("sip"),
                Seg::Key("tcp"),
                Seg::Key("max_connections_per_source"),
            ],
            format!("must not exceed max_connections ({total})"),
        ));
    }
    Ok(TcpSettings {
        max_connections,
        max_connections_per_source: per_source,
        message_timeout: Duration::from_millis(within(
            t.message_timeout_ms,
            "message_timeout_ms",
            100,
            600_000,
        )?),
        idle_timeout: Duration::from_secs(within(
            t.idle_timeout_secs,
            "idle_timeout_secs",
            1,
            86_400,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::parse;
    use crate::config::{Config, DEFAULT_CONFIG};

    #[test]
    fn sip_tcp_limits_default_and_validate() {
        let c = Config::embedded_default();
        assert_eq!(
            c.sip.tcp_connections,
            TcpSettings {
                max_connections: None,
                max_connections_per_source: 32,
                message_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(300),
            }
        );
        // The commented-out block in the default file is valid as written
        // (only that block: other sections have keys of the same names).
        let keys = [
            "[sip.tcp]",
            "max_connections =",
            "max_connections_per_source =",
            "message_timeout_ms =",
            "idle_timeout_secs =",
        ];
        let mut in_block = false;
        let uncommented: Vec<&str> = DEFAULT_CONFIG
            .lines()
            .map(|l| {
                if l == "# [sip.tcp]" {
                    in_block = true;
                } else if !l.starts_with('#') {
                    in_block = false;
                }
                match l.strip_prefix("# ") {
                    Some(rest) if in_block && keys.iter().any(|k| rest.starts_with(k)) => rest,
                    _ => l,
                }
            })
            .collect();
        let c = parse(&uncommented.join("\n")).unwrap();
        assert_eq!(c.sip.tcp_connections.max_connections, Some(1000));
        assert_eq!(c.sip.tcp_connections.max_connections_per_source, 32);
        let c = parse(
            "[sip.tcp]\nmax_connections = 100\nmax_connections_per_source = 10\n\
             message_timeout_ms = 2500\nidle_timeout_secs = 60\n[[conference]]\nname = \"a\"\n",
        )
        .unwrap();
        assert_eq!(c.sip.tcp_connections.max_connections, Some(100));
        assert_eq!(c.sip.tcp_connections.max_connections_per_source, 10);
        assert_eq!(
            c.sip.tcp_connections.message_timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(c.sip.tcp_connections.idle_timeout, Duration::from_secs(60));
        let cases = [
            (
                "[sip.tcp]\nmax_connections = 0\n",
                "sip.tcp.max_connections",
                2,
            ),
            (
                "[sip]\nt1_ms = 500\n[sip.tcp]\n\nmax_connections_per_source = -1\n",
                "sip.tcp.max_connections_per_source",
                5,
            ),
            (
                "[sip.tcp]\nmax_connections = 8\nmax_connections_per_source = 9\n",
                "sip.tcp.max_connections_per_source",
                3,
            ),
            (
                "[sip.tcp]\nmessage_timeout_ms = 10\n",
                "sip.tcp.message_timeout_ms",
                2,
            ),
            (
                "[sip.tcp]\nidle_timeout_secs = 0\n",
                "sip.tcp.idle_timeout_secs",
                2,
            ),
            ("[sip.tcp]\nidle_timeout = 5\n", "sip.tcp.idle_timeout", 2),
        ];
        for (body, key, line) in cases {
            let text = format!("{body}[[conference]]\nname = \"a\"\n");
            let e = parse(&text).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(line)), "{e}");
        }
    }
}
