//! What an outside observer of a LAN sees of layer2 claims, from the ARP packets of a capture
//! ([`crate::pcap::arp_frames`]): when each IP was first claimed, and whether two MACs ever
//! answered for one IP at once. Pure: frames in, findings out.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use crate::pcap::ArpFrame;

/// A MAC address.
pub type Mac = [u8; 6];

/// The ARP packets of one capture, in capture order.
#[derive(Clone, Debug, Default)]
pub struct LanClaims {
    frames: Vec<ArpFrame>,
}

/// A request answered by more than one MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoubleAnswer {
    /// The IP asked for.
    pub ip: Ipv4Addr,
    /// When the request was sent.
    pub at: Duration,
    /// The MACs that answered it.
    pub macs: BTreeSet<Mac>,
}

impl LanClaims {
    /// The findings over `frames` (in capture order).
    pub fn new(frames: Vec<ArpFrame>) -> Self {
        Self { frames }
    }

    /// The first claim of `ip` (a reply or a gratuitous ARP for it) captured at or after `after`.
    pub fn first_claim(&self, ip: Ipv4Addr, after: Duration) -> Option<(Duration, Mac)> {
        self.frames
            .iter()
            .find(|f| f.at >= after && f.sender_ip == ip && f.is_claim())
            .map(|f| (f.at, f.sender_mac))
    }

    /// The MACs that claimed `ip` in `[from, to)`.
    pub fn claimants(&self, ip: Ipv4Addr, from: Duration, to: Duration) -> BTreeSet<Mac> {
        self.frames
            .iter()
            .filter(|f| f.at >= from && f.at < to && f.sender_ip == ip && f.is_claim())
            .map(|f| f.sender_mac)
            .collect()
    }

    /// Every request from `asker` that more than one MAC answered (the replies to `ip` between
    /// that request and the asker's next request for the same IP): two answerers at once.
    pub fn double_answers(&self, asker: Ipv4Addr) -> Vec<DoubleAnswer> {
        let mut open: std::collections::BTreeMap<Ipv4Addr, (Duration, BTreeSet<Mac>)> =
            std::collections::BTreeMap::new();
        let mut out = Vec::new();
        let close = |ip: Ipv4Addr, at: Duration, macs: BTreeSet<Mac>, out: &mut Vec<DoubleAnswer>| {
            if macs.len() > 1 {
                out.push(DoubleAnswer { ip, at, macs });
            }
        };
        for f in &self.frames {
            if !f.reply && f.sender_ip == asker && f.target_ip != asker {
                if let Some((at, macs)) = open.insert(f.target_ip, (f.at, BTreeSet::new())) {
                    close(f.target_ip, at, macs, &mut out);
                }
            } else if f.reply
                && f.target_ip == asker
                && let Some((_, macs)) = open.get_mut(&f.sender_ip)
            {
                macs.insert(f.sender_mac);
            }
        }
        for (ip, (at, macs)) in open {
            close(ip, at, macs, &mut out);
        }
        out.sort_by_key(|d| d.at);
        out
    }

    /// The requests from `asker` in `[from, to)` for which `counts(ip, at)` holds, and how many
    /// of them got a reply before the asker's next request for the same IP.
    pub fn answered(
        &self,
        asker: Ipv4Addr,
        from: Duration,
        to: Duration,
        counts: impl Fn(Ipv4Addr, Duration) -> bool,
    ) -> (u64, u64) {
        let mut open: std::collections::BTreeMap<Ipv4Addr, bool> = std::collections::BTreeMap::new();
        let (mut sent, mut answered) = (0u64, 0u64);
        for f in &self.frames {
            if !f.reply && f.sender_ip == asker && f.target_ip != asker {
                if let Some(replied) = open.remove(&f.target_ip) {
                    answered += u64::from(replied);
                }
                if f.at >= from && f.at < to && counts(f.target_ip, f.at) {
                    sent += 1;
                    open.insert(f.target_ip, false);
                }
            } else if f.reply
                && f.target_ip == asker
                && let Some(replied) = open.get_mut(&f.sender_ip)
            {
                *replied = true;
            }
        }
        answered += open.values().map(|r| u64::from(*r)).sum::<u64>();
        (sent, answered)
    }

