//! The speaker's clock helpers, shared by the BGP and BFD drivers: waiting for an optional deadline,
//! and the wall-clock time as status and Events write it. The deciding code never reads a clock
//! (`oxelb-speaker-core`, `oxelb-bgp`, `oxelb-bfd` take durations and instants as inputs); these are
//! the adapters' side of that rule.

use tokio::time::Instant;

/// Sleeps until `at`, or forever without a deadline (a `select!` branch that never fires).
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The current time as status and Events write it (RFC 3339).
pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}
