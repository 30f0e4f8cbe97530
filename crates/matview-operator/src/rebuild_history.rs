//! Whether a rebuild can see the topic's whole history, asked of Kafka
//! while a revision is rebuilt, and said once as a Warning Event when not.

use kube::runtime::events::EventType;
use tracing::warn;

use super::context::{Context, publish};
use super::history::{History, verdict};
use super::kafka::{KafkaConnection, topic_history};
use matview_api::view::ValidatedView;
use matview_crd::{ConditionType, MaterializedView, StartFrom};

/// What a rebuild from the topic can see (`None`: it starts from the
/// latest event, or Kafka did not say). The first time retention is found
/// to have deleted events, a Warning Event names the topic and partitions.
pub async fn rebuild_history(
    ctx: &Context,
    view: &MaterializedView,
    validated: &ValidatedView,
    kafka: &KafkaConnection,
    partitions: i32,
) -> Option<History> {
    if view.spec.source.start_from == StartFrom::Latest {
        return None;
    }
    let topic = &validated.topic;
    let found = topic_history(kafka, topic, partitions).await;
    let history = match found {
        Ok(found) => verdict(&found, view.spec.source.accept_incomplete_history),
        Err(e) => {
            warn!(view = %validated.key(), error = %e, "cannot tell whether the topic still holds its beginning");
            return None;
        }
    };
    let (ok, reason, message) = history.condition(topic);
    let said_before = view.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ConditionType::HistoryComplete && c.reason == reason)
    });
    if !ok && !said_before {
        publish(ctx, view, EventType::Warning, "HistoryIncomplete", message);
    }
    Some(history)
}
