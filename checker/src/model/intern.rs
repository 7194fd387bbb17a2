//! Interning for models whose state is a collection: elements as small ids, and states (sorted
//! or ordered sequences of element ids) as [`StateId`]s.

use rustc_hash::FxHashMap;

use super::StateId;
use crate::history::Value;

/// Values interned as `u32` ids, in order of first appearance.
#[derive(Default)]
pub(super) struct Elements {
    ids: FxHashMap<Value, u32>,
    values: Vec<Value>,
}

impl Elements {
    pub(super) fn intern(&mut self, v: &Value) -> u32 {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 elements");
        self.ids.insert(v.clone(), id);
        self.values.push(v.clone());
        id
    }

    pub(super) fn get(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    pub(super) fn len(&self) -> usize {
        self.values.len()
    }
}

/// Sequences of element ids interned as [`StateId`]s.
#[derive(Default)]
pub(super) struct States {
    ids: FxHashMap<Box<[u32]>, StateId>,
    states: Vec<Box<[u32]>>,
}

impl States {
    pub(super) fn intern(&mut self, state: &[u32]) -> StateId {
        if let Some(&id) = self.ids.get(state) {
            return id;
        }
        let id = StateId::try_from(self.states.len()).expect("fewer than 2^32 states");
        self.ids.insert(state.into(), id);
        self.states.push(state.into());
        id
    }

    pub(super) fn get(&self, id: StateId) -> &[u32] {
        &self.states[id as usize]
    }
}

/// `{1, 2, 3}`: elements in their natural order.
pub(super) fn braces<'a>(values: impl Iterator<Item = &'a Value>) -> String {
    let mut values: Vec<&Value> = values.collect();
    values.sort();
    let shown: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    format!("{{{}}}", shown.join(", "))
}
