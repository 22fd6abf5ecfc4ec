//! Host configuration: command line over `PACSYNC_*` environment over TOML file over defaults.
//!
//! [`limits`] resolves the bounds on what one caller can make the host do.

pub mod limits;
#[cfg(test)]
mod tests;

pub use limits::{Limits, Rate};

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Settings that can come from the command line, the environment or the config file.
///
/// Every field is optional so that the three sources can be layered; [`Config::resolve`] fills
/// in defaults.
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "PACSYNC_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded database, the signing key and other state
    /// [default: $XDG_STATE_HOME/pacsync, or /var/lib/pacsync when run as root].
    #[arg(long, env = "PACSYNC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// External PostgreSQL URL; without it the host runs a private cluster in the data dir.
    #[arg(long, env = "PACSYNC_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// File holding the token signing secret; share it between replicas
    /// [default: <data-dir>/jwt-secret, generated on first start].
    #[arg(long, env = "PACSYNC_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,
    /// Seconds an agent's claim on an operation lasts without progress [default: 120].
    #[arg(long, env = "PACSYNC_LEASE_SECONDS")]
    pub lease_seconds: Option<u32>,
    /// How often the lease reaper looks for expired operations, in milliseconds [default: 5000].
    #[arg(long, env = "PACSYNC_REAPER_INTERVAL_MS")]
    pub reaper_interval_ms: Option<u64>,
    /// Lifetime of endpoint tokens issued at registration, in days [default: 365].
    #[arg(long, env = "PACSYNC_ENDPOINT_TOKEN_DAYS")]
    pub endpoint_token_days: Option<u32>,
    /// Wall-clock budget of one policy plugin call, in milliseconds [default: 1000].
    #[arg(long, env = "PACSYNC_PLUGIN_DEADLINE_MS")]
    pub plugin_deadline_ms: Option<u64>,
    /// Memory cap of one policy plugin instance, in MiB, at most 4096 [default: 64].
    #[arg(long, env = "PACSYNC_PLUGIN_MEMORY_MIB")]
    pub plugin_memory_mib: Option<usize>,
    /// Policy plugin calls that may run at once; more wait for a free slot [default: 16].
    #[arg(long, env = "PACSYNC_PLUGIN_CONCURRENCY")]
    pub plugin_concurrency: Option<u32>,
    /// How often the host pings WebSocket subscribers, in milliseconds [default: 20000].
    #[arg(long, env = "PACSYNC_WS_PING_MS")]
    pub ws_ping_ms: Option<u64>,
    /// Silence after which a WebSocket subscriber is dropped, in milliseconds [default: 60000].
    #[arg(long, env = "PACSYNC_WS_TIMEOUT_MS")]
    pub ws_timeout_ms: Option<u64>,
    /// Kernel send buffer per connection, in bytes [default: the kernel's autotuning].
    #[arg(long, env = "PACSYNC_SOCKET_SEND_BUFFER")]
    pub socket_send_buffer: Option<usize>,
    /// Events a subscriber may fall behind before it is told to resync [default: 1024].
    #[arg(long, env = "PACSYNC_EVENT_BUFFER")]
    pub event_buffer: Option<usize>,
    /// Where compiled policy components are kept across restarts [default: <data-dir>/plugin-cache].
    #[arg(long, env = "PACSYNC_PLUGIN_CACHE_DIR")]
    pub plugin_cache_dir: Option<PathBuf>,
    /// Directory holding initdb/pg_ctl [default: PATH, then /usr/lib/postgresql/<newest>/bin].
    #[arg(long, env = "PACSYNC_POSTGRES_BIN_DIR")]
    pub postgres_bin_dir: Option<PathBuf>,
    /// Days after which an endpoint's availability report no longer constrains the pool; 0 for
    /// never [default: 30].
    #[arg(long, env = "PACSYNC_AVAILABILITY_MAX_AGE_DAYS")]
    pub availability_max_age_days: Option<u32>,
    /// PEM certificate chain (leaf first) to serve HTTPS and WSS with; needs --tls-key
    /// [default: plain HTTP, e.g. behind a TLS-terminating load balancer].
    #[arg(long, env = "PACSYNC_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "PACSYNC_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Whether the request rate limits below apply; turn them off only where a proxy in front
    /// limits rates instead [default: true].
    #[arg(long, env = "PACSYNC_RATE_LIMITS", value_name = "BOOL")]
    pub rate_limits: Option<bool>,
    /// Requests per second one endpoint's token may sustain, per replica [default: 20].
    #[arg(long, env = "PACSYNC_RATE_LIMIT_ENDPOINT_PER_SECOND")]
    pub rate_limit_endpoint_per_second: Option<u32>,
    /// Requests one endpoint's token may send at once after a quiet spell [default: 200].
    #[arg(long, env = "PACSYNC_RATE_LIMIT_ENDPOINT_BURST")]
    pub rate_limit_endpoint_burst: Option<u32>,
    /// Requests per second one admin token name may sustain, per replica [default: 50].
    #[arg(long, env = "PACSYNC_RATE_LIMIT_ADMIN_PER_SECOND")]
    pub rate_limit_admin_per_second: Option<u32>,
    /// Requests one admin token name may send at once after a quiet spell [default: 500].
    #[arg(long, env = "PACSYNC_RATE_LIMIT_ADMIN_BURST")]
    pub rate_limit_admin_burst: Option<u32>,
    /// Requests per second without a valid token (registration, health) one client address may
    /// sustain, per replica; an IPv6 /64 counts as one address [default: 20].
    #[arg(long, env = "PACSYNC_RATE_LIMIT_ADDRESS_PER_SECOND")]
    pub rate_limit_address_per_second: Option<u32>,
    /// Requests without a valid token one client address may send at once [default: 200].
    #[arg(long, env = "PACSYNC_RATE_LIMIT_ADDRESS_BURST")]
    pub rate_limit_address_burst: Option<u32>,
    /// Event streams one endpoint's token may hold open, per replica [default: 4].
    #[arg(long, env = "PACSYNC_MAX_STREAMS_PER_ENDPOINT")]
    pub max_streams_per_endpoint: Option<u32>,
    /// Event streams one admin token name may hold open, per replica [default: 64].
    #[arg(long, env = "PACSYNC_MAX_STREAMS_PER_ADMIN")]
    pub max_streams_per_admin: Option<u32>,
    /// Requests (`get_status`, `ping`) per second one event stream may sustain [default: 1].
    #[arg(long, env = "PACSYNC_STREAM_MESSAGES_PER_SECOND")]
    pub stream_messages_per_second: Option<u32>,
    /// Requests one event stream may send at once after a quiet spell [default: 10].
    #[arg(long, env = "PACSYNC_STREAM_MESSAGE_BURST")]
    pub stream_message_burst: Option<u32>,
    /// Time a request may take before it is answered 503 REQUEST_TIMEOUT, in milliseconds; an
    /// open event stream is not a request and is not cut [default: 50000].
    #[arg(long, env = "PACSYNC_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Event log rows a resuming stream reads per query [default: 500].
    #[arg(long, env = "PACSYNC_EVENT_BACKLOG_PAGE")]
    pub event_backlog_page: Option<u32>,
    /// Days a package state nothing else needs is kept, and endpoint history with it, at most
    /// 36500; 0 for forever [default: 30].
    #[arg(long, env = "PACSYNC_STATE_RETENTION_DAYS")]
    pub state_retention_days: Option<u32>,
    /// How often unneeded package states are collected, in milliseconds [default: 3600000].
    #[arg(long, env = "PACSYNC_STATE_COLLECT_INTERVAL_MS")]
    pub state_collect_interval_ms: Option<u64>,
    /// How log lines are written to stderr: `human`, or `json` (one object per line, for log
    /// shippers) [default: human].
    #[arg(long, env = "PACSYNC_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// How the host writes its log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people: time, level, span fields, message.
    #[default]
    Human,
    /// One JSON object per line: `timestamp`, `level`, `fields.message`, `target`, and the
    /// request span's fields (`span.request_id`, method, URI).
    Json,
}

