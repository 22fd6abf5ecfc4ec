//! Starting and stopping the host: database, keys, reaper and the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::api::limits::{ClientAddr, ClientListener};
use crate::auth::{KeyError, Keys};
use crate::config::Config;
use crate::db::{self, DatabaseSetupError};
use crate::embedded_postgres::{EmbeddedPostgres, EmbeddedPostgresError};
use crate::policy::Policies;
use crate::tls::{Certificates, TlsError};

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The embedded cluster failed.
    #[error(transparent)]
    Embedded(#[from] EmbeddedPostgresError),
    /// Connecting or migrating failed.
    #[error(transparent)]
    Database(#[from] DatabaseSetupError),
    /// The signing key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A running host.
pub struct Host {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// Handler state, e.g. for tests that inspect the database.
    pub state: AppState,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    reaper: JoinHandle<()>,
    hub: JoinHandle<()>,
    revocations: JoinHandle<()>,
    retention: JoinHandle<()>,
    presence: JoinHandle<()>,
    embedded: Option<EmbeddedPostgres>,
    certificates: Option<Arc<Certificates>>,
}

/// Maximum database connections per replica.
const MAX_CONNECTIONS: u32 = 32;

impl Host {
    /// Starts the database (embedded or external), migrates it, and serves the API.
    pub async fn start(config: Config) -> Result<Host, StartError> {
        if nix::unistd::geteuid().is_root() {
            tracing::warn!(
                "running as root; run the host as its own user instead, with the hardened systemd \
                 unit host/dist/pacsync-host.service and its sysusers.d entry (user `pacsync`)"
            );
        }
        // Unusable certificates fail the start before any database work.
        let certificates = match &config.tls {
            Some(files) => Some(Arc::new(Certificates::load(&files.cert, &files.key)?)),
            None => None,
        };
        // So does a signing key too short to trust, with how to make one.
        let default_key = config.jwt_key_file == config.data_dir.join("jwt-secret");
        let keys = Keys::load(&config.jwt_key_file, default_key)?;
        let embedded = match &config.database_url {
            Some(_) => None,
            None => {
                let cluster =
                    EmbeddedPostgres::new(&config.data_dir, config.postgres_bin_dir.as_deref())?;
                cluster.start().await?;
                Some(cluster)
            }
        };
        let options = match (&config.database_url, &embedded) {
            (Some(url), _) => db::options_from_url(url)?,
            (None, Some(cluster)) => cluster.connect_options(),
            (None, None) => unreachable!("embedded cluster is started when no URL is configured"),
        };
        let pool = db::connect_and_migrate(&options, MAX_CONNECTIONS).await?;
        // Revoked admin tokens are refused from the first request on.
        let revoked = crate::auth::Revocations::load(&pool)
            .await
            .map_err(DatabaseSetupError::from)?;
        let keys = keys.with_revocations(revoked.clone());
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let policies = Policies::new(config.plugin_limits, Some(config.plugin_cache_dir.clone()));
        crate::metrics::install();
        let shutdown = CancellationToken::new();
        let events = crate::events::EventHub::new(config.event_buffer);
        let limits = crate::api::limits::Limits::new(&config.limits);
        let state = AppState {
            db: pool.clone(),
            config: Arc::new(config),
            keys: Arc::new(keys),
            policies,
            events: events.clone(),
            shutdown: shutdown.clone(),
            limits,
            presence: crate::events::Presence::default(),
        };
        let hub = tokio::spawn(events.run(pool.clone(), shutdown.clone()));
        let revocations = tokio::spawn(revoked.follow(pool.clone(), shutdown.clone()));
        let reaper = tokio::spawn(crate::reaper::run(
            pool,
            state.config.reaper_interval,
            shutdown.clone(),
        ));
        let retention = tokio::spawn(crate::retention::run(
            state.db.clone(),
            state.config.state_retention,
            state.config.state_collect_interval,
            shutdown.clone(),
        ));
        let presence = tokio::spawn(
            state
                .presence
                .clone()
                .renew(state.db.clone(), shutdown.clone()),
        );
        let app = crate::api::router(state.clone());
        // Bounding each connection's kernel send buffer bounds what a subscriber that stops
        // reading can pin in memory, and makes it visibly slow instead (it then lags the hub).
        let send_buffer = state.config.socket_send_buffer;
        let listener = axum::serve::ListenerExt::tap_io(
            ClientListener(listener),
            move |tcp: &mut tokio::net::TcpStream| {
                let _ = tcp.set_nodelay(true);
                if let Some(bytes) = send_buffer {
                    let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(bytes);
                }
            },
        );
        let server = match &certificates {
            Some(certificates) => {
                let listener = crate::tls::TlsListener::new(listener, certificates.acceptor())
                    .map_err(|source| StartError::Bind { addr, source })?;
                tokio::spawn(serve(listener, app, shutdown.clone()))
            }
            None => tokio::spawn(serve(listener, app, shutdown.clone())),
        };
        tracing::info!(
            %addr,
            embedded = embedded.is_some(),
            tls = state.config.tls.is_some(),
            "pacsync host listening"
        );
        Ok(Host {
            addr,
            state,
            shutdown,
            server,
            reaper,
            hub,
            revocations,
            retention,
            presence,
            embedded,
            certificates,
        })
    }

    /// The certificate the host serves HTTPS with, if it does; `reload` it after renewing.
    pub fn certificates(&self) -> Option<Arc<Certificates>> {
        self.certificates.clone()
    }

    /// A token that stops the host when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits for shutdown to be requested, then drains requests and stops the database.
    pub async fn wait(self) -> Result<(), StartError> {
        self.shutdown.cancelled().await;
        self.stop().await
    }

    /// Stops accepting, finishes in-flight requests, closes the pool, stops the embedded cluster.
    pub async fn stop(self) -> Result<(), StartError> {
        self.shutdown.cancel();
        if let Ok(Err(e)) = self.server.await {
            tracing::warn!(error = %e, "HTTP server ended with an error");
        }
        let _ = self.reaper.await;
        let _ = self.hub.await;
        let _ = self.revocations.await;
        let _ = self.retention.await;
        let _ = self.presence.await;
        self.state.db.close().await;
        if let Some(cluster) = &self.embedded {
            cluster.stop().await?;
        }
        tracing::info!("pacsync host stopped");
        Ok(())
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets in-flight requests finish. Each
/// request carries its connection's client address, for the per-address rate limit.
async fn serve<L>(
    listener: L,
    app: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = ClientAddr>,
    ClientAddr: for<'a> Connected<IncomingStream<'a, L>>,
{
    let app = app.into_make_service_with_connect_info::<ClientAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
