//! `[sip.limits]`: per-source request rates, half-open INVITE bounds and
//! reply budgets (what they mean: `crate::sip::ua::source_limits`), and
//! `[[sip.limits.source]]` entries that give a PBX or trunk more.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Ctx, Seg};
use crate::sip::ua::source_limits::{IpNet, RequestRate, SourceOverride};
use crate::sip::ua::SourceLimitSettings;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSipLimits {
    requests_per_sec: i64,
    request_burst: i64,
    confirmed_requests_per_sec: i64,
    confirmed_request_burst: i64,
    max_half_open_per_source: i64,
    confirmed_max_half_open_per_source: i64,
    max_half_open: i64,
    reply_budget_bytes: i64,
    reply_refill_bytes_per_sec: i64,
    max_sources: i64,
    idle_timeout_secs: i64,
    log_interval_secs: i64,
    source: Vec<RawSourceLimits>,
}

impl Default for RawSipLimits {
    fn default() -> Self {
        let d = SourceLimitSettings::default();
        RawSipLimits {
            requests_per_sec: d.new_source_rate.per_sec.into(),
            request_burst: d.new_source_rate.burst.into(),
            confirmed_requests_per_sec: d.confirmed_rate.per_sec.into(),
            confirmed_request_burst: d.confirmed_rate.burst.into(),
            max_half_open_per_source: d.max_half_open_per_source.into(),
            confirmed_max_half_open_per_source: d.confirmed_max_half_open_per_source.into(),
            max_half_open: d.max_half_open.into(),
            reply_budget_bytes: d.reply_budget_bytes.into(),
            reply_refill_bytes_per_sec: d.reply_refill_bytes_per_sec.into(),
            max_sources: d.max_sources as i64,
            idle_timeout_secs: d.idle_timeout.as_secs() as i64,
            log_interval_secs: d.log_interval.as_secs() as i64,
            source: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSourceLimits {
    cidr: String,
    #[serde(default)]
    requests_per_sec: Option<i64>,
    #[serde(default)]
    request_burst: Option<i64>,
    #[serde(default)]
    max_half_open: Option<i64>,
}

pub(super) fn validate(
    ctx: &Ctx<'_>,
    raw: &RawSipLimits,
) -> Result<SourceLimitSettings, ConfigError> {
    let path = |key: &'static str| [Seg::Key("sip"), Seg::Key("limits"), Seg::Key(key)];
    let range = |v: i64, lo: i64, hi: i64, p: &[Seg<'_>]| -> Result<u32, ConfigError> {
        if (lo..=hi).contains(&v) {
            Ok(v as u32)
        } else {
            Err(ctx.err(p, format!("must be between {lo} and {hi}, got {v}")))
        }
    };
    const MILLION: i64 = 1_000_000;
    let new_source_rate = RequestRate {
        per_sec: range(raw.requests_per_sec, 1, MILLION, &path("requests_per_sec"))?,
        burst: range(raw.request_burst, 1, MILLION, &path("request_burst"))?,
    };
    let confirmed_rate = RequestRate {
        per_sec: range(
            raw.confirmed_requests_per_sec,
            1,
            MILLION,
            &path("confirmed_requests_per_sec"),
        )?,
        burst: range(
            raw.confirmed_request_burst,
            1,
            MILLION,
            &path("confirmed_request_burst"),
        )?,
    };
    let max_half_open_per_source = range(
        raw.max_half_open_per_source,
        1,
        MILLION,
        &path("max_half_open_per_source"),
    )?;
    let confirmed_max_half_open_per_source = range(
        raw.confirmed_max_half_open_per_source,
        1,
        MILLION,
        &path("confirmed_max_half_open_per_source"),
    )?;
    let max_half_open = range(raw.max_half_open, 1, MILLION, &path("max_half_open"))?;
    let reply_budget_bytes = range(
        raw.reply_budget_bytes,
        1500,
        16 * 1024 * 1024,
        &path("reply_budget_bytes"),
    )?;
    let reply_refill_bytes_per_sec = range(
        raw.reply_refill_bytes_per_sec,
        0,
        MILLION,
        &path("reply_refill_bytes_per_sec"),
    )?;
    let max_sources = range(raw.max_sources, 16, 10 * MILLION, &path("max_sources"))? as usize;
    let idle_timeout = range(raw.idle_timeout_secs, 1, 86_400, &path("idle_timeout_secs"))?;
    let log_interval = range(raw.log_interval_secs, 1, 86_400, &path("log_interval_secs"))?;

    let mut overrides = Vec::new();
    for (i, s) in raw.source.iter().enumerate() {
        let p = |key: &'static str| {
            [
                Seg::Key("sip"),
                Seg::Key("limits"),
                Seg::Key("source"),
                Seg::Index(i),
                Seg::Key(key),
            ]
        };
        let net: IpNet = s
            .cidr
            .parse()
            .map_err(|e| ctx.err(&p("cidr"), format!("{e}")))?;
        let rate = match (s.requests_per_sec, s.request_burst) {
            (None, None) => None,
            (per_sec, burst) => {
                let per_sec = match per_sec {
                    Some(v) => range(v, 1, MILLION, &p("requests_per_sec"))?,
                    None => confirmed_rate.per_sec,
                };
                // Two seconds' worth unless given.
                let burst = match burst {
                    Some(v) => range(v, 1, MILLION, &p("request_burst"))?,
                    None => per_sec.saturating_mul(2),
                };
                Some(RequestRate { per_sec, burst })
            }
        };
        let max_half_open = s
            .max_half_open
            .map(|v| range(v, 1, MILLION, &p("max_half_open")))
            .transpose()?;
        overrides.push(SourceOverride {
            net,
            rate,
            max_half_open,
        });
    }

    Ok(SourceLimitSettings {
        new_source_rate,
        confirmed_rate,
        max_half_open_per_source,
        confirmed_max_half_open_per_source,
        max_half_open,
        reply_budget_bytes,
        reply_refill_bytes_per_sec,
        max_sources,
        idle_timeout: Duration::from_secs(idle_timeout.into()),
        log_interval: Duration::from_secs(log_interval.into()),
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::Path;

    use super::super::Config;
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("{text}\n[[conference]]\nname = \"a\"\n"),
            "test.toml",
            Path::new("."),
        )
    }

    #[test]
    fn the_defaults_are_the_cores_defaults() {
        let c = Config::embedded_default();
        assert_eq!(c.sip.limits, SourceLimitSettings::default());
        let c = parse("").unwrap();
        assert_eq!(c.sip.limits, SourceLimitSettings::default());
    }

    #[test]
    fn limits_and_trunk_overrides_are_read() {
        let c = parse(
            "[sip.limits]\nrequests_per_sec = 5\nmax_half_open_per_source = 3\n\
             [[sip.limits.source]]\ncidr = \"198.51.100.0/24\"\nrequests_per_sec = 4000\nmax_half_open = 900\n\
             [[sip.limits.source]]\ncidr = \"2001:db8::1\"\n",
        )
        .unwrap();
        let l = &c.sip.limits;
        assert_eq!(l.new_source_rate.per_sec, 5);
        assert_eq!(l.max_half_open_per_source, 3);
        assert_eq!(l.overrides.len(), 2);
        let trunk = &l.overrides[0];
        assert!(trunk
            .net
            .contains("198.51.100.9".parse::<IpAddr>().unwrap()));
        assert_eq!(
            trunk.rate,
            Some(RequestRate {
                per_sec: 4000,
                burst: 8000
            })
        );
        assert_eq!(trunk.max_half_open, Some(900));
        assert_eq!(
            (l.overrides[1].rate, l.overrides[1].max_half_open),
            (None, None)
        );
    }

    #[test]
    fn bad_limits_name_file_line_and_key() {
        let cases = [
            (
                "[sip.limits]\n\nrequests_per_sec = 0\n",
                "sip.limits.requests_per_sec",
                3,
            ),
            (
                "[sip.limits]\nmax_half_open = -1\n",
                "sip.limits.max_half_open",
                2,
            ),
            (
                "[sip.limits]\nreply_budget_bytes = 10\n",
                "sip.limits.reply_budget_bytes",
                2,
            ),
            (
                "[[sip.limits.source]]\ncidr = \"10.0.0.0/8\"\n[[sip.limits.source]]\ncidr = \"10.1.0.0/99\"\n",
                "sip.limits.source[1].cidr",
                4,
            ),
            (
                "[[sip.limits.source]]\ncidr = \"pbx.example\"\n",
                "sip.limits.source[0].cidr",
                2,
            ),
            (
                "[[sip.limits.source]]\ncidr = \"10.0.0.1\"\nmax_half_open = 0\n",
                "sip.limits.source[0].max_half_open",
                3,
            ),
            (
                "[sip.limits]\nrequest_per_sec = 5\n",
                "sip.limits.request_per_sec",
                2,
            ),
        ];
        for (text, key, line) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(line)), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("test.toml:{line}: {key}: ")),
                "{e}"
            );
        }
        let e = parse("[[sip.limits.source]]\nrequests_per_sec = 5\n").unwrap_err();
        assert!(e.to_string().contains("cidr"), "{e}");
    }
}
