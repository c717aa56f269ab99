//! `herald worker`: send whatever is due until stopped.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::{shutdown_signal, success};
use crate::config::Settings;
use crate::render::Templates;
use crate::send::daemon::run_worker;
use crate::store::Store;
use crate::subscription::{SubscriberMail, Subscriptions};

pub fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let settings = Arc::new(settings);
        let store = Store::connect(&settings.database()?).await?;
        let templates = Templates::load(&settings.templates_dir())?;
        let subscriptions = Arc::new(Subscriptions::new(settings.clone(), &templates)?);
        let mail = Arc::new(SubscriberMail::new(store.clone(), subscriptions));
        println!(
            "worker: sending what is due from {}",
            settings.database()?.describe()
        );
        run_worker(settings, store.clone(), mail, shutdown_signal()).await?;
        store.close().await;
        anyhow::Ok(())
    })?;
    println!("stopped");
    success()
}
