use super::*;

#[test]
fn the_probe_log_gives_the_longest_gap_between_answers() {
    let log = ProbeLog::parse(
        "0 ok n1\n10 ok n1\n20 fail connect: timed out\n120 fail x\n230 ok n2\n240 ok n2\nnoise\n",
    );
    assert_eq!(log.sent(), 6);
    assert_eq!(log.failed(), 2);
    assert_eq!(log.longest_gap(), Duration::from_millis(220));
    assert_eq!(log.last_answer().as_deref(), Some("n2"));
    assert_eq!(ProbeLog::parse("").longest_gap(), Duration::ZERO);
}

#[test]
fn host_prefixes_per_family() {
    assert_eq!(host_prefix("203.0.113.65"), "203.0.113.65/32");
    assert_eq!(host_prefix("2001:db8::1"), "2001:db8::1/128");
}
