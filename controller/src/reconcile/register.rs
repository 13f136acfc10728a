//! Restart safety: the first pass re-registers every existing assignment, from Service and Eip
//! status, before anything is allocated (see the [module docs](super)).

use std::{collections::BTreeMap, net::IpAddr};

use kube::Resource;
use oxelb_crds::v1alpha2::Eip;
use oxelb_ipam::{IpFamily, RegisterError, ServiceKey, ServiceRequest};
use oxelb_runtime::source::EventType;

use super::{Out, Reconciler, event};
use crate::view::ServiceView;

impl Reconciler {
    /// Restart: registers what Service and Eip status say is assigned (see the module docs).
    pub(super) fn register_existing(
        &mut self,
        services: &BTreeMap<ServiceKey, &ServiceView>,
        eips: &BTreeMap<&str, &Eip>,
        requests: &BTreeMap<ServiceKey, ServiceRequest>,
        out: &mut Out,
    ) {
        let from_services: BTreeMap<ServiceKey, Vec<IpAddr>> = requests
            .keys()
            .filter_map(|key| Some((key.clone(), services.get(key)?.ingress.to_vec())))
            .collect();
        // Eip status.used: IP -> holders (skipping unparsable entries: they are repaired below).
        let mut from_eips: BTreeMap<ServiceKey, Vec<(IpAddr, String)>> = BTreeMap::new();
        for (name, eip) in eips {
            for (ip, holders) in eip
                .status
                .as_ref()
                .and_then(|s| s.used.as_ref())
                .into_iter()
                .flatten()
            {
                let Ok(ip) = ip.parse::<IpAddr>() else { continue };
                for holder in holders.split(';').filter(|h| !h.is_empty()) {
                    if let Some((ns, n)) = holder.split_once('/') {
                        from_eips
                            .entry(ServiceKey::new(ns, n))
                            .or_default()
                            .push((ip, (*name).to_owned()));
                    }
                }
            }
        }
        let listed = |key: &ServiceKey, ip: IpAddr| {
            from_eips
                .get(key)
                .is_some_and(|v| v.iter().any(|(i, _)| *i == ip))
        };

        let mut registered = 0usize;
        // 1. agreed, 2. Service status only.
        for agreed in [true, false] {
            for (key, ips) in &from_services {
                let Some(request) = requests.get(key) else {
                    continue;
                };
                for ip in ips.iter().filter(|ip| listed(key, **ip) == agreed) {
                    match self.allocator.register_existing(request, *ip) {
                        Ok(assigned) => {
                            registered += 1;
                            // A truncated `used` (usedTruncated) leaves IPs out on purpose: not a disagreement.
                            let listed_in_full = eips
                                .get(assigned.pool.as_str())
                                .and_then(|e| e.status.as_ref())
                                .and_then(|s| s.used_truncated)
                                != Some(true);
                            if !agreed && listed_in_full {
                                tracing::warn!(service = %key, %ip, pool = %assigned.pool, "Service status holds an IP its Eip status does not list; registered, Eip status repaired");
                                self.repaired(
                                    out,
                                    eips,
                                    &assigned.pool,
                                    format!("status.used did not list {ip} held by Service {key}; repaired"),
                                );
                            }
                        }
                        Err(error) => self.refused_registration(out, services, key, &error),
                    }
                }
            }
        }
        // 3. Eip status only.
        for (key, claims) in &from_eips {
            for (ip, pool) in claims {
                let in_service = from_services.get(key).is_some_and(|ips| ips.contains(ip));
                if in_service {
                    continue;
                }
                let Some(request) = requests.get(key) else {
                    tracing::warn!(service = %key, %ip, eip = %pool, "Eip status lists an IP for a Service that does not exist or is not handled; dropped");
                    self.repaired(out, eips, pool, format!(
                        "status.used listed {ip} for Service {key}, which does not exist or is not handled; dropped"
                    ));
                    continue;
                };
                let family_held = self
                    .allocator
                    .assignment(key)
                    .is_some_and(|a| a.ips.iter().any(|h| IpFamily::of(h.ip) == IpFamily::of(*ip)));
                if family_held {
                    tracing::warn!(service = %key, %ip, eip = %pool, "Eip status lists an IP the Service does not hold; dropped");
                    self.repaired(out, eips, pool, format!(
                        "status.used listed {ip} for Service {key}, which holds another IP of that family; dropped"
                    ));
                    continue;
                }
                match self.allocator.register_existing(request, *ip) {
                    Ok(_) => {
                        registered += 1;
                        tracing::warn!(service = %key, %ip, eip = %pool, "Eip status lists an IP the Service status lacks; adopted, Service status repaired");
                        self.repaired(
                            out,
                            eips,
                            pool,
                            format!(
                                "status.used listed {ip} for Service {key}, whose status lacked it; adopted"
                            ),
                        );
                    }
                    Err(error) => self.refused_registration(out, services, key, &error),
                }
            }
        }
        tracing::info!(
            registered,
            services = from_services.len(),
            "re-registered existing assignments"
        );
    }

    pub(super) fn refused_registration(
        &mut self,
        out: &mut Out,
        services: &BTreeMap<ServiceKey, &ServiceView>,
        key: &ServiceKey,
        error: &RegisterError,
    ) {
        tracing::warn!(service = %key, %error, "existing assignment refused; the Service gets another IP");
        if let Some(service) = services.get(key) {
            out.early.push(event(
                service.object_ref(),
                EventType::Warning,
                "IPConflict",
                "Register",
                format!("{error}; assigning another IP"),
            ));
        }
    }

    pub(super) fn repaired(&mut self, out: &mut Out, eips: &BTreeMap<&str, &Eip>, pool: &str, note: String) {
        if let Some(eip) = eips.get(pool) {
            out.early.push(event(
                eip.object_ref(&()),
                EventType::Warning,
                "StatusRepaired",
                "Register",
                note,
            ));
        }
    }
}
