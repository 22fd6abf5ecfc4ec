//! The endpoint agent: reports the machine's packages and carries out its operations.
//!
//! It keeps the endpoint's event stream open (reconnecting with backoff) and looks for pending
//! operations whenever one is created, after every (re)connect, and on a slow timer as a safety
//! net, so operations created while it was offline are picked up too. It claims each with
//! `start` (a lease), checks the plan (`plan_check`: a plan that fails is failed as
//! `INVALID_PLAN` and pacman is never called), runs it with real pacman while heart-beating
//! progress, and completes it with the state pacman actually left, or fails it with pacman's
//! own message and reports the real state. Nothing is recorded as done that was not done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pacsync_core::{
    Available, CancelAck, CompleteReport, FailReport, Operation, OperationStatus, ProgressReport,
    Source, StateRecorded, StateReport,
};
use uuid::Uuid;

use crate::api::{Api, ApiError};
use crate::config::AgentConfig;
use crate::execute::{ExecuteError, Reporter, execute};
use crate::pacman::{Pacman, PacmanError, SyncListing};
use crate::plan_check;
use crate::rollback::RollbackStore;
use crate::stream::{Event, EventStream};

/// How long a connected agent waits for news before checking over HTTP anyway.
const SAFETY_NET: Duration = Duration::from_secs(60);

/// How long a stream must stay up before its end resets the reconnect backoff.
const STABLE_STREAM: Duration = Duration::from_secs(30);

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The host refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// pacman could not even be queried.
    #[error("pacman: {0}")]
    Pacman(#[from] PacmanError),
}

mod backoff;

pub use backoff::Backoff;

/// One endpoint's agent.
pub struct Agent {
    api: Api,
    server: String,
    token: String,
    endpoint: Uuid,
    pacman: Pacman,
    store: RollbackStore,
    tls: Arc<rustls::ClientConfig>,
}

struct Heartbeat<'a> {
    api: &'a Api,
    operation: Uuid,
    keepalive: Duration,
}

impl Reporter for Heartbeat<'_> {
    fn keepalive(&self) -> Duration {
        self.keepalive
    }

    async fn progress(&mut self, percentage: u8, stage: &str, action: Option<&str>) -> bool {
        let report = ProgressReport {
            percentage: i32::from(percentage),
            stage: stage.to_owned(),
            current_action: action.map(str::to_owned),
        };
        match self.api.progress(self.operation, &report).await {
            Ok(op) => op.cancel_requested,
            // The host ended the operation (lease expired, endpoint deleted): stop at the next
            // safe point rather than keep changing the machine.
            Err(ApiError::Problem {
                status: 404 | 409, ..
            })
            | Err(ApiError::Auth { .. }) => true,
            // A heartbeat lost to a restarting host must not abort a transaction.
            Err(_) => false,
        }
    }
}

impl Agent {
    /// An agent for the configured endpoint.
    pub fn new(config: &AgentConfig, tls: &Arc<rustls::ClientConfig>) -> Self {
        Self {
            api: Api::new(&config.server, Some(config.token.clone()), tls),
            server: config.server.clone(),
            token: config.token.clone(),
            endpoint: config.endpoint_id,
            pacman: Pacman::new(config.pacman.clone(), tls),
            store: RollbackStore::new(config.rollback.dir.clone(), config.rollback.keep_states),
            tls: tls.clone(),
        }
    }

    /// The machine's state as pacman sees it, and what it can obtain: its sync repositories,
    /// cache, the archive (for foreign packages, asked one version at a time) and the rollback
    /// store. Each state computed for the host is remembered by the rollback store, which then
    /// drops copies no recent state refers to.
    pub async fn state(&self) -> Result<StateReport, PacmanError> {
        self.state_asking(true).await
    }

