//! The Prometheus endpoint: `GET /metrics` on a small blocking HTTP server (tiny_http) with
//! its own thread, so a slow scraper never touches the pipeline or the tokio runtime.

use super::{Metrics, MetricsError, PROMETHEUS_CONTENT_TYPE};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The running endpoint; dropping it (or [`MetricsServer::shutdown`]) stops answering at once,
/// joins the serving thread, and tiny_http's accept thread closes the socket right after.
pub struct MetricsServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Serves `GET /metrics` (also `HEAD`) at `addr` with [`Metrics::render_prometheus`]:
/// 200 with the Prometheus text format; 405 for other methods on `/metrics`; 404 elsewhere.
/// Port 0 picks a free port ([`MetricsServer::local_addr`] says which).
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<MetricsServer, MetricsError> {
    let listener = TcpListener::bind(addr).map_err(|cause| MetricsError::Bind { addr, cause })?;
    let local = listener
        .local_addr()
        .map_err(|cause| MetricsError::Bind { addr, cause })?;
    let server =
        tiny_http::Server::from_listener(listener, None).map_err(|e| MetricsError::Start {
            addr,
            message: e.to_string(),
        })?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || run(&server, &stop, &metrics))
            .map_err(|e| MetricsError::Start {
                addr,
                message: format!("spawning its thread: {e}"),
            })?
    };
    tracing::info!("metrics endpoint on http://{local}/metrics");
    Ok(MetricsServer {
        addr: local,
        server,
        stop,
        thread: Some(thread),
    })
}

impl MetricsServer {
    /// The address actually bound (the port chosen when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its thread (same as dropping it).
    pub fn shutdown(self) {}
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(server: &tiny_http::Server, stop: &AtomicBool, metrics: &Metrics) {
    loop {
        match server.recv() {
            Ok(request) => respond(request, metrics),
            Err(_) if stop.load(Ordering::SeqCst) => return,
            Err(e) => {
                // An accept error (e.g. out of file descriptors): say so, back off, go on.
                tracing::warn!(err = %e, "metrics endpoint failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(request: tiny_http::Request, metrics: &Metrics) {
    use tiny_http::Method;
    let path = request.url().split('?').next().unwrap_or("");
    let response = match (request.method(), path) {
        (Method::Get | Method::Head, "/metrics") => {
            let mut r = tiny_http::Response::from_string(metrics.render_prometheus());
            if let Some(h) = header("Content-Type", PROMETHEUS_CONTENT_TYPE) {
                r.add_header(h);
            }
            r
        }
        (_, "/metrics") => {
            let mut r =
                tiny_http::Response::from_string("only GET /metrics\n").with_status_code(405);
            if let Some(h) = header("Allow", "GET, HEAD") {
                r.add_header(h);
            }
            r
        }
        _ => tiny_http::Response::from_string("not found: the metrics are at /metrics\n")
            .with_status_code(404),
    };
    if let Err(e) = request.respond(response) {
        tracing::debug!(err = %e, "metrics endpoint: answering a scrape failed");
    }
}
