//! The Kubernetes API adapter: kube-runtime watchers for reading, `Api` patches and an Event
//! recorder for writing.

use futures::{StreamExt, future::ready, stream::BoxStream};
use k8s_openapi::{
    api::events::v1::Event as K8sEvent,
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::{
        WatchStreamExt,
        events::Reporter,
        watcher::{self, Event as WatcherEvent},
    },
};
use tracing::debug;

use super::{
    error::{SourceError, WriteError},
    event::ObjectEvent,
    progress::WatchProgress,
    request::{EventRecord, EventType, MetadataPatch, object_name},
    slim::Slim,
};
use crate::{
    index::{IndexEvent, Indexed, View, view_event},
    object::{KnownScope, Object, kind_of},
    shape::{trim_event, trim_meta},
};

/// Reads objects from the apiserver.
#[derive(Clone)]
pub struct KubeSource {
    client: Client,
    progress: WatchProgress,
}

impl KubeSource {
    /// A source over `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            progress: WatchProgress::default(),
        }
    }

    /// How far each of its watches has got.
    pub fn progress(&self) -> &WatchProgress {
        &self.progress
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// Watches all objects of kind `K` in all namespaces into an index's events, each object viewed
    /// as it arrives (see [`watch`](Self::watch) for the watcher's configuration).
    pub fn watch_viewed<K: Object, V: Indexed>(
        &self,
        view: View<K, V>,
    ) -> BoxStream<'static, Result<IndexEvent<V>, SourceError>> {
        watch_api_viewed(
            Api::<Slim<K>>::all(self.client.clone()),
            view,
            self.progress.clone(),
        )
    }

    /// As [`watch_viewed`](Self::watch_viewed), for the objects in `namespace` only.
    pub fn watch_in_viewed<K, V: Indexed>(
        &self,
        namespace: &str,
        view: View<K, V>,
    ) -> BoxStream<'static, Result<IndexEvent<V>, SourceError>>
    where
        K: Object + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        watch_api_viewed(
            Api::<Slim<K>>::namespaced(self.client.clone(), namespace),
            view,
            self.progress.clone(),
        )
    }

    /// Watches all objects of kind `K` in all namespaces.
    ///
    /// Config: kube's defaults (list then watch, pages of 500, bookmarks, `MostRecent` list
    /// semantic). `MostRecent` rather than `Any` because the controller rebuilds its allocations from
    /// what it lists (DESIGN.md, "The controller's truth is the API"): a list served from a stale
    /// apiserver cache could hide an existing assignment.
    /// Errors are yielded and the next poll waits per the watcher's `default_backoff`.
    ///
    /// Each object is trimmed ([`crate::shape::trim_meta`]) as it arrives, before the initial list
    /// is buffered. The indexes read [`watch_viewed`](Self::watch_viewed) instead.
    pub fn watch<K: Object>(&self) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
        watch_api(Api::<K>::all(self.client.clone()), self.progress.clone())
    }
}

/// Watches `api` into an index's events: each object is viewed ([`View`]) as it arrives, so the
/// initial list is buffered as views, never as whole objects.
///
/// Objects are decoded as [`Slim`]: their managedFields and last-applied annotation are skipped
/// while the JSON is read, never built.
pub(crate) fn watch_api_viewed<K: Object, V: Indexed>(
    api: Api<Slim<K>>,
    view: View<K, V>,
    progress: WatchProgress,
) -> BoxStream<'static, Result<IndexEvent<V>, SourceError>> {
    let kind = kind_of::<K>();
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .scan(Vec::new(), move |buffer, item| {
            record_progress(&progress, &kind, &item, |Slim(obj)| obj.meta());
            let mapped = map_watcher_event_viewed(&kind, &view, buffer, item);
            ready(Some(mapped))
        })
        .filter_map(ready)
        .boxed()
}

/// Records the `resourceVersion` of an object the watcher delivered (listed, changed or deleted).
fn record_progress<T>(
    progress: &WatchProgress,
    kind: &str,
    item: &Result<WatcherEvent<T>, watcher::Error>,
    meta: impl Fn(&T) -> &ObjectMeta,
) {
    if let Ok(WatcherEvent::InitApply(obj) | WatcherEvent::Apply(obj) | WatcherEvent::Delete(obj)) = item {
        progress.record(kind, meta(obj).resource_version.as_deref());
    }
}

