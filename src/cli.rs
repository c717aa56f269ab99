//! The command line. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Herald delivers a finished newsletter issue: a responsive email to every
/// confirmed subscriber, RSS/Atom/JSON feeds, and a web archive.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, propagate_version = true)]
pub struct Cli {
    /// The config file. Relative paths in it are taken from its folder.
    /// When the default file is missing, built-in defaults apply.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "herald.toml"
    )]
    pub config: PathBuf,

    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a newsletter: write a starter herald.toml and an issues/ folder
    /// with a sample issue. Never overwrites a file.
    Init {
        /// Where to create it.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Validate issue files. With no argument, the whole issues folder.
    /// Errors print as file:line:column and exit 1; warnings exit 0.
    Check {
        /// Issue files or folders of them.
        paths: Vec<PathBuf>,
    },
    /// Render one issue as the subscribers will get it: <slug>.html,
    /// <slug>.txt and a complete <slug>.eml, for a placeholder recipient.
    Preview(PreviewArgs),
    /// Deliver an issue to every active subscriber, exactly once. Running it
    /// again resumes (after a crash, a pause, or for deferred retries that
    /// have come due) and never mails anyone twice.
    Send(crate::commands::send::SendArgs),
    /// Where a campaign stands: counts by state, send rate, common errors.
    Status {
        /// An issue file or slug (default: the latest campaign).
        issue: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The issue file.
    pub issue: PathBuf,
    /// Where to write the files.
    #[arg(long, default_value = "preview")]
    pub out: PathBuf,
}