/// `Settings { field: high.field.or(low.field), ... }` for every listed field; a field left out
/// does not compile, so a new setting cannot be forgotten.
macro_rules! layered {
    ($high:ident over $low:ident: $($field:ident),* $(,)?) => {
        Settings { $($field: $high.$field.or($low.$field)),* }
    };
}

impl Settings {
    /// Layers `self` (higher precedence) over `lower`.
    fn over(self, lower: Settings) -> Settings {
        let high = self;
        layered!(high over lower:
            listen, data_dir, database_url, jwt_key_file, lease_seconds, reaper_interval_ms,
            endpoint_token_days, postgres_bin_dir, plugin_deadline_ms, plugin_memory_mib,
            plugin_concurrency, plugin_cache_dir, ws_ping_ms, ws_timeout_ms, event_buffer,
            socket_send_buffer, availability_max_age_days, tls_cert, tls_key,
            rate_limits, rate_limit_endpoint_per_second, rate_limit_endpoint_burst,
            rate_limit_admin_per_second, rate_limit_admin_burst,
            rate_limit_address_per_second, rate_limit_address_burst,
            max_streams_per_endpoint, max_streams_per_admin,
            stream_messages_per_second, stream_message_burst,
            request_timeout_ms, event_backlog_page,
            state_retention_days, state_collect_interval_ms, log_format,
        )
    }
}

