//! The queue of calls from the handles to the node loop: bounded, with
//! room reported in bursts.
//!
//! A bounded `async_channel` wakes a waiting sender for every call taken
//! out. When the application posts faster than the node serves (a one-way
//! stream of `post`s), the queue stays full and every call taken costs a
//! wake-up of the application's thread (a futex call each way): the
//! profile of the 1 KiB one-way bench showed most of its context switches
//! there. Here the queue is an unbounded channel whose length is capped by
//! a counter: a sender that finds it full waits until the node loop has
//! taken it down to half, and then all waiting senders wake at once.

use core::future::poll_fn;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_channel::{Receiver, Sender};
use atomic_waker::AtomicWaker;
use event_listener::Event;

/// What sender and receiver share.
struct Room {
    /// Calls sent and not taken yet; at most the capacity.
    queued: AtomicUsize,
    capacity: usize,
    /// Notified when `queued` falls below half the capacity, and when the
    /// receiver closes.
    freed: Event,
}

impl Room {
    /// Counts one more call if there is room.
    fn try_take(&self) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.capacity).then_some(q + 1)
            })
            .is_ok()
    }

    /// `n` calls were taken out (or never went in).
    fn release(&self, n: usize) {
        let low = self.capacity / 2;
        let before = self.queued.fetch_sub(n, Ordering::AcqRel);
        if before >= low && before - n < low {
            self.freed.notify(usize::MAX);
        }
    }
}

/// The node loop's wake-up: a token after every call queued, and when a
/// call served on the caller's task needs the loop (see
/// [`CallSender::wake`]). At most one token is pending; the one receiver
/// waits for it in place (a flag and one waker), so a wait that is
/// polled again and again (the node loop's, once per pass) allocates
/// nothing and registers nothing new.
struct Nudge {
    token: AtomicBool,
    /// Senders alive; the last one to go ends the receiver's waits.
    senders: AtomicUsize,
    waker: AtomicWaker,
}

impl Nudge {
    fn wake(&self) {
        // A token already there has its wake-up on the way.
        if !self.token.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Ready with `true` once a token is taken, `false` once every sender
    /// is gone (and no token is left).
    fn poll_token(&self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.token.swap(false, Ordering::AcqRel) {
            return Poll::Ready(true);
        }
        // Registered before the second look, so a token sent in between
        // wakes this waker.
        self.waker.register(cx.waker());
        if self.token.swap(false, Ordering::AcqRel) {
            return Poll::Ready(true);
        }
        if self.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(false);
        }
        Poll::Pending
    }
}

/// The handles' end; cloned with them. `Call` is what goes through (the
/// handles' `handle::Call`): the queue does not look inside.
pub(crate) struct CallSender<Call> {
    tx: Sender<Call>,
    room: Arc<Room>,
    nudge: Arc<Nudge>,
}

impl<Call> Clone for CallSender<Call> {
    fn clone(&self) -> Self {
        self.nudge.senders.fetch_add(1, Ordering::Relaxed);
        CallSender {
            tx: self.tx.clone(),
            room: Arc::clone(&self.room),
            nudge: Arc::clone(&self.nudge),
        }
    }
}

impl<Call> Drop for CallSender<Call> {
    fn drop(&mut self) {
        if self.nudge.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.nudge.waker.wake();
        }
    }
}

/// The node loop's end.
///
/// The node loop does not wait on the calls themselves but on a wake-up
/// token ([`CallReceiver::poll_ready`]) and then takes them while it holds
/// the node: a call is never out of the queue and not yet served while a
/// handle serves its own call on its task, so calls from one task keep
/// their order.
///
/// One task waits on it at a time (the node loop): the wake-up holds a
/// single waker.
pub(crate) struct CallReceiver<Call> {
    rx: Receiver<Call>,
    room: Arc<Room>,
    nudge: Arc<Nudge>,
}

/// A queue of at most `capacity` calls (at least 2).
pub(crate) fn channel<Call>(capacity: usize) -> (CallSender<Call>, CallReceiver<Call>) {
    let (tx, rx) = async_channel::unbounded();
    let nudge = Arc::new(Nudge {
        token: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        waker: AtomicWaker::new(),
    });
    let room = Arc::new(Room {
        queued: AtomicUsize::new(0),
        capacity: capacity.max(2),
        freed: Event::new(),
    });
    (
        CallSender {
            tx,
            room: Arc::clone(&room),
            nudge: Arc::clone(&nudge),
        },
        CallReceiver { rx, room, nudge },
    )
}

impl<Call> CallSender<Call> {
    /// Queues `call`, waiting while the queue is full; gives it back if
    /// the node loop no longer takes calls.
    pub(crate) async fn send(&self, call: Call) -> Result<(), Call> {
        self.send_quietly(call).await?;
        self.wake();
        Ok(())
    }

    /// As [`CallSender::send`], without waking the node loop: for a sender
    /// that sees to it that the call is taken (the transport queue's
    /// readers, `Feeder::take_queued` in the driver).
    pub(crate) async fn send_quietly(&self, call: Call) -> Result<(), Call> {
        loop {
            if self.tx.is_closed() {
                return Err(call);
            }
            if self.room.try_take() {
                return match self.tx.try_send(call) {
                    Ok(()) => Ok(()),
                    Err(error) => {
                        self.room.release(1);
                        Err(error.into_inner())
                    }
                };
            }
            let listener = self.room.freed.listen();
            // Room made (or the queue closed) between the check and the
            // listening would not wake us: look again first.
            if self.room.queued.load(Ordering::Acquire) < self.room.capacity || self.tx.is_closed()
            {
                continue;
            }
            listener.await;
        }
    }
}

