//! Rollouts in dev mode, as the operator does them in a cluster: a view's
//! manifest file changed to another revision builds that revision beside
//! the serving one (its own stores); `strategy: Automatic` switches when it
//! caught up, `Manual` waits — with its comparison in status — until the
//! page's Promote button (`POST /dev/v1/…/promote`). Setting the file back
//! drops the pending revision. The revision switched off stops at once
//! (dev mode keeps no previous revision).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::problem::Problem;
use crate::crd::{MaterializedView, MaterializedViewStatus, PendingRevision, RolloutStatus};
use crate::gateway::discovery::Directory;
use crate::gateway::routing::ViewRoute;
use crate::operator::comparisons::{Comparisons, Pair};
use crate::projector::RunningProjector;
use crate::view::ValidatedView;

/// How often manifest files and pending revisions are looked at.
const TICK: Duration = Duration::from_secs(1);

/// A view as dev mode runs it: where its manifest came from and what it is.
pub struct DevView {
    /// The file to follow; `None` for the built-in example.
    pub path: Option<PathBuf>,
    pub manifest: MaterializedView,
    pub validated: ValidatedView,
}

/// A revision's projectors, running.
pub struct Started {
    pub projectors: Vec<RunningProjector>,
    pub route: ViewRoute,
}

/// How dev mode prepares (registry, validation) and starts a revision.
pub trait Launch: Send + Sync {
    /// The manifest as dev mode runs it (its registry) and validated.
    fn prepare(
        &self,
        manifest: MaterializedView,
    ) -> Result<(MaterializedView, ValidatedView), String>;
    fn start(
        &self,
        manifest: &MaterializedView,
        view: &ValidatedView,
        cancel: CancellationToken,
    ) -> Result<Started, String>;
}

struct Revision {
    manifest: MaterializedView,
    started: Started,
    cancel: CancellationToken,
}

struct Slot {
    path: Option<PathBuf>,
    serving: Revision,
    pending: Option<Revision>,
    status: Option<PendingRevision>,
}

pub struct DevRollouts {
    slots: Mutex<Vec<Slot>>,
    directory: Arc<Directory>,
    launch: Box<dyn Launch>,
    comparisons: Arc<Comparisons>,
    projectors: crate::api::ProjectorClient,
    cancel: CancellationToken,
    /// Revisions switched off, stopping (joined at shutdown).
    stopped: Mutex<Vec<RunningProjector>>,
    /// The serving revisions' last totals, by revision.
    counted: Mutex<std::collections::HashMap<String, super::totals::Totals>>,
}

impl DevRollouts {
    /// The views as started, and the directory the gateway reads.
    pub fn new(
        started: Vec<(DevView, Started, CancellationToken)>,
        directory: Arc<Directory>,
        launch: Box<dyn Launch>,
        cancel: CancellationToken,
    ) -> Arc<DevRollouts> {
        let slots = started
            .into_iter()
            .map(|(view, started, cancel)| Slot {
                path: view.path,
                serving: Revision {
                    manifest: view.manifest,
                    started,
                    cancel,
                },
                pending: None,
                status: None,
            })
            .collect();
        let rollouts = Arc::new(DevRollouts {
            slots: Mutex::new(slots),
            directory,
            launch,
            comparisons: Arc::default(),
            projectors: crate::api::ProjectorClient::new(Duration::from_secs(3)),
            cancel,
            stopped: Mutex::new(Vec::new()),
            counted: Mutex::default(),
        });
        rollouts.publish();
        rollouts
    }