    /// How often the MAC claiming `ip` changed in `[from, to)` (claims in capture order).
    pub fn moves(&self, ip: Ipv4Addr, from: Duration, to: Duration) -> usize {
        let mut last: Option<Mac> = None;
        let mut moves = 0;
        for f in self
            .frames
            .iter()
            .filter(|f| f.at >= from && f.at < to && f.sender_ip == ip && f.is_claim())
        {
            if last.is_some_and(|mac| mac != f.sender_mac) {
                moves += 1;
            }
            last = Some(f.sender_mac);
        }
        moves
    }
}

/// `mac` as `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
    const A: Mac = [2, 0, 0, 0, 0, 1];
    const B: Mac = [2, 0, 0, 0, 0, 2];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn request(at: u64) -> ArpFrame {
        ArpFrame {
            at: ms(at),
            reply: false,
            sender_mac: [2, 0, 0, 0, 0, 9],
            sender_ip: ASKER,
            target_ip: IP,
        }
    }

    fn reply(at: u64, mac: Mac) -> ArpFrame {
        ArpFrame {
            at: ms(at),
            reply: true,
            sender_mac: mac,
            sender_ip: IP,
            target_ip: ASKER,
        }
    }

    fn gratuitous(at: u64, mac: Mac) -> ArpFrame {
        ArpFrame {
            at: ms(at),
            reply: false,
            sender_mac: mac,
            sender_ip: IP,
            target_ip: IP,
        }
    }

    #[test]
    fn first_claim_counts_replies_and_gratuitous_arp_not_requests() {
        let claims = LanClaims::new(vec![request(0), gratuitous(10, A), request(100), reply(101, A)]);
        assert_eq!(claims.first_claim(IP, ms(0)), Some((ms(10), A)));
        assert_eq!(claims.first_claim(IP, ms(11)), Some((ms(101), A)));
        assert_eq!(claims.first_claim(IP, ms(102)), None);
        assert_eq!(claims.first_claim(ASKER, ms(0)), None);
    }

    #[test]
    fn one_answer_per_request_is_clean_and_a_move_is_counted() {
        let claims = LanClaims::new(vec![
            request(0),
            reply(1, A),
            request(100),
            gratuitous(150, B),
            reply(151, B),
            request(200),
            reply(201, B),
        ]);
        assert!(claims.double_answers(ASKER).is_empty());
        assert_eq!(claims.moves(IP, ms(0), ms(300)), 1);
        assert_eq!(claims.answered(ASKER, ms(0), ms(300), |_, _| true), (3, 3));
        assert_eq!(claims.answered(ASKER, ms(50), ms(300), |_, _| true), (2, 2));
        assert_eq!(
            claims.answered(ASKER, ms(0), ms(300), |_, at| at < ms(150)),
            (2, 2)
        );
        let unanswered = LanClaims::new(vec![request(0), request(100), reply(101, A)]);
        assert_eq!(unanswered.answered(ASKER, ms(0), ms(300), |_, _| true), (2, 1));
        assert_eq!(claims.claimants(IP, ms(0), ms(300)), BTreeSet::from([A, B]));
        assert_eq!(claims.claimants(IP, ms(150), ms(300)), BTreeSet::from([B]));
    }

    #[test]
    fn two_replies_to_one_request_are_found() {
        let claims = LanClaims::new(vec![
            request(0),
            reply(1, A),
            request(100),
            reply(101, A),
            reply(102, B),
            request(200),
            reply(201, B),
            request(300),
            reply(301, A),
            reply(302, B),
        ]);
        let found = claims.double_answers(ASKER);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].at, ms(100));
        assert_eq!(found[1].at, ms(300), "the last request is closed at the end");
        assert_eq!(found[0].macs, BTreeSet::from([A, B]));
        assert_eq!(claims.moves(IP, ms(0), ms(400)), 3);
        assert_eq!(mac_text(&A), "02:00:00:00:00:01");
    }
}
