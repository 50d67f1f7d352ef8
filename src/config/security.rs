//! `[security]`: the brute-force guard's limits (failures per caller, per
//! source address and per conference, their windows, the lockout) and the
//! trusted sources (a PBX or trunk many callers share) with their own
//! ceiling.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Ctx, Seg};
use crate::conference::guard::GuardLimits;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSecurity {
    caller_failures: i64,
    caller_window_secs: i64,
    ip_failures: i64,
    ip_window_secs: i64,
    conference_failures: i64,
    conference_window_secs: i64,
    lockout_secs: i64,
    attack_delay_ms: i64,
    trusted_ips: Vec<String>,
    trusted_source_failures: i64,
    trusted_source_window_secs: i64,
    trusted_source_interval_ms: i64,
}

impl Default for RawSecurity {
    fn default() -> Self {
        RawSecurity {
            caller_failures: 5,
            caller_window_secs: 900,
            ip_failures: 10,
            ip_window_secs: 900,
            conference_failures: 20,
            conference_window_secs: 60,
            lockout_secs: 900,
            attack_delay_ms: 3000,
            trusted_ips: Vec::new(),
            trusted_source_failures: 30,
            trusted_source_window_secs: 900,
            trusted_source_interval_ms: 10_000,
        }
    }
}

/// `[security]`: counts that fit, windows from a second to a week, delays
/// within bounds, and trusted addresses that are IP addresses.
pub(super) fn validate(ctx: &Ctx<'_>, sec: &RawSecurity) -> Result<GuardLimits, ConfigError> {
    let count = |v: i64, key: &'static str| -> Result<u32, ConfigError> {
        u32::try_from(v).map_err(|_| {
            ctx.err(
                &[Seg::Key("security"), Seg::Key(key)],
                "must be 0 (off) or a positive count".into(),
            )
        })
    };
    let secs = |v: i64, key: &'static str| -> Result<Duration, ConfigError> {
        if (1..=86_400 * 7).contains(&v) {
            Ok(Duration::from_secs(v as u64))
        } else {
            Err(ctx.err(
                &[Seg::Key("security"), Seg::Key(key)],
                "must be between 1 and 604800 seconds".into(),
            ))
        }
    };
    let mut trusted_ips = Vec::new();
    for (i, ip) in sec.trusted_ips.iter().enumerate() {
        trusted_ips.push(ip.parse::<IpAddr>().map_err(|_| {
            ctx.err(
                &[Seg::Key("security"), Seg::Key("trusted_ips"), Seg::Index(i)],
                format!("`{ip}` is not an IP address"),
            )
        })?);
    }
    if !(0..=60_000).contains(&sec.attack_delay_ms) {
        return Err(ctx.err(
            &[Seg::Key("security"), Seg::Key("attack_delay_ms")],
            "must be between 0 and 60000".into(),
        ));
    }
    if !(0..=300_000).contains(&sec.trusted_source_interval_ms) {
        return Err(ctx.err(
            &[Seg::Key("security"), Seg::Key("trusted_source_interval_ms")],
            "must be between 0 and 300000".into(),
        ));
    }
    Ok(GuardLimits {
        caller_failures: count(sec.caller_failures, "caller_failures")?,
        caller_window: secs(sec.caller_window_secs, "caller_window_secs")?,
        ip_failures: count(sec.ip_failures, "ip_failures")?,
        ip_window: secs(sec.ip_window_secs, "ip_window_secs")?,
        conference_failures: count(sec.conference_failures, "conference_failures")?,
        conference_window: secs(sec.conference_window_secs, "conference_window_secs")?,
        lockout: secs(sec.lockout_secs, "lockout_secs")?,
        attack_delay: Duration::from_millis(sec.attack_delay_ms as u64),
        trusted_ips,
        trusted_failures: count(sec.trusted_source_failures, "trusted_source_failures")?,
        trusted_window: secs(sec.trusted_source_window_secs, "trusted_source_window_secs")?,
        trusted_interval: Duration::from_millis(sec.trusted_source_interval_ms as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::parse;
    use crate::config::Config;

    #[test]
    fn trusted_source_ceiling_keys_are_read_and_checked() {
        let c = parse(
            "[security]\ntrusted_ips = [\"192.0.2.10\"]\ntrusted_source_failures = 12\n\
             trusted_source_window_secs = 600\ntrusted_source_interval_ms = 2500\n\
             [[conference]]\nname = \"a\"\n",
        )
        .unwrap();
        let s = &c.security;
        assert_eq!(s.trusted_failures, 12);
        assert_eq!(s.trusted_window, Duration::from_secs(600));
        assert_eq!(s.trusted_interval, Duration::from_millis(2500));
        let d = Config::embedded_default().security;
        assert_eq!(
            (d.trusted_failures, d.trusted_window, d.trusted_interval),
            (30, Duration::from_secs(900), Duration::from_secs(10))
        );
        for (text, key) in [
            (
                "trusted_source_failures = -1",
                "security.trusted_source_failures",
            ),
            (
                "trusted_source_window_secs = 0",
                "security.trusted_source_window_secs",
            ),
            (
                "trusted_source_interval_ms = 300001",
                "security.trusted_source_interval_ms",
            ),
        ] {
            let e = parse(&format!(
                "[security]\n{text}\n[[conference]]\nname = \"a\"\n"
            ))
            .unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(2)), "{e}");
        }
    }
}
