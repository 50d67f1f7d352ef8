//! The server key: 32 random bytes in a file of its own, created with mode
//! 0600 on first start. Codes are stored as HMAC-SHA256 under this key, so
//! a copy of the database alone does not let anyone test guesses offline
//! (a 6-digit code has only a million values; a plain hash would fall in
//! milliseconds).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::random;

pub const KEY_LEN: usize = 32;

/// A secret key. `Debug` is redacted.
#[derive(Clone)]
pub struct ServerKey([u8; KEY_LEN]);

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl ServerKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> ServerKey {
        ServerKey(bytes)
    }

    /// A fresh random key (for tests and in-memory use).
    pub fn random() -> Result<ServerKey, random::RandomError> {
        let mut k = [0u8; KEY_LEN];
        random::fill(&mut k)?;
        Ok(ServerKey(k))
    }

    /// HMAC-SHA256 over the parts, each followed by a 0 byte so that
    /// ("ab", "c") and ("a", "bc") differ.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC pads a key shorter than the hash's block (64 bytes) with
        // zeros, so padding it here gives the same MAC through the
        // infallible fixed-size constructor.
        let mut block = [0u8; 64];
        block[..KEY_LEN].copy_from_slice(&self.0);
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new(&block.into());
        for p in parts {
            m.update(p);
            m.update(&[0]);
        }
        m.finalize().into_bytes().into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: cannot read the key: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: cannot create the key: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("{path}: a key file holds exactly {KEY_LEN} bytes, this one {len} (delete it to make a new one; pending codes then stop working)")]
    WrongLength { path: PathBuf, len: usize },
    #[error("{path}: readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{0}")]
    Random(#[from] random::RandomError),
}

/// Loads the key at `path`, or creates it (32 random bytes, mode 0600) if
/// there is no file. Creation is atomic: the key is written to a temporary
/// file and hard-linked into place, so two processes starting at once end
/// up with the same key and nobody reads half a file.
pub fn load_or_create_key(path: &Path) -> Result<ServerKey, KeyError> {
    match fs::read(path) {
        Ok(bytes) => return check(path, bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(KeyError::Read {
                path: path.into(),
                source,
            })
        }
    }
    let key = ServerKey::random()?;
    let create = |source| KeyError::Create {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(create)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = write_private(&tmp, &key.0);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        // Someone else created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let bytes = fs::read(path).map_err(|source| KeyError::Read {
                path: path.into(),
                source,
            })?;
            check(path, bytes)
        }
        Err(e) => Err(create(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn check(path: &Path, bytes: Vec<u8>) -> Result<ServerKey, KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen {
                    path: path.into(),
                    mode,
                });
            }
        }
    }
    let arr: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::WrongLength {
            path: path.into(),
            len: bytes.len(),
        })?;
    Ok(ServerKey(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pinbridge-key-{}-{}",
            std::process::id(),
            random::id("").unwrap()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn created_once_with_mode_0600_then_reloaded() {
        let p = temp("server.key");
        let k1 = load_or_create_key(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let k2 = load_or_create_key(&p).unwrap();
        assert_eq!(k1.mac(&[b"x"]), k2.mac(&[b"x"]));
        assert!(!format!("{k1:?}").contains(&format!("{:?}", k1.0)));
    }

    #[test]
    fn rejects_short_and_open_files() {
        let p = temp("short.key");
        write_private(&p, b"too short").unwrap();
        assert!(matches!(
            load_or_create_key(&p),
            Err(KeyError::WrongLength { len: 9, .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = temp("open.key");
            fs::write(&p, [7u8; 32]).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load_or_create_key(&p),
                Err(KeyError::TooOpen { mode: 0o644, .. })
            ));
        }
    }

    #[test]
    fn mac_is_standard_hmac_sha256() {
        let k = ServerKey::from_bytes([0x0b; 32]);
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&[0x0b; 32]).unwrap();
        m.update(b"abc");
        m.update(&[0]);
        let want: [u8; 32] = m.finalize().into_bytes().into();
        assert_eq!(k.mac(&[b"abc"]), want);
    }

    #[test]
    fn mac_separates_parts() {
        let k = ServerKey::from_bytes([1; 32]);
        assert_ne!(k.mac(&[b"ab", b"c"]), k.mac(&[b"a", b"bc"]));
        assert_ne!(k.mac(&[b"x"]), ServerKey::from_bytes([2; 32]).mac(&[b"x"]));
    }
}
