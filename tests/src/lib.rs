//! Workspace-level integration test support for oxelb.
//!
//! [`manifest`] loads the YAML documents a user would `kubectl apply` (`config/`, `examples/`) and
//! checks that a typed Rust object reproduces each one exactly, so a misspelled or misplaced field
//! in a shipped manifest fails a test instead of being silently dropped by the API server;
//! [`schema`] checks OpenELB objects against the CRD schemas oxelb installs (`config/crd/`), for
//! the tests of `examples/` and of the YAML in the manual (`README.md`, `docs/`).

//! [`lab`] builds network-namespace labs (hosts, veths, bridges, processes, torn down on drop) and
//! [`routers`] runs real FRR, BIRD and GoBGP routers in them. [`cluster`] builds on both: the whole
//! demo topology (router, clients, three nodes running the real controller and speakers), shared
//! by the demo (`examples/lab/demo.sh`, binary `oxelb-demo`) and the end-to-end tests. [`pcap`]
//! reads the BGP messages and ARP packets out of a lab's packet capture, for benchmarks that time
//! the wire; [`lan_claims`] tells from the ARP packets when an IP was first claimed and whether
//! two MACs ever answered for one.
//! [`chaos`] injects overlapping faults into a whole cluster and checks its invariants (the
//! `oxelb-chaos` binary). [`apiserver`] is a small in-memory Kubernetes API (list, watch with 410 Gone, writes),
//! [`freeze_proxy`] a proxy in front of it that can stop forwarding without closing (a hung
//! watch), and
//! [`scale`] drives the real controller and speaker against it (the `oxelb-scale` benchmark).
//! [`images`] runs the release images with podman; [`webhook_client`] calls the controller's
//! admission webhook over TLS as the API server does.

pub mod apiserver;
pub mod chaos;
pub mod cluster;
pub mod freeze_proxy;
pub mod images;
pub mod lab;
pub mod lan_claims;
pub mod manifest;
pub mod pcap;
pub mod routers;
pub mod scale;
pub mod schema;
pub mod webhook_client;

pub use manifest::{Document, LoadError, RoundTripError, load_documents, round_trip, workspace_root};
