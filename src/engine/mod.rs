//! One full pass of the agent's work: reconcile panel.ini, poll the store, run the jobs one
//! at a time in the order listed, deliver results, report. `sync` runs one pass; the daemon
//! runs the same steps, polling outside the engine's lock so file repairs and status never
//! wait for a held long-poll.
//!
//! - [`panel`]: the desired panel.ini values and their enforcement;
//! - [`persisted`]: the last instructions and ETag, kept across restarts.

pub mod panel;
pub mod persisted;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::central::{
    http::HttpTransport, parse_job, spool::SpoolTransport, CentralError, Job, JobKind, JobResult, ParsedJob,
    PollOutcome, PollRequest, RawInstructions, Report, ReportPanelIni, ResultStatus, Transport,
};
use crate::clock::{rfc3339, unix_secs, Clock};
use crate::config::{CentralUrl, Config};
use crate::journal::{Journal, JournalError, MAX_ATTEMPTS};
use crate::plesk::Plesk;
use crate::runner::{CommandOutput, Runner};
use crate::status;

pub use panel::{PanelKeeper, Reconcile};

/// A result waiting longer than this for delivery makes the agent degraded.
pub const DELIVERY_WARN_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot use the state directory {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// What the engine needs from outside; tests replace each.
#[derive(Clone)]
pub struct Deps {
    pub clock: Arc<dyn Clock>,
    pub runner: Arc<dyn Runner>,
    /// None: built from the config.
    pub transport: Option<Arc<dyn Transport>>,
}

impl Deps {
    pub fn real() -> Self {
        Deps {
            clock: Arc::new(crate::clock::SystemClock),
            runner: Arc::new(crate::runner::ProcessRunner),
            transport: None,
        }
    }
}

/// The connection to the store, each state carrying what it knows (the shape of
/// zincati's `UpdateAgentState`): counters live in the state they belong to, so a healthy
/// connection cannot have a failure count nor a failing one lose its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// No poll yet, or no store configured.
    Idle,
    /// The last poll, at `last_poll_at`, was answered.
    Healthy { last_poll_at: SystemTime },
    /// `failures` polls in a row failed, the last at `last_poll_at` with `last_error`.
    Failing {
        kind: PollFailure,
        failures: u32,
        last_error: String,
        last_poll_at: SystemTime,
    },
}

/// How the last poll failed, for `status`' `central.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollFailure {
    /// Network, status or body: retried with backoff.
    BackingOff,
    /// 401/403 or an unusable token file.
    AuthFailing,
    /// 404: the store does not know this host.
    UnknownHost,
    /// No token yet; the enroll key was refused or cannot be used (contract 5.5).
    Enrolling,
}

impl ConnState {
    /// `central.state` in `status`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnState::Idle => "idle",
            ConnState::Healthy { .. } => "healthy",
            ConnState::Failing { kind, .. } => match kind {
                PollFailure::BackingOff => "backing_off",
                PollFailure::AuthFailing => "auth_failing",
                PollFailure::UnknownHost => "unknown_host",
                PollFailure::Enrolling => "enrolling",
            },
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        match self {
            ConnState::Failing { failures, .. } => *failures,
            _ => 0,
        }
    }

    pub fn last_error(&self) -> Option<&str> {
        match self {
            ConnState::Failing { last_error, .. } => Some(last_error),
            _ => None,
        }
    }

    pub fn last_poll_at(&self) -> Option<SystemTime> {
        match self {
            ConnState::Idle => None,
            ConnState::Healthy { last_poll_at } | ConnState::Failing { last_poll_at, .. } => Some(*last_poll_at),
        }
    }

    /// Whether the last poll was answered; None before the first.
    pub fn last_ok(&self) -> Option<bool> {
        match self {
            ConnState::Idle => None,
            ConnState::Healthy { .. } => Some(true),
            ConnState::Failing { .. } => Some(false),
        }
    }
}

/// What one pass achieved; `failures` is empty when all went well.
#[derive(Debug, Clone, Default)]
pub struct PassOutcome {
    pub failures: Vec<String>,
    /// Jobs whose command ran in this pass.
    pub jobs_run: usize,
}

