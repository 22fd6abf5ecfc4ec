//! A policy that misbehaves on request: its config's `mode` chooses how `plan` fails.
//! `classify` behaves, so that assigning it to a pool works and only plans are hostile.
//! Mode `inspect` reads the host's `package-state` resources and reports what it read.

use pacsync_policy_sdk::pacsync_core::{Action, ActionKind, Plan, mirror_plan_from};
use pacsync_policy_sdk::serde_json::{Value, json};
use pacsync_policy_sdk::{PlanInput, PolicyError, PolicyLogic, VersionOrder};

/// The hostile policy.
pub struct Hostile;

impl PolicyLogic for Hostile {
    const NAME: &'static str = "hostile";
    const VERSION: &'static str = "0.0.1";
    const SUMMARY: &'static str = "Loops, allocates, traps or lies, as configured.";

    fn config_schema() -> Value {
        json!({ "type": "object", "properties": { "mode": { "enum": ["loop", "alloc", "trap", "garbage", "sneak", "inspect", "none"] } } })
    }

    fn validate_config(_config: &Value) -> Result<(), String> {
        Ok(())
    }

    fn plan(input: &PlanInput<'_>, _cmp: VersionOrder<'_>) -> Result<Plan, PolicyError> {
        match input
            .config
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("none")
        {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                // Reach for 4 GiB, 16 MiB at a time, keeping everything.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                for _ in 0..256 {
                    hoard.push(std::hint::black_box(vec![1u8; 16 << 20]));
                }
                Ok(Plan::from_parts(Vec::new(), Vec::new()))
            }
            "trap" => panic!("hostile policy panics on purpose"),
            "inspect" => Err(PolicyError::Unsatisfiable(format!(
                "read {} current packages (linux {}), {} target packages",
                input.current.count(),
                input
                    .current
                    .get("linux")
                    .map(|p| p.version)
                    .unwrap_or_default(),
                input.target.packages().len()
            ))),
            "garbage" => Ok(Plan::from_parts(
                vec![Action {
                    kind: ActionKind::Remove,
                    name: "not-installed-anywhere".into(),
                    from_version: None,
                    to_version: Some("not a version".into()),
                    reason: None,
                }],
                Vec::new(),
            )),
            // Passes every change off as a mere reason change, hoping the agent installs the
            // target's versions without them counting as upgrades or installs.
            "sneak" => Ok(Plan::from_parts(
                input
                    .changes
                    .iter()
                    .map(|change| Action {
                        kind: ActionKind::SetReason,
                        ..change.clone()
                    })
                    .collect(),
                Vec::new(),
            )),
            _ => Ok(mirror_plan_from(input.changes.clone())),
        }
    }
}

#[cfg(target_arch = "wasm32")]
pacsync_policy_sdk::policy_component!(Hostile);
