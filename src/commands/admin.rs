//! `herald admin hash-password`: reads the editor's password and prints
//! its Argon2id hash. The hashing is the domain's; this only asks and prints.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::AdminCommand;
use crate::domain::AdminPasswordHash;

use super::{success, user_error};

pub fn run(command: &AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::HashPassword => hash_password(),
    }
}

fn hash_password() -> anyhow::Result<ExitCode> {
    let password = read_password()?;
    let hash = AdminPasswordHash::hash(&password).map_err(|e| user_error(e.to_string()))?;
    println!("{}", hash.as_phc());
    success()
}

/// On a terminal: a prompt on stderr and no echo, asked twice so that a
/// typo does not lock the editor out. Otherwise (a pipe, a script): the
/// first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password("Admin password: ").context("reading the password")?;
        let second = rpassword::prompt_password("Again: ").context("reading the password")?;
        if first != second {
            return Err(user_error("the two passwords differ; nothing was printed"));
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(user_error(
            "no password on stdin; e.g. `echo demo | herald admin hash-password`",
        ));
    }
    Ok(password.to_string())
}
