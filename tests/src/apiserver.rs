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
    history: VecDeque<Arc<WatchEvent>>,
    /// Watches resuming from before this version get 410 Gone.
    oldest: u64,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

/// One watch event, serialised once when it happens and shared by the history and every watcher
/// (serialising it per watcher was most of this server's CPU with three clients at 10,000
/// Services).
struct WatchEvent {
    version: u64,
    /// The object's namespace, for watches of one namespace.
    namespace: Option<String>,
    /// `{"type":...,"object":...}` and a newline, as sent.
    line: Bytes,
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
    bytes_response(code, Bytes::from(body.to_string()))
}

fn bytes_response(code: StatusCode, body: Bytes) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// A request's answer: the status and the JSON body, already serialised.
type Reply = Result<(StatusCode, Bytes), ApiError>;

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
            .and_then(|(_, body)| {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string())
                })
            })
            .map_err(|e| e.message)
    }

    /// Creates `object` at `path` as [`create`](Self::create) does, without answering it (the
    /// benchmark's creates: parsing every answer back would cost this server's CPU for nothing).
    pub fn insert(&self, path: &str, object: Value) -> Result<(), String> {
        let target = parse_target(path).ok_or_else(|| format!("not a resource path: {path}"))?;
        self.create_at(&target, object).map(|_| ()).map_err(|e| e.message)
    }

    /// How many objects a collection path holds, and how many of them `matches`, looked at in
    /// place (a poll over 10,000 objects must not copy them).
    pub fn tally(&self, path: &str, matches: impl Fn(&Value) -> bool) -> (usize, usize) {
        let Some(target) = parse_target(path) else {
            return (0, 0);
        };
        let state = self.lock();
        state.resources.get(&target.resource).map_or((0, 0), |r| {
            r.objects
                .iter()
                .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|want| want == ns))
                .fold((0, 0), |(all, matching), (_, v)| {
                    (all + 1, matching + usize::from(matches(v)))
                })
        })
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
                let _ = record(&mut state, &target.resource, "DELETED", &old);
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
            Ok((code, body)) => bytes_response(code, body),
            Err(error) => json_response(error.code, &error.status()),
        }
    }

    fn key(target: &Target) -> (String, String) {
        (
            target.namespace.clone().unwrap_or_default(),
            target.name.clone().unwrap_or_default(),
        )
    }

    fn list_page(&self, target: &Target, query: &HashMap<String, String>) -> Reply {
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
        // The items are written straight into the answer, not copied into a list first.
        let mut items = Vec::new();
        let mut count = 0;
        let mut last = None;
        let mut more = false;
        for (key, value) in range {
            if target.namespace.as_ref().is_some_and(|want| want != &key.0) {
                continue;
            }
            if count == limit {
                more = true;
                break;
            }
            if count > 0 {
                items.push(b',');
            }
            serde_json::to_writer(&mut items, value).map_err(internal)?;
            count += 1;
            last = Some(key);
        }
        let mut metadata = json!({"resourceVersion": list_version});
        if let (true, Some((ns, name))) = (more, last) {
            metadata["continue"] = format!("{list_version},{ns},{name}").into();
        }
        let mut body = Vec::with_capacity(items.len() + 128);
        body.extend_from_slice(br#"{"kind":"List","apiVersion":"v1","metadata":"#);
        serde_json::to_writer(&mut body, &metadata).map_err(internal)?;
        body.extend_from_slice(br#","items":["#);
        body.extend_from_slice(&items);
        body.extend_from_slice(b"]}");
        Ok((StatusCode::OK, Bytes::from(body)))
    }

    fn get(&self, target: &Target) -> Reply {
        let state = self.lock();
        let object = state
            .resources
            .get(&target.resource)
            .and_then(|r| r.objects.get(&Self::key(target)))
            .ok_or_else(|| not_found(target))?;
        let body = serde_json::to_vec(object).map_err(internal)?;
        Ok((StatusCode::OK, Bytes::from(body)))
    }

    fn create_at(&self, target: &Target, mut object: Value) -> Reply {
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
        let body = record(&mut state, &target.resource, "ADDED", &object)?;
        if let Some(r) = state.resources.get_mut(&target.resource) {
            r.objects.insert(key, object);
        }
        Ok((StatusCode::CREATED, body))
    }

    /// The stored object of `target`, to change in place.
    fn current<'a>(state: &'a mut State, target: &Target) -> Result<&'a mut Value, ApiError> {
        state
            .resources
            .get_mut(&target.resource)
            .and_then(|r| r.objects.get_mut(&Self::key(target)))
            .ok_or_else(|| not_found(target))
    }

    /// Gives the object of `target`, already changed in place, a new version, records the event
    /// (`DELETED` when it is being deleted and has no finalizer left, and then removes it) and
    /// answers the object.
    fn commit(state: &mut State, target: &Target) -> Reply {
        state.version += 1;
        let version = state.version.to_string();
        let key = Self::key(target);
        let resource = state
            .resources
            .get_mut(&target.resource)
            .ok_or_else(|| not_found(target))?;
        let object = resource.objects.get_mut(&key).ok_or_else(|| not_found(target))?;
        object["metadata"]["resourceVersion"] = version.into();
        let finalized = !object["metadata"]["deletionTimestamp"].is_null()
            && object["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        if finalized {
            let gone = resource.objects.remove(&key).unwrap_or_default();
            record(state, &target.resource, "DELETED", &gone)
        } else {
            // Moved out while `record` borrows `state` (no copy), then put back.
            let object = std::mem::take(object);
            let body = record(state, &target.resource, "MODIFIED", &object);
            if let Some(slot) = state
                .resources
                .get_mut(&target.resource)
                .and_then(|r| r.objects.get_mut(&key))
            {
                *slot = object;
            }
            body
        }
        .map(|body| (StatusCode::OK, body))
    }

    fn update(&self, target: &Target, mut body: Value) -> Reply {
        let mut state = self.lock();
        let old = Self::current(&mut state, target)?;
        let sent = body["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        if !sent.is_empty() && sent != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(conflict(target));
        }
        if target.status {
            old["status"] = body["status"].take();
        } else {
            for field in ["uid", "creationTimestamp", "namespace"] {
                body["metadata"][field] = old["metadata"][field].take();
            }
            body["status"] = old["status"].take();
            *old = body;
        }
        Self::commit(&mut state, target)
    }

    fn patch(&self, target: &Target, patch: &Value) -> Reply {
        let mut state = self.lock();
        let object = Self::current(&mut state, target)?;
        if let Some(sent) = patch["metadata"]["resourceVersion"].as_str()
            && Some(sent) != object["metadata"]["resourceVersion"].as_str()
        {
            return Err(conflict(target));
        }
        if target.status {
            merge(&mut object["status"], &patch["status"]);
        } else {
            // The object's own fields and its status are not the patch's to change.
            let status = object["status"].take();
            let kept: Vec<(&str, Value)> = ["uid", "creationTimestamp", "name", "namespace"]
                .into_iter()
                .map(|field| (field, object["metadata"][field].clone()))
                .collect();
            merge(object, patch);
            object["status"] = status;
            for (field, value) in kept {
                object["metadata"][field] = value;
            }
        }
        Self::commit(&mut state, target)
    }

    fn delete(&self, target: &Target) -> Reply {
        let mut state = self.lock();
        let object = Self::current(&mut state, target)?;
        if object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            if object["metadata"]["deletionTimestamp"].is_null() {
                object["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z".into();
                return Self::commit(&mut state, target);
            }
            let body = serde_json::to_vec(object).map_err(internal)?;
            return Ok((StatusCode::OK, Bytes::from(body)));
        }
        let old = state
            .resources
            .get_mut(&target.resource)
            .and_then(|r| r.objects.remove(&Self::key(target)))
            .unwrap_or_default();
        record(&mut state, &target.resource, "DELETED", &old).map(|body| (StatusCode::OK, body))
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
            let backlog: Vec<Arc<WatchEvent>> = resource
                .history
                .iter()
                .filter(|event| event.version > from)
                .cloned()
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
                    let event = match backlog.next() {
                        Some(event) => event,
                        None => match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Ok(event)) => event,
                            // Lagged, closed or timed out: end the watch; the client resumes or lists.
                            _ => return None,
                        },
                    };
                    // Events the backlog already sent come again from the channel: skip them.
                    if event.version <= last {
                        continue;
                    }
                    last = event.version;
                    if namespace
                        .as_ref()
                        .is_some_and(|ns| event.namespace.as_ref() != Some(ns))
                    {
                        continue;
                    }
                    return Some((
                        Ok::<Bytes, std::io::Error>(event.line.clone()),
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

/// Records a watch event of `object` (serialised once, here) and answers the object's JSON, which
/// the request that made the change sends back.
fn record(state: &mut State, resource: &str, type_: &'static str, object: &Value) -> Result<Bytes, ApiError> {
    let version = state.version;
    let body = serde_json::to_vec(object).map_err(internal)?;
    let mut line = Vec::with_capacity(body.len() + 32);
    line.extend_from_slice(br#"{"type":""#);
    line.extend_from_slice(type_.as_bytes());
    line.extend_from_slice(br#"","object":"#);
    line.extend_from_slice(&body);
    line.extend_from_slice(b"}\n");
    let event = Arc::new(WatchEvent {
        version,
        namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
        line: Bytes::from(line),
    });
    let r = state.resources.entry(resource.to_owned()).or_default();
    let _ = r.events.send(event.clone());
    r.history.push_back(event);
    while r.history.len() > HISTORY {
        if let Some(event) = r.history.pop_front() {
            r.oldest = event.version + 1;
        }
    }
    Ok(Bytes::from(body))
}

fn internal(error: serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        error.to_string(),
    )
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
mod tests;
