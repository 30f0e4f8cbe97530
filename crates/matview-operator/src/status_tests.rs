//! Status from observations: phases, and conditions whose reasons never
//! contradict their status or the counts.

use super::*;

pub(super) fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("time"))
}

pub(super) fn ready(r: &MaterializedViewStatus, t: ConditionType) -> (ConditionStatus, String) {
    let c = r
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .expect("condition");
    (c.status, c.reason.clone())
}

/// A condition's message, empty when the condition is absent.
pub(super) fn message(r: &MaterializedViewStatus, t: ConditionType) -> String {
    r.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

pub(super) fn observed() -> Observed {
    Observed {
        generation: Some(3),
        spec: Ok(()),
        source: Ok(4),
        active_revision: Some("aaa".into()),
        active: Readiness {
            shards: 2,
            shards_found: 2,
            shards_serving: 2,
            ready_replicas: 4,
            desired_replicas: 4,
        },
        ..Default::default()
    }
}

#[test]
fn phases_follow_readiness() {
    let s = compute(None, &observed(), now());
    assert_eq!(s.phase, Some(Phase::Ready));
    assert_eq!(
        ready(&s, ConditionType::Ready),
        (ConditionStatus::True, "CaughtUp".into())
    );
    assert_eq!(s.observed_generation, Some(3));

    let mut o = observed();
    o.active.ready_replicas = 3;
    o.active.shards_serving = 2;
    assert_eq!(compute(None, &o, now()).phase, Some(Phase::Degraded));
    o.active.shards_serving = 1;
    assert_eq!(compute(None, &o, now()).phase, Some(Phase::Building));

    // Nothing ready: Building, and no condition claims otherwise.
    o.active.ready_replicas = 0;
    o.active.shards_serving = 0;
    let s = compute(None, &o, now());
    assert_eq!(s.phase, Some(Phase::Building));
    let (status, reason) = ready(&s, ConditionType::Degraded);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "NotServingYet")
    );
    let message = &s
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready)
        .expect("Ready")
        .message;
    assert!(
        message.starts_with("0/4 projectors ready") && !message.contains("catching up"),
        "{message}"
    );

    let mut o = observed();
    o.target_revision = Some("bbb".into());
    o.target = Some(Readiness {
        shards: 2,
        shards_found: 2,
        ..Default::default()
    });
    let s = compute(None, &o, now());
    assert_eq!(s.phase, Some(Phase::Rebuilding));
    assert_eq!(s.target_revision.as_deref(), Some("bbb"));
    assert_eq!(
        ready(&s, ConditionType::Ready).0,
        ConditionStatus::True,
        "the active revision keeps serving"
    );
}

#[test]
fn invalid_spec_and_missing_source_say_what_to_fix() {
    let mut o = observed();
    o.spec = Err("spec.classify.rules[1]: no value can match".into());
    let s = compute(None, &o, now());
    assert_eq!(s.phase, Some(Phase::Failed));
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready)
        .expect("ready");
    assert!(
        c.message.contains("spec.classify.rules[1]"),
        "{}",
        c.message
    );

    let mut o = observed();
    o.active = Readiness::default();
    o.source = Err(SourceUnavailable::topic("topic orders does not exist"));
    let s = compute(None, &o, now());
    assert_eq!(s.phase, Some(Phase::Pending));
    assert_eq!(
        ready(&s, ConditionType::SourceReady),
        (ConditionStatus::False, "TopicUnavailable".into())
    );
}

fn diagnosis(reason: &'static str, message: &str, needs_attention: bool) -> Option<Diagnosis> {
    Some(Diagnosis {
        reason,
        message: message.into(),
        needs_attention,
    })
}

fn readiness(shards: u32, serving: u32, ready: i32, desired: i32) -> Readiness {
    Readiness {
        shards,
        shards_found: shards,
        shards_serving: serving,
        ready_replicas: ready,
        desired_replicas: desired,
    }
}

/// One situation: what was observed, and what status must say.
struct Case {
    situation: &'static str,
    observed: Observed,
    phase: Phase,
    /// (type, status, reason, words the message must contain)
    conditions: Vec<(ConditionType, ConditionStatus, &'static str, &'static str)>,
}

