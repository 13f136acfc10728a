//! The two-node tie-break's Lease adapter on the kube path, against the in-memory API server of
//! `oxelb_tests::apiserver` (no kube-apiserver can run on this machine): the request shapes
//! (create once, then merge patches; a read token that changes with every renewal), two speakers
//! that renew and see each other's Lease fresh, a Lease that stops being renewed and expires, and a
//! speaker whose apiserver refuses connections that never counts as reaching it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use oxelb_speaker::reach::{LeaseStore, Leases};
use oxelb_speaker_core::tiebreak::LeaseTiming;
use oxelb_tests::apiserver::ApiServer;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/oxelb-system/leases";

async fn client(kubeconfig: &str) -> Client {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

fn store(client: Client) -> LeaseStore {
    LeaseStore::Kube {
        client,
        namespace: "oxelb-system".into(),
    }
}

/// Polls `check` every 10 ms until it holds, for at most `limit`.
async fn eventually(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn renewals_create_then_patch_and_every_write_changes_the_token() {
    let server = ApiServer::start().await.unwrap();
    let store = store(client(&server.kubeconfig()).await);
    let timing = LeaseTiming::default();
    assert_eq!(store.read("a").await.unwrap(), None, "no Lease yet");
    store.renew("a", timing, 1).await.unwrap();
    let first = store.read("a").await.unwrap().expect("created");
    store.renew("a", timing, 2).await.unwrap();
    let second = store.read("a").await.unwrap().expect("still there");
    assert_ne!(first, second, "a renewal is a change the peer sees");
    let leases = server.list(LEASES);
    assert_eq!(leases.len(), 1);
    let lease = &leases[0];
    assert_eq!(lease["metadata"]["name"], "oxelb-speaker-a");
    assert_eq!(
        lease["metadata"]["labels"]["app.kubernetes.io/component"],
        "speaker"
    );
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);
    assert!(lease["spec"]["renewTime"].is_string());
    let requests = server.requests();
    let count = |verb: &str| {
        requests
            .get(&(verb.to_owned(), "/apis/coordination.k8s.io/v1/leases".to_owned()))
            .copied()
            .unwrap_or(0)
    };
    // The first renewal: a patch (404), then a create; the second: one patch.
    assert_eq!((count("patch"), count("create"), count("get")), (2, 1, 3));
}

#[tokio::test]
async fn two_speakers_see_each_other_renew_and_a_silent_lease_expires() {
    let server = ApiServer::start().await.unwrap();
    let api = client(&server.kubeconfig()).await;
    // A fast timing, so the test takes a second: renew every 40 ms, expire after 200 ms.
    let timing = LeaseTiming::new(Duration::from_millis(40), Duration::from_millis(200)).unwrap();
    let a = Leases::start(store(api.clone()), "a".into(), timing);
    let b = Leases::start(store(api.clone()), "b".into(), timing);
    let limit = Duration::from_secs(10);
    // Nothing tracked: no requests.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    a.track(Some("b".into()));
    b.track(Some("a".into()));
    eventually("both reach the apiserver", limit, || {
        a.facts("b").reachable && b.facts("a").reachable
    })
    .await;
    // Both renew: neither Lease expires over many durations.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!a.facts("b").peer_expired, "b renews: its Lease is fresh");
        assert!(!b.facts("a").peer_expired);
    }
    // b stops renewing (as a dead speaker does): a sees its Lease expire, by a's own clock.
    b.track(None);
    eventually("b's Lease expires for a", limit, || a.facts("b").peer_expired).await;
    assert!(a.facts("b").reachable, "a still reaches the apiserver");
    assert!(a.next_deadline().is_some());
    // b renews again: fresh at once on a's next read.
    b.track(Some("a".into()));
    eventually("b's Lease is fresh again", limit, || !a.facts("b").peer_expired).await;
}

#[tokio::test]
async fn a_speaker_whose_apiserver_refuses_never_reaches_it() {
    // A loopback port nobody listens on any more: every request is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://{addr}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
    );
    let timing = LeaseTiming::new(Duration::from_millis(40), Duration::from_millis(200)).unwrap();
    let cut = Leases::start(store(client(&kubeconfig).await), "a".into(), timing);
    cut.track(Some("b".into()));
    // Two seconds (fifty renew periods): never reachable, and b's Lease (never read) never
    // judged expired.
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let facts = cut.facts("b");
        assert!(!facts.reachable && !facts.peer_expired, "{facts:?}");
    }
}
