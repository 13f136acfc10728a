//! Why a lab could not be built or a step failed.

use std::{path::PathBuf, time::Duration};

/// Why a lab could not be built or a step failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab cannot run on this machine; the test prints this and passes nothing.
    #[error("skipped: {0}")]
    Skip(String),
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}; last: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
        /// The last observation.
        last: String,
    },
    /// A file of the lab could not be written.
    #[error("lab file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An address outside the documentation ranges.
    #[error(
        "{0} is not in a documentation range (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)"
    )]
    NotDocumentation(String),
    /// A packet capture of the lab could not be read.
    #[error(transparent)]
    Capture(#[from] crate::pcap::PcapError),
    /// What a router or process reported lacks what the test needs (names what is missing).
    #[error("unexpected lab state: {0}")]
    Unexpected(String),
}