fn cases() -> Vec<Case> {
    use ConditionStatus::{False, True};
    use ConditionType::{Degraded, Progressing, Ready};
    let unschedulable = "4/4 Pending: 0/1 nodes are available: 1 Insufficient memory.";
    let crash = "1/4 CrashLoopBackOff, exit code 1, restarted 3 times: error: bad property";
    vec![
        Case {
            situation: "every pod unschedulable",
            observed: Observed {
                active: readiness(2, 0, 0, 4),
                active_pods: diagnosis("Unschedulable", unschedulable, true),
                ..observed()
            },
            phase: Phase::Building,
            conditions: vec![
                (
                    Ready,
                    False,
                    "Unschedulable",
                    "0/4 projectors ready: 4/4 Pending: 0/1 nodes",
                ),
                (Degraded, False, "NotServingYet", "nothing serves yet"),
                (Progressing, False, "Unschedulable", "revision aaa is stuck"),
            ],
        },
        Case {
            situation: "one replica crash-looping, every shard serving",
            observed: Observed {
                active: readiness(2, 2, 3, 4),
                active_pods: diagnosis("CrashLoopBackOff", crash, true),
                ..observed()
            },
            phase: Phase::Degraded,
            conditions: vec![
                (
                    Ready,
                    True,
                    "ReplicasUnavailable",
                    "every shard still serves: 1/4 CrashLoopBackOff",
                ),
                (
                    Degraded,
                    True,
                    "CrashLoopBackOff",
                    "3/4 projectors ready: 1/4 CrashLoopBackOff",
                ),
                (Progressing, False, "Stable", "revision aaa serves"),
            ],
        },
        Case {
            situation: "first build catching up",
            observed: Observed {
                active: readiness(2, 1, 1, 4),
                active_pods: diagnosis(
                    "CatchingUp",
                    "3/4 catching up with the topic, up to 900 events behind",
                    false,
                ),
                ..observed()
            },
            phase: Phase::Building,
            conditions: vec![
                (Ready, False, "CatchingUp", "up to 900 events behind"),
                (Degraded, False, "NotServingYet", "1/4 projectors ready"),
                (
                    Progressing,
                    True,
                    "Building",
                    "building revision aaa, 1/4 projectors ready",
                ),
            ],
        },
        Case {
            situation: "a new revision stuck while the old one serves",
            observed: Observed {
                target_revision: Some("bbb".into()),
                target: Some(readiness(2, 0, 0, 4)),
                target_pods: diagnosis(
                    "ImagePullBackOff",
                    "4/4 cannot pull the projector image",
                    true,
                ),
                ..observed()
            },
            phase: Phase::Rebuilding,
            conditions: vec![
                (
                    Ready,
                    True,
                    "CaughtUp",
                    "4/4 projectors ready and caught up",
                ),
                (Degraded, False, "AllReplicasReady", "4/4"),
                (
                    Progressing,
                    False,
                    "ImagePullBackOff",
                    "revision bbb is stuck, 0/4 projectors ready: 4/4 cannot pull the projector image; the active revision keeps serving",
                ),
            ],
        },
        Case {
            situation: "ready",
            observed: observed(),
            phase: Phase::Ready,
            conditions: vec![
                (
                    Ready,
                    True,
                    "CaughtUp",
                    "4/4 projectors ready and caught up",
                ),
                (Degraded, False, "AllReplicasReady", "4/4 projectors ready"),
                (Progressing, False, "Stable", "nothing is being built"),
            ],
        },
    ]
}

#[test]
fn conditions_follow_the_facts_in_every_situation() {
    for case in cases() {
        let s = compute(None, &case.observed, now());
        assert_eq!(s.phase, Some(case.phase), "{}", case.situation);
        for (type_, status, reason, words) in case.conditions {
            let c = s
                .conditions
                .iter()
                .find(|c| c.type_ == type_)
                .unwrap_or_else(|| panic!("{}: no {type_:?}", case.situation));
            assert_eq!(
                (c.status, c.reason.as_str()),
                (status, reason),
                "{}: {type_:?} says {:?}",
                case.situation,
                c.message
            );
            assert!(
                c.message.contains(words),
                "{}: {type_:?} message {:?} lacks {words:?}",
                case.situation,
                c.message
            );
        }
    }
}

#[test]
fn the_gateway_url_is_published_only_when_known() {
    assert_eq!(compute(None, &observed(), now()).url, None);
    let o = Observed {
        url: Some("http://gw:8080/v1/namespaces/shop/views/v".into()),
        ..observed()
    };
    assert_eq!(
        compute(None, &o, now()).url.as_deref(),
        Some("http://gw:8080/v1/namespaces/shop/views/v")
    );
}

#[test]
fn readiness_counts_stateful_sets_and_expects_the_spec_before_any_exists() {
    use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetStatus};
    let none = Readiness::of_stateful_sets(2, 3, &[]);
    assert_eq!((none.shards_found, none.desired_replicas), (0, 6));
    assert!(!none.all_ready() && !none.serving());
    let set = |ready: i32| StatefulSet {
        spec: StatefulSetSpec {
            replicas: Some(3),
            ..Default::default()
        },
        status: Some(StatefulSetStatus {
            ready_replicas: Some(ready),
            ..Default::default()
        }),
        ..Default::default()
    };
    let partly = Readiness::of_stateful_sets(2, 3, &[set(3), set(0)]);
    assert_eq!((partly.ready_replicas, partly.desired_replicas), (3, 6));
    assert_eq!(partly.shards_serving, 1);
    assert!(!partly.serving());
    let all = Readiness::of_stateful_sets(2, 3, &[set(3), set(3)]);
    assert!(all.all_ready() && all.serving());
}

