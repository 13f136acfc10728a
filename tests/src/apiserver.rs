//! A small in-memory Kubernetes API server for driving the real binaries at scale (no
//! kube-apiserver can be had here): it serves what the controller and speaker use, as the
//! apiserver does, for any resource path:
//!
//! - list with `limit`/`continue` pages and the list's `resourceVersion`;
//! - watch from a `resourceVersion` (`ADDED`/`MODIFIED`/`DELETED`, one JSON object a line), and a
//!   `410 Gone` `ERROR` event when that version is older than the retained history
//!   ([`ApiServer::compact`] drops history, as etcd compaction does);
//! - get, create (409 `AlreadyExists`), replace (409 on a stale `resourceVersion`), merge patch
//!   (409 when the patch carries a stale `metadata.resourceVersion`), the `status` subresource
//!   (writes to it change only `status`; writes to the object leave `status` alone), delete
//!   (with finalizers: sets `deletionTimestamp`).
//!
//! Every request is counted by verb and resource ([`ApiServer::requests`]). It binds loopback only
//! and speaks plain HTTP (a kubeconfig with an `http://127.0.0.1` server).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::Response,
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Watch events retained per resource for watches that resume from a `resourceVersion`.
const HISTORY: usize = 250_000;

/// A running API server.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

struct Inner {
    state: Mutex<State>,
    /// While `true`, new watches wait (see [`ApiServer::hold_watches`]).
    held: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    version: u64,
    resources: HashMap<String, Resource>,
    requests: BTreeMap<(String, String), u64>,
}

/// The objects of one resource (e.g. `/api/v1 services`), by (namespace, name).
struct Resource {
    objects: BTreeMap<(String, String), Value>,
    history: VecDeque<(u64, &'static str, Value)>,
    /// Watches resuming from before this version get 410 Gone.
    oldest: u64,
    events: broadcast::Sender<(u64, &'static str, Arc<Value>)>,
}

impl Default for Resource {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 0,
            events: broadcast::channel(1 << 16).0,
        }
    }
}

/// Where a request goes: the resource, an optional namespace and name, and the subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `/api/v1/services`-like key (group/version/resource).
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

/// An API error, answered as a `Status` object.
#[derive(Debug)]
struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    fn status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code.as_u16()})
    }
}

fn parse_target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (format!("/api/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("/apis/{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, more @ ..] => (Some((*ns).to_owned()), {
            let mut v = vec![*resource];
            v.extend_from_slice(more);
            v
        }),
        other => (None, other.to_vec()),
    };
    let (resource, name, status) = match rest.as_slice() {
        [resource] => (*resource, None, false),
        [resource, name] => (*resource, Some((*name).to_owned()), false),
        [resource, name, "status"] => (*resource, Some((*name).to_owned()), true),
        _ => return None,
    };
    Some(Target {
        resource: format!("{prefix}/{resource}"),
        namespace,
        name,
        status,
    })
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.replace("%2F", "/").replace("%3D", "=")))
        })
        .collect()
}

