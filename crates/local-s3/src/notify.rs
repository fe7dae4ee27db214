//! Committed changes, for whoever plays EventBridge (the local runner, a simulation).
//!
//! Changes are published while the key's lock is held, so a subscriber sees the changes of one key in
//! commit order. Each subscriber has a buffer of [`CHANGE_BUFFER`] changes; one that falls further behind
//! loses the oldest changes, and its next [`ChangeStream::recv`] says how many ([`ChangeStreamError::Lost`])
//! before it continues with the oldest change still buffered: never silently. Only the changes committed
//! by this process are published (another process sharing the folder has its own subscribers).

use tokio::sync::broadcast;

use crate::model::Change;

/// How many changes a subscriber may fall behind before it loses some.
pub const CHANGE_BUFFER: usize = 16_384;

#[derive(Debug)]
pub(crate) struct Notifier {
    sender: broadcast::Sender<Change>,
}

impl Default for Notifier {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(CHANGE_BUFFER);
        Notifier { sender }
    }
}

impl Notifier {
    pub fn publish(&self, change: Change) {
        // No subscriber is fine: nobody listens.
        let _ = self.sender.send(change);
    }

    pub fn subscribe(&self) -> ChangeStream {
        ChangeStream {
            receiver: self.sender.subscribe(),
        }
    }
}

/// The changes committed after [`subscribe`](crate::LocalS3::subscribe) was called.
#[derive(Debug)]
pub struct ChangeStream {
    receiver: broadcast::Receiver<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeStreamError {
    /// The subscriber fell more than [`CHANGE_BUFFER`] changes behind; this many were dropped. The next
    /// call returns the oldest change still buffered. List the bucket to resynchronise.
    #[error("{0} store changes were dropped because this subscriber fell behind")]
    Lost(u64),
    /// The store is gone and every buffered change was received.
    #[error("the store was shut down")]
    Closed,
}

impl ChangeStream {
    /// The next change, waiting for one.
    pub async fn recv(&mut self) -> Result<Change, ChangeStreamError> {
        self.receiver.recv().await.map_err(|err| match err {
            broadcast::error::RecvError::Lagged(lost) => ChangeStreamError::Lost(lost),
            broadcast::error::RecvError::Closed => ChangeStreamError::Closed,
        })
    }

    /// The next change if one is buffered, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Change>, ChangeStreamError> {
        match self.receiver.try_recv() {
            Ok(change) => Ok(Some(change)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(lost)) => Err(ChangeStreamError::Lost(lost)),
            Err(broadcast::error::TryRecvError::Closed) => Err(ChangeStreamError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChangeKind, DeletionType};

    fn change(n: u64) -> Change {
        Change {
            bucket: "b".to_owned(),
            key: format!("k{n}"),
            sequencer: crate::model::sequencer(n),
            time: std::time::UNIX_EPOCH,
            kind: ChangeKind::ObjectDeleted {
                version_id: n.to_string(),
                deletion_type: DeletionType::DeleteMarkerCreated,
            },
        }
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_told_how_many_changes_it_lost() {
        let notifier = Notifier::default();
        let mut stream = notifier.subscribe();
        let total = CHANGE_BUFFER as u64 + 5;
        for n in 0..total {
            notifier.publish(change(n));
        }
        assert_eq!(stream.try_recv(), Err(ChangeStreamError::Lost(5)));
        assert_eq!(stream.try_recv().unwrap().unwrap().key, "k5");
        let mut rest = 1;
        while let Some(received) = stream.try_recv().unwrap() {
            assert_eq!(received.key, format!("k{}", 5 + rest));
            rest += 1;
        }
        assert_eq!(rest, CHANGE_BUFFER as u64);
    }
}
