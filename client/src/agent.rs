//! The endpoint agent: reports the machine's packages and carries out its operations.
//!
//! It polls the host for pending operations (including ones created while it was offline),
//! claims each with `start` (a lease), runs the plan with real pacman while heart-beating
//! progress, and completes it with the state pacman actually left, or fails it with pacman's
//! own message and reports the real state. Nothing is recorded as done that was not done.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::api::{Api, ApiError, Operation, StateReport};
use crate::config::AgentConfig;
use crate::execute::{ExecuteError, Reporter, execute};
use crate::pacman::{Pacman, PacmanError};

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

/// One endpoint's agent.
pub struct Agent {
    api: Api,
    endpoint: Uuid,
    pacman: Pacman,
}

struct Heartbeat<'a> {
    api: &'a Api,
    operation: Uuid,
}

impl Reporter for Heartbeat<'_> {
    async fn progress(&mut self, percentage: u8, stage: &str, action: Option<&str>) -> bool {
        let body = json!({ "percentage": percentage, "stage": stage, "current_action": action });
        match self
            .api
            .transition(self.operation, "progress", Some(body))
            .await
        {
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
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            api: Api::new(&config.server, Some(config.token.clone())),
            endpoint: config.endpoint_id,
            pacman: Pacman::new(config.pacman.clone()),
        }
    }

    /// The machine's state as pacman sees it.
    pub async fn state(&self) -> Result<StateReport, PacmanError> {
        Ok(StateReport {
            architecture: std::env::consts::ARCH.to_owned(),
            pacman_version: self.pacman.version().await,
            packages: self.pacman.installed().await?,
        })
    }

    /// Sends the machine's state to the host.
    pub async fn report(&self) -> Result<serde_json::Value, AgentError> {
        let state = self.state().await?;
        Ok(self.api.report(self.endpoint, &state).await?)
    }

    /// Reports, then carries out pending operations; with `once`, returns when none are left.
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
        loop {
            match self.api.operations(self.endpoint, 50).await {
                Ok(ops) => {
                    let mut pending: Vec<Operation> =
                        ops.into_iter().filter(|o| o.status == "pending").collect();
                    pending.sort_by(|a, b| a.created_at.cmp(&b.created_at));
                    for op in pending {
                        match self.carry_out(op.operation_id).await {
                            Ok(()) => {}
                            Err(AgentError::Api(ApiError::Auth { code, detail })) => {
                                return Err(ApiError::Auth { code, detail }.into());
                            }
                            Err(e) if once => return Err(e),
                            // The daemon outlives a host outage; its next start reports the truth.
                            Err(e) => {
                                eprintln!("pacsync agent: operation {}: {e}", op.operation_id)
                            }
                        }
                    }
                }
                Err(ApiError::Auth { code, detail }) => {
                    return Err(ApiError::Auth { code, detail }.into());
                }
                Err(e) if once => return Err(e.into()),
                Err(e) => eprintln!("pacsync agent: {e}; retrying"),
            }
            if once {
                return Ok(());
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Claims and runs one operation to its end.
    async fn carry_out(&self, operation: Uuid) -> Result<(), AgentError> {
        let op = match self.api.transition(operation, "start", None).await {
            Ok(op) => op,
            // Someone else (a cancel, another agent run) got there first.
            Err(ApiError::Problem { status: 409, .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if op.status != "in_progress" {
            return Ok(()); // re-planned into nothing: completed at once by the host
        }
        let plan = op.plan.clone().unwrap_or_default();
        let mut heartbeat = Heartbeat {
            api: &self.api,
            operation,
        };
        let outcome = execute(&self.pacman, &plan, &mut heartbeat).await;
        let state = match self.state().await {
            Ok(state) => state,
            Err(e) => {
                // Without the real state nothing can be recorded as done: fail, and say why.
                let message = format!("cannot read the package database after the operation: {e}");
                self.finish(
                    operation,
                    "fail",
                    json!({ "code": "STATE_UNREADABLE", "message": message }),
                )
                .await?;
                return Err(e.into());
            }
        };
        let state_json = serde_json::to_value(&state).expect("state serializes");
        match outcome {
            Ok(()) => {
                self.finish(operation, "complete", json!({ "state": state_json }))
                    .await?
            }
            Err(ExecuteError::Cancelled) => {
                self.finish(operation, "cancel-ack", json!({ "state": state_json }))
                    .await?
            }
            Err(e) => {
                let message: String = e.to_string().chars().take(16_000).collect();
                self.finish(
                    operation,
                    "fail",
                    json!({ "code": e.code(), "message": message }),
                )
                .await?;
                self.api.report(self.endpoint, &state).await?;
            }
        }
        Ok(())
    }

    /// Sends a final transition, retrying through a brief host outage: the work is done and the
    /// host should hear about it before the lease runs out.
    async fn finish(
        &self,
        operation: Uuid,
        action: &str,
        body: serde_json::Value,
    ) -> Result<(), ApiError> {
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=5 {
            match self
                .api
                .transition(operation, action, Some(body.clone()))
                .await
            {
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
