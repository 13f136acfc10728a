use ring::hmac;

use std::net::IpAddr;

use super::heartbeat::{TAG_LEN, VERSION_1};
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Reaches the apiserver; the peer's Lease is fresh.
const REACH: ApiFacts = ApiFacts {
    reachable: true,
    peer_expired: false,
};
/// Cut from the apiserver.
const NO_API: ApiFacts = ApiFacts {
    reachable: false,
    peer_expired: false,
};

/// The timing these tests were written for: 100 ms heartbeats, dead after 400 ms.
fn cfg() -> LivenessConfig {
    LivenessConfig::new(ms(100), ms(400)).unwrap()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

#[test]
fn timings_are_checked_and_traffic_is_computed() {
    assert_eq!(
        LivenessConfig::new(Duration::ZERO, ms(100)),
        Err(TimingError::ZeroInterval)
    );
    assert!(matches!(
        LivenessConfig::new(ms(100), ms(150)),
        Err(TimingError::DeadAfterTooShort { .. })
    ));
    let default = LivenessConfig::default();
    assert_eq!(
        LivenessConfig::new(DEFAULT_INTERVAL, DEFAULT_DEAD_AFTER),
        Ok(default)
    );
    // The table in docs/layer2.md: datagrams per second each node sends (and receives) at 50 ms.
    let pps: Vec<f64> = [3, 10, 50, 100]
        .iter()
        .map(|n| default.packets_per_second(*n))
        .collect();
    assert_eq!(pps, vec![40.0, 180.0, 980.0, 1980.0]);
}

#[test]
fn version_1_heartbeats_are_read_without_a_view() {
    let key = HeartbeatKey::new(b"k");
    let beat = hb("n1", 5, 6);
    let mut v2 = encode(&beat, &key).unwrap();
    // Rebuild the body as version 1 wrote it: no digest, no flags.
    let body_len = v2.len() - TAG_LEN - 9;
    v2.truncate(body_len);
    v2[4] = VERSION_1;
    let tag = hmac::sign(&key.0, &v2);
    v2.extend_from_slice(tag.as_ref());
    let old = decode(&v2, &key).unwrap();
    assert_eq!(old.view, None);
    assert!(!old.leaving);
    assert_eq!(old.node, "n1");
    // A peer without a view never agrees: new IPs wait for the bound.
    let mut m = Membership::new("a", cfg());
    m.heard(&old, ms(0));
    assert!(!m.agreed(ms(1), 7));
}

#[test]
fn a_leaving_peer_is_dead_at_once_and_needs_no_agreement() {
    let key = HeartbeatKey::new(b"k");
    let mut m = Membership::new("a", cfg());
    m.heard(&hb("b", 1, 0), ms(0));
    m.heard(&hb("c", 1, 0), ms(0));
    assert_eq!(m.alive(ms(10)), set(&["a", "b", "c"]));
    let mut bye = hb("b", 1, 1);
    bye.leaving = true;
    let bye = decode(&encode(&bye, &key).unwrap(), &key).unwrap();
    assert!(bye.leaving, "the flag survives the wire");
    assert_eq!(m.record(&bye, ms(20)), Recorded::Changed);
    assert_eq!(m.alive(ms(20)), set(&["a", "c"]), "no wait for dead_after");
    assert_eq!(m.hearing(ms(20)), set(&["c"]));
    assert!(m.agreed(ms(20), 7), "c agrees; b is leaving");
    assert_eq!(m.next_expiry(ms(20)), Some(ms(400)), "only c's deadline");
    // Two nodes, the other leaving on purpose: no longer expected, so a stays standing
    // (the tie-break is only for silence, which may be a partition).
    let mut pair = Membership::new("b", cfg());
    pair.heard(&hb("a", 1, 0), ms(0));
    let mut going = hb("a", 1, 1);
    going.leaving = true;
    pair.heard(&going, ms(10));
    assert!(matches!(
        pair.standing(ms(500), &set(&["a", "b"]), REACH),
        Standing::Good { .. }
    ));
    // Back from a restart (new incarnation, not leaving): alive again.
    assert_eq!(m.record(&hb("b", 2, 0), ms(500)), Recorded::Changed);
    assert_eq!(m.alive(ms(500)), set(&["a", "b"]));
}

#[test]
fn record_tells_refreshes_from_changes() {
    let mut m = Membership::new("a", cfg());
    assert_eq!(m.record(&hb("b", 1, 0), ms(0)), Recorded::Changed, "new peer");
    assert_eq!(m.record(&hb("b", 1, 1), ms(100)), Recorded::Refreshed);
    assert_eq!(m.record(&hb("b", 1, 1), ms(150)), Recorded::Ignored, "replay");
    let mut moved = hb("b", 1, 2);
    moved.view = Some(8);
    assert_eq!(m.record(&moved, ms(200)), Recorded::Changed, "new view");
    let mut again = hb("b", 1, 3);
    again.view = Some(8);
    assert_eq!(
        m.record(&again, ms(2000)),
        Recorded::Changed,
        "revived after death"
    );
    assert_eq!(m.record(&hb("a", 9, 9), ms(2000)), Recorded::Ignored, "own");
}

#[test]
fn agreement_needs_every_heard_peer_on_the_same_view() {
    let mut m = Membership::new("a", cfg());
    assert!(m.agreed(ms(0), 7), "alone: agreed");
    m.heard(&hb("b", 1, 0), ms(0));
    let mut c = hb("c", 1, 0);
    c.view = Some(9);
    m.heard(&c, ms(0));
    assert!(!m.agreed(ms(10), 7));
    assert_eq!(m.disagreeing(ms(10), 7), set(&["c"]));
    // c falls silent: only b counts, and it agrees.
    m.heard(&hb("b", 1, 1), ms(300));
    assert!(m.agreed(ms(450), 7));
    assert_eq!(
        m.last_serving().len(),
        2,
        "the digest covers dead peers' pools too"
    );
}

#[test]
fn handover_keeps_what_it_answers_and_begins_only_on_agreement_or_bound() {
    let mut h = Handover::new(ms(2000));
    let won: BTreeSet<IpAddr> = [ip(50), ip(51)].into();
    let answering: BTreeSet<IpAddr> = [ip(50)].into();
    // Views differ: keep .50, hold .51 back.
    assert_eq!(h.decide(ms(0), &won, &answering, false, None), answering);
    assert_eq!(h.waiting(), 1);
    assert_eq!(h.next_deadline(), Some(ms(2000)));
    assert_eq!(h.decide(ms(1999), &won, &answering, false, None), answering);
    // Views agree: begin at once.
    assert_eq!(h.decide(ms(1000), &won, &answering, true, None), won);
    assert_eq!(h.waiting(), 0);
    // Never agreeing: the bound opens it.
    let mut h = Handover::new(ms(2000));
    h.decide(ms(0), &won, &BTreeSet::new(), false, None);
    assert!(h.forced().is_empty());
    assert_eq!(h.decide(ms(2000), &won, &BTreeSet::new(), false, None), won);
    assert_eq!(h.forced(), &won, "begun by the bound, not by agreement");
    // An IP lost meanwhile is forgotten: won again later, it waits from then.
    let mut h = Handover::new(ms(2000));
    h.decide(ms(0), &won, &BTreeSet::new(), false, None);
    h.decide(ms(100), &BTreeSet::new(), &BTreeSet::new(), false, None);
    assert_eq!(h.waiting(), 0);
    assert!(h.decide(ms(2000), &won, &BTreeSet::new(), false, None).is_empty());
    assert_eq!(h.next_deadline(), Some(ms(4000)));
}

/// Two speakers whose object views are skewed, driven step by step in every interleaving of
/// "learn the change" and "exchange heartbeats": the IP is never begun by one while the other
/// still answers it (the invariant of the skew lab, in pure code).
#[test]
fn skewed_views_never_give_two_answerers() {
    // The IP's winner moves from x to y with the change (view 1 -> view 2).
    struct Speaker {
        name: &'static str,
        view: u64,
        m: Membership,
        h: Handover,
        answering: BTreeSet<IpAddr>,
    }
    let winner = |view: u64| if view == 1 { "x" } else { "y" };
    let target = ip(50);
    // Steps: 0 = x learns, 1 = y learns, 2 = x -> y heartbeat, 3 = y -> x heartbeat. Every
    // order of a sequence of 8 steps over {0,1,2,3}, learning at most once each.
    for order in 0u32..4u32.pow(8) {
        let mut s = [
            Speaker {
                name: "x",
                view: 1,
                m: Membership::new("x", cfg()),
                h: Handover::new(ms(10_000)),
                answering: [target].into(),
            },
            Speaker {
                name: "y",
                view: 1,
                m: Membership::new("y", cfg()),
                h: Handover::new(ms(10_000)),
                answering: BTreeSet::new(),
            },
        ];
        let mut seq = [0u64; 2];
        // Both heard each other on the old view before the change.
        for (from, to) in [(0, 1), (1, 0)] {
            seq[from] += 1;
            let beat = hb(s[from].name, 1, seq[from]);
            let mut beat = beat;
            beat.view = Some(1);
            s[to].m.heard(&beat, ms(0));
        }
        for step in 0u32..8 {
            let now = ms(u64::from(step) * 10);
            let action = (order >> (2 * step)) & 3;
            match action {
                0 | 1 => s[action as usize].view = 2,
                _ => {
                    let (from, to) = if action == 2 { (0, 1) } else { (1, 0) };
                    seq[from] += 1;
                    let mut beat = hb(s[from].name, 1, seq[from]);
                    beat.view = Some(s[from].view);
                    s[to].m.heard(&beat, now);
                }
            }
            // Each decides on what it knows; its next heartbeat carries the view it applied.
            for sp in &mut s {
                let won: BTreeSet<IpAddr> = if winner(sp.view) == sp.name {
                    [target].into()
                } else {
                    BTreeSet::new()
                };
                let agreed = sp.m.agreed(now, sp.view);
                sp.answering = sp.h.decide(now, &won, &sp.answering, agreed, None);
            }
            assert!(
                !(s[0].answering.contains(&target) && s[1].answering.contains(&target)),
                "order {order:#x} step {step}: two answerers"
            );
        }
    }
}

/// A heartbeat whose sender hears every name the tests use.
fn hb(node: &str, incarnation: u64, seq: u64) -> Heartbeat {
    Heartbeat {
        node: node.into(),
        incarnation,
        seq,
        serving: BTreeSet::new(),
        hears: ["a", "b", "c", "n0", "n1", "n2", "n3", "n4"]
            .iter()
            .map(|n| name_hash(n))
            .collect(),
        view: Some(7),
        leaving: false,
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_gate_opens_one_settle_after_standing_and_closes_at_once_without_it() {
    let mut gate = SettleGate::new(ms(400));
    assert!(!gate.open(ms(0), false), "no standing, no answer");
    assert!(!gate.open(ms(100), true), "standing just gained: settling");
    assert!(!gate.open(ms(499), true), "still settling");
    assert!(gate.open(ms(500), true), "settled");
    assert!(gate.open(ms(5000), true), "stays open while standing holds");
    assert!(!gate.open(ms(5001), false), "closed the moment standing is lost");
    assert!(!gate.open(ms(5002), true), "regained: settles again");
    assert!(gate.open(ms(5402), true));
    let mut zero = SettleGate::new(Duration::ZERO);
    assert!(zero.open(ms(0), true), "a zero settle opens at once");
}

#[test]
fn codec_round_trips_and_authenticates() {
    let key = HeartbeatKey::new(b"shared secret");
    let mut beat = hb("node-a", 1_800_000_000_000, 42);
    beat.serving = set(&["eip-l2", "eip-vip"]);
    let bytes = encode(&beat, &key).unwrap();
    assert_eq!(decode(&bytes, &key).unwrap(), beat);
    assert_eq!(
        decode(&bytes, &HeartbeatKey::new(b"other secret")),
        Err(HeartbeatError::BadMac {
            node: "node-a".into()
        })
    );
    // Every single-bit flip is refused.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(decode(&bad, &key).is_err(), "flip at {i} accepted");
    }
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut], &key).is_err());
    }
}

