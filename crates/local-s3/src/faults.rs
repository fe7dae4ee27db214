//! Faults a test can ask the server to produce, at the HTTP level: the SDK sees a real 503 or 500 response
//! (and retries as it would against S3), or a real 404 because the object is really gone.

use std::sync::Mutex;

/// The object operations faults can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Op {
    GetObject,
    HeadObject,
    PutObject,
}

/// What happens to a request a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 SlowDown, S3's throttling answer.
    SlowDown,
    /// 500 InternalError.
    InternalError,
    /// Every version of the object is deleted for good just before the request is served (so a GET or
    /// HEAD answers 404 NoSuchKey, also when pinned to a version): an upload removed between the event
    /// and its processing. (A plain DELETE, which leaves the versions under a delete marker, is a real
    /// `delete_object` call.)
    Vanish,
}

/// "Fail the next `times` requests of `op` (optionally only for keys starting with `key_prefix`) with `fault`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub op: S3Op,
    pub fault: Fault,
    pub times: u32,
    pub key_prefix: Option<String>,
}

impl FaultRule {
    /// A rule for the next single request of `op`.
    pub fn new(op: S3Op, fault: Fault) -> FaultRule {
        FaultRule {
            op,
            fault,
            times: 1,
            key_prefix: None,
        }
    }

    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = times;
        self
    }

    pub fn for_keys_under(mut self, prefix: impl Into<String>) -> FaultRule {
        self.key_prefix = Some(prefix.into());
        self
    }

    fn matches(&self, op: S3Op, key: &str) -> bool {
        self.times > 0
            && self.op == op
            && self
                .key_prefix
                .as_deref()
                .is_none_or(|prefix| key.starts_with(prefix))
    }
}

/// One request the server received, as the faults see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: S3Op,
    pub bucket: String,
    pub key: String,
    /// The Range header of a GET, as sent (e.g. `bytes=0-65535`).
    pub range: Option<String>,
    /// The fault served instead of (or, for `Vanish`, before) the real answer.
    pub fault: Option<Fault>,
}

/// The pending fault rules and a log of the object requests served. Shared by the server and the test.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<FaultRule>,
    log: Vec<Request>,
}

impl Faults {
    /// Adds a rule; rules are consulted in the order they were added.
    pub fn inject(&self, rule: FaultRule) {
        self.lock().rules.push(rule);
    }

    /// Drops every pending rule.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many injected faults are still to be served.
    pub fn pending(&self) -> u32 {
        self.lock().rules.iter().map(|rule| rule.times).sum()
    }

    /// Every object request received so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().log.clone()
    }

    /// Object requests of one kind received so far.
    pub fn requests_of(&self, op: S3Op) -> Vec<Request> {
        self.lock()
            .log
            .iter()
            .filter(|request| request.op == op)
            .cloned()
            .collect()
    }

    /// Records the request and consumes the first matching rule, returning its fault.
    pub(crate) fn take(
        &self,
        op: S3Op,
        bucket: &str,
        key: &str,
        range: Option<String>,
    ) -> Option<Fault> {
        let mut state = self.lock();
        let fault = state
            .rules
            .iter_mut()
            .find(|rule| rule.matches(op, key))
            .map(|rule| {
                rule.times -= 1;
                rule.fault
            });
        state.rules.retain(|rule| rule.times > 0);
        state.log.push(Request {
            op,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            range,
            fault,
        });
        fault
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data behind: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_consumed_in_order_and_only_by_matching_requests() {
        let faults = Faults::default();
        faults.inject(
            FaultRule::new(S3Op::GetObject, Fault::SlowDown)
                .times(2)
                .for_keys_under("uploads/"),
        );
        faults.inject(FaultRule::new(S3Op::GetObject, Fault::InternalError));
        assert_eq!(faults.pending(), 3);

        assert_eq!(faults.take(S3Op::PutObject, "b", "uploads/a", None), None);
        assert_eq!(
            faults.take(S3Op::GetObject, "b", "other/a", None),
            Some(Fault::InternalError)
        );
        assert_eq!(
            faults.take(S3Op::GetObject, "b", "uploads/a", None),
            Some(Fault::SlowDown)
        );
        assert_eq!(
            faults.take(S3Op::GetObject, "b", "uploads/a", None),
            Some(Fault::SlowDown)
        );
        assert_eq!(faults.take(S3Op::GetObject, "b", "uploads/a", None), None);
        assert_eq!(faults.pending(), 0);
        assert_eq!(faults.requests().len(), 5);
        assert_eq!(faults.requests_of(S3Op::GetObject).len(), 4);
    }
}
