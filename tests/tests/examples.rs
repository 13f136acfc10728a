//! Every sample object under `examples/` is exactly what its type says (a misspelled OpenELB field
//! fails here instead of being pruned by the API server), uses only documentation addresses, and
//! the samples agree with each other (Services name pools that exist, requested IPs lie in them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Service;
use oxelb_crds::address::{self, IpRange};
use oxelb_crds::interface;
use oxelb_crds::names;
use oxelb_crds::v1alpha2::Eip;
use oxelb_tests::schema::{installed_schemas, object_violations, openelb_version};
use oxelb_tests::{Document, load_documents, workspace_root};

mod common;
use common::{Example, address_violations, annotation, typed};

/// The subdirectory reserved for the runnable demo lab, which may hold non-Kubernetes YAML.
const LAB_DIR: &str = "lab";

/// Whether a document is a Kubernetes object at all (has both apiVersion and kind).
fn is_kubernetes_object(doc: &Document) -> bool {
    doc.api_version().is_some() && doc.kind().is_some()
}

/// Every document under `examples/`; under `examples/lab/`, YAML that is not a Kubernetes object
/// (router or compose files of the demo) is left out. Everywhere else such a document is an error
/// reported by [`examples`].
fn example_documents() -> Vec<Document> {
    let root = workspace_root().join("examples");
    let lab = root.join(LAB_DIR);
    // `examples/status/` holds what a controller run with `--source dir:examples` wrote (the README's
    // first command): not examples.
    let written = root.join("status");
    // `examples/kustomize/` is an overlay on config/ (its patches are partial objects): checked by
    // tests/kustomize.rs.
    let overlay = root.join("kustomize");
    let docs = load_documents(&root, &|dir: &Path| dir == written || dir == overlay)
        .unwrap_or_else(|e| panic!("{e}"));
    let docs: Vec<Document> = docs
        .into_iter()
        .filter(|d| !d.path.starts_with(&lab) || is_kubernetes_object(d))
        .collect();
    assert!(!docs.is_empty(), "no examples found under {}", root.display());
    docs
}

/// All typed examples; panics listing every document that fails.
fn examples() -> Vec<(Document, Example)> {
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for doc in example_documents() {
        match typed(&doc) {
            Ok(e) => ok.push((doc, e)),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    ok
}

/// Whether a document belongs to the demo lab's object set (`examples/lab/`), which runs on its
/// own (`--source dir:` on a copy of that directory): pools, Services and the BgpConf are checked
/// per set, since the two sets never meet.
fn in_lab(doc: &Document) -> bool {
    doc.path
        .starts_with(workspace_root().join("examples").join(LAB_DIR))
}

fn examples_of(lab: bool) -> Vec<(Document, Example)> {
    examples().into_iter().filter(|(d, _)| in_lab(d) == lab).collect()
}

fn eips(lab: bool) -> Vec<Eip> {
    examples_of(lab)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Example::Eip(eip) => Some(*eip),
            _ => None,
        })
        .collect()
}

fn services(lab: bool) -> Vec<(Document, Service)> {
    examples_of(lab)
        .into_iter()
        .filter_map(|(d, e)| match e {
            Example::Service(s) => Some((d, *s)),
            _ => None,
        })
        .collect()
}

fn parse_pool(eip: &Eip) -> IpRange {
    let name = eip.metadata.name.as_deref().unwrap_or("<no name>");
    address::parse(&eip.spec.address).unwrap_or_else(|e| panic!("Eip {name}: spec.address: {e}"))
}

#[test]
fn every_example_round_trips_through_its_type() {
    let all = examples();
    let kinds: BTreeSet<&str> = all.iter().filter_map(|(d, _)| d.kind()).collect();
    for expected in ["Eip", "BgpConf", "BgpPeer", "Service"] {
        assert!(
            kinds.contains(expected),
            "examples/ has no {expected}; found {kinds:?}"
        );
    }
}

