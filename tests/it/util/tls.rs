//! A TLS MQTT broker for tests: certificates made with rcgen (a CA, a broker certificate for
//! 127.0.0.1/localhost, a client certificate, and an unrelated second CA) and the system
//! `mosquitto` with a TLS listener, password-file logins (`mosquitto_passwd -b`) and no
//! anonymous access. Dropping a [`TlsBroker`] stops it.

use super::broker::{is_root, mosquitto_binary, wait_listening};
use super::free_port;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Certificate and key files (PEM) in a temp dir.
pub struct Pki {
    /// The CA that signed the broker's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here (a "wrong CA" for the client).
    pub other_ca: PathBuf,
    /// Broker certificate (SAN 127.0.0.1 and localhost) and key.
    pub server_cert: PathBuf,
    /// Broker key.
    pub server_key: PathBuf,
    /// Client certificate (CN speedcamd) and key.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
    /// The directory holding them.
    pub dir: tempfile::TempDir,
}

fn ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, Issuer::new(params, key))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages.push(usage);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert, key)
}

/// Makes a fresh CA, broker and client certificates, and an unrelated CA.
pub fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ca_cert, issuer) = ca("speedcam test CA");
    let (other_cert, _) = ca("some other CA");
    let (server, server_key) = leaf(
        &issuer,
        "broker",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client, client_key) = leaf(
        &issuer,
        "speedcamd",
        &["speedcamd"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        other_ca: write("other-ca.pem", other_cert.pem()),
        server_cert: write("server.pem", server.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        dir,
    }
}

/// Mosquitto with one TLS listener on `127.0.0.1:port`.
pub struct TlsBroker {
    /// The TLS port.
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsBroker {
    /// `mqtts://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.port)
    }

    /// Everything mosquitto logged so far (`log_type all`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts mosquitto with a TLS listener using `pki`'s broker certificate, logins from `users`
/// (username, password) only, and with `require_certificate` a client certificate signed by
/// the CA required too. `Err` (why) when mosquitto or mosquitto_passwd is not installed.
pub fn start_tls_mosquitto(
    pki: &Pki,
    users: &[(&str, &str)],
    require_certificate: bool,
) -> Result<TlsBroker, String> {
    let mosquitto = mosquitto_binary()?;
    let passwd_tool = [
        "/usr/bin/mosquitto_passwd",
        "/usr/local/bin/mosquitto_passwd",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.exists())
    .ok_or("mosquitto_passwd is not installed")?;
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "").unwrap();
    for (user, password) in users {
        let ok = Command::new(passwd_tool)
            .arg("-b")
            .arg(&passwd)
            .args([user, password])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mosquitto_passwd -b failed");
    }
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    let log = dir.path().join("mosquitto.log");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous false\npassword_file {}\n\
             listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate {require_certificate}\n\
             log_dest stderr\nlog_type all\nconnection_messages true\n",
            passwd.display(),
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
        ),
    )
    .unwrap();
    if is_root() {
        // mosquitto drops to its own user and must still read the files.
        for p in [dir.path(), pki.dir.path()] {
            let ok = Command::new("chown")
                .args(["-R", "mosquitto"])
                .arg(p)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown mosquitto {}", p.display());
        }
    }
    let child = Command::new(mosquitto)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_listening(port, true);
    eprintln!("test broker: mosquitto with TLS on 127.0.0.1:{port}");
    Ok(TlsBroker {
        port,
        child,
        log,
        _dir: dir,
    })
}
