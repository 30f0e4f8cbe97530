//! Status while a revision waits for promotion or is kept for a rollback.

use super::*;
use matview_crd::{KeptRevision, PendingRevision};

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("time"))
}

fn condition(s: &MaterializedViewStatus, t: ConditionType) -> Option<&Condition> {
    s.conditions.iter().find(|c| c.type_ == t)
}

/// `aaa` serves, ready; `bbb` is built beside it, all ready.
fn pending(caught_up: bool) -> Observed {
    let ready = Readiness {
        shards: 2,
        shards_found: 2,
        shards_serving: 2,
        ready_replicas: 2,
        desired_replicas: 2,
    };
    Observed {
        generation: Some(4),
        spec: Ok(()),
        source: Ok(4),
        active_revision: Some("aaa".into()),
        target_revision: Some("bbb".into()),
        active: ready,
        target: Some(ready),
        rollout: Some(RolloutStatus {
            pending: Some(PendingRevision {
                revision: "bbb".into(),
                caught_up,
                lag: Some(if caught_up { 0 } else { 1200 }),
                rows: Some(60),
                comparison: None,
            }),
            previous: None,
        }),
        ..Default::default()
    }
}

#[test]
fn a_caught_up_revision_waits_for_promotion_while_the_view_stays_ready() {
    let s = compute(None, &pending(true), now());
    assert_eq!(s.phase, Some(Phase::Ready), "the serving revision is ready");
    let c = condition(&s, ConditionType::RolloutPending).expect("RolloutPending");
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::True, "AwaitingPromotion")
    );
    assert!(
        c.message.contains("bbb (60 rows)") && c.message.contains("spec.rollout.promote is bbb"),
        "{}",
        c.message
    );
    let p = condition(&s, ConditionType::Progressing).expect("Progressing");
    assert_eq!(
        (p.status, p.reason.as_str()),
        (ConditionStatus::False, "AwaitingPromotion")
    );
    assert_eq!(
        s.rollout.and_then(|r| r.pending).map(|p| p.caught_up),
        Some(true)
    );
}

#[test]
fn a_revision_still_catching_up_says_how_far_and_whether_it_is_promoted() {
    let s = compute(None, &pending(false), now());
    assert_eq!(s.phase, Some(Phase::Rebuilding));
    let c = condition(&s, ConditionType::RolloutPending).expect("RolloutPending");
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::False, "CatchingUp")
    );
    assert!(c.message.contains("1200 events behind"), "{}", c.message);
    assert!(c.message.contains("can be promoted"), "{}", c.message);

    let mut promoted = pending(false);
    promoted.promote = Some("bbb".into());
    let s = compute(None, &promoted, now());
    let c = condition(&s, ConditionType::RolloutPending).expect("RolloutPending");
    assert!(c.message.contains("it is promoted"), "{}", c.message);
}

#[test]
fn the_condition_goes_once_nothing_is_pending_and_the_kept_revision_stays_listed() {
    let before = compute(None, &pending(true), now());
    let mut after = pending(true);
    after.active_revision = Some("bbb".into());
    after.target_revision = None;
    after.target = None;
    let kept = KeptRevision {
        revision: "aaa".into(),
        kept_until: now(),
    };
    after.rollout = Some(RolloutStatus {
        pending: None,
        previous: Some(kept.clone()),
    });
    let s = compute(Some(&before), &after, now());
    assert!(condition(&s, ConditionType::RolloutPending).is_none());
    assert_eq!(s.active_revision.as_deref(), Some("bbb"));
    assert_eq!(s.rollout.and_then(|r| r.previous), Some(kept));
}
