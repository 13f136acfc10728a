use std::{path::Path, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, Node};
use pretty_assertions::assert_eq;
use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::source::dir::{DirSource, WriteRecord};

const POLL: Duration = Duration::from_millis(20);

struct DirHarness {
    dir: TempDir,
    /// The source's delivery delay (skewed-view labs); the scenario must hold with any.
    delay: Duration,
}

impl Harness for DirHarness {
    async fn apply(&mut self, svc: Service) {
        // Write then rename, as editors and `kubectl`-like tools do, so a poll never sees half a file.
        let path = self.dir.path().join(format!("{}.yaml", svc.name_any()));
        let tmp = self.dir.path().join(".tmp");
        std::fs::write(&tmp, serde_yaml::to_string(&svc).unwrap()).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    async fn delete(&mut self, svc: Service) {
        std::fs::remove_file(self.dir.path().join(format!("{}.yaml", svc.name_any()))).unwrap();
    }

    async fn start(&mut self) -> ObjectSource {
        ObjectSource::dir(
            DirSource::open_with_interval(self.dir.path(), POLL)
                .unwrap()
                .with_delay(self.delay),
        )
    }
}

#[tokio::test]
async fn dir_source_scenario() {
    scenario(DirHarness {
        dir: TempDir::new().unwrap(),
        delay: Duration::ZERO,
    })
    .await;
}

/// A delivery delay (labs' skewed views) changes when, never what or in which order, a watch sees.
#[tokio::test]
async fn dir_source_scenario_with_a_delivery_delay() {
    scenario(DirHarness {
        dir: TempDir::new().unwrap(),
        delay: Duration::from_millis(70),
    })
    .await;
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn open(dir: &Path) -> ObjectSource {
    ObjectSource::dir(DirSource::open_with_interval(dir, POLL).unwrap())
}

const MULTI: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: one
  namespace: apps
---
# no namespace: kubectl would use `default`
apiVersion: v1
kind: Service
metadata:
  name: two
status:
  loadBalancer:
    ingress: [{ip: 192.0.2.99}]
---
apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: example.invalid/v1
kind: Service
metadata:
  name: other-group
";

fn names<K: ::kube::Resource>(objs: &[K]) -> Vec<String> {
    let mut names: Vec<String> = objs
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.meta().namespace.as_deref().unwrap_or("-"),
                o.meta().name.as_deref().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    names
}

fn resync<K>(event: ObjectEvent<K>) -> Vec<K> {
    match event {
        ObjectEvent::Resync(objs) => objs,
        other => panic!("expected a resync, got {}", other.name()),
    }
}

#[tokio::test]
async fn multi_document_files_match_kinds_and_default_namespaces() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "sub/dir/all.yml", MULTI);
    write(
        dir.path(),
        "notes.txt",
        "apiVersion: v1\nkind: Service\nmetadata: {name: ignored}\n",
    );
    let source = open(dir.path());

    let services = resync(next(&mut source.watch::<Service>()).await);
    assert_eq!(names(&services), vec!["apps/one", "default/two"]);
    let two = services.iter().find(|s| s.name_any() == "two").unwrap();
    assert_eq!(
        two.status, None,
        "a manifest's status is ignored, as by the apiserver"
    );
    assert!(two.metadata.resource_version.is_some());
    assert_eq!(two.metadata.uid.as_ref().map(String::len), Some(36));

    let namespaces = resync(next(&mut source.watch::<Namespace>()).await);
    assert_eq!(names(&namespaces), vec!["-/apps"]);
}

#[tokio::test]
async fn malformed_file_is_skipped_and_keeps_previous_objects() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "good.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    );
    write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: [unclosed\n",
    );
    write(
        dir.path(),
        "typed.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n3}\nspec: {unschedulable: notabool}\n",
    );
    let source = open(dir.path());
    let mut stream = source.watch::<Node>();
    assert_eq!(names(&resync(next(&mut stream).await)), vec!["-/n1", "-/n2"]);

    // Breaking a good file keeps its objects (no Delete); other changes still come through.
    write(
        dir.path(),
        "good.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1\n",
    );
    write(
        dir.path(),
        "later.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n4}\n",
    );
    match next(&mut stream).await {
        ObjectEvent::Apply(node) => assert_eq!(node.name_any(), "n4"),
        other => panic!("expected apply n4, got {}", other.name()),
    }
    // Fixing the bad file brings its object.
    write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n5}\n",
    );
    match next(&mut stream).await {
        ObjectEvent::Apply(node) => assert_eq!(node.name_any(), "n5"),
        other => panic!("expected apply n5, got {}", other.name()),
    }
}

