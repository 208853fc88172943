//! Working through devices at a fixed rate: one device started per tick, a bounded number
//! in flight, each result handed back as it arrives.
//!
//! The caller decides after each result whether to go on. Stopping (on an error, or on
//! Ctrl-C) starts nothing new but lets the devices in flight finish, so every step AWS has
//! confirmed still reaches the caller and its manifest.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// What the caller wants after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep starting devices.
    Continue,
    /// Start no more (the ones in flight finish).
    Stop,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every item was started and finished.
    Done,
    /// The caller said [`Flow::Stop`].
    Stopped,
    /// Ctrl-C.
    Interrupted,
}

/// Starts `start(item)` for each item, at most `rate` per second and `max_in_flight` at a
/// time, and passes each output to `finished` in the order they finish.
pub async fn run<I, T, Fut>(
    items: Vec<I>,
    rate: f64,
    max_in_flight: usize,
    mut start: impl FnMut(I) -> Fut,
    mut finished: impl FnMut(T) -> Flow,
) -> Result<Ending>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    // After a pause (all slots busy) resume at the rate instead of in a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut items = items.into_iter().peekable();
    let mut tasks = JoinSet::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_armed = true;
    let mut starting = true;
    let mut ending = Ending::Done;
    loop {
        let more = starting && items.peek().is_some();
        if !more && tasks.is_empty() {
            return Ok(ending);
        }
        tokio::select! {
            signal = &mut ctrl_c, if ctrl_c_armed => {
                ctrl_c_armed = false;
                // Without a signal handler there is nothing to wait for; go on.
                if signal.is_ok() && starting {
                    starting = false;
                    ending = Ending::Interrupted;
                    eprintln!("Interrupted: finishing the {} device(s) in flight", tasks.len());
                }
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let out = joined.context("a device task failed")?;
                if finished(out) == Flow::Stop && starting {
                    starting = false;
                    ending = Ending::Stopped;
                }
            }
            _ = ticker.tick(), if more && tasks.len() < max_in_flight => {
                if let Some(item) = items.next() {
                    tasks.spawn(start(item));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn items_start_at_the_rate_and_all_finish() {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        let ending = run(
            (0..5).collect(),
            50.0,
            2,
            |i: u32| async move { i * 10 },
            |out| {
                seen.push(out);
                Flow::Continue
            },
        )
        .await
        .unwrap();
        assert_eq!(ending, Ending::Done);
        seen.sort();
        assert_eq!(seen, [0, 10, 20, 30, 40]);
        // Five starts at 50/s: the first at once, then four intervals of 20 ms.
        assert!(
            t0.elapsed() >= Duration::from_millis(80),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn a_stop_starts_nothing_more_but_finishes_what_is_in_flight() {
        let mut seen = Vec::new();
        let ending = run(
            (0..100).collect(),
            1000.0,
            4,
            |i: u32| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                i
            },
            |out| {
                seen.push(out);
                if out == 0 { Flow::Stop } else { Flow::Continue }
            },
        )
        .await
        .unwrap();
        assert_eq!(ending, Ending::Stopped);
        assert!(seen.contains(&0));
        assert!(seen.len() < 100, "{}", seen.len());
    }
}
