//! TCP-MD5 passwords from Calico's `password.secretKeyRef {name, key}` (BGPPeer
//! `spec.password`, BGPConfiguration `nodeMeshPassword`).
//!
//! The reference names a Kubernetes secret. With etcd as the only datastore there is no
//! secret API, so [`FileSecrets`] reads `<dir>/<name>/<key>`: the layout of a Kubernetes secret
//! mounted as a volume, so the same node configuration works on a bare host (files written by
//! the operator) and under a DaemonSet (the secret mounted at `<dir>/<name>`). One trailing
//! newline is stripped (what `echo secret > file` leaves); a file readable by everyone is used
//! but warned about.
//!
//! Fail closed: a peer whose password cannot be read is not started at all (never without
//! MD5, which the other side would reject anyway, or worse accept); the cluster agent logs the
//! peer, the secret and the path, and tries again periodically and on request.

use std::fmt::Debug;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A `secretKeyRef`: which secret and which key in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// The secret's name (`None`: the reference is incomplete).
    pub name: Option<String>,
    /// The key inside the secret.
    pub key: String,
    /// Calico's `optional`: a missing secret means no password rather than an error.
    pub optional: bool,
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.name.as_deref().unwrap_or("<no name>"),
            self.key
        )
    }
}

/// Why a password could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The reference has no secret name.
    #[error("secretKeyRef {0} names no secret")]
    NoName(SecretRef),
    /// The name or key would leave the secrets directory.
    #[error("secretKeyRef {0}: name and key must be plain file names")]
    BadName(SecretRef),
    /// The secret does not exist (yet).
    #[error("{}: not found", path.display())]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read, or is empty.
    #[error("{}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No source of secrets is configured.
    #[error("no secret source is configured")]
    NoSource,
}

/// Where passwords come from.
pub trait SecretSource: Send + Sync + Debug + 'static {
    /// The password for `reference`; `Ok(None)` when an optional secret is absent.
    fn password(&self, reference: &SecretRef) -> Result<Option<String>, SecretError>;
}

/// Secrets as files: `<dir>/<name>/<key>` (a mounted Kubernetes secret volume).
#[derive(Debug, Clone)]
pub struct FileSecrets {
    dir: PathBuf,
}

impl FileSecrets {
    /// Secrets under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FileSecrets {
        FileSecrets { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `reference` is read from.
    pub fn path_of(&self, reference: &SecretRef) -> Result<PathBuf, SecretError> {
        let name = reference
            .name
            .as_deref()
            .ok_or_else(|| SecretError::NoName(reference.clone()))?;
        let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/');
        if !plain(name) || !plain(&reference.key) {
            return Err(SecretError::BadName(reference.clone()));
        }
        Ok(self.dir.join(name).join(&reference.key))
    }
}

impl SecretSource for FileSecrets {
    fn password(&self, reference: &SecretRef) -> Result<Option<String>, SecretError> {
        let path = self.path_of(reference)?;
        let unreadable = |reason: String| SecretError::Unreadable {
            path: path.clone(),
            reason,
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound && reference.optional => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(SecretError::Missing { path });
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        let mut text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8".into()))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        if text.is_empty() {
            return Err(unreadable("empty".into()));
        }
        // RFC 2385 keys travel in TCP_MD5SIG, which holds at most 80 bytes.
        if text.len() > 80 {
            return Err(unreadable(
                "longer than 80 bytes (TCP_MD5SIG's limit)".into(),
            ));
        }
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o004 != 0
        {
            tracing::warn!(path = %path.display(), "BGP password file is world-readable; chmod o-r it");
        }
        Ok(Some(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, key: &str) -> SecretRef {
        SecretRef {
            name: Some(name.into()),
            key: key.into(),
            optional: false,
        }
    }

    /// A directory removed on drop.
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_the_mounted_secret_layout() {
        let dir =
            TempDir(std::env::temp_dir().join(format!("vrouter-secrets-{}", std::process::id())));
        std::fs::create_dir_all(dir.0.join("bgp")).unwrap();
        let file = dir.0.join("bgp").join("rr");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let source = FileSecrets::new(&dir.0);
        assert_eq!(
            source.password(&reference("bgp", "rr")).unwrap().as_deref(),
            Some("s3cret")
        );
        std::fs::write(&file, "two\nlines\r\n").unwrap();
        assert_eq!(
            source.password(&reference("bgp", "rr")).unwrap().as_deref(),
            Some("two\nlines"),
            "only the last newline is stripped"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            source.password(&reference("bgp", "rr")),
            Err(SecretError::Unreadable { .. })
        ));
        std::fs::write(&file, "x".repeat(81)).unwrap();
        assert!(source.password(&reference("bgp", "rr")).is_err());
    }

    #[test]
    fn missing_bad_and_optional() {
        let source = FileSecrets::new("/nonexistent/secrets");
        let missing = source.password(&reference("bgp", "rr")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "/nonexistent/secrets/bgp/rr: not found"
        );
        let optional = SecretRef {
            optional: true,
            ..reference("bgp", "rr")
        };
        assert_eq!(source.password(&optional), Ok(None));
        for (name, key) in [
            ("..", "x"),
            ("a/b", "x"),
            ("bgp", "../../etc/shadow"),
            ("", "k"),
        ] {
            assert!(matches!(
                source.password(&reference(name, key)),
                Err(SecretError::BadName(_))
            ));
        }
        let unnamed = SecretRef {
            name: None,
            key: "k".into(),
            optional: false,
        };
        assert!(matches!(
            source.password(&unnamed),
            Err(SecretError::NoName(_))
        ));
    }
}
