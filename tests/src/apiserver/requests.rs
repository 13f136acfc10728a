//! The HTTP side of the [`ApiServer`]: each request routed by verb, then list (paged), get,
//! create, update, merge patch, delete and watch, as the apiserver answers them.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::Response,
};
use serde_json::{Value, json};

use super::{
    ApiError, ApiServer, Reply, State, TOO_LARGE_MESSAGE, Target, WatchEvent, bytes_response, check_size,
    conflict, internal, json_response, merge, not_found, parse_target, query, record,
};

impl ApiServer {
    pub(super) async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
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
        let body_limit = {
            let mut state = self.lock();
            *state
                .requests
                .entry((counted.clone(), target.resource.clone()))
                .or_default() += 1;
            state.body_limit
        };
        if body_limit.is_some_and(|limit| body.len() > limit) {
            *self
                .lock()
                .too_large
                .entry((counted, target.resource.clone()))
                .or_default() += 1;
            let error = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "the request is too large",
            );
            return json_response(error.code, &error.status());
        }
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
            Err(error) => {
                if error.message == TOO_LARGE_MESSAGE {
                    *self
                        .lock()
                        .too_large
                        .entry((counted, target.resource.clone()))
                        .or_default() += 1;
                }
                json_response(error.code, &error.status())
            }
        }
    }

    pub(super) fn key(target: &Target) -> (String, String) {
        (
            target.namespace.clone().unwrap_or_default(),
            target.name.clone().unwrap_or_default(),
        )
    }

    pub(super) fn list_page(&self, target: &Target, query: &HashMap<String, String>) -> Reply {
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

    pub(super) fn get(&self, target: &Target) -> Reply {
        let state = self.lock();
        let object = state
            .resources
            .get(&target.resource)
            .and_then(|r| r.objects.get(&Self::key(target)))
            .ok_or_else(|| not_found(target))?;
        let body = serde_json::to_vec(object).map_err(internal)?;
        Ok((StatusCode::OK, Bytes::from(body)))
    }

    pub(super) fn create_at(&self, target: &Target, mut object: Value) -> Reply {
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
        object["metadata"]["generation"] = 1.into();
        check_size(state.object_limit, &object)?;
        let body = record(&mut state, &target.resource, "ADDED", &object)?;
        if let Some(r) = state.resources.get_mut(&target.resource) {
            r.objects.insert(key, object);
        }
        Ok((StatusCode::CREATED, body))
    }

    /// The stored object of `target`, to change in place.
    pub(super) fn current<'a>(state: &'a mut State, target: &Target) -> Result<&'a mut Value, ApiError> {
        state
            .resources
            .get_mut(&target.resource)
            .and_then(|r| r.objects.get_mut(&Self::key(target)))
            .ok_or_else(|| not_found(target))
    }

    /// Gives the object of `target`, already changed in place, a new version, records the event
    /// (`DELETED` when it is being deleted and has no finalizer left, and then removes it) and
    /// answers the object.
    pub(super) fn commit(state: &mut State, target: &Target) -> Reply {
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

    pub(super) fn update(&self, target: &Target, mut body: Value) -> Reply {
        let mut state = self.lock();
        let limit = state.object_limit;
        let old = Self::current(&mut state, target)?;
        let before = limit.map(|_| old.clone());
        let sent = body["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        if !sent.is_empty() && sent != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(conflict(target));
        }
        if target.status {
            old["status"] = body["status"].take();
        } else {
            for field in ["uid", "creationTimestamp", "namespace", "generation"] {
                body["metadata"][field] = old["metadata"][field].take();
            }
            body["status"] = old["status"].take();
            let generation = next_generation(old, &body);
            *old = body;
            old["metadata"]["generation"] = generation.into();
        }
        Self::fits(old, limit, before)?;
        Self::commit(&mut state, target)
    }

    pub(super) fn patch(&self, target: &Target, patch: &Value) -> Reply {
        let mut state = self.lock();
        let limit = state.object_limit;
        let object = Self::current(&mut state, target)?;
        let before = limit.map(|_| object.clone());
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
            let unpatched = object.clone();
            let kept: Vec<(&str, Value)> = ["uid", "creationTimestamp", "name", "namespace", "generation"]
                .into_iter()
                .map(|field| (field, object["metadata"][field].clone()))
                .collect();
            merge(object, patch);
            object["status"] = status;
            for (field, value) in kept {
                object["metadata"][field] = value;
            }
            let generation = next_generation(&unpatched, object);
            object["metadata"]["generation"] = generation.into();
        }
        Self::fits(object, limit, before)?;
        Self::commit(&mut state, target)
    }

    /// Refuses a changed `object` over `limit` and puts back what was stored `before` the change
    /// (taken whenever there is a limit), as etcd stores nothing of a refused write.
    fn fits(object: &mut Value, limit: Option<usize>, before: Option<Value>) -> Result<(), ApiError> {
        check_size(limit, object).inspect_err(|_| {
            if let Some(before) = before {
                *object = before;
            }
        })
    }

    pub(super) fn delete(&self, target: &Target) -> Reply {
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
        let mut old = state
            .resources
            .get_mut(&target.resource)
            .and_then(|r| r.objects.remove(&Self::key(target)))
            .unwrap_or_default();
        // A deletion is a change of its own: a new version, which the deleted object carries
        // (as kube-apiserver's DELETED events do); else watches skip it as already sent.
        state.version += 1;
        old["metadata"]["resourceVersion"] = state.version.to_string().into();
        record(&mut state, &target.resource, "DELETED", &old).map(|body| (StatusCode::OK, body))
    }

    pub(super) fn watch(&self, target: &Target, query: &HashMap<String, String>) -> Response {
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

/// `metadata.generation` after a write of the object (not its status) from `old` to `new`: one
/// more when anything but `metadata` and `status` changed, as kube-apiserver counts spec changes.
fn next_generation(old: &Value, new: &Value) -> i64 {
    let content = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    };
    let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
    if content(old) == content(new) {
        generation
    } else {
        generation + 1
    }
}