/// Applies a JSON merge patch (RFC 7396) to `target`: objects merge key by key, `null` removes a
/// key, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(map) = target.as_object_mut() {
                for (k, v) in fields {
                    if v.is_null() {
                        map.remove(k);
                    } else {
                        merge(map.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

impl ApiServer {
    /// Starts serving on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                held: tokio::sync::watch::Sender::new(false),
            }),
            addr,
        };
        let handler = server.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let handler = handler.clone();
            async move { handler.handle(method, uri, headers, body).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(server)
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: bench, cluster: {{server: \"http://{}\"}}}}]\nusers: [{{name: bench, user: {{}}}}]\ncontexts: [{{name: bench, context: {{cluster: bench, user: bench, namespace: default}}}}]\ncurrent-context: bench\n",
            self.addr
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests served so far, by (verb, resource path), the verb being `list`, `watch`, `get`,
    /// `create`, `update`, `patch`, `delete` with `/status` for the subresource.
    pub fn requests(&self) -> BTreeMap<(String, String), u64> {
        self.lock().requests.clone()
    }

    /// Drops the watch history of every resource: a watch resuming from an older version gets
    /// 410 Gone and must list again (as after etcd compaction).
    pub fn compact(&self) {
        let mut state = self.lock();
        let version = state.version;
        for resource in state.resources.values_mut() {
            resource.history.clear();
            resource.oldest = version + 1;
        }
    }

    /// While `held`, new watch requests wait before they are answered (an apiserver that is slow
    /// to come back): with [`drop_watches`](Self::drop_watches) and [`compact`](Self::compact)
    /// this makes every client resume from a version that is gone.
    pub fn hold_watches(&self, held: bool) {
        self.inner.held.send_replace(held);
    }

    /// Ends every open watch (as an apiserver restart or a load balancer in front of it does).
    pub fn drop_watches(&self) {
        let mut state = self.lock();
        for resource in state.resources.values_mut() {
            resource.events = broadcast::channel(1 << 16).0;
        }
    }

    /// Creates `object` at `path` (the collection, e.g. `/api/v1/namespaces/a/services`), as a
    /// POST would, without counting a request.
    pub fn create(&self, path: &str, object: Value) -> Result<Value, String> {
        let target = parse_target(path).ok_or_else(|| format!("not a resource path: {path}"))?;
        self.create_at(&target, object)
            .map(|(_, v)| v)
            .map_err(|e| e.message)
    }

    /// The objects of a collection path (every namespace when the path names none).
    pub fn list(&self, path: &str) -> Vec<Value> {
        let Some(target) = parse_target(path) else {
            return Vec::new();
        };
        let state = self.lock();
        state
            .resources
            .get(&target.resource)
            .map(|r| {
                r.objects
                    .iter()
                    .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|want| want == ns))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deletes the object at `path` (ignoring finalizers: as a user forcing it), without counting.
    pub fn remove(&self, path: &str) {
        if let Some(target) = parse_target(path) {
            let mut state = self.lock();
            let key = (
                target.namespace.clone().unwrap_or_default(),
                target.name.clone().unwrap_or_default(),
            );
            if let Some(old) = state
                .resources
                .get_mut(&target.resource)
                .and_then(|r| r.objects.remove(&key))
            {
                record(&mut state, &target.resource, "DELETED", old);
            }
        }
    }

    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let Some(target) = parse_target(uri.path()) else {
            return json_response(
                StatusCode::NOT_FOUND,
                &ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("no route {}", uri.path()),
                )
                .status(),
            );
        };
        let query = query(&uri);
        let verb = match (&method, target.name.is_some()) {
            (&Method::GET, false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
            (&Method::GET, false) => "list",
            (&Method::GET, true) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "other",
        };
        let counted = if target.status {
            format!("{verb}/status")
        } else {
            verb.to_owned()
        };
        *self
            .lock()
            .requests
            .entry((counted, target.resource.clone()))
            .or_default() += 1;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let result = match verb {
            "watch" => {
                let mut held = self.inner.held.subscribe();
                let _ = held.wait_for(|h| !*h).await;
                return self.watch(&target, &query);
            }
            "list" => self.list_page(&target, &query),
            "get" => self.get(&target),
            "create" => self.create_at(&target, body),
            "update" => self.update(&target, body),
            "patch" if content_type.contains("json-patch") => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "JSON patches are not served here",
            )),
            "patch" => self.patch(&target, &body),
            "delete" => self.delete(&target),
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "",
            )),
        };
        match result {
            Ok((code, value)) => json_response(code, &value),
            Err(error) => json_response(error.code, &error.status()),
        }
    }

    fn key(target: &Target) -> (String, String) {
        (
            target.namespace.clone().unwrap_or_default(),
            target.name.clone().unwrap_or_default(),
        )
    }

    fn list_page(
        &self,
        target: &Target,
        query: &HashMap<String, String>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let state = self.lock();
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX);
        // The continue token: the list's version and the last key returned.
        let (list_version, after) = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let mut parts = token.splitn(3, ',');
                let version = parts.next().unwrap_or_default().to_owned();
                let ns = parts.next().unwrap_or_default().to_owned();
                let name = parts.next().unwrap_or_default().to_owned();
                (version, Some((ns, name)))
            }
            None => (state.version.to_string(), None),
        };
        let empty = BTreeMap::new();
        let objects = state
            .resources
            .get(&target.resource)
            .map_or(&empty, |r| &r.objects);
        let range = match &after {
            Some(key) => objects.range::<(String, String), _>((
                std::ops::Bound::Excluded(key.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => objects.range::<(String, String), _>(..),
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (key, value) in range {
            if target.namespace.as_ref().is_some_and(|want| want != &key.0) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(value.clone());
            last = Some(key.clone());
        }
        let mut metadata = json!({"resourceVersion": list_version});
        if let (true, Some((ns, name))) = (more, last) {
            metadata["continue"] = format!("{list_version},{ns},{name}").into();
        }
        Ok((
            StatusCode::OK,
            json!({"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": items}),
        ))
    }

    fn get(&self, target: &Target) -> Result<(StatusCode, Value), ApiError> {
        let state = self.lock();
        state
            .resources
            .get(&target.resource)
            .and_then(|r| r.objects.get(&Self::key(target)))
            .map(|v| (StatusCode::OK, v.clone()))
            .ok_or_else(|| not_found(target))
    }

    fn create_at(&self, target: &Target, mut object: Value) -> Result<(StatusCode, Value), ApiError> {
        let mut state = self.lock();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name is required",
            ));
        }
        let key = (target.namespace.clone().unwrap_or_default(), name.clone());
        let resource = state.resources.entry(target.resource.clone()).or_default();
        if resource.objects.contains_key(&key) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{name} already exists"),
            ));
        }
        state.version += 1;
        let version = state.version;
        if let Some(ns) = &target.namespace {
            object["metadata"]["namespace"] = ns.clone().into();
        }
        object["metadata"]["resourceVersion"] = version.to_string().into();
        object["metadata"]["uid"] = format!("00000000-0000-4000-8000-{version:012}").into();
        object["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
        if let Some(r) = state.resources.get_mut(&target.resource) {
            r.objects.insert(key, object.clone());
        }
        record(&mut state, &target.resource, "ADDED", object.clone());
        Ok((StatusCode::CREATED, object))
    }

    /// Stores `new` for `target` (bumping its version) and records the event.
    fn store(state: &mut State, target: &Target, mut new: Value) -> Value {
        state.version += 1;
        new["metadata"]["resourceVersion"] = state.version.to_string().into();
        let finalized = !new["metadata"]["deletionTimestamp"].is_null()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        let key = Self::key(target);
        if let Some(r) = state.resources.get_mut(&target.resource) {
            if finalized {
                r.objects.remove(&key);
            } else {
                r.objects.insert(key, new.clone());
            }
        }
        record(
            state,
            &target.resource,
            if finalized { "DELETED" } else { "MODIFIED" },
            new.clone(),
        );
        new
    }

    fn current(state: &State, target: &Target) -> Result<Value, ApiError> {
        state
            .resources
            .get(&target.resource)
            .and_then(|r| r.objects.get(&Self::key(target)))
            .cloned()
            .ok_or_else(|| not_found(target))
    }

    fn update(&self, target: &Target, mut body: Value) -> Result<(StatusCode, Value), ApiError> {
        let mut state = self.lock();
        let old = Self::current(&state, target)?;
        let sent = body["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        if !sent.is_empty() && sent != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(conflict(target));
        }
        for field in ["uid", "creationTimestamp", "namespace"] {
            body["metadata"][field] = old["metadata"][field].clone();
        }
        let new = if target.status {
            let mut new = old;
            new["status"] = body["status"].clone();
            new
        } else {
            body["status"] = old["status"].clone();
            body
        };
        Ok((StatusCode::OK, Self::store(&mut state, target, new)))
    }

    fn patch(&self, target: &Target, patch: &Value) -> Result<(StatusCode, Value), ApiError> {
        let mut state = self.lock();
        let old = Self::current(&state, target)?;
        if let Some(sent) = patch["metadata"]["resourceVersion"].as_str()
            && Some(sent) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(conflict(target));
        }
        let mut new = old.clone();
        if target.status {
            merge(&mut new["status"], &patch["status"]);
        } else {
            merge(&mut new, patch);
            new["status"] = old["status"].clone();
        }
        for field in ["uid", "creationTimestamp", "name", "namespace"] {
            new["metadata"][field] = old["metadata"][field].clone();
        }
        Ok((StatusCode::OK, Self::store(&mut state, target, new)))
    }

    fn delete(&self, target: &Target) -> Result<(StatusCode, Value), ApiError> {
        let mut state = self.lock();
        let mut old = Self::current(&state, target)?;
        if old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            if old["metadata"]["deletionTimestamp"].is_null() {
                old["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z".into();
                let new = Self::store(&mut state, target, old);
                return Ok((StatusCode::OK, new));
            }
            return Ok((StatusCode::OK, old));
        }
        if let Some(r) = state.resources.get_mut(&target.resource) {
            r.objects.remove(&Self::key(target));
        }
        record(&mut state, &target.resource, "DELETED", old.clone());
        Ok((StatusCode::OK, old))
    }

    fn watch(&self, target: &Target, query: &HashMap<String, String>) -> Response {
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map_or(Duration::from_secs(300), Duration::from_secs);
        let (backlog, receiver) = {
            let mut state = self.lock();
            let resource = state.resources.entry(target.resource.clone()).or_default();
            if from + 1 < resource.oldest {
                let gone = ApiError::new(
                    StatusCode::GONE,
                    "Expired",
                    format!("too old resource version: {from} ({})", resource.oldest - 1),
                );
                let line = json!({"type": "ERROR", "object": gone.status()}).to_string() + "\n";
                return Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(line))
                    .unwrap_or_default();
            }
            let backlog: Vec<(u64, &'static str, Arc<Value>)> = resource
                .history
                .iter()
                .filter(|(v, _, _)| *v > from)
                .map(|(v, t, o)| (*v, *t, Arc::new(o.clone())))
                .collect();
            (backlog, resource.events.subscribe())
        };
        let namespace = target.namespace.clone();
        let last = from;
        let deadline = tokio::time::Instant::now() + timeout;
        let state = (backlog.into_iter(), receiver, last, namespace, deadline);
        let stream = futures::stream::unfold(
            state,
            |(mut backlog, mut rx, mut last, namespace, deadline)| async move {
                loop {
                    let (version, type_, object) = match backlog.next() {
                        Some(event) => event,
                        None => match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Ok(event)) => event,
                            // Lagged, closed or timed out: end the watch; the client resumes or lists.
                            _ => return None,
                        },
                    };
                    // Events the backlog already sent come again from the channel: skip them.
                    if version <= last {
                        continue;
                    }
                    last = version;
                    if namespace
                        .as_ref()
                        .is_some_and(|ns| object["metadata"]["namespace"].as_str() != Some(ns))
                    {
                        continue;
                    }
                    let line = json!({"type": type_, "object": *object}).to_string() + "\n";
                    return Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(line)),
                        (backlog, rx, last, namespace, deadline),
                    ));
                }
            },
        );
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_default()
    }
}

