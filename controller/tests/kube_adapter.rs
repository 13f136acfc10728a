//! The controller's I/O adapters against kube's tower mock: the exact requests a pass's writes
//! become, what a 409 does, the fence, and Lease acquisition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::{Method, Response, StatusCode};
use kube::client::Body;
use oxelb_controller::{
    apply::Applier,
    leader::{Leadership, LeaseConfig, run_election},
    metrics::ControllerMetrics,
    reconcile::{Action, Target},
};
use oxelb_ipam::ServiceKey;
use oxelb_runtime::{
    ObjectSource,
    source::MetadataPatch,
    test_util::{MockApi, json_response, mock_client, status_failure},
};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::watch;

type ApiHandle = MockApi;

const WAIT: Duration = Duration::from_secs(10);

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    json_response(status, body)
}

fn status_error(code: u16, reason: &str) -> Value {
    status_failure(code, reason)
}

/// The next request: method, path and query, content type, JSON body.
async fn next(
    handle: &mut ApiHandle,
) -> (
    Method,
    String,
    String,
    Value,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    let (request, send) = tokio::time::timeout(WAIT, handle.next_request())
        .await
        .expect("a request in time")
        .expect("the client is alive");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (method, uri, content_type, body, send)
}

fn web() -> Target {
    Target::Service(ServiceKey::new("default", "web"))
}

fn allocation(rv: &str) -> Vec<Action> {
    vec![
        Action::Metadata {
            target: web(),
            base_version: Some(rv.into()),
            patch: MetadataPatch {
                labels: [(
                    "eip.openelb.kubesphere.io/v1alpha2".to_owned(),
                    Some("pool".to_owned()),
                )]
                .into(),
                finalizers: Some(vec!["finalizer.lb.kubesphere.io/v1alpha1".into()]),
                resource_version: Some(rv.into()),
            },
        },
        Action::Status {
            target: web(),
            base_version: Some(rv.into()),
            status: json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
        },
        Action::Status {
            target: Target::Eip("pool".into()),
            base_version: Some("3".into()),
            status: json!({"used": {"192.0.2.1": "default/web"}, "usage": 1}),
        },
    ]
}

#[tokio::test]
async fn writes_are_merge_patches_a_conflict_is_never_overwritten_and_repeats_are_skipped() {
    let (client, mut handle) = mock_client();
    let writer = ObjectSource::kube(client).writer("oxelb-controller");
    let metrics = ControllerMetrics::register(&mut Registry::default());
    let leadership = Leadership::always();
    let mut applier = Applier::new(writer, metrics);

    let server = tokio::spawn(async move {
        // Pass 1: the metadata patch hits a newer object (409); the status writes go through.
        let (method, uri, ctype, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PATCH);
        assert_eq!(uri, "/api/v1/namespaces/default/services/web?");
        assert_eq!(ctype, "application/merge-patch+json");
        assert_eq!(
            body,
            json!({"metadata": {"labels": {"eip.openelb.kubesphere.io/v1alpha2": "pool"},
                "finalizers": ["finalizer.lb.kubesphere.io/v1alpha1"], "resourceVersion": "7"}})
        );
        send.send_response(respond(StatusCode::CONFLICT, &status_error(409, "Conflict")));
        let (method, uri, ctype, body, send) = next(&mut handle).await;
        assert_eq!(
            (method, uri.as_str(), ctype.as_str()),
            (
                Method::PATCH,
                "/api/v1/namespaces/default/services/web/status?",
                "application/merge-patch+json"
            )
        );
        assert_eq!(
            body,
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
        );
        send.send_response(respond(StatusCode::OK, &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}})));
        let (method, uri, _, body, send) = next(&mut handle).await;
        assert_eq!(
            (method, uri.as_str()),
            (
                Method::PATCH,
                "/apis/network.kubesphere.io/v1alpha2/eips/pool/status?"
            )
        );
        assert_eq!(body["status"]["usage"], 1);
        send.send_response(respond(StatusCode::OK, &json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip", "metadata": {"name": "pool"}, "spec": {"address": "192.0.2.0/28"}})));
        // Pass 2, same decisions on the same versions: only the refused write goes again.
        let (method, uri, _, _, send) = next(&mut handle).await;
        assert_eq!(
            (method, uri.as_str()),
            (Method::PATCH, "/api/v1/namespaces/default/services/web?")
        );
        send.send_response(respond(StatusCode::OK, &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}})));
        handle
    });

    // The Eip status is a phase of its own (as a pass orders it), after the Service's writes.
    let first = applier.apply_phases(allocation("7"), &[2], &leadership).await;
    assert_eq!(
        (first.written, first.conflicts, first.errors, first.skipped),
        (2, 1, 0, 0)
    );
    let second = applier.apply_phases(allocation("7"), &[2], &leadership).await;
    assert_eq!((second.written, second.conflicts, second.skipped), (1, 0, 2));
    let mut handle = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();

    // A replica past its fence writes nothing at all.
    let (_tx, rx) = watch::channel(None);
    let fenced = applier
        .apply_phases(allocation("8"), &[2], &Leadership::from_receiver(rx))
        .await;
    assert!(fenced.fenced);
    assert_eq!(fenced.written, 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), handle.next_request())
            .await
            .is_err(),
        "no request after the fence"
    );
}

