//! `[mqtt]`: the broker connection's settings, the topic-level rules they must follow, and the
//! login secret. The TLS files are only named and located here ([`TlsFiles`]): loading and
//! checking the certificates needs rustls, which is the daemon's (`speedcam::publish::tls`), so
//! that check runs in the daemon's `check-config`, start-up and reload, still naming key and line.

use std::fmt;
use std::path::{Path, PathBuf};

/// Home Assistant's default discovery prefix (`mqtt.home_assistant_prefix`).
pub const HOME_ASSISTANT_PREFIX: &str = "homeassistant";

/// Default MQTT port for `mqtt://host` URLs.
pub const DEFAULT_PORT: u16 = 1883;

/// Default MQTT port for `mqtts://host` URLs (MQTT over TLS).
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// Connection settings (`[mqtt]` in the config file). `Debug` never shows the password or keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Broker URL, `mqtt://host:port` (port defaults to 1883) or `mqtts://host:port` (TLS,
    /// port defaults to 8883); never carries credentials.
    pub url: String,
    /// First topic level(s), default `speedcam`.
    pub base_topic: String,
    /// This device's id, the second topic level.
    pub device_id: String,
    /// MQTT client id; defaults to `speedcamd-<device_id>`.
    pub client_id: Option<String>,
    /// Keep-alive interval, s (>= 1; 0 disables pings).
    pub keepalive_s: u64,
    /// Whether measurement records go to `<camera>/measurements` (else only speeding events).
    pub publish_measurements: bool,
    /// Publish Home Assistant discovery configs (each camera's last speed and speeding count as
    /// sensors) and the retained `<camera>/summary` they read.
    pub home_assistant_discovery: bool,
    /// Home Assistant's discovery prefix, default [`HOME_ASSISTANT_PREFIX`].
    pub home_assistant_prefix: String,
    /// TLS settings; `Some` exactly when the URL is `mqtts://` or `ssl://` (then every
    /// connection attempt is TLS, never plain TCP).
    pub tls: Option<TlsFiles>,
    /// Username for the broker's login, if any.
    pub username: Option<String>,
    /// Password for the broker's login (needs `username`), read from `password_file`.
    pub password: Option<Secret>,
}

impl MqttConfig {
    /// Whether [`MqttConfig::url`] asks for TLS (`mqtts://` or `ssl://`).
    pub fn url_wants_tls(&self) -> bool {
        self.url.starts_with("mqtts://") || self.url.starts_with("ssl://")
    }

    /// Host and port from [`MqttConfig::url`]: `mqtt://`/`tcp://` (default port 1883) or
    /// `mqtts://`/`ssl://` (TLS, default port 8883). User info in the URL is refused (it would
    /// put the password in the config and the logs): use `username` and `password_file`.
    pub fn host_port(&self) -> Result<(String, u16), MqttConfigError> {
        let bad = |why: &str| MqttConfigError::BadUrl {
            url: crate::source::redact_uri(&self.url),
            why: why.to_string(),
        };
        let (rest, default_port) = if let Some(rest) = self.url.strip_prefix("mqtt://") {
            (rest, DEFAULT_PORT)
        } else if let Some(rest) = self.url.strip_prefix("tcp://") {
            (rest, DEFAULT_PORT)
        } else if let Some(rest) = self.url.strip_prefix("mqtts://") {
            (rest, DEFAULT_TLS_PORT)
        } else if let Some(rest) = self.url.strip_prefix("ssl://") {
            (rest, DEFAULT_TLS_PORT)
        } else {
            return Err(bad(
                "expected mqtt://host:port (plain TCP) or mqtts://host:port (TLS)",
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') {
            return Err(bad("credentials in the URL are not allowed (they would end up in logs): remove `user:password@` and set mqtt.username and mqtt.password_file"));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (h, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' around an IPv6 host"))?;
            match after {
                "" => (h, None),
                _ => (
                    h,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("port is not a number 1-65535"))?,
            None => default_port,
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad("missing or malformed host"));
        }
        Ok((host.to_string(), port))
    }

    /// The client id used on the broker.
    pub fn effective_client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("speedcamd-{}", self.device_id))
    }
}

/// The TLS files `[mqtt]` names, with the config lines of their keys, for the daemon to load
/// (`ca_file` is None: the system CA store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `mqtt.ca_file`, resolved against the config's directory.
    pub ca_file: Option<PathBuf>,
    /// `mqtt.client_cert_file` and `mqtt.client_key_file` (both or neither).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// 1-based config lines of `ca_file`, `client_cert_file`, `client_key_file` and `url`
    /// (0: not in the file), for errors found when the files are loaded.
    pub lines: TlsLines,
    /// Hash of the files' contents, set by the daemon when it loads them, so a reload that
    /// finds the same paths but new certificates sees a changed config.
    pub material_hash: u64,
}

/// Where the TLS keys of `[mqtt]` are in the config file (1-based lines, 0: absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsLines {
    /// `mqtt.ca_file`.
    pub ca_file: usize,
    /// `mqtt.client_cert_file`.
    pub client_cert_file: usize,
    /// `mqtt.client_key_file`.
    pub client_key_file: usize,
    /// `mqtt.url`.
    pub url: usize,
}