#[test]
fn oversized_heartbeats_are_refused_not_cut() {
    let key = HeartbeatKey::new(b"k");
    let mut beat = hb("n", 1, 1);
    beat.serving = (0..100)
        .map(|i| format!("eip-with-a-rather-long-name-{i:03}"))
        .collect();
    assert_eq!(encode(&beat, &key), Err(EncodeError::TooLarge { count: 100 }));
    let long = hb(&"x".repeat(254), 1, 1);
    assert!(matches!(encode(&long, &key), Err(EncodeError::NameTooLong(_))));
}

#[test]
fn a_peer_that_does_not_hear_us_is_not_alive() {
    // One-way partition: b's heartbeats reach a, but b does not hear a.
    let mut m = Membership::new("a", cfg());
    let mut b = hb("b", 1, 0);
    b.hears = [name_hash("c")].into();
    m.heard(&b, ms(0));
    m.heard(&hb("c", 1, 0), ms(0));
    assert_eq!(m.hearing(ms(10)), set(&["b", "c"]), "a hears both, and says so");
    assert_eq!(m.alive(ms(10)), set(&["a", "c"]), "only c hears a back");
    // Three expected: a sees a and c, still a majority; with c gone too, a loses standing.
    assert!(matches!(
        m.standing(ms(10), &set(&["a", "b", "c"]), REACH),
        Standing::Good { .. }
    ));
    let mut c = hb("c", 1, 1);
    c.hears = [name_hash("b")].into();
    m.heard(&c, ms(20));
    assert_eq!(
        m.standing(ms(30), &set(&["a", "b", "c"]), REACH),
        Standing::Lost { seen: 1, needed: 2 }
    );
    assert_eq!(name_hash("a"), 0xe40c_292c, "FNV-1a 32, pinned");
}

