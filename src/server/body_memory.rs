//! Memory for large request bodies.
//!
//! A review's body is held whole while it is read and reviewed, so without a
//! bound the webhook's memory grows with the large bodies in flight: sixteen
//! `kubectl debug` reviews of 3 MB at once held about 120 MiB, near the
//! pod's 128 MiB limit. A body that grows past [`SMALL`] therefore reserves
//! its whole size (the declared `Content-Length`, or the body limit when
//! there is none) from one budget shared by all workers, and waits while the
//! budget is spent. A waiting body is not read, so TCP flow control holds its
//! client back instead of the webhook buffering it.
//!
//! Small bodies never reserve: almost every pod review is a few KiB to a few
//! hundred, and clients sending slow large bodies must not make them wait.
//! Nor does a client that only declares a large body: the reservation starts
//! once [`SMALL`] bytes have arrived.

use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies up to this size are not counted.
pub const SMALL: usize = 256 * 1024;

/// The default budget: room for ten 3 MB reviews at once.
pub const DEFAULT_BYTES: usize = 32 * 1024 * 1024;

/// The budget is counted in KiB (a semaphore permit each).
const UNIT: usize = 1024;

/// The budget shared by every worker.
#[derive(Debug, Clone)]
pub struct BodyMemory {
    permits: Arc<Semaphore>,
    /// In units; a reservation never asks for more, so every body can proceed.
    total: u32,
    in_use: Gauge,
}

/// Bytes of the budget held by one body until it is dropped (with the body
/// and the review made of it).
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    in_use: Gauge,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_use.dec_by(self.bytes);
    }
}

impl BodyMemory {
    /// A budget of `bytes` (at least one unit); `in_use` is the gauge that
    /// shows the bytes reserved.
    pub fn new(bytes: usize, in_use: Gauge) -> BodyMemory {
        let total = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        BodyMemory {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            in_use,
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> usize {
        self.total as usize * UNIT
    }

    /// Reserve `bytes` (capped at the whole budget) if they are free now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let units = self.units(bytes);
        let permit = self.permits.clone().try_acquire_many_owned(units).ok()?;
        Some(self.held(permit, units))
    }

    /// Reserve `bytes` (capped at the whole budget), waiting until they are
    /// free. Waiters are served in order, so a large body is not passed over
    /// forever by smaller ones.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let units = self.units(bytes);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the semaphore is never closed");
        self.held(permit, units)
    }

    fn units(&self, bytes: usize) -> u32 {
        (bytes.div_ceil(UNIT).min(self.total as usize) as u32).max(1)
    }

    fn held(&self, permit: OwnedSemaphorePermit, units: u32) -> Reservation {
        let bytes = i64::from(units) * UNIT as i64;
        self.in_use.inc_by(bytes);
        Reservation {
            _permit: permit,
            bytes,
            in_use: self.in_use.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: usize = 1024 * 1024;

    #[tokio::test]
    async fn reservations_are_counted_and_given_back_on_drop() {
        let gauge = Gauge::default();
        let memory = BodyMemory::new(8 * MIB, gauge.clone());
        assert_eq!(memory.bytes(), 8 * MIB);
        let a = memory.try_reserve(3 * MIB + 1).expect("free");
        assert_eq!(gauge.get(), (3 * MIB + UNIT) as i64, "rounded up to the unit");
        let b = memory.try_reserve(4 * MIB).expect("free");
        assert!(memory.try_reserve(MIB).is_none(), "only 1 MiB - 1 KiB left");
        drop(a);
        assert_eq!(gauge.get(), (4 * MIB) as i64);
        let c = memory.try_reserve(4 * MIB).expect("free again");
        drop((b, c));
        assert_eq!(gauge.get(), 0);
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_takes_all_of_it_and_still_proceeds() {
        let memory = BodyMemory::new(4 * MIB, Gauge::default());
        let whole = memory.try_reserve(7 * MIB).expect("capped at the budget");
        assert!(memory.try_reserve(1).is_none());
        drop(whole);
        assert!(memory.try_reserve(1).is_some());
    }

    #[tokio::test]
    async fn a_waiter_proceeds_when_memory_is_given_back() {
        let memory = BodyMemory::new(4 * MIB, Gauge::default());
        let first = memory.try_reserve(3 * MIB).unwrap();
        let waiting = {
            let memory = memory.clone();
            tokio::spawn(async move { memory.reserve(2 * MIB).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "3 + 2 MiB do not fit in 4");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("proceeds once the first is dropped")
            .unwrap();
        drop(second);
    }
}
