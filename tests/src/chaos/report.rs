//! What a chaos run injects and finds: the kinds of fault and the report (see [`super`]).

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use super::QUIET;

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A speaker SIGKILLed, restarted when the fault ends.
    SpeakerKill,
    /// A speaker SIGTERMed (a graceful hand-over), restarted when the fault ends.
    SpeakerTerm,
    /// A speaker SIGSTOPped, SIGCONTed when the fault ends.
    SpeakerPause,
    /// A speaker's API connection stalled without closing.
    SpeakerApiHang,
    /// A controller's API connection stalled without closing.
    ControllerApiHang,
    /// A controller SIGKILLed, restarted when the fault ends.
    ControllerKill,
    /// A node's LAN link down.
    LinkDown,
    /// 20 % loss both ways on a node's LAN link.
    PacketLoss,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = KINDS;
}

const KINDS: [FaultKind; 8] = [
    FaultKind::SpeakerKill,
    FaultKind::SpeakerTerm,
    FaultKind::SpeakerPause,
    FaultKind::SpeakerApiHang,
    FaultKind::ControllerApiHang,
    FaultKind::ControllerKill,
    FaultKind::LinkDown,
    FaultKind::PacketLoss,
];

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u32>,
    /// Services created and deleted.
    pub created: u32,
    /// Services deleted.
    pub deleted: u32,
    /// Violations: an IP held by two Services (when, which).
    pub duplicate_holds: Vec<String>,
    /// Violations: an ARP request answered by two MACs.
    pub double_answers: Vec<String>,
    /// Violations found once quiet: an IP not answered by exactly one node, a Service without an
    /// IP while the pool has room, an Eip usage that disagrees.
    pub not_converged: Vec<String>,
    /// Violations: a process panicked.
    pub panics: Vec<String>,
    /// ARP requests for IPs held at the time, and how many were answered.
    pub probes: (u64, u64),
    /// RSS in MiB at the start and the end, by process.
    pub rss: BTreeMap<String, (f64, f64)>,
    /// Every fault: kind, target, from and to (since the first fault could begin).
    pub timeline: Vec<(FaultKind, usize, Duration, Duration)>,
}

impl ChaosReport {
    /// The faults in force at `at` (since the start), as text.
    pub fn faults_at(&self, at: Duration) -> String {
        let active: Vec<String> = self
            .timeline
            .iter()
            .filter(|(_, _, from, to)| *from <= at && at <= *to + Duration::from_millis(500))
            .map(|(kind, target, _, _)| format!("{kind:?} on {target}"))
            .collect();
        if active.is_empty() {
            "no fault".to_owned()
        } else {
            active.join(", ")
        }
    }
}

impl ChaosReport {
    /// Every invariant violation.
    pub fn violations(&self) -> usize {
        self.duplicate_holds.len() + self.double_answers.len() + self.not_converged.len() + self.panics.len()
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "seed {}: {} violations", self.seed, self.violations());
        let _ = writeln!(out, "\n| fault | injected |\n|---|---:|");
        for (kind, n) in &self.faults {
            let _ = writeln!(out, "| {kind:?} | {n} |");
        }
        let (sent, answered) = self.probes;
        let availability = if sent == 0 {
            0.0
        } else {
            answered as f64 * 100.0 / sent as f64
        };
        let _ = writeln!(
            out,
            "\nServices created {}, deleted {}; ARP requests for held IPs {sent}, answered {availability:.2} %",
            self.created, self.deleted
        );
        let _ = writeln!(out, "\n| invariant | violations |\n|---|---:|");
        let _ = writeln!(
            out,
            "| no IP held by two Services | {} |",
            self.duplicate_holds.len()
        );
        let _ = writeln!(
            out,
            "| no ARP request answered by two MACs | {} |",
            self.double_answers.len()
        );
        let _ = writeln!(
            out,
            "| converged within {} s of the last fault | {} |",
            QUIET.as_secs(),
            self.not_converged.len()
        );
        let _ = writeln!(out, "| no panic | {} |", self.panics.len());
        let _ = writeln!(
            out,
            "\n| process | RSS start MiB | RSS end MiB |\n|---|---:|---:|"
        );
        for (name, (start, end)) in &self.rss {
            let _ = writeln!(out, "| {name} | {start:.1} | {end:.1} |");
        }
        for line in self
            .duplicate_holds
            .iter()
            .chain(&self.double_answers)
            .chain(&self.not_converged)
            .chain(&self.panics)
        {
            let _ = writeln!(out, "- {line}");
        }
        out
    }
}
