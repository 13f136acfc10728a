//! The same scenario against both adapters, then adapter-specific tests.

use std::{collections::BTreeMap, time::Duration};

use ::kube::ResourceExt;
use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::{api::core::v1::Service, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use prometheus_client::{encoding::text::encode, registry::Registry};

use super::*;

pub(super) const WAIT: Duration = Duration::from_secs(10);

pub(super) fn svc(name: &str, label: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([("app".to_string(), label.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub(super) async fn next<K>(
    stream: &mut BoxStream<'static, Result<ObjectEvent<K>, SourceError>>,
) -> ObjectEvent<K> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("no event within the timeout")
        .expect("stream ended")
        .expect("stream error")
}

/// A fake "cluster" the scenario drives: objects applied before `start` are the initial set.
pub(super) trait Harness {
    async fn apply(&mut self, svc: Service);
    async fn delete(&mut self, svc: Service);
    async fn start(&mut self) -> ObjectSource;
}

fn summary(event: &ObjectEvent<Service>) -> String {
    let one = |s: &Service| {
        format!(
            "{}={}",
            s.name_any(),
            s.labels().get("app").cloned().unwrap_or_default()
        )
    };
    match event {
        ObjectEvent::Apply(s) => format!("apply {}", one(s)),
        ObjectEvent::Delete(s) => format!("delete {}", s.name_any()),
        ObjectEvent::Resync(all) => {
            let mut names: Vec<String> = all.iter().map(one).collect();
            names.sort();
            format!("resync {}", names.join(","))
        }
    }
}

fn gauge(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text.lines()
        .find(|l| l.starts_with("oxelb_source_objects{kind=\"Service\"}"))
        .unwrap_or_default()
        .to_owned()
}

/// Initial objects -> Resync; create, modify, delete -> Apply, Apply, Delete; metrics follow.
pub(super) async fn scenario(mut h: impl Harness) {
    h.apply(svc("a", "1")).await;
    h.apply(svc("b", "1")).await;
    let mut registry = Registry::default();
    let metrics = crate::metrics::SourceMetrics::register(&mut registry);
    let source = h.start().await.with_metrics(metrics);
    let mut stream = source.watch::<Service>();

    assert_eq!(summary(&next(&mut stream).await), "resync a=1,b=1");
    assert_eq!(gauge(&registry), "oxelb_source_objects{kind=\"Service\"} 2");

    h.apply(svc("c", "1")).await;
    assert_eq!(summary(&next(&mut stream).await), "apply c=1");
    h.apply(svc("c", "2")).await;
    assert_eq!(summary(&next(&mut stream).await), "apply c=2");
    assert_eq!(gauge(&registry), "oxelb_source_objects{kind=\"Service\"} 3");
    h.delete(svc("c", "2")).await;
    assert_eq!(summary(&next(&mut stream).await), "delete c");
    assert_eq!(gauge(&registry), "oxelb_source_objects{kind=\"Service\"} 2");

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("oxelb_source_events_total{kind=\"Service\",event=\"apply\"} 2"),
        "{text}"
    );
}

mod dir_source;
mod kube_source;