impl<Call> CallSender<Call> {
    /// Wakes the node loop ([`CallReceiver::poll_nudged`] is ready). A wake-up
    /// not yet taken absorbs this one.
    pub(crate) fn wake(&self) {
        self.nudge.wake();
    }
}

impl<Call> CallReceiver<Call> {
    /// Ready once a call is queued or a sender asked for a wake-up
    /// (`true`), or every sender is gone and nothing is queued (`false`).
    /// Takes no call: [`CallReceiver::try_recv`] does.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<bool> {
        if !self.rx.is_empty() {
            return Poll::Ready(true);
        }
        // A sender queues its call before it sends the token, so a call
        // queued after the check above comes with a token.
        self.poll_nudged(cx)
    }

    /// As [`CallReceiver::poll_ready`], but calls already queued do not
    /// end the wait: only a sender's wake-up (or the last sender's end)
    /// does.
    pub(crate) fn poll_nudged(&self, cx: &mut Context<'_>) -> Poll<bool> {
        match self.nudge.poll_token(cx) {
            Poll::Ready(true) => Poll::Ready(true),
            Poll::Ready(false) => Poll::Ready(!self.rx.is_empty()),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next call; `None` once every sender is gone.
    pub(crate) async fn recv(&self) -> Option<Call> {
        loop {
            if let Some(call) = self.try_recv() {
                return Some(call);
            }
            if !poll_fn(|cx| self.poll_ready(cx)).await {
                return None;
            }
        }
    }

    /// The next call if one is queued.
    pub(crate) fn try_recv(&self) -> Option<Call> {
        let call = self.rx.try_recv().ok()?;
        self.room.release(1);
        Some(call)
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Takes no more calls: senders get theirs back, waiting ones too.
    pub(crate) fn close(&self) {
        self.rx.close();
        self.room.freed.notify(usize::MAX);
    }
}

impl<Call> Drop for CallReceiver<Call> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    /// A call; the queue never looks inside.
    fn post() -> u32 {
        7
    }

    #[test]
    fn a_full_queue_holds_its_sender_until_half_is_taken() {
        future::block_on(async {
            let (tx, rx) = channel(4);
            for _ in 0..4 {
                assert!(tx.send(post()).await.is_ok());
            }
            let mut fifth = Box::pin(tx.send(post()));
            assert!(future::poll_once(&mut fifth).await.is_none(), "full");
            assert!(rx.try_recv().is_some());
            assert!(rx.try_recv().is_some());
            // Two left of four: not below half yet, the sender sleeps on.
            assert!(future::poll_once(&mut fifth).await.is_none());
            // One left: below half, it wakes and sends.
            assert!(rx.try_recv().is_some());
            assert!(future::poll_once(&mut fifth).await.is_some());
            while rx.try_recv().is_some() {}
            assert_eq!(rx.room.queued.load(Ordering::Acquire), 0);
        });
    }

    #[test]
    fn a_waiting_sender_wakes_when_the_receiver_takes_or_closes() {
        future::block_on(async {
            let (tx, rx) = channel(2);
            assert!(tx.send(post()).await.is_ok());
            assert!(tx.send(post()).await.is_ok());
            let waiting = async { tx.send(post()).await };
            let take = async {
                future::yield_now().await;
                assert!(rx.recv().await.is_some());
                assert!(rx.recv().await.is_some());
            };
            let (sent, ()) = future::zip(waiting, take).await;
            assert!(sent.is_ok());

            let (tx, rx) = channel(2);
            assert!(tx.send(post()).await.is_ok());
            assert!(tx.send(post()).await.is_ok());
            let waiting = async { tx.send(post()).await };
            let close = async {
                future::yield_now().await;
                drop(rx);
            };
            let (sent, ()) = future::zip(waiting, close).await;
            assert!(sent.is_err(), "closed: the call comes back");
        });
    }

    #[test]
    fn a_wake_up_ends_the_wait_once_and_the_last_clone_gone_ends_it_for_good() {
        future::block_on(async {
            let (tx, rx) = channel::<u32>(4);
            let ready = || future::poll_fn(|cx| rx.poll_ready(cx));
            let tx2 = tx.clone();
            drop(tx);
            assert!(
                future::poll_once(ready()).await.is_none(),
                "a sender is left: the wait goes on"
            );
            tx2.wake();
            tx2.wake();
            assert!(ready().await, "woken");
            assert!(
                future::poll_once(ready()).await.is_none(),
                "two wake-ups before a wait are one"
            );
            drop(tx2);
            assert!(!ready().await, "every sender gone, nothing queued");
        });
    }

    #[test]
    fn the_receiver_sees_the_end_once_every_sender_is_gone() {
        future::block_on(async {
            let (tx, rx) = channel(4);
            assert!(tx.send(post()).await.is_ok());
            drop(tx);
            assert!(rx.recv().await.is_some());
            assert!(rx.recv().await.is_none());
        });
    }
}
