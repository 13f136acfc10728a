//! The controller's decisions, in pure code: a [`Snapshot`] of the objects in, the writes and Events
//! that make the API agree with the allocator out ([`Reconciler::pass`]). No client, no clock, no
//! socket: the loop in [`crate::run`] takes the snapshot from the indexes and applies the actions.
//!
//! Level-triggered, like kube-rs' `controller-rs`: every pass looks at the whole state and computes
//! what is missing, so a missed or coalesced change is repaired by the next pass, and a pass with
//! nothing to do writes nothing.
//!
//! # Restart safety
//! The first pass of a [`Reconciler`] re-registers every existing assignment before it allocates
//! anything (DESIGN.md, "The controller's truth is the API"):
//! 1. IPs that Service `status.loadBalancer.ingress` and Eip `status.used` agree on;
//! 2. IPs only a Service's status holds (the Eip status is repaired, with a Warning on the Eip);
//! 3. IPs only an Eip's `status.used` lists for an existing, handled Service that holds no IP of that
//!    family (adopted and written back to the Service), anything else listed there is dropped.
//!
//! Within each step Services go in namespace/name order; a claim the allocator refuses (two holders
//! that may not share, an IP in no pool) becomes a Warning and that Service alone gets a new IP, so no
//! Service holding a valid IP moves. An OpenELB cluster's allocations are adopted this way unchanged.
//!
//! # Writes per allocation
//! A new allocation costs two Service writes: a metadata patch (the finalizer and the pool label,
//! with a `resourceVersion` precondition) and a status patch (the ingress). Eip status is written once
//! per changed pool per pass, however many Services the pass allocated.

mod eip_status;
mod register;
mod writes;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    sync::Arc,
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use oxelb_crds::{names, v1alpha2::Eip};
use oxelb_ipam::{
    Allocator, AssignError, Assignment, LabelSet, OrphanReason, PoolSpec, PoolStatus, ServiceKey,
    ServiceRequest,
};
use oxelb_runtime::source::{EventRecord, EventType, MetadataPatch};
use serde_json::Value;

pub use self::eip_status::{
    DEFAULT_EIP_STATUS_MAX_BYTES, UsedFit, desired_eip_status, eip_size_without_used, eip_status_patch,
    used_fit, used_patch,
};
use crate::{
    handling::Handling,
    inputs::{pool_from_eip, request_from_service},
    view::ServiceView,
};

/// The objects one pass looks at, shared with the indexes (never deep-copied).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every Service (all namespaces), or with [`touched`](Self::touched) only the touched ones
    /// that still exist.
    pub services: Vec<Arc<ServiceView>>,
    /// Every Namespace's labels, by name (for `namespaceSelector`).
    pub namespaces: BTreeMap<String, LabelSet>,
    /// Every Eip.
    pub eips: Vec<Arc<Eip>>,
    /// `None`: a whole pass over every Service. `Some(keys)`: a pass over a change: only the
    /// Services with these keys were created, changed or deleted since the last pass, and only they
    /// are decided (see [`Reconciler::pass`]).
    pub touched: Option<BTreeSet<ServiceKey>>,
}

/// The object a write is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A Service.
    Service(ServiceKey),
    /// An Eip, by name.
    Eip(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Service(key) => write!(f, "Service {key}"),
            Target::Eip(name) => write!(f, "Eip {name}"),
        }
    }
}

/// One write the loop must make.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Merge-patch labels and finalizers (with the object's `resourceVersion` as precondition).
    Metadata {
        /// The object.
        target: Target,
        /// The `resourceVersion` the decision was based on.
        base_version: Option<String>,
        /// The patch.
        patch: MetadataPatch,
    },
    /// Merge-patch the status subresource.
    Status {
        /// The object.
        target: Target,
        /// The `resourceVersion` the decision was based on (not sent: status patches carry no
        /// precondition, they only set what the controller owns).
        base_version: Option<String>,
        /// The status merge patch.
        status: Value,
    },
    /// Publish an Event (boxed: an Event is several times the size of the other writes, and a
    /// pass may hold tens of thousands of actions).
    Event(Box<EventRecord>),
}

