//! Applies a pass's [`Action`]s through the runtime's [`Writer`]: the thin I/O adapter around
//! [`crate::reconcile`].
//!
//! - Every write first asks [`Leadership::may_write`]: a replica past its fence writes nothing.
//! - A write whose decision rests on the same `resourceVersion` and has the same payload as one
//!   already made is skipped: the watch has not delivered our own write yet, and repeating it
//!   would cost an API call (or a 409, for preconditioned metadata patches).
//! - A write refused for its size (HTTP 413, or etcd's `request is too large`) is remembered like
//!   one made: the same payload on the same version is not sent again (no retry loop), and the
//!   next change to the object or to the payload tries again.
//! - A 409 is never overwritten: the action is dropped, and the loop re-reads (its next pass sees
//!   the object as it now is) and decides again.
//! - Writes to different objects within one phase of a pass go out concurrently (up to
//!   [`CONCURRENCY`] in flight), those to one object in order, so that the apiserver, not one
//!   round trip after another, is the limit.

use std::collections::HashMap;

use futures::{StreamExt, stream::FuturesUnordered};

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
    /// Writes the apiserver refused for their size (HTTP 413, or etcd's `request is too large`):
    /// never retried as they are, since the same write cannot succeed.
    pub too_large: usize,
    /// Writing stopped because this replica no longer leads.
    pub fenced: bool,
}

/// Writes in flight at once within a phase (client-go's default QPS burst is 10; an apiserver
/// serves hundreds of small patches per second per client).
pub const CONCURRENCY: usize = 16;

/// What a write was: the `resourceVersion`s whose object it was made on top of (the one its decision
/// rested on, and those this applier's own earlier writes to the object produced just before it),
/// and a hash of its payload (the memo is kept for every object written: ten thousand payloads
/// would be megabytes).
///
/// A later decision on any of those versions, with the same payload, is the same write again: the
/// watch has not delivered its result yet. The common case is a new allocation: the metadata patch
/// makes version 2, the status patch version 3, and a pass that sees version 2 (the metadata echo)
/// before version 3 would write the same status again.
type Memo = (Vec<Option<String>>, u64);

/// What the memo keeps of a write once made: a [`Memo`] in its smallest form (two per Service that
/// ever held an IP, so its size is per-Service memory: a `Vec` grown by `extend` keeps spare
/// capacity, a `String` its own).
type Made = (Box<[Option<Box<str>>]>, u64);

fn made(memo: Memo) -> Made {
    let (bases, hash) = memo;
    (
        bases.into_iter().map(|b| b.map(String::into_boxed_str)).collect(),
        hash,
    )
}