#[test]
fn a_misspelled_openelb_field_fails_the_round_trip() {
    // Guards the strictness this file relies on: if the crds types ever start ignoring or
    // defaulting fields silently, this fails.
    let doc = Document {
        path: "inline.yaml".into(),
        index: 0,
        value: serde_json::json!({
            "apiVersion": names::API_VERSION_V1ALPHA2,
            "kind": names::KIND_BGP_PEER,
            "metadata": {"name": "typo"},
            "spec": {"conf": {"peerAs": 64513, "neighbourAddress": "192.0.2.1"}},
        }),
    };
    let error = typed(&doc).map(|_| ()).unwrap_err();
    assert!(error.contains("/spec/conf/neighbourAddress"), "{error}");
}

#[test]
fn an_unknown_kind_fails_naming_the_file() {
    let doc = Document {
        path: "examples/unknown.yaml".into(),
        index: 2,
        value: serde_json::json!({"apiVersion": "example.invalid/v1", "kind": "Widget", "metadata": {"name": "w"}}),
    };
    let error = typed(&doc).map(|_| ()).unwrap_err();
    assert!(error.contains("examples/unknown.yaml#2"), "{error}");
}

#[test]
fn example_addresses_are_documentation_addresses() {
    let violations: Vec<String> = examples()
        .iter()
        .flat_map(|(doc, example)| address_violations(&doc.to_string(), example))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn example_pools_are_valid_and_do_not_overlap() {
    for lab in [false, true] {
        pools_are_valid_and_do_not_overlap(&eips(lab), lab);
    }
}

fn pools_are_valid_and_do_not_overlap(eips: &[Eip], lab: bool) {
    let mut defaults = Vec::new();
    for (i, eip) in eips.iter().enumerate() {
        let name = eip.metadata.name.clone().unwrap_or_default();
        let pool = parse_pool(eip);
        if let Some(protocol) = eip.spec.protocol
            && protocol.needs_interface()
        {
            let iface = eip
                .spec
                .interface
                .as_deref()
                .unwrap_or_else(|| panic!("Eip {name}: {protocol} needs spec.interface"));
            interface::parse(iface).unwrap_or_else(|e| panic!("Eip {name}: spec.interface: {e}"));
        }
        if let Err(errors) = eip.spec.announce_policy() {
            panic!("Eip {name}: the webhook refuses spec.advertisement: {errors:?}");
        }
        if annotation(&eip.metadata, names::IS_DEFAULT_EIP_ANNOTATION) == Some(names::IS_DEFAULT_EIP_VALUE) {
            defaults.push(name.clone());
        }
        for other in &eips[i + 1..] {
            assert!(
                !pool.overlaps(&parse_pool(other)),
                "Eip {name} overlaps Eip {}: the webhook refuses overlapping pools",
                other.metadata.name.as_deref().unwrap_or_default()
            );
        }
    }
    // The main set shows the default-pool annotation once; the lab names its pools instead.
    assert_eq!(
        defaults.len(),
        usize::from(!lab),
        "example Eips that are the default pool (lab: {lab}): {defaults:?}"
    );
}

#[test]
fn example_services_name_existing_pools_and_request_ips_inside_them() {
    for lab in [false, true] {
        services_name_existing_pools(lab);
    }
}

fn services_name_existing_pools(lab: bool) {
    let pools: BTreeMap<String, IpRange> = eips(lab)
        .iter()
        .map(|e| (e.metadata.name.clone().unwrap_or_default(), parse_pool(e)))
        .collect();
    let services = services(lab);
    assert!(!services.is_empty(), "examples/ has no Service (lab: {lab})");
    for (doc, service) in services {
        let spec = service.spec.as_ref().unwrap_or_else(|| panic!("{doc}: spec"));
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"), "{doc}");
        assert_eq!(
            annotation(&service.metadata, names::LB_ANNOTATION),
            Some(names::LB_ANNOTATION_VALUE),
            "{doc}"
        );
        let pool_name = annotation(&service.metadata, names::EIP_POOL_ANNOTATION).unwrap_or_else(|| {
            panic!(
                "{doc}: the examples name their pool with {}",
                names::EIP_POOL_ANNOTATION
            )
        });
        let pool = pools
            .get(pool_name)
            .unwrap_or_else(|| panic!("{doc}: pool {pool_name} is not an example Eip"));
        // The annotation overrides spec.loadBalancerIP, so it is the IP the controller will try.
        let requested =
            annotation(&service.metadata, names::EIP_IP_ANNOTATION).or(spec.load_balancer_ip.as_deref());
        if let Some(ip) = requested {
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{doc}: {ip}: {e}"));
            assert!(
                pool.is_assignable(ip),
                "{doc}: {ip} is not an assignable IP of pool {pool_name}"
            );
        }
    }
}

#[test]
fn example_services_select_the_example_deployment() {
    let deployments: Vec<BTreeMap<String, String>> = examples()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Example::Deployment(d) => d.spec.and_then(|s| s.template.metadata).and_then(|m| m.labels),
            _ => None,
        })
        .collect();
    // Only the main set: the lab's Services have no Pods (its kube-proxy stand-in answers).
    for (doc, service) in services(false) {
        let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
        let selected = deployments
            .iter()
            .any(|labels| selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
        assert!(
            !selector.is_empty() && selected,
            "{doc}: selector {selector:?} matches no example Deployment"
        );
    }
}

