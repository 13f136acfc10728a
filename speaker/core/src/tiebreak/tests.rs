use std::collections::BTreeMap;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn timings_are_checked_and_bounds_leave_a_margin() {
    assert!(matches!(
        LeaseTiming::new(ms(5), ms(1000)),
        Err(LeaseTimingError::RenewTooShort { .. })
    ));
    assert!(matches!(
        LeaseTiming::new(ms(400), ms(1999)),
        Err(LeaseTimingError::DurationTooShort { .. })
    ));
    let t = LeaseTiming::default();
    assert_eq!(LeaseTiming::new(ms(400), ms(2000)), Ok(t));
    assert_eq!(t.request_timeout(), ms(200));
    assert_eq!(t.reach_valid(), ms(1000));
    assert_eq!(t.read_valid(), ms(600));
    assert_eq!(t.rejoin_hold(), ms(1000));
    // The two inequalities of the module docs, with room to spare, for every allowed timing.
    for renew in [10u64, 100, 333, 500, 1000] {
        for factor in [5u64, 6, 8] {
            let t = LeaseTiming::new(ms(renew), ms(renew * factor)).unwrap();
            assert!(t.duration - t.read_valid() > t.reach_valid() + t.request_timeout());
            assert!(t.rejoin_hold() > t.read_valid() + t.request_timeout());
        }
    }
}

#[test]
fn the_rule_for_every_combination() {
    for me_smaller in [false, true] {
        for reachable in [false, true] {
            for peer_expired in [false, true] {
                let (me, peer) = if me_smaller { ("a", "b") } else { ("b", "a") };
                let facts = ApiFacts {
                    reachable,
                    peer_expired,
                };
                let expected = reachable && (peer_expired || me_smaller);
                assert_eq!(alone_may_answer(me, peer, facts), expected, "{me} {facts:?}");
            }
        }
    }
    assert_eq!(alone_grace(ms(50)), ms(100));
}

#[test]
fn reach_needs_a_fresh_success_and_a_held_streak() {
    // Defaults: renew every 400 ms, a success counts 1000 ms, held for 1000 ms.
    let t = LeaseTiming::default();
    let mut r = Reach::new(t);
    assert!(!r.reachable(ms(0)));
    assert_eq!(r.next_change(ms(0)), None);
    r.renewed(ms(0), true);
    assert!(!r.reachable(ms(100)), "the streak is young");
    assert_eq!(r.next_change(ms(100)), Some(ms(1000)));
    r.renewed(ms(400), true);
    r.renewed(ms(800), true);
    assert!(r.reachable(ms(1000)), "held for rejoin_hold, fresh");
    assert_eq!(r.next_change(ms(1000)), Some(ms(1800)));
    // One failure in a row costs nothing: the next success continues the streak.
    r.renewed(ms(1200), false);
    assert!(r.reachable(ms(1799)));
    r.renewed(ms(1600), true);
    assert!(r.reachable(ms(1800)), "still the same streak");
    // Two in a row: the last success lapses on its own.
    r.renewed(ms(2000), false);
    r.renewed(ms(2400), false);
    assert!(r.reachable(ms(2599)));
    assert!(!r.reachable(ms(2600)));
    // Back after the gap: a new streak, held again.
    r.renewed(ms(2800), true);
    assert!(!r.reachable(ms(2900)));
    r.renewed(ms(3200), true);
    r.renewed(ms(3600), true);
    assert!(r.reachable(ms(3800)));
}

