//! The source's part of status (`status_source.rs`), through `compute`.

use super::source::{UNDER_REPLICATED, source_event};
use super::tests::{message, now, observed, ready};
use super::*;
use kube::runtime::events::EventType;

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
    let said = message(&s, ConditionType::SourceReady);
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
