//! The node with a peer: the data plane comes up passive, the HA thread
//! decides, the executor promotes and demotes. On SIGTERM an active node
//! hands over first (the planned outage, not the unplanned one), then
//! withdraws what it added.
//!
//! Config sync: the policy's version is loaded at start and carried in
//! heartbeats; `hafw config apply` and policies from the peer go to the
//! config task ([`crate::config`]), which applies them one at a time.
//!
//! [`Paired::start`] runs the start-up steps in order: everything that can
//! be refused (the file, the key, the control socket) is checked before the
//! kernel changes; [`Paired::stop`] hands over and withdraws.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafw_ha::node::Command;
use hafw_kernel::{addr, Rtnl};
use hafw_model::render::node::NodePlan;
use hafw_model::Deployment;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::config::{self, ConfigEnv, ConfigInput, ConfigTask, ConfigView};
use crate::control::{self, Request};
use crate::dataplane::apply::{self, Applied};
use crate::dataplane::withdraw;
use crate::error::{ConfigError, DaemonError, KernelError, SetupError};
use crate::ha::{self, HaRequest};
use crate::log::Log;
use crate::ops::{self, metrics::Metrics};
use crate::status::{self, Status};
use crate::sync::{SyncHandle, SyncStatus};

/// The files a node runs from.
pub struct Paths<'a> {
    pub config: &'a Path,
    pub key_file: &'a Path,
    pub control: &'a Path,
    /// `--record`: the HA core's inputs and actions go to this file.
    pub record: Option<&'a Path>,
    /// `--audit-log`: the audit records' JSON-lines file.
    pub audit_log: &'a Path,
    /// Where the audit log's journal entries go (journald's socket).
    pub audit_journal: &'a Path,
    /// `--state-dir`: the rule-hit totals carried across restarts.
    pub state_dir: &'a Path,
    /// `--traffic-log`: the traffic log's JSON-lines file.
    pub traffic_log: &'a Path,
}

/// How the node is asked to run, besides its files.
pub struct Options {
    pub ha_profile: Option<hafw_model::spec::HaProfile>,
    pub api: Option<(std::net::SocketAddr, String)>,
    pub session_sync: String,
    /// Each ENI's link, as `hafw run` found it (for every later plan).
    pub names: hafw_model::render::node::IfNames,
}

/// `hafw sessions` lists at most this many entries.
const SESSIONS_CAP: usize = 1000;

/// How long a stopping node waits for its last audit records to be written.
const AUDIT_FLUSH: Duration = Duration::from_millis(500);

/// How long a SIGTERM waits for the HA thread to confirm the handover.
const HANDOVER_CONFIRM: Duration = Duration::from_secs(10);

