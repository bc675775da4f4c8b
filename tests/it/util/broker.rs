//! A real MQTT broker on a free loopback port and a collecting subscriber.
//!
//! `start_broker()` runs the system `mosquitto` when it is installed (the broker people deploy),
//! else an in-process `rumqttd` behind a small TCP proxy (so `stop()`/`restart()` can cut and
//! restore connectivity), announced through the skip rule (`SKIPPED: mosquitto (using
//! in-process rumqttd)`, see [`super`]). Dropping a `TestBroker` stops it.

use super::{fallback, free_port, Tool};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which broker implementation a [`TestBroker`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The system `mosquitto` binary, with persistence in a temp dir.
    Mosquitto,
    /// In-process `rumqttd`, reached through a proxy that `stop()` closes.
    Rumqttd,
}

/// A broker listening on `127.0.0.1:port`.
pub struct TestBroker {
    /// Port clients connect to.
    pub port: u16,
    /// Implementation in use.
    pub kind: BrokerKind,
    inner: Inner,
}

enum Inner {
    Mosquitto {
        child: Option<Child>,
        conf: PathBuf,
        _dir: tempfile::TempDir,
    },
    Rumqttd {
        proxy: Option<Proxy>,
        backend_port: u16,
    },
}

/// Starts mosquitto if installed (set `SPEEDCAM_TEST_RUMQTTD=1` to force rumqttd), else
/// rumqttd (a failure when `SPEEDCAM_REQUIRE` names mosquitto), on a free port; prints which.
pub fn start_broker() -> TestBroker {
    start_broker_on(free_port())
}

/// [`start_broker`] on a given loopback port.
pub fn start_broker_on(port: u16) -> TestBroker {
    if std::env::var_os("SPEEDCAM_TEST_RUMQTTD").is_some() {
        return start_rumqttd(port);
    }
    match mosquitto_binary() {
        Ok(_) => start_mosquitto(port),
        Err(why) => {
            fallback(Tool::Mosquitto, "using in-process rumqttd", &why);
            start_rumqttd(port)
        }
    }
}

/// The system `mosquitto` binary, or why there is none.
pub fn mosquitto_binary() -> Result<PathBuf, String> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or_else(|| "mosquitto is not installed".to_string())
}

pub(super) fn wait_listening(port: u16, up: bool) {
    let deadline = Instant::now() + super::PATIENCE;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "broker on port {port} did not become {}",
        if up { "reachable" } else { "unreachable" }
    );
}

/// Mosquitto with `persistence true` in a temp dir (chowned to `mosquitto` when we are root,
/// because mosquitto drops to that user and then silently cannot write a root-owned dir).
pub fn start_mosquitto(port: u16) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nlog_dest stderr\n",
            dir.path().display()
        ),
    )
    .unwrap();
    if is_root() {
        let status = Command::new("chown")
            .arg("mosquitto")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown mosquitto {}", dir.path().display());
    }
    let mut broker = TestBroker {
        port,
        kind: BrokerKind::Mosquitto,
        inner: Inner::Mosquitto {
            child: None,
            conf,
            _dir: dir,
        },
    };
    broker.start();
    eprintln!("test broker: mosquitto on 127.0.0.1:{port}");
    broker
}

