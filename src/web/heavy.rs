//! A budget of its own for reads that walk the whole sharing graph (a user's reach): a few
//! at a time, the rest answered `503` after a short wait, so a storm of them can neither
//! take every database connection and blocking thread from the other pages nor pile up
//! whole-graph copies in memory.

use std::time::Duration;

use tokio::sync::Semaphore;

use super::error::WebError;

/// At most `slots` heavy reads at once; a read waits at most `wait` for a slot.
#[derive(Debug)]
pub struct HeavyReads {
    slots: Semaphore,
    wait: Duration,
}

impl HeavyReads {
    /// A budget of `slots` concurrent heavy reads, each waiting at most `wait` for a slot.
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            slots: Semaphore::new(slots.max(1)),
            wait,
        }
    }

    /// Runs `read` (on the blocking pool, through `on_db`) once a slot is free;
    /// [`WebError::Busy`] when none came free within the wait.
    pub async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> Result<T, WebError> + Send + 'static,
    ) -> Result<T, WebError> {
        let _slot = tokio::time::timeout(self.wait, self.slots.acquire())
            .await
            .map_err(|_| WebError::Busy("working out where shared data goes"))?
            .map_err(|e| WebError::Internal(e.to_string()))?;
        super::on_db(read).await?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[actix_rt::test]
    async fn reads_past_the_budget_are_answered_busy_and_the_budget_comes_back() {
        let heavy = Arc::new(HeavyReads::new(2, Duration::from_millis(200)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        // Async on this side: the test's runtime has one thread, which must not block.
        let (started, mut running) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut slow = Vec::new();
        for _ in 0..2 {
            let (heavy, hold, started) = (Arc::clone(&heavy), Arc::clone(&hold), started.clone());
            slow.push(actix_rt::spawn(async move {
                heavy
                    .run(move || {
                        started.send(()).unwrap();
                        hold.lock().unwrap().recv().unwrap();
                        Ok(())
                    })
                    .await
            }));
        }
        running.recv().await.unwrap();
        running.recv().await.unwrap();
        let third = heavy.run(|| Ok(3)).await;
        assert!(matches!(third, Err(WebError::Busy(_))), "{third:?}");
        release.send(()).unwrap();
        release.send(()).unwrap();
        for s in slow {
            s.await.unwrap().unwrap();
        }
        assert_eq!(heavy.run(|| Ok(4)).await.unwrap(), 4);
    }
}