#[tokio::test]
async fn duplicate_definition_last_wins() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "a.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {v: a}}\n",
    );
    write(
        dir.path(),
        "b.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {v: b}}\n",
    );
    let nodes = resync(next(&mut open(dir.path()).watch::<Node>()).await);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].labels().get("v").map(String::as_str), Some("b"));
}

#[tokio::test]
async fn missing_directory_is_an_error() {
    let dir = TempDir::new().unwrap();
    let err = DirSource::open(&dir.path().join("nope")).err().unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn writes_are_overlaid_for_this_and_other_readers() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns, labels: {keep: k, drop: d}}\n",
    );
    let source = open(dir.path());
    let mut stream = source.watch::<Service>();
    let initial = resync(next(&mut stream).await);
    let rv = initial[0].resource_version();
    let writer = source.writer("oxelb-test");

    let status = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}});
    writer
        .patch_status::<Service>("web", Some("ns"), status.clone())
        .await
        .unwrap();
    let ObjectEvent::Apply(updated) = next(&mut stream).await else {
        panic!("expected apply")
    };
    assert_eq!(serde_json::to_value(&updated.status).unwrap(), status);
    assert_ne!(
        updated.resource_version(),
        rv,
        "resourceVersion changes with the content"
    );
    assert_eq!(updated.uid(), initial[0].uid(), "uid is stable");

    // A stale resourceVersion is a conflict; the current one succeeds.
    let patch = |rv: Option<String>| MetadataPatch {
        labels: BTreeMap::from([
            ("new".to_string(), Some("n".to_string())),
            ("drop".to_string(), None),
        ]),
        finalizers: Some(vec!["oxelb.example/test".into()]),
        resource_version: rv,
    };
    let err = writer
        .patch_metadata::<Service>("web", Some("ns"), patch(rv.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Conflict { .. }), "{err}");
    writer
        .patch_metadata::<Service>("web", Some("ns"), patch(updated.resource_version()))
        .await
        .unwrap();
    let ObjectEvent::Apply(labelled) = next(&mut stream).await else {
        panic!("expected apply")
    };
    let labels: Vec<(String, String)> = labelled.labels().clone().into_iter().collect();
    assert_eq!(
        labels,
        vec![("keep".into(), "k".into()), ("new".into(), "n".into())]
    );
    assert_eq!(labelled.finalizers(), ["oxelb.example/test".to_string()]);

    // Another process reading the same directory sees the same object.
    let other = resync(next(&mut open(dir.path()).watch::<Service>()).await);
    assert_eq!(other[0].labels(), labelled.labels());
    assert_eq!(other[0].status, labelled.status);
    assert_eq!(other[0].resource_version(), labelled.resource_version());

    // The store records the writes in order and the per-object result; the file is where documented.
    let store = writer.store().unwrap();
    let writes = store.writes().await;
    assert_eq!(writes.len(), 2);
    assert!(matches!(&writes[0], WriteRecord::Status { kind, .. } if kind == "Service"));
    assert!(matches!(&writes[1], WriteRecord::Metadata { .. }));
    let overlay = store.overlay::<Service>("web", Some("ns")).await.unwrap();
    assert_eq!(overlay.status, Some(status));
    assert!(dir.path().join("status/services.core/ns/web.yaml").is_file());
    assert!(
        dir.path().join("svc.yaml").is_file(),
        "user files are never touched"
    );
}

#[tokio::test]
async fn writes_to_missing_objects_fail() {
    let dir = TempDir::new().unwrap();
    let source = open(dir.path());
    let writer = source.writer("oxelb-test");
    let err = writer
        .patch_status::<Node>("nope", None, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::NotFound { .. }), "{err}");
    let err = writer
        .patch_status::<Service>("web", None, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::MissingNamespace { .. }), "{err}");
}

