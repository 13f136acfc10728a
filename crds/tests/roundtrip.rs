//! OpenELB's objects survive deserialize -> serialize unchanged (compared as JSON values), which also
//! catches fields oxelb's types would silently drop.

// Tests may panic on unexpected input: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oxelb_crds::{v1alpha1, v1alpha2};
use pretty_assertions::assert_eq;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses `yaml` as `T` and serializes it back: `(object, original JSON, JSON written back)`.
fn reserialize<T: DeserializeOwned + Serialize>(yaml: &str) -> (T, Value, Value) {
    let original: Value = serde_yaml::from_str(yaml).unwrap();
    let object: T = serde_json::from_value(original.clone()).unwrap();
    let back = serde_json::to_value(&object).unwrap();
    (object, original, back)
}

/// Parses `yaml` as `T`, serializes it back and asserts the JSON values are equal; returns the object.
fn round_trip<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
    let (object, original, back) = reserialize(yaml);
    assert_eq!(back, original);
    object
}

// OpenELB's layer2 documentation sample (reproduced verbatim, hence the 192.168 addresses).
const EIP_LAYER2_OPENELB_SAMPLE: &str = r#"
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata:
  name: eip-sample-pool
spec:
  address: 192.168.93.231-192.168.93.238
  protocol: layer2
  interface: eth33
"#;

#[test]
fn openelb_layer2_eip_sample() {
    let eip: v1alpha2::Eip = round_trip(EIP_LAYER2_OPENELB_SAMPLE);
    assert_eq!(eip.spec.protocol(), v1alpha2::EipProtocol::Layer2);
    assert_eq!(eip.spec.interface.as_deref(), Some("eth33"));
    assert_eq!(eip.parsed_address().unwrap().size(), 8);
}

#[test]
fn bgp_eip_with_cidr_and_namespaces() {
    let eip: v1alpha2::Eip = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata:
  name: bgp-pool
  annotations:
    eip.openelb.kubesphere.io/is-default-eip: "true"
spec:
  address: 198.51.100.0/28
  protocol: bgp
  disable: false
  usingKnownIPs: false
  priority: 10
  namespaces:
  - project-a
  - project-b
  namespaceSelector:
    team: blue
"#,
    );
    assert!(eip.is_default());
    assert_eq!(eip.spec.protocol(), v1alpha2::EipProtocol::Bgp);
    assert_eq!(eip.spec.priority, Some(10));
    assert_eq!(eip.parsed_address().unwrap().assignable_size(), 14);
}

#[test]
fn eip_with_full_openelb_status() {
    let eip: v1alpha2::Eip = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata:
  name: eip-status
  finalizers:
  - finalizer.ipam.kubesphere.io/v1alpha1
spec:
  address: 203.0.113.10-203.0.113.19
status:
  used:
    203.0.113.10: default/web
    203.0.113.11: a/x;b/y
  usage: 2
  poolSize: 10
  firstIP: 203.0.113.10
  lastIP: 203.0.113.19
  occupied: false
  v4: true
  ready: true
"#,
    );
    let status = eip.status.unwrap();
    assert_eq!(status.pool_size, Some(10));
    assert_eq!(status.first_ip.as_deref(), Some("203.0.113.10"));
    assert_eq!(
        status.used.unwrap().get("203.0.113.11").map(String::as_str),
        Some("a/x;b/y")
    );
}

// OpenELB's BgpConf documentation sample (verbatim).
#[test]
fn openelb_bgpconf_sample() {
    let conf: v1alpha2::BgpConf = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpConf
metadata:
  name: default
spec:
  as: 50000
  listenPort: 17900
  routerId: 192.168.0.2
"#,
    );
    assert!(conf.is_default());
    assert_eq!(conf.spec.as_number, Some(50000));
    assert_eq!(conf.spec.listen_port, Some(17900));
}