/// The longest `state_retention_days` accepted.
pub const MAX_STATE_RETENTION_DAYS: u32 = 36_500;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// Fully resolved host configuration.
#[derive(Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// State directory.
    pub data_dir: PathBuf,
    /// External database URL, or `None` for the embedded cluster.
    pub database_url: Option<String>,
    /// Token signing secret file.
    pub jwt_key_file: PathBuf,
    /// Lease length for in-progress operations.
    pub lease: Duration,
    /// Reaper period.
    pub reaper_interval: Duration,
    /// Endpoint token lifetime.
    pub endpoint_token_ttl: Duration,
    /// Where the PostgreSQL server binaries are, if configured.
    pub postgres_bin_dir: Option<PathBuf>,
    /// Per-call limits of policy plugins.
    pub plugin_limits: crate::policy::wasm::Limits,
    /// Compiled-component cache directory.
    pub plugin_cache_dir: PathBuf,
    /// WebSocket keepalive.
    pub keepalive: crate::events::Keepalive,
    /// Per-subscriber event buffer.
    pub event_buffer: usize,
    /// Kernel send buffer per connection, if bounded.
    pub socket_send_buffer: Option<usize>,
    /// Certificate and key when the host serves TLS itself.
    pub tls: Option<TlsFiles>,
    /// Age after which availability reports no longer constrain the pool (`None`: never).
    pub availability_max_age: Option<Duration>,
    /// Rate, stream, message, time and backlog limits.
    pub limits: Limits,
    /// How long unneeded package states and endpoint history are kept (`None`: forever).
    pub state_retention: Option<Duration>,
    /// How often unneeded package states are collected.
    pub state_collect_interval: Duration,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// The PEM files the host serves HTTPS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

