//! MQTT over TLS against a real mosquitto (TLS listener, password-file logins, no anonymous
//! access; certificates made with rcgen in the test):
//!
//! - TLS + username/password file + client certificate (`require_certificate true`): an event
//!   recorded in the store reaches a subscriber that is itself on TLS;
//! - a wrong CA: nothing is delivered, the failure is reported as a TLS handshake failure, the
//!   broker never sees a CONNECT, and a plaintext listener on an `mqtts://` port only ever gets
//!   TLS ClientHellos (no plaintext fallback), over repeated attempts;
//! - a wrong password: "not authorised", retried with backoff, the publisher keeps running;
//! - the real daemon at `RUST_LOG=debug` with the password in a systemd credential
//!   (`$CREDENTIALS_DIRECTORY`) and an RTSP camera URL carrying a password: it logs in and
//!   publishes, and neither secret appears in its output.
//!
//! Without mosquitto/mosquitto_passwd the tests print `SKIPPED: mosquitto` and pass, unless
//! `SPEEDCAM_REQUIRE` names `mosquitto` (see `util/mod.rs`).

use crate::util::tls::{make_pki, start_tls_mosquitto, Pki, TlsBroker};
use crate::util::{free_port, need, repo, runtime, speedcamd, wait_for, write_demo_config, Tool};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use speedcam::event::{Event as SpeedEvent, EventType, SCHEMA_VERSION};
use speedcam::publish::{MqttConfig, MqttTls, Publisher, Topics};
use speedcam::store::Store;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USER: &str = "speedcam-dev";
const PASSWORD: &str = "s3cret-Pa55word-for-mqtt";
const RTSP_PASSWORD: &str = "rtsp-Hunter2-camera-secret";

/// The PKI and a broker with `USER`/`PASSWORD` (and `watcher`/`watch`), or None (skipped).
fn broker(require_certificate: bool) -> Option<(Pki, TlsBroker)> {
    let pki = make_pki();
    let broker = start_tls_mosquitto(
        &pki,
        &[(USER, PASSWORD), ("watcher", "watch")],
        require_certificate,
    );
    Some((pki, need(Tool::Mosquitto, broker)?))
}

