//! The deadlines of a connection's [`invoke_then`] calls, watched by one
//! task per connection instead of one per call.
//!
//! A call's answer only takes its entry out of the connection's `pending`
//! map; its deadline stays in this heap until due and is then a no-op. So
//! an answered call costs no wake-up of the runtime (a task per call would
//! have to be woken to be cancelled, on the hot path of every call), and a
//! module making many quick calls costs 24 bytes per call for at most one
//! deadline's span, bounded by its request rate.
//!
//! [`invoke_then`]: super::ModuleConnectionHandle::invoke_then

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

/// The heap and the watcher's wake-up.
#[derive(Default)]
pub(crate) struct Deadlines {
    /// (due, invocation id), earliest first.
    heap: Mutex<BinaryHeap<Reverse<(Instant, u64)>>>,
    /// Woken when an entry becomes the earliest, or the connection closes;
    /// shared with the watcher, which must not keep the connection alive
    /// while it waits.
    changed: Arc<Notify>,
    /// Whether the watcher task has been started.
    started: std::sync::OnceLock<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A push or a pop; never left half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Deadlines {
    /// Adds invocation `id`, due at `due`; starts the watcher on `runtime`
    /// the first time, which calls `expire(id)` for each id that comes due
    /// and stops once `owner` is gone or `expire` says the connection is
    /// closed.
    pub(crate) fn add<C: Send + Sync + 'static>(
        &self,
        id: u64,
        due: Instant,
        runtime: &tokio::runtime::Handle,
        owner: Weak<C>,
        watched: fn(&C) -> &Deadlines,
        expire: fn(&C, u64) -> bool,
    ) {
        let earliest = {
            let mut heap = lock(&self.heap);
            let earliest = heap.peek().is_none_or(|Reverse((d, _))| due < *d);
            heap.push(Reverse((due, id)));
            earliest
        };
        if self.started.set(()).is_ok() {
            runtime.spawn(watch(owner, watched, expire));
        } else if earliest {
            self.changed.notify_one();
        }
    }

    /// Wakes the watcher so that it sees the connection closed.
    pub(crate) fn close(&self) {
        self.changed.notify_one();
    }
}

/// The watcher: sleeps until the earliest deadline (or a new earlier one),
/// expires what is due.
async fn watch<C>(owner: Weak<C>, watched: fn(&C) -> &Deadlines, expire: fn(&C, u64) -> bool) {
    loop {
        let next = {
            let Some(conn) = owner.upgrade() else { return };
            let d = watched(&conn);
            let now = Instant::now();
            let mut due = Vec::new();
            let next = {
                let mut heap = lock(&d.heap);
                while let Some(Reverse((at, id))) = heap.peek().copied() {
                    if at > now {
                        break;
                    }
                    heap.pop();
                    due.push(id);
                }
                heap.peek().map(|Reverse((at, _))| *at)
            };
            for id in due {
                if !expire(&conn, id) {
                    return;
                }
            }
            next
        };
        // A notify sent after the heap was read and before the wait is kept
        // by `Notify` as a permit, so no new earlier deadline is missed.
        let Some(conn) = owner.upgrade() else { return };
        let changed = Arc::clone(&watched(&conn).changed);
        drop(conn);
        let notified = changed.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A stand-in connection that records which ids expired.
    #[derive(Default)]
    struct Owner {
        deadlines: Deadlines,
        expired: Mutex<Vec<u64>>,
        done: Notify,
    }

    fn expire(o: &Owner, id: u64) -> bool {
        lock(&o.expired).push(id);
        o.done.notify_one();
        true
    }

    #[tokio::test(flavor = "current_thread")]
    async fn deadlines_expire_earliest_first_whatever_the_order_they_were_added_in() {
        let owner = Arc::new(Owner::default());
        let now = Instant::now();
        let rt = tokio::runtime::Handle::current();
        for (id, ms) in [(1, 60), (2, 20), (3, 40)] {
            owner.deadlines.add(
                id,
                now + Duration::from_millis(ms),
                &rt,
                Arc::downgrade(&owner),
                |o: &Owner| &o.deadlines,
                expire,
            );
        }
        let all = async {
            while lock(&owner.expired).len() < 3 {
                owner.done.notified().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("all expire");
        assert_eq!(*lock(&owner.expired), [2, 3, 1]);
        assert!(Instant::now() >= now + Duration::from_millis(60));
    }
}
