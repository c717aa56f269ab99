//! The command line. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Herald delivers a finished newsletter issue: a responsive email to every
/// confirmed subscriber, RSS/Atom/JSON feeds, and a web archive.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, propagate_version = true)]
pub struct Cli {
    /// The config file [default: ./herald.toml, or built-in defaults when
    /// there is none]. Relative paths in it are taken from its folder. A
    /// file named here must exist.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

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
    /// <slug>.txt and a complete <slug>.eml, for a placeholder recipient;
    /// or, with --watch, a live preview in the browser.
    Preview(PreviewArgs),
    /// Deliver an issue to every active subscriber, exactly once. Running it
    /// again resumes (after a crash, a pause, or for deferred retries that
    /// have come due) and never mails anyone twice.
    Send(SendArgs),
    /// Where a campaign stands: counts by state, send rate, common errors.
    Status {
        /// An issue file or slug (default: the latest campaign).
        issue: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Render every issue into the static site: index.html, one page per
    /// issue (issues/<slug>/index.html) and the feeds (feed.xml, atom.xml,
    /// feed.json). Only files whose bytes changed are written; nothing is
    /// written when an issue is invalid. Pings the WebSub hub, if one is
    /// configured, when a feed changed.
    Build(BuildArgs),
    /// Serve the built site and feeds over HTTP, with ETag, Last-Modified and
    /// Cache-Control. A later `herald build` is picked up without a restart.
    /// Stops on Ctrl-C.
    Serve(ServeArgs),
    /// Send whatever is due until stopped (Ctrl-C or SIGTERM): campaigns
    /// that are sending, confirmations, welcomes and their retries. Several
    /// workers on one PostgreSQL database share the work.
    Worker,
    /// Manage the subscriber list: add, remove or erase addresses, list,
    /// count, and move a list in and out as CSV.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// The admin site (the dashboard that `herald serve` starts on `[admin]
    /// listen` when HERALD_ADMIN_PASSWORD_HASH is set).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The database itself: move a list from SQLite to PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// Bounces and complaints: take reports in (from an MTA pipe or a
    /// backlog), list them, or parse files without touching the database.
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// Check the whole setup before a real send: SPF, DKIM, DMARC and
    /// alignment in DNS, the relay (TLS, AUTH, PIPELINING, SIZE), the web
    /// side (https, one-click unsubscribe, feeds) and the latest issue's
    /// mail. Prints a checklist with a fix for each problem; exits 1 when
    /// any check is an error.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script on stdout, e.g.
    /// `herald completions bash > /usr/share/bash-completion/completions/herald`
    /// (see the README for zsh and fish).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page herald(1) on stdout, or with DIR write a page for
    /// every command there (herald.1, herald-send.1, ...), e.g.
    /// `herald man /usr/local/share/man/man1`.
    Man {
        /// The folder for every command's page; made if missing.
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Read a password (without echo on a terminal, else one line of
    /// stdin) and print its Argon2id hash, for HERALD_ADMIN_PASSWORD_HASH,
    /// e.g. `export HERALD_ADMIN_PASSWORD_HASH=$(herald admin hash-password)`.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy this config's SQLite database into an empty PostgreSQL database:
    /// subscribers with their history, tokens, suppressions, campaigns,
    /// deliveries and bounce reports, with their ids. Reports and verifies
    /// the row counts; a failed copy leaves the destination empty. Stop
    /// `herald serve` and `herald send` first, then point `[database] url`
    /// at the new database.
    Copy {
        /// The destination, `postgres://USER@HOST[:PORT]/DB` (password in
        /// HERALD_DATABASE_PASSWORD, PGPASSWORD or ~/.pgpass).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read one message on stdin and record what it reports: the target of
    /// an MTA alias or pipe. Exits 75 (EX_TEMPFAIL) when it cannot record
    /// the message, so the MTA keeps it and tries again. Only the first
    /// 25 MB of a message are kept; the rest is read and dropped.
    Process {
        /// The envelope recipient the MTA delivered to, where the VERP tag
        /// is [default: $ORIGINAL_RECIPIENT or $RECIPIENT, as Postfix's
        /// local(8) and Exim set them].
        #[arg(long, value_name = "ADDR")]
        recipient: Option<String>,
    },
    /// Record a backlog: Maildir folders, mbox files or single .eml files.
    Import {
        /// Maildir folders, mbox files or .eml files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The reports received, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Parse messages and print what each reports; touches no database.
    Parse {
        /// Message files (.eml).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Where to write the site [default: `[paths] output` of the config].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on, e.g. 0.0.0.0:8080
    /// [default: `[server] listen` of the config].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve pages and webhooks only, and leave all sending (confirmations,
    /// welcomes) to `herald worker`: for web front ends on their own
    /// machines.
    #[arg(long)]
    pub web_only: bool,
}

/// A subscriber state, for `--state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    Pending,
    Active,
    Unsubscribed,
    Bounced,
    Complained,
}

impl From<StateArg> for crate::store::subscribers::SubscriberState {
    fn from(state: StateArg) -> Self {
        use crate::store::subscribers::SubscriberState;
        match state {
            StateArg::Pending => SubscriberState::Pending,
            StateArg::Active => SubscriberState::Active,
            StateArg::Unsubscribed => SubscriberState::Unsubscribed,
            StateArg::Bounced => SubscriberState::Bounced,
            StateArg::Complained => SubscriberState::Complained,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Add an address. It starts pending and gets a confirmation mail (the
    /// double opt-in), unless --confirmed.
    Add {
        email: String,
        /// The subscriber's name, shown nowhere but the list and exports.
        #[arg(long)]
        name: Option<String>,
        /// Active at once, without a confirmation mail: for moving a list
        /// whose consent was collected elsewhere. Recorded as the reason.
        #[arg(long)]
        confirmed: bool,
    },
    /// Unsubscribe an address, or with --erase delete everything about it.
    Remove {
        email: String,
        /// Delete the subscriber, their history and tokens, and the address
        /// in past deliveries. Only a hash of the address is kept, so it is
        /// never added again (by the form, add or import).
        #[arg(long)]
        erase: bool,
    },
    /// Print the list, oldest first.
    List {
        /// Only subscribers in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Subscribers in each state.
    Count,
    /// Import a CSV file with a header row: an `email` column and
    /// optionally `name`. Bad rows are reported by line on stderr (exit 1)
    /// and the good ones imported; addresses already on the list are left
    /// as they are, so importing a file twice changes nothing.
    Import {
        file: PathBuf,
        /// Imported addresses are active at once instead of pending with a
        /// confirmation mail each: for a list that already confirmed.
        #[arg(long)]
        confirmed: bool,
    },
    /// Write the list as CSV to stdout (email, name, state, source, dates,
    /// consent), ready for `import` elsewhere.
    Export {
        /// Only subscribers in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
    },
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The issue file.
    pub issue: PathBuf,
    /// Where to write the files.
    #[arg(long, default_value = "preview", conflicts_with = "watch")]
    pub out: PathBuf,
    /// Serve a live preview on loopback instead of writing files: the email
    /// at phone and desktop widths, its text part, its line in an inbox, its
    /// size and the issue's diagnostics. It renders again, and the page
    /// reloads itself, whenever the issue, a template or the config changes.
    #[arg(long)]
    pub watch: bool,
    /// With --watch, the address and port to listen on (default
    /// 127.0.0.1:8082, or a free port when that one is taken).
    #[arg(long, value_name = "ADDR", requires = "watch")]
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The issue file (with --cancel, the file or its slug).
    pub issue: PathBuf,
    /// Start a new campaign even though this issue was sent: everybody
    /// active gets it again.
    #[arg(long)]
    pub force_new: bool,
    /// Send one test copy to this address; records nothing.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["force_new", "dry_run"])]
    pub to: Option<String>,
    /// Schedule the send instead: "2026-12-07 08:00" in the site's time
    /// zone ([site] timezone), or RFC 3339 such as
    /// "2026-12-07T08:00:00+08:00". The issue is rendered now, and
    /// `herald worker` (or `herald serve`) starts it then.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["to", "dry_run", "concurrency", "rate"])]
    pub at: Option<String>,
    /// Cancel the issue's scheduled send, before it starts.
    #[arg(long, conflicts_with_all = ["to", "dry_run", "concurrency", "rate", "at", "force_new"])]
    pub cancel: bool,
    /// Do everything except talk to the mail server: report what would go out.
    #[arg(long)]
    pub dry_run: bool,
    /// SMTP connections at once, 1 to 1000 (default: [send] concurrency).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: Option<u16>,
    /// Messages per second, 0 = unlimited, at most 1000000 (default: [send] rate).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::config::MAX_RATE)))]
    pub rate: Option<u32>,
}
