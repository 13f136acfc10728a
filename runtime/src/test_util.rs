//! Helpers for tests of the binaries (feature `test-util`): a minimal HTTP/1.1 GET client for the
//! health server, so tests need no HTTP client dependency, and a Kubernetes client backed by kube's
//! tower mock, with the response shapes the apiserver sends.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A response: status code and body text.
#[derive(Debug)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body (the server answers with `Connection: close`, so this is everything after the headers).
    pub body: String,
}

/// Sends `GET path` to `addr` and reads the whole response.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response: {text:?}"));
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    // axum answers small bodies with Content-Length; decode chunked bodies just in case.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How long [`check_binary_lifecycle`] waits for readiness and for the exit after SIGTERM.
const LIFECYCLE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs a binary (`bin`, e.g. `env!("CARGO_BIN_EXE_oxelb-controller")`) with `--source dir:` on a
/// fresh directory holding `manifests`, waits (bounded) until `/readyz` answers 200, checks that
/// `/metrics` contains every line of `expected_metrics` and that `/healthz` answers 200, then sends
/// SIGTERM and checks a clean exit. The child is killed on every failure path.
pub async fn check_binary_lifecycle(
    bin: &str,
    manifests: &str,
    expected_metrics: &[&str],
) -> Result<(), String> {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    std::fs::write(dir.path().join("objects.yaml"), manifests).map_err(|e| format!("write: {e}"))?;
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(bin)
        .arg("--source")
        .arg(format!("dir:{}", dir.path().display()))
        .arg("--metrics-addr")
        .arg(addr.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn {bin}: {e}"))?;

    let outcome = async {
        let deadline = Instant::now() + LIFECYCLE_WAIT;
        let metrics = loop {
            if Instant::now() >= deadline {
                return Err(format!("{bin} not ready within {LIFECYCLE_WAIT:?}"));
            }
            if let Ok(Some(exit)) = child.try_wait() {
                return Err(format!("{bin} exited early: {exit}"));
            }
            if let Ok(ready) = http_get(addr, "/readyz").await
                && ready.status == 200
            {
                break http_get(addr, "/metrics")
                    .await
                    .map_err(|e| format!("/metrics: {e}"))?
                    .body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        for line in expected_metrics {
            if !metrics.contains(line) {
                return Err(format!("missing {line:?} in /metrics:\n{metrics}"));
            }
        }
        let health = http_get(addr, "/healthz")
            .await
            .map_err(|e| format!("/healthz: {e}"))?;
        if health.status != 200 {
            return Err(format!("/healthz answered {}", health.status));
        }

        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        if !matches!(killed, Ok(status) if status.success()) {
            return Err(format!("kill -TERM failed: {killed:?}"));
        }
        let deadline = Instant::now() + LIFECYCLE_WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(exit)) if exit.success() => return Ok(()),
                Ok(Some(exit)) => return Err(format!("{bin} exited with {exit} after SIGTERM")),
                Ok(None) if Instant::now() > deadline => {
                    return Err(format!("{bin} did not exit within {LIFECYCLE_WAIT:?} of SIGTERM"));
                }
                Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err(e) => return Err(format!("wait for {bin}: {e}")),
            }
        }
    }
    .await;
    if outcome.is_err() {
        // Best effort: never leave the child running after a failed check.
        let _ = child.kill();
        let _ = child.wait();
    }
    outcome
}

/// The test side of a mocked apiserver: receives the client's requests, sends responses.
pub type MockApi =
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

/// A kube client whose requests arrive on the returned [`MockApi`] (default namespace `default`).
pub fn mock_client() -> (kube::Client, MockApi) {
    let (service, handle) =
        tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// A JSON response with `status`.
pub fn json_response(
    status: http::StatusCode,
    body: &serde_json::Value,
) -> http::Response<kube::client::Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = http::Response::new(kube::client::Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The apiserver's `Status` body of a failure (`code` 404 `NotFound`, 409 `Conflict` or
/// `AlreadyExists`, ...).
pub fn status_failure(code: u16, reason: &str) -> serde_json::Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason,
        "reason": reason, "code": code})
}
