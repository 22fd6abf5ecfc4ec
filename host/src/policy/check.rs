//! Trying a policy component offline, without a host or a database: what
//! `pacsync-host plugin check` runs for plugin authors. It uses the server's runtime and checks
//! (world, config object, plan validation) at the default limits (1 s, 64 MiB per call); a
//! server configured with tighter limits may still refuse what passes here.

use std::sync::Arc;

use pacsync_core::{PackageState, Plan, SyncStatus};
use serde::Serialize;

use super::wasm::{Description, WasmRuntime};
use crate::error::{Error, ErrorCode};

/// What to try besides loading: a config (`{}` when absent) and, optionally, two states.
pub struct Trial {
    /// The config the pool would give the plugin.
    pub config: serde_json::Value,
    /// `(current, target)` to classify and plan.
    pub states: Option<(Arc<PackageState>, Arc<PackageState>)>,
}

/// The outcome of a trial; `config_error` set means the plugin refused the config and nothing
/// was classified or planned.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// Content hash, as the registry would store it.
    pub sha256: String,
    /// The plugin's self-description.
    pub description: Description,
    /// The plugin's message for a config it refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// Where `current` stands relative to `target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncStatus>,
    /// The plan from `current` to `target` (with no availability information).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// Loads `bytes` as a policy component and runs the trial. A component the server would
/// refuse at upload fails with `INVALID_PLUGIN`; a fault while calling it with `POLICY_FAULT`.
pub fn check(runtime: &WasmRuntime, bytes: &[u8], trial: Trial) -> Result<CheckReport, Error> {
    super::require_object_config(&trial.config)?;
    let plugin = runtime
        .load(bytes)
        .map_err(|e| e.into_error(ErrorCode::InvalidPlugin, ""))?;
    let mut report = CheckReport {
        sha256: plugin.sha256.clone(),
        description: plugin.description.clone(),
        config_error: None,
        sync_status: None,
        plan: None,
    };
    if let Err(message) = runtime.validate_config(&plugin, &trial.config)? {
        report.config_error = Some(message);
        return Ok(report);
    }
    if let Some((current, target)) = trial.states {
        report.sync_status = Some(runtime.classify(&plugin, &current, &target, &trial.config)?);
        report.plan = Some(runtime.plan(&plugin, &current, &target, &trial.config, None)?);
    }
    Ok(report)
}