#[test]
fn serving_sets_of_live_peers() {
    let mut m = Membership::new("a", cfg());
    let mut b = hb("b", 1, 0);
    b.serving = set(&["l2"]);
    m.heard(&b, ms(0));
    m.heard(&hb("c", 1, 0), ms(300));
    let serving = m.serving(ms(450));
    assert_eq!(serving.keys().collect::<Vec<_>>(), vec!["c"], "b is dead by then");
    assert_eq!(m.serving(ms(10))["b"], set(&["l2"]));
}

#[test]
fn dead_after_missed_heartbeats_and_replays_are_ignored() {
    let mut m = Membership::new("a", cfg());
    assert!(m.heard(&hb("b", 10, 0), ms(0)));
    assert!(!m.heard(&hb("a", 10, 0), ms(0)), "own heartbeat");
    assert_eq!(m.alive(ms(399)), set(&["a", "b"]));
    assert_eq!(m.alive(ms(400)), set(&["a"]), "400 ms without a heartbeat: dead");
    assert_eq!(m.next_expiry(ms(100)), Some(ms(400)));
    // A replay of the last heartbeat, or an older incarnation, does not revive it.
    assert!(!m.heard(&hb("b", 10, 0), ms(500)));
    assert!(!m.heard(&hb("b", 9, 99), ms(500)));
    assert_eq!(m.alive(ms(500)), set(&["a"]));
    // A restart whose wall clock jumped back (a lower incarnation) is taken once the last
    // incarnation has been silent for two detection times, and not before.
    let mut jumped = Membership::new("a", cfg());
    assert!(jumped.heard(&hb("b", 10, 5), ms(0)));
    assert!(
        !jumped.heard(&hb("b", 3, 0), ms(100)),
        "while 10 is alive: a replay"
    );
    assert!(!jumped.heard(&hb("b", 3, 0), ms(799)));
    assert!(jumped.heard(&hb("b", 3, 0), ms(800)));
    assert!(jumped.heard(&hb("b", 3, 1), ms(850)));
    assert_eq!(jumped.alive(ms(850)), set(&["a", "b"]));
    // A restart (new incarnation, seq from 0) does.
    assert!(m.heard(&hb("b", 11, 0), ms(600)));
    assert_eq!(m.alive(ms(600)), set(&["a", "b"]));
}

