//! What applying a view's manifest would change, as a pure function of the
//! view in the cluster and the one in the file: the fields, and what that
//! means for what runs (a rebuild, a switch back to a kept revision, a
//! promotion, pods updated in place, or nothing that runs).

use serde_json::Value;

use crate::crd::{MaterializedView, MaterializedViewStatus};

/// One field whose value differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// Such as `spec.classify.rules`; arrays are compared whole.
    pub path: String,
    /// Compact JSON; `None` when absent on that side.
    pub live: Option<String>,
    pub file: Option<String>,
}

/// What the change means for what runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The file is what the cluster has.
    Nothing,
    /// A new revision builds beside the serving one, from the topic's start.
    Rebuild {
        serving: Option<String>,
        to: String,
        /// `spec.rollout.strategy: Manual`: it waits for promotion.
        manual: bool,
    },
    /// The file's revision is the one kept since the last switch: it serves
    /// again at once, unbuilt.
    SwitchBack { to: String },
    /// The file's revision is already pending.
    AlreadyPending { revision: String, caught_up: bool },
    /// `spec.rollout.promote` names the pending revision: it serves next.
    Promote { revision: String },
    /// Same revision; the projector pods are updated in place.
    PodsUpdated { revision: String },
    /// Same revision and objects: only settings the operator reads (rollout,
    /// deletion policy) change.
    SettingsOnly,
}

/// The field changes and their effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<FieldChange>,
    pub effect: Effect,
}

/// Pure: compares the specs; `same_objects` says whether the objects the
/// operator would create for the file's spec equal the live spec's (asked
/// only when the revisions are equal).
pub fn plan(
    live: &MaterializedView,
    file: &MaterializedView,
    live_revision: &str,
    file_revision: &str,
    same_objects: bool,
) -> Plan {
    let (a, b) = (
        serde_json::to_value(&live.spec).unwrap_or(Value::Null),
        serde_json::to_value(&file.spec).unwrap_or(Value::Null),
    );
    let mut changes = Vec::new();
    walk("spec", Some(&a), Some(&b), &mut changes);
    let status = live.status.clone().unwrap_or_default();
    let effect = if changes.is_empty() {
        Effect::Nothing
    } else if file_revision != live_revision {
        revision_effect(&status, file, file_revision)
    } else if let Some(revision) = promotion(&status, live, file) {
        Effect::Promote { revision }
    } else if !same_objects {
        Effect::PodsUpdated {
            revision: file_revision.to_string(),
        }
    } else {
        Effect::SettingsOnly
    };
    Plan { changes, effect }
}

fn revision_effect(status: &MaterializedViewStatus, file: &MaterializedView, to: &str) -> Effect {
    let rollout = status.rollout.clone().unwrap_or_default();
    let serving = status.active_revision.clone();
    if serving.as_deref() == Some(to) {
        // Back to what serves: whatever was building is dropped.
        return Effect::Nothing;
    }
    if rollout.previous.as_ref().is_some_and(|k| k.revision == to) {
        return Effect::SwitchBack { to: to.to_string() };
    }
    if let Some(p) = rollout.pending.filter(|p| p.revision == to) {
        return Effect::AlreadyPending {
            revision: p.revision,
            caught_up: p.caught_up,
        };
    }
    let manual = file.spec.rollout.as_ref().is_some_and(|r| r.is_manual());
    Effect::Rebuild {
        serving,
        to: to.to_string(),
        manual,
    }
}

/// The pending revision, when the file newly promotes it.
fn promotion(
    status: &MaterializedViewStatus,
    live: &MaterializedView,
    file: &MaterializedView,
) -> Option<String> {
    let promote = |v: &MaterializedView| v.spec.rollout.as_ref()?.promote.clone();
    let wanted = promote(file)?;
    let pending = status.rollout.as_ref()?.pending.as_ref()?;
    (promote(live).as_ref() != Some(&wanted) && pending.revision == wanted).then_some(wanted)
}

/// Leaf differences between two JSON values; objects are walked, anything
/// else (arrays included) compared whole.
fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                walk(&format!("{path}.{key}"), a.get(key), b.get(key), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange {
            path: path.to_string(),
            live: a.map(Value::to_string),
            file: b.map(Value::to_string),
        }),
    }
}

/// The plan as a person reads it: each changed field with both values,
/// then what happens.
pub fn describe(name: &str, plan: &Plan) -> String {
    let mut out = String::new();
    for c in &plan.changes {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
        out.push_str(&format!(
            "{}\n  live: {}\n  file: {}\n",
            c.path,
            show(&c.live),
            show(&c.file)
        ));
    }
    if !plan.changes.is_empty() {
        out.push('\n');
    }
    let effect = match &plan.effect {
        Effect::Nothing if plan.changes.is_empty() => format!("{name}: no changes"),
        Effect::Nothing => format!(
            "{name}: back to the revision that serves; a revision still building is dropped"
        ),
        Effect::Rebuild {
            serving,
            to,
            manual,
        } => {
            let from = serving.as_deref().unwrap_or("none");
            let then = if *manual {
                "once caught up it waits for promotion (spec.rollout.promote)"
            } else {
                "it serves once caught up"
            };
            format!(
                "{name}: rebuild — revision {to} builds from the start of the topic beside {from}, which serves meanwhile; {then}"
            )
        }
        Effect::SwitchBack { to } => format!(
            "{name}: switch back — revision {to} is kept running since the last switch and serves again at once, without a rebuild"
        ),
        Effect::AlreadyPending {
            revision,
            caught_up,
        } => format!(
            "{name}: revision {revision} is already pending ({})",
            if *caught_up {
                "caught up, waiting for promotion"
            } else {
                "still catching up"
            }
        ),
        Effect::Promote { revision } => {
            format!("{name}: promotion — revision {revision} serves next")
        }
        Effect::PodsUpdated { revision } => {
            format!("{name}: no rebuild — the pods of revision {revision} are updated in place")
        }
        Effect::SettingsOnly => {
            format!(
                "{name}: no rebuild, no pod changes — only how the operator rolls out or deletes"
            )
        }
    };
    out.push_str(&effect);
    out.push('\n');
    out
}

#[cfg(test)]
#[path = "diff_plan_tests.rs"]
mod tests;
