//! The webhook's certificate bootstrap across two replicas (one fake apiserver, two clients racing),
//! rotation, the caBundle patch, and a real TLS round trip to the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{Method, Response, StatusCode};
use kube::{Client, client::Body};
use oxelb_controller::webhook::{
    bootstrap::{WebhookNames, ensure_ca_bundle, ensure_certificate},
    certs::{self, CertBundle},
    review::Kind,
    server::{CertStore, TlsListener, router, tls_config},
};
use oxelb_runtime::{
    feed::SharedIndex,
    test_util::{MockApi, json_response, mock_client, status_failure},
};
use serde_json::{Value, json};

type ApiHandle = MockApi;

fn names() -> WebhookNames {
    WebhookNames {
        namespace: "oxelb-system".into(),
        secret: "oxelb-webhook-cert".into(),
        service: "oxelb-webhook".into(),
        configuration: "oxelb-validating-webhook".into(),
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    json_response(status, body)
}

fn status(code: u16, reason: &str) -> Value {
    status_failure(code, reason)
}

/// The fake apiserver's Secret and what happened to it.
#[derive(Default)]
struct Store {
    secret: Option<Value>,
    version: u64,
    creates: usize,
    create_conflicts: usize,
    replaces: usize,
    replace_conflicts: usize,
}

/// Serves one client's requests against the shared store (Secrets only). Both creates of a race pass
/// the GET before either POST lands: the fake holds the first GET answers until two have arrived.
async fn serve_secrets(mut handle: ApiHandle, store: Arc<Mutex<Store>>, gate: Arc<tokio::sync::Barrier>) {
    let mut first_get = true;
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().clone();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let answer = {
            if method == Method::GET && std::mem::replace(&mut first_get, false) {
                let current = store.lock().unwrap().secret.clone();
                gate.wait().await;
                match current {
                    Some(secret) => respond(StatusCode::OK, &secret),
                    None => respond(StatusCode::NOT_FOUND, &status(404, "NotFound")),
                }
            } else {
                let mut s = store.lock().unwrap();
                match method {
                    Method::GET => match &s.secret {
                        Some(secret) => respond(StatusCode::OK, secret),
                        None => respond(StatusCode::NOT_FOUND, &status(404, "NotFound")),
                    },
                    Method::POST if s.secret.is_some() => {
                        s.create_conflicts += 1;
                        respond(StatusCode::CONFLICT, &status(409, "AlreadyExists"))
                    }
                    Method::POST => {
                        s.version += 1;
                        s.creates += 1;
                        let mut secret = body;
                        secret["metadata"]["resourceVersion"] = s.version.to_string().into();
                        s.secret = Some(secret.clone());
                        respond(StatusCode::CREATED, &secret)
                    }
                    Method::PUT => {
                        let current = s
                            .secret
                            .as_ref()
                            .map(|v| v["metadata"]["resourceVersion"].clone());
                        if current.as_ref() != Some(&body["metadata"]["resourceVersion"]) {
                            s.replace_conflicts += 1;
                            respond(StatusCode::CONFLICT, &status(409, "Conflict"))
                        } else {
                            s.version += 1;
                            s.replaces += 1;
                            let mut secret = body;
                            secret["metadata"]["resourceVersion"] = s.version.to_string().into();
                            s.secret = Some(secret.clone());
                            respond(StatusCode::OK, &secret)
                        }
                    }
                    _ => respond(StatusCode::METHOD_NOT_ALLOWED, &status(405, "MethodNotAllowed")),
                }
            }
        };
        send.send_response(answer);
    }
}

fn replica(store: &Arc<Mutex<Store>>, gate: &Arc<tokio::sync::Barrier>) -> Client {
    let (client, handle) = mock_client();
    tokio::spawn(serve_secrets(handle, store.clone(), gate.clone()));
    client
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn two_replicas_bootstrapping_at_once_serve_the_same_certificate() {
    let store = Arc::new(Mutex::new(Store::default()));
    let gate = Arc::new(tokio::sync::Barrier::new(2));
    let (a, b) = (replica(&store, &gate), replica(&store, &gate));
    let now = t(1_800_000_000);
    let n = names();
    let (ra, rb) = tokio::join!(
        ensure_certificate(a.clone(), &n, now),
        ensure_certificate(b.clone(), &n, now)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra, rb, "both replicas serve the certificate of the Secret");
    {
        let s = store.lock().unwrap();
        assert_eq!(
            (s.creates, s.create_conflicts),
            (1, 1),
            "one create won, the other read it"
        );
    }
    // Again later: nothing is written, the same certificate comes back.
    let gate2 = Arc::new(tokio::sync::Barrier::new(1));
    let c = replica(&store, &gate2);
    assert_eq!(
        ensure_certificate(c, &names(), now + Duration::from_secs(3600))
            .await
            .unwrap(),
        ra
    );
    assert_eq!(store.lock().unwrap().replaces, 0);
}

#[tokio::test]
async fn rotation_near_expiry_keeps_the_previous_ca_and_one_replica_wins() {
    let store = Arc::new(Mutex::new(Store::default()));
    let gate = Arc::new(tokio::sync::Barrier::new(1));
    let first = ensure_certificate(replica(&store, &gate), &names(), t(1_800_000_000))
        .await
        .unwrap();
    let late = first.not_after - certs::RENEW_BEFORE + Duration::from_secs(60);
    let gate = Arc::new(tokio::sync::Barrier::new(2));
    let (a, b) = (replica(&store, &gate), replica(&store, &gate));
    let n = names();
    let (ra, rb) = tokio::join!(ensure_certificate(a, &n, late), ensure_certificate(b, &n, late));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra, rb);
    assert_ne!(ra.cert_pem, first.cert_pem, "rotated");
    assert!(
        ra.ca_pem.ends_with(&first.ca_pem),
        "the old CA stays trusted during the switch"
    );
    assert!(!ra.needs_renewal(late, certs::RENEW_BEFORE));
    let s = store.lock().unwrap();
    assert_eq!((s.replaces, s.replace_conflicts), (1, 1));
}

