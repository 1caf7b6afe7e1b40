//! The lookup cache: answers by key until they expire, a bounded number of
//! them, and one request in flight per key that every concurrent lookup of
//! that key waits on. Time is passed in, so the tests need no clock.

use futures_util::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A request in flight, awaited by every lookup of its key.
pub type Pending<V> = Shared<BoxFuture<'static, V>>;

enum Slot<V> {
    Ready { value: V, expires: Instant },
    Pending(Pending<V>),
}

/// How a lookup was answered.
pub enum Entry<V> {
    /// From the cache, no request.
    Hit(V),
    /// Waiting on a request another lookup started.
    Joined(Pending<V>),
    /// This lookup started the request.
    Started(Pending<V>),
}

pub struct Cache<V> {
    slots: Mutex<HashMap<String, Slot<V>>>,
    capacity: usize,
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    pub fn new(capacity: usize) -> Cache<V> {
        Cache {
            slots: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The live answer for `key`, the request in flight, or a new one from `start`.
    pub fn lookup(&self, key: &str, now: Instant, start: impl FnOnce() -> Pending<V>) -> Entry<V> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(key) {
            Some(Slot::Ready { value, expires }) if *expires > now => return Entry::Hit(value.clone()),
            // A request that ended without completing its slot (its task
            // panicked) is not waited on again.
            Some(Slot::Pending(p)) if p.peek().is_none() => return Entry::Joined(p.clone()),
            _ => {}
        }
        let pending = start();
        slots.insert(key.to_string(), Slot::Pending(pending.clone()));
        Entry::Started(pending)
    }

    /// Store the answer of the request for `key` until `expires`, making room
    /// by dropping expired answers, then those that expire first.
    pub fn complete(&self, key: &str, value: V, now: Instant, expires: Instant) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(key);
        let ready = |s: &Slot<V>| matches!(s, Slot::Ready { .. });
        if slots.values().filter(|s| ready(s)).count() >= self.capacity {
            slots.retain(|_, s| !matches!(s, Slot::Ready { expires, .. } if *expires <= now));
        }
        while slots.values().filter(|s| ready(s)).count() >= self.capacity {
            let first = slots
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Ready { expires, .. } => Some((*expires, k.clone())),
                    Slot::Pending(_) => None,
                })
                .min();
            match first {
                Some((_, k)) => slots.remove(&k),
                None => break,
            };
        }
        slots.insert(key.to_string(), Slot::Ready { value, expires });
    }

    /// Answers held (not requests in flight).
    pub fn len(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.values().filter(|s| matches!(s, Slot::Ready { .. })).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::time::Duration;

    fn ready(v: u32) -> Pending<u32> {
        async move { v }.boxed().shared()
    }

    fn hit(entry: Entry<u32>) -> Option<u32> {
        match entry {
            Entry::Hit(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn hit_until_expiry_then_a_new_request() {
        let cache = Cache::new(10);
        let t0 = Instant::now();
        assert!(matches!(cache.lookup("a", t0, || ready(1)), Entry::Started(_)));
        cache.complete("a", 1, t0, t0 + Duration::from_secs(30));
        assert_eq!(
            hit(cache.lookup("a", t0 + Duration::from_secs(29), || unreachable!())),
            Some(1)
        );
        assert!(matches!(
            cache.lookup("a", t0 + Duration::from_secs(30), || ready(2)),
            Entry::Started(_)
        ));
    }

    #[test]
    fn concurrent_lookups_share_the_request() {
        let cache: Cache<u32> = Cache::new(10);
        let t0 = Instant::now();
        let (send, recv) = tokio::sync::oneshot::channel::<u32>();
        let first = match cache.lookup("a", t0, || recv.map(|r| r.unwrap_or(0)).boxed().shared()) {
            Entry::Started(p) => p,
            _ => panic!("first lookup starts"),
        };
        let Entry::Joined(second) = cache.lookup("a", t0, || panic!("no second request")) else {
            panic!("second lookup joins");
        };
        send.send(5).unwrap();
        assert_eq!(futures_util::FutureExt::now_or_never(first), Some(5));
        assert_eq!(futures_util::FutureExt::now_or_never(second), Some(5));
        // Resolved but never completed (its task died): not joined again.
        assert!(matches!(cache.lookup("a", t0, || ready(6)), Entry::Started(_)));
    }

    #[test]
    fn bounded_expired_then_soonest_expiring_dropped() {
        let cache = Cache::new(2);
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        cache.complete("old", 1, t0, t0 + s);
        cache.complete("late", 2, t0, t0 + 100 * s);
        cache.complete("soon", 3, t0 + 2 * s, t0 + 10 * s);
        assert_eq!(cache.len(), 2);
        assert_eq!(hit(cache.lookup("late", t0 + 3 * s, || ready(0))), Some(2));
        assert_eq!(hit(cache.lookup("soon", t0 + 3 * s, || ready(0))), Some(3));
        cache.complete("new", 4, t0 + 3 * s, t0 + 50 * s);
        assert_eq!(cache.len(), 2);
        assert_eq!(hit(cache.lookup("late", t0 + 3 * s, || ready(0))), Some(2));
        assert_eq!(hit(cache.lookup("new", t0 + 3 * s, || ready(0))), Some(4));
    }
}
