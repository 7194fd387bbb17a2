//! The settings of the message-level fault kinds (`delay`, `loss`, `duplicate`, `reorder`): the
//! built-in ones, and the `trouble` table by which a schedule or a step changes them.

use serde::{Deserialize, Serialize};

use super::FaultKind;
use crate::fault::Trouble;

/// Changes to the built-in settings of the message-level kinds, as a periodic schedule's
/// `[trouble]` table or a timed step's `trouble` spells them. A key left out keeps its built-in
/// value: delay 20 ms plus up to 20 ms of jitter, loss 20%, duplicate 20%, reorder 50% within
/// 20 ms.
///
/// Each key belongs to one kind (`delay_ms` and `jitter_ms` to delay, `loss_pct` to loss,
/// `duplicate_pct` to duplicate, `reorder_pct` and `reorder_window_ms` to reorder) and changes
/// only that kind's faults. Rules, checked when the schedule is read: every key given belongs to
/// a kind the schedule (or step) has, a percentage is at most 100, and no kind is left with
/// nothing to do (its percentage or window at 0, or both its delay and jitter at 0).
///
/// Read through a lenient twin of the same keys, so that a value out of range (`loss_pct =
/// 300`, `delay_ms = -1`) is refused with a message that names its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AsWritten")]
pub struct TroubleSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_pct: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reorder_pct: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reorder_window_ms: Option<u32>,
}

impl TroubleSettings {
    /// Whether no key is given (every kind keeps its built-in settings).
    pub fn is_empty(&self) -> bool {
        *self == TroubleSettings::default()
    }

    /// The trouble a fault of `kind` makes with these settings; `None` unless `kind` is
    /// message-level.
    pub fn trouble(&self, kind: FaultKind) -> Option<Trouble> {
        let none = Trouble::default();
        Some(match kind {
            FaultKind::Delay => Trouble {
                delay_ms: self.delay_ms.unwrap_or(20),
                jitter_ms: self.jitter_ms.unwrap_or(20),
                ..none
            },
            FaultKind::Loss => Trouble {
                loss_pct: self.loss_pct.unwrap_or(20),
                ..none
            },
            FaultKind::Duplicate => Trouble {
                duplicate_pct: self.duplicate_pct.unwrap_or(20),
                ..none
            },
            FaultKind::Reorder => Trouble {
                reorder_pct: self.reorder_pct.unwrap_or(50),
                reorder_window_ms: self.reorder_window_ms.unwrap_or(20),
                ..none
            },
            _ => return None,
        })
    }

    /// Each key as `(name, the kind it belongs to, its value if given)`.
    fn keys(&self) -> [(&'static str, FaultKind, Option<u32>); 6] {
        let pct = |p: Option<u8>| p.map(u32::from);
        [
            ("delay_ms", FaultKind::Delay, self.delay_ms),
            ("jitter_ms", FaultKind::Delay, self.jitter_ms),
            ("loss_pct", FaultKind::Loss, pct(self.loss_pct)),
            (
                "duplicate_pct",
                FaultKind::Duplicate,
                pct(self.duplicate_pct),
            ),
            ("reorder_pct", FaultKind::Reorder, pct(self.reorder_pct)),
            (
                "reorder_window_ms",
                FaultKind::Reorder,
                self.reorder_window_ms,
            ),
        ]
    }

    /// What breaks the rules (see the type's docs) for a schedule or step of `kinds`, if
    /// anything, in one line that names the key.
    pub(super) fn problem(&self, kinds: &[FaultKind]) -> Option<String> {
        for (key, owner, value) in self.keys() {
            let Some(value) = value else { continue };
            if !kinds.contains(&owner) {
                let here = match kinds {
                    [one] => format!("not to {}", one.name()),
                    _ => "which `faults` does not include".to_owned(),
                };
                return Some(format!(
                    "`trouble.{key}` applies only to {}, {here}",
                    owner.name()
                ));
            }
            if let Err(message) = in_range(key, value.into()) {
                return Some(message);
            }
        }
        kinds.iter().find_map(|&kind| {
            let t = self.trouble(kind)?;
            let idle = match kind {
                FaultKind::Delay if t.delay_ms == 0 && t.jitter_ms == 0 => {
                    "`trouble.delay_ms` and `trouble.jitter_ms` are both 0"
                }
                FaultKind::Loss if t.loss_pct == 0 => "`trouble.loss_pct` is 0",
                FaultKind::Duplicate if t.duplicate_pct == 0 => "`trouble.duplicate_pct` is 0",
                FaultKind::Reorder if t.reorder_pct == 0 => "`trouble.reorder_pct` is 0",
                FaultKind::Reorder if t.reorder_window_ms == 0 => {
                    "`trouble.reorder_window_ms` is 0"
                }
                _ => return None,
            };
            Some(format!("{idle}, so {} would do nothing", kind.name()))
        })
    }
}

/// Whether `value` fits `key`: 0 to 100 for a percentage, else 0 to `u32::MAX` milliseconds.
fn in_range(key: &str, value: i64) -> Result<(), String> {
    let (max, what) = if key.ends_with("_pct") {
        (100, "a percentage")
    } else {
        (u32::MAX.into(), "a time in milliseconds")
    };
    if (0..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "`trouble.{key}` is {value}, but {what} is from 0 to {max}"
        ))
    }
}

