//! `herald db copy`: move the list from SQLite to PostgreSQL.

use std::process::ExitCode;

use anyhow::Context;

use super::{success, user_error};
use crate::cli::DbCommand;
use crate::config::Settings;
use crate::store::copy::copy_database;
use crate::store::{Location, Store};

pub fn run(settings: &Settings, command: &DbCommand) -> anyhow::Result<ExitCode> {
    let DbCommand::Copy { to } = command;
    let from = settings.database()?;
    if !matches!(from, Location::Sqlite(_)) {
        return Err(user_error(format!(
            "db copy reads a SQLite database, but [database] url is {}",
            from.describe()
        )));
    }
    let destination = settings
        .database_at(to)
        .map_err(|e| user_error(format!("--to: {e:#}")))?;
    if !matches!(destination, Location::Postgres { .. }) {
        return Err(user_error(format!(
            "--to must be a postgres:// URL, not {}",
            destination.describe()
        )));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let source = Store::connect(&from).await?;
        let target = Store::connect(&destination).await?;
        println!(
            "copying {} into {}",
            from.describe(),
            destination.describe()
        );
        let copied = copy_database(&source, &target, |table| {
            println!(
                "  {:<20} {:>10} rows, verified",
                table.table, table.destination
            );
        })
        .await
        .map_err(|e| user_error(format!("{e:#}")))?;
        source.close().await;
        target.close().await;
        let rows: i64 = copied.iter().map(|t| t.destination).sum();
        println!(
            "copied {rows} rows in {} tables; now set [database] url = {:?} in the config",
            copied.len(),
            destination.describe()
        );
        anyhow::Ok(())
    })?;
    success()
}
