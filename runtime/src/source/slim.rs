//! Decoding API objects without the parts no decision reads, instead of decoding them and
//! throwing them away.
//!
//! On a real apiserver every object carries `metadata.managedFields` (one entry per writer, each a
//! JSON tree of field names: several hundred bytes to kilobytes, decoded by k8s-openapi into a
//! `serde_json::Value` of many small maps) and often kubectl's last-applied annotation (a copy of
//! the whole object). [`trim_meta`](crate::shape::trim_meta) drops both once an object is decoded;
//! [`Slim`] never builds them: the JSON is skipped as it is read. At 10,000 Services that is tens
//! of thousands of short-lived allocations per list or burst less, and the fragmentation they leave.

use std::{borrow::Cow, fmt};

use kube::Resource;
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor, value::StrDeserializer},
};

use crate::shape::LAST_APPLIED_ANNOTATION;

/// An API object `K` decoded without `metadata.managedFields` and the last-applied annotation (see
/// the module docs); the same object as a plain decode followed by
/// [`trim_meta`](crate::shape::trim_meta).
#[derive(Clone, Debug, PartialEq)]
pub struct Slim<K>(pub K);

impl<K: Resource> Resource for Slim<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn url_path(dt: &Self::DynamicType, namespace: Option<&str>) -> String {
        K::url_path(dt, namespace)
    }

    fn meta(&self) -> &kube::api::ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        self.0.meta_mut()
    }
}

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Slim<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(Skipping {
            inner: deserializer,
            level: Level::Object,
        })
        .map(Slim)
    }
}

/// Where in the object a map is: what its keys mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// The object: `metadata` is descended into.
    Object,
    /// `metadata`: `managedFields` is skipped, `annotations` descended into.
    Metadata,
    /// `metadata.annotations`: the last-applied annotation is skipped.
    Annotations,
}

/// What to do with one key of a map at a [`Level`].
enum KeyAction {
    /// Skip the key and its value.
    Skip,
    /// Decode the value at this level.
    Descend(Level),
    /// Decode the value as it is.
    Keep,
}

impl Level {
    fn on_key(self, key: &str) -> KeyAction {
        match (self, key) {
            (Level::Object, "metadata") => KeyAction::Descend(Level::Metadata),
            (Level::Metadata, "managedFields") => KeyAction::Skip,
            (Level::Metadata, "annotations") => KeyAction::Descend(Level::Annotations),
            (Level::Annotations, LAST_APPLIED_ANNOTATION) => KeyAction::Skip,
            _ => KeyAction::Keep,
        }
    }
}

/// A deserializer that hands every map it meets at `level` to [`SkippingMap`].
struct Skipping<D> {
    inner: D,
    level: Level,
}

/// A visitor that wraps the map (or the `Some`) it is given in the same [`Level`].
struct SkippingVisitor<V> {
    inner: V,
    level: Level,
}

/// A map whose keys are filtered per [`Level::on_key`].
struct SkippingMap<A> {
    inner: A,
    level: Level,
    /// The level of the value that follows the key just returned, if it is descended into.
    value_level: Option<Level>,
}

/// Seeds the decode of one value at a [`Level`].
struct LevelSeed<S> {
    inner: S,
    level: Level,
}