#[test]
fn example_bgp_objects_use_the_names_speakers_read() {
    for lab in [false, true] {
        bgp_objects_use_the_names_speakers_read(lab);
    }
}

fn bgp_objects_use_the_names_speakers_read(lab: bool) {
    let mut confs = Vec::new();
    for (doc, example) in examples_of(lab) {
        match example {
            Example::BgpConf(conf) => confs.push(conf.metadata.name.clone().unwrap_or_default()),
            Example::BgpPeer(peer) => {
                let conf = peer
                    .spec
                    .conf
                    .as_ref()
                    .unwrap_or_else(|| panic!("{doc}: spec.conf"));
                assert!(conf.peer_as.is_some(), "{doc}: spec.conf.peerAs");
                if let Some(hold) = peer
                    .spec
                    .timers
                    .as_ref()
                    .and_then(|t| t.config.as_ref())
                    .and_then(|c| c.hold_time.as_deref())
                {
                    hold.parse::<u16>()
                        .unwrap_or_else(|e| panic!("{doc}: holdTime {hold} is not a number of seconds: {e}"));
                }
                for afi_safi in peer.spec.afi_safis.iter().flatten() {
                    let family = afi_safi.config.as_ref().and_then(|c| c.family.as_ref());
                    let afi = family.and_then(|f| f.afi.as_deref());
                    let safi = family.and_then(|f| f.safi.as_deref());
                    assert!(
                        matches!(afi, Some("AFI_IP" | "AFI_IP6")),
                        "{doc}: afi {afi:?} (GoBGP names AFI_IP/AFI_IP6)"
                    );
                    assert_eq!(safi, Some("SAFI_UNICAST"), "{doc}");
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        confs,
        vec![names::DEFAULT_BGP_CONF_NAME.to_string()],
        "only the BgpConf named default is read (lab: {lab})"
    );
}

#[test]
fn openelb_examples_fit_the_installed_crd_schemas() {
    // The round trip proves the Rust types reproduce each example; this proves the API server
    // (which validates and prunes by the installed schema, not by the Rust types) keeps every field.
    let mut checked = 0;
    for (doc, _) in examples() {
        let Some(version) = doc.api_version().and_then(openelb_version) else {
            continue;
        };
        let schemas = installed_schemas(version).unwrap_or_else(|e| panic!("{e}"));
        let kind = doc.kind().unwrap_or_default();
        let schema = schemas
            .get(kind)
            .unwrap_or_else(|| panic!("{doc}: config/crd/ has no {version} CRD for {kind}"));
        let violations = object_violations(&doc, schema);
        assert!(violations.is_empty(), "{doc}:\n  {}", violations.join("\n  "));
        checked += 1;
    }
    assert!(checked > 0, "no OpenELB object among the examples");
}
