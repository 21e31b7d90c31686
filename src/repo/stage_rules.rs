//! The rules of moving a stage, as functions of what the state holds and nothing else:
//! which stage a promote goes to when none is given, whether a version may go there
//! (one stage at a time, `--skip` to pass one), and which version a rollback returns to.
//!
//! `commands::stages` reads the state, asks these functions, and words the refusals; the
//! rules themselves are tested here without a database.

use std::collections::BTreeSet;

use crate::debian::version::Version;
use crate::repo::state::{Action, HistoryEntry};
use crate::repo::suites;

/// Whether `version` is what a user means by `requested`: the full version, its release
/// (the version without a distribution's suffix) or its upstream version.
pub(crate) fn names(version: &str, requested: &str) -> bool {
    version == requested
        || suites::release_of(version) == requested
        || Version::parse(version).is_ok_and(|parsed| parsed.upstream == requested)
}

/// Where one build of a promoted version stands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Standing<'a> {
    /// The indexes of the stages that list it, lowest first.
    pub(crate) held: &'a [usize],
    /// Whether the last change that moved its latest stage away from it was a rollback.
    pub(crate) rolled_back_from_latest: bool,
}

/// Why a promote without `--to` has no stage to go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoNextStage {
    /// The build at this index is in no stage yet.
    InNoStage(usize),
    /// The build at this index is in the last stage (its index is given).
    AtLastStage { build: usize, latest: usize },
    /// The builds would go to different stages.
    Split,
}

/// The stage a promote without `--to` moves every build to: the stage after the latest
/// one that lists it, or that latest stage again when a rollback took it out of there.
/// Every build must go to the same stage.
pub(crate) fn next_stage(
    builds: &[Standing<'_>],
    stage_count: usize,
) -> Result<usize, NoNextStage> {
    let mut targets = BTreeSet::new();
    for (index, build) in builds.iter().enumerate() {
        let Some(&latest) = build.held.last() else {
            return Err(NoNextStage::InNoStage(index));
        };
        if latest > 0 && build.rolled_back_from_latest {
            targets.insert(latest);
            continue;
        }
        if latest + 1 >= stage_count {
            return Err(NoNextStage::AtLastStage {
                build: index,
                latest,
            });
        }
        targets.insert(latest + 1);
    }
    if targets.len() > 1 {
        return Err(NoNextStage::Split);
    }
    Ok(targets.into_iter().next().unwrap_or_default())
}

/// How a permitted promotion reaches its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Promotion {
    /// The stage lists the version already (a rollback or a newer version moved the stage
    /// away): pointing it there again is a promotion the stage had, never a skip.
    pub(crate) again: bool,
    /// The version is not in the stage directly before: it passes that stage (`--skip`).
    pub(crate) skipping: bool,
}

/// Why a version may not be promoted to a stage, whatever `--skip` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotPromotable {
    /// The target is the first stage, which only `repo add` brings versions to.
    FirstStage,
    /// The version is in no stage at all.
    InNoStage,
    /// The version is only in the target's later stages.
    OnlyLater,
}

/// Whether a version listed in the stages `held` (indexes) may go to stage `target`, and
/// whether that passes a stage. A skip is refused by the caller unless `--skip` is given.
pub(crate) fn promotion(held: &[usize], target: usize) -> Result<Promotion, NotPromotable> {
    let again = target > 0 && held.contains(&target);
    if !again && !held.iter().any(|&index| index < target) {
        return Err(if target == 0 {
            NotPromotable::FirstStage
        } else if held.is_empty() {
            NotPromotable::InNoStage
        } else {
            NotPromotable::OnlyLater
        });
    }
    // `target > 0` here: stage 0 is refused above unless it is `again`, which needs > 0.
    let skipping = !again && !held.contains(&(target - 1));
    Ok(Promotion { again, skipping })
}

/// Why a rollback has no version to go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRollbackTarget {
    /// `--to` names a version the stage never had.
    NeverHad,
    /// The current version is the first the stage had.
    FirstVersion,
}