impl PassOutcome {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Builds the transport the config names (None: no store).
pub fn transport_for(cfg: &Config) -> Result<Option<Arc<dyn Transport>>, CentralError> {
    Ok(match &cfg.central.url {
        CentralUrl::None => None,
        // No token yet: enroll first (contract 5.5), then the same HTTP transport.
        CentralUrl::Http(_) if crate::central::enroll::token_missing(&cfg.central.token_file) => {
            match crate::central::enroll::EnrollFiles::of(cfg) {
                Some(files) => Some(Arc::new(crate::central::enroll::EnrollingTransport::new(files))),
                None => None,
            }
        }
        CentralUrl::Http(base) => Some(Arc::new(HttpTransport::new(
            base,
            &cfg.central.host_id,
            &cfg.central.token_file,
        )?)),
        CentralUrl::Spool(dir) => Some(Arc::new(SpoolTransport::new(dir.clone()))),
    })
}

/// The engine's own part of `status`, taken while the engine is free. The daemon keeps the
/// last one for while a job holds the engine; [`EngineView::status`] is the one place a
/// status is built, from it, the live panel.ini keeper and what the daemon knows.
#[derive(Debug, Clone)]
pub struct EngineView {
    central: status::Central,
    push_listen: Option<String>,
    plesk: status::Plesk,
    undelivered_results: u64,
    recent: Vec<status::RecentJob>,
    /// Listed before panel.ini's problems; `job_problems` after them.
    poll_problem: Option<String>,
    job_problems: Vec<String>,
}

/// What only the running daemon knows, for `status`.
#[derive(Debug, Clone, Default)]
pub struct DaemonFacts {
    /// None: no daemon runs (`sync`).
    pub daemon: Option<status::Daemon>,
    pub push_accepted: u64,
    pub push_rejected: u64,
    /// The daemon's own problems (a push listener that could not start).
    pub problems: Vec<String>,
}

impl EngineView {
    /// One sentence per reason the agent is degraded (contract section 8), in the order
    /// poll, panel.ini, jobs, then `extra`.
    pub fn problems(&self, panel: &PanelKeeper, extra: &[String]) -> Vec<String> {
        let mut v: Vec<String> = self.poll_problem.iter().cloned().collect();
        v.extend(panel.problems());
        v.extend(self.job_problems.iter().cloned());
        v.extend(extra.iter().cloned());
        v
    }

