//! Checking objects against the CRD schemas oxelb installs (`config/crd/`).
//!
//! A typed round trip (see [`crate::manifest`]) proves the Rust types reproduce an object; this
//! proves the API server, which validates and prunes by the installed OpenAPI schema and not by the
//! Rust types, keeps every field of it. Shared by the tests of `examples/` and of the manual's YAML.

use std::collections::BTreeMap;
use std::path::Path;

use oxelb_crds::names;
use serde_json::Value;

use crate::manifest::{Document, LoadError, load_documents, workspace_root};

/// Why the installed schemas could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The CRD files could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A CRD document lacks a part every CRD has.
    #[error("{document}: {missing} is missing; config/crd/ is not a set of CRDs")]
    Malformed {
        /// The CRD document, as `path#index (apiVersion Kind name)`.
        document: String,
        /// The JSON pointer of the missing part.
        missing: String,
    },
}

/// Whether `api_version` is one of OpenELB's (`network.kubesphere.io/<version>`); returns the version.
pub fn openelb_version(api_version: &str) -> Option<&str> {
    api_version
        .strip_prefix(names::GROUP)
        .and_then(|rest| rest.strip_prefix('/'))
}

/// The OpenAPI schema of each kind in the CRDs oxelb installs, for one served `version`
/// (`v1alpha2`, `v1alpha1`), keyed by kind. A kind that does not serve `version` is left out.
pub fn installed_schemas(version: &str) -> Result<BTreeMap<String, Value>, SchemaError> {
    let crd_dir = workspace_root().join("config/crd");
    let mut schemas = BTreeMap::new();
    for doc in load_documents(&crd_dir, &|_: &Path| false)? {
        let malformed = |missing: &str| SchemaError::Malformed {
            document: doc.to_string(),
            missing: missing.to_string(),
        };
        let kind = doc
            .value
            .pointer("/spec/names/kind")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("/spec/names/kind"))?
            .to_string();
        let versions = doc
            .value
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("/spec/versions"))?;
        if let Some(served) = versions
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
        {
            let schema = served
                .pointer("/schema/openAPIV3Schema")
                .ok_or_else(|| malformed(&format!("/spec/versions/{version}/schema/openAPIV3Schema")))?;
            schemas.insert(kind, schema.clone());
        }
    }
    Ok(schemas)
}

/// Every place an OpenELB object does not fit the installed schema of its kind: the whole body but
/// `apiVersion`, `kind` and `metadata` (the API server's own, never pruned by a CRD schema) is
/// checked with [`schema_violations`].
pub fn object_violations(doc: &Document, schema: &Value) -> Vec<String> {
    let mut body = doc.value.clone();
    if let Some(map) = body.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    let mut violations = Vec::new();
    schema_violations("", &body, schema, &mut violations);
    violations
}

/// Appends a message for every place `value` does not fit the structural `schema`: a field the
/// API server would prune (not in `properties`), or a JSON type the schema does not allow.
pub fn schema_violations(pointer: &str, value: &Value, schema: &Value, out: &mut Vec<String>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

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
        let value = serde_json::json!({"spec": {"priority": "10", "adress": "192.0.2.1", "namespaceSelector": {"a": 1}}});
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

    #[test]
    fn both_served_versions_have_a_schema_for_every_kind() {
        for version in [names::VERSION_V1ALPHA2, names::VERSION_V1ALPHA1] {
            let schemas = installed_schemas(version).unwrap();
            let kinds: Vec<&str> = schemas.keys().map(String::as_str).collect();
            assert_eq!(
                kinds,
                vec![names::KIND_BGP_CONF, names::KIND_BGP_PEER, names::KIND_EIP],
                "{version}"
            );
        }
    }

    #[test]
    fn openelb_versions_are_recognised_by_group() {
        assert_eq!(openelb_version(names::API_VERSION_V1ALPHA2), Some("v1alpha2"));
        assert_eq!(openelb_version(names::API_VERSION_V1ALPHA1), Some("v1alpha1"));
        assert_eq!(openelb_version("v1"), None);
        assert_eq!(openelb_version("network.kubesphere.io.example/v1"), None);
    }
}
