//! How to reach a secured registry: HTTP basic auth and a CA to trust for
//! https, from the entries of a Secret or ConfigMap (`username`,
//! `password`, `ca.crt`, the keys of Kubernetes' `basic-auth` and TLS
//! Secrets). The password is never written by `Debug` or by any error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The keys read from the Secret or ConfigMap.
pub const USERNAME_KEY: &str = "username";
pub const PASSWORD_KEY: &str = "password";
pub const CA_KEY: &str = "ca.crt";

/// Credentials and trust for one registry; the default is neither.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAccess {
    pub basic_auth: Option<BasicAuth>,
    /// PEM certificates trusted for https besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// What is wrong with the settings given; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("schema registry settings: {key} is set but {missing} is not; set both for basic auth")]
    HalfCredentials {
        key: &'static str,
        missing: &'static str,
    },
    #[error("schema registry settings: {key} is not UTF-8 text")]
    NotText { key: &'static str },
    #[error("schema registry settings: {CA_KEY} holds no PEM certificate: {detail}")]
    BadCa { detail: String },
    #[error("schema registry client: {detail}")]
    Client { detail: String },
    #[error("schema registry settings: cannot read {path}: {detail}")]
    Unreadable { path: String, detail: String },
}

impl RegistryAccess {
    /// From a Secret's or ConfigMap's entries (key → bytes); other keys are
    /// ignored so one Secret may serve several clients.
    pub fn from_entries(
        entries: &BTreeMap<String, Vec<u8>>,
    ) -> Result<RegistryAccess, AccessError> {
        let text = |key: &'static str| -> Result<Option<String>, AccessError> {
            entries
                .get(key)
                .map(|bytes| {
                    String::from_utf8(bytes.clone())
                        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                        .map_err(|_| AccessError::NotText { key })
                })
                .transpose()
        };
        let basic_auth = match (text(USERNAME_KEY)?, text(PASSWORD_KEY)?) {
            (Some(username), Some(password)) => Some(BasicAuth { username, password }),
            (Some(_), None) => {
                return Err(AccessError::HalfCredentials {
                    key: USERNAME_KEY,
                    missing: PASSWORD_KEY,
                });
            }
            (None, Some(_)) => {
                return Err(AccessError::HalfCredentials {
                    key: PASSWORD_KEY,
                    missing: USERNAME_KEY,
                });
            }
            (None, None) => None,
        };
        let ca_pem = entries.get(CA_KEY).cloned();
        if let Some(pem) = &ca_pem {
            let certificates =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| AccessError::BadCa {
                    detail: e.to_string(),
                })?;
            if certificates.is_empty() {
                return Err(AccessError::BadCa {
                    detail: "no -----BEGIN CERTIFICATE----- block".into(),
                });
            }
        }
        Ok(RegistryAccess { basic_auth, ca_pem })
    }

    /// From a mounted Secret or ConfigMap: one entry per file (Kubernetes'
    /// own entries, names starting with '.', skipped).
    pub fn from_dir(dir: &Path) -> Result<RegistryAccess, AccessError> {
        let unreadable = |path: &Path, e: std::io::Error| AccessError::Unreadable {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
            let entry = entry.map_err(|e| unreadable(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| unreadable(&path, e))?;
            entries.insert(name, bytes);
        }
        RegistryAccess::from_entries(&entries)
    }
}

impl fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAccess")
            .field("basic_auth", &self.basic_auth)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .finish()
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BasicAuth({}, password redacted)", self.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn credentials_come_in_pairs_and_are_never_printed() {
        let access = RegistryAccess::from_entries(&entries(&[
            ("username", b"reader\n"),
            ("password", b"s3cret-Pa55"),
            ("bootstrap.servers", b"ignored:9092"),
        ]))
        .expect("both set");
        let auth = access.basic_auth.clone().expect("basic auth");
        assert_eq!(
            auth.username, "reader",
            "a trailing newline is not part of it"
        );
        assert_eq!(auth.password, "s3cret-Pa55");
        let printed = format!("{access:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("reader"), "{printed}");

        let half = RegistryAccess::from_entries(&entries(&[("password", b"x")]));
        assert_eq!(
            half,
            Err(AccessError::HalfCredentials {
                key: "password",
                missing: "username"
            })
        );
        let message = half.expect_err("half").to_string();
        assert!(message.contains("set both"), "{message}");
    }

    #[test]
    fn a_ca_that_is_not_pem_is_named() {
        let bad = RegistryAccess::from_entries(&entries(&[("ca.crt", b"not a certificate")]))
            .expect_err("not PEM");
        assert!(matches!(bad, AccessError::BadCa { .. }), "{bad:?}");
        assert!(bad.to_string().contains("ca.crt"), "{bad}");
        assert_eq!(
            RegistryAccess::from_entries(&BTreeMap::new()),
            Ok(RegistryAccess::default())
        );
    }

    #[test]
    fn a_mounted_secret_reads_like_its_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("username"), "u").expect("write");
        std::fs::write(dir.path().join("password"), "p").expect("write");
        std::fs::create_dir(dir.path().join("..data")).expect("k8s bookkeeping dir");
        std::fs::write(dir.path().join(".hidden"), "x").expect("write");
        let access = RegistryAccess::from_dir(dir.path()).expect("read");
        assert_eq!(
            access.basic_auth.map(|a| (a.username, a.password)),
            Some(("u".to_string(), "p".to_string()))
        );
        let missing = RegistryAccess::from_dir(&dir.path().join("nope")).expect_err("no dir");
        assert!(matches!(missing, AccessError::Unreadable { .. }));
    }
}