/// The version a rollback of a stage at `current` goes to, from the stage's `history`
/// (oldest first): the one `requested` names among those the stage had, or else the
/// version the change that brought `current` came from. Rollbacks are passed over in that
/// search, so that rolling back twice goes back twice.
pub(crate) fn rollback_target(
    history: &[HistoryEntry],
    current: &str,
    requested: Option<&str>,
) -> Result<String, NoRollbackTarget> {
    match requested {
        Some(requested) => {
            let had: BTreeSet<&str> = history
                .iter()
                .flat_map(|entry| [entry.from.as_deref(), entry.to.as_deref()])
                .flatten()
                .collect();
            had.into_iter()
                .find(|version| names(version, requested))
                .map(str::to_string)
                .ok_or(NoRollbackTarget::NeverHad)
        }
        None => history
            .iter()
            .rev()
            .find(|entry| entry.action != Action::Rollback && entry.to.as_deref() == Some(current))
            .and_then(|entry| entry.from.clone())
            .ok_or(NoRollbackTarget::FirstVersion),
    }
}

/// The versions other than `current` that a stage's history shows it held: the
/// candidates of a rollback, before the state says which the stage still lists.
pub(crate) fn versions_held_before<'a>(
    history: &'a [HistoryEntry],
    current: &str,
) -> BTreeSet<&'a str> {
    history
        .iter()
        .filter_map(|entry| entry.to.as_deref())
        .filter(|version| *version != current)
        .collect()
}

