//! MQTT over TLS (rustls, ring provider) and broker credentials.
//!
//! Everything here is loaded when the config is validated (`check-config`, startup, reload), so a
//! missing file, a CA file without certificates, unparseable PEM or a client certificate that
//! does not match its key is a config error naming the key, never a surprise at the first
//! connect. The rustls client config is built once from that material.
//!
//! Secrets never reach a log: [`Secret`] and [`MqttTls`] print `***` for passwords and keys,
//! and no error here quotes a file's contents.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use speedcam_core::config::mqtt::read_file as read;
use speedcam_core::config::mqtt::TlsFiles;
pub use speedcam_core::config::mqtt::{
    read_password_file, resolve_credential_path, Secret, SecurityFileError,
};
use speedcam_core::config::Problem;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS settings of the broker connection (`mqtts://`), loaded and checked.
#[derive(Clone)]
pub struct MqttTls {
    /// The CA file the broker's certificate is checked against; `None`: the system CA store.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (chain) and key files for mutual TLS, when configured.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Number of trust anchors loaded (from the CA file or the system store).
    pub roots: usize,
    /// Contents of the files, so a changed file makes the config differ (never printed).
    material: Vec<Vec<u8>>,
    /// The rustls client config built from them.
    client: Arc<rustls::ClientConfig>,
}

impl PartialEq for MqttTls {
    fn eq(&self, other: &Self) -> bool {
        self.ca_file == other.ca_file
            && self.client_cert == other.client_cert
            && self.roots == other.roots
            && self.material == other.material
    }
}

impl Eq for MqttTls {}

impl fmt::Debug for MqttTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttTls")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("roots", &self.roots)
            .field("key", &"***")
            .finish()
    }
}

impl MqttTls {
    /// Loads the CA (or the system store when `ca_file` is `None`) and the optional client
    /// certificate chain and key (PEM), and builds the rustls client config (TLS 1.2 and 1.3,
    /// the broker's name checked against the URL's host).
    pub fn load(
        ca_file: Option<&Path>,
        client_cert: Option<(&Path, &Path)>,
    ) -> Result<MqttTls, SecurityFileError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut material = Vec::new();
        let mut store = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let bytes = read(path)?;
                let certs = pem_certs(path, &bytes, "the CA certificate")?;
                for (i, cert) in certs.into_iter().enumerate() {
                    store.add(cert).map_err(|e| SecurityFileError::Content {
                        path: path.to_path_buf(),
                        why: format!("certificate {} is not a usable CA certificate ({e}): give the PEM certificate of the CA that signed the broker's certificate", i + 1),
                    })?;
                }
                material.push(bytes);
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = match found.errors.first() {
                        Some(e) => e.to_string(),
                        None => "it is empty".to_string(),
                    };
                    return Err(SecurityFileError::NoSystemRoots { why });
                }
            }
        }
        let roots = store.len();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|cause| SecurityFileError::Rejected {
                what: "TLS protocol versions".into(),
                cause: Box::new(cause),
            })?
            .with_root_certificates(store);
        let client = match client_cert {
            None => builder.with_no_client_auth(),
            Some((cert_path, key_path)) => {
                let cert_bytes = read(cert_path)?;
                let chain = pem_certs(cert_path, &cert_bytes, "the client certificate")?;
                let key_bytes = read(key_path)?;
                let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
                    SecurityFileError::Content {
                        path: key_path.to_path_buf(),
                        why: match e {
                            pem::Error::NoItemsFound => "no private key found: give the client's private key in PEM format (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)".into(),
                            _ => "the PEM cannot be parsed: give the client's private key in PEM format".into(),
                        },
                    }
                })?;
                material.push(cert_bytes);
                material.push(key_bytes);
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|cause| SecurityFileError::Rejected {
                        what: format!(
                            "client certificate {} with key {} (check that the key belongs to the certificate)",
                            cert_path.display(),
                            key_path.display()
                        ),
                        cause: Box::new(cause),
                    })?
            }
        };
        Ok(MqttTls {
            ca_file: ca_file.map(Path::to_path_buf),
            client_cert: client_cert.map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
            roots,
            material,
            client: Arc::new(client),
        })
    }

    /// [`MqttTls::load`] on the files `[mqtt]` names.
    pub fn from_files(files: &TlsFiles) -> Result<MqttTls, SecurityFileError> {
        let client = files
            .client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        MqttTls::load(files.ca_file.as_deref(), client)
    }

    /// Loads the files `[mqtt]` names ([`MqttTls::load`]); a failure is a config problem on
    /// the key of the file concerned, at its line.
    pub fn load_files(files: &TlsFiles) -> Result<MqttTls, Problem> {
        let ca = files.ca_file.as_deref();
        let client = files
            .client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        MqttTls::from_files(files).map_err(|e| {
            let path = match &e {
                SecurityFileError::Read { path, .. } | SecurityFileError::Content { path, .. } => {
                    Some(path.as_path())
                }
                _ => None,
            };
            let lines = &files.lines;
            let (key, line) = if path.is_some() && path == ca {
                ("mqtt.ca_file", lines.ca_file)
            } else if path.is_some() && path == client.map(|(_, k)| k) {
                ("mqtt.client_key_file", lines.client_key_file)
            } else if path.is_some() && path == client.map(|(c, _)| c) {
                ("mqtt.client_cert_file", lines.client_cert_file)
            } else if matches!(e, SecurityFileError::NoSystemRoots { .. }) {
                ("mqtt.ca_file", lines.url)
            } else if client.is_some() {
                ("mqtt.client_cert_file", lines.client_cert_file)
            } else {
                ("mqtt.client_cert_file", lines.url)
            };
            Problem {
                key: key.into(),
                line,
                message: e.to_string(),
            }
        })
    }

    /// A hash of the loaded files' contents (see [`TlsFiles::material_hash`]).
    pub fn material_hash(&self) -> u64 {
        self.material
            .iter()
            .flatten()
            .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    }

    /// The rumqttc transport for this configuration.
    pub fn transport(&self) -> rumqttc::Transport {
        rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(self.client.clone()))
    }
}

