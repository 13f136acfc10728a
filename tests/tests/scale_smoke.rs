//! The scale benchmark's harness at a small size, so that it cannot rot: the real controller
//! (leader and standby) and speaker against the in-memory API, 50 Services, with every watch cut
//! and the API's history dropped halfway (each watch resumes, gets 410 Gone and lists again).
//! Asserts the outcome, not the timing: every Service one distinct IP, the Eip status agreeing,
//! at most 2 Service writes per allocation. The 1k/10k/50k runs are `oxelb-scale` (docs/scale.md).

use std::{path::Path, time::Duration};

use oxelb_tests::cluster::bin_dir_beside;
use oxelb_tests::scale::{ScaleOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_services_each_get_one_distinct_ip_through_a_410() {
    let options = ScaleOptions {
        bin_dir: bin_dir_beside(Path::new(env!("CARGO_BIN_EXE_oxelb-scale"))),
        services: 50,
        deadline: Duration::from_secs(60),
        idle: Duration::from_millis(500),
        compact_midway: true,
        object_size_limit: Some(oxelb_tests::apiserver::ETCD_DEFAULT_OBJECT_LIMIT),
    };
    let report = match run(&options).await {
        Ok(report) => report,
        Err(error) => panic!("scale run failed: {error}"),
    };
    assert_eq!(report.distinct_ips, 50, "{report:?}");
    assert_eq!(report.eip_used, 50, "{report:?}");
    assert_eq!(report.eip_usage, 50, "{report:?}");
    assert!(!report.eip_used_truncated, "{report:?}");
    assert_eq!(report.eip_status_too_large, 0, "{report:?}");
    assert!(report.service_writes_per_allocation <= 2.0, "{report:?}");
    assert!(
        report.service_relists >= 3,
        "leader, standby and speaker each listed again after the 410: {report:?}"
    );
    assert!(
        report.leader_rss_mib > 0.0 && report.speaker_rss_mib > 0.0,
        "{report:?}"
    );
}
