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

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    sync::Arc,
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use oxelb_crds::{
    names,
    v1alpha2::{Eip, EipStatus},
};
use oxelb_ipam::{
    Allocator, AssignError, Assignment, IpFamily, LabelSet, OrphanReason, PoolSpec, PoolStatus,
    RegisterError, ServiceKey, ServiceRequest,
};
use oxelb_runtime::source::{EventRecord, EventType, MetadataPatch};
use serde_json::{Value, json};

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
        }
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

    /// Restart: registers what Service and Eip status say is assigned (see the module docs).
    fn register_existing(
        &mut self,
        services: &BTreeMap<ServiceKey, &ServiceView>,
        eips: &BTreeMap<&str, &Eip>,
        requests: &BTreeMap<ServiceKey, ServiceRequest>,
        out: &mut Out,
    ) {
        let from_services: BTreeMap<ServiceKey, Vec<IpAddr>> = requests
            .keys()
            .filter_map(|key| Some((key.clone(), services.get(key)?.ingress.to_vec())))
            .collect();
        // Eip status.used: IP -> holders (skipping unparsable entries: they are repaired below).
        let mut from_eips: BTreeMap<ServiceKey, Vec<(IpAddr, String)>> = BTreeMap::new();
        for (name, eip) in eips {
            for (ip, holders) in eip
                .status
                .as_ref()
                .and_then(|s| s.used.as_ref())
                .into_iter()
                .flatten()
            {
                let Ok(ip) = ip.parse::<IpAddr>() else { continue };
                for holder in holders.split(';').filter(|h| !h.is_empty()) {
                    if let Some((ns, n)) = holder.split_once('/') {
                        from_eips
                            .entry(ServiceKey::new(ns, n))
                            .or_default()
                            .push((ip, (*name).to_owned()));
                    }
                }
            }
        }
        let listed = |key: &ServiceKey, ip: IpAddr| {
            from_eips
                .get(key)
                .is_some_and(|v| v.iter().any(|(i, _)| *i == ip))
        };

        let mut registered = 0usize;
        // 1. agreed, 2. Service status only.
        for agreed in [true, false] {
            for (key, ips) in &from_services {
                let Some(request) = requests.get(key) else {
                    continue;
                };
                for ip in ips.iter().filter(|ip| listed(key, **ip) == agreed) {
                    match self.allocator.register_existing(request, *ip) {
                        Ok(assigned) => {
                            registered += 1;
                            if !agreed {
                                tracing::warn!(service = %key, %ip, pool = %assigned.pool, "Service status holds an IP its Eip status does not list; registered, Eip status repaired");
                                self.repaired(
                                    out,
                                    eips,
                                    &assigned.pool,
                                    format!("status.used did not list {ip} held by Service {key}; repaired"),
                                );
                            }
                        }
                        Err(error) => self.refused_registration(out, services, key, &error),
                    }
                }
            }
        }
        // 3. Eip status only.
        for (key, claims) in &from_eips {
            for (ip, pool) in claims {
                let in_service = from_services.get(key).is_some_and(|ips| ips.contains(ip));
                if in_service {
                    continue;
                }
                let Some(request) = requests.get(key) else {
                    tracing::warn!(service = %key, %ip, eip = %pool, "Eip status lists an IP for a Service that does not exist or is not handled; dropped");
                    self.repaired(out, eips, pool, format!(
                        "status.used listed {ip} for Service {key}, which does not exist or is not handled; dropped"
                    ));
                    continue;
                };
                let family_held = self
                    .allocator
                    .assignment(key)
                    .is_some_and(|a| a.ips.iter().any(|h| IpFamily::of(h.ip) == IpFamily::of(*ip)));
                if family_held {
                    tracing::warn!(service = %key, %ip, eip = %pool, "Eip status lists an IP the Service does not hold; dropped");
                    self.repaired(out, eips, pool, format!(
                        "status.used listed {ip} for Service {key}, which holds another IP of that family; dropped"
                    ));
                    continue;
                }
                match self.allocator.register_existing(request, *ip) {
                    Ok(_) => {
                        registered += 1;
                        tracing::warn!(service = %key, %ip, eip = %pool, "Eip status lists an IP the Service status lacks; adopted, Service status repaired");
                        self.repaired(
                            out,
                            eips,
                            pool,
                            format!(
                                "status.used listed {ip} for Service {key}, whose status lacked it; adopted"
                            ),
                        );
                    }
                    Err(error) => self.refused_registration(out, services, key, &error),
                }
            }
        }
        tracing::info!(
            registered,
            services = from_services.len(),
            "re-registered existing assignments"
        );
    }

    fn refused_registration(
        &mut self,
        out: &mut Out,
        services: &BTreeMap<ServiceKey, &ServiceView>,
        key: &ServiceKey,
        error: &RegisterError,
    ) {
        tracing::warn!(service = %key, %error, "existing assignment refused; the Service gets another IP");
        if let Some(service) = services.get(key) {
            out.early.push(event(
                service.object_ref(),
                EventType::Warning,
                "IPConflict",
                "Register",
                format!("{error}; assigning another IP"),
            ));
        }
    }

    fn repaired(&mut self, out: &mut Out, eips: &BTreeMap<&str, &Eip>, pool: &str, note: String) {
        if let Some(eip) = eips.get(pool) {
            out.early.push(event(
                eip.object_ref(&()),
                EventType::Warning,
                "StatusRepaired",
                "Register",
                note,
            ));
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

    /// The writes that make one Service agree with the allocator.
    fn service_writes(&self, key: &ServiceKey, service: &ServiceView, out: &mut Out) {
        let target = Target::Service(key.clone());
        let base_version: Option<String> = service.resource_version.as_deref().map(Into::into);
        let assignment = self.allocator.assignment(key).unwrap_or_default();
        let holds = !assignment.ips.is_empty();
        let ours = holds || (self.handling.handles(service) && !service.deleting);
        let has_finalizer = service.has_finalizer(names::SERVICE_FINALIZER);
        let label = service.pool_label.as_deref();

        if !ours && !has_finalizer {
            return; // Not ours, never was (or already cleaned up).
        }

        // Metadata: the finalizer while the Service holds an IP, and the pool label.
        let desired_label = assignment.ips.first().map(|a| a.pool.clone());
        let mut patch = MetadataPatch {
            resource_version: base_version.clone(),
            ..Default::default()
        };
        if label != desired_label.as_deref() && (desired_label.is_some() || label.is_some()) {
            patch
                .labels
                .insert(names::EIP_POOL_LABEL.to_owned(), desired_label);
        }
        let adding = holds && !has_finalizer;
        let removing = !holds && has_finalizer;
        let finalizers = service.finalizers.iter().map(|f| f.to_string());
        if adding {
            patch.finalizers = Some(finalizers.chain([names::SERVICE_FINALIZER.to_owned()]).collect());
        } else if removing {
            patch.finalizers = Some(finalizers.filter(|f| f != names::SERVICE_FINALIZER).collect());
        }
        // Metadata before status: a status write bumps the resourceVersion that the metadata patch
        // carries as its precondition. A release goes last of all, once the Eip status no longer
        // lists the Service.
        let phase = if removing { &mut out.late } else { &mut out.early };
        if !patch.labels.is_empty() || patch.finalizers.is_some() {
            phase.push(Action::Metadata {
                target: target.clone(),
                base_version: base_version.clone(),
                patch,
            });
        }

        // Status: the ingress is exactly the held IPs (cleared when a live Service holds none). A
        // deleting Service's status is left alone: it is going away.
        let current = &*service.ingress;
        let desired: Vec<IpAddr> = assignment.ips.iter().map(|a| a.ip).collect();
        if current != desired.as_slice()
            && !(service.deleting && desired.is_empty())
            && (ours || !current.is_empty())
        {
            let ingress = if desired.is_empty() {
                Value::Null
            } else {
                Value::Array(desired.iter().map(|ip| json!({"ip": ip.to_string()})).collect())
            };
            if !desired.is_empty() {
                phase.push(event(
                    service.object_ref(),
                    EventType::Normal,
                    "AssignedIP",
                    "Allocate",
                    format!(
                        "assigned {} from Eip {}",
                        join_ips(&desired),
                        assignment
                            .ips
                            .iter()
                            .map(|a| a.pool.as_str())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            phase.push(Action::Status {
                target,
                base_version,
                status: json!({"loadBalancer": {"ingress": ingress}}),
            });
        }
    }

    /// The writes that make one Eip agree with the allocator: status, finalizer, drain warning.
    fn eip_writes(&mut self, name: &str, eip: &Eip, out: &mut Out) {
        let target = Target::Eip(name.to_owned());
        let base_version = eip.metadata.resource_version.clone();
        // The pool's figures; its IPs in use are walked where needed, never copied whole.
        let status = self.allocator.pool_summary(name);
        let in_use = status.as_ref().map_or(0, |s| s.usage);
        let finalizers = eip.metadata.finalizers.clone().unwrap_or_default();
        let has_finalizer = finalizers.iter().any(|f| f == names::EIP_FINALIZER);
        let deleting = is_deleting(eip);

        // A drained, deleting Eip only loses its finalizer: its status no longer matters.
        if deleting && in_use == 0 {
            self.draining.remove(name);
            if has_finalizer {
                out.late.push(Action::Metadata {
                    target,
                    base_version: base_version.clone(),
                    patch: MetadataPatch {
                        finalizers: Some(
                            finalizers
                                .into_iter()
                                .filter(|f| f != names::EIP_FINALIZER)
                                .collect(),
                        ),
                        resource_version: base_version,
                        ..Default::default()
                    },
                });
            }
            return;
        }

        // The finalizer before the status write (which bumps the resourceVersion the metadata patch
        // carries as its precondition).
        if !deleting && !has_finalizer {
            let mut list = finalizers;
            list.push(names::EIP_FINALIZER.to_owned());
            out.eip.push(Action::Metadata {
                target: target.clone(),
                base_version: base_version.clone(),
                patch: MetadataPatch {
                    finalizers: Some(list),
                    resource_version: base_version.clone(),
                    ..Default::default()
                },
            });
        }

        let desired = match &status {
            Some(status) => desired_eip_status(status),
            None => EipStatus {
                ready: Some(false),
                ..Default::default()
            },
        };
        let mut patch = eip_status_patch(eip.status.as_ref(), &desired);
        if status.is_some() {
            let have = eip.status.as_ref().and_then(|s| s.used.as_ref());
            let used = used_patch(have, self.allocator.pool_used(name), |ip| {
                self.allocator.pool_of_used(ip) == Some(name)
            });
            if let Some(used) = used {
                let mut fields = match patch.take() {
                    Some(Value::Object(fields)) => fields,
                    _ => serde_json::Map::new(),
                };
                fields.insert("used".into(), Value::Object(used));
                patch = Some(Value::Object(fields));
            }
        }
        if let Some(patch) = patch {
            out.eip.push(Action::Status {
                target,
                base_version,
                status: patch,
            });
        }

        if let (true, Some(_)) = (deleting, &status) {
            let holders: BTreeSet<String> = self
                .allocator
                .pool_used(name)
                .flat_map(|(_, holders)| holders)
                .map(ToString::to_string)
                .collect();
            let note = format!(
                "Eip {name} is being deleted but {in_use} IP(s) are still used by Service(s) {}; it gives no new IPs and is deleted once they are released",
                holders.into_iter().collect::<Vec<_>>().join(", ")
            );
            if self.draining.get(name) != Some(&note) {
                tracing::warn!(
                    eip = name,
                    in_use,
                    "Eip deletion waits for its Services to release their IPs"
                );
                out.eip.push(event(
                    eip.object_ref(&()),
                    EventType::Warning,
                    "EipInUse",
                    "Delete",
                    note.clone(),
                ));
                self.draining.insert(name.to_owned(), note);
            }
        }
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

/// The Eip status a pool's figures call for (OpenELB's fields), without `used`: that map holds
/// one entry per IP in use, and [`used_patch`] compares it entry by entry instead of building it.
pub fn desired_eip_status(status: &PoolStatus) -> EipStatus {
    let as_i64 = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    EipStatus {
        occupied: Some(status.occupied),
        usage: Some(as_i64(status.usage as u128)),
        pool_size: Some(as_i64(status.pool_size)),
        used: None,
        first_ip: Some(status.first_ip.to_string()),
        last_ip: Some(status.last_ip.to_string()),
        ready: Some(true),
        v4: Some(status.v4),
    }
}

/// The merge patch of `status.used` (`ip: ns/name[;ns/name]`) that turns `have` into the IPs in
/// use `want` (ascending, each with its sorted holders), or `None` when they already agree: an
/// entry per IP that is missing or says other holders, and a null per entry to remove (a merge
/// patch merges maps). `wanted` answers whether an IP is among `want`.
///
/// Entry by entry, with one key and one value buffer: the map of a pool with tens of thousands of
/// IPs in use is never built again on each pass that moves one of them.
pub fn used_patch<'a>(
    have: Option<&BTreeMap<String, String>>,
    want: impl IntoIterator<Item = (IpAddr, &'a [ServiceKey])>,
    wanted: impl Fn(IpAddr) -> bool,
) -> Option<serde_json::Map<String, Value>> {
    use std::fmt::Write;
    let empty = BTreeMap::new();
    let have = have.unwrap_or(&empty);
    let mut used = serde_json::Map::new();
    let (mut key, mut value) = (String::new(), String::new());
    for (ip, holders) in want {
        key.clear();
        value.clear();
        // Writing to a String cannot fail.
        let _ = write!(key, "{ip}");
        for (i, holder) in holders.iter().enumerate() {
            let _ = write!(value, "{}{holder}", if i == 0 { "" } else { ";" });
        }
        if have.get(key.as_str()) != Some(&value) {
            used.insert(key.clone(), Value::String(value.clone()));
        }
    }
    for held in have.keys() {
        // Kept only when it is an IP in use written as the controller writes it.
        let kept = held.parse::<IpAddr>().is_ok_and(|ip| {
            key.clear();
            let _ = write!(key, "{ip}");
            key == *held && wanted(ip)
        });
        if !kept {
            used.insert(held.clone(), Value::Null);
        }
    }
    (!used.is_empty()).then_some(used)
}

/// The merge patch that turns `current` into `desired` (only the fields `desired` sets; `used`
/// entries that must go are set to null, because a merge patch merges maps), or `None` when they
/// already agree. The controller gives no `used` here (see [`used_patch`]).
pub fn eip_status_patch(current: Option<&EipStatus>, desired: &EipStatus) -> Option<Value> {
    let empty = EipStatus::default();
    let current = current.unwrap_or(&empty);
    let mut patch = serde_json::Map::new();
    let mut field = |name: &str, cur: Value, want: Value| {
        if !want.is_null() && cur != want {
            patch.insert(name.to_owned(), want);
        }
    };
    field("occupied", json!(current.occupied), json!(desired.occupied));
    field("usage", json!(current.usage), json!(desired.usage));
    field("poolSize", json!(current.pool_size), json!(desired.pool_size));
    field("firstIP", json!(current.first_ip), json!(desired.first_ip));
    field("lastIP", json!(current.last_ip), json!(desired.last_ip));
    field("ready", json!(current.ready), json!(desired.ready));
    field("v4", json!(current.v4), json!(desired.v4));
    if let Some(want) = &desired.used {
        // Borrowed, not cloned: with tens of thousands of IPs in one pool this runs on every pass
        // that moves one of them.
        let empty = BTreeMap::new();
        let have = current.used.as_ref().unwrap_or(&empty);
        if have != want {
            let mut used = serde_json::Map::new();
            for key in have.keys().filter(|k| !want.contains_key(*k)) {
                used.insert(key.clone(), Value::Null);
            }
            for (key, value) in want {
                if have.get(key) != Some(value) {
                    used.insert(key.clone(), Value::String(value.clone()));
                }
            }
            patch.insert("used".into(), Value::Object(used));
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}
