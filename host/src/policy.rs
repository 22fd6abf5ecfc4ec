//! The seam between the lifecycle and package policy: classification and planning.
//!
//! Pools name a policy (`policy_plugin`) and a config. Today the only policy is the native
//! `mirror`; WebAssembly components plug in behind the same [`Policy`] trait.

use std::sync::Arc;

use pacsync_core::{PackageState, Plan, SyncStatus, classify, mirror_plan};
use serde::Serialize;

use crate::db::pools::Pool;
use crate::error::{Error, ErrorCode};

/// A package policy: how endpoints are classified against a target and how syncs are planned.
pub trait Policy: Send + Sync {
    /// Where `current` stands relative to `target`.
    fn classify(&self, current: &PackageState, target: &PackageState) -> Result<SyncStatus, Error>;
    /// The actions that bring `current` to `target`.
    fn plan(&self, current: &PackageState, target: &PackageState) -> Result<Plan, Error>;
}

/// Match the target exactly: install, upgrade, downgrade and remove.
pub struct NativeMirror;

impl Policy for NativeMirror {
    fn classify(&self, current: &PackageState, target: &PackageState) -> Result<SyncStatus, Error> {
        Ok(classify(current, target))
    }

    fn plan(&self, current: &PackageState, target: &PackageState) -> Result<Plan, Error> {
        Ok(mirror_plan(current, target))
    }
}

/// What an operation records about the policy it was planned with.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRecord {
    /// Policy name.
    pub plugin: String,
    /// Content hash of the policy code; `native` for built-in Rust policies.
    pub hash: String,
    /// The config it ran with.
    pub config: serde_json::Value,
}

/// Finds the policy a pool uses.
#[derive(Clone)]
pub struct Policies {
    mirror: Arc<dyn Policy>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            mirror: Arc::new(NativeMirror),
        }
    }
}

impl Policies {
    /// The policy for `pool`, and the record operations keep of it.
    pub fn for_pool(&self, pool: &Pool) -> Result<(Arc<dyn Policy>, PolicyRecord), Error> {
        match pool.policy_plugin.as_str() {
            "mirror" => Ok((
                self.mirror.clone(),
                PolicyRecord {
                    plugin: "mirror".into(),
                    hash: "native".into(),
                    config: pool.policy_config.clone(),
                },
            )),
            other => Err(Error::new(
                ErrorCode::PolicyFault,
                format!("pool {} uses unknown policy {other:?}", pool.pool_id),
            )),
        }
    }

    /// The policy reverts use: they return to a recorded state exactly, whatever the pool policy.
    pub fn exact(&self) -> (Arc<dyn Policy>, PolicyRecord) {
        (
            self.mirror.clone(),
            PolicyRecord {
                plugin: "mirror".into(),
                hash: "native".into(),
                config: serde_json::json!({}),
            },
        )
    }
}