#[tokio::test]
async fn ca_bundle_is_patched_by_name_only_when_it_differs() {
    let (client, mut handle) = mock_client();
    let config = |bundle: Option<&str>| {
        let mut hook = json!({"name": "validate.eip.network.kubesphere.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"service": {"name": "oxelb-webhook", "namespace": "oxelb-system"}}});
        if let Some(b) = bundle {
            use base64::Engine as _;
            hook["clientConfig"]["caBundle"] = base64::engine::general_purpose::STANDARD.encode(b).into();
        }
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "oxelb-validating-webhook"}, "webhooks": [hook]})
    };
    let server = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), Method::GET);
        send.send_response(respond(StatusCode::OK, &config(None)));
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), Method::PATCH);
        assert_eq!(
            req.headers()["content-type"],
            "application/strategic-merge-patch+json"
        );
        let body: Value = serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
        assert_eq!(body["webhooks"][0]["name"], "validate.eip.network.kubesphere.io");
        assert!(body["webhooks"][0]["clientConfig"]["caBundle"].is_string());
        send.send_response(respond(StatusCode::OK, &config(Some("CA"))));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(respond(StatusCode::OK, &config(Some("CA"))));
    });
    assert!(ensure_ca_bundle(client.clone(), &names(), "CA").await.unwrap());
    assert!(
        !ensure_ca_bundle(client, &names(), "CA").await.unwrap(),
        "already current: no write"
    );
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}

/// One POST over TLS with the client the image test uses too (`oxelb_tests::webhook_client`),
/// trusting only `bundle`'s CA.
async fn post_over_tls(
    addr: std::net::SocketAddr,
    bundle: &CertBundle,
    versions: &[&'static rustls::SupportedProtocolVersion],
    path: &str,
    body: &str,
) -> (rustls::ProtocolVersion, String) {
    let answer = oxelb_tests::webhook_client::post_over_tls(addr, &bundle.ca_pem, versions, path, body)
        .await
        .unwrap();
    (answer.version.unwrap(), answer.raw)
}

#[tokio::test]
async fn serves_reviews_over_tls_1_2_and_1_3_with_the_generated_certificate() {
    let bundle = certs::generate(
        &certs::dns_names("oxelb-webhook", "oxelb-system"),
        SystemTime::now(),
        certs::VALIDITY,
        None,
    )
    .unwrap();
    let store = CertStore::default();
    store.set(&bundle).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = TlsListener::new(listener, tls_config(store.clone()).unwrap()).unwrap();
    let eips: SharedIndex<oxelb_crds::v1alpha2::Eip> = Arc::default();
    let server = tokio::spawn(async move { axum::serve(listener, router(eips)).await });

    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u-7", "operation": "CREATE",
        "object": {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer", "metadata": {"name": "r"},
            "spec": {"conf": {"peerAs": 65001, "neighborAddress": "not-an-ip"}}}}})
    .to_string();
    let (version, answer) = post_over_tls(
        addr,
        &bundle,
        &[&rustls::version::TLS13],
        Kind::BgpPeer.path(),
        &review,
    )
    .await;
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"uid\":\"u-7\"")
            && answer.contains("\"allowed\":false")
            && answer.contains("neighborAddress"),
        "{answer}"
    );

    let (version, answer) = post_over_tls(
        addr,
        &bundle,
        &[&rustls::version::TLS12],
        Kind::BgpPeer.path(),
        "{oops",
    )
    .await;
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // Rotation: the server switches certificates without restarting; a client trusting only the
    // new CA connects.
    let rotated = certs::generate(
        &certs::dns_names("oxelb-webhook", "oxelb-system"),
        SystemTime::now(),
        certs::VALIDITY,
        Some(&bundle.ca_pem),
    )
    .unwrap();
    store.set(&rotated).unwrap();
    let only_new = CertBundle {
        ca_pem: rotated
            .ca_pem
            .split_inclusive("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .to_owned(),
        ..rotated.clone()
    };
    let (_, answer) = post_over_tls(
        addr,
        &only_new,
        &[&rustls::version::TLS13],
        Kind::Eip.path(),
        "{}",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    server.abort();
}