#[test]
fn a_peer_lease_expires_only_unchanged_for_the_duration_and_freshly_read() {
    let t = LeaseTiming::default();
    let mut p = PeerLease::new(t);
    assert!(!p.expired("b", ms(10_000)), "never read");
    p.read("b", ms(0), ms(10), Some("1".into()));
    p.read("b", ms(500), ms(510), Some("2".into()));
    for s in (1000..=2500).step_by(500) {
        p.read("b", ms(s), ms(s + 10), Some("2".into()));
    }
    assert!(!p.expired("b", ms(2509)));
    assert!(p.expired("b", ms(2510)), "unchanged since 510");
    assert!(!p.expired("a", ms(2510)), "another peer");
    assert_eq!(
        p.next_change(ms(2510)),
        Some(ms(3100)),
        "the last read goes stale"
    );
    assert!(!p.expired("b", ms(3250)), "no recent read: no judgment");
    // A change revives it; no Lease at all is content too.
    p.read("b", ms(3500), ms(3510), Some("3".into()));
    assert!(!p.expired("b", ms(3600)));
    let mut none = PeerLease::new(t);
    none.read("b", ms(0), ms(1), None);
    none.read("b", ms(2000), ms(2001), None);
    assert!(none.expired("b", ms(2001)));
    // Another peer: forgotten.
    none.read("c", ms(2100), ms(2101), None);
    assert!(!none.expired("c", ms(2200)));
}

/// One speaker of the model: its own trackers, its schedule and its faults.
struct Node {
    name: &'static str,
    peer: &'static str,
    reach: Reach,
    peer_lease: PeerLease,
    /// First renewal at this time, then every period.
    phase: u64,
    /// A request's latency (writes land half-way).
    latency: u64,
    /// Killed at this time (stops renewing; no longer answers).
    death: Option<u64>,
    /// Cut from the apiserver during [from, to).
    cut: Option<(u64, u64)>,
}

impl Node {
    fn connected(&self, at: u64) -> bool {
        self.cut.is_none_or(|(from, to)| at < from || at >= to)
    }
    fn alive(&self, at: u64) -> bool {
        self.death.is_none_or(|d| at < d)
    }
    fn answers_alone(&self, at: u64) -> bool {
        self.alive(at)
            && alone_may_answer(
                self.name,
                self.peer,
                ApiFacts {
                    reachable: self.reach.reachable(ms(at)),
                    peer_expired: self.peer_lease.expired(self.peer, ms(at)),
                },
            )
    }
}

/// What happens at a moment of the model.
enum Event {
    /// Node `i`'s renewal write lands at the apiserver.
    Write(usize),
    /// Node `i`'s renewal that started at `.1` completes (`.2`: it succeeded).
    Renewed(usize, u64, bool),
    /// Node `i`'s read of its peer's Lease that started at `.1` reads the store.
    Snapshot(usize, u64),
    /// That read returns `.2` to node `i`.
    Read(usize, u64, Option<String>),
}

/// Runs two speakers for `horizon` ms in 5 ms steps against a Lease store; returns, per node, the
/// times it answered alone. Panics if both ever answer alone at once.
fn run(mut nodes: [Node; 2], horizon: u64) -> [Vec<u64>; 2] {
    let t = LeaseTiming::default();
    let renew = u64::try_from(t.renew_every.as_millis()).unwrap();
    let timeout = u64::try_from(t.request_timeout().as_millis()).unwrap();
    let mut writes = [0u64; 2];
    let mut events: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    let mut answered: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut now = 0;
    while now <= horizon {
        // Start renewals (and the read that follows each) due now.
        for (i, node) in nodes.iter().enumerate() {
            if !node.alive(now) || now < node.phase || (now - node.phase) % renew != 0 {
                continue;
            }
            if node.connected(now) {
                events
                    .entry(now + node.latency / 2)
                    .or_default()
                    .push(Event::Write(i));
                events
                    .entry(now + node.latency)
                    .or_default()
                    .push(Event::Renewed(i, now, true));
                let read_start = now + node.latency;
                if node.connected(read_start) {
                    // The read sees the store half-way; resolved when it lands.
                    events
                        .entry(read_start + node.latency / 2)
                        .or_default()
                        .push(Event::Snapshot(i, read_start));
                }
            } else {
                events
                    .entry(now + timeout)
                    .or_default()
                    .push(Event::Renewed(i, now, false));
            }
        }
        // Apply what happens now, in order.
        while let Some(entry) = events.first_entry().filter(|e| *e.key() <= now) {
            for event in entry.remove() {
                match event {
                    Event::Write(i) => writes[i] += 1,
                    Event::Renewed(i, started, ok) => nodes[i].reach.renewed(ms(started), ok),
                    Event::Snapshot(i, started) => {
                        let peer = 1 - i;
                        let content = (writes[peer] > 0).then(|| writes[peer].to_string());
                        let done = started + nodes[i].latency;
                        events
                            .entry(done)
                            .or_default()
                            .push(Event::Read(i, started, content));
                    }
                    Event::Read(i, started, content) => {
                        let peer = nodes[i].peer;
                        nodes[i].peer_lease.read(peer, ms(started), ms(now), content);
                    }
                }
            }
        }
        let both: Vec<bool> = nodes.iter().map(|n| n.answers_alone(now)).collect();
        assert!(
            !(both[0] && both[1]),
            "t={now} ms: both answer alone (a: {:?} {:?}, b: {:?} {:?})",
            nodes[0].reach,
            nodes[0].peer_lease,
            nodes[1].reach,
            nodes[1].peer_lease
        );
        for (i, b) in both.iter().enumerate() {
            if *b {
                answered[i].push(now);
            }
        }
        now += 5;
    }
    answered
}

