//! Who put the value an operation observed: the key-value model's explanations, and its rule
//! for what a shrunk core must keep.
//!
//! The explanation looks for the simplest story behind a wrong observation: a value nobody
//! wrote, a value written only later, or a value already overwritten.

use crate::explain::{Explanation, Failure};
use crate::history::{Call, History, Operation, Outcome, Shown, Value};

/// The explanation of a failure whose key held `value_after` after the longest prefix.
pub(super) fn explain(f: &Failure<'_>, value_after: &Option<Value>) -> Explanation {
    let c = f.op(f.culprit);
    let key = f.key();
    let at = f.when(c.invoke, c.complete);
    let after = format!(
        "after the longest explainable order of {} operations, {key} held {}",
        f.prefix.len(),
        Shown(value_after)
    );
    let sentence = match (&c.call, &c.outcome) {
        (Call::Read, Outcome::Ok(read)) => {
            let what = format!(
                "read of {key} by process {} {at} returned {}",
                c.process,
                Shown(read)
            );
            return observation(f, c, read, &what, &after);
        }
        (Call::Cas { expected, new }, Outcome::Ok(_)) => {
            let what = format!(
                "cas of {key} from {} to {new} by process {} {at} succeeded",
                Shown(expected),
                c.process
            );
            return observation(f, c, expected, &what, &after);
        }
        (Call::Cas { expected, .. }, Outcome::PreconditionFailed) => format!(
            "cas of {key} by process {} {at} failed because the value was not {}, but \
             no order of the operations around it lets {key} hold anything else during the \
             call ({after})",
            c.process,
            Shown(expected)
        ),
        _ => format!(
            "{} by process {} on {key} {at} cannot be placed in any order consistent with the \
             operations around it ({after})",
            f.describe(f.culprit),
            c.process
        ),
    };
    Explanation {
        sentence,
        missed: None,
    }
}

/// Explains why `c`, which observed `seen`, cannot be linearised; names the write `c` missed
/// when the story is one of a value already overwritten.
fn observation(
    f: &Failure<'_>,
    c: &Operation,
    seen: &Option<Value>,
    what: &str,
    after: &str,
) -> Explanation {
    let h = f.history;
    let said = |sentence: String, missed: Option<u32>| Explanation { sentence, missed };
    let unexplained = || {
        said(
            format!("{what}, which no order of the concurrent operations explains: {after}"),
            None,
        )
    };
    let c_start = c.invoke.index;
    let c_end = c.complete.map_or(u64::MAX, |e| e.index);
    let writers: Vec<&Operation> = f
        .key_ops
        .iter()
        .map(|&i| &h.ops[i as usize])
        .filter(|w| !std::ptr::eq(*w, c) && writes(w).is_some_and(|v| v == *seen))
        .collect();
    let initial = h.initial == *seen;
    let has_appends = f.key_ops.iter().any(|&i| {
        let a = &h.ops[i as usize];
        matches!(a.call, Call::Append(_)) && !matches!(a.outcome, Outcome::Fail)
    });
    if has_appends {
        if let Some(a) = lacking_append(f, c, seen) {
            let append = &h.ops[a as usize];
            let Call::Append(piece) = &append.call else {
                unreachable!("lacking_append returns appends")
            };
            let sentence = format!(
                "{what}, which lacks {piece}: process {}'s {} completed {}, before the {} began, \
                 and nothing that replaces the value could have come between them",
                append.process,
                crate::verdict::describe(h, append),
                f.when(append.complete.expect("lacking appends completed"), None),
                c.call.func()
            );
            return said(sentence, Some(a));
        }
        if writers.is_empty() && !initial {
            if builds(h, f.key_ops, seen) {
                return unexplained();
            }
            return said(
                format!(
                    "{what}, but no operation wrote {} and no order of the appends builds it",
                    Shown(seen)
                ),
                None,
            );
        }
    }
    if writers.is_empty() && !initial {
        return said(
            format!("{what}, but no operation ever wrote {}", Shown(seen)),
            None,
        );
    }
    let possible: Vec<&&Operation> = writers.iter().filter(|w| w.invoke.index < c_end).collect();
    if possible.is_empty() && !initial {
        let first = writers
            .iter()
            .min_by_key(|w| w.invoke.index)
            .expect("writers is not empty");
        let sentence = format!(
            "{what}, but {} wrote {} only later: process {}'s {} began {}, after the {} had completed",
            if writers.len() == 1 {
                "the only operation that"
            } else {
                "every operation that"
            },
            Shown(seen),
            first.process,
            crate::verdict::describe(h, first),
            f.when(first.invoke, None),
            c.call.func()
        );
        return said(sentence, None);
    }
    // Every possible source of the value was overwritten before `c` began? The overwriting
    // operation, as an index into the history's operations.
    let shadow = |done: u64| {
        f.key_ops.iter().copied().find(|&i| {
            let x = &h.ops[i as usize];
            matches!(x.outcome, Outcome::Ok(_))
                && writes(x).is_some_and(|v| v != *seen)
                && x.invoke.index > done
                && x.complete.is_some_and(|e| e.index < c_start)
        })
    };
    let mut latest: Option<(&Operation, u32)> = None;
    for w in &possible {
        let Some(done) = w.complete.filter(|_| matches!(w.outcome, Outcome::Ok(_))) else {
            return unexplained();
        };
        match shadow(done.index) {
            Some(x) => {
                if latest.is_none_or(|(l, _)| l.complete < w.complete) {
                    latest = Some((w, x));
                }
            }
            None => return unexplained(),
        }
    }
    if initial && shadow(0).is_none() {
        return unexplained();
    }
    match latest {
        Some((w, xi)) => {
            let x = &h.ops[xi as usize];
            let sentence = format!(
                "{what}, but process {}'s {} completed {} and process {}'s {} had overwritten it \
                 (completed {}) before the {} began",
                w.process,
                crate::verdict::describe(h, w),
                f.when(w.complete.expect("shadowed writers completed"), None),
                x.process,
                crate::verdict::describe(h, x),
                f.when(x.complete.expect("shadows completed"), None),
                c.call.func()
            );
            said(sentence, Some(xi))
        }
        None => {
            let xi = shadow(0).expect("initial value shadowed");
            let x = &h.ops[xi as usize];
            let sentence = format!(
                "{what}, the initial value, but process {}'s {} had already replaced it (completed {})",
                x.process,
                crate::verdict::describe(h, x),
                f.when(x.complete.expect("shadows completed"), None),
            );
            said(sentence, Some(xi))
        }
    }
}