/// As [`map_watcher_event`], into views ([`view_event`]: `Apply` of an object the view drops is a
/// `Delete` of its key).
fn map_watcher_event_viewed<K: Object, V>(
    kind: &str,
    view: &View<K, V>,
    buffer: &mut Vec<V>,
    item: Result<WatcherEvent<Slim<K>>, watcher::Error>,
) -> Option<Result<IndexEvent<V>, SourceError>> {
    let viewed = |Slim(mut obj): Slim<K>| {
        // An annotation map the slim decode emptied becomes `None`, as the apiserver sends it.
        trim_meta(&mut obj);
        view(obj)
    };
    match item {
        Ok(WatcherEvent::Init) => {
            debug!(kind, "listing");
            buffer.clear();
            None
        }
        Ok(WatcherEvent::InitApply(obj)) => {
            buffer.extend(viewed(obj));
            None
        }
        Ok(WatcherEvent::InitDone) => {
            let mut all = std::mem::take(buffer);
            all.shrink_to_fit();
            Some(Ok(IndexEvent::Resync(all)))
        }
        Ok(WatcherEvent::Apply(Slim(obj))) => Some(Ok(view_event(view, trim_event(ObjectEvent::Apply(obj))))),
        Ok(WatcherEvent::Delete(Slim(obj))) => Some(Ok(view_event(view, ObjectEvent::Delete(obj)))),
        Err(source) => Some(Err(SourceError::Watch {
            kind: kind.to_owned(),
            source,
        })),
    }
}

fn watch_api<K: Object>(
    api: Api<K>,
    progress: WatchProgress,
) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
    let kind = kind_of::<K>();
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .scan(Vec::new(), move |buffer, item| {
            record_progress(&progress, &kind, &item, kube::Resource::meta);
            let mapped = map_watcher_event(&kind, buffer, item);
            ready(Some(mapped))
        })
        .filter_map(ready)
        .boxed()
}

/// Maps kube's watcher events onto [`ObjectEvent`]: the objects of `Init`..`InitDone` are buffered
/// and delivered as one `Resync`. Objects are trimmed on arrival.
fn map_watcher_event<K: Object>(
    kind: &str,
    buffer: &mut Vec<K>,
    item: Result<WatcherEvent<K>, watcher::Error>,
) -> Option<Result<ObjectEvent<K>, SourceError>> {
    match item {
        Ok(WatcherEvent::Init) => {
            debug!(kind, "listing");
            buffer.clear();
            None
        }
        Ok(WatcherEvent::InitApply(mut obj)) => {
            trim_meta(&mut obj);
            buffer.push(obj);
            None
        }
        Ok(WatcherEvent::InitDone) => {
            // The buffer grew page by page; the index keeps the objects, not the spare capacity.
            let mut all = std::mem::take(buffer);
            all.shrink_to_fit();
            Some(Ok(ObjectEvent::Resync(all)))
        }
        Ok(WatcherEvent::Apply(obj)) => Some(Ok(trim_event(ObjectEvent::Apply(obj)))),
        Ok(WatcherEvent::Delete(obj)) => Some(Ok(trim_event(ObjectEvent::Delete(obj)))),
        Err(source) => Some(Err(SourceError::Watch {
            kind: kind.to_owned(),
            source,
        })),
    }
}

/// The part of a write's answer the writer reads; serde skips the rest without building it.
#[derive(serde::Deserialize)]
struct VersionOnly {
    #[serde(default)]
    metadata: VersionOnlyMeta,
}

#[derive(Default, serde::Deserialize)]
struct VersionOnlyMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// Writes to the apiserver.
#[derive(Clone)]
pub struct KubeWriter {
    // Shared so that cloning a writer is cheap.
    inner: std::sync::Arc<KubeWriterInner>,
}

struct KubeWriterInner {
    client: Client,
    reporter: Reporter,
}

impl KubeWriter {
    /// A writer over `client`; Events are reported as coming from `reporter` (the instance is the
    /// hostname, i.e. the pod name).
    pub fn new(client: Client, reporter: &str) -> Self {
        Self {
            inner: std::sync::Arc::new(KubeWriterInner {
                client,
                reporter: Reporter::from(reporter),
            }),
        }
    }

