//! The monitoring that ships in `config/prometheus/` and `config/grafana/`:
//!
//! - the alerting rules pass `promtool check rules` and their unit tests `promtool test rules`;
//! - every metric a rule, a rule test or a dashboard panel names is one the real binaries export: a
//!   network-namespace lab runs the controller and three speakers (layer2 answered, BGP sessions to
//!   FRR up, one Service pending) and scrapes their `/metrics`; a renamed metric fails with its name;
//! - the PrometheusRule carries the same groups as the plain rule file; the PodMonitors select the
//!   workloads' pods and their `metrics` port; every alert has a runbook line in `docs/operations.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use oxelb_tests::{
    cluster::{Binaries, LabCluster, NODES, WAIT},
    lab::{lab_or_skip, wait_until},
    workspace_root,
};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

const RULES: &str = "config/prometheus/oxelb.rules.yaml";
const RULE_TESTS: &str = "config/prometheus/tests/oxelb.rules.test.yaml";
const PROMETHEUS_RULE: &str = "config/prometheus/prometheusrule.yaml";
const POD_MONITORS: &str = "config/prometheus/podmonitors.yaml";
const DASHBOARD: &str = "config/grafana/oxelb-dashboard.json";
/// The manual's chapter holding the alerts' runbooks; each rule's `runbook` annotation names it.
const RUNBOOKS: &str = "docs/operations.md";

fn read(rel: &str) -> String {
    let path = workspace_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(rel: &str) -> Yaml {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The `oxelb_*` metric names in a PromQL expression or series selector.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(found) = text[i..].find("oxelb_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        if start == 0 || !ident(bytes[start - 1]) {
            out.insert(text[start..end].to_owned());
        }
        i = end.max(start + 1);
    }
    out
}

/// The strings of a YAML document under the keys `keys`, at any depth.
fn yaml_strings(value: &Yaml, keys: &[&str], out: &mut Vec<String>) {
    match value {
        Yaml::Mapping(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    (Some(k), Yaml::String(s)) if keys.contains(&k) => out.push(s.clone()),
                    _ => yaml_strings(v, keys, out),
                }
            }
        }
        Yaml::Sequence(seq) => seq.iter().for_each(|v| yaml_strings(v, keys, out)),
        _ => {}
    }
}

/// The strings of a JSON document under the keys `keys`, at any depth.
fn json_strings(value: &Json, keys: &[&str], out: &mut Vec<String>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                match v {
                    Json::String(s) if keys.contains(&k.as_str()) => out.push(s.clone()),
                    _ => json_strings(v, keys, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| json_strings(v, keys, out)),
        _ => {}
    }
}

/// The metric names each monitoring file refers to: rule and test expressions, test input series,
/// and the dashboard's queries. Keyed by file.
fn referenced_in(rules: &str, rule_tests: &str, dashboard: &str) -> BTreeMap<&'static str, BTreeSet<String>> {
    let from_yaml = |text: &str, keys: &[&str]| {
        let mut strings = Vec::new();
        yaml_strings(&serde_yaml::from_str(text).unwrap(), keys, &mut strings);
        strings
            .iter()
            .flat_map(|s| metric_names(s))
            .collect::<BTreeSet<_>>()
    };
    let mut dash = Vec::new();
    json_strings(
        &serde_json::from_str(dashboard).unwrap(),
        &["expr", "query", "definition"],
        &mut dash,
    );
    BTreeMap::from([
        (RULES, from_yaml(rules, &["expr"])),
        (RULE_TESTS, from_yaml(rule_tests, &["expr", "series"])),
        (DASHBOARD, dash.iter().flat_map(|s| metric_names(s)).collect()),
    ])
}

/// The names no binary exports, as `file: name` lines; empty when all exist.
fn unknown_metrics(
    referenced: &BTreeMap<&'static str, BTreeSet<String>>,
    exported: &BTreeSet<String>,
) -> Vec<String> {
    referenced
        .iter()
        .flat_map(|(file, names)| {
            names
                .iter()
                .filter(|n| !exported.contains(*n))
                .map(move |n| format!("{file}: {n}"))
        })
        .collect()
}

/// The series names of a Prometheus text exposition (`name{labels} value` and `name value` lines).
fn exposition_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn shipped_references() -> BTreeMap<&'static str, BTreeSet<String>> {
    referenced_in(&read(RULES), &read(RULE_TESTS), &read(DASHBOARD))
}

/// `promtool`, or `None` after saying why the checks skip (outside CI only: CI has it from
/// tests/run.sh, which installs the Debian package `prometheus`).
fn promtool(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: promtool is missing in CI (Debian package `prometheus`, installed by tests/run.sh)"
        );
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: promtool not found (apt-get install prometheus, or run tests/run.sh as root)"
        );
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

