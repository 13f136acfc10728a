//! Loading multi-document YAML manifests and checking them strictly against typed objects.
//!
//! Strictness comes from a round trip: a document is deserialized into its typed object, serialized
//! back, and both are compared as JSON values. Serde ignores unknown fields when deserializing
//! (k8s-openapi and kube-derived types alike), so a misspelled field vanishes in the round trip and
//! the comparison names it. YAML comments are not part of the compared value.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// File extensions treated as YAML manifests.
const YAML_EXTENSIONS: [&str; 2] = ["yaml", "yml"];

/// One YAML document of a manifest file, as a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file the document came from.
    pub path: PathBuf,
    /// Position of the document in its file, counting from 0 (`---` separates documents).
    pub index: usize,
    /// The document's content; YAML comments are gone.
    pub value: Value,
}

impl Document {
    /// The document's `apiVersion`, if it is a string.
    pub fn api_version(&self) -> Option<&str> {
        self.value.get("apiVersion").and_then(Value::as_str)
    }

    /// The document's `kind`, if it is a string.
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }

    /// The document's `metadata.name`, if it is a string.
    pub fn name(&self) -> Option<&str> {
        self.value.pointer("/metadata/name").and_then(Value::as_str)
    }
}

impl fmt::Display for Document {
    /// `path#index (apiVersion Kind name)`: enough to find the document in the file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{} ({} {} {})",
            self.path.display(),
            self.index,
            self.api_version().unwrap_or("<no apiVersion>"),
            self.kind().unwrap_or("<no kind>"),
            self.name().unwrap_or("<no name>"),
        )
    }
}

/// Why the manifests under a directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A directory could not be listed.
    #[error("cannot list directory {path}: {source}; the manifests under it are not checked")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read manifest file {path}: {source}; its documents are not checked")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not valid YAML (or not representable as JSON, e.g. a non-string map key).
    #[error("document #{index} of {path} is not valid YAML: {source}; fix the file")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Position of the document in the file.
        index: usize,
        /// The parser's error, with line and column.
        source: serde_yaml::Error,
    },
}

/// Why a document does not survive the round trip through its typed object.
#[derive(Debug, thiserror::Error)]
pub enum RoundTripError {
    /// The document does not deserialize into the type (wrong field type, missing required field).
    #[error("{document} does not deserialize into {type_name}: {message}")]
    Deserialize {
        /// The document, as `path#index (apiVersion Kind name)`.
        document: String,
        /// The Rust type tried.
        type_name: &'static str,
        /// Serde's message.
        message: String,
    },
    /// The typed object cannot be serialized back (a bug in the type, not in the manifest).
    #[error("{document}: {type_name} cannot be serialized back to JSON: {message}")]
    Serialize {
        /// The document, as `path#index (apiVersion Kind name)`.
        document: String,
        /// The Rust type.
        type_name: &'static str,
        /// Serde's message.
        message: String,
    },
    /// Serializing the typed object gives a different document: a field was dropped (unknown or
    /// misspelled), added (a default the manifest does not state) or changed.
    #[error(
        "{document} is not reproduced by {type_name}; a field is misspelled, misplaced or not in the \
         schema:\n  {}",
        differences.join("\n  ")
    )]
    Mismatch {
        /// The document, as `path#index (apiVersion Kind name)`.
        document: String,
        /// The Rust type.
        type_name: &'static str,
        /// One line per difference, as `JSON pointer: manifest value -> round-tripped value`.
        differences: Vec<String>,
    },
}

/// The workspace root (the parent of this crate's directory), where `config/` and `examples/` are.
pub fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).to_path_buf()
}

/// Every YAML document in the `.yaml`/`.yml` files under `root`, recursively, in a stable order
/// (paths sorted, documents in file order). Directories for which `skip_dir` returns true are not
/// entered. Empty documents (a trailing `---`, a file of comments) are left out.
pub fn load_documents(root: &Path, skip_dir: &dyn Fn(&Path) -> bool) -> Result<Vec<Document>, LoadError> {
    let mut files = Vec::new();
    collect_yaml_files(root, skip_dir, &mut files)?;
    files.sort();

    let mut documents = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::ReadFile {
            path: path.clone(),
            source,
        })?;
        for (index, deserializer) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(deserializer).map_err(|source| LoadError::Yaml {
                path: path.clone(),
                index,
                source,
            })?;
            if !value.is_null() {
                documents.push(Document {
                    path: path.clone(),
                    index,
                    value,
                });
            }
        }
    }
    Ok(documents)
}