    pub fn status(&self, panel: &PanelKeeper, running: Option<String>, facts: &DaemonFacts) -> status::Status {
        status::Status {
            schema_version: status::SCHEMA_VERSION,
            daemon: facts.daemon.clone().unwrap_or_else(|| status::Daemon {
                running: false,
                pid: None,
                version: crate::VERSION.to_string(),
                started_at: None,
                uptime_s: None,
            }),
            health: status::Health::from_problems(self.problems(panel, &facts.problems)),
            central: self.central.clone(),
            push: status::Push {
                listen: self.push_listen.clone(),
                accepted: facts.push_accepted,
                rejected: facts.push_rejected,
            },
            panel_ini: panel.status(),
            plesk: self.plesk.clone(),
            jobs: status::Jobs {
                running,
                undelivered_results: self.undelivered_results,
                recent: self.recent.clone(),
            },
        }
    }
}

/// A result the store refused: consecutive refusals, when the next attempt may go, and the
/// sentence for `status`.
#[derive(Debug, Clone)]
struct Retry {
    failures: u32,
    next: std::time::Instant,
    error: String,
}

pub struct Engine {
    cfg: Config,
    clock: Arc<dyn Clock>,
    transport: Option<Arc<dyn Transport>>,
    plesk: Plesk,
    journal: Journal,
    /// Shared with the daemon's watcher.
    pub panel: Arc<Mutex<PanelKeeper>>,
    persisted: persisted::Persisted,
    /// Whether the instructions in force arrived fresh (a 200, or the first pass after
    /// start): only then is a stored result re-sent for a job the store still lists.
    fresh: bool,
    pub conn: ConnState,
    unanswerable: Vec<String>,
    /// Results the store refused, each backing off on its own: one result the store keeps
    /// refusing must never hold back the others.
    retries: HashMap<String, Retry>,
    /// The last report error logged, so a down store is logged once, not every pass.
    report_error: Option<String>,
    key_number: Option<String>,
    plesk_version: Option<String>,
    last_report: Option<Report>,
    /// The job whose command runs right now (for `status`).
    pub running: Arc<Mutex<Option<String>>>,
    /// Set on SIGTERM: finish the job under way, start no other.
    pub stop: Arc<AtomicBool>,
}

impl Engine {
    /// Opens the state directory and journal; reads nothing from Plesk or the store yet.
    pub fn new(cfg: Config, deps: Deps) -> Result<Engine, EngineError> {
        let state_dir = cfg.agent.state_dir.clone();
        crate::fsutil::ensure_private_dir(&state_dir, 0o700).map_err(|source| EngineError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        remove_state_debris(&state_dir);
        let journal = Journal::open(&state_dir)?;
        for w in &journal.load_warnings {
            tracing::warn!("{w}");
        }
        let transport = match deps.transport {
            Some(t) => Some(t),
            None => transport_for(&cfg)?,
        };
        let plesk = Plesk::new(cfg.plesk.command.clone(), cfg.plesk.timeout, deps.runner.clone());
        let panel = PanelKeeper::new(
            cfg.panel.ini_path.clone(),
            state_dir.clone(),
            cfg.panel.buy_url.clone(),
            cfg.panel.catalog_url.clone(),
        );
        let persisted = persisted::Persisted::load(&state_dir);
        let mut panel = panel;
        if transport.is_some() {
            panel.set_central(persisted.instructions.panel_ini.clone());
        }
        Ok(Engine {
            cfg,
            clock: deps.clock,
            transport,
            plesk,
            journal,
            panel: Arc::new(Mutex::new(panel)),
            persisted,
            fresh: true,
            conn: ConnState::Idle,
            unanswerable: Vec::new(),
            key_number: None,
            plesk_version: None,
            // None: the report is sent at every start, then whenever it changes.
            last_report: None,
            retries: HashMap::new(),
            report_error: None,
            running: Arc::new(Mutex::new(None)),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn transport(&self) -> Option<Arc<dyn Transport>> {
        self.transport.clone()
    }

    /// Takes a reloaded config: local panel.ini values and paths, Plesk command, transport.
    pub fn reload(&mut self, cfg: Config, transport: Option<Arc<dyn Transport>>) {
        {
            let mut p = self.panel.lock().unwrap();
            p.set_local(
                cfg.panel.ini_path.clone(),
                cfg.panel.buy_url.clone(),
                cfg.panel.catalog_url.clone(),
            );
        }
        self.plesk = Plesk::new(cfg.plesk.command.clone(), cfg.plesk.timeout, self.plesk.runner.clone());
        self.transport = transport;
        self.cfg = cfg;
    }

    /// Reads the key number and Plesk version (at start, and after every successful job).
    pub async fn refresh_plesk_facts(&mut self) {
        match self.plesk.key_number().await {
            Ok(k) => self.key_number = k,
            Err(e) => tracing::warn!("{e}"),
        }
        if self.plesk_version.is_none() {
            match self.plesk.version().await {
                Ok(v) => self.plesk_version = v,
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }

    /// Applies the desired panel.ini state now.
    pub fn reconcile_panel_ini(&self) -> Reconcile {
        self.panel.lock().unwrap().reconcile(self.clock.now())
    }

    /// The request for the next poll.
    pub fn poll_request(&self, wait: Option<Duration>) -> PollRequest {
        PollRequest {
            etag: self.persisted.etag.clone(),
            key_number: self.key_number.clone(),
            wait: wait.filter(|w| !w.is_zero()),
        }
    }

    /// One full pass, polling here (`sync`); see [`Engine::complete_pass`].
    pub async fn pass(&mut self, wait: Option<Duration>) -> PassOutcome {
        let polled = match self.transport.clone() {
            Some(t) => Some(t.poll(self.poll_request(wait)).await),
            None => None,
        };
        self.complete_pass(polled).await
    }

    /// Everything of a pass after its poll, in the one order there is: jobs a crash
    /// interrupted, the poll's outcome, panel.ini, the listed jobs, deliveries, the report,
    /// pruning. The daemon polls outside the engine's lock (a wake may drop a held poll)
    /// and hands the outcome here; `None` is a pass without a store.
    pub async fn complete_pass(&mut self, polled: Option<Result<PollOutcome, CentralError>>) -> PassOutcome {
        let mut out = PassOutcome::default();
        self.resume_interrupted(&mut out).await;
        self.after_poll(polled, &mut out).await;
        out
    }

    /// At the daemon's start, before its first poll (which the store may hold for
    /// `long_poll` seconds): runs the jobs a crash interrupted, whose running records are on
    /// disk, and delivers their results. False when there was none.
    pub async fn resume_at_start(&mut self) -> bool {
        if self.journal.interrupted().is_empty() {
            return false;
        }
        let mut out = PassOutcome::default();
        self.resume_interrupted(&mut out).await;
        self.deliver(&mut out).await;
        true
    }

    /// Runs jobs a crash or kill interrupted: again, or `failed` after [`MAX_ATTEMPTS`].
    async fn resume_interrupted(&mut self, out: &mut PassOutcome) {
        for rec in self.journal.interrupted() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            match rec.job {
                Some(job) if rec.attempts < MAX_ATTEMPTS => {
                    tracing::warn!(job_id = %job.id, attempt = rec.attempts + 1, "the job was interrupted; running it again");
                    self.run_job(&job, out).await;
                }
                _ => {
                    let now = self.clock.now();
                    let result = JobResult {
                        status: ResultStatus::Failed,
                        exit_code: None,
                        output: format!(
                            "interrupted {} times: the agent stopped or crashed while the command ran; not run again",
                            rec.attempts
                        ),
                        attempts: rec.attempts,
                        started_at: rec.first_started_at.clone().unwrap_or_else(|| rfc3339(now)),
                        finished_at: rfc3339(now),
                    };
                    tracing::error!(job_id = %rec.id, attempts = rec.attempts, "job interrupted too often; giving up");
                    out.failures
                        .push(format!("job {} was interrupted {} times", rec.id, rec.attempts));
                    if let Err(e) = self.journal.finish(&rec.id, &rec.job_type, result, now) {
                        tracing::error!("{e}");
                        out.failures.push(e.to_string());
                    }
                }
            }
        }
    }

    /// Everything after the poll: take its outcome, reconcile panel.ini, run the listed jobs,
    /// deliver results, report, prune.
    async fn after_poll(&mut self, polled: Option<Result<PollOutcome, CentralError>>, out: &mut PassOutcome) {
        if let Some(polled) = polled {
            self.take_poll(polled, out);
        }
        match self.reconcile_panel_ini() {
            Reconcile::Refused | Reconcile::Failed => {
                out.failures.extend(self.panel.lock().unwrap().problems());
            }
            _ => {}
        }
        if self.transport.is_some() {
            self.run_listed_jobs(out).await;
            self.deliver(out).await;
            self.report().await;
        }
        self.journal.prune(self.clock.now());
    }

    fn take_poll(&mut self, polled: Result<PollOutcome, CentralError>, out: &mut PassOutcome) {
        let now = self.clock.now();
        match polled {
            Ok(PollOutcome::Instructions { instructions, etag }) => {
                self.poll_ok(now);
                self.panel.lock().unwrap().set_central(instructions.panel_ini.clone());
                let unchanged = self.persisted.instructions == instructions && self.persisted.etag == etag;
                self.persisted.instructions = instructions;
                self.persisted.etag = etag;
                self.fresh = true;
                // Rewriting identical instructions would cost fsyncs on every re-read.
                if unchanged {
                    return;
                }
                if let Err(e) = self.persisted.save(&self.cfg.agent.state_dir) {
                    tracing::error!("{e}");
                    out.failures.push(e.to_string());
                }
            }
            Ok(PollOutcome::NotModified) => self.poll_ok(now),
            Err(e) => {
                let msg = e.to_string();
                let kind = match &e {
                    CentralError::Unauthorized { .. } | CentralError::Token { .. } => PollFailure::AuthFailing,
                    CentralError::UnknownHost { .. } => PollFailure::UnknownHost,
                    CentralError::Enrolling { .. } => PollFailure::Enrolling,
                    _ => PollFailure::BackingOff,
                };
                let failures = self.conn.consecutive_failures() + 1;
                // A store that stays down with the same error is logged once.
                if self.conn.last_error() != Some(msg.as_str()) || failures == 1 {
                    tracing::error!(failures, "{msg}");
                }
                self.conn = ConnState::Failing {
                    kind,
                    failures,
                    last_error: msg.clone(),
                    last_poll_at: now,
                };
                out.failures.push(msg);
            }
        }
    }

    fn poll_ok(&mut self, now: SystemTime) {
        let failures = self.conn.consecutive_failures();
        if failures > 0 {
            tracing::info!(after_failures = failures, "the store answers again");
        }
        self.conn = ConnState::Healthy { last_poll_at: now };
    }

    async fn run_listed_jobs(&mut self, out: &mut PassOutcome) {
        let fresh = std::mem::replace(&mut self.fresh, false);
        let jobs = self.persisted.instructions.jobs.clone();
        let mut unanswerable = Vec::new();
        for raw in &jobs {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            match parse_job(raw) {
                ParsedJob::Unanswerable { reason } => {
                    let msg = format!("a job from the store cannot be answered and was skipped: {reason}");
                    tracing::warn!("{msg}");
                    unanswerable.push(msg);
                }
                ParsedJob::Rejected { id, job_type, reason } => {
                    if self.already_done(&id, fresh) {
                        continue;
                    }
                    let now = self.clock.now();
                    let reason = plesk_reseller_protocol::mask_activation_codes(&reason);
                    tracing::warn!(job_id = %id, "job rejected: {reason}");
                    let result = JobResult {
                        status: ResultStatus::Rejected,
                        exit_code: None,
                        output: reason,
                        attempts: 0,
                        started_at: rfc3339(now),
                        finished_at: rfc3339(now),
                    };
                    let t = job_type.unwrap_or_default();
                    if let Err(e) = self.journal.finish(&id, &t, result, now) {
                        tracing::error!("{e}");
                        out.failures.push(e.to_string());
                        break;
                    }
                    out.failures.push(format!("job {id} was rejected"));
                }
                ParsedJob::Valid(job) => {
                    if self.already_done(&job.id, fresh) {
                        continue;
                    }
                    if !self.run_job(&job, out).await {
                        break; // the journal cannot be written: run nothing that could not be answered
                    }
                }
            }
        }
        self.unanswerable = unanswerable;
    }

    /// True when the job has a stored result; then, if the store listed it anew, the
    /// result is queued for delivery again.
    fn already_done(&mut self, id: &str, fresh: bool) -> bool {
        match self.journal.get(id) {
            Some(r) if r.state == crate::journal::RecordState::Done => {
                if fresh && r.delivered() {
                    tracing::info!(job_id = %id, "the store still lists a job it has a result for; sending the result again");
                    if let Err(e) = self.journal.mark_undelivered(id) {
                        tracing::error!("{e}");
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Runs one job with its running record on disk first. False when the journal failed.
    async fn run_job(&mut self, job: &Job, out: &mut PassOutcome) -> bool {
        let attempts = match self.journal.begin(job, self.clock.now()) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(job_id = %job.id, "not running the job: {e}");
                out.failures.push(e.to_string());
                return false;
            }
        };
        *self.running.lock().unwrap() = Some(job.id.clone());
        tracing::info!(job_id = %job.id, job_type = job.kind.type_name(), attempt = attempts, "running job");
        let cmd = match &job.kind {
            JobKind::InstallKey { activation_code } => self.plesk.install_key(activation_code).await,
            JobKind::RetrieveKeys => self.plesk.retrieve_keys().await,
        };
        *self.running.lock().unwrap() = None;
        out.jobs_run += 1;
        let result = job_result(&cmd, attempts);
        let ok = result.status == ResultStatus::Succeeded;
        if ok {
            tracing::info!(job_id = %job.id, "job succeeded");
        } else {
            tracing::warn!(job_id = %job.id, exit_code = ?cmd.exit_code, timed_out = cmd.timed_out,
                "job failed: {}", last_line(&result.output));
            out.failures.push(format!("job {} failed", job.id));
        }
        if let Err(e) = self
            .journal
            .finish(&job.id, job.kind.type_name(), result, self.clock.now())
        {
            tracing::error!("{e}");
            out.failures.push(e.to_string());
            return false;
        }
        if ok {
            self.refresh_plesk_facts().await;
        }
        true
    }

    async fn deliver(&mut self, out: &mut PassOutcome) {
        let Some(t) = self.transport.clone() else { return };
        let pending = self.journal.undelivered();
        self.retries.retain(|id, _| pending.iter().any(|(p, _, _)| p == id));
        let mut unreachable = false;
        for (id, result, _) in pending {
            if let Some(r) = self.retries.get(&id) {
                if std::time::Instant::now() < r.next {
                    // Still backing off after the store refused this one; it waits on disk.
                    out.failures.push(r.error.clone());
                    continue;
                }
            }
            if unreachable {
                continue;
            }
            match t.send_result(&id, &result).await {
                Ok(()) => {
                    tracing::info!(job_id = %id, status = result.status.as_str(), "result delivered");
                    self.retries.remove(&id);
                    if let Err(e) = self.journal.mark_delivered(&id, self.clock.now()) {
                        tracing::error!("{e}");
                    }
                }
                Err(e) => {
                    let msg = format!("the result of job {id} was not delivered: {e}");
                    tracing::warn!("{msg}");
                    // The store cannot be reached at all: the others would fail alike, this pass.
                    unreachable = matches!(e, CentralError::Network { .. });
                    let failures = self.retries.get(&id).map_or(0, |r| r.failures) + 1;
                    self.retries.insert(
                        id,
                        Retry {
                            failures,
                            next: std::time::Instant::now() + crate::backoff::backoff(failures),
                            error: msg.clone(),
                        },
                    );
                    out.failures.push(msg);
                }
            }
        }
    }

    /// Builds the report; sends it when it differs from the last one the store accepted.
    async fn report(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        let report = self.build_report();
        if self.last_report.as_ref() == Some(&report) {
            return;
        }
        match t.send_report(&report).await {
            Ok(()) => {
                self.report_error = None;
                self.last_report = Some(report);
            }
            Err(e) => {
                // Once per distinct error: an unreachable store must not flood the log.
                let msg = e.to_string();
                if self.report_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("the report was not delivered: {msg}");
                }
                self.report_error = Some(msg);
            }
        }
    }

    pub fn build_report(&self) -> Report {
        let p = self.panel.lock().unwrap();
        let actual = p.actual();
        Report {
            agent_version: crate::VERSION.to_string(),
            plesk_key_number: self.key_number.clone(),
            plesk_version: self.plesk_version.clone(),
            panel_ini: ReportPanelIni {
                path: p.shown_path(),
                buy_url: actual.buy_url,
                catalog_url: actual.catalog_url,
                in_sync: p.in_sync(),
                repairs: p.repairs,
            },
            problems: self.problems_with(&p),
        }
    }

    /// One sentence per reason the agent is degraded (contract section 8).
    pub fn problems(&self) -> Vec<String> {
        let p = self.panel.lock().unwrap();
        self.problems_with(&p)
    }

    fn problems_with(&self, p: &PanelKeeper) -> Vec<String> {
        self.view().problems(p, &[])
    }

    /// The engine's own part of `status`, for [`EngineView::status`].
    pub fn view(&self) -> EngineView {
        let now = unix_secs(self.clock.now());
        let late = self
            .journal
            .undelivered()
            .into_iter()
            .filter(|(_, _, t)| now.saturating_sub(*t) > DELIVERY_WARN_AFTER.as_secs())
            .count();
        let mut job_problems = self.unanswerable.clone();
        if late > 0 {
            job_problems.push(format!(
                "{late} job result(s) have waited more than 10 minutes for delivery{}",
                self.retries
                    .values()
                    .next()
                    .map_or(String::new(), |r| format!(" ({})", r.error))
            ));
        }
        EngineView {
            central: status::Central {
                url: self.transport.as_ref().map(|t| t.url().to_string()),
                transport: self.transport.as_ref().map_or("none", |t| t.kind()).to_string(),
                last_poll_at: self.conn.last_poll_at().map(rfc3339),
                last_poll_ok: self.conn.last_ok(),
                consecutive_failures: self.conn.consecutive_failures(),
                last_error: self.conn.last_error().map(str::to_string),
                state: self.conn.as_str().to_string(),
            },
            push_listen: self.cfg.push.listen.map(|a| a.to_string()),
            plesk: status::Plesk {
                key_number: self.key_number.clone(),
                version: self.plesk_version.clone(),
            },
            undelivered_results: self.journal.undelivered().len() as u64,
            recent: self
                .journal
                .recent(20)
                .into_iter()
                .map(|r| status::RecentJob {
                    id: r.id.clone(),
                    job_type: r.job_type.clone(),
                    status: r.result.as_ref().map_or("unknown", |x| x.status.as_str()).to_string(),
                    finished_at: r.result.as_ref().map(|x| x.finished_at.clone()),
                    attempts: r.attempts,
                })
                .collect(),
            poll_problem: self.conn.last_error().map(|e| format!("the last poll failed: {e}")),
            job_problems,
        }
    }

    /// The status with what the daemon adds (`DaemonFacts::default()` when none runs).
    pub fn status(&self, facts: &DaemonFacts) -> status::Status {
        let running = self.running.lock().unwrap().clone();
        self.view().status(&self.panel.lock().unwrap(), running, facts)
    }

    /// The instructions in force (persisted across restarts).
    pub fn instructions(&self) -> &RawInstructions {
        &self.persisted.instructions
    }
}

/// Removes the temp files of writes a crash interrupted in the state directory (the
/// journal clears its own directory, panel.ini's write its own and the backups). The
/// callers hold the state directory's lock, so no write of ours is under way.
fn remove_state_debris(state_dir: &std::path::Path) {
    for name in [
        crate::status::persisted_path(state_dir),
        persisted::instructions_path(state_dir),
    ] {
        let Some(name) = name.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        match crate::fsutil::remove_stale_temps(state_dir, &name) {
            Ok(removed) => {
                for p in removed {
                    tracing::info!(path = %p.display(), "removed a temp file an interrupted write left");
                }
            }
            Err(e) => tracing::warn!(dir = %state_dir.display(), "cannot clear interrupted writes' temp files: {e}"),
        }
    }
}

/// The result of a command that ran, masked and capped.
fn job_result(cmd: &CommandOutput, attempts: u32) -> JobResult {
    let mut output = cmd.output.clone();
    if let Some(e) = &cmd.spawn_error {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(e);
    }
    let output = plesk_reseller_protocol::mask_activation_codes(&output);
    let output = tail(&output, crate::runner::OUTPUT_TAIL);
    JobResult {
        status: if cmd.success() {
            ResultStatus::Succeeded
        } else {
            ResultStatus::Failed
        },
        exit_code: cmd.exit_code,
        output,
        attempts,
        started_at: rfc3339(cmd.started_at),
        finished_at: rfc3339(cmd.finished_at),
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

fn last_line(s: &str) -> &str {
    s.trim_end().rsplit('\n').next().unwrap_or("")
}
