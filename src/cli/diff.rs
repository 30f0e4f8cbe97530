//! `matview diff -f FILE`: what applying MaterializedView manifests would
//! change in the cluster — each changed field, and whether it means a
//! rebuild, a switch back, a promotion, pods updated in place, or nothing
//! that runs; with the pending revision when one waits.

use std::path::PathBuf;

use kube::api::Api;
use serde::Deserialize;

use super::CliError;
use super::diff_plan;
use super::diff_table;
use crate::crd::MaterializedView;
use crate::operator::desired::PodSettings;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// Manifest file holding one or more MaterializedViews.
    #[arg(short = 'f', long = "filename")]
    pub path: PathBuf,
    /// Namespace of views whose manifest names none (default: the kubeconfig's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Exit with status 1 when anything differs (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
}

/// Prints the plan of every view in the file; `Ok(true)` when any differs.
pub fn run(args: &DiffArgs) -> Result<bool, CliError> {
    let text = std::fs::read_to_string(&args.path).map_err(|source| CliError::Read {
        path: args.path.clone(),
        source,
    })?;
    let mut views = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let view = MaterializedView::deserialize(document).map_err(|source| CliError::Parse {
            path: args.path.clone(),
            source,
        })?;
        views.push(view);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(diff_all(&views, args.namespace.as_deref()))
}

async fn diff_all(views: &[MaterializedView], namespace: Option<&str>) -> Result<bool, CliError> {
    let client = kube::Client::try_default().await.map_err(cluster)?;
    let mut differs = false;
    for file in views {
        let name = file.metadata.name.clone().unwrap_or_default();
        let ns = file
            .metadata
            .namespace
            .clone()
            .or_else(|| namespace.map(str::to_string))
            .unwrap_or_else(|| client.default_namespace().to_string());
        let api: Api<MaterializedView> = Api::namespaced(client.clone(), &ns);
        let (file_revision, file_objects) = planned(file)?;
        let Some(live) = api.get_opt(&name).await.map_err(cluster)? else {
            differs = true;
            println!(
                "{ns}/{name}: not in the cluster — applying creates it; revision {file_revision} builds from the topic"
            );
            continue;
        };
        // Planned under the file's metadata, so that only the specs differ
        // (the revision is the live spec's either way).
        let mut respecified = file.clone();
        respecified.spec = live.spec.clone();
        let (live_revision, live_objects) = planned(&respecified)?;
        let same_objects = live_objects == file_objects;
        let plan = diff_plan::plan(&live, file, &live_revision, &file_revision, same_objects);
        differs |= !plan.changes.is_empty();
        print!("{}", diff_plan::describe(&format!("{ns}/{name}"), &plan));
        if let Some(p) = live
            .status
            .as_ref()
            .and_then(|s| s.rollout.as_ref())
            .and_then(|r| r.pending.as_ref())
        {
            let figure = |v: Option<i64>| v.map_or("unknown".into(), |v| v.to_string());
            println!(
                "pending revision {}: caught up {}, lag {}, rows {}",
                p.revision,
                p.caught_up,
                figure(p.lag),
                figure(p.rows)
            );
            match &p.comparison {
                Some(c) => print!("{}", diff_table::comparison_tables(&p.revision, c)),
                None if p.caught_up => println!(
                    "its comparison with the serving revision is being computed; run matview diff again in a moment"
                ),
                None => {}
            }
        }
    }
    Ok(differs)
}

fn cluster(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("cannot read the view from the cluster: {e}"))
}

/// The revision of a spec and the objects the operator would create for
/// it, as text; or what makes the spec invalid.
fn planned(view: &MaterializedView) -> Result<(String, String), CliError> {
    let (revision, objects) = crate::operator::plan(view, &PodSettings::default())?;
    Ok((revision, crate::operator::render(&objects)?))
}