/// A peer heard and lost every 50 ms (a flapping link) for 10 s: liveness follows it, no
/// panic, and the majority rule never gives both sides of the flap standing at once.
#[test]
fn a_peer_flapping_every_50_ms_never_gives_two_sides_standing() {
    let expected = set(&["a", "b", "c"]);
    let mut a = Membership::new("a", cfg());
    let mut c = Membership::new("c", cfg());
    let mut seq = 0;
    for step in 0..200u64 {
        let now = ms(step * 50);
        // b always hears everyone; c's link to a flaps: up on even steps.
        seq += 1;
        a.heard(&hb("b", 1, seq), now);
        c.heard(&hb("b", 1, seq), now);
        if step % 2 == 0 {
            a.heard(&hb("c", 1, seq), now);
            c.heard(&hb("a", 1, seq), now);
        }
        // Whatever the flap, a and c both hear b: both keep a majority; the election (same
        // views) then gives one winner per IP. Standing never depends on the flapping link.
        assert!(matches!(a.standing(now, &expected, REACH), Standing::Good { .. }));
        assert!(matches!(c.standing(now, &expected, REACH), Standing::Good { .. }));
    }
    // Now the flapping node is cut from both others: it loses standing within dead_after.
    let mut lone = Membership::new("c", cfg());
    for step in 0..200u64 {
        let now = ms(step * 50);
        if step % 2 == 0 && step < 100 {
            lone.heard(&hb("a", 1, step + 1), now);
        }
        let good = matches!(lone.standing(now, &expected, REACH), Standing::Good { .. });
        if step >= 100 + 8 {
            assert!(!good, "step {step}: alone for 400 ms and still standing");
        }
    }
}

