use super::*;
use crate::crd::{KeptRevision, PendingRevision, Rollout, RolloutStatus, RolloutStrategy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn example() -> MaterializedView {
    let text = include_str!("../../examples/items-by-price.yaml");
    serde_yaml_ng::from_str(text).expect("example parses")
}

fn cheap_below(view: &MaterializedView, bound: i64) -> MaterializedView {
    let mut changed = view.clone();
    changed.spec.classify.rules[0].lt = Some(bound.into());
    changed.spec.classify.rules[1].gte = Some(bound.into());
    changed
}

fn with_status(mut view: MaterializedView, rollout: RolloutStatus) -> MaterializedView {
    view.status = Some(MaterializedViewStatus {
        active_revision: Some("aaa".into()),
        rollout: Some(rollout),
        ..Default::default()
    });
    view
}

#[test]
fn the_same_file_changes_nothing() {
    let view = example();
    let p = plan(&view, &view, "aaa", "aaa", true);
    assert_eq!(p.changes, []);
    assert_eq!(p.effect, Effect::Nothing);
    assert_eq!(
        describe("shop/items-by-price", &p),
        "shop/items-by-price: no changes\n"
    );
}

#[test]
fn a_rule_change_lists_the_rules_and_means_a_rebuild() {
    let live = example();
    let mut file = cheap_below(&live, 10);
    let p = plan(&live, &file, "aaa", "bbb", false);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    assert_eq!(p.changes[0].path, "spec.classify.rules");
    assert!(
        p.changes[0]
            .file
            .as_deref()
            .is_some_and(|f| f.contains("\"lt\":10"))
    );
    assert_eq!(
        p.effect,
        Effect::Rebuild {
            serving: None,
            to: "bbb".into(),
            manual: false
        }
    );
    file.spec.rollout = Some(Rollout {
        strategy: RolloutStrategy::Manual,
        ..Default::default()
    });
    let p = plan(&live, &file, "aaa", "bbb", false);
    assert!(matches!(p.effect, Effect::Rebuild { manual: true, .. }));
    assert!(describe("v", &p).contains("waits for promotion"));
    let paths: Vec<_> = p.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["spec.classify.rules", "spec.rollout"]);
}

#[test]
fn the_kept_revision_switches_back_and_a_pending_one_is_named() {
    let kept = KeptRevision {
        revision: "old".into(),
        kept_until: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    };
    let live = with_status(
        example(),
        RolloutStatus {
            pending: Some(PendingRevision {
                revision: "new".into(),
                caught_up: true,
                ..Default::default()
            }),
            previous: Some(kept),
        },
    );
    let file = cheap_below(&live, 3);
    assert_eq!(
        plan(&live, &file, "aaa", "old", false).effect,
        Effect::SwitchBack { to: "old".into() }
    );
    assert_eq!(
        plan(&live, &file, "aaa", "new", false).effect,
        Effect::AlreadyPending {
            revision: "new".into(),
            caught_up: true
        }
    );
    // The serving revision's rules again: nothing builds.
    assert_eq!(
        plan(&live, &file, "zzz", "aaa", false).effect,
        Effect::Nothing
    );
}

#[test]
fn promoting_the_pending_revision_is_named_as_such() {
    let live = with_status(
        example(),
        RolloutStatus {
            pending: Some(PendingRevision {
                revision: "new".into(),
                caught_up: true,
                ..Default::default()
            }),
            previous: None,
        },
    );
    let mut file = live.clone();
    file.spec.rollout = Some(Rollout {
        strategy: RolloutStrategy::Manual,
        promote: Some("new".into()),
        ..Default::default()
    });
    let p = plan(&live, &file, "aaa", "aaa", true);
    assert_eq!(
        p.effect,
        Effect::Promote {
            revision: "new".into()
        }
    );
    assert!(describe("v", &p).contains("revision new serves next"));
}

#[test]
fn pod_settings_update_pods_and_rollout_settings_update_nothing() {
    let live = example();
    let mut file = live.clone();
    file.spec.replicas_per_shard += 1;
    let p = plan(&live, &file, "aaa", "aaa", false);
    assert_eq!(p.changes[0].path, "spec.replicasPerShard");
    assert_eq!(
        p.effect,
        Effect::PodsUpdated {
            revision: "aaa".into()
        }
    );

    let mut file = live.clone();
    file.spec.rollout = Some(Rollout {
        keep_previous: Some("1h".into()),
        ..Default::default()
    });
    let p = plan(&live, &file, "aaa", "aaa", true);
    assert_eq!(p.effect, Effect::SettingsOnly);
    let text = describe("v", &p);
    assert!(
        text.starts_with("spec.rollout\n  live: (absent)\n  file: {"),
        "{text}"
    );
}
