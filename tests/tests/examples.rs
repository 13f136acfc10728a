//! Every sample object under `examples/` is exactly what its type says (a misspelled OpenELB field
//! fails here instead of being pruned by the API server), uses only documentation addresses, and
//! the samples agree with each other (Services name pools that exist, requested IPs lie in them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use oxelb_crds::address::{self, IpRange};
use oxelb_crds::interface::{self, InterfaceSelector};
use oxelb_crds::names;
use oxelb_crds::v1alpha2::{BgpConf, BgpPeer, Eip};
use oxelb_tests::{Document, RoundTripError, load_documents, round_trip, workspace_root};

/// The subdirectory reserved for the runnable demo lab, which may hold non-Kubernetes YAML.
const LAB_DIR: &str = "lab";

/// The address ranges reserved for documentation (RFC 5737, RFC 3849); the only ones examples may use.
const DOCUMENTATION_RANGES: [&str; 4] = [
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",
];

/// A typed sample object.
#[derive(Debug)]
enum Example {
    Eip(Box<Eip>),
    BgpConf(Box<BgpConf>),
    BgpPeer(Box<BgpPeer>),
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    /// A kind only checked for strictness (Namespace, ConfigMap, Secret): no cross-checks need it.
    Checked,
}

/// Deserializes a document strictly into the type its apiVersion/kind name.
fn typed(doc: &Document) -> Result<Example, String> {
    let rt = |e: RoundTripError| e.to_string();
    let crd = names::API_VERSION_V1ALPHA2;
    Ok(match (doc.api_version(), doc.kind()) {
        (Some(v), Some(k)) if v == crd && k == names::KIND_EIP => Example::Eip(round_trip(doc).map_err(rt)?),
        (Some(v), Some(k)) if v == crd && k == names::KIND_BGP_CONF => {
            Example::BgpConf(round_trip(doc).map_err(rt)?)
        }
        (Some(v), Some(k)) if v == crd && k == names::KIND_BGP_PEER => {
            Example::BgpPeer(round_trip(doc).map_err(rt)?)
        }
        (Some("v1"), Some("Service")) => Example::Service(round_trip(doc).map_err(rt)?),
        (Some("v1"), Some("Namespace")) => round_trip::<Namespace>(doc)
            .map(|_| Example::Checked)
            .map_err(rt)?,
        (Some("v1"), Some("ConfigMap")) => round_trip::<ConfigMap>(doc)
            .map(|_| Example::Checked)
            .map_err(rt)?,
        (Some("v1"), Some("Node")) => round_trip::<Node>(doc).map(|_| Example::Checked).map_err(rt)?,
        (Some("v1"), Some("Secret")) => round_trip::<Secret>(doc).map(|_| Example::Checked).map_err(rt)?,
        (Some("apps/v1"), Some("Deployment")) => Example::Deployment(round_trip(doc).map_err(rt)?),
        _ => {
            return Err(format!(
                "{doc}: unknown apiVersion/kind in examples/; add its type to examples.rs"
            ));
        }
    })
}

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

fn documentation_ranges() -> Vec<IpNet> {
    DOCUMENTATION_RANGES
        .iter()
        .map(|r| r.parse().unwrap_or_else(|e| panic!("{r}: {e}")))
        .collect()
}

fn assert_documentation_ip(what: &str, ip: IpAddr) {
    assert!(
        documentation_ranges().iter().any(|net| net.contains(&ip)),
        "{what}: {ip} is not in a documentation range {DOCUMENTATION_RANGES:?}"
    );
}

