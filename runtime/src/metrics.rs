//! The metric families the runtime itself updates.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Labels = Vec<(&'static str, String)>;

/// Metrics of the object source, updated by every stream of [`ObjectSource::watch`]
/// (see [`ObjectSource::with_metrics`]).
///
/// [`ObjectSource::watch`]: crate::source::ObjectSource::watch
/// [`ObjectSource::with_metrics`]: crate::source::ObjectSource::with_metrics
#[derive(Clone, Debug, Default)]
pub struct SourceMetrics {
    objects: Family<Labels, Gauge>,
    events: Family<Labels, Counter>,
}

impl SourceMetrics {
    /// Creates the families and registers them as `oxelb_source_objects{kind}` and
    /// `oxelb_source_events_total{kind,event}`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "oxelb_source_objects",
            "Objects of each kind currently known from the source (those the binary keeps: see docs/scale.md)",
            metrics.objects.clone(),
        );
        registry.register(
            "oxelb_source_events",
            "Events received from the source, by kind and event (apply, delete, resync, error)",
            metrics.events.clone(),
        );
        metrics
    }

    /// Sets the number of objects of `kind`.
    pub fn set_objects(&self, kind: &str, count: usize) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.objects
            .get_or_create(&vec![("kind", kind.to_owned())])
            .set(count);
    }

    /// Counts one event of `kind`.
    pub fn record_event(&self, kind: &str, event: &str) {
        self.events
            .get_or_create(&vec![("kind", kind.to_owned()), ("event", event.to_owned())])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn families_are_encoded_with_labels() {
        let mut registry = Registry::default();
        let metrics = SourceMetrics::register(&mut registry);
        metrics.set_objects("Service", 3);
        metrics.record_event("Service", "resync");
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("oxelb_source_objects{kind=\"Service\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("oxelb_source_events_total{kind=\"Service\",event=\"resync\"} 1"),
            "{text}"
        );
    }
}
