//! Leader election on a coordination.k8s.io Lease, for running more than one
//! replica. Only the holder runs the controller (so only it writes); it renews
//! every `renew` and gives up leadership by exiting when it cannot renew
//! before the lease would expire; on shutdown it releases the lease so a
//! standby takes over at once instead of after `duration`.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{info, warn};

/// Lease settings (flags of `keyrotor run`).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew: Duration,
}

pub struct Leadership {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

impl Leadership {
    /// Waits until this replica holds the lease.
    pub async fn acquire(client: Client, config: LeaseConfig) -> Leadership {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let me = Leadership { api, config };
        let mut said = false;
        loop {
            match me.try_take().await {
                Ok(true) => {
                    info!(lease = %me.config.name, identity = %me.config.identity, "became the leader");
                    return me;
                }
                Ok(false) if !said => {
                    info!(lease = %me.config.name, "another replica leads; standing by");
                    said = true;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot read the leader lease"),
            }
            tokio::time::sleep(me.config.renew).await;
        }
    }

    /// Takes the lease if it is free, expired, or already ours.
    async fn try_take(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let secs = self.config.duration.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(micro(now)),
                    renew_time: Some(micro(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.config.identity;
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            let held = spec.lease_duration_seconds.unwrap_or(secs) as i64;
            now.as_second() > t.0.as_second() + held
        });
        if !mine && !holder.is_empty() && !expired {
            return Ok(false);
        }
        if !mine {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(micro(now));
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(secs);
        spec.renew_time = Some(micro(now));
        // The replace carries the resourceVersion read above: two replicas
        // racing for an expired lease cannot both win.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Renews until renewal fails for longer than the lease lasts; returns
    /// then (the caller must stop writing at once: another replica may lead).
    pub async fn hold(&self) {
        let mut last_ok = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew).await;
            match self.try_take().await {
                Ok(true) => last_ok = std::time::Instant::now(),
                Ok(false) => {
                    warn!("another replica took the leader lease");
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "cannot renew the leader lease");
                    // Stop well before the lease could be taken by someone else.
                    if last_ok.elapsed() + self.config.renew >= self.config.duration {
                        return;
                    }
                }
            }
        }
    }

    /// Hands the lease over: clears the holder so a standby takes it now.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("released the leader lease"),
            Err(e) => warn!(error = %e, "could not release the leader lease"),
        }
    }
}