/// What one pass decided.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// The writes, in the order they must be made.
    pub actions: Vec<Action>,
    /// New failures by reason (counted once per change of a Service's or Eip's failure, not per pass).
    pub new_failures: BTreeMap<&'static str, u64>,
    /// Services waiting for an IP, by reason.
    pub pending: BTreeMap<&'static str, u64>,
    /// Every pool's status after the pass, without the IPs in use (`used` is empty; `usage` counts
    /// them): for metrics.
    pub pools: Vec<PoolStatus>,
    /// Where each phase after the first starts in [`actions`](Self::actions): writes of one phase
    /// may run concurrently (in order per object); a phase starts once the previous one is done.
    pub phase_starts: Vec<usize>,
    /// The Eips whose `status.used` is written truncated (see
    /// [`Reconciler::with_eip_status_max_bytes`]).
    pub truncated: Vec<String>,
    /// A pass over a change could not decide everything it affects (it released IPs that waiting
    /// Services could take, or the pools changed): run a whole pass next.
    pub needs_whole_pass: bool,
}

/// The allocator plus what the controller remembers between passes (to say things once).
#[derive(Debug)]
pub struct Reconciler {
    handling: Handling,
    allocator: Allocator,
    pools: Vec<PoolSpec>,
    bootstrapped: bool,
    /// The last Warning said about each object, so a persisting failure is said once.
    warned: HashMap<Target, String>,
    /// The last drain Warning said about each deleting Eip.
    draining: HashMap<String, String>,
    /// The last protocol-annotation Warning said about each Service.
    protocol_warned: HashMap<ServiceKey, String>,
    /// The handled Services without an IP, with the reason (kept across passes over changes).
    waiting: BTreeMap<ServiceKey, &'static str>,
    /// Eips whose IPs passes over changes moved and whose writes they deferred.
    eips_due: BTreeSet<String>,
    /// The largest Eip the controller writes, in bytes of JSON (`--eip-status-max-bytes`).
    eip_status_max_bytes: usize,
    /// Eips whose `status.used` is written truncated, with the entries it lists (said once).
    truncated: BTreeMap<String, usize>,
}

impl Reconciler {
    /// A reconciler with an empty allocator; its first [`pass`](Self::pass) re-registers every
    /// existing assignment before allocating.
    pub fn new(handling: Handling) -> Self {
        Self {
            handling,
            allocator: Allocator::new(),
            pools: Vec::new(),
            bootstrapped: false,
            warned: HashMap::new(),
            draining: HashMap::new(),
            protocol_warned: HashMap::new(),
            waiting: BTreeMap::new(),
            eips_due: BTreeSet::new(),
            eip_status_max_bytes: DEFAULT_EIP_STATUS_MAX_BYTES,
            truncated: BTreeMap::new(),
        }
    }

    /// The same reconciler, writing no Eip larger than `bytes` of JSON: above it, `status.used`
    /// lists only the lowest addresses in use that fit and says `usedTruncated: true`.
    pub fn with_eip_status_max_bytes(mut self, bytes: usize) -> Self {
        self.eip_status_max_bytes = bytes;
        self
    }

    /// The Eips whose `status.used` is written truncated, with the entries it lists.
    pub fn truncated_eips(&self) -> &BTreeMap<String, usize> {
        &self.truncated
    }