macro_rules! forward_deserialize {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method(SkippingVisitor { inner: visitor, level: self.level })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Skipping<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit_struct(
            name,
            SkippingVisitor {
                inner: visitor,
                level: self.level,
            },
        )
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_newtype_struct(
            name,
            SkippingVisitor {
                inner: visitor,
                level: self.level,
            },
        )
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple(
            len,
            SkippingVisitor {
                inner: visitor,
                level: self.level,
            },
        )
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple_struct(
            name,
            len,
            SkippingVisitor {
                inner: visitor,
                level: self.level,
            },
        )
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            SkippingVisitor {
                inner: visitor,
                level: self.level,
            },
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_enum(
            name,
            variants,
            SkippingVisitor {
                inner: visitor,
                level: self.level,
            },
        )
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for SkippingVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char visit_str: &str
        visit_borrowed_str: &'de str visit_string: String visit_bytes: &[u8]
        visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Skipping {
            inner: deserializer,
            level: self.level,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Skipping {
            inner: deserializer,
            level: self.level,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(SkippingMap {
            inner: map,
            level: self.level,
            value_level: None,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// A map key as read: borrowed from the input when it can be.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v))
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkippingMap<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        loop {
            let Some(key) = self.inner.next_key_seed(KeySeed)? else {
                return Ok(None);
            };
            self.value_level = match self.level.on_key(key.as_str()) {
                KeyAction::Skip => {
                    // Read past the value without building it.
                    self.inner.next_value::<IgnoredAny>()?;
                    continue;
                }
                KeyAction::Descend(level) => Some(level),
                KeyAction::Keep => None,
            };
            return seed
                .deserialize(StrDeserializer::<A::Error>::new(key.as_str()))
                .map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.value_level.take() {
            Some(level) => self.inner.next_value_seed(LevelSeed { inner: seed, level }),
            None => self.inner.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for LevelSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Skipping {
            inner: deserializer,
            level: self.level,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
    use kube::{api::ObjectList, core::WatchEvent};

    use super::*;
    use crate::shape::trim_meta;

    /// A Service as a 1.28 apiserver sends it after `kubectl apply` and two controllers' writes.
    fn service_json() -> serde_json::Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "42", "uid": "u-1",
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\"}",
                    "lb.kubesphere.io/v1alpha1": "openelb"},
                "managedFields": [
                    {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}}}}}},
                    {"manager": "oxelb-controller", "operation": "Update", "subresource": "status",
                        "fieldsV1": {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}}],
                "finalizers": ["a/b"]},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
    }

    fn trimmed(value: serde_json::Value) -> Service {
        let mut plain: Service = serde_json::from_value(value).unwrap();
        trim_meta(&mut plain);
        plain
    }

    #[test]
    fn decodes_as_a_plain_decode_then_trim() {
        let text = service_json().to_string();
        let Slim(slim) = serde_json::from_str::<Slim<Service>>(&text).unwrap();
        assert_eq!(slim, trimmed(service_json()));
        assert_eq!(slim.metadata.managed_fields, None);
        assert_eq!(
            slim.metadata.annotations.as_ref().map(|a| a.len()),
            Some(1),
            "the other annotations stay"
        );
        assert_eq!(slim.metadata.labels.as_ref().map(|l| l.len()), Some(1));
        // From a value (kube buffers a watch event whose object precedes its type) as well.
        let Slim(from_value) = serde_json::from_value::<Slim<Service>>(service_json()).unwrap();
        assert_eq!(from_value, slim);
    }

    #[test]
    fn only_the_last_applied_annotation_goes_and_an_emptied_map_stays_empty() {
        let mut value = service_json();
        value["metadata"]["annotations"] = serde_json::json!({
            "kubectl.kubernetes.io/last-applied-configuration": "{}"});
        let Slim(slim) = serde_json::from_value::<Slim<Service>>(value).unwrap();
        // trim_meta turns an emptied map into None; a slim decode leaves an empty one, which
        // every reader treats alike. What matters is that nothing else is lost.
        assert!(slim.metadata.annotations.unwrap_or_default().is_empty());
        // A managedFields key elsewhere (not in metadata) is data, and is kept.
        let mut nested = service_json();
        nested["spec"]["selector"]["managedFields"] = serde_json::json!("x");
        let Slim(kept) = serde_json::from_value::<Slim<Service>>(nested).unwrap();
        assert_eq!(
            kept.spec
                .unwrap()
                .selector
                .unwrap()
                .get("managedFields")
                .map(String::as_str),
            Some("x")
        );
    }

    #[test]
    fn lists_and_watch_events_decode_through_it() {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "ServiceList",
            "metadata": {"resourceVersion": "7"}, "items": [service_json(), service_json()]});
        let decoded: ObjectList<Slim<Service>> = serde_json::from_str(&list.to_string()).unwrap();
        assert_eq!(decoded.items.len(), 2);
        assert!(
            decoded
                .items
                .iter()
                .all(|s| s.0.metadata.managed_fields.is_none())
        );
        for event in [
            serde_json::json!({"type": "MODIFIED", "object": service_json()}),
            serde_json::json!({"object": service_json(), "type": "ADDED"}),
        ] {
            let decoded: WatchEvent<Slim<Service>> = serde_json::from_str(&event.to_string()).unwrap();
            let (WatchEvent::Modified(Slim(s)) | WatchEvent::Added(Slim(s))) = decoded else {
                panic!("an object event");
            };
            assert_eq!(s, trimmed(service_json()));
        }
        // Other kinds: an EndpointSlice keeps its endpoints.
        let slice = serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "namespace": "default", "managedFields": [{"manager": "m"}]},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.9"], "nodeName": "n1"}]});
        let Slim(slice) = serde_json::from_str::<Slim<EndpointSlice>>(&slice.to_string()).unwrap();
        assert_eq!(slice.endpoints.len(), 1);
        assert_eq!(slice.metadata.managed_fields, None);
    }

    #[test]
    fn malformed_objects_are_errors_not_panics() {
        for text in [
            r#"{"metadata": {"managedFields": [}}"#,
            r#"{"metadata": 3}"#,
            r#"{"metadata": {"annotations": {"a": 1}}}"#,
            "[]",
        ] {
            assert!(serde_json::from_str::<Slim<Service>>(text).is_err(), "{text}");
        }
        // What is skipped is not checked: a malformed managedFields or last-applied value is
        // read past as any JSON, where a plain decode would refuse the whole object.
        let skipped = r#"{"metadata": {"name": "a", "managedFields": 1,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": 1}}}"#;
        let Slim(read) = serde_json::from_str::<Slim<Service>>(skipped).unwrap();
        assert_eq!(read.metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn resource_is_the_inner_kind() {
        assert_eq!(Slim::<Service>::kind(&()), "Service");
        assert_eq!(Slim::<Service>::api_version(&()), "v1");
        assert_eq!(
            Slim::<EndpointSlice>::url_path(&(), Some("ns")),
            "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
        );
    }
}