    /// Follows the manifest files until cancelled.
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            let this = self.clone();
            let files = tokio::task::spawn_blocking(move || this.reload_files()).await;
            if files.is_err() {
                warn!("reading the view files failed");
            }
            self.observe_pending().await;
            self.publish();
        }
    }

    /// Every projector still running or stopping, for the shutdown's joins.
    pub fn take_projectors(&self) -> Vec<RunningProjector> {
        let mut all: Vec<RunningProjector> = self
            .stopped
            .lock()
            .map(|mut s| s.drain(..).collect())
            .unwrap_or_default();
        if let Ok(mut slots) = self.slots.lock() {
            for slot in slots.iter_mut() {
                all.append(&mut slot.serving.started.projectors);
                if let Some(p) = slot.pending.as_mut() {
                    all.append(&mut p.started.projectors);
                }
            }
        }
        all
    }

    /// A changed file builds its revision (or drops the pending one).
    fn reload_files(&self) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        for slot in slots.iter_mut() {
            let Some(path) = slot.path.clone() else {
                continue;
            };
            let (ns, name) = names(&slot.serving.manifest);
            let Some(manifest) = read_manifest(&path, &ns, &name) else {
                continue;
            };
            let (manifest, view) = match self.launch.prepare(manifest) {
                Ok(prepared) => prepared,
                Err(e) => {
                    warn!(view = %name, error = %e, "the changed manifest is not valid; the running revision keeps serving");
                    continue;
                }
            };
            let serving = slot.serving.started.route.revision.clone();
            let pending = slot
                .pending
                .as_ref()
                .map(|p| p.started.route.revision.clone());
            if view.revision == serving {
                slot.serving.manifest = manifest;
                if let Some(dropped) = slot.pending.take() {
                    info!(view = %name, revision = %dropped.started.route.revision, "pending revision dropped: the file is back to the serving one");
                    self.stop(dropped);
                }
                slot.status = None;
                continue;
            }
            if pending.as_deref() == Some(view.revision.as_str()) {
                if let Some(p) = slot.pending.as_mut() {
                    p.manifest = manifest;
                }
                continue;
            }
            let cancel = self.cancel.child_token();
            match self.launch.start(&manifest, &view, cancel.clone()) {
                Ok(started) => {
                    info!(view = %name, revision = %view.revision, "building a new revision beside the serving one");
                    if let Some(dropped) = slot.pending.replace(Revision {
                        manifest,
                        started,
                        cancel,
                    }) {
                        self.stop(dropped);
                    }
                    slot.status = None;
                }
                Err(e) => warn!(view = %name, error = %e, "cannot start the new revision"),
            }
        }
    }

    /// Pending revisions' lag and rows; a caught-up one switches
    /// (Automatic) or gets its comparison (Manual).
    async fn observe_pending(&self) {
        let pending: Vec<(usize, ViewRoute, ViewRoute)> = match self.slots.lock() {
            Ok(slots) => slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let p = s.pending.as_ref()?;
                    Some((i, s.serving.started.route.clone(), p.started.route.clone()))
                })
                .collect(),
            Err(_) => return,
        };
        for (index, serving, route) in pending {
            let (mut lag, mut rows, mut ready) = (0i64, 0i64, true);
            for url in urls(&route).into_iter().flatten() {
                match self.projectors.stats(&url).await {
                    Ok(stats) => {
                        lag += stats.lag.max(0);
                        rows += i64::try_from(stats.rows).unwrap_or(i64::MAX);
                        ready &= stats.ready;
                    }
                    Err(_) => ready = false,
                }
            }
            let caught_up = ready && lag == 0;
            let key = format!("{}/{}", route.namespace, route.name);
            let comparison = if caught_up {
                let pair = || {
                    Some(Pair {
                        serving: (serving.revision.clone(), urls(&serving)),
                        pending: (route.revision.clone(), urls(&route)),
                    })
                };
                self.comparisons.latest(
                    &key,
                    &serving.revision,
                    &route.revision,
                    &self.projectors,
                    pair,
                )
            } else {
                None
            };
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            let Some(slot) = slots.get_mut(index) else {
                continue;
            };
            if slot.pending.as_ref().map(|p| &p.started.route.revision) != Some(&route.revision) {
                continue;
            }
            // Shards keyed by order each hold a part of a row: their rows
            // are distinct only by row key, or as the comparison counted them.
            let rows = match (&comparison, route.keyed_by_row_key) {
                (_, true) => Some(rows),
                (Some(c), false) => {
                    i64::try_from(c.rows_changed + c.rows_same + c.rows_only_pending).ok()
                }
                (None, false) => None,
            };
            slot.status = Some(PendingRevision {
                revision: route.revision.clone(),
                caught_up,
                lag: Some(lag),
                rows,
                comparison,
            });
            let manual = slot
                .pending
                .as_ref()
                .and_then(|p| p.manifest.spec.rollout.as_ref())
                .is_some_and(|r| r.is_manual());
            if caught_up && !manual {
                self.switch(slot);
            }
        }
    }

    /// The pending revision serves; the serving one stops.
    fn switch(&self, slot: &mut Slot) {
        if let Some(next) = slot.pending.take() {
            info!(view = %next.started.route.name, revision = %next.started.route.revision, "switching revision");
            let old = std::mem::replace(&mut slot.serving, next);
            slot.status = None;
            self.stop(old);
        }
    }

    fn stop(&self, revision: Revision) {
        revision.cancel.cancel();
        if let Ok(mut stopped) = self.stopped.lock() {
            stopped.extend(revision.started.projectors);
        }
    }

    /// What the gateway serves: each view with its status and routes.
    fn publish(&self) {
        let Ok(slots) = self.slots.lock() else {
            return;
        };
        let mut counted = self.counted.lock().map(|c| c.clone()).unwrap_or_default();
        let views = slots
            .iter()
            .map(|slot| {
                let serving = &slot.serving;
                let revision = &serving.started.route.revision;
                let totals = super::totals::totals(
                    &serving.started.projectors,
                    serving.manifest.spec.source.keyed_by_row_key,
                    counted.get(revision).copied(),
                );
                counted.insert(revision.clone(), totals);
                let mut manifest = slot.serving.manifest.clone();
                if let Some(p) = &slot.pending {
                    manifest.spec = p.manifest.spec.clone();
                }
                manifest.status = Some(MaterializedViewStatus {
                    active_revision: Some(revision.clone()),
                    rows: Some(totals.rows),
                    lag: Some(totals.lag),
                    rollout: slot.status.clone().map(|p| RolloutStatus {
                        pending: Some(p),
                        previous: None,
                    }),
                    ..Default::default()
                });
                let pending = slot.pending.as_ref().map(|p| p.started.route.clone());
                (manifest, Some(slot.serving.started.route.clone()), pending)
            })
            .collect();
        // Only the revisions serving now are kept.
        counted.retain(|revision, _| {
            slots
                .iter()
                .any(|s| &s.serving.started.route.revision == revision)
        });
        if let Ok(mut kept) = self.counted.lock() {
            *kept = counted;
        }
        self.directory.replace(views);
    }

    /// The page's Promote button.
    fn promote(&self, ns: &str, name: &str, revision: &str) -> Result<(), Problem> {
        let mut slots = self.slots.lock().map_err(Problem::internal)?;
        let slot = slots
            .iter_mut()
            .find(|s| names(&s.serving.manifest) == (ns.to_string(), name.to_string()))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "no such view",
                    format!("no view {ns}/{name}"),
                )
            })?;
        match &slot.status {
            Some(p) if p.revision == revision && p.caught_up => {}
            Some(p) if p.revision == revision => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "not caught up",
                    format!(
                        "revision {revision} has not caught up yet (lag {:?}); promote it once it has",
                        p.lag
                    ),
                ));
            }
            other => {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "no such pending revision",
                    format!(
                        "revision {revision} of {ns}/{name} is not pending (pending: {})",
                        other.as_ref().map_or("none", |p| p.revision.as_str())
                    ),
                ));
            }
        }
        self.switch(slot);
        drop(slots);
        self.publish();
        Ok(())
    }
}