/// A process's stdout and stderr together (promtool reports failures on stderr).
fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let Some(promtool) = promtool("promtool_checks_the_rules_and_runs_their_unit_tests") else {
        return;
    };
    let checked = run_promtool(&promtool, &["check", "rules", RULES]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run_promtool(&promtool, &["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn promtool_fails_a_rule_test_whose_alert_does_not_fire() {
    // The unit tests can fail: the same tests against rules whose pool alert threshold was raised.
    let Some(promtool) = promtool("promtool_fails_a_rule_test_whose_alert_does_not_fire") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tests")).unwrap();
    let rules = read(RULES).replace(">= 0.9", ">= 0.99");
    std::fs::write(dir.path().join("oxelb.rules.yaml"), rules).unwrap();
    std::fs::write(dir.path().join("tests/t.yaml"), read(RULE_TESTS)).unwrap();
    let out = Command::new(promtool)
        .args(["test", "rules", "tests/t.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("OxelbPoolNearlyExhausted"), "{text}");
}

#[test]
fn the_prometheus_rule_carries_the_rule_file() {
    let rule = yaml(PROMETHEUS_RULE);
    assert_eq!(rule["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(rule["metadata"]["namespace"].as_str(), Some("oxelb-system"));
    assert_eq!(
        rule["spec"]["groups"],
        yaml(RULES)["groups"],
        "run `cargo run -p oxelb-crds --bin crdgen`"
    );
}

#[test]
fn pod_monitors_select_the_workloads_and_their_metrics_port() {
    let monitors: Vec<Yaml> = serde_yaml::Deserializer::from_str(&read(POD_MONITORS))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let workloads = [
        ("oxelb-controller", "config/controller/deployment.yaml"),
        ("oxelb-speaker", "config/speaker/daemonset.yaml"),
    ];
    assert_eq!(monitors.len(), workloads.len());
    for (name, workload) in workloads {
        let monitor = monitors
            .iter()
            .find(|m| m["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no PodMonitor {name}"));
        assert_eq!(monitor["kind"].as_str(), Some("PodMonitor"));
        assert_eq!(monitor["metadata"]["namespace"].as_str(), Some("oxelb-system"));
        let workload = yaml(workload);
        let pod_labels = workload["spec"]["template"]["metadata"]["labels"]
            .as_mapping()
            .unwrap();
        let selector = monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
        for (k, v) in selector {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "PodMonitor {name}: selector {k:?} does not match the pods"
            );
        }
        let ports: Vec<&str> = workload["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for endpoint in monitor["spec"]["podMetricsEndpoints"].as_sequence().unwrap() {
            let port = endpoint["port"].as_str().unwrap();
            assert!(
                ports.contains(&port),
                "PodMonitor {name}: port {port} not in {ports:?}"
            );
            assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
            let adds_node = endpoint["relabelings"]
                .as_sequence()
                .is_some_and(|r| r.iter().any(|r| r["targetLabel"].as_str() == Some("node")));
            assert!(
                adds_node,
                "PodMonitor {name}: the rules and dashboard need the `node` label"
            );
        }
        let job_label = monitor["spec"]["jobLabel"].as_str().unwrap();
        assert!(
            pod_labels.contains_key(job_label),
            "PodMonitor {name}: jobLabel {job_label}"
        );
    }
}

#[test]
fn every_alert_has_a_runbook_line_in_the_operations_chapter() {
    let chapter = read(RUNBOOKS);
    let section = chapter
        .split("\n## Alerts and their runbooks\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{RUNBOOKS} has no \"## Alerts and their runbooks\" section"));
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut names = Vec::new();
    yaml_strings(&yaml(RULES), &["alert"], &mut names);
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            section.contains(&format!("| `{name}` |")),
            "{RUNBOOKS}'s runbook table has no row for {name}"
        );
        let annotation = format!("{RUNBOOKS}, Alerts and their runbooks: {name}");
        assert!(read(RULES).contains(&annotation), "{name}: runbook annotation");
    }
    for file in [RULES, PROMETHEUS_RULE, RULE_TESTS] {
        for line in read(file)
            .lines()
            .filter(|l| l.trim_start().starts_with("runbook:"))
        {
            assert!(
                line.contains(&format!("\"{RUNBOOKS}, Alerts and their runbooks: ")),
                "{file}: a runbook annotation that does not point at {RUNBOOKS}: {line}"
            );
        }
    }
}

#[test]
fn the_dashboard_has_the_panels_an_operator_needs() {
    let dashboard: Json = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Pool usage per Eip and family",
        "Pending Services by reason",
        "BGP sessions per peer and node",
        "Layer2 answerers per IP",
        "Failovers (take-overs)",
        "API writes and conflicts",
        "Reconcile latency",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted:?} in {titles:?}");
    }
    let mut ids = BTreeSet::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "{title}: duplicate id");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                !metric_names(expr).is_empty(),
                "{title}: {expr} names no oxelb metric"
            );
        }
    }
}

