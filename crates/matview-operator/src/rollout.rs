//! Which revision serves, as a pure function of the spec's revision, the one
//! serving, the one kept from the last switch, and whether the spec's
//! revision has caught up: blue/green with an optional promotion step and a
//! kept previous revision for an instant rollback.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use matview_crd::KeptRevision;

/// What a reconcile knows about the revisions of one view.
#[derive(Debug, Clone)]
pub struct RolloutInput<'a> {
    /// The revision of the spec as it is now.
    pub current: &'a str,
    /// The revision serving reads (the current one for a new view).
    pub active: &'a str,
    /// The revision kept after the last switch, as status recorded it.
    pub previous: Option<&'a KeptRevision>,
    /// `spec.rollout.strategy: Manual`.
    pub manual: bool,
    /// `spec.rollout.promote`.
    pub promote: Option<&'a str>,
    /// `spec.rollout.keepPrevious`.
    pub keep_previous: Duration,
    /// The current revision's projectors are all ready and have nothing of
    /// the topic left to apply.
    pub current_caught_up: bool,
    /// Retention deleted events the serving revision counted: a rebuilt
    /// revision would lack them (a kept one never does: it kept consuming).
    pub history_incomplete: bool,
    pub now: Timestamp,
}

/// Why the serving revision changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Strategy Automatic: the rebuilt revision caught up.
    CaughtUp,
    /// Strategy Manual: `promote` names the caught-up revision.
    Promoted,
    /// The spec went back to the kept revision: it serves again, unbuilt.
    Restored,
}

/// A revision built from the spec that waits for promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub revision: String,
    pub caught_up: bool,
}

/// The outcome: what serves, what is built, what is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutDecision {
    pub active: String,
    /// The spec's revision, built beside the serving one.
    pub target: Option<String>,
    /// Strategy Manual: the target, waiting for promotion.
    pub pending: Option<Pending>,
    /// The revision kept for a rollback after this decision.
    pub previous: Option<KeptRevision>,
    /// Switched off now and not kept (`keepPrevious: 0s`).
    pub switched_off: Option<String>,
    pub switch: Option<Switch>,
    /// A kept revision given up by this decision: its window ended, or a
    /// newer switch keeps another one.
    pub released: Option<String>,
}

/// Pure: the rollout step for one reconcile.
pub fn decide(input: &RolloutInput<'_>) -> RolloutDecision {
    let mut released = None;
    let mut kept = input
        .previous
        .filter(|p| p.revision != input.active)
        .cloned();
    if let Some(k) = &kept
        && k.kept_until.0 <= input.now
    {
        released = Some(k.revision.clone());
        kept = None;
    }
    let stay =
        |target: Option<String>, pending: Option<Pending>, previous, released| RolloutDecision {
            active: input.active.to_string(),
            target,
            pending,
            previous,
            switched_off: None,
            switch: None,
            released,
        };
    if input.current == input.active {
        return stay(None, None, kept, released);
    }
    let restoring = kept.as_ref().is_some_and(|k| k.revision == input.current);
    let switch = if restoring {
        Switch::Restored
    } else if input.manual {
        Switch::Promoted
    } else {
        Switch::CaughtUp
    };
    let may_switch = input.current_caught_up
        && match switch {
            Switch::Restored => true,
            Switch::Promoted => !input.history_incomplete && input.promote == Some(input.current),
            Switch::CaughtUp => !input.history_incomplete,
        };
    if !may_switch {
        let pending = (input.manual && !restoring).then(|| Pending {
            revision: input.current.to_string(),
            caught_up: input.current_caught_up && !input.history_incomplete,
        });
        return stay(Some(input.current.to_string()), pending, kept, released);
    }
    // The revision kept before is given up for the one switched off now.
    if let Some(k) = kept.filter(|k| k.revision != input.current) {
        released = Some(k.revision);
    }
    let switched_off = input.active.to_string();
    let keep = SignedDuration::try_from(input.keep_previous).ok();
    let until = keep
        .filter(|d| !d.is_zero())
        .and_then(|d| input.now.checked_add(d).ok());
    let (previous, switched_off) = match until {
        Some(until) => (
            Some(KeptRevision {
                revision: switched_off,
                kept_until: Time(until),
            }),
            None,
        ),
        None => (None, Some(switched_off)),
    };
    RolloutDecision {
        active: input.current.to_string(),
        target: None,
        pending: None,
        previous,
        switched_off,
        switch: Some(switch),
        released,
    }
}

/// How long until the kept revision's window ends (the next reconcile
/// removes it then), if one is kept.
pub fn until_release(previous: Option<&KeptRevision>, now: Timestamp) -> Option<Duration> {
    let left = previous?.kept_until.0.duration_since(now);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
