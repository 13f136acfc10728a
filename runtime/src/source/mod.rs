//! The object source: one abstraction over "where objects come from and where writes go", with two
//! adapters chosen by `--source`: the Kubernetes API ([`kube`]) or a directory of YAML
//! manifests ([`dir`]).
//!
//! Both adapters produce the same per-kind stream of [`ObjectEvent`]s and accept the same writes
//! through [`Writer`].

pub mod dir;
pub(crate) mod error;
pub(crate) mod event;
pub mod kube;
pub mod progress;
pub(crate) mod request;
pub mod slim;
mod writer;

use std::collections::HashSet;

use futures::{StreamExt, stream::BoxStream};

pub use self::{
    error::{SourceError, WriteError},
    event::ObjectEvent,
    progress::WatchProgress,
    request::{EventRecord, EventType, MetadataPatch},
    writer::Writer,
};
use crate::{
    cli::SourceSpec,
    index::{IndexEvent, Indexed, View, view_event},
    metrics::SourceMetrics,
    object::{Object, ObjectKey, kind_of},
    shape::trim_events,
};

/// Where objects come from: the Kubernetes API or a directory of manifests.
#[derive(Clone)]
pub struct ObjectSource {
    backend: Backend,
    metrics: Option<SourceMetrics>,
}

#[derive(Clone)]
enum Backend {
    Kube(self::kube::KubeSource),
    Dir(dir::DirSource),
}

impl ObjectSource {
    /// Opens the source named by `--source`. For `kube` this loads the kubeconfig or in-cluster
    /// configuration (`kube::Client::try_default`); for `dir:PATH` it checks that PATH is a directory.
    pub async fn from_spec(spec: &SourceSpec) -> Result<Self, SourceError> {
        Self::from_spec_with_delay(spec, std::time::Duration::ZERO).await
    }

    /// [`Self::from_spec`], with a `dir:` source that delivers each change `dir_delay` late (labs
    /// give each process its own delay to reproduce the skewed views of separate watches).
    pub async fn from_spec_with_delay(
        spec: &SourceSpec,
        dir_delay: std::time::Duration,
    ) -> Result<Self, SourceError> {
        let backend = match spec {
            SourceSpec::Kube => {
                let client = ::kube::Client::try_default()
                    .await
                    .map_err(|source| SourceError::Client { source })?;
                Backend::Kube(self::kube::KubeSource::new(client))
            }
            SourceSpec::Dir(path) => Backend::Dir(dir::DirSource::open(path)?.with_delay(dir_delay)),
        };
        Ok(Self {
            backend,
            metrics: None,
        })
    }

    /// A source over an existing kube client (tests use a mocked one).
    pub fn kube(client: ::kube::Client) -> Self {
        Self {
            backend: Backend::Kube(self::kube::KubeSource::new(client)),
            metrics: None,
        }
    }

    /// A source over an already opened directory source.
    pub fn dir(source: dir::DirSource) -> Self {
        Self {
            backend: Backend::Dir(source),
            metrics: None,
        }
    }

    /// The Kubernetes client, for `--source kube` (leader election needs it); `None` for `dir:`.
    pub fn kube_client(&self) -> Option<::kube::Client> {
        match &self.backend {
            Backend::Kube(kube) => Some(kube.client()),
            Backend::Dir(_) => None,
        }
    }

    /// Makes every stream from [`watch`](Self::watch) update these metrics.
    #[must_use]
    pub fn with_metrics(mut self, metrics: SourceMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The stream of changes to all objects of kind `K` (all namespaces), starting with a
    /// [`ObjectEvent::Resync`] of the current set.
    ///
    /// Errors are not fatal: the kube stream retries with the watcher's default backoff on the next
    /// poll, so a consumer logs them and keeps polling.
    pub fn watch<K: Object>(&self) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
        let stream = match &self.backend {
            Backend::Kube(kube) => kube.watch::<K>(),
            Backend::Dir(dir) => trim_events(dir.watch::<K>()),
        };
        match &self.metrics {
            None => stream,
            Some(metrics) => count_events(stream, metrics.clone()),
        }
    }

