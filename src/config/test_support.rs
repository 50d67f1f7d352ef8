//! Helpers shared by the configuration tests.

use std::path::Path;

use super::{Config, ConfigError};

/// Parses `text` as `test.toml` in `/etc/pinbridge`, the directory relative
/// paths in it resolve against.
pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/etc/pinbridge"))
}
