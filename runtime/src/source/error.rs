//! Why reading from or writing to a source failed: [`SourceError`] and [`WriteError`].
//!
//! A leaf module, beneath the adapters and the index, so that each of them names these errors
//! without importing the source module itself.

use std::path::PathBuf;

/// Why the source could not be opened or a watch failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `--source kube` but no kubeconfig or in-cluster configuration could be loaded.
    #[error("--source kube: cannot build a Kubernetes client ({source}); set KUBECONFIG or run in a pod")]
    Client {
        /// The kube client error.
        #[source]
        source: ::kube::Error,
    },
    /// `--source dir:PATH` names something that is not a readable directory.
    #[error("--source dir:{path}: not a readable directory ({source}); create it or fix the path")]
    DirNotFound {
        /// The directory given.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The kube watcher reported an error; the stream retries with backoff on the next poll.
    #[error("watch of {kind} failed ({source}); retrying with backoff")]
    Watch {
        /// The kind being watched.
        kind: String,
        /// The watcher error.
        #[source]
        source: ::kube::runtime::watcher::Error,
    },
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The object changed since it was read (HTTP 409, or a stale `resourceVersion` in dir mode):
    /// re-read it and retry.
    #[error(
        "{kind} {object}: conflict, the object changed since resourceVersion {resource_version:?} was read; re-read and retry"
    )]
    Conflict {
        /// The kind written.
        kind: String,
        /// namespace/name.
        object: String,
        /// The precondition given, if any.
        resource_version: Option<String>,
    },
    /// The object does not exist (HTTP 404, or not in the directory).
    #[error("{kind} {object}: not found, nothing written")]
    NotFound {
        /// The kind written.
        kind: String,
        /// namespace/name.
        object: String,
    },
    /// A namespaced kind was written without a namespace.
    #[error("{kind} {name}: namespaced kind written without a namespace, nothing written")]
    MissingNamespace {
        /// The kind written.
        kind: String,
        /// The name.
        name: String,
    },
    /// The apiserver refused the write or could not be reached.
    #[error("{kind} {object}: {what} failed ({source}); nothing written")]
    Api {
        /// The kind written.
        kind: String,
        /// namespace/name.
        object: String,
        /// Which write (`patch status`, `patch metadata`, `publish event`).
        what: &'static str,
        /// The kube error.
        #[source]
        source: Box<::kube::Error>,
    },
    /// The dir store could not write its file.
    #[error("cannot write {path} ({source}); the write is kept in memory only")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl WriteError {
    /// The apiserver refused the write for its size: the request body is over its limit (HTTP
    /// 413), or the object it would store is over etcd's (`etcdserver: request is too large`, an
    /// HTTP 500). The same write can never succeed; retrying it is pointless until it changes.
    pub fn is_too_large(&self) -> bool {
        match self {
            WriteError::Api { source, .. } => match source.as_ref() {
                ::kube::Error::Api(status) => {
                    status.code == 413 || status.message.contains("request is too large")
                }
                _ => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> WriteError {
        let status = ::kube::core::Status {
            code,
            message: message.to_owned(),
            ..Default::default()
        };
        WriteError::Api {
            kind: "Eip".into(),
            object: "pool".into(),
            what: "patch status",
            source: Box::new(::kube::Error::Api(Box::new(status))),
        }
    }

    #[test]
    fn only_a_size_refusal_is_too_large() {
        assert!(api(413, "Request entity too large: limit is 3145728").is_too_large());
        assert!(api(500, "etcdserver: request is too large").is_too_large());
        assert!(!api(500, "etcdserver: leader changed").is_too_large());
        assert!(!api(503, "the server is currently unable to handle the request").is_too_large());
        let conflict = WriteError::Conflict {
            kind: "Eip".into(),
            object: "pool".into(),
            resource_version: None,
        };
        assert!(!conflict.is_too_large());
    }
}