#[tokio::test]
async fn events_are_recorded_and_appended() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "n.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    );
    let source = open(dir.path());
    let node = resync(next(&mut source.watch::<Node>()).await).remove(0);
    let writer = source.writer("oxelb-test");
    let event = EventRecord::about(
        &node,
        EventType::Warning,
        "NoPool",
        "Allocate",
        Some("none".into()),
    );
    writer.publish_event(event.clone()).await.unwrap();
    assert_eq!(
        writer.store().unwrap().writes().await,
        vec![WriteRecord::Event(event)]
    );
    let text = std::fs::read_to_string(dir.path().join("status/events.yaml")).unwrap();
    assert!(text.contains("reason: NoPool"), "{text}");
}

#[tokio::test]
async fn unreadable_root_keeps_objects() {
    let parent = TempDir::new().unwrap();
    let root = parent.path().join("manifests");
    write(
        &root,
        "n.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    );
    let source = open(&root);
    let mut stream = source.watch::<Node>();
    assert_eq!(names(&resync(next(&mut stream).await)), vec!["-/n1"]);

    // The directory goes away (e.g. an unmounted volume): no Delete; when it is back, changes flow.
    std::fs::rename(&root, parent.path().join("away")).unwrap();
    tokio::time::sleep(POLL * 5).await;
    std::fs::rename(parent.path().join("away"), &root).unwrap();
    write(
        &root,
        "m.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n",
    );
    match next(&mut stream).await {
        ObjectEvent::Apply(node) => assert_eq!(node.name_any(), "n2"),
        other => panic!("expected apply n2, got {}", other.name()),
    }
}

#[tokio::test]
async fn only_changed_objects_are_reported() {
    let dir = TempDir::new().unwrap();
    let two = |b_label: &str, b_type: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: b, labels: {{v: {b_label}}}}}\nspec: {{type: {b_type}}}\n"
        )
    };
    let status = |ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: a, namespace: default}}\nstatus: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
        )
    };
    let ip_of = |s: &Service| {
        s.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .and_then(|i| i.first())
            .and_then(|i| i.ip.clone())
    };
    write(dir.path(), "all.yaml", &two("x", "LoadBalancer"));
    write(
        dir.path(),
        "status/services.core/default/a.yaml",
        &status("192.0.2.1"),
    );
    let source = open(dir.path());
    let mut stream = source.watch::<Service>();
    let initial = resync(next(&mut stream).await);
    assert_eq!(names(&initial), vec!["default/a", "default/b"]);
    assert_eq!(ip_of(&initial[0]).as_deref(), Some("192.0.2.1"));

    // A changed overlay: that object only (a change to another file is the next event).
    write(
        dir.path(),
        "status/services.core/default/a.yaml",
        &status("192.0.2.2"),
    );
    let ObjectEvent::Apply(a) = next(&mut stream).await else {
        panic!("expected apply a")
    };
    assert_eq!(
        (a.name_any(), ip_of(&a).as_deref()),
        ("a".into(), Some("192.0.2.2"))
    );
    // The manifest file rewritten with only b changed: a, rebuilt from the new file, is unchanged.
    write(dir.path(), "all.yaml", &two("y", "LoadBalancer"));
    let ObjectEvent::Apply(b) = next(&mut stream).await else {
        panic!("expected apply b")
    };
    assert_eq!(b.labels().get("v").map(String::as_str), Some("y"));
    // b no longer a valid Service: deleted, as last seen.
    write(dir.path(), "all.yaml", &two("z", "[not, a, string]"));
    let ObjectEvent::Delete(b) = next(&mut stream).await else {
        panic!("expected delete b")
    };
    assert_eq!(b.labels().get("v").map(String::as_str), Some("y"));
    // The overlay removed: a without status.
    std::fs::remove_file(dir.path().join("status/services.core/default/a.yaml")).unwrap();
    let ObjectEvent::Apply(a) = next(&mut stream).await else {
        panic!("expected apply a")
    };
    assert_eq!((a.name_any(), ip_of(&a)), ("a".into(), None));
    // A second reader agrees with the first on the resourceVersion.
    let other = resync(next(&mut open(dir.path()).watch::<Service>()).await);
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].resource_version(), a.resource_version());
}
