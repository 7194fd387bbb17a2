//! The worked example of `docs/checker-models.md`: a model of your own, checked with
//! `check_model`. A lock that knows who holds it: only the holder may release it, where
//! Knossos's mutex lets anyone.

use checker::{
    Call, CheckOptions, Compiled, Format, Model, ModelKind, Operation, ReadOptions, StateId,
    Verdict, check, check_model, read_str,
};

/// A lock and its holder. State 0 is free; state `i + 1` is held by `holders[i]`.
#[derive(Default)]
struct OwnedLock {
    holders: Vec<u64>,
}

const FREE: StateId = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// Takes the lock for this holder (a state id).
    Acquire(StateId),
    /// Gives the lock back; only its holder may.
    Release(StateId),
}

impl OwnedLock {
    /// The state in which `process` holds the lock.
    fn held_by(&mut self, process: u64) -> StateId {
        let i = match self.holders.iter().position(|&p| p == process) {
            Some(i) => i,
            None => {
                self.holders.push(process);
                self.holders.len() - 1
            }
        };
        StateId::try_from(i + 1).expect("fewer than 2^32 processes")
    }
}

impl Model for OwnedLock {
    type Step = Step;

    fn compile(&mut self, op: &Operation) -> Option<Compiled<Step>> {
        let holder = self.held_by(op.process);
        let step = match op.call {
            Call::Acquire => Step::Acquire(holder),
            Call::Release => Step::Release(holder),
            ref other => panic!("a lock does not {}", other.name()),
        };
        // Jepsen's rules: ok must happen, info may, fail did not.
        Compiled::by_outcome(op, step)
    }

    fn initial(&mut self) -> StateId {
        FREE
    }

    fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
        match step {
            Step::Acquire(holder) => (state == FREE).then_some(holder),
            Step::Release(holder) => (state == holder).then_some(FREE),
        }
    }

    fn describe(&self, state: StateId) -> String {
        match state {
            FREE => "free".to_owned(),
            held => format!("held by process {}", self.holders[held as usize - 1]),
        }
    }

    fn to_json(&self, state: StateId) -> serde_json::Value {
        serde_json::Value::from(self.describe(state))
    }

    fn refusal(&self, state: StateId, step: Step) -> String {
        match step {
            Step::Acquire(_) => format!("the lock was {}", self.describe(state)),
            Step::Release(_) => {
                format!("the lock was {}, not by the releaser", self.describe(state))
            }
        }
    }
}

/// Process 1 releases the lock process 0 holds, then takes it.
const STOLEN: &str = "{:process 0, :type :invoke, :f :acquire}
{:process 0, :type :ok, :f :acquire}
{:process 1, :type :invoke, :f :release}
{:process 1, :type :ok, :f :release}
{:process 1, :type :invoke, :f :acquire}
{:process 1, :type :ok, :f :acquire}";

#[test]
fn a_lock_released_by_someone_else_is_fine_for_knossos_and_not_for_an_owned_lock() {
    // Read the history with the built-in model that has the same operations.
    let options = ReadOptions {
        format: Some(Format::Edn),
        model: ModelKind::Mutex,
        ..ReadOptions::default()
    };
    let (history, _) = read_str(STOLEN, &options).unwrap();
    assert_eq!(
        check(&history, &CheckOptions::default()).verdict,
        Verdict::Valid
    );

    let result = check_model(&history, &CheckOptions::default(), OwnedLock::default);
    assert_eq!(result.verdict, Verdict::Invalid);
    let anomaly = result.keys[0].anomaly.as_ref().unwrap();
    assert_eq!(
        anomaly.explanation,
        "release by process 1 on mutex (from line 3 to line 4) cannot be placed in any order \
         consistent with the operations around it: after the longest explainable order of 1 \
         operation, the lock was held by process 0, not by the releaser"
    );
    assert_eq!(anomaly.value_after_prefix, "held by process 0");
}