    /// [`Agent::state`]; with `ask_archive` false the archive is not asked about foreign
    /// packages (remembered answers are used), so a report that ends an operation is quick.
    async fn state_asking(&self, ask_archive: bool) -> Result<StateReport, PacmanError> {
        // Without a readable sync listing, what the machine can obtain is unknown, not
        // "nothing": the report leaves it out and the host keeps the previous one.
        let listing = self.pacman.sync_listing().await.ok();
        let packages = self
            .pacman
            .installed(listing.as_ref().unwrap_or(&SyncListing::default()))
            .await?;
        let pairs: Vec<(String, String)> = packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        if let Err(e) = self.store.record_state_and_prune(&pairs) {
            eprintln!(
                "pacsync: rollback store {}: {e}",
                self.store.dir().display()
            );
        }
        let mut available = listing.map(|l| self.pacman.availability(&l));
        if let Some(available) = &mut available {
            let checks = self.store.dir().join("archive-checks.json");
            available.offered.extend(
                crate::archive_check::foreign_in_archive(
                    &self.pacman,
                    &checks,
                    &packages,
                    ask_archive,
                )
                .await,
            );
            available
                .offered
                .extend(
                    self.store
                        .list()
                        .into_iter()
                        .map(|(name, version)| Available {
                            name,
                            version,
                            source: Source::Rollback,
                        }),
                );
        }
        Ok(StateReport {
            architecture: std::env::consts::ARCH.to_owned(),
            pacman_version: self.pacman.version().await,
            packages,
            available,
        })
    }

    /// The rollback store.
    pub fn rollback_store(&self) -> &RollbackStore {
        &self.store
    }

    /// Sends the machine's state to the host.
    pub async fn report(&self) -> Result<StateRecorded, AgentError> {
        let state = self.state().await?;
        Ok(self.api.report(self.endpoint, &state).await?)
    }

    /// Reports, then carries out pending operations; with `once`, returns when none are left.
    /// Otherwise it waits on the event stream, or polls every `poll` while the stream is down.
    pub async fn run(&self, once: bool, poll: Duration) -> Result<(), AgentError> {
        // After a crash or restart the host must learn the machine's real state first.
        loop {
            match self.report().await {
                Ok(_) => break,
                Err(AgentError::Api(ApiError::Auth { code, detail })) => {
                    return Err(ApiError::Auth { code, detail }.into());
                }
                Err(e) if once => return Err(e),
                Err(e) => {
                    eprintln!("pacsync agent: {e}; retrying");
                    tokio::time::sleep(poll).await;
                }
            }
        }
        let mut stream: Option<EventStream> = None;
        let mut backoff = Backoff::default();
        let mut reconnect_at = Instant::now();
        let mut connected_at = Instant::now();
        loop {
            // Subscribe before looking for work, so nothing created in between is missed.
            if !once && stream.is_none() && Instant::now() >= reconnect_at {
                match EventStream::connect(&self.server, &self.token, self.endpoint, &self.tls)
                    .await
                {
                    Ok(live) => {
                        stream = Some(live);
                        connected_at = Instant::now();
                    }
                    Err(e) => {
                        let delay = backoff.delay();
                        eprintln!("pacsync agent: {e}; polling, next try in {delay:?}");
                        reconnect_at = Instant::now() + delay;
                    }
                }
            }
            self.carry_out_pending(once).await?;
            if once {
                return Ok(());
            }
            match stream.as_mut() {
                Some(live) => match tokio::time::timeout(SAFETY_NET, wait_for_work(live)).await {
                    Ok(true) | Err(_) => {}
                    Ok(false) => {
                        // Only a stream that stayed up resets the backoff: a host that accepts
                        // and closes at once must not be hammered every second.
                        if connected_at.elapsed() >= STABLE_STREAM {
                            backoff.reset();
                        }
                        let delay = backoff.delay();
                        eprintln!("pacsync agent: event stream closed; reconnecting in {delay:?}");
                        stream = None;
                        reconnect_at = Instant::now() + delay;
                    }
                },
                None => {
                    let until_reconnect = reconnect_at.saturating_duration_since(Instant::now());
                    tokio::time::sleep(poll.min(until_reconnect).max(Duration::from_millis(50)))
                        .await;
                }
            }
        }
    }

    /// Carries out every pending operation, oldest first.
    async fn carry_out_pending(&self, once: bool) -> Result<(), AgentError> {
        let ops = match self.api.operations(self.endpoint, 50).await {
            Ok(ops) => ops,
            Err(ApiError::Auth { code, detail }) => {
                return Err(ApiError::Auth { code, detail }.into());
            }
            Err(e) if once => return Err(e.into()),
            Err(e) => {
                eprintln!("pacsync agent: {e}; retrying");
                return Ok(());
            }
        };
        let mut pending: Vec<Operation> = ops
            .into_iter()
            .filter(|o| o.status == OperationStatus::Pending)
            .collect();
        pending.sort_by_key(|o| o.created_at);
        for op in pending {
            match self.carry_out(op.operation_id).await {
                Ok(()) => {}
                Err(AgentError::Api(ApiError::Auth { code, detail })) => {
                    return Err(ApiError::Auth { code, detail }.into());
                }
                Err(e) if once => return Err(e),
                // The daemon outlives a host outage; its next start reports the truth.
                Err(e) => eprintln!("pacsync agent: operation {}: {e}", op.operation_id),
            }
        }
        Ok(())
    }

