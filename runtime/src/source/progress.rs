//! How far each watch has got: the highest `resourceVersion` among the objects it delivered, per
//! kind, and when it last delivered anything. The speaker's layer2 claims carry its Services'
//! figure so that peers can tell a stuck view from a fresh one (speaker-core `standin`).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Instant,
};

/// Per kind: the highest `resourceVersion` seen (parsed as an integer; etcd's revisions are) and
/// the moment of the last object delivered.
#[derive(Clone, Debug, Default)]
pub struct WatchProgress {
    inner: Arc<Mutex<BTreeMap<String, KindProgress>>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct KindProgress {
    highest: u64,
    last: Option<Instant>,
}

impl WatchProgress {
    /// Records an object of `kind` delivered now with `resource_version` (`None`, or not a
    /// number: only the time is recorded).
    pub fn record(&self, kind: &str, resource_version: Option<&str>) {
        let version = resource_version.and_then(|v| v.parse::<u64>().ok());
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(kind.to_owned()).or_default();
        if let Some(version) = version {
            entry.highest = entry.highest.max(version);
        }
        entry.last = Some(Instant::now());
    }

    /// The highest `resourceVersion` of `kind` seen so far (0: none, or not numbers).
    pub fn highest(&self, kind: &str) -> u64 {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(kind).map_or(0, |k| k.highest)
    }

    /// When an object of `kind` was last delivered.
    pub fn last_delivery(&self, kind: &str) -> Option<Instant> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(kind).and_then(|k| k.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_numeric_version_per_kind() {
        let p = WatchProgress::default();
        assert_eq!(p.highest("Service"), 0);
        p.record("Service", Some("12"));
        p.record("Service", Some("9"));
        p.record("Service", Some("not-a-number"));
        p.record("Service", None);
        p.record("Node", Some("40"));
        assert_eq!(p.highest("Service"), 12);
        assert_eq!(p.highest("Node"), 40);
        assert!(p.last_delivery("Service").is_some());
        assert!(p.last_delivery("Eip").is_none());
    }
}
