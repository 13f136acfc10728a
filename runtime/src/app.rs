//! The start-up and shutdown both binaries share: metrics/health server, object source, one index
//! per watched kind, readiness once every kind has synced, and a clean stop on SIGTERM/SIGINT.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    cli::CommonArgs,
    feed::{SharedIndex, SyncTracker},
    metrics::SourceMetrics,
    object::Object,
    serve::{Health, serve},
    shutdown::Shutdown,
    source::{ObjectSource, SourceError},
};

/// How long the index tasks and the server get to finish after the shutdown signal.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why a binary could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `--metrics-addr` could not be bound.
    #[error("--metrics-addr {addr}: cannot listen ({source}); choose a free address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install SIGTERM/SIGINT handlers ({0}); the process stops")]
    Signals(#[source] std::io::Error),
    /// The source could not be opened.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The metrics server failed while running.
    #[error("metrics server on {addr} failed ({source})")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The server error.
        #[source]
        source: std::io::Error,
    },
}

/// Holds `/readyz` at 503 until [`open`](Self::open)ed, for a binary that has more to start than its
/// watches (the controller's webhook). From [`App::ready_gate`].
#[derive(Debug)]
pub struct ReadyGate {
    pending: tokio::sync::watch::Sender<usize>,
}

impl ReadyGate {
    /// This part is ready.
    pub fn open(self) {
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A started process: server up, source open, indexes being fed.
pub struct App {
    source: ObjectSource,
    tracker: SyncTracker,
    restarter: crate::feed::WatchRestarter,
    gates: tokio::sync::watch::Sender<usize>,
    shutdown: Shutdown,
    health: Health,
    addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Installs the signal handlers, registers the source metrics into `registry`, starts the
    /// metrics/health server on `--metrics-addr` (not ready yet) and opens `--source`.
    pub async fn start(args: &CommonArgs, mut registry: Registry) -> Result<Self, AppError> {
        let shutdown = Shutdown::new();
        shutdown.on_signals().map_err(AppError::Signals)?;
        let metrics = SourceMetrics::register(&mut registry);
        let listener = TcpListener::bind(args.metrics_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: args.metrics_addr,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(args.metrics_addr);
        let health = Health::default();
        let server = tokio::spawn(serve(listener, Arc::new(registry), health.clone(), {
            let shutdown = shutdown.clone();
            async move { shutdown.wait().await }
        }));
        info!(%addr, "serving /metrics, /healthz and /readyz");
        let source =
            ObjectSource::from_spec_with_delay(&args.source, Duration::from_millis(args.dir_delay_ms))
                .await?
                .with_metrics(metrics);
        info!(source = %args.source, "source opened");
        Ok(Self {
            source,
            tracker: SyncTracker::new(),
            restarter: crate::feed::WatchRestarter::default(),
            gates: tokio::sync::watch::Sender::new(0),
            shutdown,
            health,
            addr,
            server,
            tasks: Vec::new(),
        })
    }

    /// The source (for the writer and further watches).
    pub fn source(&self) -> &ObjectSource {
        &self.source
    }

    /// The shutdown signal.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The tracker of every index started by [`index`](Self::index): when they have synced, and
    /// a change counter that moves on every event applied to any of them.
    pub fn tracker(&self) -> &SyncTracker {
        &self.tracker
    }

    /// The readiness flag served on `/readyz`. [`run`](Self::run) sets it once every index has
    /// synced; a binary with more to do before it is ready (the controller's webhook) can hold it.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// A gate that keeps `/readyz` at 503 until it is opened, besides the watches' sync.
    pub fn ready_gate(&mut self) -> ReadyGate {
        self.gates.send_modify(|n| *n += 1);
        ReadyGate {
            pending: self.gates.clone(),
        }
    }

    /// Starts watching kind `K` into an index; the process becomes ready once every kind watched
    /// this way has synced.
    pub fn index<K: Object>(&mut self) -> SharedIndex<K> {
        self.index_viewed::<K, K>(Arc::new(Some))
    }

    /// What restarts every watch started by [`index`](Self::index) and
    /// [`index_viewed`](Self::index_viewed) (a binary that finds its view stuck).
    pub fn watch_restarter(&self) -> crate::feed::WatchRestarter {
        self.restarter.clone()
    }

    /// As [`index`](Self::index), into an index of the binary's compact views of `K` (see
    /// [`crate::index::View`]): the view decides what is kept of each object and which are kept.
    pub fn index_viewed<K: Object, V: crate::index::Indexed>(
        &mut self,
        view: crate::index::View<K, V>,
    ) -> SharedIndex<V> {
        let (index, task) = crate::feed::spawn_index_restartable::<K, V>(
            &self.source,
            view,
            Some(&self.restarter),
            &self.tracker,
            &self.shutdown,
        );
        self.tasks.push(task);
        index
    }

    /// As [`index`](Self::index), for the objects of `K` in `namespace` only.
    pub fn index_in<K>(&mut self, namespace: &str) -> SharedIndex<K>
    where
        K: Object + ::kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let stream = self
            .source
            .watch_in_viewed::<K, K>(namespace, std::sync::Arc::new(Some));
        let (index, task) = crate::feed::spawn_feed(
            stream,
            crate::object::kind_of::<K>(),
            self.source.metrics().cloned(),
            &self.tracker,
            &self.shutdown,
        );
        self.tasks.push(task);
        index
    }

    /// Becomes ready when every index has synced, then runs until SIGTERM/SIGINT and stops the
    /// server and the watches.
    pub async fn run(self) -> Result<(), AppError> {
        let mut gates = self.gates.subscribe();
        tokio::select! {
            _ = async {
                self.tracker.wait().await;
                // Fails only when the sender is gone, and `self` holds it.
                let _ = gates.wait_for(|n| *n == 0).await;
            } => {
                self.health.set_ready(true);
                info!(kinds = self.tasks.len(), "all watches synced; ready");
            }
            _ = self.shutdown.wait() => {}
        }
        self.shutdown.wait().await;
        for task in self.tasks {
            if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                warn!("a watch task did not stop in time");
            }
        }
        match tokio::time::timeout(STOP_GRACE, self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(source))) => {
                return Err(AppError::Serve {
                    addr: self.addr,
                    source,
                });
            }
            Ok(Err(error)) => warn!(%error, "metrics server task failed"),
            Err(_) => warn!("metrics server did not stop in time"),
        }
        info!("stopped");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use k8s_openapi::api::core::v1::Service;

    use super::*;
    use crate::{
        cli::{LogFormat, SourceSpec},
        test_util::{free_port, http_get},
    };

    #[tokio::test]
    async fn a_ready_gate_holds_readyz_until_opened() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        let args = CommonArgs {
            source: SourceSpec::from_str(&format!("dir:{}", dir.path().display())).unwrap(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir_delay_ms: 0,
        };
        let mut app = App::start(&args, Registry::default()).await.unwrap();
        let _services = app.index::<Service>();
        let gate = app.ready_gate();
        let tracker = app.tracker().clone();
        let shutdown = app.shutdown().clone();
        let run = tokio::spawn(app.run());
        tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let addr = args.metrics_addr;
        assert_eq!(
            http_get(addr, "/readyz").await.unwrap().status,
            503,
            "synced, gate closed"
        );
        gate.open();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while http_get(addr, "/readyz").await.unwrap().status != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not ready after the gate opened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
