use super::*;

#[test]
fn another_mac_claiming_our_ip_is_noticed() {
    let ours = frames::MacAddr(2, 0, 0, 0, 0, 1);
    let other = frames::MacAddr(2, 0, 0, 0, 0, 2);
    let ip: std::net::Ipv4Addr = "192.0.2.50".parse().unwrap();
    let served: BTreeSet<IpAddr> = [IpAddr::V4(ip)].into();
    // A reply from `other` to a client's request for our IP (IPVS without strictARP, say).
    let request = frames::ArpRequest {
        sender_mac: frames::MacAddr(2, 0, 0, 0, 0, 9),
        sender_ip: "192.0.2.100".parse().unwrap(),
        target_ip: ip,
    };
    let reply = frames::arp_reply(&request, other);
    assert_eq!(
        foreign_claim(&reply, &served, ours),
        Some((IpAddr::V4(ip), other))
    );
    assert_eq!(
        foreign_claim(&frames::gratuitous_arp(ip, other), &served, ours),
        Some((IpAddr::V4(ip), other))
    );
    // Our own frames, frames about other IPs, and requests are not claims.
    assert_eq!(
        foreign_claim(&frames::arp_reply(&request, ours), &served, ours),
        None
    );
    assert_eq!(
        foreign_claim(
            &frames::gratuitous_arp("192.0.2.51".parse().unwrap(), other),
            &served,
            ours
        ),
        None
    );
    assert_eq!(
        foreign_claim(
            &frames::arp_request(other, "192.0.2.100".parse().unwrap(), ip),
            &served,
            ours
        ),
        None
    );
    assert_eq!(foreign_claim(&reply[..25], &served, ours), None, "truncated");
}

#[test]
fn a_decision_past_its_deadline_answers_nothing_until_renewed() {
    let answering = Answering {
        served: Arc::new(RwLock::new([IpAddr::from([192, 0, 2, 50])].into())),
        valid_until: Arc::default(),
    };
    // No deadline (heartbeats off): always valid.
    assert!(answering.valid());
    *answering.valid_until.write().unwrap() = Some(Instant::now() + Duration::from_secs(60));
    assert!(answering.valid());
    // A process frozen past its deadline: not valid until the announcer renews it.
    *answering.valid_until.write().unwrap() = Some(Instant::now() - Duration::from_millis(1));
    assert!(!answering.valid());
    assert_eq!(answering.ips().len(), 1, "the IPs stay; only answering waits");
}
