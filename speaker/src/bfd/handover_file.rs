//! The BFD hand-over file: a stopping speaker writes its sessions' snapshots to the state
//! directory, the next process reads them once (see the parent module and `oxelb_bfd::handover`).

use std::{path::Path, time::Duration};

use oxelb_bfd::handover::Handover;
use tracing::{debug, info, warn};

/// Where and how a stopping speaker hands its BFD sessions to the next process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverSettings {
    /// The state directory (`--state-dir`; a host directory on tmpfs, so a reboot forgets it).
    pub state_dir: std::path::PathBuf,
    /// The restart window (`--bfd-restart-window-ms`): the Detection Time the peers get while
    /// the speaker restarts. Zero turns the hand-over off: a stopping speaker then sends
    /// AdminDown, as before.
    pub window: Duration,
    /// This node.
    pub node: String,
}

/// The hand-over file in the state directory.
pub const HANDOVER_FILE: &str = "bfd-handover.json";

/// Why the hand-over file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Reading, writing or renaming failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Serialization failed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Milliseconds since the Unix epoch (the hand-over's clock: two processes read it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `handover` to `dir`/[`HANDOVER_FILE`] atomically (a temporary file renamed over it),
/// so the next process reads all of it or nothing.
pub fn store_handover(dir: &Path, handover: &Handover) -> Result<(), HandoverError> {
    let path = dir.join(HANDOVER_FILE);
    let text = serde_json::to_vec_pretty(handover).map_err(|source| HandoverError::Json {
        path: path.clone(),
        source,
    })?;
    oxelb_runtime::source::dir::write_atomically(&path, text)
        .map_err(|source| HandoverError::Io { path, source })
}

/// Reads and removes `dir`/[`HANDOVER_FILE`], and returns it when node `node` may continue its
/// sessions at `now_unix_ms`; otherwise logs why not (naming the file) and returns `None`.
pub fn load_handover(dir: &Path, node: &str, now_unix_ms: u64) -> Option<Handover> {
    let path = dir.join(HANDOVER_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            debug!(file = %path.display(), "no BFD hand-over from a previous speaker process");
            return None;
        }
        Err(error) => {
            warn!(file = %path.display(), %error, "BFD hand-over not read: sessions start afresh");
            return None;
        }
    };
    // Used once at most: a later start must not continue sessions from an older process.
    if let Err(error) = std::fs::remove_file(&path) {
        warn!(file = %path.display(), %error, "cannot remove the BFD hand-over file");
    }
    let handover: Handover = match serde_json::from_slice(&text) {
        Ok(h) => h,
        Err(error) => {
            warn!(file = %path.display(), %error, "BFD hand-over is corrupt: ignored, sessions start afresh");
            return None;
        }
    };
    match handover.check(node, now_unix_ms) {
        Ok(()) => {
            info!(file = %path.display(), sessions = handover.sessions.len(), age_ms = now_unix_ms.saturating_sub(handover.written_unix_ms),
                "BFD hand-over from the previous speaker process");
            Some(handover)
        }
        Err(reason) => {
            warn!(file = %path.display(), %reason, "BFD hand-over ignored: sessions start afresh");
            None
        }
    }
}

#[cfg(test)]
mod tests;