#[test]
fn a_renamed_metric_fails_the_check_with_its_name() {
    let (rules, tests, dashboard) = (read(RULES), read(RULE_TESTS), read(DASHBOARD));
    // What the shipped files name counts as exported here; the real export is checked in the lab.
    let exported: BTreeSet<String> = shipped_references().into_values().flatten().collect();
    assert!(unknown_metrics(&referenced_in(&rules, &tests, &dashboard), &exported).is_empty());

    let renamed_rules = rules.replace("oxelb_pool_in_use", "oxelb_pool_used");
    assert_eq!(
        unknown_metrics(&referenced_in(&renamed_rules, &tests, &dashboard), &exported),
        [format!("{RULES}: oxelb_pool_used")]
    );
    let renamed_dashboard = dashboard.replace("oxelb_layer2_takeovers_total", "oxelb_layer2_failovers_total");
    assert_eq!(
        unknown_metrics(&referenced_in(&rules, &tests, &renamed_dashboard), &exported),
        [format!("{DASHBOARD}: oxelb_layer2_failovers_total")]
    );
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            "max by (pool) (oxelb_pool_in_use and on (instance) (oxelb_controller_leader == 1)) / x_oxelb_no"
        ),
        BTreeSet::from([
            "oxelb_pool_in_use".to_owned(),
            "oxelb_controller_leader".to_owned()
        ])
    );
    assert_eq!(
        exposition_names("# TYPE a counter\na_total{x=\"1\"} 3\nb 1\n\n"),
        BTreeSet::from(["a_total".to_owned(), "b".to_owned()])
    );
}

fn binaries() -> Binaries {
    Binaries::for_test(env!("CARGO_BIN_EXE_oxelb-lab")).unwrap_or_else(|e| panic!("{e}"))
}

const PENDING_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: waits\n  namespace: default\n  annotations:\n    lb.kubesphere.io/v1alpha1: openelb\n    eip.openelb.kubesphere.io/v1alpha2: no-such-pool\nspec:\n  type: LoadBalancer\n  ports: [{name: http, port: 80, protocol: TCP}]\n";

#[test]
fn every_metric_the_monitoring_names_is_exported_by_the_binaries() {
    let test = "every_metric_the_monitoring_names_is_exported_by_the_binaries";
    let Some(lab) = lab_or_skip(test).unwrap() else {
        return;
    };
    let mut cluster = LabCluster::build(lab, binaries(), &workspace_root().join("examples/lab")).unwrap();
    // A Service that cannot get an IP: pending and failure series exist only once there is one.
    cluster.put_object("waits.yaml", PENDING_SERVICE).unwrap();
    cluster.start_all().unwrap();
    let layer2 = cluster.wait_service_ips("default", "web-layer2").unwrap();
    let bgp = cluster.wait_service_ips("default", "web-bgp").unwrap();
    // Traffic: the LAN client resolves the layer2 IP (ARP counted), the router learns the BGP IP
    // from every node (sessions up, prefixes announced).
    cluster.wait_reachable(&cluster.lan_client, &layer2[0]).unwrap();
    let all: Vec<&str> = NODES.iter().map(|(_, ip)| *ip).collect();
    cluster.wait_next_hops(&bgp[0], &all).unwrap();

    let referenced = shipped_references();
    let outcome = wait_until(
        "every referenced metric exported",
        WAIT,
        Duration::from_millis(500),
        || {
            let mut exported = BTreeSet::new();
            let pages = std::iter::once(cluster.controller_metrics())
                .chain((0..NODES.len()).map(|i| cluster.speaker_metrics(i)));
            for page in pages {
                exported.extend(exposition_names(&page.map_err(|e| e.to_string())?));
            }
            let unknown = unknown_metrics(&referenced, &exported);
            if unknown.is_empty() {
                Ok(exported)
            } else {
                Err(format!(
                    "not exported by the controller or the speakers:\n  {}",
                    unknown.join("\n  ")
                ))
            }
        },
    );
    if outcome.is_err() {
        cluster.dump_logs(30);
    }
    let exported = outcome.unwrap();
    // The export really was read (not an empty page that a typo in the test would accept).
    assert!(exported.len() > 20, "{exported:?}");
}