/// A `[mqtt]` setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MqttConfigError {
    /// The broker URL cannot be used.
    #[error("invalid mqtt.url {url:?}: {why}")]
    BadUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// An id that becomes a topic level contains a separator or wildcard.
    #[error(
        "{what} {value:?} cannot be used in MQTT topics; use a non-empty name without '/', '+', \
         '#' or NUL"
    )]
    BadTopicLevel {
        /// Config key.
        what: String,
        /// Offending value.
        value: String,
    },
    /// A configured topic prefix has an empty level, a wildcard or a leading/trailing `/`.
    #[error(
        "{what} {value:?} cannot be used as an MQTT topic prefix; use one or more non-empty \
         levels separated by '/', without '+', '#', NUL or a leading/trailing '/'"
    )]
    BadTopicPrefix {
        /// Config key.
        what: String,
        /// Offending value.
        value: String,
    },
}

/// Checks that `value` can be one MQTT topic level (non-empty, no `/`, `+`, `#` or NUL), so a
/// camera or device id cannot spill into other topics; `what` names the config key in the error.
pub fn check_topic_level(what: &str, value: &str) -> Result<(), MqttConfigError> {
    if value.is_empty() || value.contains(['/', '+', '#', '\0']) {
        return Err(MqttConfigError::BadTopicLevel {
            what: what.to_string(),
            value: value.to_string(),
        });
    }
    Ok(())
}

/// Checks that `value` can prefix MQTT topics: one or more `/`-separated levels, each valid for
/// [`check_topic_level`] (so no wildcard, NUL, empty level or leading/trailing `/`).
pub fn check_topic_prefix(what: &str, value: &str) -> Result<(), MqttConfigError> {
    if value
        .split('/')
        .any(|level| check_topic_level(what, level).is_err())
    {
        return Err(MqttConfigError::BadTopicPrefix {
            what: what.to_string(),
            value: value.to_string(),
        });
    }
    Ok(())
}

/// A password (or other secret string) whose `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; only for handing it to the protocol, never for formatting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a TLS or credentials file cannot be used; the message names the file and the fix,
/// never the contents.
#[derive(Debug, thiserror::Error)]
pub enum SecurityFileError {
    /// The file cannot be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The resolved path.
        path: PathBuf,
        /// The I/O error (in the message, not chained, so it is printed once).
        cause: std::io::Error,
    },
    /// The file is read but its contents cannot be used.
    #[error("{}: {why}", path.display())]
    Content {
        /// The resolved path.
        path: PathBuf,
        /// What is wrong and what is expected.
        why: String,
    },
    /// No CA file given and the system CA store holds no usable certificate.
    #[error(
        "no CA file given and the system CA store has no usable certificate ({why}): set \
         mqtt.ca_file to the PEM file of the CA that signed the broker's certificate, or install \
         ca-certificates"
    )]
    NoSystemRoots {
        /// What loading the store reported.
        why: String,
    },
    /// rustls refused the material (e.g. the client key does not match the certificate).
    #[error("{what}: {cause}")]
    Rejected {
        /// What was being set up, with the files involved.
        what: String,
        /// The TLS library's error (in the message, not chained, so it is printed once).
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where a credential file named in the config lives (`mqtt.password_file`):
/// - an absolute path is used as is;
/// - a leading `$CREDENTIALS_DIRECTORY` (or `${CREDENTIALS_DIRECTORY}`) is replaced by that
///   directory, an error when it is unset;
/// - any other relative path is looked up in `credentials_dir` (systemd's
///   `$CREDENTIALS_DIRECTORY`, set for units with `LoadCredential=`) when that is set, else
///   next to the config file (`base`).
pub fn resolve_credential_path(
    value: &str,
    base: &Path,
    credentials_dir: Option<&Path>,
) -> Result<PathBuf, String> {
    for var in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if let Some(rest) = value.strip_prefix(var) {
            let dir = credentials_dir.ok_or_else(|| {
                format!("{value:?} names $CREDENTIALS_DIRECTORY, which is not set: systemd sets it for units with LoadCredential=; outside systemd give a path to the file")
            })?;
            return Ok(dir.join(rest.trim_start_matches('/')));
        }
    }
    let p = Path::new(value);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else if let Some(dir) = credentials_dir {
        dir.join(p)
    } else {
        base.join(p)
    })
}

/// Reads a password file: UTF-8, one trailing `\n` or `\r\n` stripped (everything else is kept,
/// inner spaces included). Empty is an error; messages never quote the contents.
pub fn read_password_file(path: &Path) -> Result<Secret, SecurityFileError> {
    let bytes = read_file(path)?;
    let content = |why: &str| SecurityFileError::Content {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| content("not UTF-8 text: the file must hold the password alone"))?;
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(content("empty: the file must hold the password (one line)"));
    }
    if password.contains('\n') {
        return Err(content(
            "has more than one line: the file must hold the password alone (the username is mqtt.username)",
        ));
    }
    Ok(Secret::new(password))
}

/// Reads a security file whole; the error names it, never its contents.
pub fn read_file(path: &Path) -> Result<Vec<u8>, SecurityFileError> {
    std::fs::read(path).map_err(|cause| SecurityFileError::Read {
        path: path.to_path_buf(),
        cause,
    })
}
