//! `[log]`: text or JSON lines, and the level or `tracing` filter.

use serde::Deserialize;

use super::{ConfigError, Ctx, LogFormat, LogSettings, Seg};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    format: String,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// `[log]`: a known format, and a level the `tracing` filter accepts.
pub(super) fn validate(ctx: &Ctx<'_>, raw: &RawLog) -> Result<LogSettings, ConfigError> {
    let format = match raw.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ctx.err(
                &[Seg::Key("log"), Seg::Key("format")],
                format!("`{other}` is not \"text\" or \"json\""),
            ))
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
        return Err(ctx.err(
            &[Seg::Key("log"), Seg::Key("level")],
            format!("`{}` is not a log level or filter", raw.level),
        ));
    }
    Ok(LogSettings {
        format,
        level: raw.level.clone(),
    })
}