/// The `[mqtt]` settings as the daemon gets them: a config file with `mqtt_keys` (TOML lines)
/// loaded and validated by `speedcam::config::load`.
fn load_mqtt(dir: &Path, url: &str, device: &str, mqtt_keys: &str) -> MqttConfig {
    let path = write_demo_config(dir, device, "scene.mp4", url, "");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "base_topic = \"speedcam\"\n",
        &format!("base_topic = \"speedcam\"\n{mqtt_keys}\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let cfg = speedcam::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    cfg.mqtt.expect("[mqtt] configured")
}

fn password_file(dir: &Path, password: &str) -> std::path::PathBuf {
    let p = dir.join("mqtt-password");
    std::fs::write(&p, format!("{password}\n")).unwrap();
    p
}

fn speeding_event(device: &str) -> SpeedEvent {
    SpeedEvent {
        kind: EventType::Speeding,
        event_id: ulid::Ulid::new().to_string(),
        device_id: device.into(),
        camera: "cam1".into(),
        track_id: 7,
        joined_track_ids: Vec::new(),
        class: "car".into(),
        class_scores: Default::default(),
        speed_kmh: Some(71.0),
        reason: None,
        stopped_s: 0.0,
        speed_ci95_kmh: Some([69.0, 73.0]),
        limit_kmh: 50.0,
        tolerance_kmh: 3.0,
        strict: false,
        t_enter_s: 1.0,
        t_exit_s: 2.0,
        time: "2026-01-01T00:00:00Z".into(),
        samples: 15,
        distance_m: 20.0,
        method: "fit".into(),
        model: "nanodet".into(),
        calibration: "cal".into(),
        measurement_id: None,
        thumbnail_topic: None,
        schema: SCHEMA_VERSION,
    }
}

/// What a [`TlsSubscriber`] received: (topic, payload) in arrival order.
type Inbox = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A subscriber on TLS with the client certificate, as `watcher`; collects (topic, payload).
struct TlsSubscriber {
    got: Inbox,
    client: Client,
}

impl TlsSubscriber {
    fn start(pki: &Pki, port: u16, filter: &str) -> TlsSubscriber {
        let tls = MqttTls::load(
            Some(&pki.ca),
            Some((pki.client_cert.as_path(), pki.client_key.as_path())),
        )
        .unwrap();
        let mut opts =
            MqttOptions::new(format!("watcher-{}", std::process::id()), "127.0.0.1", port);
        opts.set_transport(tls.transport())
            .set_credentials("watcher", "watch")
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = Client::new(opts, 16);
        let got: Inbox = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (sub, sink, filter) = (client.clone(), got.clone(), filter.to_string());
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = sub.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        sink.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => break,
                    Err(e) => {
                        eprintln!("test subscriber: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("TLS subscriber got no SUBACK within 20 s");
        TlsSubscriber { got, client }
    }

    fn messages(&self) -> Vec<(String, Vec<u8>)> {
        self.got.lock().unwrap().clone()
    }

    fn wait(&self, secs: u64, done: impl Fn(&[(String, Vec<u8>)]) -> bool) -> bool {
        wait_for(Duration::from_secs(secs), || done(&self.messages()))
    }
}

impl Drop for TlsSubscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

#[test]
fn tls_with_password_file_and_client_certificate_delivers_an_event() {
    let Some((pki, broker)) = broker(true) else {
        return;
    };
    let sub = TlsSubscriber::start(&pki, broker.port, "speedcam/tls-ok/#");
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), PASSWORD);
    let cfg = load_mqtt(
        dir.path(),
        &broker.url(),
        "tls-ok",
        &format!(
            "ca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}\nusername = {USER:?}\npassword_file = {:?}",
            pki.ca.display().to_string(),
            pki.client_cert.display().to_string(),
            pki.client_key.display().to_string(),
            pw.display().to_string()
        ),
    );
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
    assert!(cfg.tls.is_some());

    let store = Store::open(&dir.path().join("store")).unwrap();
    let rt = runtime();
    let publisher = Publisher::spawn(cfg, store.clone(), rt.handle()).unwrap();
    let topics = Topics::new("speedcam", "tls-ok").unwrap();
    let ev = speeding_event("tls-ok");
    let msgs = topics.event_messages(&ev, None, false).unwrap();
    store.record_event(&ev, None, &msgs).unwrap();
    publisher.notify();

    let delivered = sub.wait(30, |m| {
        m.iter()
            .any(|(_, p)| String::from_utf8_lossy(p).contains(&ev.event_id))
    });
    assert!(
        delivered,
        "event not delivered over TLS; last error {:?}; got {:?}\nbroker log:\n{}",
        publisher.last_error(),
        sub.messages().iter().map(|m| &m.0).collect::<Vec<_>>(),
        broker.log()
    );
    assert!(sub.wait(10, |m| m
        .iter()
        .any(|(t, p)| t == &topics.status() && p == b"online")));
    assert!(wait_for(Duration::from_secs(10), || store.outbox_len() == 0));
    assert!(publisher.stats().connected && publisher.last_error().is_none());
    assert!(rt.block_on(publisher.shutdown(Duration::from_secs(5))));
}

#[test]
fn a_wrong_ca_is_a_tls_error_and_nothing_goes_out_in_plaintext() {
    let Some((pki, broker)) = broker(false) else {
        return;
    };
    let sub = TlsSubscriber::start(&pki, broker.port, "speedcam/tls-badca/#");
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), PASSWORD);
    let keys = format!(
        "ca_file = {:?}\nusername = {USER:?}\npassword_file = {:?}",
        pki.other_ca.display().to_string(),
        pw.display().to_string()
    );
    let cfg = load_mqtt(dir.path(), &broker.url(), "tls-badca", &keys);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let rt = runtime();
    let publisher = Publisher::spawn(cfg, store.clone(), rt.handle()).unwrap();
    let topics = Topics::new("speedcam", "tls-badca").unwrap();
    let ev = speeding_event("tls-badca");
    store
        .record_event(&ev, None, &topics.event_messages(&ev, None, false).unwrap())
        .unwrap();
    publisher.notify();

    assert!(
        wait_for(Duration::from_secs(20), || publisher
            .last_error()
            .is_some_and(|e| e.contains("TLS handshake"))),
        "last error {:?}",
        publisher.last_error()
    );
    let err = publisher.last_error().unwrap();
    assert!(
        err.contains("UnknownIssuer") && err.contains("mqtt.ca_file"),
        "{err}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(sub.messages().is_empty(), "{:?}", sub.messages());
    assert!(!publisher.stats().connected);
    assert_eq!(store.outbox_len(), 1, "the event waits in the outbox");
    let log = broker.log();
    assert!(
        !log.contains("speedcamd-tls-badca"),
        "the broker saw a CONNECT from the publisher:\n{log}"
    );
    drop(publisher);

    // A plaintext listener where an mqtts:// URL points: every connection must open with a TLS
    // handshake record (0x16), never an MQTT CONNECT (0x10), also on the retries.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = fake.local_addr().unwrap().port();
    let cfg = load_mqtt(
        dir.path(),
        &format!("mqtts://127.0.0.1:{port}"),
        "tls-fake",
        &format!(
            "ca_file = {:?}\nusername = {USER:?}\npassword_file = {:?}",
            pki.ca.display().to_string(),
            pw.display().to_string()
        ),
    );
    let store2 = Store::open(&dir.path().join("store2")).unwrap();
    let publisher = Publisher::spawn(cfg, store2, rt.handle()).unwrap();
    let mut first_bytes = Vec::new();
    for _ in 0..3 {
        let (mut conn, _) = fake.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = [0u8; 64];
        let n = conn.read(&mut head).unwrap_or(0);
        assert!(
            !String::from_utf8_lossy(&head[..n]).contains(PASSWORD),
            "password sent in the clear"
        );
        first_bytes.push(head.first().copied().filter(|_| n > 0));
        // Dropping the connection fails the handshake; the publisher retries.
    }
    assert!(
        first_bytes.iter().all(|b| *b == Some(0x16)),
        "not a TLS ClientHello on every attempt: {first_bytes:?}"
    );
    assert!(publisher.last_error().is_some_and(|e| !e.is_empty()));
}

