//! `[rtp]`, `[dtmf]` and `[prompts]`: the media a call uses (ports, codecs,
//! how digits arrive) and the operator's recordings. Prompt tables also
//! appear per conference, so their check is shared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Ctx, RtpSettings, Seg};
use crate::ivr::prompts::PromptId;
use crate::media::dtmf::DtmfMode;
use crate::media::g711::Codec;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRtp {
    port_range: String,
    inactivity_timeout_secs: i64,
    codecs: Vec<String>,
}

impl Default for RawRtp {
    fn default() -> Self {
        RawRtp {
            port_range: "10000-20000".into(),
            inactivity_timeout_secs: 30,
            codecs: vec!["PCMU".into(), "PCMA".into()],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDtmf {
    mode: String,
}

impl Default for RawDtmf {
    fn default() -> Self {
        RawDtmf {
            mode: "auto".into(),
        }
    }
}

/// `[rtp]`: a port range with an even port in it, an inactivity timeout
/// (0 turns it off), and at least one known codec (repeats dropped).
pub(super) fn validate_rtp(ctx: &Ctx<'_>, r: &RawRtp) -> Result<RtpSettings, ConfigError> {
    let range_path = [Seg::Key("rtp"), Seg::Key("port_range")];
    let ports = parse_port_range(&r.port_range).map_err(|m| ctx.err(&range_path, m))?;
    if !(0..=86_400).contains(&r.inactivity_timeout_secs) {
        return Err(ctx.err(
            &[Seg::Key("rtp"), Seg::Key("inactivity_timeout_secs")],
            "must be between 0 (off) and 86400".into(),
        ));
    }
    let inactivity_timeout = (r.inactivity_timeout_secs > 0)
        .then(|| Duration::from_secs(r.inactivity_timeout_secs as u64));
    let mut codecs = Vec::new();
    for (i, c) in r.codecs.iter().enumerate() {
        let codec = Codec::from_encoding_name(c).ok_or_else(|| {
            ctx.err(
                &[Seg::Key("rtp"), Seg::Key("codecs"), Seg::Index(i)],
                format!("unknown codec `{c}` (use \"PCMU\" or \"PCMA\")"),
            )
        })?;
        if !codecs.contains(&codec) {
            codecs.push(codec);
        }
    }
    if codecs.is_empty() {
        return Err(ctx.err(
            &[Seg::Key("rtp"), Seg::Key("codecs")],
            "at least one codec is needed".into(),
        ));
    }
    Ok(RtpSettings {
        ports,
        inactivity_timeout,
        codecs,
    })
}

/// Parses `LO-HI` into an inclusive range holding at least one even port.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not a port range like \"10000-20000\"");
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || hi < lo {
        return Err(format!(
            "`{s}`: the range must be non-empty and start above 0"
        ));
    }
    if hi - lo < 1 && lo % 2 == 1 {
        return Err(format!("`{s}` holds no even port"));
    }
    Ok((lo, hi))
}

/// `[dtmf]`: the global way digits are read.
pub(super) fn validate_dtmf(ctx: &Ctx<'_>, d: &RawDtmf) -> Result<DtmfMode, ConfigError> {
    DtmfMode::from_name(&d.mode).ok_or_else(|| {
        ctx.err(
            &[Seg::Key("dtmf"), Seg::Key("mode")],
            format!("`{}` is not auto, rfc4733, inband or info", d.mode),
        )
    })
}

/// A prompt table (`[prompts]`, or a conference's `prompts`) at `prefix`:
/// known prompt names, paths resolved against the file's directory.
pub(super) fn prompt_files(
    ctx: &Ctx<'_>,
    table: &BTreeMap<String, String>,
    prefix: &[Seg<'_>],
) -> Result<BTreeMap<PromptId, PathBuf>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, path) in table {
        let mut at = prefix.to_vec();
        at.push(Seg::Key(name));
        let id = PromptId::from_name(name).ok_or_else(|| {
            ctx.err(
                &at,
                format!(
                    "unknown prompt `{name}`; known prompts: {}",
                    PromptId::names().join(", ")
                ),
            )
        })?;
        out.insert(id, ctx.path(path));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::parse;

    #[test]
    fn prompt_paths_resolve_against_the_config_directory() {
        let c = parse("[prompts]\nwelcome = \"mine/hello.wav\"\n[[conference]]\nname = \"a\"\n")
            .unwrap();
        assert_eq!(
            c.prompt_files[&PromptId::Welcome],
            PathBuf::from("/etc/pinbridge/mine/hello.wav")
        );
    }
}
