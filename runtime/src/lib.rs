//! Shared runtime for the oxelb binaries: the object source (Kubernetes API or a YAML directory),
//! the per-kind index fed by it, command-line flags, logging, metrics and the health server.
//!
//! Both binaries read their objects only through [`source::ObjectSource`] and write only through
//! [`source::Writer`], so the deciding code cannot tell a cluster from a directory of manifests
//! (see DESIGN.md, "Standalone source").

pub mod app;
pub mod cli;
pub mod feed;
pub mod index;
pub mod metrics;
pub mod object;
pub mod serve;
pub mod shape;
pub mod shutdown;
pub mod source;
pub mod telemetry;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use object::{Object, ObjectKey};
pub use source::{ObjectEvent, ObjectSource, SourceError, WriteError, Writer};