/// Applies actions, remembering the writes made per object.
pub struct Applier {
    writer: Writer,
    metrics: ControllerMetrics,
    /// (object, write kind) -> (resourceVersion the write was based on, the payload written).
    made: HashMap<(Target, &'static str), Made>,
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

    /// Makes the writes of one phase (in order per object; see the module docs); stops at the first
    /// one this replica may no longer make.
    pub async fn apply(&mut self, actions: Vec<Action>, leadership: &Leadership) -> ApplySummary {
        self.apply_phases(actions, &[], leadership).await
    }

    /// Makes the writes phase by phase (`phase_starts`: where each phase after the first starts,
    /// as in [`crate::reconcile::PassReport::phase_starts`]); within a phase, concurrently for
    /// different objects and in order for one object.
    pub async fn apply_phases(
        &mut self,
        actions: Vec<Action>,
        phase_starts: &[usize],
        leadership: &Leadership,
    ) -> ApplySummary {
        let mut summary = ApplySummary::default();
        let mut phases: Vec<Vec<Action>> = Vec::with_capacity(phase_starts.len() + 1);
        let mut rest = actions;
        for start in phase_starts.iter().rev() {
            let start = (*start).min(rest.len());
            phases.push(rest.split_off(start));
        }
        phases.push(rest);
        phases.reverse();
        for phase in phases {
            self.apply_phase(phase, leadership, &mut summary).await;
            if summary.fenced {
                break;
            }
        }
        summary
    }

    async fn apply_phase(
        &mut self,
        actions: Vec<Action>,
        leadership: &Leadership,
        summary: &mut ApplySummary,
    ) {
        // Each action tagged with its object's group (numbered in first-action order), then sorted
        // by group, stably: the order within a group stays. A group's own list is made only when its
        // writes start, so a pass of ten thousand objects holds at most CONCURRENCY of them.
        let mut tagged: Vec<(usize, Action, Described)> = Vec::with_capacity(actions.len());
        {
            let mut group_of: HashMap<GroupKey, usize> = HashMap::new();
            for action in actions {
                let described = describe(&action);
                let (what, target, memo) = &described;
                if let (Some(target), Some((bases, hash))) = (target, memo)
                    && self
                        .made
                        .get(&(target.clone(), *what))
                        .is_some_and(|(seen, made)| {
                            made == hash
                                && bases
                                    .iter()
                                    .all(|b| seen.iter().any(|s| s.as_deref() == b.as_deref()))
                        })
                {
                    summary.skipped += 1;
                    continue;
                }
                let next = group_of.len();
                let group = *group_of.entry(group_key(&action)).or_insert(next);
                tagged.push((group, action, described));
            }
        }
        tagged.sort_by_key(|(group, ..)| *group);
        let mut waiting = tagged.into_iter().peekable();
        let mut next_group = move || {
            let (group, action, described) = waiting.next()?;
            let mut writes = vec![(action, described)];
            while let Some((_, action, described)) = waiting.next_if(|(g, ..)| *g == group) {
                writes.push((action, described));
            }
            Some(writes)
        };
        // Results are counted as they come; only what the memo keeps is held until the end (the
        // futures borrow `self`).
        let mut made_now: Vec<((Target, &'static str), Made)> = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < CONCURRENCY {
                match next_group() {
                    Some(group) => in_flight.push(self.write_group(group, leadership)),
                    None => break,
                }
            }
            let Some(done) = in_flight.next().await else {
                break;
            };
            for ((what, target, memo), result) in done {
                self.count_result(what, result, summary, || {
                    if let (Some(target), Some(memo)) = (target, memo) {
                        made_now.push(((target, what), made(memo)));
                    }
                });
            }
        }
        drop(in_flight);
        self.made.extend(made_now);
    }

    /// Counts one write's result into `summary` and the metrics; `on_ok` runs if it was made.
    fn count_result(
        &self,
        what: &'static str,
        result: Option<Result<(), WriteError>>,
        summary: &mut ApplySummary,
        on_ok: impl FnOnce(),
    ) {
        let Some(result) = result else {
            if !summary.fenced {
                warn!("not the leader any more (Lease not renewed in time); stopping writes");
            }
            summary.fenced = true;
            return;
        };
        match result {
            Ok(()) => {
                summary.written += 1;
                self.metrics.record_write(what, "ok");
                on_ok();
            }
            Err(WriteError::Conflict { kind, object, .. }) => {
                summary.conflicts += 1;
                self.metrics.record_write(what, "conflict");
                debug!(%kind, %object, write = what, "conflict: the object changed; deciding again on the next pass");
            }
            Err(error) if error.is_too_large() => {
                // Permanent for this shape: remembered like a write made, so the same payload on
                // the same version is not sent again; a change to the object or to the payload
                // tries again. Not an error for the backoff: retrying cannot help.
                summary.too_large += 1;
                self.metrics.record_write(what, "too_large");
                warn!(write = what, %error, "write refused for its size: not retried until the object or the write changes");
                on_ok();
            }
            Err(error) => {
                summary.errors += 1;
                self.metrics.record_write(what, "error");
                warn!(write = what, %error, "write failed; retrying with backoff");
            }
        }
    }

    /// The writes to one object, in order; `None` for a write the fence refused.
    async fn write_group(
        &self,
        group: Vec<(Action, Described)>,
        leadership: &Leadership,
    ) -> Vec<GroupResult> {
        let mut done = Vec::with_capacity(group.len());
        // The versions this group's writes produced, in order.
        let mut produced: Vec<Option<String>> = Vec::new();
        for (action, (what, target, memo)) in group {
            // Each write asks the fence itself: a term can end in the middle of a phase.
            if !leadership.may_write() {
                done.push(((what, target, memo), None));
                continue;
            }
            let result = self.write(action).await;
            let memo = memo.map(|(mut bases, hash)| {
                bases.extend(produced.iter().cloned());
                (bases, hash)
            });
            if let Ok(Some(version)) = &result {
                produced.push(Some(version.clone()));
            }
            done.push(((what, target, memo), Some(result.map(drop))));
        }
        done
    }

    /// Makes one write; answers the object's resourceVersion after it, when known.
    async fn write(&self, action: Action) -> Result<Option<String>, WriteError> {
        let w = &self.writer;
        match action {
            Action::Event(event) => w.publish_event(*event).await.map(|()| None),
            Action::Metadata { target, patch, .. } => match target {
                Target::Service(key) => {
                    w.patch_metadata_versioned::<Service>(&key.name, Some(&key.namespace), patch)
                        .await
                }
                Target::Eip(name) => w.patch_metadata_versioned::<Eip>(&name, None, patch).await,
            },
            Action::Status { target, status, .. } => match target {
                Target::Service(key) => {
                    w.patch_status_versioned::<Service>(&key.name, Some(&key.namespace), status)
                        .await
                }
                Target::Eip(name) => w.patch_status_versioned::<Eip>(&name, None, status).await,
            },
        }
    }
}

/// A write's metric name, target and memo.
type Described = (&'static str, Option<Target>, Option<Memo>);

/// A write and how it went (`None`: not made, this replica may no longer write).
type GroupResult = (Described, Option<Result<(), WriteError>>);

/// The object whose writes must stay in order: the target, or the object an Event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum GroupKey {
    Target(Target),
    Regarding(Option<String>, Option<String>, Option<String>),
}

fn group_key(action: &Action) -> GroupKey {
    match action {
        Action::Metadata { target, .. } | Action::Status { target, .. } => GroupKey::Target(target.clone()),
        Action::Event(event) => GroupKey::Regarding(
            event.regarding.kind.clone(),
            event.regarding.namespace.clone(),
            event.regarding.name.clone(),
        ),
    }
}

/// The write's metric name, target and memo (`None` for Events: they are never deduplicated here,
/// the reconciler says each once).
fn describe(action: &Action) -> Described {
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
            Some((
                vec![base_version.clone()],
                crate::hash::json_hash(&patch.to_merge_patch()),
            )),
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
            Some((vec![base_version.clone()], crate::hash::json_hash(status))),
        ),
    }
}
