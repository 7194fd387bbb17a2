//! A schedule as its file (or a run's `[nemesis]` table) spells it, and the checks that turn the
//! file into a [`ScheduleSpec`].
//!
//! The file has the keys of both forms as options, so that a periodic key beside `[[step]]` is
//! refused rather than silently defaulted, and so that a recorded timed schedule holds only its
//! steps.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{
    FaultKind, ScheduleSpec, StepSpec, TroubleSettings, duration_text, five_seconds, timed,
};
use crate::fault::Target;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpecFile {
    #[serde(default)]
    name: String,
    #[serde(
        default,
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    interval: Option<Duration>,
    #[serde(
        default,
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    duration: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    faults: Option<Vec<FaultKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trouble: Option<TroubleSettings>,
    #[serde(default, rename = "step", skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<StepSpec>>,
}

/// What is wrong with a schedule file, and where, so that the error can name the line.
pub(super) struct Invalid {
    pub(super) place: Place,
    pub(super) message: String,
}

pub(super) enum Place {
    File,
    /// A top-level key.
    Key(&'static str),
    /// The `[[step]]` at this index (0-based).
    Step(usize),
}

impl Invalid {
    /// The 1-based line of the place in `text`, or 0 if it cannot be found.
    pub(super) fn line(&self, text: &str) -> usize {
        /// Where the keys are: a second, lenient read of a text that has already parsed.
        #[derive(Deserialize)]
        struct Places {
            step: Option<Spanned<Vec<Spanned<toml::Value>>>>,
            faults: Option<Spanned<toml::Value>>,
            interval: Option<Spanned<toml::Value>>,
            duration: Option<Spanned<toml::Value>>,
            target: Option<Spanned<toml::Value>>,
            trouble: Option<Spanned<toml::Value>>,
        }
        let Ok(places) = toml::from_str::<Places>(text) else {
            return 0;
        };
        let key = |value: Option<Spanned<toml::Value>>| value.map(|v| v.span());
        let span = match self.place {
            Place::File => None,
            Place::Key("faults") => key(places.faults),
            Place::Key("interval") => key(places.interval),
            Place::Key("duration") => key(places.duration),
            Place::Key("target") => key(places.target),
            Place::Key("trouble") => key(places.trouble),
            Place::Key("step") => places.step.map(|steps| steps.span()),
            Place::Key(_) => None,
            Place::Step(i) => places
                .step
                .and_then(|steps| steps.into_inner().into_iter().nth(i))
                .map(|step| step.span()),
        };
        span.map_or(0, |span| line_at(text, span.start))
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl SpecFile {
    /// The spec this file describes, if it is valid on its own.
    pub(super) fn resolve(self) -> Result<ScheduleSpec, Invalid> {
        let SpecFile {
            name,
            interval,
            duration,
            faults,
            target,
            trouble,
            steps,
        } = self;
        if let Some(steps) = steps {
            let periodic = [
                ("faults", faults.is_some()),
                ("interval", interval.is_some()),
                ("duration", duration.is_some()),
                ("target", target.is_some()),
                ("trouble", trouble.is_some()),
            ];
            if let Some((key, _)) = periodic.into_iter().find(|(_, given)| *given) {
                return Err(Invalid {
                    place: Place::Key(key),
                    message: format!(
                        "`{key}` cannot be mixed with `[[step]]`: a schedule is either periodic \
                         (`faults`, `interval`, `duration`, `target`, `trouble`) or timed \
                         (`[[step]]` tables, each with its own `duration`, `target` and \
                         `trouble`)"
                    ),
                });
            }
            timed::check_steps(&steps)?;
            return Ok(ScheduleSpec {
                name,
                interval: five_seconds(),
                duration: five_seconds(),
                faults: Vec::new(),
                target: Target::default(),
                trouble: TroubleSettings::default(),
                steps,
            });
        }
        let Some(faults) = faults else {
            return Err(Invalid {
                place: Place::File,
                message: "missing field `faults` (or `[[step]]` tables for a timed schedule)"
                    .into(),
            });
        };
        let duration = duration.unwrap_or_else(five_seconds);
        if duration.is_zero() {
            return Err(Invalid {
                place: Place::Key("duration"),
                message: "duration must be positive".into(),
            });
        }
        let trouble = trouble.unwrap_or_default();
        if let Some(message) = trouble.problem(&faults) {
            return Err(Invalid {
                place: Place::Key("trouble"),
                message,
            });
        }
        Ok(ScheduleSpec {
            name,
            interval: interval.unwrap_or_else(five_seconds),
            duration,
            faults,
            target: target.unwrap_or_default(),
            trouble,
            steps: Vec::new(),
        })
    }
}

impl TryFrom<SpecFile> for ScheduleSpec {
    type Error = String;

    fn try_from(file: SpecFile) -> Result<ScheduleSpec, String> {
        file.resolve().map_err(|e| e.message)
    }
}

impl From<ScheduleSpec> for SpecFile {
    fn from(spec: ScheduleSpec) -> SpecFile {
        if spec.steps.is_empty() {
            SpecFile {
                name: spec.name,
                interval: Some(spec.interval),
                duration: Some(spec.duration),
                faults: Some(spec.faults),
                target: Some(spec.target),
                trouble: (!spec.trouble.is_empty()).then_some(spec.trouble),
                steps: None,
            }
        } else {
            SpecFile {
                name: spec.name,
                interval: None,
                duration: None,
                faults: None,
                target: None,
                trouble: None,
                steps: Some(spec.steps),
            }
        }
    }
}
