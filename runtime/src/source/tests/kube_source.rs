use std::collections::HashSet;

use ::kube::client::Body;
use http::{Method, Response, StatusCode};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

type ApiHandle = crate::test_util::MockApi;

use crate::test_util::{json_response, mock_client};

/// A fake apiserver for Services: answers a list with the initial objects, and each watch with the
/// events queued since the previous watch (the watcher then re-watches from the last version).
struct KubeHarness {
    initial: Vec<Service>,
    known: HashSet<String>,
    version: u64,
    events: Option<mpsc::UnboundedSender<Value>>,
}

impl KubeHarness {
    fn new() -> Self {
        Self {
            initial: Vec::new(),
            known: HashSet::new(),
            version: 1,
            events: None,
        }
    }
}

impl Harness for KubeHarness {
    async fn apply(&mut self, mut svc: Service) {
        self.version += 1;
        svc.metadata.resource_version = Some(self.version.to_string());
        let new = self.known.insert(svc.name_any());
        match &self.events {
            None => self.initial.push(svc),
            Some(tx) => {
                let kind = if new { "ADDED" } else { "MODIFIED" };
                tx.send(json!({"type": kind, "object": svc})).unwrap();
            }
        }
    }

    async fn delete(&mut self, mut svc: Service) {
        self.version += 1;
        svc.metadata.resource_version = Some(self.version.to_string());
        self.known.remove(&svc.name_any());
        if let Some(tx) = &self.events {
            tx.send(json!({"type": "DELETED", "object": svc})).unwrap();
        }
    }

    async fn start(&mut self) -> ObjectSource {
        let (client, handle) = mock_client();
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(tx);
        tokio::spawn(fake_apiserver(handle, self.initial.clone(), self.version, rx));
        ObjectSource::kube(client)
    }
}

async fn fake_apiserver(
    mut handle: ApiHandle,
    initial: Vec<Service>,
    version: u64,
    mut events: mpsc::UnboundedReceiver<Value>,
) {
    while let Some((request, send)) = handle.next_request().await {
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/api/v1/services", "watches all namespaces");
        let query = request.uri().query().unwrap_or_default().to_owned();
        if query.contains("watch=true") {
            let Some(first) = events.recv().await else { return };
            let mut body = format!("{first}\n");
            while let Ok(event) = events.try_recv() {
                body.push_str(&format!("{event}\n"));
            }
            send.send_response(Response::new(Body::from(body.into_bytes())));
        } else {
            let list = json!({
                "apiVersion": "v1", "kind": "ServiceList",
                "metadata": {"resourceVersion": version.to_string()},
                "items": initial,
            });
            send.send_response(json_response(StatusCode::OK, &list));
        }
    }
}

#[tokio::test]
async fn kube_source_scenario() {
    scenario(KubeHarness::new()).await;
}

#[tokio::test]
async fn kube_watch_error_names_the_kind() {
    let (client, mut handle) = mock_client();
    // The path the indexes read: decoded as Slim, viewed (here as the object itself).
    let mut stream = ObjectSource::kube(client).watch_viewed::<Service, Service>(std::sync::Arc::new(Some));
    let server = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "boom", "reason": "InternalError", "code": 500});
        send.send_response(json_response(StatusCode::INTERNAL_SERVER_ERROR, &status));
        handle
    });
    let item = tokio::time::timeout(WAIT, stream.next()).await.unwrap().unwrap();
    let err = item.unwrap_err();
    assert!(
        matches!(&err, SourceError::Watch { kind, .. } if kind == "Service"),
        "{err}"
    );
    drop(server.await.unwrap());
}

/// Runs `write` against a mocked apiserver that answers with `status` and `body`; returns the
/// request (method, path, content type, JSON body) and the write's result.
async fn one_write<F>(
    write: impl FnOnce(Writer) -> F,
    status: StatusCode,
    body: Value,
) -> ((Method, String, String, Value), Result<(), WriteError>)
where
    F: Future<Output = Result<(), WriteError>> + Send + 'static,
{
    let (client, mut handle) = mock_client();
    let writer = ObjectSource::kube(client).writer("oxelb-test");
    let task = tokio::spawn(write(writer));
    let (request, send) = tokio::time::timeout(WAIT, handle.next_request())
        .await
        .unwrap()
        .unwrap();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    send.send_response(json_response(status, &body));
    let result = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    ((method, path, content_type, json), result)
}

