//! `tether serve`: runs a node on the chosen runtime until SIGTERM or SIGINT
//! has drained it (PROTOCOL.md section 3), then returns so the process exits 0.
//! SIGHUP re-reads `jwt_jwks_file` and the TLS certificate and key, when
//! set, without touching a connection.
//! With `redis_url` the node shares its channels with the other nodes of
//! that Redis (PROTOCOL.md section 6); without it the hub stays in process.
//! With any `[proxy]` URL the node asks the application's backend
//! (PROTOCOL.md section 13); without one its authorizer decides alone.

use std::io;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tether_core::{Handler, NodeOptions};
use tether_tls::ServerTls;
use tracing::{info, warn};

use crate::app::{AppError, ServePlan};
use crate::auth::NodeAuthorizer;
use crate::proxy::ProxyHandler;
use crate::secret::mask_url_password;
use crate::settings::{Runtime, Settings, SettingsError};

/// Runs the planned node until a signal has shut it down gracefully.
pub fn serve(plan: ServePlan) -> Result<(), AppError> {
    let settings = plan.settings;
    let api_key = settings.api_key.clone();
    let authorizer = Arc::new(match plan.authenticator {
        Some(authenticator) => NodeAuthorizer::new(authenticator, api_key),
        None => NodeAuthorizer::api_only(api_key),
    });
    let tls = plan.tls;
    on_reload_signal(Arc::clone(&authorizer), settings.clone(), tls.clone())
        .map_err(AppError::Io)?;
    let handler: Arc<dyn Handler> = if settings.proxy.is_enabled() {
        Arc::new(ProxyHandler::new(&settings.proxy, authorizer))
    } else {
        authorizer
    };
    let options = NodeOptions {
        config: settings.server.clone(),
        listen: settings.listen,
        handler,
        seed: None,
    };
    let backplane = match &settings.redis_url {
        Some(url) => Some(redis_backplane(url, plan.redis_ca, &settings.server)?),
        None => None,
    };
    match settings.runtime {
        Runtime::Smol => {
            let threads = settings.shards();
            let mut server = tether_smol::Server::bind(options)
                .map_err(AppError::Io)?
                .with_threads(threads);
            if let Some(backplane) = backplane {
                server = server.with_backplane(backplane);
            }
            if let Some(tls) = tls {
                server = server.with_tls(tls);
            }
            info!(
                "listening on {} (runtime smol, {threads} threads)",
                server.local_addr().map_err(AppError::Io)?
            );
            let handle = server.handle();
            on_shutdown_signal(move || handle.shutdown()).map_err(AppError::Io)?;
            tether_smol::block_on(server.run()).map_err(AppError::Io)?;
        }
        Runtime::Blocking => {
            let mut server = tether_blocking::Server::bind(options).map_err(AppError::Io)?;
            if let Some(backplane) = backplane {
                server = server.with_backplane(backplane);
            }
            if let Some(tls) = tls {
                server = server.with_tls(tls);
            }
            info!("listening on {} (runtime blocking)", server.local_addr());
            let handle = server.handle();
            on_shutdown_signal(move || handle.shutdown()).map_err(AppError::Io)?;
            server.run().map_err(AppError::Io)?;
        }
        Runtime::Tokio | Runtime::TokioCurrentThread => {
            // Shards on one thread would only split its work.
            let threads = match settings.runtime {
                Runtime::TokioCurrentThread => 1,
                _ => settings.shards(),
            };
            let mut server = tether_tokio::Server::bind(options)
                .map_err(AppError::Io)?
                .with_threads(threads);
            if let Some(backplane) = backplane {
                server = server.with_backplane(backplane);
            }
            if let Some(tls) = tls {
                server = server.with_tls(tls);
            }
            info!(
                "listening on {} (runtime {}, {threads} threads)",
                server.local_addr().map_err(AppError::Io)?,
                settings.runtime.name()
            );
            let handle = server.handle();
            on_shutdown_signal(move || handle.shutdown()).map_err(AppError::Io)?;
            // Multi-threaded unless asked otherwise: BENCHMARKS.md says why.
            let mut builder = match settings.runtime {
                Runtime::TokioCurrentThread => tokio::runtime::Builder::new_current_thread(),
                _ => tokio::runtime::Builder::new_multi_thread(),
            };
            let runtime = builder.enable_all().build().map_err(AppError::Io)?;
            let served = runtime.block_on(server.run());
            // The process is about to exit: an authorizer check still
            // running on the blocking pool is not waited for.
            runtime.shutdown_background();
            served.map_err(AppError::Io)?;
        }
    }
    info!("shut down");
    Ok(())
}

/// The Redis backplane at `url`, for any runtime; with `ca_pem` (the
/// checked `redis_ca_file`), a `rediss://` link trusting only its
/// certificates.
fn redis_backplane(
    url: &str,
    ca_pem: Option<Vec<u8>>,
    config: &tether_core::ServerConfig,
) -> Result<tether_redis::RedisBackplane, AppError> {
    let backplane = match ca_pem {
        Some(pem) => tether_redis::RedisBackplane::trusting(url, pem, config).map_err(|error| {
            AppError::Settings(SettingsError::Invalid {
                key: "redis_ca_file",
                message: error.to_string(),
            })
        })?,
        None => tether_redis::RedisBackplane::new(url, config)
            .map_err(|error| AppError::Io(io::Error::other(error)))?,
    };
    info!(
        "sharing channels through Redis at {}",
        mask_url_password(url)
    );
    Ok(backplane)
}

/// Calls `shutdown` on the first SIGTERM or SIGINT; a second one ends the
/// process at once, for an operator who will not wait for the drain.
pub(crate) fn on_shutdown_signal(shutdown: impl Fn() + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut received = signals.forever();
            if let Some(signal) = received.next() {
                info!(signal, "shutting down gracefully");
                shutdown();
            }
            if received.next().is_some() {
                warn!("second signal: exiting without waiting for the drain");
                std::process::exit(1);
            }
        })?;
    Ok(())
}

/// Re-reads the JWKS file into the node's key set, and the TLS certificate
/// and key, on every SIGHUP; a file that cannot be used is logged and what
/// is in force stays. Open connections are not touched: a new TLS
/// handshake gets the new certificate. Without either, SIGHUP is only
/// logged.
fn on_reload_signal(
    authorizer: Arc<NodeAuthorizer>,
    settings: Settings,
    tls: Option<ServerTls>,
) -> io::Result<()> {
    let mut signals = Signals::new([SIGHUP])?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                let reloaded = authorizer
                    .authenticator()
                    .and_then(|authenticator| authenticator.reload_key_set(&settings));
                match reloaded {
                    None => info!("SIGHUP: no jwt_jwks_file to re-read"),
                    Some(Ok(keys)) => info!(keys, "SIGHUP: jwt_jwks_file re-read"),
                    Some(Err(error)) => warn!(%error, "SIGHUP: keeping the keys in force"),
                }
                match tls.as_ref().map(ServerTls::reload) {
                    None => {}
                    Some(Ok(())) => info!("SIGHUP: tls_cert and tls_key re-read"),
                    Some(Err(error)) => {
                        warn!(%error, "SIGHUP: keeping the TLS certificate in force");
                    }
                }
            }
        })?;
    Ok(())
}