    /// Claims and runs one operation to its end.
    async fn carry_out(&self, operation: Uuid) -> Result<(), AgentError> {
        let (op, raw_plan) = match self.api.start(operation).await {
            Ok(claimed) => claimed,
            // Someone else (a cancel, another agent run) got there first.
            Err(ApiError::Problem { status: 409, .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if op.status != OperationStatus::InProgress {
            return Ok(()); // re-planned into nothing: completed at once by the host
        }
        // Before any progress and before pacman: a refused plan changes nothing on the machine,
        // so the state just reported still stands.
        let plan = match plan_check::check(&raw_plan) {
            Ok(plan) => plan,
            Err(refused) => {
                eprintln!("pacsync agent: operation {operation}: refused its plan: {refused}");
                let message: String = refused.to_string().chars().take(16_000).collect();
                let code = plan_check::INVALID_PLAN.to_owned();
                self.finish(operation, Final::Fail(FailReport { code, message }))
                    .await?;
                return Ok(());
            }
        };
        let mut heartbeat = Heartbeat {
            api: &self.api,
            operation,
            keepalive: keepalive(&op),
        };
        let outcome = execute(&self.pacman, &self.store, &plan, &mut heartbeat).await;
        // The lease is still running: no archive requests before the outcome is sent.
        let state = match self.state_asking(false).await {
            Ok(state) => state,
            Err(e) => {
                // Without the real state nothing can be recorded as done: fail, and say why.
                let message = format!("cannot read the package database after the operation: {e}");
                let code = "STATE_UNREADABLE".to_owned();
                self.finish(operation, Final::Fail(FailReport { code, message }))
                    .await?;
                return Err(e.into());
            }
        };
        match outcome {
            Ok(()) => {
                self.finish(operation, Final::Complete(CompleteReport { state }))
                    .await?
            }
            Err(ExecuteError::Cancelled) => {
                let ack = CancelAck { state: Some(state) };
                self.finish(operation, Final::CancelAck(ack)).await?
            }
            Err(e) => {
                let message: String = e.to_string().chars().take(16_000).collect();
                let code = e.code().to_owned();
                self.finish(operation, Final::Fail(FailReport { code, message }))
                    .await?;
                self.api.report(self.endpoint, &state).await?;
            }
        }
        Ok(())
    }

    /// Sends a final transition, retrying through a brief host outage: the work is done and the
    /// host should hear about it before the lease runs out.
    async fn finish(&self, operation: Uuid, report: Final) -> Result<(), ApiError> {
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=5 {
            let sent = match &report {
                Final::Complete(r) => self.api.complete(operation, r).await,
                Final::CancelAck(r) => self.api.cancel_ack(operation, r).await,
                Final::Fail(r) => self.api.fail(operation, r).await,
            };
            match sent {
                Ok(_) => return Ok(()),
                Err(ApiError::Unreachable(_) | ApiError::Timeout(_)) if attempt < 5 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// How an operation the agent ran ends.
enum Final {
    /// It reached its goal.
    Complete(CompleteReport),
    /// A requested cancel stopped it.
    CancelAck(CancelAck),
    /// It could not be carried out.
    Fail(FailReport),
}

/// How often to renew the lease while pacman is silent: a third of the lease the host granted,
/// so two heartbeats may be lost before it runs out.
fn keepalive(op: &Operation) -> Duration {
    let granted = match (&op.started_at, &op.lease_expires_at) {
        (Some(start), Some(end)) => (*end - *start).to_std().ok(),
        _ => None,
    };
    (granted.unwrap_or(Duration::from_secs(120)) / 3)
        .clamp(Duration::from_millis(200), Duration::from_secs(30))
}

/// Waits until the stream says there may be work (a pending operation, or lost events); false
/// when the stream closed.
async fn wait_for_work(stream: &mut EventStream) -> bool {
    loop {
        match stream.next().await {
            Some(Event::Operation { operation, .. })
                if operation.status == OperationStatus::Pending =>
            {
                return true;
            }
            Some(Event::ResyncRequired) => return true,
            Some(_) => {}
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests;
