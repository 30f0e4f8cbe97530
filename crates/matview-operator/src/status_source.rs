//! The source's part of status while a view serves: what its projectors
//! report of the broker, the schema registry and the topics' replicas, and
//! the Event each change of it is announced with.

use kube::runtime::events::EventType;

use super::{ProjectorTroubles, Setter};
use matview_crd::{ConditionType, MaterializedViewStatus};

/// Reasons of `SourceReady` while a view serves.
const UNDER_REPLICATED: &str = "UnderReplicated";
pub(super) const TOPIC_FOUND: &str = "TopicFound";

/// `SourceReady=False` when the serving projectors cannot reach the broker
/// or the schema registry, in their words; `SourceReady=True` with reason
/// `UnderReplicated` while they can but replicas are out of sync.
pub(super) fn source_troubles(c: &mut Setter<'_>, troubles: &ProjectorTroubles) {
    if let Some(partitions) = &troubles.under_replicated {
        let message = format!(
            "{partitions}; the view reads and applies events, but Kafka refuses new events to a partition once fewer replicas than its min.insync.replicas are in sync"
        );
        c.set(ConditionType::SourceReady, true, UNDER_REPLICATED, message);
    }
    if let Some(source) = &troubles.source {
        let message = format!(
            "projectors cannot reach the broker ({source}); reads are served from their stores"
        );
        c.set(
            ConditionType::SourceReady,
            false,
            "BrokerUnreachable",
            message,
        );
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
        c.set(ConditionType::SourceReady, false, reason, message);
    }
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

#[cfg(test)]
mod tests {
    use super::super::tests::{now, observed, ready};
    use super::super::{Phase, compute};
    use super::*;
    use matview_crd::ConditionStatus;

    #[test]
    fn replicas_out_of_sync_are_said_while_the_view_stays_ready() {
        let mut o = observed();
        let partitions =
            "source topic orders: partition 0 has 2 of 3 replicas in sync (out of sync: node 2)";
        o.troubles.under_replicated = Some(partitions.into());
        let s = compute(None, &o, now());
        assert_eq!(s.phase, Some(Phase::Ready));
        assert_eq!(
            ready(&s, ConditionType::SourceReady),
            (ConditionStatus::True, UNDER_REPLICATED.into())
        );
        let said = s
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::SourceReady)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        assert!(said.starts_with(partitions), "{said}");

        // A broker no projector reaches outranks replicas out of sync.
        o.troubles.source = Some("p-0: Local: Broker transport failure".into());
        let worse = compute(Some(&s), &o, now());
        assert_eq!(
            ready(&worse, ConditionType::SourceReady),
            (ConditionStatus::False, "BrokerUnreachable".into())
        );
    }

    #[test]
    fn each_change_of_the_source_is_announced_once() {
        let fine = compute(None, &observed(), now());
        let mut o = observed();
        o.troubles.under_replicated = Some("source topic t: partition 0 has no leader".into());
        let short = compute(Some(&fine), &o, now());
        o.troubles.source = Some("p-0: timed out".into());
        let away = compute(Some(&short), &o, now());

        let reason = |old, new| source_event(Some(old), new).map(|(t, r, _)| (t, r));
        assert_eq!(reason(&fine, &fine), None);
        assert_eq!(
            reason(&fine, &short),
            Some((EventType::Warning, UNDER_REPLICATED.to_string()))
        );
        assert_eq!(reason(&short, &short), None);
        assert_eq!(
            reason(&short, &away),
            Some((EventType::Warning, "BrokerUnreachable".to_string()))
        );
        let back = source_event(Some(&away), &fine);
        let (type_, reason, note) = back.expect("recovery announced");
        assert_eq!(
            (type_, reason.as_str()),
            (EventType::Normal, "SourceRecovered")
        );
        assert!(note.ends_with("(was BrokerUnreachable)"), "{note}");
        assert_eq!(source_event(None, &away), None);
    }
}
