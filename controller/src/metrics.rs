//! The controller's Prometheus metrics, all updated by the reconcile loop (OpenELB registers pool
//! metrics and never sets them).

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::reconcile::PassReport;

type Labels = Vec<(&'static str, String)>;

/// The controller's metric families.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    pool_size: Family<Labels, Gauge>,
    pool_in_use: Family<Labels, Gauge>,
    used_truncated: Family<Labels, Gauge>,
    failures: Family<Labels, Counter>,
    pending: Family<Labels, Gauge>,
    writes: Family<Labels, Counter>,
    reconcile_seconds: Histogram,
    leader: Gauge,
    webhook_expiry: Gauge,
}

impl ControllerMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            pool_size: Family::default(),
            pool_in_use: Family::default(),
            used_truncated: Family::default(),
            failures: Family::default(),
            pending: Family::default(),
            writes: Family::default(),
            // 100 µs .. ~3 s: a pass over a few thousand Services takes milliseconds.
            reconcile_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.0, 16,
            )),
            leader: Gauge::default(),
            webhook_expiry: Gauge::default(),
        };
        registry.register(
            "oxelb_pool_size",
            "Assignable addresses of each Eip (capped at 2^63-1), by pool and family",
            metrics.pool_size.clone(),
        );
        registry.register(
            "oxelb_pool_in_use",
            "Addresses of each Eip held by Services, by pool and family",
            metrics.pool_in_use.clone(),
        );
        registry.register(
            "oxelb_allocation_failures",
            "Allocation failures by reason, counted when a Service's (or Eip's) failure changes",
            metrics.failures.clone(),
        );
        registry.register(
            "oxelb_services_pending",
            "Handled Services holding no IP after the last pass, by reason",
            metrics.pending.clone(),
        );
        registry.register(
            "oxelb_eip_status_used_truncated",
            "1 while the Eip's status.used lists only the lowest addresses in use (the whole map exceeds --eip-status-max-bytes)",
            metrics.used_truncated.clone(),
        );
        registry.register(
            "oxelb_api_writes",
            "API writes by kind of write and result (ok, conflict, error, too_large)",
            metrics.writes.clone(),
        );
        registry.register(
            "oxelb_reconcile_duration_seconds",
            "Time of one reconcile pass: decide and write",
            metrics.reconcile_seconds.clone(),
        );
        registry.register(
            "oxelb_controller_leader",
            "1 while this replica holds the Lease and writes, else 0",
            metrics.leader.clone(),
        );
        registry.register(
            "oxelb_webhook_certificate_expiry_timestamp_seconds",
            "When the webhook serving certificate this replica serves expires (Unix seconds; 0 until it serves)",
            metrics.webhook_expiry.clone(),
        );
        metrics
    }

    /// Records what a pass decided.
    pub fn record_pass(&self, report: &PassReport) {
        for (reason, count) in &report.new_failures {
            self.failures
                .get_or_create(&vec![("reason", (*reason).to_owned())])
                .inc_by(*count);
        }
        self.pending.clear();
        for (reason, count) in &report.pending {
            self.pending
                .get_or_create(&vec![("reason", (*reason).to_owned())])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        self.used_truncated.clear();
        for eip in &report.truncated {
            self.used_truncated
                .get_or_create(&vec![("eip", eip.clone())])
                .set(1);
        }
        self.pool_size.clear();
        self.pool_in_use.clear();
        for pool in &report.pools {
            let labels = vec![
                ("pool", pool.name.clone()),
                ("family", if pool.v4 { "ipv4" } else { "ipv6" }.to_owned()),
            ];
            self.pool_size
                .get_or_create(&labels)
                .set(i64::try_from(pool.pool_size).unwrap_or(i64::MAX));
            self.pool_in_use
                .get_or_create(&labels)
                .set(i64::try_from(pool.usage).unwrap_or(i64::MAX));
        }
    }

    /// Records the time of one pass.
    pub fn observe_pass(&self, seconds: f64) {
        self.reconcile_seconds.observe(seconds);
    }

    /// Counts one write by `what` (`service_status`, `eip_metadata`, `event`, ...) and `result`.
    pub fn record_write(&self, what: &'static str, result: &'static str) {
        self.writes
            .get_or_create(&vec![("write", what.to_owned()), ("result", result.to_owned())])
            .inc();
    }

    /// Sets when the served webhook certificate expires.
    pub fn set_webhook_certificate_expiry(&self, not_after: std::time::SystemTime) {
        let seconds = not_after
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.webhook_expiry.set(seconds);
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}
