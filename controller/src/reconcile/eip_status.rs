//! Eip status as the controller writes it: the figures a pool calls for and the merge patches
//! that bring an Eip's status there (pure functions of values).

use std::{collections::BTreeMap, net::IpAddr};

use oxelb_crds::v1alpha2::EipStatus;
use oxelb_ipam::{PoolStatus, ServiceKey};
use serde_json::{Value, json};

/// The Eip status a pool's figures call for (OpenELB's fields), without `used`: that map holds
/// one entry per IP in use, and [`used_patch`] compares it entry by entry instead of building it.
pub fn desired_eip_status(status: &PoolStatus) -> EipStatus {
    let as_i64 = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    EipStatus {
        occupied: Some(status.occupied),
        usage: Some(as_i64(status.usage as u128)),
        pool_size: Some(as_i64(status.pool_size)),
        used: None,
        first_ip: Some(status.first_ip.to_string()),
        last_ip: Some(status.last_ip.to_string()),
        ready: Some(true),
        v4: Some(status.v4),
        used_truncated: None,
    }
}

/// The default bound on an Eip's size as the controller writes it (`--eip-status-max-bytes`):
/// 1 MiB, well under the apiserver's default request limit of 1.5 MiB (etcd's
/// `--max-request-bytes`), leaving room for the request's own envelope.
pub const DEFAULT_EIP_STATUS_MAX_BYTES: usize = 1024 * 1024;

/// The bytes an Eip takes besides its `status.used` entries, as JSON: its metadata and spec as
/// they are, plus a fixed allowance for `apiVersion`, `kind` and the status's other fields.
pub fn eip_size_without_used(eip: &oxelb_crds::v1alpha2::Eip) -> usize {
    // The status's scalar fields, `apiVersion`, `kind` and the braces: well under this.
    const ALLOWANCE: usize = 512;
    let metadata = serde_json::to_vec(&eip.metadata).map_or(0, |v| v.len());
    let spec = serde_json::to_vec(&eip.spec).map_or(0, |v| v.len());
    metadata + spec + ALLOWANCE
}

/// How many `status.used` entries fit in `budget` bytes of JSON, taken in order from `used` (the
/// lowest addresses first), and the last address listed; `truncated` when some are left out. An
/// entry is `"ip":"ns/name[;ns/name]",`: names are DNS labels, so nothing in them is escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsedFit {
    /// Entries listed.
    pub listed: usize,
    /// The highest address listed (`None` when none is).
    pub last: Option<IpAddr>,
    /// Some entries are left out.
    pub truncated: bool,
}

/// See [`UsedFit`].
pub fn used_fit<'a>(used: impl IntoIterator<Item = (IpAddr, &'a [ServiceKey])>, budget: usize) -> UsedFit {
    use std::fmt::Write;
    let mut fit = UsedFit {
        listed: 0,
        last: None,
        truncated: false,
    };
    let mut spent = 0usize;
    let mut ip_text = String::new();
    for (ip, holders) in used {
        ip_text.clear();
        // Writing to a String cannot fail.
        let _ = write!(ip_text, "{ip}");
        // Quotes around key and value, the colon and the comma.
        let mut size = ip_text.len() + 6;
        for (i, holder) in holders.iter().enumerate() {
            size += usize::from(i > 0) + holder.namespace.len() + 1 + holder.name.len();
        }
        if spent + size > budget {
            fit.truncated = true;
            break;
        }
        spent += size;
        fit.listed += 1;
        fit.last = Some(ip);
    }
    fit
}

/// The merge patch of `status.used` (`ip: ns/name[;ns/name]`) that turns `have` into the IPs in
/// use `want` (ascending, each with its sorted holders), or `None` when they already agree: an
/// entry per IP that is missing or says other holders, and a null per entry to remove (a merge
/// patch merges maps). `wanted` answers whether an IP is among `want`.
///
/// Entry by entry, with one key and one value buffer: the map of a pool with tens of thousands of
/// IPs in use is never built again on each pass that moves one of them.
pub fn used_patch<'a>(
    have: Option<&BTreeMap<String, String>>,
    want: impl IntoIterator<Item = (IpAddr, &'a [ServiceKey])>,
    wanted: impl Fn(IpAddr) -> bool,
) -> Option<serde_json::Map<String, Value>> {
    use std::fmt::Write;
    let empty = BTreeMap::new();
    let have = have.unwrap_or(&empty);
    let mut used = serde_json::Map::new();
    let (mut key, mut value) = (String::new(), String::new());
    for (ip, holders) in want {
        key.clear();
        value.clear();
        // Writing to a String cannot fail.
        let _ = write!(key, "{ip}");
        for (i, holder) in holders.iter().enumerate() {
            let _ = write!(value, "{}{holder}", if i == 0 { "" } else { ";" });
        }
        if have.get(key.as_str()) != Some(&value) {
            used.insert(key.clone(), Value::String(value.clone()));
        }
    }
    for held in have.keys() {
        // Kept only when it is an IP in use written as the controller writes it.
        let kept = held.parse::<IpAddr>().is_ok_and(|ip| {
            key.clear();
            let _ = write!(key, "{ip}");
            key == *held && wanted(ip)
        });
        if !kept {
            used.insert(held.clone(), Value::Null);
        }
    }
    (!used.is_empty()).then_some(used)
}

/// The merge patch that turns `current` into `desired` (only the fields `desired` sets; `used`
/// entries that must go are set to null, because a merge patch merges maps), or `None` when they
/// already agree. The controller gives no `used` here (see [`used_patch`]).
pub fn eip_status_patch(current: Option<&EipStatus>, desired: &EipStatus) -> Option<Value> {
    let empty = EipStatus::default();
    let current = current.unwrap_or(&empty);
    let mut patch = serde_json::Map::new();
    let mut field = |name: &str, cur: Value, want: Value| {
        if !want.is_null() && cur != want {
            patch.insert(name.to_owned(), want);
        }
    };
    field("occupied", json!(current.occupied), json!(desired.occupied));
    field("usage", json!(current.usage), json!(desired.usage));
    field("poolSize", json!(current.pool_size), json!(desired.pool_size));
    field("firstIP", json!(current.first_ip), json!(desired.first_ip));
    field("lastIP", json!(current.last_ip), json!(desired.last_ip));
    field("ready", json!(current.ready), json!(desired.ready));
    field("v4", json!(current.v4), json!(desired.v4));
    if let Some(want) = &desired.used {
        // Borrowed, not cloned: with tens of thousands of IPs in one pool this runs on every pass
        // that moves one of them.
        let empty = BTreeMap::new();
        let have = current.used.as_ref().unwrap_or(&empty);
        if have != want {
            let mut used = serde_json::Map::new();
            for key in have.keys().filter(|k| !want.contains_key(*k)) {
                used.insert(key.clone(), Value::Null);
            }
            for (key, value) in want {
                if have.get(key) != Some(value) {
                    used.insert(key.clone(), Value::String(value.clone()));
                }
            }
            patch.insert("used".into(), Value::Object(used));
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}