fn names(view: &MaterializedView) -> (String, String) {
    (
        view.metadata.namespace.clone().unwrap_or_default(),
        view.metadata.name.clone().unwrap_or_default(),
    )
}

fn urls(route: &ViewRoute) -> Vec<Vec<String>> {
    let mut out = Vec::with_capacity(route.shards.len());
    for shard in &route.shards {
        out.push(shard.iter().map(|e| e.url.clone()).collect());
    }
    out
}

/// The manifest of `ns/name` in `path` now; `None` when unreadable (a
/// file being written is read again next time).
fn read_manifest(path: &std::path::Path, ns: &str, name: &str) -> Option<MaterializedView> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|d| MaterializedView::deserialize(d).ok())
        .find(|m| names(m) == (ns.to_string(), name.to_string()))
}

/// What the Promote button sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub revision: String,
}

#[derive(Debug, Serialize)]
pub struct Promoted {
    pub serving: String,
}

pub fn router(rollouts: Arc<DevRollouts>) -> Router {
    Router::new()
        .route(
            "/dev/v1/namespaces/{ns}/views/{name}/promote",
            post(promote),
        )
        .with_state(rollouts)
}

async fn promote(
    State(rollouts): State<Arc<DevRollouts>>,
    Path((ns, name)): Path<(String, String)>,
    body: Result<Json<PromoteRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Promoted>, Problem> {
    let Json(request) = body.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad promotion",
            format!(
                "{}; send {{\"revision\": \"<pending revision>\"}}",
                e.body_text()
            ),
        )
    })?;
    rollouts.promote(&ns, &name, &request.revision)?;
    Ok(Json(Promoted {
        serving: request.revision,
    }))
}
