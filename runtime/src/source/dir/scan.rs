//! Reading the directory: manifests (split into documents) and the status overlays.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use crate::object::ObjectKey;

/// The subdirectory of the source directory that holds the writer's overlays (never manifests).
pub const STATUS_DIR: &str = "status";
/// The file in [`STATUS_DIR`] where Events are appended (not an overlay).
pub const EVENTS_FILE: &str = "events.yaml";

/// One YAML document of a manifest file, kept compact: the fields that identify the object, and
/// the document as JSON text (a parsed `serde_json::Value` costs about ten times as much memory:
/// every map is a B-tree node of its own), parsed again only when the object is built.
#[derive(Debug)]
pub(crate) struct Document {
    /// The file it came from (shared by all documents of the file).
    pub file: Arc<Path>,
    /// The 1-based line where the document starts.
    pub line: usize,
    /// `apiVersion`, when it is a string.
    pub api_version: Option<Box<str>>,
    /// `kind`, when it is a string.
    pub kind: Option<Box<str>>,
    /// `metadata.name`, when it is a string.
    pub name: Option<Box<str>>,
    /// `metadata.namespace`, when it is a string.
    pub namespace: Option<Box<str>>,
    /// The document as compact JSON.
    json: Box<str>,
}

impl Document {
    fn new(file: &Arc<Path>, line: usize, value: &Value) -> Result<Self, serde_json::Error> {
        let text = |v: &Value| v.as_str().map(Box::from);
        Ok(Self {
            file: file.clone(),
            line,
            api_version: text(&value["apiVersion"]),
            kind: text(&value["kind"]),
            name: text(&value["metadata"]["name"]),
            namespace: text(&value["metadata"]["namespace"]),
            json: serde_json::to_string(value)?.into_boxed_str(),
        })
    }

    /// The document as a JSON value.
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// What the writer stored for one object: overlaid on the object's manifest by every dir source
/// reading the directory, as the apiserver would have stored it.
///
/// File format (`PATH/status/<plural>.<group>/<namespace>/<name>.yaml`, or without the namespace
/// level for cluster-scoped kinds; `core` for the core group):
/// ```yaml
/// apiVersion: v1
/// kind: Service
/// metadata:
///   name: web
///   namespace: default
///   labels: {a: "x", b: null}   # merged over the manifest's labels; null removes a label
///   finalizers: [f]              # replaces the manifest's finalizers when present
/// status: {...}                  # replaces the manifest's status (which is ignored, as by the apiserver)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overlay {
    /// The object's apiVersion.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// Name, namespace, labels and finalizers.
    pub metadata: OverlayMeta,
    /// The object's status, when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// The metadata part of an [`Overlay`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels set (`Some`) or removed (`None`) by the writer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Option<String>>,
    /// The finalizers, when the writer set them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
}

/// Identifies the object an overlay belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OverlayKey {
    pub api_version: String,
    pub kind: String,
    pub object: ObjectKey,
}

impl Overlay {
    pub(crate) fn key(&self) -> OverlayKey {
        OverlayKey {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            object: ObjectKey {
                namespace: self.metadata.namespace.clone(),
                name: self.metadata.name.clone(),
            },
        }
    }
}

/// An overlay as the scanner keeps it: the status as compact JSON text (see [`Document`]); the
/// apiVersion and kind are in its [`OverlayKey`].
#[derive(Debug)]
pub(crate) struct StoredOverlay {
    /// Name, namespace, labels and finalizers.
    pub metadata: OverlayMeta,
    status: Option<Box<str>>,
}

impl StoredOverlay {
    fn new(overlay: Overlay) -> Result<(OverlayKey, Self), serde_json::Error> {
        let key = overlay.key();
        let status = match &overlay.status {
            Some(status) => Some(serde_json::to_string(status)?.into_boxed_str()),
            None => None,
        };
        Ok((
            key,
            Self {
                metadata: overlay.metadata,
                status,
            },
        ))
    }

    /// The status, when written.
    pub fn status(&self) -> Result<Option<Value>, serde_json::Error> {
        self.status.as_deref().map(serde_json::from_str).transpose()
    }

    /// The overlay as read from its file (`key` is the one it is stored under).
    pub fn to_overlay(&self, key: &OverlayKey) -> Result<Overlay, serde_json::Error> {
        Ok(Overlay {
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            metadata: self.metadata.clone(),
            status: self.status()?,
        })
    }
}

/// Everything read from the directory at one moment. Documents and overlays are shared with the
/// scanner's cache and with the previous snapshots: a file that did not change keeps the same
/// `Arc`s, so a reader can tell an unchanged object by pointer without building it.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// All documents of all manifest files, in path order then file order.
    pub documents: Vec<Arc<Document>>,
    /// The overlays by object.
    pub overlays: BTreeMap<Arc<OverlayKey>, Arc<StoredOverlay>>,
}