fn existing_service() -> Value {
    serde_json::to_value(svc("web", "1")).unwrap()
}

#[tokio::test]
async fn kube_patch_status_is_a_merge_patch_on_the_status_subresource() {
    let status = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}});
    let sent = status.clone();
    let (request, result) = one_write(
        move |w| async move { w.patch_status::<Service>("web", Some("ns"), sent).await },
        StatusCode::OK,
        existing_service(),
    )
    .await;
    result.unwrap();
    assert_eq!(
        request,
        (
            Method::PATCH,
            "/api/v1/namespaces/ns/services/web/status".to_string(),
            "application/merge-patch+json".to_string(),
            json!({"status": status}),
        )
    );
}

#[tokio::test]
async fn kube_patch_metadata_sends_the_precondition_and_maps_409_to_conflict() {
    let patch = MetadataPatch {
        labels: BTreeMap::from([("a".to_string(), Some("x".to_string())), ("b".to_string(), None)]),
        finalizers: Some(vec!["f".into()]),
        resource_version: Some("5".into()),
    };
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the object has been modified", "reason": "Conflict", "code": 409});
    let (request, result) = one_write(
        move |w| async move { w.patch_metadata::<Service>("web", Some("ns"), patch).await },
        StatusCode::CONFLICT,
        conflict,
    )
    .await;
    assert_eq!(
        request,
        (
            Method::PATCH,
            "/api/v1/namespaces/ns/services/web".to_string(),
            "application/merge-patch+json".to_string(),
            json!({"metadata": {"labels": {"a": "x", "b": null}, "finalizers": ["f"], "resourceVersion": "5"}}),
        )
    );
    let err = result.unwrap_err();
    assert!(
        matches!(&err, WriteError::Conflict { kind, object, resource_version }
            if kind == "Service" && object == "ns/web" && resource_version.as_deref() == Some("5")),
        "{err}"
    );
}

#[tokio::test]
async fn kube_cluster_scoped_patch_and_not_found() {
    use k8s_openapi::api::core::v1::Node;
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "nodes \"n1\" not found", "reason": "NotFound", "code": 404});
    let (request, result) = one_write(
        |w| async move { w.patch_status::<Node>("n1", Some("ignored"), json!({})).await },
        StatusCode::NOT_FOUND,
        not_found,
    )
    .await;
    assert_eq!(request.1, "/api/v1/nodes/n1/status");
    assert!(matches!(result, Err(WriteError::NotFound { .. })), "{result:?}");
}

#[tokio::test]
async fn kube_publish_event_creates_an_events_k8s_io_event() {
    let regarding = svc("web", "1");
    let mut regarding_ref = ::kube::Resource::object_ref(&regarding, &());
    regarding_ref.namespace = Some("ns".into());
    let event = EventRecord {
        regarding: regarding_ref,
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        action: "Allocate".into(),
        note: Some("192.0.2.10".into()),
    };
    let (request, result) = one_write(
        move |w| async move { w.publish_event(event).await },
        StatusCode::CREATED,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "x", "namespace": "ns"},
            "eventTime": "2026-01-01T00:00:00.000000Z"}),
    )
    .await;
    result.unwrap();
    let (method, path, _, body) = request;
    assert_eq!(method, Method::POST);
    assert_eq!(path, "/apis/events.k8s.io/v1/namespaces/ns/events");
    assert_eq!(body["reason"], "IPAllocated");
    assert_eq!(body["action"], "Allocate");
    assert_eq!(body["type"], "Normal");
    assert_eq!(body["reportingController"], "oxelb-test");
    assert_eq!(body["regarding"]["name"], "web");
}

