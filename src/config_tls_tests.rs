//! `[mqtt]` TLS and login keys: files are loaded at validation time and every mistake is a
//! problem naming the key and its line, never showing a secret.

use super::*;
use std::path::PathBuf;

const BASE: &str = r#"
device_id = "pole-1"

[detector]
model = "../models/nanodet-g-416.onnx"

[mqtt]
URL_AND_KEYS

[[cameras]]
id = "cam1"
source = "rtsp://viewer:cam-secret@10.0.0.5/stream"
speed_limit_kmh = 50.0

[cameras.calibration]
image_points = [[100.0, 600.0], [1180.0, 600.0], [900.0, 300.0], [380.0, 300.0]]
world_points = [[0.0, 0.0], [20.0, 0.0], [20.0, 30.0], [0.0, 30.0]]

[cameras.zone]
polygon = [[200.0, 550.0], [1080.0, 550.0], [880.0, 320.0], [400.0, 320.0]]
"#;

fn config(mqtt: &str) -> String {
    BASE.replace("URL_AND_KEYS", mqtt)
}

fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/test.toml")
}

/// The single problem of `mqtt` (asserted to be on line >= 7, in `[mqtt]`).
fn problem(mqtt: &str) -> Problem {
    match parse(&config(mqtt), &path()) {
        Err(ConfigError::Invalid { problems, .. }) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            let p = problems[0].clone();
            assert!(p.line >= 7, "{p}");
            p
        }
        other => panic!("expected one problem, got {other:?}"),
    }
}

/// A CA, a client certificate signed by it and its key, as PEM files in a temp dir.
fn pki() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["speedcamd".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = write("ca.pem", ca.pem());
    let cert = write("client.pem", cert.pem());
    let key = write("client.key", key.serialize_pem());
    (dir, ca, cert, key)
}

#[test]
fn tls_and_password_file_load_and_never_show_the_secrets() {
    let (dir, ca, cert, key) = pki();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "hunter2-secret\n").unwrap();
    let text = config(&format!(
        "url = \"mqtts://broker.lan\"\nca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}\nusername = \"cam\"\npassword_file = {:?}",
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
        pw.display().to_string()
    ));
    let cfg = parse(&text, &path()).unwrap_or_else(|e| panic!("{e}"));
    let m = cfg.mqtt.clone().unwrap();
    assert_eq!(m.host_port().unwrap(), ("broker.lan".to_string(), 8883));
    assert_eq!(m.password.as_ref().unwrap().expose(), "hunter2-secret");
    assert_eq!(m.username.as_deref(), Some("cam"));
    let tls = m.tls.as_ref().expect("TLS");
    assert_eq!(tls.ca_file.as_deref(), Some(ca.as_path()));
    assert!(tls.client_cert.is_some());
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");

    // A changed password file makes the config differ (reload reports a restart).
    std::fs::write(&pw, "other\n").unwrap();
    let again = parse(&text, &path()).unwrap().mqtt.unwrap();
    assert_ne!(again, m);
}

#[test]
fn mistakes_are_problems_naming_key_line_and_fix() {
    let (dir, ca, cert, _key) = pki();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let good_pw = dir.path().join("pw");
    std::fs::write(&good_pw, "pw\n").unwrap();
    let no_certs = dir.path().join("no-certs.pem");
    std::fs::write(&no_certs, "just text\n").unwrap();
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    for (mqtt, key, want) in [
        (
            "url = \"mqtt://h\"\nusername = \"cam\"\npassword = \"inline-secret\"".to_string(),
            "mqtt.password",
            "password_file",
        ),
        (
            "url = \"mqtt://h\"\nusername = \"cam\"\npassword_file = \"/nonexistent/pw\"".into(),
            "mqtt.password_file",
            "cannot read /nonexistent/pw",
        ),
        (
            format!(
                "url = \"mqtt://h\"\nusername = \"cam\"\npassword_file = {}",
                q(&empty)
            ),
            "mqtt.password_file",
            "empty",
        ),
        (
            format!("url = \"mqtt://h\"\npassword_file = {}", q(&good_pw)),
            "mqtt.password_file",
            "needs a username",
        ),
        (
            format!(
                "url = \"mqtts://h\"\nca_file = {}\nclient_cert_file = {}",
                q(&ca),
                q(&cert)
            ),
            "mqtt.client_cert_file",
            "both or neither",
        ),
        (
            format!("url = \"mqtt://h\"\nca_file = {}", q(&ca)),
            "mqtt.ca_file",
            "mqtts://",
        ),
        (
            format!("url = \"mqtts://h\"\nca_file = {}", q(&no_certs)),
            "mqtt.ca_file",
            "no certificate found",
        ),
        (
            "url = \"mqtts://h\"\nca_file = \"/nonexistent/ca.pem\"".into(),
            "mqtt.ca_file",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            "url = \"mqtt://cam:url-secret@h\"".into(),
            "mqtt.url",
            "password_file",
        ),
    ] {
        let p = problem(&mqtt);
        assert_eq!(p.key, key, "{mqtt}: {p}");
        assert!(p.message.contains(want), "{mqtt}: {p}");
        assert!(
            !p.message.contains("secret") && !p.to_string().contains("inline-secret"),
            "{p}"
        );
    }
}
