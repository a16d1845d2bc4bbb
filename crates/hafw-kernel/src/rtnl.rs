//! Route-netlink connections: [`Rtnl`] (a handle plus the namespace it talks
//! to, for error messages) and [`Netns`], a thread that lives inside a named
//! namespace and runs netlink jobs there.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use nix::sched::{setns, CloneFlags};
use tokio::sync::{mpsc, oneshot};

use crate::error::in_ns;
use crate::{netns, Error, Result};

/// A route-netlink connection. Its socket belongs to the namespace of the
/// thread that opened it, whatever thread later uses it.
#[derive(Clone, Debug)]
pub struct Rtnl {
    handle: rtnetlink::Handle,
    ns: Option<Arc<str>>,
}

impl Rtnl {
    /// Opens a connection in the calling thread's namespace and spawns its
    /// driver on the current tokio runtime (an error outside one). This is
    /// what `hafw run` uses in its own namespace.
    pub fn connect() -> Result<Rtnl> {
        Self::connect_labelled(None)
    }

    fn connect_labelled(ns: Option<Arc<str>>) -> Result<Rtnl> {
        if tokio::runtime::Handle::try_current().is_err() {
            let e = std::io::Error::other("not called within a tokio runtime");
            return Err(Error::io(
                "open netlink socket",
                in_ns("rtnetlink", ns.as_deref()),
                e,
            ));
        }
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::io("open netlink socket", in_ns("rtnetlink", ns.as_deref()), e))?;
        tokio::spawn(conn);
        Ok(Rtnl { handle, ns })
    }

    /// The underlying rtnetlink handle, for requests this crate does not wrap.
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// The namespace's name, `None` for the namespace `connect` was called in.
    pub fn netns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// How errors name `what`: "interface eth0 in netns vpc".
    pub(crate) fn object(&self, what: impl std::fmt::Display) -> String {
        in_ns(what, self.netns())
    }
}

type Job = Box<dyn FnOnce(Rtnl) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A worker thread inside a named namespace, with a current-thread tokio
/// runtime and an [`Rtnl`] connection. Jobs sent with [`Netns::run`] run
/// there, concurrently with each other; the caller's runtime never calls
/// `setns`. The thread ends when the `Netns` (and its clones) are dropped.
#[derive(Clone, Debug)]
pub struct Netns {
    name: Arc<str>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl Netns {
    /// Starts the worker thread for existing namespace `name`. Blocks only
    /// until the new thread has entered the namespace and opened its netlink
    /// socket (well under a millisecond), so async code may call it directly.
    pub fn open(name: &str) -> Result<Netns> {
        let file = netns::open(name)?;
        let name: Arc<str> = Arc::from(name);
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let thread_name = name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let ns = thread_name;
                let started = (|| {
                    setns(&file, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::io("enter netns", format!("netns {ns}"), e.into()))?;
                    drop(file);
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::io("start runtime", format!("netns {ns}"), e))
                })();
                let runtime = match started {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    // The socket is created here, after setns, so it lives in `ns`.
                    let rtnl = match Rtnl::connect_labelled(Some(ns)) {
                        Ok(rtnl) => rtnl,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some(job) = queue.recv().await {
                        tokio::task::spawn_local(job(rtnl.clone()));
                    }
                });
            });
        if let Err(e) = spawned {
            return Err(Error::io("start worker thread", format!("netns {name}"), e));
        }
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Netns { name, jobs }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::WorkerGone {
                op: "open",
                ns: name.to_string(),
            }),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on the namespace's thread with its connection and returns
    /// its result. The future `f` returns need not be `Send`.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Rtnl) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let rx = self.submit(f)?;
        rx.await.map_err(|_| self.gone())?
    }

    /// [`Netns::run`] for callers outside any tokio runtime: blocks the
    /// calling thread until the job is done. Panics if called from within an
    /// async context, like `tokio`'s own blocking calls.
    pub fn run_blocking<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Rtnl) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let rx = self.submit(f)?;
        rx.blocking_recv().map_err(|_| self.gone())?
    }

    /// Queues `f` on the namespace's thread; its result comes on the receiver.
    fn submit<T, F, Fut>(&self, f: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(Rtnl) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |rtnl| {
            Box::pin(async move {
                let _ = tx.send(f(rtnl).await);
            })
        });
        self.jobs.send(job).map_err(|_| self.gone())?;
        Ok(rx)
    }

    fn gone(&self) -> Error {
        Error::WorkerGone {
            op: "run",
            ns: self.name.to_string(),
        }
    }
}