#[test]
fn bgpconf_every_field_and_status() {
    let conf: v1alpha2::BgpConf = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpConf
metadata:
  name: default
spec:
  as: 4200000000
  asPerRack:
    rack1: 65001
    rack2: 65002
  routerId: 192.0.2.1
  listenPort: -1
  listenAddresses:
  - 192.0.2.1
  - 2001:db8::1
  families:
  - 0
  - 1
  useMultiplePaths: true
  gracefulRestart:
    enabled: true
    restartTime: 120
    helperOnly: false
    deferralTime: 360
    notificationEnabled: true
    longlivedEnabled: true
    staleRoutesTime: 300
    peerRestartTime: 120
    peerRestarting: false
    localRestarting: false
    mode: helper-only
  policy: bgp-policy
status:
  nodesConfStatus:
    node1:
      routerId: 192.0.2.11
      as: 65001
"#,
    );
    assert_eq!(conf.spec.as_number, Some(4_200_000_000), "4-byte AS numbers fit");
    assert_eq!(conf.spec.listen_port, Some(-1));
    assert_eq!(conf.spec.graceful_restart.unwrap().deferral_time, Some(360));
}

#[test]
fn openelb_bgppeer_sample() {
    let peer: v1alpha2::BgpPeer = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata:
  name: bgppeer-sample
spec:
  conf:
    peerAs: 50001
    neighborAddress: 192.0.2.254
  timers:
    config:
      holdTime: "90"
  transport:
    passiveMode: false
  nodeSelector:
    matchLabels:
      openelb.kubesphere.io/rack: rack1
"#,
    );
    let conf = peer.spec.conf.unwrap();
    assert_eq!(conf.peer_as, Some(50001));
    assert_eq!(conf.neighbor_address.as_deref(), Some("192.0.2.254"));
    assert_eq!(
        peer.spec.timers.unwrap().config.unwrap().hold_time.as_deref(),
        Some("90")
    );
}

#[test]
fn bgppeer_every_nested_gobgp_field_and_status() {
    let peer: v1alpha2::BgpPeer = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata:
  name: full
  labels:
    openelb.kubesphere.io/cni: calico
spec:
  conf:
    authPassword: secret
    description: ToR switch
    localAs: 65000
    neighborAddress: 2001:db8::fe
    peerAs: 65100
    peerGroup: tor
    peerType: 1
    removePrivateAs: REPLACE
    routeFlapDamping: false
    sendCommunity: 3
    neighborInterface: eth1
    vrf: blue
    allowOwnAs: 1
    replacePeerAs: false
    adminDown: false
  ebgpMultihop:
    enabled: true
    multihopTtl: 3
  timers:
    config:
      connectRetry: "5"
      holdTime: "9"
      keepaliveInterval: "3"
      minimumAdvertisementInterval: "0"
  transport:
    mtuDiscovery: true
    passiveMode: true
    remoteAddress: 2001:db8::fe
    remotePort: 17900
    tcpMss: 1400
  gracefulRestart:
    enabled: true
    restartTime: 120
    longlivedEnabled: false
  afiSafis:
  - config:
      family:
        afi: AFI_IP6
        safi: SAFI_UNICAST
      enabled: true
    addPaths:
      config:
        receive: true
        sendMax: 10
    mpGracefulRestart:
      config:
        enabled: true
  - config:
      family:
        afi: AFI_IP
        safi: SAFI_UNICAST
  nodeSelector:
    matchExpressions:
    - key: kubernetes.io/hostname
      operator: In
      values:
      - node1
      - node2
    - key: node-role.kubernetes.io/control-plane
      operator: DoesNotExist
status:
  nodesPeerStatus:
    node1:
      peerState:
        authPassword: secret
        description: ToR switch
        localAs: 65000
        messages:
          received:
            notification: "0"
            update: "12"
            open: "1"
            keepalive: "100"
            refresh: "0"
            discarded: "0"
            total: "113"
            withdrawUpdate: "1"
            withdrawPrefix: "2"
          sent:
            open: "1"
            total: "101"
        neighborAddress: 2001:db8::fe
        peerAs: 65100
        peerGroup: tor
        peerType: 1
        queues:
          input: 0
          output: 1
        removePrivateAs: 0
        routeFlapDamping: false
        sendCommunity: 3
        sessionState: ESTABLISHED
        adminState: UP
        outQ: 0
        flops: 2
        routerId: 192.0.2.254
      timersState:
        connectRetry: "5"
        holdTime: "9"
        keepaliveInterval: "3"
        minimumAdvertisementInterval: "0"
        negotiatedHoldTime: "9"
        uptime: "2025-05-01T10:00:00Z"
        downtime: "2025-05-01T09:59:00Z"
    node2:
      peerState: {}
      timersState: {}
"#,
    );
    assert!(peer.is_cni_owned());
    let afi_safis = peer.spec.afi_safis.unwrap();
    assert_eq!(afi_safis.len(), 2);
    assert_eq!(
        afi_safis[0]
            .add_paths
            .as_ref()
            .unwrap()
            .config
            .as_ref()
            .unwrap()
            .send_max,
        Some(10)
    );
    assert_eq!(peer.spec.ebgp_multihop.unwrap().multihop_ttl, Some(3));
    let status = peer.status.unwrap().nodes_peer_status.unwrap();
    assert_eq!(
        status["node1"]
            .peer_state
            .as_ref()
            .unwrap()
            .session_state
            .as_deref(),
        Some("ESTABLISHED")
    );
    assert_eq!(
        status["node2"].peer_state,
        Some(v1alpha2::PeerState::default()),
        "Go writes empty structs"
    );
}

