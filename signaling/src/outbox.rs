//! One connection's bounded outbound queue, and the means to hang up on it.
//!
//! Everything a client is sent (its own replies, relayed signals, room notices) goes
//! through this one FIFO, so a client sees events in the order the server decided them.
//! Pushing never waits: a client that does not read its socket fills its queue and is
//! dropped, instead of making the sender (another client's task) wait or the server
//! buffer without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Bytes queued and not yet taken by the writer, against `bytes_max`.
    meter: Meter,
    bytes_max: usize,
}

/// Hangs up on a connection (see [`Outbox::kicker`]).
#[derive(Debug, Clone)]
pub struct Kicker(Arc<Notify>);

impl Kicker {
    pub fn kick(&self) {
        self.0.notify_one();
    }
}

/// Bytes queued for one connection and, summed, for the whole server.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    mine: Arc<AtomicUsize>,
    all: Arc<AtomicUsize>,
}

impl Meter {
    /// A meter for one connection that also adds to `all`.
    pub fn new(all: Arc<AtomicUsize>) -> Meter {
        Meter {
            mine: Arc::default(),
            all,
        }
    }

    fn add(&self, n: usize) {
        self.mine.fetch_add(n, Ordering::Relaxed);
        self.all.fetch_add(n, Ordering::Relaxed);
    }

    /// The writer took `msg` off the queue.
    pub fn taken(&self, msg: &Message) {
        let n = frame_bytes(msg);
        self.mine.fetch_sub(n, Ordering::Relaxed);
        self.all.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes queued for this connection now.
    pub fn queued(&self) -> usize {
        self.mine.load(Ordering::Relaxed)
    }

    /// Frees what is still counted for this connection (its queue is gone).
    pub fn release(&self) {
        let n = self.mine.swap(0, Ordering::Relaxed);
        self.all.fetch_sub(n, Ordering::Relaxed);
    }
}

/// What a frame weighs in a queue.
fn frame_bytes(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(c) => c.as_ref().map_or(0, |c| c.reason.len()) + 2,
    }
}

impl Outbox {
    /// A queue holding up to `capacity` frames (at least one) and its receiving end,
    /// which belongs to the connection's writer.
    #[cfg(test)]
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Message>) {
        Self::with_bytes(capacity, usize::MAX, Meter::default())
    }

    /// A queue holding up to `capacity` frames and `bytes_max` bytes of them, counted on
    /// `meter` (which the writer tells what it takes).
    pub fn with_bytes(
        capacity: usize,
        bytes_max: usize,
        meter: Meter,
    ) -> (Outbox, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kick = Arc::new(Notify::new());
        let away = Arc::default();
        (
            Outbox {
                tx,
                kick,
                away,
                meter,
                bytes_max,
            },
            rx,
        )
    }

    /// The meter of this queue's bytes.
    #[cfg(test)]
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Queues a text frame without waiting.
    pub fn push_text(&self, text: Utf8Bytes) -> Result<(), Undeliverable> {
        self.push(Message::Text(text))
    }

    /// Queues any frame without waiting.
    pub fn push(&self, msg: Message) -> Result<(), Undeliverable> {
        let n = frame_bytes(&msg);
        // A frame over the budget on an empty queue still goes: the budget bounds what
        // waits, and one frame is bounded by the server's message limit.
        if self.meter.queued() > 0 && self.meter.queued().saturating_add(n) > self.bytes_max {
            return Err(Undeliverable::Full);
        }
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Undeliverable::Full,
            mpsc::error::TrySendError::Closed(_) => Undeliverable::Closed,
        })?;
        self.meter.add(n);
        Ok(())
    }

    /// Asks the connection to hang up. Remembered until the connection looks, so a kick
    /// delivered while its reader is busy is not lost.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// A handle that can only hang up, for the connection's writer (which must not hold
    /// a sender, or its queue would never end).
    pub fn kicker(&self) -> Kicker {
        Kicker(self.kick.clone())
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

    #[test]
    fn the_byte_budget_bounds_what_waits() {
        let (outbox, mut rx) = Outbox::with_bytes(100, 10, Meter::default());
        assert_eq!(
            outbox.push_text("0123456789abc".into()),
            Ok(()),
            "one frame always goes"
        );
        assert_eq!(outbox.push_text("x".into()), Err(Undeliverable::Full));
        let msg = rx.try_recv().unwrap();
        outbox.meter().taken(&msg);
        assert_eq!(outbox.meter().queued(), 0);
        assert_eq!(outbox.push_text("0123456789".into()), Ok(()));
        assert_eq!(outbox.push_text("y".into()), Err(Undeliverable::Full));
        outbox.meter().release();
        assert_eq!(outbox.meter().all.load(Ordering::Relaxed), 0);
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