    /// Whether the first (whole) pass has re-registered the existing assignments; until then every
    /// pass must be a whole one.
    pub fn bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    /// Every Service this reconciler holds something of: an IP, or a wait for one (with
    /// repetitions).
    pub fn known_services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.allocator.services().chain(self.waiting.keys())
    }

    /// The allocator's view (tests and metrics).
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// Forgets the last Warning of `target`, so that it is said again if it recurs (after its write
    /// failed, for example).
    pub fn forget_warning(&mut self, target: &Target) {
        self.warned.remove(target);
    }

    /// One pass: pools from Eips, restart registration (first pass only), releases, allocations,
    /// then the writes that make every Service and Eip agree with the allocator.
    ///
    /// A pass over a change ([`Snapshot::touched`]) decides only the touched Services and writes
    /// only them and the Eips whose IPs they took or gave back, so its cost follows the change; its
    /// result is what a whole pass would decide for them. It asks for a whole pass
    /// ([`PassReport::needs_whole_pass`]) when it gave back IPs while other Services wait for one,
    /// or when the pools changed. The first pass of a reconciler is always a whole one.
    pub fn pass(&mut self, snapshot: &Snapshot) -> PassReport {
        self.pass_deferring(snapshot, false)
    }

    /// As [`pass`](Self::pass); with `defer_eips`, a pass over a change that more passes follow
    /// at once (a burst decided 1,000 Services at a time) leaves the Eips it moved IPs of for a
    /// later pass without it: a pool's status holds one entry per IP in use, and writing it after
    /// every chunk sends that whole object to every watcher each time. A whole pass writes every
    /// Eip either way.
    pub fn pass_deferring(&mut self, snapshot: &Snapshot, defer_eips: bool) -> PassReport {
        let touched = snapshot.touched.as_ref().filter(|_| self.bootstrapped);
        if snapshot.touched.is_some() && touched.is_none() {
            // Nothing is registered yet: only a whole pass may decide.
            return PassReport {
                needs_whole_pass: true,
                ..Default::default()
            };
        }
        let mut out = Out::default();
        let services: BTreeMap<ServiceKey, &ServiceView> = snapshot
            .services
            .iter()
            .map(|s| (s.key.clone(), s.as_ref()))
            .filter(|(key, _)| touched.is_none_or(|t| t.contains(key)))
            .collect();
        let eips: BTreeMap<&str, &Eip> = snapshot
            .eips
            .iter()
            .filter_map(|e| Some((e.metadata.name.as_deref()?, e.as_ref())))
            .collect();

        let pools_changed = self.update_pools(&eips, &mut out);
        match touched {
            None => self.waiting.clear(),
            Some(keys) => self.waiting.retain(|key, _| !keys.contains(key)),
        }
        // The pools whose IPs a pass over a change moves: those the touched Services held before
        // and hold after it.
        let mut touched_pools: BTreeSet<String> = BTreeSet::new();
        let mut note_pools = |allocator: &Allocator, keys: &BTreeSet<ServiceKey>| {
            for key in keys {
                if let Some(assignment) = allocator.assignment(key) {
                    touched_pools.extend(assignment.ips.into_iter().map(|a| a.pool));
                }
            }
        };
        if let Some(keys) = touched {
            note_pools(&self.allocator, keys);
        }

        // Requests of every handled, live Service (bad ones are warned about and keep what they hold).
        let mut requests: BTreeMap<ServiceKey, ServiceRequest> = BTreeMap::new();
        for (key, service) in &services {
            if !self.handling.handles(service) || service.deleting {
                continue;
            }
            let labels = snapshot
                .namespaces
                .get(&*key.namespace)
                .cloned()
                .unwrap_or_default();
            match request_from_service(service, &labels) {
                Ok(request) => {
                    requests.insert(key.clone(), request);
                }
                Err(error) => {
                    self.waiting.insert(key.clone(), "invalid_service");
                    self.warn(
                        &mut out,
                        service.object_ref(),
                        Target::Service(key.clone()),
                        &error,
                        "invalid_service",
                    );
                }
            }
        }

        if !self.bootstrapped {
            self.register_existing(&services, &eips, &requests, &mut out);
            self.bootstrapped = true;
        }

        // Releases first, so their IPs serve this pass's allocations.
        let held: Vec<ServiceKey> = match touched {
            None => self.allocator.services().cloned().collect(),
            Some(keys) => keys
                .iter()
                .filter(|k| self.allocator.assignment(k).is_some())
                .cloned()
                .collect(),
        };
        let mut released_any = false;
        for key in held {
            let live = services
                .get(&key)
                .is_some_and(|s| self.handling.handles(s) && !s.deleting);
            if live {
                continue;
            }
            let released = self.allocator.release(&key);
            released_any |= !released.is_empty();
            if let (Some(service), false) = (services.get(&key), released.is_empty()) {
                out.early.push(event(
                    service.object_ref(),
                    EventType::Normal,
                    "ReleasedIP",
                    "Release",
                    format!("released {}", join_ips(&released)),
                ));
            }
        }

        // Allocations, in namespace/name order (deterministic: the same snapshot gives the same IPs).
        for (key, request) in &requests {
            let Some(service) = services.get(key) else {
                continue;
            };
            match self.allocator.assign(request) {
                Ok(assignment) => {
                    self.warned.remove(&Target::Service(key.clone()));
                    self.check_protocol_annotation(service, key, &assignment, &eips, &mut out);
                }
                Err(error) => {
                    let reason = failure_reason(&error);
                    self.waiting.insert(key.clone(), reason);
                    self.warn(
                        &mut out,
                        service.object_ref(),
                        Target::Service(key.clone()),
                        &error,
                        reason,
                    );
                }
            }
        }

        // Service writes: what the allocator holds, as status, label and finalizer.
        for (key, service) in &services {
            self.service_writes(key, service, &mut out);
        }
        // Eip writes: status, finalizer, and the drain warning (a pass over a change: only the
        // Eips whose IPs it moved).
        if let Some(keys) = touched {
            note_pools(&self.allocator, keys);
        }
        if touched.is_none() {
            self.eips_due.clear();
        } else {
            self.eips_due.append(&mut touched_pools);
        }
        let eips_due = if touched.is_some() && defer_eips {
            BTreeSet::new()
        } else {
            std::mem::take(&mut self.eips_due)
        };
        for (name, eip) in &eips {
            if touched.is_none() || eips_due.contains(*name) {
                self.eip_writes(name, eip, &mut out);
            }
        }

        let mut pending: BTreeMap<&'static str, u64> = BTreeMap::new();
        for reason in self.waiting.values() {
            *pending.entry(reason).or_default() += 1;
        }
        let phase_starts = vec![out.early.len(), out.early.len() + out.eip.len()];
        PassReport {
            actions: out.early.into_iter().chain(out.eip).chain(out.late).collect(),
            new_failures: out.new_failures,
            pending,
            pools: self.allocator.pool_summaries(),
            phase_starts,
            truncated: self.truncated.keys().cloned().collect(),
            needs_whole_pass: touched.is_some()
                && (pools_changed || (released_any && !self.waiting.is_empty())),
        }
    }

    /// Parses the Eips into pools (a deleting Eip gives no new IPs: it drains), and hands them to the
    /// allocator when they changed; assignments a change orphans are warned about (the Service gets a
    /// new IP in the same pass, if one applies).
    /// Returns whether the pools changed.
    fn update_pools(&mut self, eips: &BTreeMap<&str, &Eip>, out: &mut Out) -> bool {
        let mut pools = Vec::new();
        for (name, eip) in eips {
            match pool_from_eip(eip) {
                Ok(mut pool) => {
                    pool.disabled |= is_deleting(*eip);
                    self.warned.remove(&Target::Eip((*name).to_owned()));
                    pools.push(pool);
                }
                Err(error) => {
                    self.warn(
                        out,
                        eip.object_ref(&()),
                        Target::Eip((*name).to_owned()),
                        &error,
                        "invalid_eip",
                    );
                }
            }
        }
        if pools == self.pools {
            return false;
        }
        for orphan in self.allocator.set_pools(pools.iter().cloned()) {
            let why = match orphan.reason {
                OrphanReason::PoolRemoved => format!("Eip {} no longer exists", orphan.pool),
                OrphanReason::OutsidePool => {
                    format!("Eip {}'s address no longer covers it", orphan.pool)
                }
            };
            tracing::warn!(service = %orphan.service, ip = %orphan.ip, pool = %orphan.pool, reason = %why, "assignment dropped by a pool change");
            out.early.push(Action::Event(Box::new(EventRecord {
                regarding: service_ref(&orphan.service),
                type_: EventType::Warning,
                reason: "IPReleased".into(),
                action: "Release".into(),
                note: Some(format!("{} released: {why}; assigning another IP", orphan.ip)),
            })));
        }
        self.pools = pools;
        true
    }

    /// OpenELB v0.5's `protocol.openelb.kubesphere.io/v1alpha1` annotation is accepted; the pool's
    /// `spec.protocol` decides, and a contradiction is a Warning (once per value).
    fn check_protocol_annotation(
        &mut self,
        service: &ServiceView,
        key: &ServiceKey,
        assignment: &Assignment,
        eips: &BTreeMap<&str, &Eip>,
        out: &mut Out,
    ) {
        let Some(written) = service.protocol_annotation.as_deref() else {
            self.protocol_warned.remove(key);
            return;
        };
        let contradicted: Vec<String> = assignment
            .ips
            .iter()
            .filter_map(|a| {
                let protocol = eips.get(a.pool.as_str())?.spec.protocol();
                (protocol.as_str() != written).then(|| format!("Eip {} is {protocol}", a.pool))
            })
            .collect();
        if contradicted.is_empty() {
            self.protocol_warned.remove(key);
            return;
        }
        let note = format!(
            "annotation {}: {written:?} is ignored: {}; the Eip's spec.protocol decides how the IP is announced",
            names::PROTOCOL_ANNOTATION,
            contradicted.join(", ")
        );
        if self.protocol_warned.get(key) != Some(&note) {
            tracing::warn!(service = %key, annotation = names::PROTOCOL_ANNOTATION, value = %written, "protocol annotation contradicts the Eip");
            out.early.push(event(
                service.object_ref(),
                EventType::Warning,
                "ProtocolMismatch",
                "Allocate",
                note.clone(),
            ));
            self.protocol_warned.insert(key.clone(), note);
        }
    }

    /// Says a failure as a Warning Event, once per distinct message per object.
    fn warn(
        &mut self,
        out: &mut Out,
        regarding: ObjectReference,
        target: Target,
        error: &dyn std::fmt::Display,
        reason: &'static str,
    ) {
        let note = error.to_string();
        if self.warned.get(&target) == Some(&note) {
            return;
        }
        tracing::warn!(object = %target, reason, error = %note, "cannot allocate");
        *out.new_failures.entry(reason).or_default() += 1;
        out.early.push(event(
            regarding,
            EventType::Warning,
            event_reason(reason),
            "Allocate",
            note.clone(),
        ));
        self.warned.insert(target, note);
    }
}