#[tokio::test]
async fn kube_relist_after_410_gone_is_a_resync() {
    let (client, mut handle) = mock_client();
    // The path the indexes read: decoded as Slim, viewed (here as the object itself).
    let mut stream = ObjectSource::kube(client).watch_viewed::<Service, Service>(std::sync::Arc::new(Some));
    let server = tokio::spawn(async move {
        let list = |items: Vec<Service>| json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {"resourceVersion": "7"}, "items": items});
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(json_response(StatusCode::OK, &list(vec![svc("a", "1")])));
        // The watch's resourceVersion is too old: the apiserver answers with an ERROR event (410).
        let (request, send) = handle.next_request().await.unwrap();
        assert!(request.uri().query().unwrap_or_default().contains("watch=true"));
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410}});
        send.send_response(Response::new(Body::from(format!("{gone}\n").into_bytes())));
        let (request, send) = handle.next_request().await.unwrap();
        assert!(
            !request.uri().query().unwrap_or_default().contains("watch=true"),
            "re-lists"
        );
        send.send_response(json_response(
            StatusCode::OK,
            &list(vec![svc("a", "1"), svc("b", "1")]),
        ));
        let mut held = Vec::new();
        while let Some(pending) = handle.next_request().await {
            held.push(pending);
        }
    });
    let mut items = Vec::new();
    while items.len() < 3 {
        let item = tokio::time::timeout(WAIT, stream.next()).await.unwrap().unwrap();
        items.push(item.map(|e| match e {
            crate::index::IndexEvent::Resync(all) => {
                all.iter().map(|s| s.name_any()).collect::<Vec<_>>().join(",")
            }
            other => other.name().to_string(),
        }));
    }
    assert_eq!(items[0].as_deref().unwrap(), "a");
    assert!(
        matches!(items[1], Err(SourceError::Watch { .. })),
        "{:?}",
        items[1]
    );
    assert_eq!(items[2].as_deref().unwrap(), "a,b");
    server.abort();
}

/// A watch that hangs without an error (the connection open, nothing arriving) is dropped by a
/// restart, which lists again; the progress is the highest `resourceVersion` delivered.
#[tokio::test]
async fn a_restart_drops_a_hung_watch_and_lists_again() {
    let (client, mut handle) = mock_client();
    let source = ObjectSource::kube(client);
    let restarter = crate::feed::WatchRestarter::default();
    let tracker = crate::feed::SyncTracker::new();
    let shutdown = crate::shutdown::Shutdown::new();
    let (index, _task) = crate::feed::spawn_index_restartable::<Service, Service>(
        &source,
        std::sync::Arc::new(Some),
        Some(&restarter),
        &tracker,
        &shutdown,
    );
    let service = |name: &str, version: u64| {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": version.to_string()}})
    };
    let list = |items: Vec<Value>, version: u64| {
        json!({"apiVersion": "v1", "kind": "ServiceList",
            "metadata": {"resourceVersion": version.to_string()}, "items": items})
    };
    // The first list, then a watch that is never answered (held open).
    let (request, send) = tokio::time::timeout(WAIT, handle.next_request())
        .await
        .unwrap()
        .unwrap();
    assert!(!request.uri().query().unwrap_or_default().contains("watch=true"));
    send.send_response(json_response(StatusCode::OK, &list(vec![service("a", 5)], 5)));
    let (request, _hung) = tokio::time::timeout(WAIT, handle.next_request())
        .await
        .unwrap()
        .unwrap();
    assert!(request.uri().query().unwrap_or_default().contains("watch=true"));
    tokio::time::timeout(WAIT, tracker.wait()).await.unwrap();
    assert_eq!(source.progress().highest("Service"), 5);
    // Meanwhile "b" was made (version 7); only a new list can tell.
    restarter.restart();
    let (request, send) = tokio::time::timeout(WAIT, handle.next_request())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !request.uri().query().unwrap_or_default().contains("watch=true"),
        "a restart lists again: {:?}",
        request.uri()
    );
    send.send_response(json_response(
        StatusCode::OK,
        &list(vec![service("a", 5), service("b", 7)], 7),
    ));
    let deadline = std::time::Instant::now() + WAIT;
    while index.read().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(index.read().unwrap().len(), 2);
    assert_eq!(source.progress().highest("Service"), 7);
}