/// The Lease `oxelb-system/oxelb-controller` with client-go's timing, for replica `identity`.
fn lease_config(identity: &str, retry_period: Duration) -> LeaseConfig {
    LeaseConfig {
        namespace: "oxelb-system".into(),
        name: "oxelb-controller".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period,
    }
}

#[tokio::test]
async fn election_creates_the_lease_leads_and_releases_on_stop() {
    let (client, mut handle) = mock_client();
    let config = lease_config("replica-a", Duration::from_secs(2));
    let (fence_tx, fence_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let election = tokio::spawn(run_election(client, config, fence_tx, async move {
        let _ = stop_rx.await;
    }));

    let path = "/apis/coordination.k8s.io/v1/namespaces/oxelb-system/leases/oxelb-controller";
    let (method, uri, _, _, send) = next(&mut handle).await;
    assert_eq!((method, uri.as_str()), (Method::GET, path));
    send.send_response(respond(StatusCode::NOT_FOUND, &status_error(404, "NotFound")));
    let (method, uri, _, body, send) = next(&mut handle).await;
    assert_eq!(method, Method::POST);
    assert!(
        uri.starts_with("/apis/coordination.k8s.io/v1/namespaces/oxelb-system/leases?"),
        "{uri}"
    );
    assert_eq!(body["spec"]["holderIdentity"], "replica-a");
    assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
    let mut created = body.clone();
    created["metadata"]["resourceVersion"] = "1".into();
    send.send_response(respond(StatusCode::CREATED, &created));

    let mut leadership = Leadership::from_receiver(fence_rx);
    tokio::time::timeout(WAIT, leadership.wait_leading())
        .await
        .unwrap();
    assert!(leadership.may_write());

    // Stop: the holder clears holderIdentity so a standby need not wait for expiry.
    stop_tx.send(()).unwrap();
    let (method, uri, _, _, send) = next(&mut handle).await;
    assert_eq!((method, uri.as_str()), (Method::GET, path));
    send.send_response(respond(StatusCode::OK, &created));
    let (method, uri, _, body, send) = next(&mut handle).await;
    assert_eq!(method, Method::PUT);
    assert!(uri.starts_with(path), "{uri}");
    assert!(body["spec"]["holderIdentity"].is_null(), "{body}");
    assert_eq!(
        body["metadata"]["resourceVersion"], "1",
        "released under optimistic concurrency"
    );
    send.send_response(respond(StatusCode::OK, &body));
    tokio::time::timeout(WAIT, election).await.unwrap().unwrap();
    assert!(!leadership.may_write());
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_not_taken() {
    let (client, mut handle) = mock_client();
    let config = lease_config("replica-b", Duration::from_millis(50));
    let (fence_tx, fence_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let election = tokio::spawn(run_election(client, config, fence_tx, async move {
        let _ = stop_rx.await;
    }));
    let held = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "oxelb-controller", "namespace": "oxelb-system", "resourceVersion": "9"},
        "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15}});
    // Several rounds: each only reads, never writes, while the holder's Lease is fresh.
    for _ in 0..3 {
        let (method, _, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET, "a standby only reads a live Lease");
        send.send_response(respond(StatusCode::OK, &held));
    }
    assert!(!Leadership::from_receiver(fence_rx).may_write());
    stop_tx.send(()).unwrap();
    // A possibly pending last GET is answered so the task can finish.
    if let Ok(Some((_, send))) = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        send.send_response(respond(StatusCode::OK, &held));
    }
    tokio::time::timeout(WAIT, election).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_heartbeat_key_secret_is_created_once_and_never_changed() {
    use oxelb_controller::heartbeat_key::ensure;
    let path = "/api/v1/namespaces/oxelb-system/secrets/oxelb-speaker-heartbeat";
    // Absent: created with 32 random bytes.
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (method, uri, _, _, send) = next(&mut handle).await;
        assert_eq!((method, uri.as_str()), (Method::GET, path));
        send.send_response(respond(StatusCode::NOT_FOUND, &status_error(404, "NotFound")));
        let (method, uri, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::POST);
        assert!(
            uri.starts_with("/api/v1/namespaces/oxelb-system/secrets?"),
            "{uri}"
        );
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode(body["data"]["key"].as_str().unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        assert!(key.iter().any(|b| *b != 0));
        send.send_response(respond(StatusCode::CREATED, &body));
    });
    assert!(
        ensure(client, "oxelb-system", "oxelb-speaker-heartbeat")
            .await
            .unwrap()
    );
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();

    // Present: nothing written. Lost race: AlreadyExists is fine.
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (method, _, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        send.send_response(respond(StatusCode::OK, &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oxelb-speaker-heartbeat"}, "data": {"key": "AAAA"}})));
        handle
    });
    assert!(
        !ensure(client, "oxelb-system", "oxelb-speaker-heartbeat")
            .await
            .unwrap()
    );
    let mut handle = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    // The client is gone (None) or silent (timeout): no request after the GET.
    let after = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    assert!(!matches!(after, Ok(Some(_))), "a write after finding the Secret");
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (_, _, _, _, send) = next(&mut handle).await;
        send.send_response(respond(StatusCode::NOT_FOUND, &status_error(404, "NotFound")));
        let (_, _, _, _, send) = next(&mut handle).await;
        send.send_response(respond(StatusCode::CONFLICT, &status_error(409, "AlreadyExists")));
    });
    assert!(
        !ensure(client, "oxelb-system", "oxelb-speaker-heartbeat")
            .await
            .unwrap()
    );
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn writes_to_different_objects_are_in_flight_together_those_to_one_in_order() {
    let (client, mut handle) = mock_client();
    let writer = ObjectSource::kube(client).writer("oxelb-controller");
    let metrics = ControllerMetrics::register(&mut Registry::default());
    let mut applier = Applier::new(writer, metrics);
    let status = |name: &str| Action::Status {
        target: Target::Service(ServiceKey::new("default", name)),
        base_version: Some("1".into()),
        status: json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
    };
    let mut actions = allocation("7");
    actions.truncate(2); // web: metadata, then status
    actions.push(status("other"));

    let server = tokio::spawn(async move {
        // Two requests arrive before either is answered: web's metadata and other's status; web's
        // status waits for web's metadata.
        let (_, first, _, _, send_first) = next(&mut handle).await;
        let (_, second, _, _, send_second) = next(&mut handle).await;
        let mut uris = vec![first.clone(), second];
        uris.sort();
        assert_eq!(
            uris,
            vec![
                "/api/v1/namespaces/default/services/other/status?".to_owned(),
                "/api/v1/namespaces/default/services/web?".to_owned(),
            ]
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(200), handle.next_request())
                .await
                .is_err(),
            "web's status waits for web's metadata"
        );
        let ok =
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "default"}});
        send_first.send_response(respond(StatusCode::OK, &ok));
        send_second.send_response(respond(StatusCode::OK, &ok));
        let (_, third, _, _, send) = next(&mut handle).await;
        assert_eq!(third, "/api/v1/namespaces/default/services/web/status?");
        send.send_response(respond(StatusCode::OK, &ok));
        handle
    });
    let summary = applier.apply(actions, &Leadership::always()).await;
    assert_eq!((summary.written, summary.conflicts, summary.errors), (3, 0, 0));
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