#[test]
fn a_wrong_password_is_not_authorised_and_retried_with_backoff() {
    let Some((_pki, broker)) = broker(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), "not-the-password");
    let keys = format!(
        "ca_file = {:?}\nusername = {USER:?}\npassword_file = {:?}",
        _pki.ca.display().to_string(),
        pw.display().to_string()
    );
    let cfg = load_mqtt(dir.path(), &broker.url(), "tls-badpw", &keys);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let rt = runtime();
    let start = Instant::now();
    let publisher = Publisher::spawn(cfg, store, rt.handle()).unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || publisher
            .last_error()
            .is_some_and(|e| e.contains("not authorised"))),
        "last error {:?}\n{}",
        publisher.last_error(),
        broker.log()
    );
    let err = publisher.last_error().unwrap();
    assert!(err.contains("mqtt.password_file"), "{err}");
    let refusals = || broker.log().matches("not authorised").count();
    assert!(
        wait_for(Duration::from_secs(20), || refusals() >= 3),
        "no retries: {}",
        broker.log()
    );
    // Backoff from 0.25 s doubling (jittered 50-100%): 3 attempts take >= ~0.35 s, and 6 s
    // allow at most ~7, not the dozens of a retry loop without backoff.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    std::thread::sleep(Duration::from_secs(6).saturating_sub(start.elapsed()));
    let n = refusals();
    assert!(n <= 8, "{n} attempts in {:?}", start.elapsed());
    assert!(!publisher.stats().connected);
    assert!(
        publisher.last_error().is_some(),
        "still running and reporting"
    );
}

