//! Keeping a shared [`Index`] current from a source's stream, and knowing when every watched kind
//! has synced.

use std::sync::{Arc, RwLock};

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    index::{Index, IndexEvent, Indexed, View},
    metrics::SourceMetrics,
    object::{Object, kind_of},
    shutdown::Shutdown,
    source::{ObjectSource, SourceError},
};

/// An index shared between the task that feeds it and its readers.
pub type SharedIndex<K> = Arc<RwLock<Index<K>>>;

/// Counts the kinds that have not synced yet ([`wait`](Self::wait) resolves when none are left), and
/// counts every change applied to any index ([`changes`](Self::changes)), so that a level-triggered
/// loop can recompute its whole desired state when anything it reads has moved.
#[derive(Clone, Debug)]
pub struct SyncTracker {
    pending: watch::Sender<usize>,
    generation: watch::Sender<u64>,
}

impl Default for SyncTracker {
    fn default() -> Self {
        Self {
            pending: watch::Sender::new(0),
            generation: watch::Sender::new(0),
        }
    }
}

impl SyncTracker {
    /// A tracker with no kinds.
    pub fn new() -> Self {
        Self::default()
    }

    fn register(&self) {
        self.pending.send_modify(|n| *n += 1);
    }

    fn synced(&self) {
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Resolves once every kind registered so far has synced.
    pub async fn wait(&self) {
        let mut rx = self.pending.subscribe();
        // Fails only when the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Whether every kind registered so far has synced.
    pub fn is_synced(&self) -> bool {
        *self.pending.borrow() == 0
    }

    /// A receiver that sees a new value after every event applied to any index fed with this
    /// tracker (the value is a count; only its change matters).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn changed(&self) {
        self.generation.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Starts watching kind `K` into a new shared index, until `shutdown`. Logs `synced` with the
/// object count at the first complete set; logs watch errors with the kind and keeps going (the
/// kube stream backs off before retrying).
pub fn spawn_index<K: Object>(
    source: &ObjectSource,
    tracker: &SyncTracker,
    shutdown: &Shutdown,
) -> (SharedIndex<K>, tokio::task::JoinHandle<()>) {
    spawn_index_viewed::<K, K>(source, Arc::new(Some), tracker, shutdown)
}

/// As [`spawn_index`], into an index of views: each object of kind `K` becomes the binary's
/// compact `V` as it arrives (see [`View`]).
pub fn spawn_index_viewed<K: Object, V: Indexed>(
    source: &ObjectSource,
    view: View<K, V>,
    tracker: &SyncTracker,
    shutdown: &Shutdown,
) -> (SharedIndex<V>, tokio::task::JoinHandle<()>) {
    spawn_index_restartable::<K, V>(source, view, None, tracker, shutdown)
}

/// As [`spawn_index_viewed`]; each [`WatchRestarter::restart`] drops the watch (and its
/// connection) and starts a new one, which lists again: for a watch that hangs without an error.
pub fn spawn_index_restartable<K: Object, V: Indexed>(
    source: &ObjectSource,
    view: View<K, V>,
    restarter: Option<&WatchRestarter>,
    tracker: &SyncTracker,
    shutdown: &Shutdown,
) -> (SharedIndex<V>, tokio::task::JoinHandle<()>) {
    let source = source.clone();
    let metrics = source.metrics().cloned();
    spawn_feed_from(
        move || source.watch_viewed::<K, V>(view.clone()),
        restarter.map(WatchRestarter::subscribe),
        kind_of::<K>(),
        metrics,
        tracker,
        shutdown,
    )
}

/// Tells restartable watches ([`spawn_index_restartable`]) to start over.
#[derive(Clone, Debug)]
pub struct WatchRestarter(Arc<watch::Sender<u64>>);

impl Default for WatchRestarter {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }
}

impl WatchRestarter {
    /// Every restartable watch drops its stream and starts a new one.
    pub fn restart(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Feeds a new shared index from a stream of index events of `kind` until `shutdown`, keeping
/// `oxelb_source_objects{kind}` at the index's size when `metrics` are given.
pub fn spawn_feed<V: Indexed>(
    stream: BoxStream<'static, Result<IndexEvent<V>, SourceError>>,
    kind: String,
    metrics: Option<SourceMetrics>,
    tracker: &SyncTracker,
    shutdown: &Shutdown,
) -> (SharedIndex<V>, tokio::task::JoinHandle<()>) {
    let mut once = Some(stream);
    spawn_feed_from(
        move || once.take().unwrap_or_else(|| futures::stream::empty().boxed()),
        None,
        kind,
        metrics,
        tracker,
        shutdown,
    )
}

/// As [`spawn_feed`], from streams `make` gives: one at start, a new one after each restart.
fn spawn_feed_from<V: Indexed>(
    mut make: impl FnMut() -> BoxStream<'static, Result<IndexEvent<V>, SourceError>> + Send + 'static,
    mut restart: Option<watch::Receiver<u64>>,
    kind: String,
    metrics: Option<SourceMetrics>,
    tracker: &SyncTracker,
    shutdown: &Shutdown,
) -> (SharedIndex<V>, tokio::task::JoinHandle<()>) {
    let index: SharedIndex<V> = Arc::default();
    tracker.register();
    let task = tokio::spawn({
        let index = index.clone();
        let tracker = tracker.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut stream = make();
            loop {
                let restarted = async {
                    match restart.as_mut() {
                        Some(rx) => rx.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                };
                let item = tokio::select! {
                    _ = shutdown.wait() => break,
                    ok = restarted => {
                        if ok {
                            warn!(kind, "restarting the watch: dropping its connection and listing again");
                            stream = make();
                        } else {
                            restart = None;
                        }
                        continue;
                    }
                    item = stream.next() => item,
                };
                let event = match item {
                    None => {
                        warn!(kind, "watch stream ended");
                        break;
                    }
                    Some(Err(error)) => {
                        warn!(kind, %error, "watch error");
                        continue;
                    }
                    Some(Ok(event)) => event,
                };
                let (update, objects) = {
                    // A poisoned lock means a reader panicked; the data is still a valid map.
                    let mut guard = index.write().unwrap_or_else(|e| e.into_inner());
                    let update = guard.update(event);
                    (update, guard.len())
                };
                if let Some(metrics) = &metrics {
                    metrics.set_objects(&kind, objects);
                }
                if update.became_synced {
                    info!(kind, objects, "synced");
                    tracker.synced();
                }
                // Readers recompute only when something they can see moved.
                if update.changed {
                    tracker.changed();
                }
            }
        }
    });
    (index, task)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Request, Response, StatusCode};
    use k8s_openapi::api::core::v1::{Node, Service};
    use kube::client::Body;

    use super::*;
    use crate::{object::ObjectKey, source::dir::DirSource};

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn indexes_sync_and_stop_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s1}\n",
        )
        .unwrap();
        let source =
            ObjectSource::dir(DirSource::open_with_interval(dir.path(), Duration::from_millis(20)).unwrap());
        let tracker = SyncTracker::new();
        let shutdown = Shutdown::new();
        let (nodes, node_task) = spawn_index::<Node>(&source, &tracker, &shutdown);
        let (services, service_task) = spawn_index::<Service>(&source, &tracker, &shutdown);
        tokio::time::timeout(WAIT, tracker.wait()).await.unwrap();
        assert!(nodes.read().unwrap().get(&ObjectKey::new(None, "n1")).is_some());
        assert!(
            services
                .read()
                .unwrap()
                .get(&ObjectKey::new(Some("default"), "s1"))
                .is_some()
        );

        // Later changes reach the index.
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n",
        )
        .unwrap();
        tokio::time::timeout(WAIT, async {
            while nodes.read().unwrap().len() != 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();

        shutdown.trigger();
        tokio::time::timeout(WAIT, node_task).await.unwrap().unwrap();
        tokio::time::timeout(WAIT, service_task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn watch_errors_are_retried_not_fatal() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let source = ObjectSource::kube(kube::Client::new(service, "default"));
        let server = tokio::spawn(async move {
            // First list fails, the retry (after the watcher's backoff) succeeds; watches then hang.
            let (_, send) = handle.next_request().await.unwrap();
            let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "boom", "reason": "InternalError", "code": 500});
            send.send_response(
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Body::from(serde_json::to_vec(&status).unwrap()))
                    .unwrap(),
            );
            let (_, send) = handle.next_request().await.unwrap();
            let list = serde_json::json!({"apiVersion": "v1", "kind": "NodeList",
                "metadata": {"resourceVersion": "1"}, "items": []});
            send.send_response(Response::new(Body::from(serde_json::to_vec(&list).unwrap())));
            let mut held = Vec::new();
            while let Some(pending) = handle.next_request().await {
                held.push(pending);
            }
        });
        let tracker = SyncTracker::new();
        let shutdown = Shutdown::new();
        let (nodes, task) = spawn_index::<Node>(&source, &tracker, &shutdown);
        tokio::time::timeout(WAIT, tracker.wait()).await.unwrap();
        assert!(nodes.read().unwrap().is_synced());
        shutdown.trigger();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        server.abort();
    }
}