/// [`TroubleSettings`] as written, with any integer accepted so that the range check can name
/// the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsWritten {
    delay_ms: Option<i64>,
    jitter_ms: Option<i64>,
    loss_pct: Option<i64>,
    duplicate_pct: Option<i64>,
    reorder_pct: Option<i64>,
    reorder_window_ms: Option<i64>,
}

impl TryFrom<AsWritten> for TroubleSettings {
    type Error = String;

    fn try_from(w: AsWritten) -> Result<TroubleSettings, String> {
        fn checked<T: TryFrom<i64>>(key: &str, value: Option<i64>) -> Result<Option<T>, String> {
            let Some(value) = value else { return Ok(None) };
            in_range(key, value)?;
            let fits = T::try_from(value).unwrap_or_else(|_| unreachable!("checked in range"));
            Ok(Some(fits))
        }
        Ok(TroubleSettings {
            delay_ms: checked("delay_ms", w.delay_ms)?,
            jitter_ms: checked("jitter_ms", w.jitter_ms)?,
            loss_pct: checked("loss_pct", w.loss_pct)?,
            duplicate_pct: checked("duplicate_pct", w.duplicate_pct)?,
            reorder_pct: checked("reorder_pct", w.reorder_pct)?,
            reorder_window_ms: checked("reorder_window_ms", w.reorder_window_ms)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_takes_only_its_own_keys_over_the_built_in_settings() {
        let settings = TroubleSettings {
            delay_ms: Some(100),
            loss_pct: Some(5),
            ..TroubleSettings::default()
        };
        let label = |kind| settings.trouble(kind).unwrap().label();
        assert_eq!(label(FaultKind::Delay), "delay 100±20 ms");
        assert_eq!(label(FaultKind::Loss), "loss 5%");
        assert_eq!(label(FaultKind::Duplicate), "duplicate 20%");
        assert_eq!(label(FaultKind::Reorder), "reorder 50% within 20 ms");
        assert_eq!(settings.trouble(FaultKind::Kill), None);
        assert_eq!(
            settings.problem(&[FaultKind::Delay, FaultKind::Loss, FaultKind::Kill]),
            None
        );
    }

    #[test]
    fn keys_for_kinds_not_drawn_percentages_above_100_and_idle_kinds_are_refused() {
        let with = |f: fn(&mut TroubleSettings)| {
            let mut settings = TroubleSettings::default();
            f(&mut settings);
            settings
        };
        use FaultKind::*;
        for (settings, kinds, expected) in [
            (
                with(|s| s.loss_pct = Some(5)),
                &[Delay][..],
                "`trouble.loss_pct` applies only to loss, not to delay",
            ),
            (
                with(|s| s.reorder_window_ms = Some(5)),
                &[Kill, Delay],
                "`trouble.reorder_window_ms` applies only to reorder, which `faults` does not \
                 include",
            ),
            (
                with(|s| s.duplicate_pct = Some(101)),
                &[Duplicate],
                "`trouble.duplicate_pct` is 101, but a percentage is from 0 to 100",
            ),
            (
                with(|s| s.reorder_pct = Some(255)),
                &[Reorder],
                "`trouble.reorder_pct` is 255, but a percentage is from 0 to 100",
            ),
            (
                with(|s| s.loss_pct = Some(0)),
                &[Loss],
                "`trouble.loss_pct` is 0, so loss would do nothing",
            ),
            (
                with(|s| {
                    s.delay_ms = Some(0);
                    s.jitter_ms = Some(0);
                }),
                &[Delay],
                "`trouble.delay_ms` and `trouble.jitter_ms` are both 0, so delay would do nothing",
            ),
            (
                with(|s| s.reorder_window_ms = Some(0)),
                &[Reorder],
                "`trouble.reorder_window_ms` is 0, so reorder would do nothing",
            ),
        ] {
            assert_eq!(settings.problem(kinds).as_deref(), Some(expected));
        }
        let full = with(|s| {
            s.loss_pct = Some(100);
            s.delay_ms = Some(0);
        });
        assert_eq!(full.problem(&[Loss, Delay]), None, "100% and no base delay");
    }
}