/// Every PEM `CERTIFICATE` block of a file; none, or one that does not parse, is an error.
fn pem_certs(
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, SecurityFileError> {
    let content = |why: String| SecurityFileError::Content {
        path: path.to_path_buf(),
        why,
    };
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            content(format!(
                "the PEM cannot be parsed ({}): give {what} in PEM format",
                pem_error(&e)
            ))
        })?;
    if certs.is_empty() {
        return Err(content(format!(
            "no certificate found (no -----BEGIN CERTIFICATE----- block): give {what} in PEM format"
        )));
    }
    Ok(certs)
}

/// A PEM error without quoting the file (some variants carry its bytes).
fn pem_error(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a malformed BEGIN line",
        pem::Error::Base64Decode(_) => "invalid base64",
        pem::Error::NoItemsFound => "nothing found",
        _ => "unreadable",
    }
}

/// How `cfg` secures the connection, for `check-config` (never the password): e.g.
/// `, TLS (CA /etc/speedcam/ca.pem, client certificate), user "cam"`.
pub fn describe_security(cfg: &super::MqttConfig, tls: Option<&MqttTls>) -> String {
    let mut s = String::new();
    match tls {
        Some(t) => {
            let ca = match &t.ca_file {
                Some(p) => format!("CA {}", p.display()),
                None => format!("system CA store, {} roots", t.roots),
            };
            let client = if t.client_cert.is_some() {
                ", client certificate"
            } else {
                ""
            };
            s += &format!(", TLS ({ca}{client})");
        }
        None => s += ", plain TCP (unencrypted)",
    }
    if let Some(u) = &cfg.username {
        let pw = if cfg.password.is_some() {
            "password from file"
        } else {
            "no password"
        };
        s += &format!(", user {u:?} ({pw})");
    }
    s
}

/// A connection failure in words an operator acts on: TLS failures are named as such (with
/// where to look), refused logins as "not authorised"; the rest as rumqttc says.
pub fn describe_connection_error(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectReturnCode, ConnectionError};
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword),
        ) => format!(
            "the broker refused the login ({code:?}, not authorised): check mqtt.username and mqtt.password_file (and the client certificate) against the broker's users and ACLs"
        ),
        _ => match tls_cause(e) {
            Some(tls) => format!(
                "TLS handshake with the broker failed: {tls}; check mqtt.ca_file (the CA that signed the broker's certificate), that the URL's host is in the broker certificate's names, and the client certificate (no plaintext fallback)"
            ),
            None => e.to_string(),
        },
    }
}