/// Deserializes `document` into `T`, serializes it back and requires the same JSON value.
/// Returns the typed object for further checks.
pub fn round_trip<T>(document: &Document) -> Result<T, RoundTripError>
where
    T: Serialize + DeserializeOwned,
{
    let type_name = std::any::type_name::<T>();
    let typed: T =
        serde_json::from_value(document.value.clone()).map_err(|error| RoundTripError::Deserialize {
            document: document.to_string(),
            type_name,
            message: error.to_string(),
        })?;
    let back = serde_json::to_value(&typed).map_err(|error| RoundTripError::Serialize {
        document: document.to_string(),
        type_name,
        message: error.to_string(),
    })?;
    let mut differences = Vec::new();
    json_differences("", &document.value, &back, &mut differences);
    if differences.is_empty() {
        Ok(typed)
    } else {
        Err(RoundTripError::Mismatch {
            document: document.to_string(),
            type_name,
            differences,
        })
    }
}

/// Appends one line per place where `expected` and `actual` differ, as
/// `JSON pointer: expected -> actual` (`<absent>` for a missing key or element).
fn json_differences(pointer: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{pointer}/{}", escape_pointer_token(key));
                match (e.get(key), a.get(key)) {
                    (Some(ev), Some(av)) => json_differences(&child, ev, av, out),
                    (Some(ev), None) => out.push(format!("{child}: {ev} -> <absent>")),
                    (None, Some(av)) => out.push(format!("{child}: <absent> -> {av}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for i in 0..e.len().max(a.len()) {
                let child = format!("{pointer}/{i}");
                match (e.get(i), a.get(i)) {
                    (Some(ev), Some(av)) => json_differences(&child, ev, av, out),
                    (Some(ev), None) => out.push(format!("{child}: {ev} -> <absent>")),
                    (None, Some(av)) => out.push(format!("{child}: <absent> -> {av}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() && e.is_f64() != a.is_f64() => {
            // `1.0` in YAML and `1` after a typed round trip are the same number to the API server.
        }
        _ if expected == actual => {}
        _ => {
            let at = if pointer.is_empty() { "/" } else { pointer };
            out.push(format!("{at}: {expected} -> {actual}"));
        }
    }
}

/// Escapes a map key as a JSON pointer token (RFC 6901 section 3: `~` -> `~0`, `/` -> `~1`).
fn escape_pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Recursively collects YAML files under `dir`.
fn collect_yaml_files(
    dir: &Path,
    skip_dir: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            if !skip_dir(&path) {
                collect_yaml_files(&path, skip_dir, out)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| YAML_EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn document(value: Value) -> Document {
        Document {
            path: PathBuf::from("inline.yaml"),
            index: 0,
            value,
        }
    }

    #[test]
    fn exact_document_round_trips() {
        let doc = document(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": "http"}]},
        }));
        let service: Service = round_trip(&doc).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("web"));
    }

    #[test]
    fn misspelled_field_is_reported_with_its_path() {
        let doc = document(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "loadBalancerIp": "192.0.2.1"},
        }));
        let error = round_trip::<Service>(&doc).unwrap_err();
        match &error {
            RoundTripError::Mismatch { differences, .. } => {
                assert_eq!(
                    differences,
                    &vec![r#"/spec/loadBalancerIp: "192.0.2.1" -> <absent>"#.to_string()]
                );
            }
            other => panic!("expected a mismatch, got {other}"),
        }
        assert!(
            error.to_string().contains("inline.yaml#0 (v1 Service web)"),
            "{error}"
        );
    }

    #[test]
    fn wrong_field_type_is_a_deserialize_error() {
        let doc = document(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": "eighty"}]},
        }));
        assert!(matches!(
            round_trip::<Service>(&doc),
            Err(RoundTripError::Deserialize { .. })
        ));
    }

    #[test]
    fn differences_name_every_path() {
        let mut out = Vec::new();
        json_differences(
            "",
            &json!({"a": [1, 2], "b/c": {"x": true}, "same": "s"}),
            &json!({"a": [1], "b/c": {"x": false}, "extra": 1.5, "same": "s"}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                "/a/1: 2 -> <absent>".to_string(),
                "/b~1c/x: true -> false".to_string(),
                "/extra: <absent> -> 1.5".to_string(),
            ]
        );
    }

    #[test]
    fn load_documents_reads_multi_document_files_recursively_and_skips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(dir.join("skipped")).unwrap();
        std::fs::write(dir.join("b.yaml"), "---\n# comment only\n---\nkind: B\n---\n").unwrap();
        std::fs::write(dir.join("sub/a.yml"), "kind: A1\n---\nkind: A2\n").unwrap();
        std::fs::write(dir.join("skipped/c.yaml"), "kind: C\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "kind: T\n").unwrap();

        let docs = load_documents(dir, &|p| p.ends_with("skipped")).unwrap();
        let kinds: Vec<(&str, usize)> = docs.iter().map(|d| (d.kind().unwrap(), d.index)).collect();
        assert_eq!(kinds, vec![("B", 1), ("A1", 0), ("A2", 1)]);
    }

    #[test]
    fn invalid_yaml_names_file_and_document() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("bad.yaml"), "kind: A\n---\nkind: [unclosed\n").unwrap();
        let error = load_documents(tmp.path(), &|_| false).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("document #1 of") && message.contains("bad.yaml"),
            "{message}"
        );
    }
}