/// Whether the last change that moved a stage away from `version` was a rollback, given
/// the stage's history (oldest first) and whether the stage points to `version` now (a
/// version that came back after leaving was not rolled back away from).
pub(crate) fn rolled_back_from(history: &[HistoryEntry], version: &str, still_there: bool) -> bool {
    let left = history.iter().rev().find(|entry| {
        entry.from.as_deref() == Some(version) && entry.to.as_deref() != Some(version)
    });
    let came = history
        .iter()
        .any(|entry| entry.to.as_deref() == Some(version));
    !still_there && left.is_some_and(|entry| entry.action == Action::Rollback) && came
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: Action, from: Option<&str>, to: &str) -> HistoryEntry {
        HistoryEntry {
            time: 0,
            who: "test".to_string(),
            action,
            app: "hello".to_string(),
            stage: Some("staging".to_string()),
            distribution: None,
            from: from.map(str::to_string),
            to: Some(to.to_string()),
        }
    }

    fn standing(held: &[usize]) -> Standing<'_> {
        Standing {
            held,
            rolled_back_from_latest: false,
        }
    }

    #[test]
    fn a_version_is_named_by_its_full_version_release_or_upstream() {
        assert!(names("1.1-1+deb12", "1.1-1+deb12"));
        assert!(names("1.1-1+deb12", "1.1-1"));
        assert!(names("1.1-1+deb12", "1.1"));
        assert!(names("1:1.1-1", "1.1"));
        assert!(!names("1.1-1", "1.10"));
        assert!(!names("1.1-1", "1.1-2"));
    }

    #[test]
    fn a_promote_without_a_stage_goes_one_stage_on() {
        assert_eq!(next_stage(&[standing(&[0])], 3), Ok(1));
        assert_eq!(next_stage(&[standing(&[0, 1])], 3), Ok(2));
        assert_eq!(next_stage(&[standing(&[0]), standing(&[0])], 3), Ok(1));
    }

    #[test]
    fn a_promote_without_a_stage_returns_to_the_stage_a_rollback_took_it_from() {
        let back = Standing {
            held: &[0, 1, 2],
            rolled_back_from_latest: true,
        };
        assert_eq!(next_stage(&[back], 3), Ok(2));
        // The first stage is never a promotion's target.
        let first = Standing {
            held: &[0],
            rolled_back_from_latest: true,
        };
        assert_eq!(next_stage(&[first], 3), Ok(1));
    }

    #[test]
    fn a_promote_without_a_stage_refuses_what_has_nowhere_to_go() {
        assert_eq!(
            next_stage(&[standing(&[0]), standing(&[])], 3),
            Err(NoNextStage::InNoStage(1))
        );
        assert_eq!(
            next_stage(&[standing(&[0, 1, 2])], 3),
            Err(NoNextStage::AtLastStage {
                build: 0,
                latest: 2
            })
        );
        assert_eq!(
            next_stage(&[standing(&[0]), standing(&[0, 1])], 3),
            Err(NoNextStage::Split)
        );
    }

    #[test]
    fn promotion_goes_one_stage_at_a_time_and_says_when_it_skips() {
        assert_eq!(
            promotion(&[0], 1),
            Ok(Promotion {
                again: false,
                skipping: false
            })
        );
        assert_eq!(
            promotion(&[0], 2),
            Ok(Promotion {
                again: false,
                skipping: true
            })
        );
        // Back to a stage that still lists it: not a skip, even past an empty stage.
        assert_eq!(
            promotion(&[0, 2], 2),
            Ok(Promotion {
                again: true,
                skipping: false
            })
        );
    }

    #[test]
    fn promotion_refuses_the_first_stage_and_versions_not_before_the_target() {
        assert_eq!(promotion(&[0], 0), Err(NotPromotable::FirstStage));
        assert_eq!(promotion(&[], 1), Err(NotPromotable::InNoStage));
        assert_eq!(promotion(&[2], 1), Err(NotPromotable::OnlyLater));
    }

    #[test]
    fn rollback_goes_where_the_current_version_came_from_passing_rollbacks() {
        let history = [
            entry(Action::Promote, None, "1.0"),
            entry(Action::Promote, Some("1.0"), "1.1"),
            entry(Action::Promote, Some("1.1"), "1.2"),
            entry(Action::Rollback, Some("1.2"), "1.1"),
        ];
        // At 1.1 after a rollback: the promote that brought 1.1 came from 1.0.
        assert_eq!(rollback_target(&history, "1.1", None), Ok("1.0".into()));
        assert_eq!(rollback_target(&history, "1.2", None), Ok("1.1".into()));
        assert_eq!(
            rollback_target(&history, "1.0", None),
            Err(NoRollbackTarget::FirstVersion)
        );
    }

    #[test]
    fn rollback_to_a_named_version_needs_the_stage_to_have_had_it() {
        let history = [
            entry(Action::Promote, None, "1.0-1"),
            entry(Action::Promote, Some("1.0-1"), "1.1-1"),
        ];
        assert_eq!(
            rollback_target(&history, "1.1-1", Some("1.0")),
            Ok("1.0-1".into())
        );
        assert_eq!(
            rollback_target(&history, "1.1-1", Some("0.9")),
            Err(NoRollbackTarget::NeverHad)
        );
    }

    #[test]
    fn the_versions_held_before_leave_out_the_current_one() {
        let history = [
            entry(Action::Promote, None, "1.0"),
            entry(Action::Promote, Some("1.0"), "1.1"),
        ];
        let held: Vec<&str> = versions_held_before(&history, "1.1").into_iter().collect();
        assert_eq!(held, ["1.0"]);
    }

    #[test]
    fn rolled_back_from_sees_only_a_rollback_as_the_last_departure() {
        let rolled = [
            entry(Action::Promote, None, "1.0"),
            entry(Action::Promote, Some("1.0"), "1.1"),
            entry(Action::Rollback, Some("1.1"), "1.0"),
        ];
        assert!(rolled_back_from(&rolled, "1.1", false));
        assert!(!rolled_back_from(&rolled, "1.1", true));
        // Replaced by a newer version: not rolled back from.
        let replaced = [
            entry(Action::Promote, None, "1.0"),
            entry(Action::Promote, Some("1.0"), "1.1"),
        ];
        assert!(!rolled_back_from(&replaced, "1.0", false));
        // Never there at all.
        assert!(!rolled_back_from(&rolled, "2.0", false));
    }
}