// Hand-written so that a password in the database URL never reaches a log line.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_key_file", &self.jwt_key_file)
            .field("lease", &self.lease)
            .field("reaper_interval", &self.reaper_interval)
            .field("endpoint_token_ttl", &self.endpoint_token_ttl)
            .field("postgres_bin_dir", &self.postgres_bin_dir)
            .field("plugin_limits", &self.plugin_limits)
            .field("plugin_cache_dir", &self.plugin_cache_dir)
            .field("keepalive", &self.keepalive)
            .field("event_buffer", &self.event_buffer)
            .field("socket_send_buffer", &self.socket_send_buffer)
            .field("tls", &self.tls)
            .field("availability_max_age", &self.availability_max_age)
            .field("limits", &self.limits)
            .field("state_retention", &self.state_retention)
            .field("state_collect_interval", &self.state_collect_interval)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl Config {
    /// Resolves command-line/environment settings over the optional TOML file.
    pub fn resolve(cli: Settings, file: Option<&Path>) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<Settings>(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => Settings::default(),
        };
        let s = cli.over(from_file);
        let limits = Limits::resolve(&s)?;
        let data_dir = s.data_dir.unwrap_or_else(default_data_dir);
        let lease_seconds = s.lease_seconds.unwrap_or(120);
        if lease_seconds == 0 {
            return Err(ConfigError::Invalid {
                name: "lease_seconds",
                reason: "must be at least 1",
            });
        }
        let reaper_ms = s.reaper_interval_ms.unwrap_or(5000);
        if reaper_ms < 10 {
            return Err(ConfigError::Invalid {
                name: "reaper_interval_ms",
                reason: "must be at least 10",
            });
        }
        let token_days = s.endpoint_token_days.unwrap_or(365);
        if token_days == 0 {
            return Err(ConfigError::Invalid {
                name: "endpoint_token_days",
                reason: "must be at least 1",
            });
        }
        let plugin_deadline_ms = s.plugin_deadline_ms.unwrap_or(1000);
        let plugin_memory_mib = s.plugin_memory_mib.unwrap_or(64);
        let plugin_concurrency = s.plugin_concurrency.unwrap_or(16);
        if plugin_deadline_ms == 0 || plugin_memory_mib == 0 || plugin_concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "plugin limits",
                reason: "must be at least 1",
            });
        }
        if plugin_memory_mib > 4096 {
            return Err(ConfigError::Invalid {
                name: "plugin_memory_mib",
                reason: "must be at most 4096 (a 32-bit WebAssembly memory's limit)",
            });
        }
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "tls_cert / tls_key",
                    reason: "give both (a certificate and its key) or neither",
                });
            }
        };
        // PostgreSQL's timestamps begin in 4713 BC: a retention reaching back further makes
        // every collection round fail (timestamp out of range) instead of keeping states longer.
        let retention_days = s.state_retention_days.unwrap_or(30);
        if retention_days > MAX_STATE_RETENTION_DAYS {
            return Err(ConfigError::Invalid {
                name: "state_retention_days",
                reason: "must be at most 36500 (100 years); 0 keeps states forever",
            });
        }
        let collect_ms = s.state_collect_interval_ms.unwrap_or(3_600_000);
        if collect_ms < 10 {
            return Err(ConfigError::Invalid {
                name: "state_collect_interval_ms",
                reason: "must be at least 10",
            });
        }
        let ping = s.ws_ping_ms.unwrap_or(20_000).max(10);
        let keepalive = crate::events::Keepalive {
            ping_every: Duration::from_millis(ping),
            timeout: Duration::from_millis(s.ws_timeout_ms.unwrap_or(60_000).max(ping)),
        };
        Ok(Config {
            limits,
            state_retention: match retention_days {
                0 => None,
                days => Some(Duration::from_secs(u64::from(days) * 86_400)),
            },
            state_collect_interval: Duration::from_millis(collect_ms),
            log_format: s.log_format.unwrap_or_default(),
            keepalive,
            event_buffer: s.event_buffer.unwrap_or(1024).max(1),
            socket_send_buffer: s.socket_send_buffer,
            tls,
            availability_max_age: match s.availability_max_age_days.unwrap_or(30) {
                0 => None,
                days => Some(Duration::from_secs(u64::from(days) * 86_400)),
            },
            plugin_limits: crate::policy::wasm::Limits {
                deadline: Duration::from_millis(plugin_deadline_ms),
                memory_bytes: plugin_memory_mib << 20,
                concurrent_calls: plugin_concurrency,
            },
            listen: s.listen.unwrap_or_else(|| ([127, 0, 0, 1], 8080).into()),
            jwt_key_file: s
                .jwt_key_file
                .unwrap_or_else(|| data_dir.join("jwt-secret")),
            plugin_cache_dir: s
                .plugin_cache_dir
                .unwrap_or_else(|| data_dir.join("plugin-cache")),
            data_dir,
            database_url: s.database_url.filter(|url| !url.is_empty()),
            lease: Duration::from_secs(lease_seconds.into()),
            reaper_interval: Duration::from_millis(reaper_ms),
            endpoint_token_ttl: Duration::from_secs(u64::from(token_days) * 86_400),
            postgres_bin_dir: s.postgres_bin_dir,
        })
    }
}

/// `/var/lib/pacsync` for a system service (root), else the user's XDG state dir.
pub fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/pacsync");
    }
    dirs::state_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pacsync")
}
