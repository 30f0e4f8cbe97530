//! Which revision of a view a read is answered from: the serving one, or —
//! when the caller names it — the one waiting for promotion. A plain read
//! never reaches a pending revision.

use std::sync::Arc;

use axum::http::StatusCode;

use super::GatewayState;
use super::discovery::RevisionInfo;
use super::routing::ViewRoute;
use matview_api::problem::Problem;

/// A view ready to be read: its route and its revision's compiled spec.
pub struct Target {
    pub route: Arc<ViewRoute>,
    pub info: Arc<RevisionInfo>,
    /// The revision waiting for promotion, read because the caller named it
    /// (never cached: the gateway's row cache follows serving revisions).
    pub pending: bool,
}

/// The route a read asks for: `wanted` names the serving or the pending
/// revision; without it, the serving one. Anything else is a 404 that
/// names the revisions there are.
pub fn choose_route(
    serving: Arc<ViewRoute>,
    pending: Option<Arc<ViewRoute>>,
    wanted: Option<&str>,
) -> Result<(Arc<ViewRoute>, bool), Problem> {
    match (wanted, pending) {
        (None, _) => Ok((serving, false)),
        (Some(w), _) if w == serving.revision => Ok((serving, false)),
        (Some(w), Some(pending)) if w == pending.revision => Ok((pending, true)),
        (Some(w), pending) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no such revision",
            format!(
                "view {}/{} has no readable revision {w} (serving: {}; pending: {})",
                serving.namespace,
                serving.name,
                serving.revision,
                pending.map_or("none".to_string(), |p| p.revision.clone())
            ),
        )),
    }
}

impl GatewayState {
    /// The serving revision of a view, or a 404/503 that says why not.
    pub async fn target(&self, ns: &str, name: &str) -> Result<Target, Problem> {
        self.target_at(ns, name, None).await
    }

    /// The revision a read names (`?revision=`), else the serving one.
    pub async fn target_at(
        &self,
        ns: &str,
        name: &str,
        revision: Option<&str>,
    ) -> Result<Target, Problem> {
        let (route, pending) = self.route_at(ns, name, revision)?;
        let info = self
            .directory
            .revision_info(&self.projectors, &route)
            .await
            .map_err(|e| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "view unavailable",
                    matview_api::errors::chain(&e),
                )
            })?;
        Ok(Target {
            route,
            info,
            pending,
        })
    }

    /// The route `target_at` reads (and whether it is the pending
    /// revision's), without asking a projector anything.
    pub fn route_at(
        &self,
        ns: &str,
        name: &str,
        revision: Option<&str>,
    ) -> Result<(Arc<ViewRoute>, bool), Problem> {
        let serving = match self.directory.route(ns, name) {
            Some(route) => route,
            None if self.directory.view(ns, name).is_some() => {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not serving yet",
                    format!(
                        "view {ns}/{name} has no serving revision yet; see kubectl describe mv -n {ns} {name}"
                    ),
                ));
            }
            None => {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "no such view",
                    format!("no MaterializedView {ns}/{name}"),
                ));
            }
        };
        let pending = revision.and_then(|_| self.directory.pending_route(ns, name));
        choose_route(serving, pending, revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(revision: &str) -> Arc<ViewRoute> {
        Arc::new(ViewRoute {
            namespace: "shop".into(),
            name: "v".into(),
            revision: revision.into(),
            topic: "orders".into(),
            keyed_by_row_key: true,
            shards: Vec::new(),
        })
    }

    #[test]
    fn a_named_revision_is_the_serving_or_the_pending_one_and_nothing_else() {
        let chosen = |pending: Option<&str>, wanted: Option<&str>| {
            choose_route(route("r1"), pending.map(route), wanted)
                .map(|(r, pending)| (r.revision.clone(), pending))
        };
        assert_eq!(chosen(Some("r2"), None).ok(), Some(("r1".into(), false)));
        assert_eq!(
            chosen(Some("r2"), Some("r1")).ok(),
            Some(("r1".into(), false))
        );
        assert_eq!(
            chosen(Some("r2"), Some("r2")).ok(),
            Some(("r2".into(), true))
        );
        for (pending, wanted) in [(Some("r2"), "r3"), (None, "r2")] {
            let e = chosen(pending, Some(wanted)).expect_err(wanted);
            assert_eq!(e.status, StatusCode::NOT_FOUND);
            assert!(
                e.detail.contains(wanted) && e.detail.contains("serving: r1"),
                "{}",
                e.detail
            );
        }
    }
}
