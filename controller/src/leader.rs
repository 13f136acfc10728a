//! Leader election on a `coordination.k8s.io/v1` Lease, with self-fencing.
//!
//! Only the Lease holder writes (DESIGN.md; Linkerd's status controller does the same); the other
//! replicas keep their indexes warm and take over when the holder stops renewing.
//!
//! - **Deciding** is pure ([`decide`]): who holds the Lease, when this replica last saw the Lease
//!   change (by its own monotonic clock, as client-go does, so clock skew between nodes does not
//!   matter) and the time now, in; take over, renew or wait, out.
//! - **Fencing**: a renewal that *started* at `t` lets this replica write until `t + renew_deadline`
//!   ([`Leadership::may_write`]). A challenger takes over only once it has seen no change for
//!   `lease_duration` (> `renew_deadline`), so a replica that cannot renew (apiserver unreachable,
//!   process paused) stops writing at least `lease_duration - renew_deadline` before anyone else can
//!   start. The defaults are client-go's: 15 s lease, 10 s deadline, 2 s retry.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{PostParams, entry::Entry},
};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

/// Lease timing and identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The namespace of the Lease.
    pub namespace: String,
    /// The name of the Lease.
    pub name: String,
    /// This replica's `holderIdentity` (the pod name).
    pub identity: String,
    /// How long a Lease is valid after its last renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the holder keeps writing.
    pub renew_deadline: Duration,
    /// How often the holder renews and the others check.
    pub retry_period: Duration,
}