/// An acknowledged append that completed before `c` (which observed `seen`) began, with nothing
/// that sets the value outright able to fall between them, whose string `seen` lacks: the
/// latest to complete, as an index into the history's operations. (The refutation of
/// `Kv::refute`, told in terms of the history.)
fn lacking_append(f: &Failure<'_>, c: &Operation, seen: &Option<Value>) -> Option<u32> {
    let h = f.history;
    let c_end = c.complete.map_or(u64::MAX, |e| e.index);
    let seen = super::text(seen);
    // Appends invoked before this could have been replaced by a write that may fall before `c`
    // (an `info` one at any point after its invocation, its completion event included).
    let barrier = f
        .key_ops
        .iter()
        .map(|&w| &h.ops[w as usize])
        .filter(|w| writes(w).is_some() && w.invoke.index < c_end)
        .map(|w| match (&w.outcome, w.complete) {
            (Outcome::Ok(_), Some(done)) => done.index,
            _ => u64::MAX,
        })
        .max()
        .unwrap_or(0);
    f.key_ops
        .iter()
        .copied()
        .filter(|&a| {
            let a = &h.ops[a as usize];
            let (Call::Append(piece), Outcome::Ok(_), Some(done)) =
                (&a.call, &a.outcome, a.complete)
            else {
                return false;
            };
            let piece = super::value_text(piece);
            done.index < c.invoke.index
                && a.invoke.index >= barrier
                && !piece.is_empty()
                && !seen.contains(&*piece)
        })
        .max_by_key(|&a| h.ops[a as usize].complete)
}

/// Whether `seen` is the initial value or a value some operation of `ops` sets outright,
/// followed by strings `ops` append (a necessary condition for some order to build it).
fn builds(h: &History, ops: &[u32], seen: &Option<Value>) -> bool {
    let ops = || ops.iter().map(|&i| &h.ops[i as usize]);
    let pieces = super::pieces::Pieces::new(ops().filter_map(|a| match (&a.call, &a.outcome) {
        (_, Outcome::Fail) => None,
        (Call::Append(v), _) => Some(super::value_text(v)),
        _ => None,
    }));
    let seen = super::text(seen);
    let bases = std::iter::once(super::text(&h.initial).into_owned())
        .chain(ops().filter_map(|w| writes(w).map(|v| super::text(&v).into_owned())));
    bases
        .filter(|b| seen.starts_with(b.as_str()))
        .any(|b| pieces.build(&seen, b.len()))
}

