//! The metrics and health server: `/metrics` (OpenMetrics text), `/healthz` (liveness) and
//! `/readyz` (readiness: every watched kind has synced).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::net::TcpListener;

/// The OpenMetrics text exposition content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The readiness flag served on `/readyz`. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Sets whether `/readyz` answers 200 (`true`) or 503 (`false`, the initial state).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether the process reported itself ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    health: Health,
}

/// The router serving the three paths.
pub fn router(registry: Arc<Registry>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health })
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(registry, health))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (StatusCode::OK, [(http::header::CONTENT_TYPE, OPENMETRICS)], body),
        Err(error) => {
            tracing::warn!(%error, "cannot encode the metrics registry");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("cannot encode metrics: {error}\n"),
            )
        }
    }
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: watches have not synced\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::metrics::counter::Counter;

    use super::*;
    use crate::{shutdown::Shutdown, test_util::http_get};

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("oxelb_test_things", "things", counter.clone());
        counter.inc();
        let health = Health::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(listener, Arc::new(registry), health.clone(), {
            let s = shutdown.clone();
            async move { s.wait().await }
        }));

        let healthz = http_get(addr, "/healthz").await.unwrap();
        assert_eq!(healthz.status, 200);
        let readyz = http_get(addr, "/readyz").await.unwrap();
        assert_eq!(readyz.status, 503);
        health.set_ready(true);
        let readyz = http_get(addr, "/readyz").await.unwrap();
        assert_eq!(readyz.status, 200);
        let metrics = http_get(addr, "/metrics").await.unwrap();
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.body.contains("oxelb_test_things_total 1"),
            "{}",
            metrics.body
        );
        assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
        let missing = http_get(addr, "/nope").await.unwrap();
        assert_eq!(missing.status, 404);

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
