//! The daemon's own threads (HA, sync): each runs a current-thread runtime
//! of its own, so nothing another thread does can delay it, and reports
//! whether its start-up worked before [`spawn`] returns, so a refused
//! socket or setting stops `hafw run` instead of a thread dying unseen.

use std::future::Future;
use std::sync::mpsc;

use crate::error::SetupError;

/// How a thread's body reports its start-up; dropping it unsent reads as
/// the thread having stopped.
pub struct Started<E>(mpsc::Sender<Result<(), E>>);

impl<E> Started<E> {
    pub fn ok(&self) {
        let _ = self.0.send(Ok(()));
    }

    pub fn fail(&self, e: E) {
        let _ = self.0.send(Err(e));
    }
}

/// Starts thread `name` running `body` on its own runtime; waits for the
/// body's report.
pub fn spawn<E, F, Fut>(name: &'static str, body: F) -> Result<(), E>
where
    E: From<SetupError> + Send + 'static,
    F: FnOnce(Started<E>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(
                        SetupError::io(format!("start the {name} runtime"), e).into()
                    ));
                    return;
                }
            };
            rt.block_on(body(Started(tx)));
        })
        .map_err(|e| SetupError::io(format!("start the {name} thread"), e))?;
    match rx.recv() {
        Ok(r) => r,
        Err(_) => Err(SetupError::Stopped(name).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reaches_the_caller_and_a_silent_body_is_a_stopped_thread() {
        let ok: Result<(), SetupError> = spawn("t-ok", |s| async move { s.ok() });
        assert!(ok.is_ok());
        let failed: Result<(), SetupError> = spawn("t-fail", |s| async move {
            s.fail(SetupError::Missing("no key".into()))
        });
        assert_eq!(failed.unwrap_err().to_string(), "no key");
        let silent: Result<(), SetupError> = spawn("t-silent", |s| async move { drop(s) });
        assert_eq!(
            silent.unwrap_err().to_string(),
            "the t-silent thread has stopped"
        );
    }
}
