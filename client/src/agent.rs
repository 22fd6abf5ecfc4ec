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
            // A heartbeat that fails (e.g. the host restarting) must not abort a transaction.
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
        self.report().await?;
        loop {
            match self.api.operations(self.endpoint, 50).await {
                Ok(ops) => {
                    let mut pending: Vec<Operation> =
                        ops.into_iter().filter(|o| o.status == "pending").collect();
                    pending.sort_by(|a, b| a.created_at.cmp(&b.created_at));
                    for op in pending {
                        self.carry_out(op.operation_id).await?;
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
        let state = self.state().await?;
        let state_json = serde_json::to_value(&state).expect("state serializes");
        match outcome {
            Ok(()) => {
                self.api
                    .transition(operation, "complete", Some(json!({ "state": state_json })))
                    .await?;
            }
            Err(ExecuteError::Cancelled) => {
                self.api
                    .transition(
                        operation,
                        "cancel-ack",
                        Some(json!({ "state": state_json })),
                    )
                    .await?;
            }
            Err(e) => {
                let message: String = e.to_string().chars().take(16_000).collect();
                self.api
                    .transition(
                        operation,
                        "fail",
                        Some(json!({ "code": e.code(), "message": message })),
                    )
                    .await?;
                self.api.report(self.endpoint, &state).await?;
            }
        }
        Ok(())
    }
}