/// The rustls error anywhere in the chain of `e` (io::Error hides its payload from `source()`).
fn tls_cause(e: &rumqttc::ConnectionError) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(tls.to_string());
            }
        }
        if let Some(rumqttc::TlsError::DNSName(_)) = err.downcast_ref::<rumqttc::TlsError>() {
            return Some("the URL's host is not a valid DNS name or IP address".into());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {s:#?}"), "*** *** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn password_file_strips_one_newline_only() {
        for (text, want) in [
            (&b"pw\n"[..], "pw"),
            (b"pw\r\n", "pw"),
            (b"pw", "pw"),
            (b" p w ", " p w "),
        ] {
            let f = file(text);
            assert_eq!(read_password_file(f.path()).unwrap().expose(), want);
        }
        for (text, why) in [
            (&b""[..], "empty"),
            (b"\n", "empty"),
            (b"a\nb\n", "more than one line"),
            (b"\xff\xfe", "UTF-8"),
        ] {
            let f = file(text);
            let err = read_password_file(f.path()).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
        let f = file(b"topsecret\nsecond\n");
        let err = read_password_file(f.path()).unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
        let err = read_password_file(Path::new("/nonexistent/pw"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/pw"), "{err}");
    }

    #[test]
    fn connection_errors_name_tls_and_refused_logins() {
        use rumqttc::{ConnectReturnCode, ConnectionError};
        let refused = describe_connection_error(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized,
        ));
        assert!(refused.contains("not authorised"), "{refused}");
        let bad_cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, bad_cert);
        for e in [
            ConnectionError::Tls(rumqttc::TlsError::Io(io)),
            ConnectionError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
            )),
        ] {
            let shown = describe_connection_error(&e);
            assert!(shown.starts_with("TLS handshake"), "{shown}");
            assert!(shown.contains("no plaintext fallback"), "{shown}");
        }
        let plain = describe_connection_error(&ConnectionError::NetworkTimeout);
        assert!(!plain.contains("TLS"), "{plain}");
    }

    #[test]
    fn credential_paths_follow_the_documented_rule() {
        let base = Path::new("/etc/speedcam");
        let creds = Path::new("/run/credentials/speedcamd.service");
        let r = |v: &str, c: Option<&Path>| resolve_credential_path(v, base, c);
        assert_eq!(r("/abs/pw", Some(creds)).unwrap(), Path::new("/abs/pw"));
        assert_eq!(r("pw", None).unwrap(), base.join("pw"));
        assert_eq!(r("pw", Some(creds)).unwrap(), creds.join("pw"));
        assert_eq!(
            r("$CREDENTIALS_DIRECTORY/pw", Some(creds)).unwrap(),
            creds.join("pw")
        );
        assert_eq!(
            r("${CREDENTIALS_DIRECTORY}/pw", Some(creds)).unwrap(),
            creds.join("pw")
        );
        let err = r("$CREDENTIALS_DIRECTORY/pw", None).unwrap_err();
        assert!(err.contains("LoadCredential"), "{err}");
    }

    #[test]
    fn unusable_pem_files_are_named_errors() {
        let empty = file(b"");
        let err = MqttTls::load(Some(empty.path()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no certificate found"), "{err}");
        assert!(err.contains(&empty.path().display().to_string()), "{err}");
        let broken = file(b"-----BEGIN CERTIFICATE-----\n!!!notbase64\n");
        let err = MqttTls::load(Some(broken.path()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be parsed"), "{err}");
        let garbage = file(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let err = MqttTls::load(Some(garbage.path()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a usable CA certificate"), "{err}");
        let err = MqttTls::load(Some(Path::new("/nonexistent/ca.pem")), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn ca_client_cert_and_key_load_and_mismatch_is_refused() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["speedcamd".into()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let ca_file = file(ca.pem().as_bytes());
        let cert_file = file(client.pem().as_bytes());
        let key_file = file(client_key.serialize_pem().as_bytes());
        let tls = MqttTls::load(
            Some(ca_file.path()),
            Some((cert_file.path(), key_file.path())),
        )
        .unwrap();
        assert_eq!(tls.roots, 1);
        let shown = format!("{tls:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("***"), "{shown}");

        let other_key = rcgen::KeyPair::generate().unwrap();
        let other_file = file(other_key.serialize_pem().as_bytes());
        let err = MqttTls::load(
            Some(ca_file.path()),
            Some((cert_file.path(), other_file.path())),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("key belongs to the certificate"), "{err}");
        // A certificate where the key should be.
        let err = MqttTls::load(
            Some(ca_file.path()),
            Some((cert_file.path(), cert_file.path())),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no private key found"), "{err}");
    }
}
