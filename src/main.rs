use std::process::ExitCode;

use clap::Parser;
use herald::cli::{Cli, Command};
use herald::commands::{self, UserError};
use herald::config::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", commands::error_message(&error));
            if error.chain().any(|cause| cause.is::<UserError>()) {
                ExitCode::from(1)
            } else {
                ExitCode::from(3)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Only the default file may be missing: a file named on the command
    // line that is not there is a mistake, not a wish for the defaults.
    let explicit = cli.config.is_some();
    let config = cli.config.unwrap_or_else(|| "herald.toml".into());
    let load = || Settings::load(&config, explicit).map_err(UserError::wrap);
    match cli.command {
        Command::Init { dir } => commands::init::run(&dir),
        Command::Check { paths } => commands::check::run(&load()?, &paths),
        // The live preview loads the config itself, again at every change.
        Command::Preview(args) if args.watch => commands::preview::watch(&config, explicit, &args),
        Command::Preview(args) => commands::preview::run(&load()?, &args.issue, &args.out),
        Command::Send(args) => commands::send::run(&load()?, &args, cli.quiet),
        Command::Status { issue, json } => commands::status::run(&load()?, issue.as_deref(), json),
        Command::Build(args) => commands::build::run(&load()?, args.out.as_deref()),
        Command::Serve(args) => commands::serve::run(load()?, &args),
        Command::Worker => commands::worker::run(load()?),
        Command::Admin(command) => commands::admin::run(&command),
        Command::Db(command) => commands::db::run(&load()?, &command),
        Command::Subscribers(command) => commands::subscribers::run(&load()?, &command),
        Command::Bounces(command) => commands::bounces::run(load, &command),
        Command::Doctor { json } => commands::doctor::run(&load()?, json),
        Command::Completions { shell } => commands::completions::run(shell),
        Command::Man { dir } => commands::man::run(dir.as_deref()),
    }
}

fn init_tracing(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("herald={default},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
