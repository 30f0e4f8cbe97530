//! What a waiting revision looks like from outside, checked against what
//! the orders say: the gateway's comparison, the summary in status and its
//! tables in `matview diff`, and its rows read by naming it.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use kube::api::Api;
use matview::crd::{MaterializedView, MaterializedViewStatus};

use crate::support::eventually;
use crate::support::projector::{Reference, reference};
use crate::support::stack::Stack;

/// The readers of `Readers` read the view of this name.
pub const VIEW: &str = "load";

/// The view's status once `test` holds.
pub async fn status_when(
    views: &Api<MaterializedView>,
    what: &str,
    timeout: Duration,
    test: impl Fn(&MaterializedViewStatus) -> bool,
) -> MaterializedViewStatus {
    eventually(what, timeout, || async {
        let status = views.get(VIEW).await.ok()?.status?;
        test(&status).then_some(status)
    })
    .await
}

/// Items priced from 5 to under 10 (they move from affordable to cheap):
/// how many, their prices in cents, and their users.
pub fn moves_below_ten(orders: &[Value]) -> (u64, i64, BTreeSet<String>) {
    let (mut moved, mut cents, mut users) = (0u64, 0i64, BTreeSet::new());
    for order in orders {
        for item in order["items"].as_array().into_iter().flatten() {
            let price = (item["price"].as_f64().unwrap_or(0.0) * 100.0).round() as i64;
            if (500..1000).contains(&price) {
                moved += 1;
                cents += price;
                users.insert(order["userId"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    (moved, cents, users)
}

/// Status summarizes the same comparison once the operator computed it.
pub async fn check_status_comparison(st: &Stack, rev1: &str, rev2: &str, orders: &[Value]) {
    let (moved, cents, users) = moves_below_ten(orders);
    let status = status_when(
        &st.views,
        "the comparison in status",
        Duration::from_secs(60),
        |s| {
            let p = s.rollout.as_ref().and_then(|r| r.pending.as_ref());
            p.is_some_and(|p| p.revision == rev2 && p.comparison.is_some())
        },
    )
    .await;
    let pending = status.rollout.and_then(|r| r.pending).expect("pending");
    let c = pending.comparison.expect("a comparison");
    assert_eq!(c.serving, rev1);
    assert_eq!(c.rows_changed, users.len() as u64);
    assert_eq!((c.rows_only_serving, c.rows_only_pending), (0, 0));
    let moves: Vec<_> = c
        .moved
        .iter()
        .map(|m| (m.from.as_deref(), m.to.as_deref(), m.records))
        .collect();
    assert_eq!(moves, [(Some("affordable"), Some("cheap"), moved)]);
    let deltas: Vec<_> = c
        .groups
        .iter()
        .map(|g| {
            let price = g
                .sum_deltas
                .get("price")
                .and_then(|d| d.parse::<f64>().ok());
            let cents = price.map(|p| (p * 100.0).round() as i64);
            (g.group.as_str(), g.count_delta, cents)
        })
        .collect();
    assert_eq!(
        deltas,
        [
            ("affordable", -(moved as i64), Some(-cents)),
            ("cheap", moved as i64, Some(cents))
        ]
    );

    // `matview diff` of the file that made rev2 prints the same as tables.
    let mut file = st.views.get(VIEW).await.expect("view");
    (file.status, file.metadata.managed_fields) = (None, None);
    let (_, out) = crate::diff::diff(st.env, &st.ns.name, &file);
    assert!(out.contains("load: no changes\npending revision"), "{out}");
    let cells = |line: &str| -> Vec<String> {
        let cells = line.split('|').map(|c| c.trim().to_string());
        cells.filter(|c| !c.is_empty()).collect()
    };
    let rows: Vec<Vec<String>> = out.lines().map(cells).collect();
    let want = |row: &[&str]| {
        let row: Vec<String> = row.iter().map(|c| c.to_string()).collect();
        assert!(rows.contains(&row), "no row {row:?} in\n{out}");
    };
    want(&["affordable", "cheap", &moved.to_string()]);
    // Per group: the signed count delta and the price delta, in cents.
    let delta = |group: &str| {
        let row = rows
            .iter()
            .find(|r| r.len() == 3 && r[0] == group && r[1].starts_with(['+', '-']))
            .unwrap_or_else(|| panic!("no delta row of {group} in\n{out}"));
        let price = row[2].parse::<f64>().map(|p| (p * 100.0).round() as i64);
        (row[1].clone(), price.ok())
    };
    assert_eq!(delta("cheap"), (format!("+{moved}"), Some(cents)));
    assert_eq!(delta("affordable"), (format!("-{moved}"), Some(-cents)));
}

/// The gateway's comparison of the waiting revision (cheap below 10) with
/// the serving one (below 5) equals what the orders say: every item priced
/// from 5 to under 10 moves from affordable to cheap, with its price.
pub async fn check_comparison(st: &Stack, token: &str, rev1: &str, rev2: &str, orders: &[Value]) {
    let (moved, cents, users) = moves_below_ten(orders);
    let all_users = reference(orders).len() as u64;
    let path = format!(
        "/v1/namespaces/{}/views/{VIEW}/revisions/{rev2}/comparison",
        st.ns.name
    );
    let answer = st.serving(&path, Some(token)).await;
    let c = &answer.body;
    assert_eq!(c["serving"]["revision"], rev1);
    assert_eq!(c["candidate"]["revision"], rev2);
    assert_eq!(c["consistent"], true, "{c}");
    assert_eq!(
        c["moved"],
        json!([{"from": "affordable", "to": "cheap", "records": moved}]),
        "{c}"
    );
    assert_eq!(c["rows"]["changed"], users.len() as u64, "{c}");
    assert_eq!(c["rows"]["same"], all_users - users.len() as u64, "{c}");
    assert_eq!(c["rows"]["onlyServing"], 0);
    assert_eq!(c["records"]["onlyCandidate"], 0);
    let group = |name: &str| {
        c["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["group"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no group {name} in {c}"))
    };
    let as_cents = |v: &Value| {
        (v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            * 100.0)
            .round() as i64
    };
    let (cheap, affordable) = (group("cheap"), group("affordable"));
    assert_eq!(cheap["countDelta"], moved as i64);
    assert_eq!(affordable["countDelta"], -(moved as i64));
    assert_eq!(as_cents(&cheap["sumDeltas"]["price"]), cents);
    assert_eq!(as_cents(&affordable["sumDeltas"]["price"]), -cents);
    // A revision that is not pending is named in a 404.
    let other = path.replace(rev2, "0123456789");
    let missing = st.gateway.get(&other, Some(token)).await.expect("answers");
    assert_eq!(missing.status, 404, "{:?}", missing.body);
    assert!(
        missing.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(rev2))
    );
}

/// A scan of "cheap" named at the pending revision lists exactly the users
/// with cheap items under the new rules; an unknown revision is a 404.
pub async fn check_pending_scan(st: &Stack, token: &str, rev2: &str, new_rules: &Reference) {
    let base = format!(
        "/v1/namespaces/{}/views/{VIEW}/groups/cheap/rows",
        st.ns.name
    );
    let (mut listed, mut cursor) = (BTreeSet::new(), None::<String>);
    loop {
        let mut path = format!("{base}?limit=1000&revision={rev2}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = st.serving(&path, Some(token)).await;
        assert_eq!(page.revision.as_deref(), Some(rev2));
        for row in page.body["rows"].as_array().into_iter().flatten() {
            listed.insert(row["key"].as_str().unwrap_or_default().to_string());
        }
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let expected: BTreeSet<String> = new_rules
        .iter()
        .filter(|(_, groups)| groups.get("cheap").is_some_and(|(n, _)| *n > 0))
        .map(|(user, _)| user.clone())
        .collect();
    assert_eq!(listed, expected);
    let unknown = st
        .gateway
        .get(&format!("{base}?revision=0123456789"), Some(token))
        .await
        .expect("answers");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

/// The gateway's revisions of the view while `rev2` waits for promotion:
/// fully applied, and exactly the two bounds the test moved from 5 to 10.
pub async fn check_revisions(st: &Stack, token: &str, rev1: &str, rev2: &str) {
    let path = format!("/v1/namespaces/{}/views/{VIEW}/revisions", st.ns.name);
    let answer = st.gateway.get(&path, Some(token)).await.expect("answers");
    let r = answer.body;
    assert_eq!(answer.status, 200, "{r}");
    assert_eq!(r["serving"], rev1, "{r}");
    let building = &r["building"];
    assert_eq!(building["revision"], rev2, "{r}");
    assert_eq!(building["percentApplied"].as_f64(), Some(100.0), "{r}");
    assert_eq!(building["caughtUp"], true, "{r}");
    assert_eq!(building["waitsForPromotion"], true, "{r}");
    let changes: Vec<(String, Option<f64>, Option<f64>)> = r["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap_or_default().to_string(),
                c["serving"].as_f64(),
                c["building"].as_f64(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("/classify/rules/0/lt".to_string(), Some(5.0), Some(10.0)),
            ("/classify/rules/1/gte".to_string(), Some(5.0), Some(10.0)),
        ],
        "{r}"
    );
}
