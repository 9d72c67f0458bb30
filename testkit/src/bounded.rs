//! A test run within a time limit, so that a hang fails the test instead
//! of stalling the suite.

use std::panic;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `test` on a thread of its own (named after the calling thread,
/// which the test harness names after the test) and fails if it takes
/// longer than `limit`; a panic in `test` is the test's failure.
pub fn bounded(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let name = thread::current().name().unwrap_or("test").to_owned();
    let (done, finished) = mpsc::channel();
    let body = thread::Builder::new()
        .name(name)
        .spawn(move || {
            test();
            let _ = done.send(());
        })
        .expect("a thread for the test");
    match finished.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {limit:?}")
        }
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(payload) = body.join() {
                panic::resume_unwind(payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_within_the_limit_passes() {
        bounded(Duration::from_secs(5), || assert_eq!(1 + 1, 2));
    }

    #[test]
    #[should_panic(expected = "inside the test")]
    fn a_panic_in_the_test_is_its_failure() {
        bounded(Duration::from_secs(5), || panic!("inside the test"));
    }

    #[test]
    #[should_panic(expected = "did not finish within")]
    fn a_test_past_the_limit_fails() {
        let (_keep, wait) = mpsc::channel::<()>();
        bounded(Duration::from_millis(50), move || {
            let _ = wait.recv();
        });
    }
}