pub(super) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// In-process rumqttd (it cannot be stopped, so a proxy in front of it is what stops).
pub fn start_rumqttd(port: u16) -> TestBroker {
    let backend_port = free_port();
    let config = format!(
        r#"
id = 0
[router]
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{backend_port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 10485760
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&config).unwrap();
    let mut broker = rumqttd::Broker::new(config);
    std::thread::spawn(move || {
        if let Err(e) = broker.start() {
            eprintln!("rumqttd stopped: {e}");
        }
    });
    wait_listening(backend_port, true);
    let mut broker = TestBroker {
        port,
        kind: BrokerKind::Rumqttd,
        inner: Inner::Rumqttd {
            proxy: None,
            backend_port,
        },
    };
    broker.start();
    eprintln!("test broker: in-process rumqttd on 127.0.0.1:{port} (mosquitto not installed, or SPEEDCAM_TEST_RUMQTTD set)");
    broker
}

impl TestBroker {
    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port; no-op when running.
    pub fn start(&mut self) {
        let port = self.port;
        match &mut self.inner {
            Inner::Mosquitto { child, conf, .. } => {
                if child.is_some() {
                    return;
                }
                let log = conf.with_file_name("mosquitto.log");
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap();
                *child = Some(
                    Command::new(mosquitto_binary().unwrap())
                        .arg("-c")
                        .arg(&*conf)
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .unwrap(),
                );
            }
            Inner::Rumqttd {
                proxy,
                backend_port,
            } => {
                if proxy.is_some() {
                    return;
                }
                *proxy = Some(Proxy::start(port, *backend_port));
            }
        }
        wait_listening(port, true);
    }

    /// Stops the broker (mosquitto: SIGTERM, so it saves its persistence file); every client
    /// connection is cut.
    pub fn stop(&mut self) {
        match &mut self.inner {
            Inner::Mosquitto { child, .. } => {
                if let Some(mut c) = child.take() {
                    let _ = Command::new("kill")
                        .arg("-TERM")
                        .arg(c.id().to_string())
                        .status();
                    let _ = c.wait();
                }
            }
            Inner::Rumqttd { proxy, .. } => drop(proxy.take()),
        }
        wait_listening(self.port, false);
    }

    /// `stop()` then `start()`.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// Mosquitto's log (empty for rumqttd), for failure messages.
    pub fn log(&self) -> String {
        match &self.inner {
            Inner::Mosquitto { conf, .. } => {
                std::fs::read_to_string(conf.with_file_name("mosquitto.log")).unwrap_or_default()
            }
            Inner::Rumqttd { .. } => String::new(),
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Inner::Mosquitto { child: Some(c), .. } = &mut self.inner {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Inner::Rumqttd { proxy, .. } = &mut self.inner {
            drop(proxy.take());
        }
    }
}

/// TCP forwarder `port` -> `backend`; dropping it closes the listener and every connection.
struct Proxy {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(port: u16, backend: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
                    continue;
                };
                let mut list = conns2.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy {
            stop,
            conns,
            accept: Some(accept),
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// One message a [`Subscriber`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Topic it was published on.
    pub topic: String,
    /// Raw payload.
    pub payload: Vec<u8>,
    /// Retain flag as delivered (true for retained messages sent on subscribe).
    pub retain: bool,
}

/// A rumqttc sync client that collects everything matching its filters, reconnecting and
/// re-subscribing by itself (a persistent session also keeps QoS 1 messages while it is away).
pub struct Subscriber {
    client: Client,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Subscribes to `filters` (QoS 1) with a clean session; returns after the SUBACK.
pub fn subscribe(port: u16, filters: &[&str]) -> Subscriber {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let id = format!("test-sub-{}-{n}", std::process::id());
    subscribe_with(port, filters, &id, false)
}

/// Subscribes to `filters` as `client_id`; `persistent` asks the broker to keep the session
/// (and queue QoS 1 messages) while disconnected. Returns after the first SUBACK.
pub fn subscribe_with(
    port: u16,
    filters: &[&str],
    client_id: &str,
    persistent: bool,
) -> Subscriber {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_clean_session(!persistent)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(16 * 1024 * 1024, 64 * 1024);
    let (client, mut connection) = Client::new(opts, 64);
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
    let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
    let thread = {
        let (client, received, stop) = (client.clone(), received.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match connection.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Incoming::ConnAck(ack)))) => {
                        if !ack.session_present {
                            for f in &filters {
                                let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                            }
                        }
                    }
                    Ok(Ok(Event::Incoming(Incoming::SubAck(_)))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                        received.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
    };
    subscribed_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("subscriber got no SUBACK within 5 s");
    Subscriber {
        client,
        received,
        stop,
        thread: Some(thread),
    }
}

impl Subscriber {
    /// Everything received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `done(messages)` holds or `timeout` passes; returns the messages either way.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages();
            if done(&msgs) || Instant::now() >= deadline {
                return msgs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Messages on exactly `topic`, in arrival order.
    pub fn on_topic(&self, topic: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