/// An overlay file's content: the object it belongs to and the overlay.
type KeyedOverlay = (Arc<OverlayKey>, Arc<StoredOverlay>);

struct CachedFile<T> {
    content: Vec<u8>,
    parsed: T,
}

/// Scans the directory, re-parsing only files whose content changed.
pub(crate) struct Scanner {
    root: PathBuf,
    manifests: BTreeMap<PathBuf, CachedFile<Vec<Arc<Document>>>>,
    overlays: BTreeMap<PathBuf, CachedFile<Option<KeyedOverlay>>>,
    scanned: bool,
    /// Paths that could not be read in the last scan, so each problem is logged once, not every poll.
    unreadable: HashSet<PathBuf>,
}

impl Scanner {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            manifests: BTreeMap::new(),
            overlays: BTreeMap::new(),
            scanned: false,
            unreadable: HashSet::new(),
        }
    }

    /// Reads the directory; returns a snapshot when anything changed since the last call (always on
    /// the first call).
    pub(crate) fn scan(&mut self) -> Option<Snapshot> {
        let mut unreadable = HashSet::new();
        // An unreadable root (unmounted, permissions) is not "every file was deleted": keep the
        // last snapshot until it is readable again.
        if let Err(error) = fs::read_dir(&self.root) {
            if !self.unreadable.contains(&self.root) {
                warn!(dir = %self.root.display(), %error, "cannot read the source directory; keeping the objects read before");
            }
            unreadable.insert(self.root.clone());
            self.unreadable = unreadable;
            return None;
        }
        let status_dir = self.root.join(STATUS_DIR);
        let mut manifest_files = Vec::new();
        collect_yaml_files(
            &self.root,
            Some(&status_dir),
            0,
            &mut manifest_files,
            &mut unreadable,
        );
        let mut overlay_files = Vec::new();
        if status_dir.is_dir() {
            collect_yaml_files(&status_dir, None, 0, &mut overlay_files, &mut unreadable);
        }
        overlay_files.retain(|p| p != &status_dir.join(EVENTS_FILE));

        let mut changed = !self.scanned;
        changed |= refresh(
            &mut self.manifests,
            &manifest_files,
            &mut unreadable,
            |path, text, previous: Option<&Vec<Arc<Document>>>| match parse_documents(path, text) {
                Ok(docs) => docs,
                Err(SyntaxError { line, message }) => {
                    warn!(file = %path.display(), line, error = %message,
                        "malformed YAML; keeping this file's previous objects (none if it never parsed)");
                    previous.cloned().unwrap_or_default()
                }
            },
        );
        changed |= refresh(
            &mut self.overlays,
            &overlay_files,
            &mut unreadable,
            |path, text, previous| match serde_yaml::from_str::<Overlay>(text).map(StoredOverlay::new) {
                Ok(Ok((key, overlay))) => Some((Arc::new(key), Arc::new(overlay))),
                Ok(Err(error)) => {
                    warn!(file = %path.display(), %error, "status overlay cannot be represented as JSON; keeping the previous one");
                    previous.cloned().flatten()
                }
                Err(error) => {
                    let line = error.location().map(|l| l.line());
                    warn!(file = %path.display(), line, %error, "malformed status overlay; keeping the previous one");
                    previous.cloned().flatten()
                }
            },
        );
        for path in unreadable.difference(&self.unreadable) {
            warn!(path = %path.display(), "cannot read; keeping what was read from it before (logged once)");
        }
        self.unreadable = unreadable;
        self.scanned = true;
        changed.then(|| Snapshot {
            documents: self
                .manifests
                .values()
                .flat_map(|f| f.parsed.iter().cloned())
                .collect(),
            overlays: self.overlays.values().filter_map(|f| f.parsed.clone()).collect(),
        })
    }
}