/// The value an operation leaves in the key, when it sets one outright.
fn writes(op: &Operation) -> Option<Option<Value>> {
    if matches!(op.outcome, Outcome::Fail | Outcome::PreconditionFailed) {
        return None;
    }
    match &op.call {
        Call::Write(v) => Some(Some(v.clone())),
        Call::Cas { new, .. } => Some(Some(new.clone())),
        Call::Delete => Some(None),
        _ => None,
    }
}

/// The shrinker's rule: an operation that observes a value (a read of it, a CAS expecting it)
/// needs one of its writers; a read of an appended string needs every append it contains. A
/// value that nobody in `ops` wrote needs no writer: that read is the anomaly.
pub(super) fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)> {
    let op = |i: u32| &history.ops[i as usize];
    let mut writers: rustc_hash::FxHashMap<&Value, Vec<u32>> = Default::default();
    let mut appends: Vec<(u32, &Value)> = Vec::new();
    for &i in ops {
        if matches!(op(i).outcome, Outcome::Fail | Outcome::PreconditionFailed) {
            continue;
        }
        match &op(i).call {
            Call::Write(v) | Call::Cas { new: v, .. } => writers.entry(v).or_default().push(i),
            Call::Append(v) => appends.push((i, v)),
            _ => {}
        }
    }
    let text = super::value_text;
    let pieces = super::pieces::Pieces::new(appends.iter().map(|(_, a)| text(a)));
    // Every value set outright, as text, with its writer.
    let writes_of: Vec<(u32, String)> = ops
        .iter()
        .filter_map(|&j| writes(op(j)).map(|v| (j, super::text(&v).into_owned())))
        .collect();
    // The appends of each piece, by piece id.
    let mut by_piece: Vec<Vec<u32>> = vec![Vec::new(); pieces.len()];
    for &(j, a) in &appends {
        if let Some(id) = pieces.id(&text(a)) {
            by_piece[id as usize].push(j);
        }
    }
    let mut found = vec![0; pieces.len()];
    let mut needs = Vec::new();
    for &i in ops {
        // A CAS whose precondition failed saw some other value: it needs a writer of one.
        if let (Call::Cas { expected, .. }, Outcome::PreconditionFailed) =
            (&op(i).call, &op(i).outcome)
        {
            let others: Vec<u32> = ops
                .iter()
                .copied()
                .filter(|&j| j != i)
                .filter(|&j| match (&op(j).call, &op(j).outcome) {
                    (_, Outcome::Fail | Outcome::PreconditionFailed) => false,
                    (Call::Write(v) | Call::Cas { new: v, .. }, _) => Some(v) != expected.as_ref(),
                    (Call::Delete, _) => expected.is_some(),
                    _ => false,
                })
                .collect();
            if !others.is_empty() && appends.is_empty() {
                needs.push((i, vec![others]));
            }
            continue;
        }
        let seen = match (&op(i).call, &op(i).outcome) {
            (Call::Read, Outcome::Ok(Some(v))) => v,
            (
                Call::Cas {
                    expected: Some(v), ..
                },
                Outcome::Ok(_),
            ) => v,
            _ => continue,
        };
        if history.initial.as_ref() == Some(seen) {
            continue;
        }
        if !appends.is_empty() {
            // The value is the initial one or a written one, followed by appends. When appends
            // alone cannot build it, it needs one of the writes it can start with; and in any
            // case every append in what follows the shortest of those (whichever write a core
            // keeps, what follows it is built of those appends).
            let s = text(seen);
            let initial = super::text(&history.initial);
            let mut from = 0;
            let mut groups = Vec::new();
            if !(s.starts_with(&*initial) && pieces.build(&s, initial.len())) {
                let bases: Vec<(u32, usize)> = writes_of
                    .iter()
                    .filter(|(_, w)| s.starts_with(w.as_str()) && pieces.build(&s, w.len()))
                    .map(|&(j, ref w)| (j, w.len()))
                    .collect();
                if !bases.is_empty() {
                    from = bases.iter().map(|&(_, len)| len).min().unwrap_or(0);
                    groups.push(bases.into_iter().map(|(j, _)| j).collect());
                }
            }
            let rest = &s[from..];
            // One group per appended string: any of its appends will do, when the string occurs
            // once. A string that occurs more often may have been appended as many times (a
            // read of "aa" needs both appends of "a"): then every append of it.
            pieces.count(rest, &mut found);
            for (id, js) in by_piece.iter().enumerate() {
                match found[id] {
                    0 => {}
                    1 => groups.push(js.clone()),
                    _ => groups.extend(js.iter().map(|&j| vec![j])),
                }
            }
            if !groups.is_empty() {
                needs.push((i, groups));
            }
        } else if let Some(w) = writers.get(seen) {
            needs.push((i, vec![w.clone()]));
        }
    }
    needs
}