/// The actions of a pass, in three phases: Services (and Events), then Eips, then finalizer
/// removals (so a finalizer goes only after the Eip status stopped listing the Service).
#[derive(Default)]
struct Out {
    early: Vec<Action>,
    eip: Vec<Action>,
    late: Vec<Action>,
    new_failures: BTreeMap<&'static str, u64>,
}

fn event(regarding: ObjectReference, type_: EventType, reason: &str, action: &str, note: String) -> Action {
    Action::Event(Box::new(EventRecord {
        regarding,
        type_,
        reason: reason.to_owned(),
        action: action.to_owned(),
        note: Some(note),
    }))
}

fn service_ref(key: &ServiceKey) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(key.namespace.to_string()),
        name: Some(key.name.to_string()),
        ..Default::default()
    }
}

/// The metric label of an allocation failure.
pub fn failure_reason(error: &AssignError) -> &'static str {
    match error {
        AssignError::NoFamily { .. }
        | AssignError::TwoRequestedIpsOfOneFamily { .. }
        | AssignError::RequestedFamilyNotWanted { .. } => "invalid_service",
        AssignError::PoolNotFound { .. } => "pool_not_found",
        AssignError::PoolWrongFamily { .. } => "pool_wrong_family",
        AssignError::PoolDisabled { .. } => "pool_disabled",
        AssignError::PoolExhausted { .. } | AssignError::AllPoolsFull { .. } => "pool_exhausted",
        AssignError::IpOutsideEveryPool { .. }
        | AssignError::IpOutsideNamedPool { .. }
        | AssignError::IpNotAssignable { .. } => "ip_not_in_pool",
        AssignError::NoPoolApplies { .. } => "no_pool_applies",
        AssignError::Sharing(_) => "sharing_conflict",
    }
}

/// The Event reason (PascalCase) for a failure label.
fn event_reason(reason: &str) -> &'static str {
    match reason {
        "invalid_service" => "InvalidService",
        "invalid_eip" => "InvalidEip",
        "pool_not_found" => "EipNotFound",
        "pool_wrong_family" => "EipWrongFamily",
        "pool_disabled" => "EipDisabled",
        "pool_exhausted" => "EipExhausted",
        "ip_not_in_pool" => "IPNotInEip",
        "no_pool_applies" => "NoEipApplies",
        "sharing_conflict" => "IPSharingConflict",
        _ => "AllocationFailed",
    }
}

fn is_deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
