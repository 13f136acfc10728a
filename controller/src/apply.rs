//! Applies a pass's [`Action`]s through the runtime's [`Writer`]: the thin I/O adapter around
//! [`crate::reconcile`].
//!
//! - Every write first asks [`Leadership::may_write`]: a replica past its fence writes nothing.
//! - A write whose decision rests on the same `resourceVersion` and has the same payload as one
//!   already made is skipped: the watch has not delivered our own write yet, and repeating it
//!   would cost an API call (or a 409, for preconditioned metadata patches).
//! - A 409 is never overwritten: the action is dropped, and the loop re-reads (its next pass sees
//!   the object as it now is) and decides again.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Service;
use oxelb_crds::v1alpha2::Eip;
use oxelb_runtime::source::{WriteError, Writer};
use tracing::{debug, warn};

use crate::{
    leader::Leadership,
    metrics::ControllerMetrics,
    reconcile::{Action, Target},
};

/// What applying one pass's actions came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// Writes made (Events included).
    pub written: usize,
    /// Writes skipped because the same write on the same `resourceVersion` was already made.
    pub skipped: usize,
    /// Writes refused with a conflict (re-read and decided again on the next pass).
    pub conflicts: usize,
    /// Writes that failed otherwise (retried with backoff).
    pub errors: usize,
    /// Writing stopped because this replica no longer leads.
    pub fenced: bool,
}

/// What a write was: the `resourceVersion` its decision rested on, and its payload.
type Memo = (Option<String>, String);

/// Applies actions, remembering the writes made per object.
pub struct Applier {
    writer: Writer,
    metrics: ControllerMetrics,
    /// (object, write kind) -> (resourceVersion the write was based on, the payload written).
    made: HashMap<(Target, &'static str), Memo>,
}

impl Applier {
    /// An applier writing through `writer`.
    pub fn new(writer: Writer, metrics: ControllerMetrics) -> Self {
        Self {
            writer,
            metrics,
            made: HashMap::new(),
        }
    }

    /// Makes the writes in order; stops at the first one this replica may no longer make.
    pub async fn apply(&mut self, actions: Vec<Action>, leadership: &Leadership) -> ApplySummary {
        let mut summary = ApplySummary::default();
        for action in actions {
            if !leadership.may_write() {
                warn!("not the leader any more (Lease not renewed in time); stopping writes");
                summary.fenced = true;
                break;
            }
            let (what, target, memo) = describe(&action);
            if let (Some(target), Some(memo)) = (&target, &memo)
                && self.made.get(&(target.clone(), what)) == Some(memo)
            {
                summary.skipped += 1;
                continue;
            }
            match self.write(action).await {
                Ok(()) => {
                    summary.written += 1;
                    self.metrics.record_write(what, "ok");
                    if let (Some(target), Some(memo)) = (target, memo) {
                        self.made.insert((target, what), memo);
                    }
                }
                Err(WriteError::Conflict { kind, object, .. }) => {
                    summary.conflicts += 1;
                    self.metrics.record_write(what, "conflict");
                    debug!(%kind, %object, write = what, "conflict: the object changed; deciding again on the next pass");
                }
                Err(error) => {
                    summary.errors += 1;
                    self.metrics.record_write(what, "error");
                    warn!(write = what, %error, "write failed; retrying with backoff");
                }
            }
        }
        summary
    }

    async fn write(&self, action: Action) -> Result<(), WriteError> {
        match action {
            Action::Event(event) => self.writer.publish_event(event).await,
            Action::Metadata { target, patch, .. } => match target {
                Target::Service(key) => {
                    self.writer
                        .patch_metadata::<Service>(&key.name, Some(&key.namespace), patch)
                        .await
                }
                Target::Eip(name) => self.writer.patch_metadata::<Eip>(&name, None, patch).await,
            },
            Action::Status { target, status, .. } => match target {
                Target::Service(key) => {
                    self.writer
                        .patch_status::<Service>(&key.name, Some(&key.namespace), status)
                        .await
                }
                Target::Eip(name) => self.writer.patch_status::<Eip>(&name, None, status).await,
            },
        }
    }
}

/// The write's metric name, target and memo (`None` for Events: they are never deduplicated here,
/// the reconciler says each once).
fn describe(action: &Action) -> (&'static str, Option<Target>, Option<Memo>) {
    match action {
        Action::Event(_) => ("event", None, None),
        Action::Metadata {
            target,
            base_version,
            patch,
        } => (
            match target {
                Target::Service(_) => "service_metadata",
                Target::Eip(_) => "eip_metadata",
            },
            Some(target.clone()),
            Some((base_version.clone(), patch.to_merge_patch().to_string())),
        ),
        Action::Status {
            target,
            base_version,
            status,
        } => (
            match target {
                Target::Service(_) => "service_status",
                Target::Eip(_) => "eip_status",
            },
            Some(target.clone()),
            Some((base_version.clone(), status.to_string())),
        ),
    }
}
