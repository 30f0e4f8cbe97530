//! Leader election on a coordination.k8s.io Lease: several operator replicas
//! can run; one reconciles. Optimistic concurrency (resourceVersion) decides
//! races; a leader that cannot renew in time stops acting.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
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

/// The parts of a Lease that change when its holder renews or hands it on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LeaseRecord {
    holder: String,
    renew_time: Option<Timestamp>,
    acquire_time: Option<Timestamp>,
    transitions: Option<i32>,
    duration: Duration,
}

impl LeaseRecord {
    fn of(spec: &LeaseSpec) -> LeaseRecord {
        LeaseRecord {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions,
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
            ),
        }
    }
}

/// A Lease as this process last saw it change, and when (on this process's
/// monotonic clock). Expiry is timed from here, never from the holder's
/// `renewTime`: another machine's wall clock may be minutes off ours, and
/// comparing the two would let two operators lead at once (client-go does
/// the same).
#[derive(Debug, Clone)]
pub struct Observed {
    record: LeaseRecord,
    since: Instant,
}

/// Decides on the Lease as found at `now`, given what was observed before;
/// returns the decision and the observation to keep for next time.
pub fn decide(
    spec: Option<&LeaseSpec>,
    me: &str,
    previous: Option<&Observed>,
    now: Instant,
) -> (Claim, Option<Observed>) {
    let Some(spec) = spec else {
        return (Claim::Take { transition: true }, None);
    };
    let record = LeaseRecord::of(spec);
    let since = match previous {
        Some(seen) if seen.record == record => seen.since,
        _ => now,
    };
    let expired = now.saturating_duration_since(since) > record.duration;
    let claim = if record.holder == me {
        Claim::Take { transition: false }
    } else if record.holder.is_empty() || expired {
        Claim::Take { transition: true }
    } else {
        Claim::Wait
    };
    (claim, Some(Observed { record, since }))
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
/// `observed` is what this process last saw of the lease, kept across attempts.
async fn try_claim(
    api: &Api<Lease>,
    config: &LeaderConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, Error> {
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
        Some(mut lease) => {
            let (claim, seen) = decide(
                lease.spec.as_ref(),
                &config.identity,
                observed.as_ref(),
                Instant::now(),
            );
            *observed = seen;
            match claim {
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
            }
        }
    }
}

/// Waits until this process leads.
pub async fn acquire(client: &Client, config: &LeaderConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    // Like client-go's retry period: a released lease is taken within 2 s.
    let retry =
        (config.lease_duration / 3).clamp(Duration::from_millis(500), Duration::from_secs(2));
    let mut observed = None;
    loop {
        match try_claim(&api, config, &mut observed).await {
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
    let mut observed = None;
    loop {
        tokio::time::sleep(renew).await;
        match try_claim(&api, config, &mut observed).await {
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
    use k8s_openapi::jiff::SignedDuration;

    use super::*;

    /// A lease held by `holder`, renewed at `renewed` on the holder's clock.
    fn spec(holder: &str, renewed: Timestamp, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }
    }

    fn shifted(seconds: i64) -> Timestamp {
        Timestamp::now()
            .checked_add(SignedDuration::from_secs(seconds))
            .expect("time")
    }

    #[test]
    fn takes_free_or_own_leases_at_once() {
        let now = Instant::now();
        assert_eq!(
            decide(None, "a", None, now).0,
            Claim::Take { transition: true }
        );
        let own = spec("a", shifted(0), 15);
        assert_eq!(
            decide(Some(&own), "a", None, now).0,
            Claim::Take { transition: false }
        );
        let free = spec("", shifted(0), 15);
        assert_eq!(
            decide(Some(&free), "a", None, now).0,
            Claim::Take { transition: true }
        );
    }

    /// Whatever the holder's renewTime says (its clock may be far off
    /// ours), a lease held by another expires only after it was seen
    /// unchanged for a whole lease duration on this process's clock.
    #[test]
    fn expiry_is_timed_from_our_observation_not_the_holders_clock() {
        for renewed in [shifted(-86_400), shifted(-20), shifted(0), shifted(86_400)] {
            let lease = spec("b", renewed, 15);
            let t0 = Instant::now();
            let (claim, seen) = decide(Some(&lease), "a", None, t0);
            assert_eq!(claim, Claim::Wait, "first sight of a held lease: {renewed}");
            let at = |secs| t0 + Duration::from_secs(secs);
            let (claim, seen) = decide(Some(&lease), "a", seen.as_ref(), at(14));
            assert_eq!(claim, Claim::Wait, "within the duration: {renewed}");
            let (claim, _) = decide(Some(&lease), "a", seen.as_ref(), at(16));
            assert_eq!(
                claim,
                Claim::Take { transition: true },
                "unchanged for longer than the duration: {renewed}"
            );
        }
    }

    #[test]
    fn a_renewal_seen_restarts_the_wait() {
        let t0 = Instant::now();
        let first = spec("b", shifted(-86_400), 15);
        let (_, seen) = decide(Some(&first), "a", None, t0);
        // The holder renews (its clock still a day behind ours).
        let renewed = spec("b", shifted(-86_390), 15);
        let (claim, seen) = decide(
            Some(&renewed),
            "a",
            seen.as_ref(),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(claim, Claim::Wait);
        let (claim, _) = decide(
            Some(&renewed),
            "a",
            seen.as_ref(),
            t0 + Duration::from_secs(20),
        );
        assert_eq!(claim, Claim::Wait, "10 s after the renewal was seen");
    }
}
