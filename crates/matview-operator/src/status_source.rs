//! The source's part of status while a view serves: what its projectors
//! report of the broker, the schema registry and the topics' replicas, and
//! the Event each change of it is announced with.

use kube::runtime::events::EventType;

use matview_crd::{ConditionType, MaterializedViewStatus};

/// Reasons of `SourceReady` while a view serves.
pub const UNDER_REPLICATED: &str = "UnderReplicated";
pub const TOPIC_FOUND: &str = "TopicFound";

/// What the active revision's projectors report while serving: batches
/// held (e.g. a full disk), a broker that does not answer them, or a schema
/// registry that does not, and replicas out of sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectorTroubles {
    pub store: Option<String>,
    pub source: Option<String>,
    pub schema_registry: Option<String>,
    /// The registry answered 401/403: the credentials need the fix.
    pub schema_registry_refused: bool,
    /// Partitions of the source or dead-letter topic with replicas out of sync.
    pub under_replicated: Option<String>,
}

/// One condition to set: type, whether it holds, reason, message.
pub type SetCondition = (ConditionType, bool, &'static str, String);

/// Pure: `SourceReady=False` when the serving projectors cannot reach the
/// broker or the schema registry, in their words; `SourceReady=True` with
/// reason `UnderReplicated` while they can but replicas are out of sync.
/// Set in order: a later one wins.
pub fn source_conditions(troubles: &ProjectorTroubles) -> Vec<SetCondition> {
    let mut set = Vec::new();
    if let Some(partitions) = &troubles.under_replicated {
        let message = format!(
            "{partitions}; the view reads and applies events, but Kafka refuses new events to a partition once fewer replicas than its min.insync.replicas are in sync"
        );
        set.push((ConditionType::SourceReady, true, UNDER_REPLICATED, message));
    }
    if let Some(source) = &troubles.source {
        let message = format!(
            "projectors cannot reach the broker ({source}); reads are served from their stores"
        );
        set.push((
            ConditionType::SourceReady,
            false,
            "BrokerUnreachable",
            message,
        ));
    }
    if let Some(registry) = &troubles.schema_registry {
        let (reason, fix) = if troubles.schema_registry_refused {
            (
                "SchemaRegistryAuthenticationFailed",
                "; check username and password in spec.source.schemaRegistry.configFrom",
            )
        } else {
            ("SchemaRegistryUnreachable", "")
        };
        let message = format!(
            "projectors cannot get schemas from the registry ({registry}){fix}; batches wait for it, reads are served from their stores"
        );
        set.push((ConditionType::SourceReady, false, reason, message));
    }
    set
}

/// Pure: the Event announcing a change of `SourceReady` while the view's
/// source topic is found: a Warning with the new reason when trouble starts
/// or changes kind, Normal `SourceRecovered` when it ends. (A source topic
/// the operator itself cannot read is announced with the phase change.)
pub fn source_event(
    old: Option<&MaterializedViewStatus>,
    new: &MaterializedViewStatus,
) -> Option<(EventType, String, String)> {
    let source = |s: &MaterializedViewStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::SourceReady)
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let (was, _) = source(old?)?;
    let (now, message) = source(new)?;
    if was == now {
        return None;
    }
    if now == TOPIC_FOUND {
        let note = format!("{message} (was {was})");
        return Some((EventType::Normal, "SourceRecovered".into(), note));
    }
    Some((EventType::Warning, now, message))
}