#[test]
fn majority_rule_every_partition_of_three_and_five() {
    for n in [3usize, 5] {
        let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let expected: BTreeSet<String> = names.iter().cloned().collect();
        // Every split of the nodes into two sides that cannot hear each other.
        for mask in 0u32..(1 << n) {
            let side = |i: usize| mask & (1 << i) != 0;
            let standing: Vec<bool> = (0..n)
                .map(|i| {
                    let mut m = Membership::new(names[i].clone(), cfg());
                    for j in (0..n).filter(|j| *j != i && side(*j) == side(i)) {
                        m.heard(&hb(&names[j], 1, 0), ms(0));
                    }
                    matches!(m.standing(ms(10), &expected, REACH), Standing::Good { .. })
                })
                .collect();
            let sides_answering: BTreeSet<bool> = (0..n).filter(|i| standing[*i]).map(side).collect();
            assert!(
                sides_answering.len() <= 1,
                "n={n} mask={mask:b}: both sides have standing"
            );
            let larger =
                (0..n).filter(|i| side(*i)).count() * 2 > n || (0..n).filter(|i| !side(*i)).count() * 2 > n;
            assert_eq!(!sides_answering.is_empty(), larger, "n={n} mask={mask:b}");
        }
    }
}

#[test]
fn two_node_survivor_keeps_standing_only_with_the_apiserver() {
    let expected = set(&["a", "b"]);
    let m = Membership::new("a", cfg());
    assert!(matches!(
        m.standing(ms(0), &expected, REACH),
        Standing::Good { .. }
    ));
    assert_eq!(
        m.standing(ms(0), &expected, NO_API),
        Standing::Lost { seen: 1, needed: 2 }
    );
    // A clean partition: both alone, both reach the apiserver; only the smaller name answers.
    let b = Membership::new("b", cfg());
    assert_eq!(
        b.standing(ms(0), &expected, REACH),
        Standing::Lost { seen: 1, needed: 2 }
    );
    // a is dead and the apiserver says so (its Node not Ready): b alone is expected, b answers.
    assert!(matches!(
        b.standing(ms(0), &set(&["b"]), REACH),
        Standing::Good { .. }
    ));
    // a's Lease expired (a dead, or cut from the apiserver): b answers alone, but not without
    // the apiserver itself.
    let expired = ApiFacts {
        reachable: true,
        peer_expired: true,
    };
    assert!(matches!(
        b.standing(ms(0), &expected, expired),
        Standing::Good { .. }
    ));
    let cut = ApiFacts {
        reachable: false,
        peer_expired: true,
    };
    assert_eq!(
        b.standing(ms(0), &expected, cut),
        Standing::Lost { seen: 1, needed: 2 }
    );
    // Every combination of two speakers, hearing or not, reaching the apiserver or not, each
    // judging the other's Lease expired or not: never two with standing across a partition.
    // (A Lease is judged expired only while its holder cannot renew, so reaches no apiserver:
    // `crate::tiebreak` proves it; combinations contradicting it are skipped.)
    for bits in 0u8..64 {
        let hears = bits & 1 != 0;
        let reach = [bits & 2 != 0, bits & 4 != 0];
        let heard_back = bits & 8 != 0;
        let expired = [bits & 16 != 0, bits & 32 != 0];
        if (expired[0] && reach[1]) || (expired[1] && reach[0]) {
            continue;
        }
        let mut ms_ = [Membership::new("a", cfg()), Membership::new("b", cfg())];
        // Each heartbeat lists its sender's peer only if the sender hears it, as real ones do.
        let beat = |from: &str, to: &str, hears_to: bool| {
            let mut beat = hb(from, 1, 0);
            beat.hears = if hears_to {
                [name_hash(to)].into()
            } else {
                BTreeSet::new()
            };
            beat
        };
        if hears {
            ms_[0].heard(&beat("b", "a", heard_back), ms(0));
        }
        if heard_back {
            ms_[1].heard(&beat("a", "b", hears), ms(0));
        }
        let good: Vec<bool> = (0..2)
            .map(|i| {
                let facts = ApiFacts {
                    reachable: reach[i],
                    peer_expired: expired[i],
                };
                // At 1 ms and long after the grace.
                let now = if bits & 1 == 0 && bits & 8 == 0 {
                    ms(1)
                } else {
                    ms(10_000)
                };
                matches!(ms_[i].standing(now, &expected, facts), Standing::Good { .. })
            })
            .collect();
        // Both may have standing only when they hear each other (no partition).
        if good[0] && good[1] {
            assert!(
                hears && heard_back,
                "bits {bits:06b}: two answer across a partition"
            );
        }
    }
    // Alone in a one-node cluster: a majority of one.
    assert!(matches!(
        m.standing(ms(0), &set(&["a"]), NO_API),
        Standing::Good { .. }
    ));
    // Speakers not expected (excluded or NotReady nodes) do not count towards the majority.
    let mut m = Membership::new("a", cfg());
    m.heard(&hb("stranger", 1, 0), ms(0));
    assert_eq!(
        m.standing(ms(1), &set(&["a", "b", "c"]), REACH),
        Standing::Lost { seen: 1, needed: 2 }
    );
}