    fn api<K: Object>(&self, name: &str, namespace: Option<&str>) -> Result<Api<K>, WriteError> {
        <K::Scope as KnownScope>::api_for::<K>(self.inner.client.clone(), namespace).ok_or_else(|| {
            WriteError::MissingNamespace {
                kind: kind_of::<K>(),
                name: name.to_owned(),
            }
        })
    }

    pub(crate) async fn patch_status<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        status: serde_json::Value,
    ) -> Result<Option<String>, WriteError> {
        let api = self.api::<K>(name, namespace)?;
        let body = serde_json::json!({ "status": status });
        let request = kube::core::Request::new(api.resource_url()).patch_subresource(
            "status",
            name,
            &PatchParams::default(),
            &Patch::Merge(&body),
        );
        self.send_for_version(request)
            .await
            .map_err(|e| api_error::<K>(e, name, namespace, None, "patch status"))
    }

    /// Sends a write and reads only `metadata.resourceVersion` of the object it answers: the
    /// answer is the whole object (on a real apiserver with its managedFields and last-applied
    /// annotation), and decoding it whole for every write of a burst was most of the controller's
    /// short-lived allocations, which left its heap fragmented.
    async fn send_for_version(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<Option<String>, kube::Error> {
        let request = request.map_err(kube::Error::BuildRequest)?;
        let answer: VersionOnly = self.inner.client.request(request).await?;
        Ok(answer.metadata.resource_version)
    }

    pub(crate) async fn patch_metadata<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        patch: MetadataPatch,
    ) -> Result<Option<String>, WriteError> {
        let api = self.api::<K>(name, namespace)?;
        // A merge patch carrying metadata.resourceVersion is the apiserver's optimistic-concurrency
        // precondition: it answers 409 Conflict if the object has moved on.
        let body = patch.to_merge_patch();
        let request = kube::core::Request::new(api.resource_url()).patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&body),
        );
        self.send_for_version(request).await.map_err(|e| {
            api_error::<K>(
                e,
                name,
                namespace,
                patch.resource_version.clone(),
                "patch metadata",
            )
        })
    }

    /// Creates one `events.k8s.io/v1` Event, as kube's `Recorder` would, but without its cache:
    /// the Recorder keeps every Event for six minutes to merge repeats into a series and scans that
    /// cache on each publish, which after ten thousand allocations is megabytes and a quadratic
    /// cost; the controller says each Event once (it remembers what it said), so nothing repeats.
    pub(crate) async fn publish_event(&self, event: EventRecord) -> Result<(), WriteError> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let regarding = &event.regarding;
        let reporter = &self.inner.reporter;
        let kube_event = K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_ref().unwrap_or(&reporter.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(reporter.controller.clone()),
            reporting_instance: Some(
                reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| reporter.controller.clone()),
            ),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(
            self.inner.client.clone(),
            regarding.namespace.as_deref().unwrap_or("default"),
        );
        api.create(&PostParams::default(), &kube_event)
            .await
            .map(drop)
            .map_err(|source| WriteError::Api {
                kind: regarding.kind.clone().unwrap_or_default(),
                object: object_name(
                    regarding.name.as_deref().unwrap_or_default(),
                    regarding.namespace.as_deref(),
                ),
                what: "publish event",
                source: Box::new(source),
            })
    }
}

/// Maps a kube error: 409 is [`WriteError::Conflict`], 404 [`WriteError::NotFound`].
fn api_error<K: Object>(
    error: kube::Error,
    name: &str,
    namespace: Option<&str>,
    resource_version: Option<String>,
    what: &'static str,
) -> WriteError {
    let kind = kind_of::<K>();
    let object = object_name(name, namespace);
    match &error {
        kube::Error::Api(status) if status.is_conflict() => WriteError::Conflict {
            kind,
            object,
            resource_version,
        },
        kube::Error::Api(status) if status.is_not_found() => WriteError::NotFound { kind, object },
        _ => WriteError::Api {
            kind,
            object,
            what,
            source: Box::new(error),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_write_answer_is_read_for_its_version_only() {
        // A Service as a 1.28 apiserver answers a patch: only the version is kept.
        let answer = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "42",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:ports": {}}}}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        let read: VersionOnly = serde_json::from_value(answer).unwrap();
        assert_eq!(read.metadata.resource_version.as_deref(), Some("42"));
        let bare: VersionOnly = serde_json::from_str(r#"{"kind": "Status"}"#).unwrap();
        assert_eq!(bare.metadata.resource_version, None);
    }
}