#[test]
fn v1alpha1_objects() {
    let eip: v1alpha1::Eip = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha1
kind: Eip
metadata:
  name: old-pool
spec:
  address: 192.0.2.0/28
  protocol: layer2
  disable: false
  usingKnownIPs: true
status:
  occupied: false
  poolSize: 16
  usage: 1
"#,
    );
    assert_eq!(eip.spec.protocol, Some(v1alpha1::Protocol::Layer2));
    let conf: v1alpha1::BgpConf = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha1
kind: BgpConf
metadata:
  name: default
spec:
  as: 65000
  port: 17900
  routerID: 192.0.2.1
status: {}
"#,
    );
    assert_eq!(conf.spec.port, 17900);
    let peer: v1alpha1::BgpPeer = round_trip(
        r#"
apiVersion: network.kubesphere.io/v1alpha1
kind: BgpPeer
metadata:
  name: old-peer
spec:
  addPaths:
    sendMax: 8
  config:
    neighborAddress: 192.0.2.254
    peerAs: 65100
  transport:
    passiveMode: true
    remotePort: 179
  usingPortForward: false
"#,
    );
    assert_eq!(peer.spec.config.unwrap().peer_as, 65100);
}

#[test]
fn an_unknown_field_is_detected_by_the_round_trip() {
    // The comparison above is what catches a field oxelb's types lack: prove it can fail.
    let yaml = EIP_LAYER2_OPENELB_SAMPLE.replace("interface: eth33", "interface: eth33\n  notAField: 1");
    let (_, original, back) = reserialize::<v1alpha2::Eip>(&yaml);
    assert_ne!(
        back, original,
        "an unknown spec field must make the round trip differ"
    );
    assert_eq!(original["spec"]["notAField"], 1);
}

#[test]
fn absent_optional_fields_are_not_written() {
    let eip = v1alpha2::Eip::new(
        "p",
        v1alpha2::EipSpec {
            address: "192.0.2.1".into(),
            ..Default::default()
        },
    );
    let value = serde_json::to_value(&eip).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "Eip",
            "metadata": {"name": "p"},
            "spec": {"address": "192.0.2.1"}
        })
    );
}
