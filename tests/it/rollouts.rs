//! Rollouts on the real API server, broker, operator and gateway: a rebuilt
//! revision that waits for promotion while plain reads stay on the serving
//! one; promotion; a revert that switches back to the kept revision without
//! a rebuild; the kept revision removed after its window; promotions the API
//! server refuses; a superseded pending revision dropped.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use matview::crd::{
    ConditionStatus, ConditionType, MaterializedView, MaterializedViewStatus, Rollout,
    RolloutStrategy,
};
use matview::engine::revision;
use matview::operator::desired::LABEL_REVISION;
use serde_json::{Value, json};

use crate::rollout_checks::{
    VIEW, check_comparison, check_pending_scan, check_revisions, check_status_comparison,
    status_when,
};
use crate::support::eventually;
use crate::support::kafka;
use crate::support::orders::{Orders, orders};
use crate::support::projector::{reference, reference_with};
use crate::support::stack::{Readers, Stack, shop_view, stack};

/// Sets the shop's "cheap" bound (and optionally other spec fields); returns
/// the spec's revision.
async fn cheap_below(views: &Api<MaterializedView>, cheap: f64, extra: Value) -> String {
    let mut patch = json!({"spec": {"classify": {"field": "price", "rules": [
        {"group": "cheap", "lt": cheap}, {"group": "affordable", "gte": cheap, "lte": 50}, {"group": "expensive", "gt": 50}]}}});
    if let (Some(spec), Some(extra)) = (patch["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    views
        .patch(VIEW, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("rules changed");
    revision(&views.get(VIEW).await.expect("view").spec)
}

async fn promote(views: &Api<MaterializedView>, revision: &str) -> Result<(), kube::Error> {
    let patch = json!({"spec": {"rollout": {"promote": revision}}});
    views
        .patch(VIEW, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

fn pending_caught_up(s: &MaterializedViewStatus, revision: &str) -> bool {
    let pending = s.rollout.as_ref().and_then(|r| r.pending.as_ref());
    pending.is_some_and(|p| p.revision == revision && p.caught_up)
}

fn condition(s: &MaterializedViewStatus, t: ConditionType) -> (ConditionStatus, String, String) {
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t:?} in {s:?}"));
    (c.status, c.reason.clone(), c.message.clone())
}

/// UIDs of the StatefulSets of each revision.
async fn sets_by_revision(st: &Stack) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let sets: Api<StatefulSet> = Api::namespaced(st.client.clone(), &st.ns.name);
    let mut out = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    for set in sets.list(&ListParams::default()).await.expect("sets").items {
        let revision = set
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_REVISION));
        if let (Some(revision), Some(uid)) = (revision, set.metadata.uid.clone()) {
            out.entry(revision.clone()).or_default().insert(uid);
        }
    }
    out
}

/// The Event of `reason` about the view, once there is one.
async fn event(st: &Stack, reason: &str) -> String {
    let events: Api<Event> = Api::namespaced(st.client.clone(), &st.ns.name);
    eventually(
        &format!("a {reason} Event"),
        Duration::from_secs(30),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
                .and_then(|e| e.message)
        },
    )
    .await
}

/// The active revision once the view is Ready with `rows` rows; on a
/// timeout, the view's status and the operator's log say why not.
async fn ready(st: &Stack, rows: usize) -> String {
    let waited = tokio::time::timeout(Duration::from_secs(110), st.ready(VIEW, rows as i64)).await;
    match waited {
        Ok(revision) => revision,
        Err(_) => {
            let status = st.views.get(VIEW).await.ok().and_then(|v| v.status);
            let log = st.operator_log();
            let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().join("\n");
            panic!(
                "{VIEW} not Ready with {rows} rows: {status:#?}\noperator log (last lines, newest first):\n{tail}"
            );
        }
    }
}

/// The shop view with strategy Manual and `keep_previous`.
async fn manual_view(st: &Stack, topic: &str, keep_previous: &str) {
    let mut view = shop_view(VIEW, topic, 2, 1, false);
    view.spec.source.kafka.bootstrap_servers = Some(st.env.kafka_bootstrap.clone());
    view.spec.rollout = Some(Rollout {
        strategy: RolloutStrategy::Manual,
        keep_previous: Some(keep_previous.into()),
        promote: None,
    });
    st.views
        .create(&PostParams::default(), &view)
        .await
        .expect("view created");
}