/// The camera's `[[cameras]]` block from the demo config, as a second camera `id` reading
/// `source`.
fn second_camera(config_text: &str, id: &str, source: &str) -> String {
    let start = config_text.find("[[cameras]]").expect("a camera");
    let block = &config_text[start..];
    let end = block[1..]
        .find("\n[[")
        .map(|i| i + 1)
        .unwrap_or(block.len());
    let block = &block[..end];
    let src_line = block
        .lines()
        .find(|l| l.starts_with("source = "))
        .expect("source line");
    block
        .replacen("id = \"synth\"", &format!("id = {id:?}"), 1)
        .replacen(src_line, &format!("source = {source:?}"), 1)
}

#[test]
fn the_daemon_logs_in_over_tls_and_never_logs_its_secrets() {
    let Some((pki, broker)) = broker(true) else {
        return;
    };
    let sub = TlsSubscriber::start(&pki, broker.port, "speedcam/secrets/#");
    let dir = tempfile::tempdir().unwrap();
    // systemd's LoadCredential= puts the file in $CREDENTIALS_DIRECTORY; the config names it
    // relatively.
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    password_file(&creds, PASSWORD);
    std::fs::copy(&pki.client_key, creds.join("mqtt-client.key")).unwrap();
    let video = repo().join("media/demo/scene.mp4");
    let config = write_demo_config(
        dir.path(),
        "secrets",
        &video.display().to_string(),
        &broker.url(),
        "",
    );
    let rtsp_port = free_port(); // nothing listens: the camera keeps reconnecting
    let rtsp = format!("rtsp://viewer:{RTSP_PASSWORD}@127.0.0.1:{rtsp_port}/stream");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "base_topic = \"speedcam\"\n",
        &format!(
            "base_topic = \"speedcam\"\nca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = \"mqtt-client.key\"\nusername = {USER:?}\npassword_file = \"mqtt-password\"\n",
            pki.ca.display().to_string(),
            pki.client_cert.display().to_string(),
        ),
        1,
    ) + "\n"
        + &second_camera(&text, "door", &rtsp)
        + "\n[cameras.reconnect]\ninitial_s = 0.2\nmax_s = 0.5\n\n[metrics]\nstats_interval_s = 1\n";
    std::fs::write(&config, &text).unwrap();

    let check = speedcamd()
        .args(["check-config", "--config"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "{check_out}");
    assert!(check_out.contains("TLS"), "{check_out}");

    let log_path = dir.path().join("daemon.log");
    let mut daemon = speedcamd()
        .args(["run", "--config"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("RUST_LOG", "debug")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start speedcamd");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // Logged in over TLS: the retained status and the file camera's stats arrive.
    let online = sub.wait(120, |m| {
        m.iter()
            .any(|(t, p)| t == "speedcam/secrets/status" && p == b"online")
    }) && sub.wait(30, |m| m.iter().any(|(t, _)| t == "speedcam/secrets/stats"));
    // The RTSP camera has failed (and been logged) a few times.
    let retried = wait_for(Duration::from_secs(30), || {
        log().matches("camera=door").count() >= 2
    });
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let stopped = wait_for(Duration::from_secs(30), || {
        daemon.try_wait().ok().flatten().is_some()
    });
    if !stopped {
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
    let out = log();
    assert!(online, "daemon did not publish over TLS:\n{out}");
    assert!(retried, "the RTSP camera was not retried:\n{out}");
    assert!(out.contains("DEBUG"), "not a debug-level log:\n{out}");
    for (what, text) in [("daemon log", &out), ("check-config output", &check_out)] {
        for secret in [PASSWORD, RTSP_PASSWORD, "PRIVATE KEY"] {
            assert!(
                !text.contains(secret),
                "{what} contains the secret {secret:?}:\n{text}"
            );
        }
    }
    assert!(
        out.contains("rtsp://***@127.0.0.1"),
        "the RTSP URL is logged redacted:\n{out}"
    );
}
