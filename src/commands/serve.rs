use std::process::ExitCode;

use anyhow::Context;

use crate::config::Settings;
use crate::http::{router, AppState};

use super::{success, user_error};

/// Serves the built site until Ctrl-C (or SIGTERM). The CLI stays
/// synchronous; the runtime lives only as long as this command.
pub fn run(settings: Settings, listen: Option<&str>) -> anyhow::Result<ExitCode> {
    let listen = listen.unwrap_or(&settings.server.listen).to_string();
    let output = settings.output_dir();
    if !output.join("index.html").is_file() {
        eprintln!(
            "warning: {} has no index.html yet; run `herald build` (the server picks it up without a restart)",
            output.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| user_error(format!("cannot listen on {listen}: {e}")))?;
        let address = listener.local_addr()?;
        println!("serving {} on http://{address}/", output.display());
        axum::serve(listener, router(AppState::new(settings)))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")
    })?;
    println!("stopped");
    success()
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (service managers
/// and `kill` stop servers that way).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
