//! Shaping objects on arrival: what an index keeps of each object, and which objects it keeps.
//!
//! Every object loses what no decision reads and what is large on a real apiserver
//! (`metadata.managedFields`, kubectl's `last-applied-configuration` annotation: together often
//! more than the rest of a Service) before it is buffered or indexed, so a list of 10,000 objects
//! never sits in memory whole. A binary can also give a per-kind [`Shape`] that trims further and
//! drops objects it never decides on: a dropped object that was indexed before is removed, exactly
//! as if it had been deleted.

use std::sync::Arc;

use futures::{StreamExt, stream::BoxStream};
use kube::Resource;

use crate::source::{ObjectEvent, SourceError};

/// kubectl's client-side-apply copy of the whole object, kept in an annotation.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Trims one object in place and says whether the index keeps it (`false`: not ours, drop it).
pub type Shape<K> = Arc<dyn Fn(&mut K) -> bool + Send + Sync>;

/// The shape that keeps every object and trims only [`trim_meta`]'s fields.
pub fn keep_all<K>() -> Shape<K> {
    Arc::new(|_: &mut K| true)
}

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

/// A shape as an index [`View`](crate::index::View) that keeps the (trimmed) object itself.
pub fn as_view<K: Resource + 'static>(shape: Shape<K>) -> crate::index::View<K, K> {
    Arc::new(move |mut obj: K| shape(&mut obj).then_some(obj))
}

/// [`trim_meta`], then `shape`: whether to keep `obj`.
pub fn apply_shape<K: Resource>(shape: &Shape<K>, obj: &mut K) -> bool {
    trim_meta(obj);
    shape(obj)
}

/// Shapes a stream of events: objects of a `Resync` are trimmed or left out, an `Apply` of an object
/// the shape drops becomes a `Delete` (it may have been kept before), a `Delete` is trimmed.
pub fn shape_events<K: Resource + Send + 'static>(
    stream: BoxStream<'static, Result<ObjectEvent<K>, SourceError>>,
    shape: Shape<K>,
) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
    stream
        .map(move |item| item.map(|event| shape_event(&shape, event)))
        .boxed()
}

/// Shapes one event (see [`shape_events`]).
pub fn shape_event<K: Resource>(shape: &Shape<K>, event: ObjectEvent<K>) -> ObjectEvent<K> {
    match event {
        ObjectEvent::Resync(mut all) => {
            all.retain_mut(|obj| apply_shape(shape, obj));
            ObjectEvent::Resync(all)
        }
        ObjectEvent::Apply(mut obj) => {
            if apply_shape(shape, &mut obj) {
                ObjectEvent::Apply(obj)
            } else {
                ObjectEvent::Delete(obj)
            }
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
    fn dropped_objects_leave_resyncs_and_applies_become_deletes() {
        let shape: Shape<Service> = Arc::new(|s: &mut Service| s.metadata.name.as_deref() != Some("drop"));
        let ObjectEvent::Resync(kept) = shape_event(
            &shape,
            ObjectEvent::Resync(vec![svc("keep", &[]), svc("drop", &[])]),
        ) else {
            panic!("a resync stays a resync");
        };
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].metadata.name.as_deref(), Some("keep"));
        assert_eq!(kept[0].metadata.managed_fields, None);
        assert!(matches!(
            shape_event(&shape, ObjectEvent::Apply(svc("drop", &[]))),
            ObjectEvent::Delete(_)
        ));
        assert!(matches!(
            shape_event(&shape, ObjectEvent::Apply(svc("keep", &[]))),
            ObjectEvent::Apply(_)
        ));
        let ObjectEvent::Delete(gone) = shape_event(&shape, ObjectEvent::Delete(svc("keep", &[]))) else {
            panic!("a delete stays a delete");
        };
        assert_eq!(gone.metadata.managed_fields, None);
    }
}
