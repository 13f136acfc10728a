#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A hand-over as the file holds it (the format the next process must keep reading).
fn handover(node: &str, written_unix_ms: u64) -> Handover {
    let json = format!(
        r#"{{"format": 1, "node": "{node}", "written_unix_ms": {written_unix_ms}, "window_ms": 10000,
          "source_port_v4": 50000, "source_port_v6": null,
          "sessions": {{"router": {{"neighbor": "192.0.2.1", "multihop": false,
            "config": {{"desired_min_tx_us": 300000, "required_min_rx_us": 300000, "detect_mult": 3}},
            "snapshot": {{"local_discriminator": 42, "remote_discriminator": 7,
              "desired_min_tx_us": 300000, "required_min_rx_us": 300000, "detect_mult": 34,
              "remote_desired_min_tx_us": 300000, "remote_required_min_rx_us": 300000,
              "remote_detect_mult": 3}}}}}}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

#[test]
fn a_stored_handover_is_read_back_once_by_its_node_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let written = handover("n1", 1_000_000);
    store_handover(&state, &written).unwrap();
    // Atomic: only the file itself is left, no temporary beside it.
    let names: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(HANDOVER_FILE)]);
    assert_eq!(load_handover(&state, "n1", 1_002_000), Some(written));
    assert_eq!(load_handover(&state, "n1", 1_002_000), None, "used once");
}

#[test]
fn absent_corrupt_foreign_and_stale_handovers_are_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    assert_eq!(load_handover(state, "n1", 1_000_000), None);
    std::fs::write(state.join(HANDOVER_FILE), "{not json").unwrap();
    assert_eq!(load_handover(state, "n1", 1_000_000), None);
    assert!(!state.join(HANDOVER_FILE).exists());
    store_handover(state, &handover("n2", 1_000_000)).unwrap();
    assert_eq!(load_handover(state, "n1", 1_000_000), None);
    assert!(!state.join(HANDOVER_FILE).exists());
    store_handover(state, &handover("n1", 1_000_000)).unwrap();
    assert_eq!(load_handover(state, "n1", 1_010_000), None);
    assert!(!state.join(HANDOVER_FILE).exists());
}