/// What the Lease looks like to a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseView {
    /// `spec.holderIdentity` (`None` or empty: released).
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds` as written by the holder.
    pub lease_duration: Duration,
}

/// What a candidate does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create the Lease, or write itself as holder (the Lease is free or expired).
    TakeOver,
    /// Renew the Lease it holds.
    Renew,
    /// Someone else holds a live Lease: check again later.
    Wait {
        /// The holder.
        holder: String,
    },
}

/// Decides what `me` does about `lease` (`None`: no Lease object), given when this replica last
/// saw the Lease change and the time now (both on one monotonic clock).
pub fn decide(me: &str, lease: Option<&LeaseView>, last_change_seen: Duration, now: Duration) -> Decision {
    let Some(lease) = lease else {
        return Decision::TakeOver;
    };
    match lease.holder.as_deref().filter(|h| !h.is_empty()) {
        None => Decision::TakeOver,
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) => {
            // Expired only by our own clock: unchanged for a whole lease duration since we saw it.
            if now.saturating_sub(last_change_seen) >= lease.lease_duration {
                Decision::TakeOver
            } else {
                Decision::Wait {
                    holder: holder.to_owned(),
                }
            }
        }
    }
}

/// Whether this replica may write now, shared by the election task and the reconcile loop.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// Until when this replica may write (`None`: not leading).
    until: watch::Receiver<Option<Instant>>,
    /// Keeps the sender of an always-leading handle alive.
    _always: Option<Arc<watch::Sender<Option<Instant>>>>,
}

impl Leadership {
    /// A handle that always leads: the `dir:` source has one writer, the process itself.
    pub fn always() -> Self {
        // Far enough to never pass, near enough not to overflow Instant arithmetic.
        let forever = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let (tx, rx) = watch::channel(Some(forever));
        Self {
            until: rx,
            _always: Some(Arc::new(tx)),
        }
    }

    /// A handle fed by `sender` (the election task).
    pub fn from_receiver(until: watch::Receiver<Option<Instant>>) -> Self {
        Self { until, _always: None }
    }

    /// Whether this replica holds an unexpired, fenced lease right now.
    pub fn may_write(&self) -> bool {
        matches!(*self.until.borrow(), Some(until) if Instant::now() < until)
    }

    /// Resolves once this replica leads.
    pub async fn wait_leading(&mut self) {
        loop {
            if self.may_write() {
                return;
            }
            if self.until.changed().await.is_err() {
                // The election task is gone: never lead again.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once this replica no longer leads (the fence passed or the lease was lost).
    pub async fn lost(&mut self) {
        loop {
            let until = *self.until.borrow_and_update();
            match until {
                None => return,
                Some(until) if Instant::now() >= until => return,
                Some(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        changed = self.until.changed() => if changed.is_err() { return },
                    }
                }
            }
        }
    }
}

/// Runs the election against the apiserver until `stop` resolves, publishing until when this
/// replica may write; on stop a holder releases the Lease so a standby takes over at once.
pub async fn run_election(
    client: Client,
    config: LeaseConfig,
    fence: watch::Sender<Option<Instant>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let origin = Instant::now();
    let mut seen: Option<(Option<String>, Instant)> = None; // (resourceVersion, when it changed)
    let mut leading = false;
    tokio::pin!(stop);
    loop {
        let started = Instant::now();
        let result = step(&api, &config, origin, started, &mut seen).await;
        match result {
            Ok(true) => {
                if !leading {
                    info!(lease = %config.name, identity = %config.identity, "acquired the Lease; this replica writes");
                }
                leading = true;
                let _ = fence.send(Some(started + config.renew_deadline));
            }
            Ok(false) => {
                if leading {
                    warn!(lease = %config.name, "lost the Lease; writes stop");
                }
                leading = false;
                let _ = fence.send(None);
            }
            Err(error) => {
                // Keep the fence as it is: it expires by itself at the renew deadline.
                warn!(lease = %config.name, %error, leading, "Lease request failed; retrying");
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(config.retry_period) => {}
        }
    }
    let _ = fence.send(None);
    if leading {
        release(&api, &config).await;
    }
}

/// One round: read the Lease, decide, write. `Ok(true)` when this replica holds it afterwards.
async fn step(
    api: &Api<Lease>,
    config: &LeaseConfig,
    origin: Instant,
    now: Instant,
    seen: &mut Option<(Option<String>, Instant)>,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&config.name).await?;
    let version = current.as_ref().and_then(|l| l.metadata.resource_version.clone());
    let last_change = match seen {
        Some((v, at)) if *v == version => *at,
        _ => {
            *seen = Some((version, now));
            now
        }
    };
    let view = current.as_ref().map(|lease| {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseView {
            holder: spec.holder_identity,
            lease_duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(config.lease_duration, Duration::from_secs),
        }
    });
    let decision = decide(
        &config.identity,
        view.as_ref(),
        last_change.duration_since(origin),
        now.duration_since(origin),
    );
    let timestamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let duration_seconds = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    match (decision, current) {
        (Decision::Wait { .. }, _) => Ok(false),
        // `decide` gives Renew only for an existing Lease; a vanished one is created again.
        (Decision::TakeOver | Decision::Renew, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(timestamp.clone()),
                    renew_time: Some(timestamp),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                // Another replica created it first: it leads.
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
                Err(error) => Err(error),
            }
        }
        (decision, Some(mut lease)) => {
            let mut spec = lease.spec.take().unwrap_or_default();
            if decision == Decision::TakeOver {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
                spec.acquire_time = Some(timestamp.clone());
            }
            spec.holder_identity = Some(config.identity.clone());
            spec.lease_duration_seconds = Some(duration_seconds);
            spec.renew_time = Some(timestamp);
            lease.spec = Some(spec);
            // `replace` sends the resourceVersion read above: if anyone wrote in between, the
            // apiserver answers 409 and this round does not lead.
            match api.replace(&config.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
                Err(error) => Err(error),
            }
        }
    }
}

/// Clears `holderIdentity` so a standby takes over without waiting for the lease to expire.
async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let result = match api.entry(&config.name).await {
        Ok(Entry::Occupied(mut entry)) => {
            let spec = entry.get_mut().spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
                return;
            }
            spec.holder_identity = None;
            entry
                .commit(&PostParams::default())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Ok(Entry::Vacant(_)) => Ok(()),
        Err(error) => Err(error.to_string()),
    };
    match result {
        Ok(()) => info!(lease = %config.name, "released the Lease"),
        Err(error) => {
            warn!(lease = %config.name, %error, "could not release the Lease; a standby takes over when it expires")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn held(by: &str) -> LeaseView {
        LeaseView {
            holder: Some(by.into()),
            lease_duration: LEASE,
        }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn no_lease_or_released_lease_is_taken() {
        assert_eq!(decide("a", None, s(0), s(0)), Decision::TakeOver);
        let released = LeaseView {
            holder: None,
            lease_duration: LEASE,
        };
        assert_eq!(decide("a", Some(&released), s(0), s(0)), Decision::TakeOver);
        let empty = LeaseView {
            holder: Some(String::new()),
            lease_duration: LEASE,
        };
        assert_eq!(decide("a", Some(&empty), s(0), s(0)), Decision::TakeOver);
    }

    #[test]
    fn holder_renews_whatever_the_time() {
        assert_eq!(decide("a", Some(&held("a")), s(0), s(1000)), Decision::Renew);
    }

    #[test]
    fn challenger_waits_a_whole_lease_duration_since_the_last_change_it_saw() {
        let lease = held("b");
        let wait = Decision::Wait { holder: "b".into() };
        assert_eq!(decide("a", Some(&lease), s(100), s(100)), wait);
        assert_eq!(decide("a", Some(&lease), s(100), s(114)), wait);
        assert_eq!(decide("a", Some(&lease), s(100), s(115)), Decision::TakeOver);
        // A clock that seems to go backwards never takes over early.
        assert_eq!(decide("a", Some(&lease), s(100), s(50)), wait);
        // The holder's own duration counts, not ours.
        let long = LeaseView {
            holder: Some("b".into()),
            lease_duration: s(60),
        };
        assert_eq!(
            decide("a", Some(&long), s(100), s(130)),
            Decision::Wait { holder: "b".into() }
        );
    }

    #[tokio::test]
    async fn fence_expires_by_itself() {
        let (tx, rx) = watch::channel(None);
        let mut leadership = Leadership::from_receiver(rx);
        assert!(!leadership.may_write());
        tx.send(Some(Instant::now() + Duration::from_millis(50))).ok();
        assert!(leadership.may_write());
        tokio::time::timeout(Duration::from_secs(5), leadership.lost())
            .await
            .ok();
        assert!(
            !leadership.may_write(),
            "no renewal: the fence passed and writes stop"
        );
        assert!(Leadership::always().may_write());
    }
}
