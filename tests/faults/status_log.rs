//! What the view's status said of its source, as it said it: the
//! `SourceReady` condition read every 250 ms throughout a scenario, each
//! change kept with when it was seen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::Api;
use matview::crd::{ConditionStatus, ConditionType, MaterializedView};

use crate::figures::now_ms;

/// One change of `SourceReady` as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub at_ms: i64,
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

pub struct StatusLog {
    said: Arc<Mutex<Vec<Said>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusLog {
    pub fn spawn(views: Api<MaterializedView>, view: &str) -> StatusLog {
        let said: Arc<Mutex<Vec<Said>>> = Arc::default();
        let task = {
            let (said, view) = (said.clone(), view.to_string());
            tokio::spawn(async move {
                loop {
                    if let Some(now) = source_ready(&views, &view).await
                        && let Ok(mut said) = said.lock()
                        && said.last().is_none_or(|last| {
                            (last.ok, &last.reason, &last.message)
                                != (now.ok, &now.reason, &now.message)
                        })
                    {
                        said.push(now);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        StatusLog { said, task }
    }

    /// Every change seen since `from_ms`.
    pub fn since(&self, from_ms: i64) -> Vec<Said> {
        self.said
            .lock()
            .map(|s| s.iter().filter(|s| s.at_ms >= from_ms).cloned().collect())
            .unwrap_or_default()
    }

    /// The reasons seen since `from_ms`, each with its time after it, in words.
    pub fn story(&self, from_ms: i64) -> String {
        let said: Vec<String> = self
            .since(from_ms)
            .iter()
            .map(|s| format!("+{:.1} s {}", (s.at_ms - from_ms) as f64 / 1000.0, s.reason))
            .collect();
        said.join(", ")
    }
}

impl Drop for StatusLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn source_ready(views: &Api<MaterializedView>, view: &str) -> Option<Said> {
    let status = views.get(view).await.ok()?.status?;
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::SourceReady)?;
    Some(Said {
        at_ms: now_ms(),
        ok: c.status == ConditionStatus::True,
        reason: c.reason.clone(),
        message: c.message.clone(),
    })
}
