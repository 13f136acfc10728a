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
//!   (with finalizers: sets `deletionTimestamp`); `metadata.generation` is 1 on create and counts
//!   the writes that change anything but `metadata` and `status`, as kube-apiserver counts spec
//!   changes.
//!
//! Like kube-apiserver in front of etcd, it refuses a write whose stored object would serialise to
//! more than an object size limit ([`ApiServer::set_object_size_limit`], none by default) with
//! `500` and `etcdserver: request is too large`, leaving the stored object as it was, and a
//! request body over [`MAX_REQUEST_BODY`] (or [`ApiServer::set_request_body_limit`]) with `413`
//! `RequestEntityTooLarge`; the size refusals are counted ([`ApiServer::too_large`]).
//!
//! Every request is counted by verb and resource ([`ApiServer::requests`]). It binds loopback only
//! and speaks plain HTTP (a kubeconfig with an `http://127.0.0.1` server).

mod requests;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
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

/// etcd's default request size limit (`--max-request-bytes`), which bounds a stored object.
pub const ETCD_DEFAULT_OBJECT_LIMIT: usize = 1_572_864;

/// kube-apiserver's bound on a request body (3 MiB): a larger body is answered `413`.
pub const MAX_REQUEST_BODY: usize = 3 * 1024 * 1024;

/// The message etcd (and so kube-apiserver, as a `500`) gives for an object over its limit.
pub const TOO_LARGE_MESSAGE: &str = "etcdserver: request is too large";

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
    /// Writes whose stored object would be larger are refused (`None`: no limit).
    object_limit: Option<usize>,
    /// Request bodies larger than this are refused with 413 (`None`: no limit).
    body_limit: Option<usize>,
    /// Requests refused for size (413, or 500 "request is too large"), by (verb, resource).
    too_large: BTreeMap<(String, String), u64>,
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

/// The query's parameters, percent-decoded (a `continue` token the client re-sends is encoded:
/// read raw, its commas stay `%2C` and paging restarts from the first object).
fn query(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
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
                state: Mutex::new(State {
                    body_limit: Some(MAX_REQUEST_BODY),
                    ..State::default()
                }),
                held: tokio::sync::watch::Sender::new(false),
            }),
            addr,
        };
        let handler = server.clone();
        // axum's own 2 MB body bound is off: this server answers big bodies as kube-apiserver does.
        let app = Router::new()
            .fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let handler = handler.clone();
                async move { handler.handle(method, uri, headers, body).await }
            })
            .layer(axum::extract::DefaultBodyLimit::disable());
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

    /// Sets the largest stored object, serialised as JSON, in bytes (`None`: unlimited, the
    /// default). A create, replace or patch (of the object or its `status`) whose result would be
    /// larger is answered `500` with a `Status` whose message is [`TOO_LARGE_MESSAGE`], and the
    /// stored object stays as it was (as etcd's `--max-request-bytes` behind kube-apiserver).
    /// [`ETCD_DEFAULT_OBJECT_LIMIT`] is etcd's default.
    pub fn set_object_size_limit(&self, limit: Option<usize>) {
        self.lock().object_limit = limit;
    }

    /// Sets the largest request body in bytes (`None`: unlimited); a larger body is answered `413`
    /// `RequestEntityTooLarge` before it is looked at. The default is [`MAX_REQUEST_BODY`].
    pub fn set_request_body_limit(&self, limit: Option<usize>) {
        self.lock().body_limit = limit;
    }

    /// Requests refused for size so far (`413`, or `500` [`TOO_LARGE_MESSAGE`]), by (verb,
    /// resource path) as [`requests`](Self::requests) counts them.
    pub fn too_large(&self) -> BTreeMap<(String, String), u64> {
        self.lock().too_large.clone()
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

    /// Merge-patches the object at `path` (e.g. `/apis/g/v1/things/x`, or `.../x/status` for its
    /// status) as a PATCH would, without counting a request; answers the stored object.
    pub fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, String> {
        let target = parse_target(path).ok_or_else(|| format!("not a resource path: {path}"))?;
        self.patch(&target, patch)
            .and_then(|(_, body)| {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string())
                })
            })
            .map_err(|e| e.message)
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
            if let Some(mut old) = state
                .resources
                .get_mut(&target.resource)
                .and_then(|r| r.objects.remove(&key))
            {
                // Its own version, as in `delete`: watches skip an event whose version they sent.
                state.version += 1;
                old["metadata"]["resourceVersion"] = state.version.to_string().into();
                let _ = record(&mut state, &target.resource, "DELETED", &old);
            }
        }
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

/// Counts the bytes written to it (an object's serialised size without allocating it).
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Refuses `object` as etcd does when it serialises to more than `limit` bytes.
fn check_size(limit: Option<usize>, object: &Value) -> Result<(), ApiError> {
    let Some(limit) = limit else {
        return Ok(());
    };
    let mut count = ByteCount(0);
    serde_json::to_writer(&mut count, object).map_err(internal)?;
    if count.0 > limit {
        return Err(too_large());
    }
    Ok(())
}

/// etcd's refusal of an object over its limit, as kube-apiserver answers it.
fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        TOO_LARGE_MESSAGE,
    )
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
