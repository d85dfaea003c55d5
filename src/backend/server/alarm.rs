//! One clock alarm shared by many waits that need not fire exactly on time.
//!
//! `futures-timer` wakes its timer thread for every `Delay` made, a futex
//! wake-up per request when each queued request arms its own busy-timeout
//! backstop. A backstop only has to fire some time after its deadline, so
//! [`after`] hands every wait whose deadline falls within the same window
//! (its `slack`) one shared `Delay`: a steady stream of requests arms one
//! timer per window instead of one each.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::Shared;

/// A shared alarm: resolves once its time has come, for every clone.
pub(crate) type Alarm = Shared<futures_timer::Delay>;

/// The alarm armed last for each slack, and when it fires.
static ARMED: Mutex<Vec<(Duration, Instant, Alarm)>> = Mutex::new(Vec::new());

/// An alarm that fires no sooner than `deadline` and at most `slack` later.
pub(crate) fn after(deadline: Instant, slack: Duration) -> Alarm {
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    armed.retain(|(_, fires_at, _)| *fires_at > now);
    let reusable = armed.iter().find(|(of, fires_at, _)| {
        *of == slack && *fires_at >= deadline && *fires_at <= deadline + slack
    });
    if let Some((_, _, alarm)) = reusable {
        return alarm.clone();
    }
    let fires_at = deadline + slack;
    let alarm = futures_timer::Delay::new(fires_at.saturating_duration_since(now)).shared();
    armed.retain(|(of, _, _)| *of != slack);
    armed.push((slack, fires_at, alarm.clone()));
    alarm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_in_one_window_share_an_alarm_that_fires_after_each_deadline() {
        let slack = Duration::from_millis(40);
        let first = Instant::now() + Duration::from_millis(20);
        let second = first + Duration::from_millis(10);
        let (a, b) = (after(first, slack), after(second, slack));
        assert!(a.ptr_eq(&b), "deadlines 10 ms apart share one alarm");
        let later = after(first + slack + Duration::from_millis(1), slack);
        assert!(!later.ptr_eq(&a), "a deadline past the window gets its own");

        futures::executor::block_on(b);
        assert!(Instant::now() >= second, "fired before the later deadline");
        futures::executor::block_on(later);
        assert!(Instant::now() >= first + slack, "fired before its deadline");
    }
}
