use super::*;

#[test]
fn only_documentation_addresses_pass() {
    for ok in [
        "192.0.2.1",
        "198.51.100.7/24",
        "203.0.113.255",
        "2001:db8::1/64",
        "fe80::1",
    ] {
        assert!(assert_documentation_address(ok).is_ok(), "{ok}");
    }
    for bad in [
        "10.0.0.1",
        "192.168.1.1/24",
        "172.16.0.1",
        "8.8.8.8",
        "2001:db9::1",
        "not-an-ip",
    ] {
        assert!(assert_documentation_address(bad).is_err(), "{bad}");
    }
}

#[test]
fn utc_stamps_are_read_to_the_microsecond() {
    assert_eq!(
        utc_stamp("1970-01-01T00:00:01.000002"),
        Some(Duration::from_micros(1_000_002))
    );
    // `date -u -d 2026-11-26T09:49:48 +%s` = 1795686588.
    assert_eq!(
        utc_stamp("2026-11-26T09:49:48.890182"),
        Some(Duration::from_secs(1_795_686_588) + Duration::from_micros(890_182))
    );
    assert_eq!(
        utc_stamp("2024-02-29T23:59:59.5"),
        Some(Duration::from_secs(1_709_251_199) + Duration::from_millis(500))
    );
    for bad in [
        "",
        "2026-11-26",
        "2026-11-26T09:49",
        "x-1-1T0:0:0.0",
        "1969-12-31T23:59:59.0",
    ] {
        assert_eq!(utc_stamp(bad), None, "{bad}");
    }
}

#[test]
fn prefixes_are_short_and_distinct() {
    assert_eq!(base36(0, 3), "000");
    assert_eq!(base36(46655, 3), "zzz");
    assert_eq!(base36(37, 2), "11");
}