    /// The stream of changes to all objects of kind `K` (all namespaces) as an index keeps them:
    /// each object loses [`trim_meta`](crate::shape::trim_meta)'s fields and is then viewed by
    /// `view` as it arrives, so a list is never held as whole objects. Counts events in
    /// `oxelb_source_events_total`; the index that consumes the stream sets `oxelb_source_objects`
    /// (see [`metrics`](Self::metrics)).
    pub fn watch_viewed<K: Object, V: Indexed>(
        &self,
        view: View<K, V>,
    ) -> BoxStream<'static, Result<IndexEvent<V>, SourceError>> {
        let stream = match &self.backend {
            Backend::Kube(kube) => kube.watch_viewed::<K, V>(view),
            Backend::Dir(dir) => view_events(trim_events(dir.watch::<K>()), view),
        };
        self.count_viewed::<K, V>(stream)
    }

    /// As [`watch_viewed`](Self::watch_viewed), for the objects of `K` in `namespace` only.
    pub fn watch_in_viewed<K, V: Indexed>(
        &self,
        namespace: &str,
        view: View<K, V>,
    ) -> BoxStream<'static, Result<IndexEvent<V>, SourceError>>
    where
        K: Object + ::kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let stream = match &self.backend {
            Backend::Kube(kube) => kube.watch_in_viewed::<K, V>(namespace, view),
            Backend::Dir(dir) => view_events(
                trim_events(in_namespace(dir.watch::<K>(), namespace.to_owned())),
                view,
            ),
        };
        self.count_viewed::<K, V>(stream)
    }

    /// How far each watch has got (the kube source; the directory source has no versions and
    /// gives an empty record).
    pub fn progress(&self) -> WatchProgress {
        match &self.backend {
            Backend::Kube(kube) => kube.progress().clone(),
            Backend::Dir(_) => WatchProgress::default(),
        }
    }

    /// The source's metrics, if [`with_metrics`](Self::with_metrics) gave it some.
    pub fn metrics(&self) -> Option<&SourceMetrics> {
        self.metrics.as_ref()
    }

    fn count_viewed<K: Object, V: Indexed>(
        &self,
        stream: BoxStream<'static, Result<IndexEvent<V>, SourceError>>,
    ) -> BoxStream<'static, Result<IndexEvent<V>, SourceError>> {
        let Some(metrics) = self.metrics.clone() else {
            return stream;
        };
        let kind = kind_of::<K>();
        stream
            .inspect(move |item| match item {
                Ok(event) => metrics.record_event(&kind, event.name()),
                Err(_) => metrics.record_event(&kind, "error"),
            })
            .boxed()
    }

    /// The writer that goes with this source: the API, or the dir source's store. `reporter` names
    /// the component in published Events (`reportingController`), e.g. `oxelb-controller`.
    pub fn writer(&self, reporter: &str) -> Writer {
        match &self.backend {
            Backend::Kube(kube) => Writer::kube(kube.client(), reporter),
            Backend::Dir(dir) => Writer::dir(dir.store()),
        }
    }
}

/// Views every event of a stream (see [`View`]).
fn view_events<K: Object, V: Indexed>(
    stream: BoxStream<'static, Result<ObjectEvent<K>, SourceError>>,
    view: View<K, V>,
) -> BoxStream<'static, Result<IndexEvent<V>, SourceError>> {
    stream
        .map(move |item| item.map(|event| view_event(&view, event)))
        .boxed()
}

/// Wraps a stream so that it keeps `oxelb_source_objects{kind}` and
/// `oxelb_source_events_total{kind,event}` current.
fn count_events<K: Object>(
    stream: BoxStream<'static, Result<ObjectEvent<K>, SourceError>>,
    metrics: SourceMetrics,
) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
    let kind = kind_of::<K>();
    let mut keys: HashSet<ObjectKey> = HashSet::new();
    stream
        .inspect(move |item| {
            let event = match item {
                Ok(event) => event,
                Err(_) => {
                    metrics.record_event(&kind, "error");
                    return;
                }
            };
            match event {
                ObjectEvent::Apply(obj) => {
                    keys.insert(ObjectKey::of(obj));
                }
                ObjectEvent::Delete(obj) => {
                    keys.remove(&ObjectKey::of(obj));
                }
                ObjectEvent::Resync(objs) => keys = objs.iter().map(ObjectKey::of).collect(),
            }
            metrics.record_event(&kind, event.name());
            metrics.set_objects(&kind, keys.len());
        })
        .boxed()
}

#[cfg(test)]
mod tests;

/// Keeps the events of objects in `namespace` (a `Resync` keeps its objects in `namespace`).
fn in_namespace<K: Object>(
    stream: BoxStream<'static, Result<ObjectEvent<K>, SourceError>>,
    namespace: String,
) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
    use futures::StreamExt as _;
    let inside = move |obj: &K| obj.meta().namespace.as_deref() == Some(namespace.as_str());
    stream
        .filter_map(move |item| {
            let kept = match item {
                Ok(ObjectEvent::Resync(all)) => Some(Ok(ObjectEvent::Resync(
                    all.into_iter().filter(|o| inside(o)).collect(),
                ))),
                Ok(ObjectEvent::Apply(obj)) => inside(&obj).then_some(Ok(ObjectEvent::Apply(obj))),
                Ok(ObjectEvent::Delete(obj)) => inside(&obj).then_some(Ok(ObjectEvent::Delete(obj))),
                Err(error) => Some(Err(error)),
            };
            futures::future::ready(kept)
        })
        .boxed()
}
