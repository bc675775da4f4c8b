//! `[mqtt]`: the broker connection, its topics, the login (the password file is read here)
//! and the TLS files (named and located here; the daemon loads them with rustls).

use super::Validator;
use crate::config::mqtt::{
    check_topic_prefix, read_password_file, resolve_credential_path, MqttConfig, TlsFiles,
    TlsLines, HOME_ASSISTANT_PREFIX,
};
use crate::config::raw::RawMqtt;
use crate::config::resolve_path;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

impl Validator<'_> {
    /// `[mqtt]`: broker URL, topic prefixes, client settings, then the login and TLS keys.
    pub(super) fn mqtt(&mut self, m: &RawMqtt, device_id: &str, base: &Path) -> MqttConfig {
        let url = m.url.get_ref().clone();
        let base_topic = m
            .base_topic
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "speedcam".into());
        if base_topic.is_empty()
            || base_topic.contains(['+', '#'])
            || base_topic.starts_with('/')
            || base_topic.ends_with('/')
        {
            let span = m.base_topic.as_ref().map(|s| s.span()).unwrap_or(0..0);
            self.problem("mqtt.base_topic", span, format!("{base_topic:?} is not allowed: a non-empty topic prefix without '+', '#' or leading/trailing '/'"));
        }
        let home_assistant_prefix = m
            .home_assistant_prefix
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| HOME_ASSISTANT_PREFIX.into());
        if check_topic_prefix("mqtt.home_assistant_prefix", &home_assistant_prefix).is_err() {
            let span = m
                .home_assistant_prefix
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(0..0);
            self.problem("mqtt.home_assistant_prefix", span, format!("{home_assistant_prefix:?} is not allowed: a non-empty topic prefix (Home Assistant's discovery_prefix, default \"homeassistant\") without '+', '#', empty levels or leading/trailing '/'"));
        }
        let mut cfg = MqttConfig {
            url,
            base_topic,
            device_id: device_id.to_string(),
            client_id: m.client_id.as_ref().map(|s| s.get_ref().clone()),
            keepalive_s: self.int("mqtt.keepalive_s", &m.keepalive_s, 30, 5, 3600) as u64,
            publish_measurements: m.publish_measurements.unwrap_or(true),
            home_assistant_discovery: m.home_assistant_discovery.unwrap_or(false),
            home_assistant_prefix,
            tls: None,
            username: None,
            password: None,
        };
        if let Err(e) = cfg.host_port() {
            self.problem("mqtt.url", m.url.span(), e.to_string());
        }
        // `password_file` and `client_key_file` may name systemd credentials.
        let creds_dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        self.mqtt_login(m, base, creds_dir.as_deref(), &mut cfg);
        cfg.tls = self.mqtt_tls(m, base, creds_dir.as_deref(), &cfg);
        cfg
    }

    /// `[mqtt]` login keys: `username` and `password_file` (read here; a relative name follows
    /// [`resolve_credential_path`], systemd `LoadCredential=`); an inline `password` is refused.
    fn mqtt_login(
        &mut self,
        m: &RawMqtt,
        base: &Path,
        creds_dir: Option<&Path>,
        cfg: &mut MqttConfig,
    ) {
        if let Some(p) = &m.password {
            self.problem("mqtt.password", p.span(), "inline passwords are not accepted (the config file is readable by others and shows up in backups and diffs): put the password alone in a file readable only by speedcamd (chmod 600, or systemd LoadCredential=) and set mqtt.password_file");
        }
        if let Some(u) = &m.username {
            if u.get_ref().is_empty() {
                self.problem(
                    "mqtt.username",
                    u.span(),
                    "empty: give the broker login's username or remove the key (anonymous login)",
                );
            } else {
                cfg.username = Some(u.get_ref().clone());
            }
        }
        if let Some(pf) = &m.password_file {
            if m.username.is_none() {
                self.problem(
                    "mqtt.password_file",
                    pf.span(),
                    "a password needs a username: set mqtt.username too",
                );
            }
            match resolve_credential_path(pf.get_ref(), base, creds_dir) {
                Err(e) => self.problem("mqtt.password_file", pf.span(), e),
                Ok(path) => match read_password_file(&path) {
                    Ok(pw) => cfg.password = Some(pw),
                    Err(e) => self.problem("mqtt.password_file", pf.span(), format!("{e} (a relative name is looked up in $CREDENTIALS_DIRECTORY when systemd sets it, else next to the config file)")),
                },
            }
        }
    }

    /// `[mqtt]` TLS keys: `ca_file`, `client_cert_file` + `client_key_file` (both or neither),
    /// only with a TLS URL (`mqtts://`, `ssl://`). The files are named and located ([`TlsFiles`]) for the
    /// daemon, which loads them with rustls at check-config, startup and reload, never first at
    /// a connect. `client_key_file` follows [`resolve_credential_path`] (systemd
    /// `LoadCredential=`); `ca_file` and `client_cert_file` are relative to the config file.
    /// None when the URL is plain or a key is missing or misplaced (problems recorded).
    fn mqtt_tls(
        &mut self,
        m: &RawMqtt,
        base: &Path,
        creds_dir: Option<&Path>,
        cfg: &MqttConfig,
    ) -> Option<TlsFiles> {
        let file = |v: &Spanned<String>| resolve_path(base, v.get_ref());
        let ca = m.ca_file.as_ref().map(|v| (file(v), v.span()));
        let cert = m.client_cert_file.as_ref().map(|v| (file(v), v.span()));
        let key = match &m.client_key_file {
            None => None,
            Some(v) => match resolve_credential_path(v.get_ref(), base, creds_dir) {
                Ok(p) => Some((p, v.span())),
                Err(e) => {
                    self.problem("mqtt.client_key_file", v.span(), e);
                    return None;
                }
            },
        };
        match (&cert, &key) {
            (Some((_, span)), None) => {
                self.problem("mqtt.client_cert_file", span.clone(), "set without mqtt.client_key_file: give the client certificate's private key too (both or neither)");
                return None;
            }
            (None, Some((_, span))) => {
                self.problem("mqtt.client_key_file", span.clone(), "set without mqtt.client_cert_file: give the client certificate too (both or neither)");
                return None;
            }
            _ => {}
        }
        if !cfg.url_wants_tls() {
            for (key, v) in [
                ("mqtt.ca_file", &m.ca_file),
                ("mqtt.client_cert_file", &m.client_cert_file),
                ("mqtt.client_key_file", &m.client_key_file),
            ] {
                if let Some(v) = v {
                    self.problem(key, v.span(), format!("only used with TLS, but mqtt.url {:?} is a plain, unencrypted connection: change the URL to mqtts://host:8883 (TLS) or remove the key", crate::source::redact_uri(&cfg.url)));
                }
            }
            return None;
        }
        let line = |f: &Option<(PathBuf, Range<usize>)>| {
            f.as_ref().map_or(0, |(_, span)| self.line(span.clone()))
        };
        Some(TlsFiles {
            lines: TlsLines {
                ca_file: line(&ca),
                client_cert_file: line(&cert),
                client_key_file: line(&key),
                url: self.line(m.url.span()),
            },
            ca_file: ca.map(|(p, _)| p),
            client_cert: cert.zip(key).map(|((c, _), (k, _))| (c, k)),
            material_hash: 0,
        })
    }
}
