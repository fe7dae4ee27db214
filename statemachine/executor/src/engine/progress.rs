//! Where every scope of a running execution stands: the state it is in (with that state's input and
//! the scope's variables) and, in a Map or Parallel state, how each child fares. A snapshot of it is
//! the checkpoint a redrive resumes from — after a failure, a timeout, or an interrupted process.

use std::sync::Mutex;

use serde_json::Value;

use super::{ChildCheckpoint, Object, ScopeCheckpoint};

#[derive(Debug, Default)]
struct LiveScope {
    state: String,
    input: Value,
    variables: Object,
    children: Option<Vec<LiveChild>>,
}

#[derive(Debug)]
enum LiveChild {
    /// Running, or stopped where it failed: a redrive resumes it there.
    Running(LiveScope),
    /// Finished or never started: as recorded.
    Settled(ChildCheckpoint),
}

impl LiveScope {
    fn from_checkpoint(checkpoint: &ScopeCheckpoint) -> Self {
        Self {
            state: checkpoint.state.clone(),
            input: checkpoint.input.clone(),
            variables: checkpoint.variables.clone(),
            children: checkpoint.children.as_ref().map(|children| {
                children
                    .iter()
                    .map(|c| LiveChild::Settled(c.clone()))
                    .collect()
            }),
        }
    }

    fn checkpoint(&self) -> ScopeCheckpoint {
        ScopeCheckpoint {
            state: self.state.clone(),
            input: self.input.clone(),
            variables: self.variables.clone(),
            children: self.children.as_ref().map(|children| {
                children
                    .iter()
                    .map(|child| match child {
                        LiveChild::Running(scope) => ChildCheckpoint::Failed {
                            checkpoint: scope.checkpoint(),
                        },
                        LiveChild::Settled(c) => c.clone(),
                    })
                    .collect()
            }),
        }
    }

    fn at(&mut self, path: &[usize]) -> Option<&mut LiveScope> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => match self.children.as_mut()?.get_mut(*first)? {
                LiveChild::Running(scope) => scope.at(rest),
                LiveChild::Settled(_) => None,
            },
        }
    }
}

/// The live checkpoint tree of one run.
#[derive(Debug, Default)]
pub(super) struct Progress(Mutex<LiveScope>);

impl Progress {
    fn with<T>(&self, f: impl FnOnce(&mut LiveScope) -> T) -> T {
        f(&mut self.0.lock().expect("progress lock is never poisoned"))
    }

    pub fn restart(&self, start_at: &str, input: &Value) {
        self.with(|root| {
            *root = LiveScope {
                state: start_at.to_string(),
                input: input.clone(),
                ..LiveScope::default()
            }
        });
    }

    pub fn resume(&self, checkpoint: &ScopeCheckpoint) {
        self.with(|root| *root = LiveScope::from_checkpoint(checkpoint));
    }

    /// The scope at `path` enters a state. Its children are kept when it is the state they belong
    /// to (a redrive resuming a Map), dropped otherwise.
    pub fn enter(&self, path: &[usize], state: &str, input: &Value, variables: &Object) {
        self.with(|root| {
            if let Some(scope) = root.at(path) {
                if scope.state != state || &scope.input != input {
                    scope.children = None;
                }
                scope.state = state.to_string();
                scope.input = input.clone();
                scope.variables = variables.clone();
            }
        });
    }

    /// The Map or Parallel state of the scope at `path` starts its children (an attempt).
    pub fn start_children(&self, path: &[usize], children: Vec<ChildCheckpoint>) {
        self.with(|root| {
            if let Some(scope) = root.at(path) {
                scope.children = Some(children.into_iter().map(LiveChild::Settled).collect());
            }
        });
    }

    /// Child `index` of the scope at `path` starts running.
    pub fn child_running(&self, path: &[usize], index: usize) {
        self.set_child(path, index, LiveChild::Running(LiveScope::default()));
    }

    /// Child `index` of the scope at `path` ends as `child` records.
    pub fn child_settled(&self, path: &[usize], index: usize, child: ChildCheckpoint) {
        self.set_child(path, index, LiveChild::Settled(child));
    }

    fn set_child(&self, path: &[usize], index: usize, child: LiveChild) {
        self.with(|root| {
            if let Some(slot) = root
                .at(path)
                .and_then(|scope| scope.children.as_mut())
                .and_then(|children| children.get_mut(index))
            {
                *slot = child;
            }
        });
    }

    /// The checkpoint of the scope at `path` (the whole execution for `[]`).
    pub fn checkpoint(&self, path: &[usize]) -> ScopeCheckpoint {
        self.with(|root| {
            root.at(path)
                .map(|scope| scope.checkpoint())
                .unwrap_or_else(|| ScopeCheckpoint {
                    state: String::new(),
                    input: Value::Null,
                    variables: Object::new(),
                    children: None,
                })
        })
    }
}
