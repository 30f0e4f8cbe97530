use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("valid time")
}

fn kept(revision: &str, until: i64) -> KeptRevision {
    KeptRevision {
        revision: revision.into(),
        kept_until: Time(at(until)),
    }
}

/// Spec at `b`, `a` serving, nothing kept, Automatic, 10 minutes kept.
fn input<'a>() -> RolloutInput<'a> {
    RolloutInput {
        current: "b",
        active: "a",
        previous: None,
        manual: false,
        promote: None,
        keep_previous: Duration::from_secs(600),
        current_caught_up: false,
        history_incomplete: false,
        now: at(0),
    }
}

#[test]
fn an_unchanged_spec_keeps_serving_and_keeps_what_was_kept() {
    let previous = kept("z", 60);
    let d = decide(&RolloutInput {
        current: "a",
        previous: Some(&previous),
        ..input()
    });
    assert_eq!(d.active, "a");
    assert_eq!((d.target, d.switch, d.released), (None, None, None));
    assert_eq!(d.previous, Some(previous));
}

#[test]
fn a_kept_revision_is_released_when_its_window_ends() {
    let previous = kept("z", 60);
    let d = decide(&RolloutInput {
        current: "a",
        previous: Some(&previous),
        now: at(60),
        ..input()
    });
    assert_eq!(d.previous, None);
    assert_eq!(d.released.as_deref(), Some("z"));
}

#[test]
fn automatic_switches_once_caught_up_and_keeps_the_old_revision() {
    let building = decide(&input());
    assert_eq!(building.active, "a");
    assert_eq!(building.target.as_deref(), Some("b"));
    assert_eq!(building.pending, None, "Automatic has nothing pending");

    let d = decide(&RolloutInput {
        current_caught_up: true,
        ..input()
    });
    assert_eq!(d.active, "b");
    assert_eq!(d.switch, Some(Switch::CaughtUp));
    assert_eq!(d.previous, Some(kept("a", 600)));
    assert_eq!(d.switched_off, None);
}

#[test]
fn keep_previous_zero_switches_the_old_revision_off() {
    let d = decide(&RolloutInput {
        current_caught_up: true,
        keep_previous: Duration::ZERO,
        ..input()
    });
    assert_eq!(d.active, "b");
    assert_eq!(d.previous, None);
    assert_eq!(d.switched_off.as_deref(), Some("a"));
}

#[test]
fn manual_waits_caught_up_until_promoted() {
    let waiting = decide(&RolloutInput {
        manual: true,
        current_caught_up: true,
        ..input()
    });
    assert_eq!(waiting.active, "a");
    assert_eq!(
        waiting.pending,
        Some(Pending {
            revision: "b".into(),
            caught_up: true
        })
    );
    // A promotion of another revision changes nothing.
    let other = decide(&RolloutInput {
        manual: true,
        current_caught_up: true,
        promote: Some("c"),
        ..input()
    });
    assert_eq!(other.active, "a");

    let promoted = decide(&RolloutInput {
        manual: true,
        current_caught_up: true,
        promote: Some("b"),
        ..input()
    });
    assert_eq!(promoted.active, "b");
    assert_eq!(promoted.switch, Some(Switch::Promoted));
    assert_eq!(promoted.pending, None);
    assert_eq!(promoted.previous, Some(kept("a", 600)));
}

#[test]
fn a_promotion_before_catching_up_waits_for_it() {
    let d = decide(&RolloutInput {
        manual: true,
        promote: Some("b"),
        ..input()
    });
    assert_eq!(d.active, "a");
    assert_eq!(
        d.pending,
        Some(Pending {
            revision: "b".into(),
            caught_up: false
        })
    );
}

#[test]
fn reverting_to_the_kept_revision_switches_back_at_once_even_when_manual() {
    // b serves, a is kept; the spec goes back to a.
    let previous = kept("a", 600);
    let d = decide(&RolloutInput {
        current: "a",
        active: "b",
        previous: Some(&previous),
        manual: true,
        current_caught_up: true,
        history_incomplete: true,
        now: at(30),
        ..input()
    });
    assert_eq!(d.active, "a");
    assert_eq!(d.switch, Some(Switch::Restored));
    assert_eq!(
        d.previous,
        Some(kept("b", 630)),
        "the one switched off is kept"
    );
    assert_eq!(d.released, None);
}

#[test]
fn a_kept_revision_that_fell_behind_is_built_as_a_target() {
    let previous = kept("a", 600);
    let d = decide(&RolloutInput {
        current: "a",
        active: "b",
        previous: Some(&previous),
        manual: true,
        ..input()
    });
    assert_eq!(d.active, "b");
    assert_eq!(d.target.as_deref(), Some("a"));
    assert_eq!(d.pending, None, "a rollback needs no promotion");
}

#[test]
fn a_new_switch_releases_the_revision_kept_before() {
    // b serves, a is kept; c caught up.
    let previous = kept("a", 600);
    let d = decide(&RolloutInput {
        current: "c",
        active: "b",
        previous: Some(&previous),
        current_caught_up: true,
        ..input()
    });
    assert_eq!(d.active, "c");
    assert_eq!(d.previous, Some(kept("b", 600)));
    assert_eq!(d.released.as_deref(), Some("a"));
}

#[test]
fn incomplete_history_holds_a_rebuild_and_a_promotion() {
    let d = decide(&RolloutInput {
        current_caught_up: true,
        history_incomplete: true,
        ..input()
    });
    assert_eq!(d.active, "a");
    let manual = decide(&RolloutInput {
        manual: true,
        current_caught_up: true,
        history_incomplete: true,
        promote: Some("b"),
        ..input()
    });
    assert_eq!(manual.active, "a");
    assert_eq!(manual.pending.map(|p| p.caught_up), Some(false));
}

#[test]
fn time_left_in_the_window() {
    let previous = kept("a", 90);
    assert_eq!(
        until_release(Some(&previous), at(30)),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        until_release(Some(&previous), at(120)),
        Some(Duration::ZERO)
    );
    assert_eq!(until_release(None, at(0)), None);
}