#[test]
fn held_batches_and_an_unreachable_broker_degrade_a_view_that_still_serves() {
    let mut o = observed();
    o.troubles.store = Some("p-0: 15 MiB free in /var/lib/matview".into());
    let s = compute(None, &o, now());
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert_eq!(
        ready(&s, ConditionType::Ready),
        (ConditionStatus::True, "StoreNotWritable".into())
    );
    assert_eq!(
        ready(&s, ConditionType::Degraded),
        (ConditionStatus::True, "StoreNotWritable".into())
    );
    let degraded = s
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Degraded)
        .expect("Degraded");
    assert!(
        degraded.message.contains("15 MiB free"),
        "{}",
        degraded.message
    );

    let mut o = observed();
    o.troubles.source = Some("p-1: Local: Broker transport failure".into());
    let s = compute(None, &o, now());
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert_eq!(
        ready(&s, ConditionType::SourceReady),
        (ConditionStatus::False, "BrokerUnreachable".into())
    );
    assert_eq!(
        ready(&s, ConditionType::Ready),
        (ConditionStatus::True, "SourceUnreachable".into())
    );

    // Reported again once cleared: Ready, caught up.
    let s = compute(Some(&s), &observed(), now());
    assert_eq!(s.phase, Some(Phase::Ready));
    assert_eq!(
        ready(&s, ConditionType::SourceReady),
        (ConditionStatus::True, "TopicFound".into())
    );

    // A registry that does not answer: the source is not ready, in the
    // registry's words; the view serves from its stores.
    let mut o = observed();
    o.troubles.schema_registry =
        Some("p-0: schema registry http://sr:8081: connection refused".into());
    let s = compute(Some(&s), &o, now());
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert_eq!(
        ready(&s, ConditionType::SourceReady),
        (ConditionStatus::False, "SchemaRegistryUnreachable".into())
    );
    assert_eq!(
        ready(&s, ConditionType::Ready),
        (ConditionStatus::True, "SchemaRegistryUnreachable".into())
    );
    let said = message(&s, ConditionType::SourceReady);
    assert!(said.contains("connection refused"), "{said}");

    // Refused credentials are a reason of their own, with the fix.
    let mut o = observed();
    o.troubles.schema_registry = Some("p-0: schema registry https://sr: 401 Unauthorized".into());
    o.troubles.schema_registry_refused = true;
    let refused = compute(Some(&s), &o, now());
    assert_eq!(
        ready(&refused, ConditionType::SourceReady),
        (
            ConditionStatus::False,
            "SchemaRegistryAuthenticationFailed".into()
        )
    );
    let said = message(&refused, ConditionType::SourceReady);
    assert!(
        said.contains("401") && said.contains("configFrom"),
        "{said}"
    );
    let s = compute(Some(&s), &observed(), now());
    assert_eq!(
        ready(&s, ConditionType::SourceReady),
        (ConditionStatus::True, "TopicFound".into())
    );
}

#[test]
fn a_rebuild_that_cannot_see_deleted_history_is_held_and_says_why() {
    let mut o = observed();
    o.target_revision = Some("bbb".into());
    o.target = Some(Readiness {
        shards: 2,
        shards_found: 2,
        shards_serving: 2,
        ready_replicas: 4,
        desired_replicas: 4,
    });
    let gone = crate::history::History::Deleted {
        partitions: vec![(1, 300)],
        accepted: false,
    };
    o.history = Some(("orders".into(), gone));
    let s = compute(None, &o, now());
    assert_eq!(
        ready(&s, ConditionType::HistoryComplete),
        (ConditionStatus::False, "RetentionDeletedEvents".into())
    );
    assert_eq!(
        ready(&s, ConditionType::Progressing),
        (ConditionStatus::False, "HistoryIncomplete".into())
    );
    assert_eq!(
        s.active_revision.as_deref(),
        Some("aaa"),
        "the old revision serves"
    );

    // Once nothing is being rebuilt, the condition is gone.
    let mut settled = observed();
    settled.history = None;
    let s = compute(Some(&s), &settled, now());
    assert!(
        s.conditions
            .iter()
            .all(|c| c.type_ != ConditionType::HistoryComplete),
        "{:?}",
        s.conditions
    );
}