#[tokio::test]
async fn a_manual_rollout_waits_for_promotion_and_a_revert_switches_back_at_once() {
    let st = stack("rollout", "kubernetes").await;
    let reader = st.reader().await;
    let topic = kafka::create_topic(st.env, "orders", 4).await;
    let all = orders(Orders {
        seed: 47,
        users: 200,
        count: 5500,
    });
    let (placed, later) = all.split_at(5000);
    st.produce_by_order(&topic, placed).await;
    manual_view(&st, &topic, "40s").await;
    let (old_rules, new_rules) = (reference(placed), reference_with(placed, 10.0));
    assert_ne!(old_rules, new_rules, "the change must move items");
    let rev1 = ready(&st, old_rules.len()).await;
    st.serves(VIEW, &old_rules, &reader).await;
    let users: Vec<String> = old_rules.keys().cloned().collect();
    let readers = Readers::spawn(&st, &users, &reader, 4);
    readers.read_more(200, "the readers' first reads").await;

    // The rebuilt revision catches up, then waits; plain reads stay on rev1.
    let rev2 = cheap_below(&st.views, 10.0, json!({})).await;
    assert_ne!(rev2, rev1);
    let waiting = status_when(
        &st.views,
        "the new revision caught up and waiting",
        Duration::from_secs(120),
        |s| pending_caught_up(s, &rev2),
    )
    .await;
    assert_eq!(waiting.active_revision.as_deref(), Some(rev1.as_str()));
    let (status, reason, message) = condition(&waiting, ConditionType::RolloutPending);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::True, "AwaitingPromotion")
    );
    assert!(message.contains(&rev2), "{message}");
    let pending = waiting.rollout.as_ref().and_then(|r| r.pending.as_ref());
    assert_eq!(pending.and_then(|p| p.rows), Some(new_rules.len() as i64));
    assert!(event(&st, "RolloutPending").await.contains(&rev2));
    check_comparison(&st, &reader, &rev1, &rev2, placed).await;
    check_status_comparison(&st, &rev1, &rev2, placed).await;
    check_revisions(&st, &reader, &rev1, &rev2).await;
    // Named, the waiting revision's rows are readable: the new rules' rows.
    let named = st.rows_at(VIEW, users.iter(), &reader, Some(&rev2)).await;
    assert_eq!(named, new_rules, "rows of the pending revision");
    check_pending_scan(&st, &reader, &rev2, &new_rules).await;
    readers
        .read_more(200, "reads while the new revision waits")
        .await;
    assert_eq!(st.rows(VIEW, users.iter(), &reader).await, old_rules);
    let still = st
        .views
        .get(VIEW)
        .await
        .expect("view")
        .status
        .expect("status");
    assert_eq!(
        still.active_revision.as_deref(),
        Some(rev1.as_str()),
        "it waits"
    );

    // The API server refuses a revision that is neither pending nor serving.
    let refused = promote(&st.views, "0123456789").await.expect_err("refused");
    let text = refused.to_string();
    assert!(
        text.contains("0123456789") && text.contains("neither pending nor serving"),
        "{text}"
    );

    // Promotion switches.
    promote(&st.views, &rev2).await.expect("promoted");
    let promoted = status_when(&st.views, "rev2 serving", Duration::from_secs(60), |s| {
        s.active_revision.as_deref() == Some(rev2.as_str())
    })
    .await;
    let kept = promoted.rollout.as_ref().and_then(|r| r.previous.as_ref());
    assert_eq!(kept.map(|k| k.revision.as_str()), Some(rev1.as_str()));
    assert!(event(&st, "RevisionPromoted").await.contains(&rev2));
    st.serves(VIEW, &new_rules, &reader).await;

    // While rev2 serves, more orders: the kept rev1 consumes them too.
    st.produce_by_order(&topic, later).await;
    st.serves(VIEW, &reference_with(&all, 10.0), &reader).await;
    let sets_before = sets_by_revision(&st).await;

    // Reverting the spec switches back to rev1 at once, without a rebuild.
    let started = Instant::now();
    let back = cheap_below(&st.views, 5.0, json!({})).await;
    assert_eq!(back, rev1);
    status_when(
        &st.views,
        "rev1 serving again",
        Duration::from_secs(60),
        |s| s.active_revision.as_deref() == Some(rev1.as_str()),
    )
    .await;
    let switch_back = started.elapsed();
    eprintln!("switch back to the kept revision: {switch_back:?}");
    // Generous for a loaded machine; a rebuild would also show as new
    // StatefulSets and as rows missing the later orders.
    assert!(switch_back < Duration::from_secs(10), "{switch_back:?}");
    assert!(event(&st, "RevisionRestored").await.contains(&rev1));
    let sets_after = sets_by_revision(&st).await;
    assert_eq!(
        sets_after.get(&rev1),
        sets_before.get(&rev1),
        "no new StatefulSet"
    );
    // The gateway follows status: rev1's rows, the later orders included.
    st.serves(VIEW, &reference(&all), &reader).await;

    // After the window the switched-off revision goes.
    let settled = status_when(
        &st.views,
        "rev2 released after keepPrevious",
        Duration::from_secs(120),
        |s| {
            s.rollout
                .as_ref()
                .and_then(|r| r.previous.as_ref())
                .is_none()
        },
    )
    .await;
    assert_eq!(settled.active_revision.as_deref(), Some(rev1.as_str()));
    eventually(
        "rev2's StatefulSets removed",
        Duration::from_secs(60),
        || async {
            let live = sets_by_revision(&st).await;
            (!live.contains_key(&rev2)).then_some(())
        },
    )
    .await;
    assert!(event(&st, "PreviousRevisionRemoved").await.contains(&rev2));

    let (log, sequences) = readers.stop().await;
    log.assert_none_failed(&st.gateway_log());
    let order = [rev1.clone(), rev2.clone(), rev1.clone()];
    for seen in sequences {
        // Each reader saw the revisions in the order they served.
        let mut at = 0;
        for revision in &seen {
            let found = order[at..].iter().position(|r| r == revision);
            at += found.unwrap_or_else(|| panic!("revisions out of order: {seen:?}"));
        }
    }
}