fn node(name: &'static str, peer: &'static str) -> Node {
    Node {
        name,
        peer,
        reach: Reach::new(LeaseTiming::default()),
        peer_lease: PeerLease::new(LeaseTiming::default()),
        phase: 0,
        latency: 0,
        death: None,
        cut: None,
    }
}

/// Every combination of phases, latencies (skewed, late views of each other's Lease), deaths and
/// cuts from the apiserver (short, long, permanent, overlapping): never two answer alone; and the
/// promised outcomes happen.
#[test]
fn never_two_answer_alone_in_any_schedule() {
    let cuts = [
        None,
        Some((3000, 3400)),
        Some((3000, 3900)),
        Some((3000, 6000)),
        Some((3100, u64::MAX)),
    ];
    let deaths = [None, Some(3000), Some(3240)];
    let latencies = [0u64, 60, 245];
    let phases = [0u64, 250, 495];
    let mut runs = 0;
    for a_cut in cuts {
        for b_cut in cuts {
            for a_death in deaths {
                for b_death in [None, Some(3120)] {
                    for a_lat in latencies {
                        for b_lat in latencies {
                            for b_phase in phases {
                                let mut a = node("a", "b");
                                let mut b = node("b", "a");
                                a.cut = a_cut;
                                b.cut = b_cut;
                                a.death = a_death;
                                b.death = b_death;
                                a.latency = a_lat;
                                b.latency = b_lat;
                                b.phase = b_phase;
                                let answered = run([a, b], 9000);
                                runs += 1;
                                let last = |i: usize| answered[i].last().copied();
                                // The promises, where they apply.
                                let a_fine = a_cut.is_none() && a_death.is_none();
                                let b_fine = b_cut.is_none() && b_death.is_none();
                                if a_fine {
                                    assert_eq!(last(0), Some(9000), "a is fine and smaller: it answers");
                                }
                                if b_fine
                                    && (a_death.is_some() || a_cut.is_some_and(|(_, to)| to == u64::MAX))
                                {
                                    // a dead or cut for good: b takes over within the duration,
                                    // a renew period and a request of a's last renewal.
                                    let first = answered[1].iter().copied().find(|t| *t >= 3000);
                                    let by = 3000 + 2000 + 400 + 200 + 400;
                                    assert!(
                                        first.is_some_and(|f| f <= by),
                                        "b took over at {first:?}, not by {by} (a cut {a_cut:?} dead {a_death:?} lat {a_lat}/{b_lat} phase {b_phase})"
                                    );
                                }
                                if let Some((from, to)) = a_cut {
                                    // a cut from the apiserver stops answering alone within
                                    // reach_valid of its last renewal before the cut.
                                    assert!(
                                        answered[0].iter().all(|t| *t < from + 1000 || *t >= to),
                                        "a answered alone while cut from the apiserver"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(runs, 5 * 5 * 3 * 2 * 3 * 3 * 3);
}
