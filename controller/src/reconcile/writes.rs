//! The writes that make one Service or one Eip agree with the allocator: Service metadata and
//! status, Eip status and finalizer, and the Events that go with them.

use std::{collections::BTreeSet, net::IpAddr};

use kube::Resource;
use oxelb_crds::{
    names,
    v1alpha2::{Eip, EipStatus},
};
use oxelb_ipam::ServiceKey;
use oxelb_runtime::source::{EventType, MetadataPatch};
use serde_json::{Value, json};

use super::{
    Action, Out, Reconciler, Target,
    eip_status::{
        UsedFit, desired_eip_status, eip_size_without_used, eip_status_patch, used_fit, used_patch,
    },
    event, is_deleting, join_ips,
};
use crate::view::ServiceView;

impl Reconciler {
    /// The writes that make one Service agree with the allocator.
    pub(super) fn service_writes(&self, key: &ServiceKey, service: &ServiceView, out: &mut Out) {
        let target = Target::Service(key.clone());
        let base_version: Option<String> = service.resource_version.as_deref().map(Into::into);
        let assignment = self.allocator.assignment(key).unwrap_or_default();
        let holds = !assignment.ips.is_empty();
        let ours = holds || (self.handling.handles(service) && !service.deleting);
        let has_finalizer = service.has_finalizer(names::SERVICE_FINALIZER);
        let label = service.pool_label.as_deref();

        if !ours && !has_finalizer {
            return; // Not ours, never was (or already cleaned up).
        }

        // Metadata: the finalizer while the Service holds an IP, and the pool label.
        let desired_label = assignment.ips.first().map(|a| a.pool.clone());
        let mut patch = MetadataPatch {
            resource_version: base_version.clone(),
            ..Default::default()
        };
        if label != desired_label.as_deref() && (desired_label.is_some() || label.is_some()) {
            patch
                .labels
                .insert(names::EIP_POOL_LABEL.to_owned(), desired_label);
        }
        let adding = holds && !has_finalizer;
        let removing = !holds && has_finalizer;
        let finalizers = service.finalizers.iter().map(|f| f.to_string());
        if adding {
            patch.finalizers = Some(finalizers.chain([names::SERVICE_FINALIZER.to_owned()]).collect());
        } else if removing {
            patch.finalizers = Some(finalizers.filter(|f| f != names::SERVICE_FINALIZER).collect());
        }
        // Metadata before status: a status write bumps the resourceVersion that the metadata patch
        // carries as its precondition. A release goes last of all, once the Eip status no longer
        // lists the Service.
        let phase = if removing { &mut out.late } else { &mut out.early };
        if !patch.labels.is_empty() || patch.finalizers.is_some() {
            phase.push(Action::Metadata {
                target: target.clone(),
                base_version: base_version.clone(),
                patch,
            });
        }

        // Status: the ingress is exactly the held IPs (cleared when a live Service holds none). A
        // deleting Service's status is left alone: it is going away.
        let current = &*service.ingress;
        let desired: Vec<IpAddr> = assignment.ips.iter().map(|a| a.ip).collect();
        if current != desired.as_slice()
            && !(service.deleting && desired.is_empty())
            && (ours || !current.is_empty())
        {
            let ingress = if desired.is_empty() {
                Value::Null
            } else {
                Value::Array(desired.iter().map(|ip| json!({"ip": ip.to_string()})).collect())
            };
            if !desired.is_empty() {
                phase.push(event(
                    service.object_ref(),
                    EventType::Normal,
                    "AssignedIP",
                    "Allocate",
                    format!(
                        "assigned {} from Eip {}",
                        join_ips(&desired),
                        assignment
                            .ips
                            .iter()
                            .map(|a| a.pool.as_str())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            phase.push(Action::Status {
                target,
                base_version,
                status: json!({"loadBalancer": {"ingress": ingress}}),
            });
        }
    }

    /// The writes that make one Eip agree with the allocator: status, finalizer, drain warning.
    pub(super) fn eip_writes(&mut self, name: &str, eip: &Eip, out: &mut Out) {
        let target = Target::Eip(name.to_owned());
        let base_version = eip.metadata.resource_version.clone();
        // The pool's figures; its IPs in use are walked where needed, never copied whole.
        let status = self.allocator.pool_summary(name);
        let in_use = status.as_ref().map_or(0, |s| s.usage);
        let finalizers = eip.metadata.finalizers.clone().unwrap_or_default();
        let has_finalizer = finalizers.iter().any(|f| f == names::EIP_FINALIZER);
        let deleting = is_deleting(eip);

        // A drained, deleting Eip only loses its finalizer: its status no longer matters.
        if deleting && in_use == 0 {
            self.draining.remove(name);
            if has_finalizer {
                out.late.push(Action::Metadata {
                    target,
                    base_version: base_version.clone(),
                    patch: MetadataPatch {
                        finalizers: Some(
                            finalizers
                                .into_iter()
                                .filter(|f| f != names::EIP_FINALIZER)
                                .collect(),
                        ),
                        resource_version: base_version,
                        ..Default::default()
                    },
                });
            }
            return;
        }

        // The finalizer before the status write (which bumps the resourceVersion the metadata patch
        // carries as its precondition).
        if !deleting && !has_finalizer {
            let mut list = finalizers;
            list.push(names::EIP_FINALIZER.to_owned());
            out.eip.push(Action::Metadata {
                target: target.clone(),
                base_version: base_version.clone(),
                patch: MetadataPatch {
                    finalizers: Some(list),
                    resource_version: base_version.clone(),
                    ..Default::default()
                },
            });
        }

        let desired = match &status {
            Some(status) => desired_eip_status(status),
            None => EipStatus {
                ready: Some(false),
                ..Default::default()
            },
        };
        let mut patch = eip_status_patch(eip.status.as_ref(), &desired);
        let stored_truncated = eip.status.as_ref().and_then(|s| s.used_truncated);
        let mut truncation_event = None;
        if status.is_some() {
            // Never write an Eip the apiserver cannot store: list the lowest addresses that fit
            // (deterministic, so every pass and every replica writes the same map).
            let budget = self
                .eip_status_max_bytes
                .saturating_sub(eip_size_without_used(eip));
            let fit = used_fit(self.allocator.pool_used(name), budget);
            let have = eip.status.as_ref().and_then(|s| s.used.as_ref());
            let used = used_patch(have, self.allocator.pool_used(name).take(fit.listed), |ip| {
                self.allocator.pool_of_used(ip) == Some(name)
                    && (!fit.truncated || fit.last.is_some_and(|last| ip <= last))
            });
            let flag = match (fit.truncated, stored_truncated) {
                (true, Some(true)) | (false, None) => None,
                (true, _) => Some(Value::Bool(true)),
                (false, Some(_)) => Some(Value::Null),
            };
            if used.is_some() || flag.is_some() {
                let mut fields = match patch.take() {
                    Some(Value::Object(fields)) => fields,
                    _ => serde_json::Map::new(),
                };
                if let Some(used) = used {
                    fields.insert("used".into(), Value::Object(used));
                }
                if let Some(flag) = flag {
                    fields.insert("usedTruncated".into(), flag);
                }
                patch = Some(Value::Object(fields));
            }
            truncation_event = self.note_truncation(name, fit, in_use, stored_truncated);
        } else {
            self.truncated.remove(name);
        }
        if let Some(patch) = patch {
            out.eip.push(Action::Status {
                target,
                base_version,
                status: patch,
            });
        }
        if let Some(note) = truncation_event {
            out.eip.push(event(
                eip.object_ref(&()),
                EventType::Warning,
                "EipStatusTruncated",
                "UpdateStatus",
                note,
            ));
        }

        if let (true, Some(_)) = (deleting, &status) {
            let holders: BTreeSet<String> = self
                .allocator
                .pool_used(name)
                .flat_map(|(_, holders)| holders)
                .map(ToString::to_string)
                .collect();
            let note = format!(
                "Eip {name} is being deleted but {in_use} IP(s) are still used by Service(s) {}; it gives no new IPs and is deleted once they are released",
                holders.into_iter().collect::<Vec<_>>().join(", ")
            );
            if self.draining.get(name) != Some(&note) {
                tracing::warn!(
                    eip = name,
                    in_use,
                    "Eip deletion waits for its Services to release their IPs"
                );
                out.eip.push(event(
                    eip.object_ref(&()),
                    EventType::Warning,
                    "EipInUse",
                    "Delete",
                    note.clone(),
                ));
                self.draining.insert(name.to_owned(), note);
            }
        }
    }

    /// Remembers whether Eip `name`'s `status.used` is written truncated; answers the Warning to
    /// publish when it becomes so. Said once: not while this term already said it, nor when the
    /// stored status already says `usedTruncated` (a restart or a new leader says nothing new).
    fn note_truncation(
        &mut self,
        name: &str,
        fit: UsedFit,
        in_use: usize,
        stored: Option<bool>,
    ) -> Option<String> {
        if !fit.truncated {
            if self.truncated.remove(name).is_some() {
                tracing::info!(
                    eip = name,
                    in_use,
                    "Eip status.used lists every address in use again"
                );
            }
            return None;
        }
        let said = self.truncated.insert(name.to_owned(), fit.listed).is_some();
        if said || stored == Some(true) {
            return None;
        }
        let max = self.eip_status_max_bytes;
        tracing::warn!(
            eip = name,
            in_use,
            listed = fit.listed,
            max_bytes = max,
            "Eip status.used truncated to the lowest addresses: the whole map would exceed the size the apiserver can store"
        );
        Some(format!(
            "status.used lists the lowest {} of the {in_use} addresses in use: all of them would make the Eip larger than --eip-status-max-bytes ({max} bytes), beyond what the apiserver stores; usage is exact and every Service's status names its IP",
            fit.listed
        ))
    }
}