fn record(state: &mut State, resource: &str, type_: &'static str, object: Value) {
    let version = state.version;
    let r = state.resources.entry(resource.to_owned()).or_default();
    let shared = Arc::new(object);
    let _ = r.events.send((version, type_, shared.clone()));
    r.history
        .push_back((version, type_, Arc::unwrap_or_clone(shared)));
    while r.history.len() > HISTORY {
        if let Some((v, _, _)) = r.history.pop_front() {
            r.oldest = v + 1;
        }
    }
}

fn not_found(target: &Target) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} {:?} not found", target.resource, target.name),
    )
}

fn conflict(target: &Target) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
            target.resource, target.name
        ),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_to_resources() {
        let t = parse_target("/api/v1/namespaces/a/services/web/status").unwrap();
        assert_eq!(
            t,
            Target {
                resource: "/api/v1/services".into(),
                namespace: Some("a".into()),
                name: Some("web".into()),
                status: true
            }
        );
        let t = parse_target("/api/v1/namespaces").unwrap();
        assert_eq!((t.resource.as_str(), t.name), ("/api/v1/namespaces", None));
        let t = parse_target("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (t.resource.as_str(), t.name.as_deref()),
            ("/api/v1/namespaces", Some("kube-system"))
        );
        let t = parse_target("/apis/network.kubesphere.io/v1alpha2/eips/pool").unwrap();
        assert_eq!(t.resource, "/apis/network.kubesphere.io/v1alpha2/eips");
        assert_eq!(t.namespace, None);
        assert!(parse_target("/version").is_none());
    }
}