/// Updates `cache` to the current contents of `files`; returns whether anything changed.
fn refresh<T>(
    cache: &mut BTreeMap<PathBuf, CachedFile<T>>,
    files: &[PathBuf],
    unreadable: &mut HashSet<PathBuf>,
    parse: impl Fn(&Path, &str, Option<&T>) -> T,
) -> bool {
    let mut changed = false;
    let before = cache.len();
    let listed: HashSet<&PathBuf> = files.iter().collect();
    cache.retain(|path, _| listed.contains(path));
    changed |= cache.len() != before;
    // One buffer for every read: most files did not change, and their content is only compared.
    let mut buf = Vec::new();
    for path in files {
        buf.clear();
        if let Err(error) = fs::File::open(path).and_then(|mut file| file.read_to_end(&mut buf)) {
            // Deleted between listing and reading, or unreadable: keep what we had.
            if error.kind() != std::io::ErrorKind::NotFound {
                unreadable.insert(path.clone());
            }
            continue;
        }
        if cache.get(path).is_some_and(|c| c.content == buf) {
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let parsed = parse(path, &text, cache.get(path).map(|c| &c.parsed));
        let content = buf.clone();
        match cache.get_mut(path) {
            Some(cached) => *cached = CachedFile { content, parsed },
            None => {
                cache.insert(path.clone(), CachedFile { content, parsed });
            }
        }
        changed = true;
    }
    changed
}

/// How deep the scan descends; also stops symlink loops.
const MAX_DEPTH: usize = 16;

/// Appends the `*.yaml`/`*.yml` files under `dir` (recursively, sorted, skipping hidden entries and
/// `skip`) to `out`; directories that cannot be read go to `unreadable`.
fn collect_yaml_files(
    dir: &Path,
    skip: Option<&Path>,
    depth: usize,
    out: &mut Vec<PathBuf>,
    unreadable: &mut HashSet<PathBuf>,
) {
    if depth > MAX_DEPTH {
        unreadable.insert(dir.to_owned());
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        unreadable.insert(dir.to_owned());
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden || Some(path.as_path()) == skip {
            continue;
        }
        if path.is_dir() {
            collect_yaml_files(&path, skip, depth + 1, out, unreadable);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// A YAML syntax error and its 1-based line in the file.
#[derive(Debug)]
struct SyntaxError {
    line: usize,
    message: String,
}

/// Splits a multi-document file into documents (JSON values). `List` documents (`kind: List`,
/// `kind: ServiceList`, ...) are expanded into their items, as kubectl does. Empty documents are
/// dropped; a document that is not a mapping is logged and dropped; a syntax error fails the file.
fn parse_documents(path: &Path, text: &str) -> Result<Vec<Arc<Document>>, SyntaxError> {
    let file: Arc<Path> = Arc::from(path);
    let mut docs = Vec::new();
    let mut push = |line: usize, value: &Value| match Document::new(&file, line, value) {
        Ok(doc) => docs.push(Arc::new(doc)),
        Err(error) => {
            warn!(file = %path.display(), line, %error, "document cannot be represented as JSON; skipped");
        }
    };
    for (line, chunk) in split_documents(text) {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&chunk).map_err(|e| SyntaxError {
            line: line + e.location().map_or(0, |l| l.line().saturating_sub(1)),
            message: e.to_string(),
        })?;
        if yaml.is_null() {
            continue;
        }
        let value: Value = match serde_json::to_value(&yaml) {
            Ok(value) => value,
            Err(error) => {
                warn!(file = %path.display(), line, %error, "document cannot be represented as JSON; skipped");
                continue;
            }
        };
        if !value.is_object() {
            warn!(file = %path.display(), line, "document is not a mapping; skipped");
            continue;
        }
        let is_list =
            value["kind"].as_str().is_some_and(|k| k.ends_with("List")) && value["items"].is_array();
        if is_list {
            for item in value["items"].as_array().into_iter().flatten() {
                push(line, item);
            }
        } else {
            push(line, &value);
        }
    }
    Ok(docs)
}

/// Splits on `---` separator lines; returns each document's first line (1-based) and text.
/// Kubernetes manifests never have `---` at column 0 inside a document (block scalars are indented).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let is_separator = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_separator {
            out.push((start, std::mem::take(&mut current)));
            start = i + 2;
            // `--- {inline: doc}` carries content on the separator line.
            let rest = line[3..].trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                current.push_str(rest);
                current.push('\n');
                start = i + 1;
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    out.push((start, current));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let text = "a: 1\n---\n# c\nb: 2\n--- \n\n---\nc: 3\n";
        let docs = parse_documents(Path::new("f.yaml"), text).unwrap();
        let got: Vec<(usize, String)> = docs
            .iter()
            .map(|d| (d.line, d.value().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, r#"{"a":1}"#.into()),
                (3, r#"{"b":2}"#.into()),
                (8, r#"{"c":3}"#.into())
            ]
        );
    }

    #[test]
    fn syntax_error_reports_the_file_line() {
        let text = "a: 1\n---\nb: 2\nc: [unclosed\n";
        let err = parse_documents(Path::new("f.yaml"), text).unwrap_err();
        assert!((4..=5).contains(&err.line), "line {}", err.line);
    }

    #[test]
    fn lists_are_expanded() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {kind: A}\n- {kind: B}\n";
        let docs = parse_documents(Path::new("f.yaml"), text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].kind.as_deref(), Some("B"));
    }
}
