//! What happens when a task fails: pinbridge is never left up and deaf.
//!
//! The policy is *crash and be restarted*, not *restart the task*:
//!
//! - A panic anywhere (the SIP task, a TCP connection, a call, a room, the
//!   database thread, the HTTP server) is a bug, and the state it leaves is
//!   shared with other tasks (the user agent's transaction and dialog
//!   tables, the brute-force guard, a room's legs). Rebuilding that state in
//!   place is harder to get right than the original code, and a task
//!   restarted on half-updated state can do worse than stop (admit a caller,
//!   forget a lockout). So the binary installs [`exit_on_panic`]: the panic
//!   is logged with its location and a backtrace, and the process exits
//!   with [`EXIT_INTERNAL_ERROR`] (70, `EX_SOFTWARE`) at once. The service
//!   manager (systemd `Restart=on-failure`, see deploy/) starts a fresh
//!   process in well under a second; lockouts and verifications are in the
//!   database, so nothing an attacker could profit from is lost.
//! - A long-lived task that *returns* while the server is not shutting down
//!   (the UDP socket failed, the HTTP server stopped) is reported through
//!   [`TaskWatch`], and the binary shuts down gracefully (BYE to every
//!   call) and exits with the same status.
//!
//! Calls up at that moment are lost either way; a process that keeps
//! running with its SIP task dead loses every call after it, which is worse.

use std::panic::PanicHookInfo;

use tokio::sync::mpsc;

/// Exit status after an internal error (sysexits.h `EX_SOFTWARE`).
pub const EXIT_INTERNAL_ERROR: u8 = 70;

/// Installs the process-wide panic hook: log, then exit with
/// [`EXIT_INTERNAL_ERROR`]. For the binary; a library user (the in-process
/// tests) keeps Rust's default hook.
pub fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        report_panic(info);
        std::process::exit(i32::from(EXIT_INTERNAL_ERROR));
    }));
}

fn report_panic(info: &PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let location = info
        .location()
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    let backtrace = std::backtrace::Backtrace::force_capture();
    tracing::error!(
        thread,
        location = %location,
        message = %message,
        backtrace = %backtrace,
        "internal error: a task panicked; exiting with status {EXIT_INTERNAL_ERROR} so that the service manager restarts pinbridge"
    );
}

/// Which long-lived task ended, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnded {
    pub task: &'static str,
    /// True when it panicked (only seen without [`exit_on_panic`]).
    pub panicked: bool,
}

/// Collects the ends of long-lived tasks. Each is spawned through
/// [`TaskWatch::spawn`]; its end, normal or not, is reported on the
/// channel unless the server is shutting down (then the end is expected).
#[derive(Debug, Clone)]
pub struct TaskWatch {
    tx: mpsc::UnboundedSender<TaskEnded>,
}

impl TaskWatch {
    pub fn new() -> (TaskWatch, mpsc::UnboundedReceiver<TaskEnded>) {
        // Unbounded, and bounded by construction: each long-lived task
        // reports its end at most once, and there are a handful of them
        // (spawned at start-up, not per call or per packet).
        let (tx, rx) = mpsc::unbounded_channel();
        (TaskWatch { tx }, rx)
    }

    /// Spawns `fut` as the long-lived task `task`, and a watcher that
    /// reports its end. Aborting the returned handle (at shutdown) ends the
    /// watcher with it and reports nothing.
    pub fn spawn<F>(&self, task: &'static str, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            // Aborting the watcher drops this guard, which aborts the task.
            let mut inner = AbortOnDrop(tokio::spawn(fut));
            let ended = (&mut inner.0).await;
            let panicked = ended.as_ref().is_err_and(|e| e.is_panic());
            let cancelled = ended.as_ref().is_err_and(|e| e.is_cancelled());
            if !cancelled {
                let _ = tx.send(TaskEnded { task, panicked });
            }
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_a_task_that_returns_and_one_that_panics() {
        let (watch, mut ended) = TaskWatch::new();
        watch.spawn("quiet", async {});
        let first = ended.recv().await;
        assert_eq!(
            first,
            Some(TaskEnded {
                task: "quiet",
                panicked: false
            })
        );
        watch.spawn("broken", async { panic!("a bug") });
        let second = ended.recv().await;
        assert_eq!(
            second,
            Some(TaskEnded {
                task: "broken",
                panicked: true
            })
        );
    }

    #[tokio::test]
    async fn an_aborted_task_is_not_reported() {
        let (watch, mut ended) = TaskWatch::new();
        let (alive, gone) = tokio::sync::oneshot::channel::<()>();
        let h = watch.spawn("forever", async move {
            let _alive = alive;
            std::future::pending::<()>().await
        });
        tokio::task::yield_now().await;
        h.abort();
        let _ = h.await;
        // The task itself was aborted too (its end dropped `alive`).
        assert!(gone.await.is_err());
        drop(watch);
        assert_eq!(ended.recv().await, None);
    }
}