fn parse_pool(eip: &Eip) -> IpRange {
    let name = eip.metadata.name.as_deref().unwrap_or("<no name>");
    address::parse(&eip.spec.address).unwrap_or_else(|e| panic!("Eip {name}: spec.address: {e}"))
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
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
    for (doc, example) in examples() {
        let what = doc.to_string();
        match example {
            Example::Eip(eip) => {
                let pool = parse_pool(&eip);
                assert_documentation_ip(&what, pool.first());
                assert_documentation_ip(&what, pool.last());
                if let Some(InterfaceSelector::CanReach(ip)) = eip
                    .spec
                    .interface
                    .as_deref()
                    .map(|i| interface::parse(i).unwrap_or_else(|e| panic!("{what}: {e}")))
                {
                    assert_documentation_ip(&what, ip);
                }
            }
            Example::BgpPeer(peer) => {
                let conf = peer
                    .spec
                    .conf
                    .as_ref()
                    .unwrap_or_else(|| panic!("{what}: spec.conf"));
                let neighbor = conf
                    .neighbor_address
                    .as_deref()
                    .unwrap_or_else(|| panic!("{what}: neighborAddress"));
                let ip: IpAddr = neighbor
                    .parse()
                    .unwrap_or_else(|e| panic!("{what}: neighborAddress {neighbor}: {e}"));
                assert_documentation_ip(&what, ip);
            }
            Example::Service(service) => {
                let requested = service.spec.as_ref().and_then(|s| s.load_balancer_ip.as_deref());
                let annotated = annotation(&service.metadata, names::EIP_IP_ANNOTATION);
                for ip in requested.into_iter().chain(annotated) {
                    let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{what}: {ip}: {e}"));
                    assert_documentation_ip(&what, ip);
                }
            }
            _ => {}
        }
    }
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

/// The `v1alpha2` OpenAPI schema of each kind in the CRDs oxelb installs (`config/crd/`).
fn installed_schemas() -> BTreeMap<String, serde_json::Value> {
    let crd_dir = workspace_root().join("config/crd");
    let mut schemas = BTreeMap::new();
    for doc in load_documents(&crd_dir, &|_: &Path| false).unwrap_or_else(|e| panic!("{e}")) {
        let kind = doc
            .value
            .pointer("/spec/names/kind")
            .and_then(|k| k.as_str())
            .unwrap_or_else(|| panic!("{doc}: spec.names.kind"))
            .to_string();
        let versions = doc
            .value
            .pointer("/spec/versions")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let schema = versions
            .iter()
            .find(|v| v.get("name").and_then(|n| n.as_str()) == Some(names::VERSION_V1ALPHA2))
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
            .unwrap_or_else(|| panic!("{doc}: no v1alpha2 schema"))
            .clone();
        schemas.insert(kind, schema);
    }
    schemas
}

/// Appends a message for every place `value` does not fit the structural `schema`: a field the
/// API server would prune (not in `properties`), or a JSON type the schema does not allow.
fn schema_violations(
    pointer: &str,
    value: &serde_json::Value,
    schema: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let type_ok = match (expected, actual) {
        (None, _) => true,
        (Some("number"), "integer") => true,
        _ if int_or_string => matches!(actual, "integer" | "string"),
        (Some(e), a) => e == a,
    };
    if !type_ok {
        out.push(format!(
            "{pointer}: {value} is {actual}, the installed schema wants {}",
            expected.unwrap_or("?")
        ));
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                let child_pointer = format!("{pointer}/{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(child_schema), _) | (None, Some(child_schema)) => {
                        schema_violations(&child_pointer, child, child_schema, out)
                    }
                    (None, None) if properties.is_none() => {} // a free-form object
                    (None, None) => out.push(format!(
                        "{child_pointer}: not in the installed schema (the API server would prune it)"
                    )),
                }
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(required) = required.as_str()
                    && !map.contains_key(required)
                {
                    out.push(format!("{pointer}/{required}: required by the installed schema"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    schema_violations(&format!("{pointer}/{i}"), item, item_schema, out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn openelb_examples_fit_the_installed_crd_schemas() {
    // The round trip proves the Rust types reproduce each example; this proves the API server
    // (which validates and prunes by the installed schema, not by the Rust types) keeps every field.
    let schemas = installed_schemas();
    let mut checked = 0;
    for (doc, example) in examples() {
        if !matches!(
            example,
            Example::Eip(_) | Example::BgpConf(_) | Example::BgpPeer(_)
        ) {
            continue;
        }
        let kind = doc.kind().unwrap_or_default();
        let schema = schemas
            .get(kind)
            .unwrap_or_else(|| panic!("{doc}: config/crd/ has no CRD for {kind}"));
        let mut body = doc.value.clone();
        // apiVersion, kind and metadata are the API server's own, never pruned by a CRD schema.
        if let Some(map) = body.as_object_mut() {
            for key in ["apiVersion", "kind", "metadata"] {
                map.remove(key);
            }
        }
        let mut violations = Vec::new();
        schema_violations("", &body, schema, &mut violations);
        assert!(violations.is_empty(), "{doc}:\n  {}", violations.join("\n  "));
        checked += 1;
    }
    assert!(checked > 0, "no OpenELB object among the examples");
}

#[test]
fn schema_check_reports_pruned_fields_and_wrong_types() {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["address"], "properties": {
            "address": {"type": "string"},
            "priority": {"type": "integer"},
            "namespaceSelector": {"type": "object", "additionalProperties": {"type": "string"}},
        }}},
    });
    let value =
        serde_json::json!({"spec": {"priority": "10", "adress": "192.0.2.1", "namespaceSelector": {"a": 1}}});
    let mut out = Vec::new();
    schema_violations("", &value, &schema, &mut out);
    assert_eq!(
        out,
        vec![
            r#"/spec/adress: not in the installed schema (the API server would prune it)"#.to_string(),
            r#"/spec/namespaceSelector/a: 1 is integer, the installed schema wants string"#.to_string(),
            r#"/spec/priority: "10" is string, the installed schema wants integer"#.to_string(),
            r#"/spec/address: required by the installed schema"#.to_string(),
        ]
    );
}
