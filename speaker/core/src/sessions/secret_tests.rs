#![allow(clippy::unwrap_used)]
use super::*;

fn peer(conf: serde_json::Value) -> BgpPeer {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
        "metadata": {"name": "router"}, "spec": {"conf": conf}
    }))
    .unwrap()
}

fn secrets(name: &str, key: &str, value: &[u8]) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    [(name.to_owned(), [(key.to_owned(), value.to_vec())].into())].into()
}

#[test]
fn a_secret_reference_becomes_the_password_and_every_miss_is_a_named_problem() {
    let by_ref = peer(
        serde_json::json!({"peerAs": 64513, "neighborAddress": "192.0.2.1",
        "authPasswordSecret": {"name": "bgp-auth"}}),
    );
    let (peers, problems) = resolve_passwords(
        std::slice::from_ref(&by_ref),
        &secrets("bgp-auth", "password", b"s3cret\n"),
        "oxelb-system",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let conf = peers[0].spec.conf.as_ref().unwrap();
    assert_eq!(
        conf.auth_password.as_deref(),
        Some("s3cret"),
        "trailing newline (echo > file) trimmed"
    );

    let other_key = peer(
        serde_json::json!({"peerAs": 64513, "neighborAddress": "192.0.2.1",
        "authPasswordSecret": {"name": "bgp-auth", "key": "md5"}}),
    );
    let (peers, _) = resolve_passwords(&[other_key], &secrets("bgp-auth", "md5", b"x"), "oxelb-system");
    assert_eq!(
        peers[0].spec.conf.as_ref().unwrap().auth_password.as_deref(),
        Some("x")
    );

    for (secrets, want) in [
        (BTreeMap::new(), "Secret oxelb-system/bgp-auth does not exist"),
        (secrets("bgp-auth", "other", b"x"), "has no key password"),
        (secrets("bgp-auth", "password", b""), "is empty"),
        (secrets("bgp-auth", "password", &[0xff, 0xfe]), "is not UTF-8"),
    ] {
        let (peers, problems) = resolve_passwords(std::slice::from_ref(&by_ref), &secrets, "oxelb-system");
        assert!(peers.is_empty(), "{want}: no session without its password");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].object, "BgpPeer/router");
        assert!(
            problems[0].message.contains("spec.conf.authPasswordSecret"),
            "{:?}",
            problems[0]
        );
        assert!(
            problems[0].message.contains(want),
            "{:?} lacks {want}",
            problems[0]
        );
    }

    let both = peer(
        serde_json::json!({"peerAs": 64513, "neighborAddress": "192.0.2.1", "authPassword": "a",
        "authPasswordSecret": {"name": "bgp-auth"}}),
    );
    let (peers, problems) =
        resolve_passwords(&[both], &secrets("bgp-auth", "password", b"b"), "oxelb-system");
    assert!(peers.is_empty());
    assert!(problems[0].message.contains("both set"), "{problems:?}");

    let plain =
        peer(serde_json::json!({"peerAs": 64513, "neighborAddress": "192.0.2.1", "authPassword": "a"}));
    let (peers, problems) = resolve_passwords(std::slice::from_ref(&plain), &BTreeMap::new(), "oxelb-system");
    assert_eq!(peers, vec![plain], "peers without a reference pass unchanged");
    assert!(problems.is_empty());
}