pub fn run(dep: Deployment, plan: NodePlan, paths: Paths<'_>, opts: Options) -> ExitCode {
    let log = Log::new(&plan.node);
    let runtime = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let node = plan.node.clone();
    match runtime.block_on(serve(dep, plan, paths, opts, log.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Printed once, as every `hafw run` refusal is (the log goes to
            // the same standard error).
            eprintln!("error: hafw run: node {node}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    dep: Deployment,
    plan: NodePlan,
    paths: Paths<'_>,
    opts: Options,
    log: Log,
) -> Result<(), DaemonError> {
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| SetupError::io("cannot watch SIGTERM", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| SetupError::io("cannot watch SIGINT", e))?;
    let api = opts.api.clone();
    let node = Paired::start(dep, plan, paths, opts, log.clone()).await?;
    let _api = match node.serve_api(api) {
        Ok(api) => api,
        Err(e) => {
            // Nothing stays half-applied: hand back what start applied.
            let _ = node.stop().await;
            return Err(e);
        }
    };
    node.notify_when_ready();
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log.info(format!("{which}: handing over if active, then withdrawing"));
    node.stop().await
}

/// What the traffic log takes from the node: its own addresses (the
/// floating ones are not: DNAT'd sessions are addressed to them), the
/// rules' actions, the session-sync mark.
fn traffic_settings(dep: &Deployment, plan: &NodePlan, file: &Path) -> ops::traffic::Settings {
    use hafw_model::spec::Action;
    ops::traffic::Settings {
        node: plan.node.clone(),
        file: file.to_path_buf(),
        max_bytes: ops::traffic::DEFAULT_MAX_BYTES,
        logging: plan.logging.clone(),
        local: plan.interfaces.iter().map(|i| i.address.0).collect(),
        ignore_mark: crate::sync::INJECT_MARK,
        rule_actions: dep
            .policy
            .rules
            .iter()
            .map(|r| {
                let a = match r.action {
                    Action::Accept => "accept",
                    Action::Drop => "drop",
                    Action::Reject => "reject",
                };
                (r.name.clone(), a)
            })
            .collect(),
    }
}

/// A running paired node: what its threads and tasks share.
struct Paired {
    plan: NodePlan,
    log: Log,
    nl: Rtnl,
    metrics: Metrics,
    control_path: PathBuf,
    /// What every apply of this run changed, for the withdraw at shutdown.
    applied: Arc<Mutex<Applied>>,
    ha: mpsc::UnboundedSender<HaRequest>,
    view: StatusView,
    executor: tokio::task::JoinHandle<()>,
    audit: ops::audit::Audit,
    traffic: ops::traffic::TrafficLog,
}

impl Paired {
    async fn start(
        dep: Deployment,
        plan: NodePlan,
        paths: Paths<'_>,
        opts: Options,
        log: Log,
    ) -> Result<Paired, DaemonError> {
        let config_path = std::path::absolute(paths.config).map_err(|e| ConfigError::File {
            path: paths.config.into(),
            what: "resolve the path",
            source: e,
        })?;
        let start = config::startup(&config_path, &plan.node, &log)?;
        // Everything that can be refused is checked before the kernel changes.
        let setup = ha::setup::resolve(&plan, paths.key_file).map_err(SetupError::Missing)?;
        let capacity = crate::dataplane::sessions::capacity(&plan).map_err(SetupError::Missing)?;
        let (ha1_sealer, sealer) = ha::thread::new_sealers(&setup)?;
        let listener = control::bind(paths.control).map_err(SetupError::Missing)?;
        let metrics = Metrics::new();
        let hooks = ops::hooks::Hooks::start(&plan.node, &plan.hooks, Some(metrics.clone()), &log)
            .map_err(SetupError::Missing)?;
        let audit = ops::audit::Audit::start(
            &plan.node,
            ops::audit::Sinks {
                file: paths.audit_log.to_path_buf(),
                max_bytes: ops::audit::DEFAULT_MAX_BYTES,
                journal: Some(paths.audit_journal.to_path_buf()),
            },
            &log,
        )
        .map_err(SetupError::Missing)?;
        let traffic = ops::traffic::TrafficLog::start(
            traffic_settings(&dep, &plan, paths.traffic_log),
            metrics.clone(),
            &log,
        )
        .map_err(SetupError::Missing)?;
        let nl = Rtnl::connect().map_err(|e| KernelError::Driver {
            step: "connect to netlink",
            source: e,
        })?;
        let hits = crate::hits::Hits::new(
            &plan.node,
            nl.netns(),
            paths.state_dir,
            hafw_model::render::nft::counted::counted(&dep),
            &log,
        );
        // The table left by a previous run is replaced (or kept, when it
        // lists the same): its counters are carried on first.
        hits.before_replace();
        let applied = apply::apply(&nl, &plan, false, &log).await;
        hits.after_replace(None, applied.is_err());
        let applied = applied.map_err(KernelError::Apply)?;
        hits.spawn_sampler().map_err(SetupError::Missing)?;
        let sessions = crate::dataplane::sessions::apply(capacity, &log);
        let applied = Arc::new(Mutex::new(applied));
        // A node restarted after a crash may still hold the floating
        // addresses from its last life; a passive must not answer for them.
        remove_floating(&nl, &plan).await;
        log.info(format!(
            "data plane up as passive; HA with {} over {} path(s), heartbeat {} ms x {}",
            setup.peer_name,
            setup.paths.len(),
            plan.ha.timers.heartbeat_interval_ms,
            plan.ha.timers.miss_count
        ));

        let timelines: ha::Timelines = Arc::new(Mutex::new(Vec::new()));
        let (peer_cfg_tx, peer_cfg_rx) = mpsc::unbounded_channel();
        let sync = start_sync(
            &dep,
            &plan,
            &setup,
            SyncStart {
                sealer: &sealer,
                mode: &opts.session_sync,
                config: Some((start.version, start.policy.clone().into_bytes())),
                config_actions: peer_cfg_tx,
                max_sessions: sessions.conntrack_max as usize,
                hits: hits.clone(),
            },
            &log,
        );
        let sync = match sync {
            Ok(s) => s,
            Err(e) => return Err(undo(&nl, &applied, &log, e).await),
        };
        let shared = ha::thread::Shared {
            timelines: timelines.clone(),
            metrics: metrics.clone(),
            log: log.clone(),
        };
        let handles = match ha::thread::start(
            setup,
            ha1_sealer,
            shared,
            paths.record.map(Path::to_path_buf),
        ) {
            Ok(h) => h,
            Err(e) => return Err(undo(&nl, &applied, &log, e.into()).await),
        };
        let _ = handles.requests.send(HaRequest::SetConfigVersion {
            version: start.version,
            hash: start.hash,
        });
        log.info(format!(
            "policy version {} ({}) from {}",
            start.version,
            &config::hex(&start.hash)[..8],
            config_path.display()
        ));
        if let Some(s) = sync.clone() {
            forward_peer_config(handles.peer_config.clone(), s);
        }

        let config_view = Arc::new(Mutex::new(ConfigView::default()));
        let (config_tx, config_rx) = mpsc::unbounded_channel();
        let env = ConfigEnv {
            config_path: config_path.clone(),
            node: plan.node.clone(),
            ha_profile: opts.ha_profile,
            names: opts.names.clone(),
            nl: nl.clone(),
            log: log.clone(),
            ha: handles.requests.clone(),
            sync: sync.clone(),
            applied: applied.clone(),
            view: config_view.clone(),
            audit: audit.clone(),
            hits: Some(hits.clone()),
        };
        let task = ConfigTask::new(env, start, plan.clone());
        tokio::spawn(task.run(config_rx, peer_cfg_rx));

        let view = StatusView {
            ha: handles.requests.clone(),
            sync: sync.as_ref().map(|s| s.status.clone()),
            config: config_view,
            audit: audit.clone(),
            hooks: hooks.clone(),
        };
        let dispatch = Dispatch {
            view: view.clone(),
            config: config_tx,
            audit: audit.clone(),
            hits: hits.clone(),
        };
        let control = control::serve(listener, move |caller, req| dispatch.handle(caller, req));

        let monitor_every =
            Duration::from_millis(u64::from(plan.ha.timers.heartbeat_interval_ms).clamp(5, 50));
        tokio::spawn(ha::monitor::links(
            nl.clone(),
            plan.clone(),
            monitor_every,
            handles.requests.clone(),
            log.clone(),
        ));
        let executor = ha::executor::Executor {
            nl: nl.clone(),
            plan: plan.clone(),
            garp: plan.ha.garp.clone(),
            timelines,
            metrics: metrics.clone(),
            sync: sync.clone(),
            log: log.clone(),
            audit: audit.clone(),
            hooks,
        };
        let executor = tokio::spawn(executor.run(handles.actions));
        let node = Paired {
            plan,
            log,
            nl,
            metrics,
            control_path: paths.control.into(),
            applied,
            ha: handles.requests,
            view,
            executor,
            audit,
            traffic,
        };
        node.feed_metrics(control, hits);
        node.watch_alarms();
        Ok(node)
    }

    /// Session sync's figures and this node's policy version into the
    /// metrics, twice a second (the peer's version comes from the HA
    /// thread's heartbeats).
    fn feed_metrics(&self, control: Arc<control::Counters>, hits: crate::hits::Hits) {
        let (metrics, view) = (self.metrics.clone(), self.view.clone());
        tokio::spawn(async move {
            loop {
                metrics.rule_hits(&hits.own_totals());
                for (reason, total) in control.refused() {
                    metrics.control_refused(reason, total);
                }
                if let Some(st) = view.sync_status() {
                    metrics.sessions(status::sessions(&st), st.synced_entries);
                    metrics.sync_lag(st.lag_ms.unwrap_or(0.0) / 1000.0);
                    metrics.resyncs_total(st.resyncs);
                }
                if let Ok(v) = view.config.lock() {
                    metrics.config_version(v.version);
                }
                metrics.audit_dropped_total(view.audit.dropped());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// The pair's alarms ([`ops::alarms`]) into the metrics twice a
    /// second, and into the log once when each begins and once when it
    /// ends.
    fn watch_alarms(&self) {
        let (metrics, view, log) = (self.metrics.clone(), self.view.clone(), self.log.clone());
        tokio::spawn(async move {
            let mut alarms = ops::alarms::AlarmLog::default();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(s) = view.status_async().await else {
                    continue;
                };
                metrics.alarm("no_standby", s.no_standby.is_some());
                metrics.handover_ready(s.handover.as_ref().is_some_and(|h| h.ready));
                for change in alarms.update(&s) {
                    match change {
                        ops::alarms::Change::Begins(t) => log.warn(format!("alarm: {t}")),
                        ops::alarms::Change::Ends(t) => log.info(t),
                    }
                }
            }
        });
    }

    /// The read-only status API and metrics, when `--api` is given.
    fn serve_api(
        &self,
        api: Option<(std::net::SocketAddr, String)>,
    ) -> Result<Option<ops::api::Server>, DaemonError> {
        let Some((addr, token)) = api else {
            return Ok(None);
        };
        let view = self.view.clone();
        let status = move || match view.status() {
            Ok(s) => s.to_json(),
            Err(e) => serde_json::json!({ "error": e.to_string() }).to_string() + "\n",
        };
        let server = ops::api::serve(addr, token, status, self.metrics.clone())
            .map_err(SetupError::Missing)?;
        self.log.info(format!(
            "status API on http://{}/status and /metrics",
            server.local_addr()
        ));
        Ok(Some(server))
    }

    /// Ready (systemd's READY=1) only once this node could take over with
    /// nothing lost: active, or holding the peer's full session table and
    /// its policy version. A restarted passive says so only then.
    fn notify_when_ready(&self) {
        let started = std::time::Instant::now();
        let (log, sync) = (self.log.clone(), self.view.sync.clone());
        if sync.is_some() {
            let _ = ops::notify::status("waiting for the peer's session table and policy version");
        }
        tokio::spawn(async move {
            loop {
                let ready = sync
                    .as_ref()
                    .is_none_or(|s| s.lock().map(|g| g.ready).unwrap_or(false));
                if ready {
                    let _ = ops::notify::ready();
                    let _ = ops::notify::status("serving");
                    log.info(format!(
                        "ready {} ms after start",
                        started.elapsed().as_millis()
                    ));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    /// Hand over if active, then withdraw everything this run added.
    async fn stop(self) -> Result<(), DaemonError> {
        let _ = ops::notify::stopping();
        let (tx, rx) = oneshot::channel();
        let _ = self.ha.send(HaRequest::Shutdown { reply: tx });
        match tokio::time::timeout(HANDOVER_CONFIRM, rx).await {
            Ok(Ok(state)) => self.log.info(format!("HA stopped as {}", state.as_str())),
            _ => self
                .log
                .warn("HA did not confirm the handover in time; withdrawing anyway"),
        }
        // Let the executor finish a demotion already queued.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.executor.abort();
        // The executor's floating addresses are not in the run's record;
        // added to it, withdraw removes them after forwarding goes off and
        // before the table goes (architecture.md, "Never forwarding
        // without the ruleset").
        let mut applied = take(&self.applied);
        held_floating(&self.nl, &self.plan, &mut applied).await;
        let problems = withdraw::withdraw(&self.nl, applied, &self.log).await;
        let _ = std::fs::remove_file(&self.control_path);
        // The handover's transitions are the last records: written before
        // the process ends.
        let audit = self.audit.clone();
        let _ = tokio::task::spawn_blocking(move || audit.flush(AUDIT_FLUSH)).await;
        self.traffic.stop();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(KernelError::Withdraw { problems }.into())
        }
    }
}

/// A start-up step failed after the data plane was applied: withdraw it, so
/// a refused start leaves the kernel as it found it (but for forwarding,
/// which stays off: a node that did not start must not route unfiltered),
/// and say what could not be undone.
async fn undo(nl: &Rtnl, applied: &Mutex<Applied>, log: &Log, e: DaemonError) -> DaemonError {
    let problems = withdraw::withdraw(nl, take(applied), log).await;
    if problems.is_empty() {
        return e;
    }
    let also: String = problems.iter().map(|p| format!("\n  also: {p}")).collect();
    SetupError::Missing(format!("{e}{also}")).into()
}

fn take(applied: &Mutex<Applied>) -> Applied {
    applied
        .lock()
        .map(|mut a| std::mem::take(&mut *a))
        .unwrap_or_default()
}

/// Adds to `applied` the plan's floating addresses this node holds now.
async fn held_floating(nl: &Rtnl, plan: &NodePlan, applied: &mut Applied) {
    for f in &plan.floating {
        let net = apply::floating_net(f);
        let held = addr::list(nl, &f.ifname)
            .await
            .is_ok_and(|nets| nets.contains(&net));
        let entry = (f.ifname.clone(), net);
        if held && !applied.floating_added.contains(&entry) {
            applied.floating_added.push(entry);
        }
    }
}

async fn remove_floating(nl: &Rtnl, plan: &NodePlan) {
    for f in &plan.floating {
        let _ = addr::delete(nl, &f.ifname, apply::floating_net(f)).await;
    }
}

/// The peer's policy version and role, from the HA thread's heartbeats, to
/// config sync, which offers ours when the peer is behind, and to session
/// and config sync, which take only an active peer's.
fn forward_peer_config(
    mut peer_config: tokio::sync::watch::Receiver<Option<ha::thread::PeerHeard>>,
    sync: Arc<SyncHandle>,
) {
    tokio::spawn(async move {
        while peer_config.changed().await.is_ok() {
            let seen = peer_config.borrow_and_update().clone();
            if let Some((v, h, active, paused)) = seen {
                // The pause and the role before the version: what the peer
                // sends next is judged by them.
                let pause = sync.config(crate::sync::SyncCmd::PauseConfig(paused.is_some()));
                let role = sync.config(crate::sync::SyncCmd::PeerActive(active));
                if pause.is_err()
                    || role.is_err()
                    || sync.config(crate::sync::SyncCmd::PeerConfig(v, h)).is_err()
                {
                    return;
                }
            }
        }
    });
}

/// Where the node's status comes from: the HA thread (asked), session
/// sync and the config task (shared snapshots).
#[derive(Clone)]
struct StatusView {
    ha: mpsc::UnboundedSender<HaRequest>,
    sync: Option<Arc<Mutex<SyncStatus>>>,
    config: Arc<Mutex<ConfigView>>,
    audit: ops::audit::Audit,
    hooks: ops::hooks::Hooks,
}

impl StatusView {
    fn sync_status(&self) -> Option<SyncStatus> {
        self.sync
            .as_ref()
            .and_then(|s| s.lock().ok().map(|g| g.clone()))
    }

    /// Asks the HA thread and adds sync's and config's parts. Blocking: runs
    /// on the control and API threads, never on the runtime.
    fn status(&self) -> Result<Status, DaemonError> {
        let (tx, rx) = oneshot::channel();
        self.ha
            .send(HaRequest::Status { reply: tx })
            .map_err(|_| SetupError::Stopped("HA"))?;
        let s = rx.blocking_recv().map_err(|_| SetupError::Stopped("HA"))?;
        Ok(self.complete(s))
    }

    /// [`Self::status`] for a task on the runtime.
    async fn status_async(&self) -> Result<Status, DaemonError> {
        let (tx, rx) = oneshot::channel();
        self.ha
            .send(HaRequest::Status { reply: tx })
            .map_err(|_| SetupError::Stopped("HA"))?;
        let s = rx.await.map_err(|_| SetupError::Stopped("HA"))?;
        Ok(self.complete(s))
    }

    /// The HA thread's part, with sync's, config's and the pair's alarms.
    fn complete(&self, mut s: Status) -> Status {
        let view = self.config.lock().map(|v| v.clone()).unwrap_or_default();
        status::add_sync(&mut s, self.sync_status().as_ref(), &view);
        ops::alarms::add(&mut s, std::time::SystemTime::now());
        s.audit_dropped = self.audit.dropped();
        if self.hooks.on() {
            s.hooks = (self.hooks.totals().iter())
                .map(|(r, n)| (r.to_string(), *n))
                .collect();
        }
        s
    }
}

/// Answers the control socket's requests.
struct Dispatch {
    view: StatusView,
    config: mpsc::UnboundedSender<ConfigInput>,
    audit: ops::audit::Audit,
    hits: crate::hits::Hits,
}

impl Dispatch {
    fn handle(&self, caller: control::Caller, req: Request) -> Result<String, String> {
        match req {
            Request::ConfigApply {
                path,
                confirm_within,
                comment,
            } => self.ask_config(|reply| ConfigInput::Apply {
                path,
                caller,
                comment,
                confirm_within,
                reply,
            })?,
            Request::ConfigConfirm => {
                self.ask_config(|reply| ConfigInput::Confirm { caller, reply })?
            }
            Request::ConfigRollback(version) => self.ask_config(|reply| ConfigInput::Rollback {
                version,
                caller,
                reply,
            })?,
            Request::ConfigDiff { from, to } => {
                self.ask_config(|reply| ConfigInput::Diff { from, to, reply })?
            }
            Request::ConfigHistory => self.ask_config(|reply| ConfigInput::History { reply }),
            Request::ConfigShow => {
                let (tx, rx) = oneshot::channel();
                self.config
                    .send(ConfigInput::Show { reply: tx })
                    .map_err(|_| "the config task has stopped".to_string())?;
                rx.blocking_recv()
                    .map_err(|_| "the config task did not answer".to_string())
            }
            Request::Sessions { json, filter } => {
                // The passive's sync cache is what a promotion would install.
                let cache = self
                    .view
                    .sync_status()
                    .and_then(|st| (!st.role_active).then_some(st.sessions_known));
                crate::sync::listing(filter.as_deref(), json, cache, SESSIONS_CAP)
                    .map_err(|e| e.to_string())
            }
            Request::Rules { json } => {
                // Fresh figures: a sample now, not only the sampler's last.
                self.hits.sample_now();
                Ok(self.hits.report(json))
            }
            Request::Status => Ok(self.view.status().map_err(|e| e.to_string())?.to_string()),
            Request::StatusJson => Ok(self.view.status().map_err(|e| e.to_string())?.to_json()),
            Request::Suspend => self.audited("suspend", caller, Command::Suspend),
            Request::Resume => self.audited("resume", caller, Command::Resume),
        }
    }

    /// A command with its audit record: the HA core's answer is the what
    /// (it says whether the state changed); a core that did not answer is
    /// the error.
    fn audited(
        &self,
        event: &str,
        caller: control::Caller,
        cmd: Command,
    ) -> Result<String, String> {
        let r = self.command(cmd);
        let (what, result) = match &r {
            Ok(body) => (body.trim().to_string(), Ok(())),
            Err(e) => (String::new(), Err(e.clone())),
        };
        self.audit
            .record(event, ops::audit::Who::Uid(caller.uid), what, result);
        r
    }

    /// One request to the config task and its answer.
    fn ask_config<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ConfigInput,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.config
            .send(make(tx))
            .map_err(|_| "the config task has stopped".to_string())?;
        rx.blocking_recv()
            .map_err(|_| "the config task did not answer".to_string())
    }

    fn command(&self, cmd: Command) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.view
            .ha
            .send(HaRequest::Command { cmd, reply: tx })
            .map_err(|_| "the HA thread has stopped".to_string())?;
        let body = rx
            .blocking_recv()
            .map_err(|_| "the HA thread did not answer".to_string())?;
        Ok(body)
    }
}

/// What session sync starts from, besides the plan.
struct SyncStart<'a> {
    sealer: &'a Arc<Mutex<hafw_ha::wire::KindSealer>>,
    mode: &'a str,
    /// The persisted policy (version, bytes).
    config: Option<(u64, Vec<u8>)>,
    config_actions: mpsc::UnboundedSender<hafw_ha::config_sync::ConfigAction>,
    /// The sync cache's bound (`dataplane::sessions::Applied`).
    max_sessions: usize,
    hits: crate::hits::Hits,
}

/// Session and config sync: over the HA2 interface, on the HA port, TCP.
fn start_sync(
    dep: &Deployment,
    plan: &NodePlan,
    setup: &ha::setup::Setup,
    start: SyncStart<'_>,
    log: &Log,
) -> Result<Option<Arc<SyncHandle>>, DaemonError> {
    use hafw_ha::sessions::Mode;
    let mode = match start.mode {
        "off" => return Ok(None),
        "commit" => Mode::Commit,
        _ => Mode::Mirror,
    };
    let ha2 = plan
        .ha
        .paths
        .iter()
        .find(|p| p.role == hafw_model::spec::EniRole::Ha2);
    let Some((local, Some(peer))) = ha2.map(|p| (p.local, p.peer)) else {
        log.info("session sync off: no HA2 path in policy.ha.paths");
        return Ok(None);
    };
    let peer_id = plan.ha.peer_id.unwrap_or(0);
    let sync_setup = crate::sync::SyncSetup {
        local: std::net::SocketAddr::new(local.0.into(), plan.ha.port),
        peer: std::net::SocketAddr::new(peer.0.into(), plan.ha.port),
        node_id: setup.config.node_id,
        peer_id,
        mode,
        config: start.config,
        config_actions: start.config_actions,
        node_addresses: node_addresses(dep, plan),
        max_sessions: start.max_sessions,
        hits: Some(start.hits),
    };
    let handle = crate::sync::start(
        sync_setup,
        start.sealer.clone(),
        setup.key.clone(),
        log.clone(),
    )?;
    log.info(format!(
        "session sync ({mode:?}) over HA2 {local} <-> {peer}"
    ));
    Ok(Some(Arc::new(handle)))
}

/// Every interface address of this node and its peer (not the floating
/// ones, which carry the sessions that must be synced).
fn node_addresses(dep: &Deployment, plan: &NodePlan) -> Vec<std::net::Ipv4Addr> {
    let peer = plan
        .peer
        .as_ref()
        .and_then(|p| hafw_model::render::node::plan(dep, p).ok());
    std::iter::once(plan)
        .chain(peer.as_ref())
        .flat_map(|p| p.interfaces.iter().map(|i| i.address.0))
        .collect()
}
