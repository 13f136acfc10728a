use super::*;

async fn call(api: &ApiServer, method: Method, uri: &str, body: Value) -> (StatusCode, String) {
    let response = api
        .handle(
            method,
            uri.parse().unwrap(),
            HeaderMap::new(),
            Bytes::from(body.to_string()),
        )
        .await;
    let code = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (code, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn writes_change_objects_in_place_and_watches_replay_them_in_order() {
    let api = ApiServer::start().await.unwrap();
    let svc = |name: &str| json!({"metadata": {"name": name}, "spec": {"type": "LoadBalancer"}});
    api.insert("/api/v1/namespaces/a/services", svc("x")).unwrap();
    api.insert("/api/v1/namespaces/a/services", svc("y")).unwrap();
    let x = "/api/v1/namespaces/a/services/x";

    // A stale precondition is refused; a fresh one merges, and cannot touch status or uid.
    let (code, _) = call(
        &api,
        Method::PATCH,
        x,
        json!({"metadata": {"resourceVersion": "9"}}),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let patch = json!({"metadata": {"resourceVersion": "1", "uid": "other", "labels": {"l": "v"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let (code, body) = call(&api, Method::PATCH, x, patch).await;
    assert_eq!(code, StatusCode::OK);
    let answered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answered["metadata"]["labels"]["l"], "v");
    assert_eq!(answered["metadata"]["resourceVersion"], "3");
    assert_eq!(
        answered["metadata"]["uid"],
        "00000000-0000-4000-8000-000000000001"
    );
    assert!(answered["status"].is_null(), "{answered}");
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let (code, _) = call(&api, Method::PATCH, &format!("{x}/status"), status).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        api.tally("/api/v1/services", |s| !s["status"]["loadBalancer"]["ingress"]
            .is_null()),
        (2, 1)
    );

    // Pages of one, then the watch from version 1 replays what came after it, in order.
    let (_, page) = call(&api, Method::GET, "/api/v1/services?limit=1", Value::Null).await;
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let token = page["metadata"]["continue"].as_str().unwrap().to_owned();
    let (_, rest) = call(
        &api,
        Method::GET,
        &format!("/api/v1/services?limit=1&continue={token}"),
        Value::Null,
    )
    .await;
    let rest: Value = serde_json::from_str(&rest).unwrap();
    assert_eq!(rest["items"][0]["metadata"]["name"], "y");
    assert!(rest["metadata"]["continue"].is_null());
    // A watch from version 1 that ends once it has sent what it holds.
    let watch_from_1 = async || {
        let uri = "/api/v1/services?watch=1&resourceVersion=1&timeoutSeconds=0";
        call(&api, Method::GET, uri, Value::Null).await.1
    };
    let lines = watch_from_1().await;
    let events: Vec<(String, String, String)> = lines
        .lines()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            let o = &e["object"]["metadata"];
            (
                e["type"].as_str().unwrap().to_owned(),
                o["name"].as_str().unwrap().to_owned(),
                o["resourceVersion"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("ADDED", "y", "2"),
        ("MODIFIED", "x", "3"),
        ("MODIFIED", "x", "4"),
    ];
    assert_eq!(
        events,
        want.map(|(t, n, v)| (t.to_owned(), n.to_owned(), v.to_owned()))
    );

    // After compaction the same watch is told 410 Gone.
    api.compact();
    let gone = watch_from_1().await;
    assert!(gone.contains("\"code\":410"), "{gone}");
}

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