/// The status write of an allocation is not made again when a pass decides on the version the
/// allocation's own metadata patch produced (the watch delivered that echo before the status one),
/// and is made again on any other version.
#[tokio::test]
async fn a_decision_on_our_own_intermediate_version_is_not_written_twice() {
    let (client, mut handle) = mock_client();
    let writer = ObjectSource::kube(client).writer("oxelb-controller");
    let metrics = ControllerMetrics::register(&mut Registry::default());
    let mut applier = Applier::new(writer, metrics);
    let server = tokio::spawn(async move {
        for version in ["8", "9", "11"] {
            let (_, _, _, _, send) = next(&mut handle).await;
            send.send_response(respond(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "web", "namespace": "default", "resourceVersion": version}}),
            ));
        }
        handle
    });
    let mut actions = allocation("7");
    actions.truncate(2); // metadata (-> 8), status (-> 9)
    let first = applier.apply(actions.clone(), &Leadership::always()).await;
    assert_eq!(first.written, 2);
    let status_on = |version: &str| {
        let mut status = actions[1].clone();
        if let Action::Status { base_version, .. } = &mut status {
            *base_version = Some(version.into());
        }
        vec![status]
    };
    let echo = applier.apply(status_on("8"), &Leadership::always()).await;
    assert_eq!(
        (echo.written, echo.skipped),
        (0, 1),
        "version 8 is our own metadata patch"
    );
    let other = applier.apply(status_on("10"), &Leadership::always()).await;
    assert_eq!(
        (other.written, other.skipped),
        (1, 0),
        "version 10 is someone else's"
    );
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn uninstall_removes_only_oxelbs_finalizers_fenced_by_resource_version() {
    use k8s_openapi::api::core::v1::Service;
    use oxelb_controller::{reconcile::Snapshot, uninstall::release_actions};
    use oxelb_crds::v1alpha2::Eip;

    let service: Service = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default",
        "resourceVersion": "12", "finalizers": ["example.com/keep", "finalizer.lb.kubesphere.io/v1alpha1"]}}))
    .unwrap();
    let eip: Eip = serde_json::from_value(json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
        "metadata": {"name": "pool", "resourceVersion": "5", "finalizers": ["finalizer.ipam.kubesphere.io/v1alpha1"]},
        "spec": {"address": "192.0.2.0/28"}}))
    .unwrap();
    let snapshot = Snapshot {
        services: vec![std::sync::Arc::new(
            oxelb_controller::view::ServiceView::of(&service).unwrap(),
        )],
        eips: vec![std::sync::Arc::new(eip)],
        ..Default::default()
    };
    let (client, mut handle) = mock_client();
    let writer = ObjectSource::kube(client).writer("oxelb-controller");
    let mut applier = Applier::new(writer, ControllerMetrics::register(&mut Registry::default()));
    let server = tokio::spawn(async move {
        let (method, uri, ctype, body, send) = next(&mut handle).await;
        assert_eq!(
            (method, uri.as_str(), ctype.as_str()),
            (
                Method::PATCH,
                "/api/v1/namespaces/default/services/web?",
                "application/merge-patch+json"
            )
        );
        // Only the finalizer list (the other controller's finalizer kept) and the precondition.
        assert_eq!(
            body,
            json!({"metadata": {"finalizers": ["example.com/keep"], "resourceVersion": "12"}})
        );
        send.send_response(respond(StatusCode::OK, &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}})));
        let (method, uri, _, body, send) = next(&mut handle).await;
        assert_eq!(
            (method, uri.as_str()),
            (Method::PATCH, "/apis/network.kubesphere.io/v1alpha2/eips/pool?")
        );
        assert_eq!(
            body,
            json!({"metadata": {"finalizers": [], "resourceVersion": "5"}})
        );
        send.send_response(respond(StatusCode::CONFLICT, &status_error(409, "Conflict")));
    });
    let summary = applier
        .apply(release_actions(&snapshot), &Leadership::always())
        .await;
    assert_eq!((summary.written, summary.conflicts, summary.errors), (1, 1, 0));
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}
