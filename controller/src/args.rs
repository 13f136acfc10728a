//! The controller's command-line flags ([`Args`]) and what is derived from them: which Services
//! are handled, the webhook's object names, the Lease configuration.

use std::time::Duration;

use clap::Parser;
use oxelb_runtime::cli::CommonArgs;

use crate::{handling::Handling, leader::LeaseConfig, webhook};

/// The controller's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "oxelb-controller",
    version,
    about = "oxelb controller: allocates LoadBalancer IPs from Eip pools"
)]
pub struct Args {
    /// Flags shared with the speaker.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Handle Services whose `spec.loadBalancerClass` is this value, without any annotation.
    /// Services of any other class are never touched.
    #[arg(long, env = "OXELB_LB_CLASS")]
    pub lb_class: Option<String>,

    /// Handle every class-less `type: LoadBalancer` Service, with or without the
    /// `lb.kubesphere.io/v1alpha1: openelb` annotation (be the cluster's default load balancer).
    #[arg(long, env = "OXELB_DEFAULT_LB")]
    pub default_lb: bool,

    /// Elect a leader through a Lease (with `--source kube`); only the leader writes. With `dir:`
    /// there is one process and no election.
    #[arg(long, env = "OXELB_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "oxelb-system")]
    pub lease_namespace: String,

    /// Name of the leader-election Lease (the RBAC Role allows only this name).
    #[arg(long, default_value = "oxelb-controller")]
    pub lease_name: String,

    /// This replica's identity in the Lease (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds a Lease is valid after its last renewal.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// Seconds after the start of its last successful renewal that the leader keeps writing; must
    /// be less than the lease duration (the difference is the margin against two writers).
    #[arg(long, default_value_t = 10)]
    pub renew_deadline_seconds: u64,

    /// Seconds between renewals (and between checks by standby replicas).
    #[arg(long, default_value_t = 2)]
    pub retry_period_seconds: u64,

    /// The largest Eip the controller writes, in bytes of JSON. Above it, `status.used` lists only
    /// the lowest addresses in use that fit and the status says `usedTruncated: true` (`usage`
    /// stays exact). Keep it under the apiserver's request limit (etcd's 1.5 MiB by default).
    #[arg(long, env = "OXELB_EIP_STATUS_MAX_BYTES", default_value_t = crate::reconcile::DEFAULT_EIP_STATUS_MAX_BYTES)]
    pub eip_status_max_bytes: usize,

    /// Serve the validating admission webhook (with `--source kube`; the `dir:` source has no
    /// apiserver to call it). The controller is ready only once it serves.
    #[arg(long, env = "OXELB_WEBHOOK", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook: bool,

    /// Where the webhook listens (HTTPS; the Service oxelb-webhook targets port 9443).
    #[arg(long, env = "OXELB_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: std::net::SocketAddr,

    /// Namespace of the webhook Service and certificate Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "oxelb-system")]
    pub webhook_namespace: String,

    /// The webhook Service (the certificate's DNS names).
    #[arg(long, default_value = "oxelb-webhook")]
    pub webhook_service: String,

    /// The Secret holding the webhook certificate (the RBAC Role allows only this name).
    #[arg(long, default_value = "oxelb-webhook-cert")]
    pub webhook_secret: String,

    /// The ValidatingWebhookConfiguration whose caBundle is kept current.
    #[arg(long, default_value = "oxelb-validating-webhook")]
    pub webhook_configuration: String,

    /// Uninstall mode: allocate nothing and remove oxelb's finalizers from every Service and Eip
    /// (status, labels and IPs stay), ready once none is left; then deleting oxelb's manifest leaves
    /// nothing stuck. No leader election: every replica removes them.
    #[arg(long, env = "OXELB_UNINSTALL", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub uninstall: bool,
}

impl Args {
    /// Which Services are handled.
    pub fn handling(&self) -> Handling {
        Handling {
            lb_class: self.lb_class.clone().filter(|c| !c.is_empty()),
            default_lb: self.default_lb,
        }
    }

    /// The webhook's object names.
    pub fn webhook_names(&self) -> webhook::bootstrap::WebhookNames {
        webhook::bootstrap::WebhookNames {
            namespace: self.webhook_namespace.clone(),
            secret: self.webhook_secret.clone(),
            service: self.webhook_service.clone(),
            configuration: self.webhook_configuration.clone(),
        }
    }

    /// The Lease configuration; errors name the flag.
    pub fn lease_config(&self) -> Result<LeaseConfig, String> {
        if self.renew_deadline_seconds == 0 || self.renew_deadline_seconds >= self.lease_duration_seconds {
            return Err(format!(
                "--renew-deadline-seconds {} must be above 0 and below --lease-duration-seconds {}",
                self.renew_deadline_seconds, self.lease_duration_seconds
            ));
        }
        if self.retry_period_seconds == 0 || self.retry_period_seconds >= self.renew_deadline_seconds {
            return Err(format!(
                "--retry-period-seconds {} must be above 0 and below --renew-deadline-seconds {}",
                self.retry_period_seconds, self.renew_deadline_seconds
            ));
        }
        let identity = self
            .identity
            .clone()
            .filter(|i| !i.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("oxelb-controller-{}", std::process::id()));
        Ok(LeaseConfig {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            identity,
            lease_duration: Duration::from_secs(self.lease_duration_seconds),
            renew_deadline: Duration::from_secs(self.renew_deadline_seconds),
            retry_period: Duration::from_secs(self.retry_period_seconds),
        })
    }
}
