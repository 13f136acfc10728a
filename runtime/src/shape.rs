//! Trimming objects on arrival: every object loses what no decision reads and what is large on a
//! real apiserver (`metadata.managedFields`, kubectl's `last-applied-configuration` annotation:
//! together often more than the rest of a Service) before it is buffered or indexed. Watches of the
//! API skip both while decoding ([`crate::source::slim`]); [`trim_meta`] is the same cut on an
//! object already decoded (the `dir:` source's). What a binary keeps beyond that is its own
//! compact view of each object ([`crate::index::View`]).

use futures::{StreamExt, stream::BoxStream};
use kube::Resource;

use crate::source::{error::SourceError, event::ObjectEvent};

/// kubectl's client-side-apply copy of the whole object, kept in an annotation.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops the metadata nothing in oxelb reads: `managedFields` and the last-applied annotation
/// (an empty annotation map becomes `None`, as the apiserver sends it).
pub fn trim_meta<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// [`trim_meta`] on every object of a stream of events.
pub fn trim_events<K: Resource + Send + 'static>(
    stream: BoxStream<'static, Result<ObjectEvent<K>, SourceError>>,
) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
    stream.map(|item| item.map(trim_event)).boxed()
}

/// [`trim_meta`] on every object of one event.
pub fn trim_event<K: Resource>(event: ObjectEvent<K>) -> ObjectEvent<K> {
    match event {
        ObjectEvent::Resync(mut all) => {
            all.iter_mut().for_each(trim_meta);
            ObjectEvent::Resync(all)
        }
        ObjectEvent::Apply(mut obj) => {
            trim_meta(&mut obj);
            ObjectEvent::Apply(obj)
        }
        ObjectEvent::Delete(mut obj) => {
            trim_meta(&mut obj);
            ObjectEvent::Delete(obj)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::Service,
        apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta},
    };

    use super::*;

    fn svc(name: &str, annotations: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..Default::default()
                }]),
                annotations: (!annotations.is_empty()).then(|| {
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn trims_managed_fields_and_last_applied_only() {
        let mut a = svc("a", &[(LAST_APPLIED_ANNOTATION, "{...}"), ("keep", "me")]);
        trim_meta(&mut a);
        assert_eq!(a.metadata.managed_fields, None);
        let annotations = a.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations.get("keep").map(String::as_str), Some("me"));

        let mut b = svc("b", &[(LAST_APPLIED_ANNOTATION, "{...}")]);
        trim_meta(&mut b);
        assert_eq!(b.metadata.annotations, None, "an emptied map is dropped");
    }

    #[test]
    fn every_event_is_trimmed() {
        let ObjectEvent::Resync(all) = trim_event(ObjectEvent::Resync(vec![svc("a", &[]), svc("b", &[])]))
        else {
            panic!("a resync stays a resync");
        };
        assert!(all.iter().all(|s| s.metadata.managed_fields.is_none()));
        let ObjectEvent::Apply(applied) =
            trim_event(ObjectEvent::Apply(svc("a", &[(LAST_APPLIED_ANNOTATION, "{}")])))
        else {
            panic!("an apply stays an apply");
        };
        assert_eq!(applied.metadata.managed_fields, None);
        assert_eq!(applied.metadata.annotations, None);
        let ObjectEvent::Delete(gone) = trim_event(ObjectEvent::Delete(svc("a", &[]))) else {
            panic!("a delete stays a delete");
        };
        assert_eq!(gone.metadata.managed_fields, None);
    }
}
