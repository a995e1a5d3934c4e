//! The metrics endpoint: a minimal HTTP/1.1 server on tokio (no web framework: two fixed
//! paths do not justify hyper's dependency tree).
//!
//! - `GET /metrics` → 200, Prometheus text format (`text/plain; version=0.0.4`);
//! - `GET /healthz` → 200 `ok` once the node is ready (datastore in sync, dataplane applied),
//!   else 503 `not ready`;
//! - any other path → 404; any other method → 405.
//!
//! One request per connection (`Connection: close`); a request head larger than 8 KiB or
//! slower than 5 s is dropped, so a stuck client never holds anything.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Deadline of reading a request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint serves.
pub trait Exporter: Send + Sync + 'static {
    /// The metrics in Prometheus text format (ending with `# EOF`).
    fn metrics(&self) -> BoxFuture<'_, String>;
    /// Whether the node is ready (`/healthz`).
    fn healthy(&self) -> bool;
}

/// A running metrics server; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `exporter` on the current runtime.
    pub async fn start(addr: SocketAddr, exporter: Arc<dyn Exporter>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        info!(%addr, "metrics endpoint listening");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let exporter = Arc::clone(&exporter);
                tokio::spawn(async move {
                    if let Err(error) = serve(stream, exporter.as_ref()).await {
                        debug!(%peer, %error, "metrics request failed");
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The parsed request line.
#[derive(Debug, PartialEq, Eq)]
struct RequestLine {
    method: String,
    path: String,
}

/// Parses the first line of a request head. Pure.
fn parse_request_line(head: &[u8]) -> Option<RequestLine> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split_ascii_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    Some(RequestLine { method, path })
}

/// Status line and body for a request. Pure apart from the exporter.
async fn respond(
    request: Option<RequestLine>,
    exporter: &dyn Exporter,
) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let Some(request) = request else {
        return (400, TEXT, "bad request\n".to_string());
    };
    if request.method != "GET" && request.method != "HEAD" {
        return (405, TEXT, "method not allowed\n".to_string());
    }
    match request.path.as_str() {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            exporter.metrics().await,
        ),
        "/healthz" if exporter.healthy() => (200, TEXT, "ok\n".to_string()),
        "/healthz" => (503, TEXT, "not ready\n".to_string()),
        _ => (404, TEXT, "not found\n".to_string()),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

async fn serve(mut stream: TcpStream, exporter: &dyn Exporter) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(());
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > MAX_HEAD {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request head too slow"))??;
    if head.len() > MAX_HEAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request head too large",
        ));
    }
    let request = parse_request_line(&head);
    let head_only = request.as_ref().is_some_and(|r| r.method == "HEAD");
    let (status, content_type, body) = respond(request, exporter).await;
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Fixed(AtomicBool);

    impl Exporter for Fixed {
        fn metrics(&self) -> BoxFuture<'_, String> {
            Box::pin(async { "up 1\n# EOF\n".to_string() })
        }
        fn healthy(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(RequestLine {
                method: "GET".into(),
                path: "/metrics".into()
            })
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"\xff\xfe"), None);
        assert_eq!(parse_request_line(b"GET / SPDY/3\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn paths_statuses_and_content_type() {
        let exporter = Arc::new(Fixed(AtomicBool::new(false)));
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), exporter.clone())
            .await
            .unwrap();
        let addr = server.addr();
        let metrics = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(metrics.ends_with("up 1\n# EOF\n"));
        let health = get(addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 503"), "{health}");
        exporter.0.store(true, Ordering::SeqCst);
        let health = get(addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let missing = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let garbage = get(addr, "hello\r\n\r\n").await;
        assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    }
}