#[tokio::test]
async fn promotions_of_unready_revisions_are_refused_and_a_superseded_one_is_dropped() {
    let st = stack("rollout-refused", "kubernetes").await;
    let topic = kafka::create_topic(st.env, "orders", 4).await;
    let placed = orders(Orders {
        seed: 53,
        users: 40,
        count: 400,
    });
    st.produce_by_order(&topic, &placed).await;
    manual_view(&st, &topic, "0s").await;
    let rev1 = ready(&st, reference(&placed).len()).await;

    // A revision whose pods cannot be scheduled never catches up.
    let unready = json!({"projector": {"nodeSelector": {"matview.dev/no-such-node": "x"}}});
    let rev2 = cheap_below(&st.views, 10.0, unready).await;
    let building = status_when(&st.views, "rev2 pending", Duration::from_secs(60), |s| {
        let p = s.rollout.as_ref().and_then(|r| r.pending.as_ref());
        p.is_some_and(|p| p.revision == rev2 && !p.caught_up)
            && s.conditions
                .iter()
                .any(|c| c.type_ == ConditionType::RolloutPending)
    })
    .await;
    let (status, reason, _) = condition(&building, ConditionType::RolloutPending);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "CatchingUp")
    );
    let refused = promote(&st.views, &rev2).await.expect_err("refused");
    let text = refused.to_string();
    assert!(
        text.contains(&rev2) && text.contains("has not caught up"),
        "{text}"
    );

    // A newer spec supersedes it: rev2 is dropped, rev3 waits, caught up.
    let schedulable = json!({"projector": {"nodeSelector": null}});
    let rev3 = cheap_below(&st.views, 20.0, schedulable).await;
    assert!(rev3 != rev2 && rev3 != rev1);
    status_when(&st.views, "rev3 caught up", Duration::from_secs(120), |s| {
        pending_caught_up(s, &rev3)
    })
    .await;
    eventually(
        "rev2's StatefulSets removed",
        Duration::from_secs(60),
        || async {
            let live = sets_by_revision(&st).await;
            (!live.contains_key(&rev2) && live.contains_key(&rev1)).then_some(())
        },
    )
    .await;
    assert!(event(&st, "PendingRevisionDropped").await.contains(&rev2));

    // With keepPrevious 0s, promotion removes the old revision as before.
    promote(&st.views, &rev3).await.expect("promoted");
    let switched = status_when(&st.views, "rev3 serving", Duration::from_secs(60), |s| {
        s.active_revision.as_deref() == Some(rev3.as_str())
    })
    .await;
    assert!(switched.rollout.is_none(), "{:?}", switched.rollout);
    eventually(
        "rev1's StatefulSets removed",
        Duration::from_secs(60),
        || async {
            let live = sets_by_revision(&st).await;
            (live.keys().collect::<Vec<_>>() == [&rev3]).then_some(())
        },
    )
    .await;
}
