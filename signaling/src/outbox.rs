//! One connection's bounded outbound queue, and the means to hang up on it.
//!
//! Everything a client is sent (its own replies, relayed signals, room notices) goes
//! through this one FIFO, so a client sees events in the order the server decided them.
//! Pushing never waits: a client that does not read its socket fills its queue and is
//! dropped, instead of making the sender (another client's task) wait or the server
//! buffer without bound.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use tokio::sync::{Notify, mpsc};

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Undeliverable {
    /// The client is not keeping up: its queue is at capacity.
    #[error("outbound queue full")]
    Full,
    /// The connection's writer has already stopped.
    #[error("connection closed")]
    Closed,
}

/// The sending end of a connection's queue; cheap to clone, one clone per holder
/// (the connection itself and the room registry).
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Frames for the connection's writer task, bounded by the queue capacity.
    tx: mpsc::Sender<Message>,
    /// Wakes the connection's reader when someone decides to drop the connection.
    kick: Arc<Notify>,
    /// Set before a kick that is a presenter's outage rather than a slow client: the
    /// connection then says goodbye (close code 1001) instead of just hanging up.
    away: Arc<std::sync::atomic::AtomicBool>,
}

impl Outbox {
    /// A queue holding up to `capacity` frames (at least one) and its receiving end,
    /// which belongs to the connection's writer.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kick = Arc::new(Notify::new());
        let away = Arc::default();
        (Outbox { tx, kick, away }, rx)
    }

    /// Queues a text frame without waiting.
    pub fn push_text(&self, text: Utf8Bytes) -> Result<(), Undeliverable> {
        self.push(Message::Text(text))
    }

    /// Queues any frame without waiting.
    pub fn push(&self, msg: Message) -> Result<(), Undeliverable> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Undeliverable::Full,
            mpsc::error::TrySendError::Closed(_) => Undeliverable::Closed,
        })
    }

    /// Asks the connection to hang up. Remembered until the connection looks, so a kick
    /// delivered while its reader is busy is not lost.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Asks the connection to close because a presenter took the server away.
    pub fn send_away(&self) {
        self.away.store(true, std::sync::atomic::Ordering::Relaxed);
        self.kick();
    }

    /// Whether [`Outbox::send_away`] was called.
    pub fn is_away(&self) -> bool {
        self.away.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves once [`Outbox::kick`] has been called on any clone.
    pub async fn kicked(&self) {
        self.kick.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_closed_are_told_apart() {
        let (outbox, mut rx) = Outbox::new(1);
        assert_eq!(outbox.push_text("a".into()), Ok(()));
        assert_eq!(outbox.push_text("b".into()), Err(Undeliverable::Full));
        assert_eq!(rx.try_recv().ok(), Some(Message::Text("a".into())));
        drop(rx);
        assert_eq!(outbox.push_text("c".into()), Err(Undeliverable::Closed));
    }

    #[tokio::test]
    async fn a_kick_is_remembered() {
        let (outbox, _rx) = Outbox::new(4);
        outbox.clone().kick();
        tokio::time::timeout(std::time::Duration::from_secs(5), outbox.kicked())
            .await
            .expect("kick was lost");
    }
}