/// Newly alone, a speaker keeps its peer in its alive set for the grace past the detection
/// time (its IPs stay with it, which may not have noticed yet), then takes them.
#[test]
fn a_lone_speaker_holds_the_peer_alive_for_the_grace() {
    let expected = set(&["a", "b"]);
    let mut a = Membership::new("a", cfg());
    a.heard(&hb("b", 1, 0), ms(0));
    // Heard and hearing: a majority of two.
    assert_eq!(
        a.standing(ms(100), &expected, NO_API),
        Standing::Good {
            alive: set(&["a", "b"])
        }
    );
    // Silent since 0: dead at 400 (cfg: 100 ms interval); held until 400 + 200.
    for (at, alive) in [(400, &["a", "b"][..]), (599, &["a", "b"]), (600, &["a"])] {
        assert_eq!(
            a.standing(ms(at), &expected, REACH),
            Standing::Good { alive: set(alive) },
            "at {at}"
        );
    }
    // Both moments are deadlines for the caller's timer: with no heartbeat arriving, nothing
    // else would wake it when the grace ends and the peer's IPs become this speaker's.
    assert_eq!(a.next_expiry(ms(100)), Some(ms(400)));
    assert_eq!(a.next_expiry(ms(400)), Some(ms(600)), "the grace's end");
    assert_eq!(a.next_expiry(ms(600)), None);
    // The larger name alone, Lease fresh: silent at once (stopping early is always safe).
    let mut b = Membership::new("b", cfg());
    b.heard(&hb("a", 1, 0), ms(0));
    assert_eq!(
        b.standing(ms(400), &expected, REACH),
        Standing::Lost { seen: 1, needed: 2 }
    );
    // A heartbeat that does not list us is no mutual contact: the grace runs from the last one
    // that did.
    let mut deaf = hb("b", 1, 1);
    deaf.hears = BTreeSet::new();
    a.heard(&deaf, ms(300));
    assert_eq!(
        a.standing(ms(600), &expected, REACH),
        Standing::Good { alive: set(&["a"]) }
    );
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
        let key = HeartbeatKey::new(b"k");
        let _ = decode(&bytes, &key);
        // A valid prefix with random tails neither.
        let mut valid = encode(&hb("n", 1, 2), &key).unwrap();
        valid.extend_from_slice(&bytes);
        let _ = decode(&valid, &key);
    }
}
