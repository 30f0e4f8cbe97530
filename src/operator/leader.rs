//! Leader election on a coordination.k8s.io Lease: several operator replicas
//! can run; one reconciles. Optimistic concurrency (resourceVersion) decides
//! races; a leader that cannot renew in time stops acting.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, Error};
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
}

/// What to do with a Lease as found (pure: easy to test).
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Held by someone else and not expired: wait.
    Wait,
    /// Ours, free or expired: take it (count a transition when it changes hands).
    Take { transition: bool },
}

pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Claim {
    let Some(spec) = spec else {
        return Claim::Take { transition: true };
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Claim::Take { transition: false };
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let expired = match &spec.renew_time {
        Some(renewed) => renewed
            .0
            .checked_add(duration)
            .is_ok_and(|until| until < now),
        None => true,
    };
    if holder.is_empty() || expired {
        Claim::Take { transition: true }
    } else {
        Claim::Wait
    }
}

fn claimed(previous: Option<&LeaseSpec>, config: &LeaderConfig, transition: bool) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_duration.as_secs().max(1) as i32),
        acquire_time: if transition {
            Some(now.clone())
        } else {
            previous.and_then(|s| s.acquire_time.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(if transition {
            transitions + 1
        } else {
            transitions
        }),
        ..Default::default()
    }
}

/// One attempt to take or renew the lease; `Ok(true)` when we hold it.
async fn try_claim(api: &Api<Lease>, config: &LeaderConfig) -> Result<bool, Error> {
    match api.get_opt(&config.name).await? {
        None => {
            let lease = Lease {
                metadata: kube::api::ObjectMeta {
                    name: Some(config.name.clone()),
                    ..Default::default()
                },
                spec: Some(claimed(None, config, true)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => match decide(lease.spec.as_ref(), &config.identity, Timestamp::now()) {
            Claim::Wait => Ok(false),
            Claim::Take { transition } => {
                lease.spec = Some(claimed(lease.spec.as_ref(), config, transition));
                // resourceVersion is kept: a concurrent claim makes this a 409.
                match api
                    .replace(&config.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        },
    }
}

/// Waits until this process leads.
pub async fn acquire(client: &Client, config: &LeaderConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    // Like client-go's retry period: a released lease is taken within 2 s.
    let retry =
        (config.lease_duration / 3).clamp(Duration::from_millis(500), Duration::from_secs(2));
    loop {
        match try_claim(&api, config).await {
            Ok(true) => {
                info!(lease = %config.name, identity = %config.identity, "leading");
                return;
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "cannot read or claim the lease"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Gives the lease up if this process holds it, so that another replica
/// takes over at once instead of after the lease duration (a rollout).
pub async fn release(client: &Client, config: &LeaderConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    // resourceVersion is kept: if someone claimed it meanwhile, nothing to do.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => info!(lease = %config.name, "lease released"),
        Err(e) => warn!(error = %e, "cannot release the lease (it expires by itself)"),
    }
}

/// Renews the lease; returns when leadership is lost (not renewed in time).
pub async fn hold(client: &Client, config: &LeaderConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let renew = (config.lease_duration / 3).max(Duration::from_millis(500));
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(renew).await;
        match try_claim(&api, config).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                warn!(lease = %config.name, "another replica took the lease");
                return;
            }
            Err(e) => warn!(error = %e, "cannot renew the lease"),
        }
        // Stop acting before another replica may take over.
        if last_renewed.elapsed() > config.lease_duration.saturating_sub(renew) {
            warn!(lease = %config.name, "lease not renewed in time");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                now.checked_sub(SignedDuration::from_secs(renewed_secs_ago))
                    .expect("time"),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn takes_free_own_or_expired_leases_only() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "a", now), Claim::Take { transition: true });
        assert_eq!(
            decide(Some(&spec("a", 1, 15)), "a", now),
            Claim::Take { transition: false }
        );
        assert_eq!(decide(Some(&spec("b", 1, 15)), "a", now), Claim::Wait);
        assert_eq!(
            decide(Some(&spec("b", 20, 15)), "a", now),
            Claim::Take { transition: true }
        );
        assert_eq!(
            decide(Some(&spec("", 1, 15)), "a", now),
            Claim::Take { transition: true }
        );
    }
}
