//! `herald man [DIR]`: herald(1) on stdout, or a page for every command
//! (herald.1, herald-send.1, herald-subscribers-add.1, ...) written into DIR.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

use super::{success, write_atomically, UserError};

pub fn run(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let pages = man_pages(Cli::command())?;
    let Some(dir) = dir else {
        // The first page is the top one: see `man_pages`.
        let (_, top) = pages.first().context("no man page was made")?;
        use std::io::Write;
        std::io::stdout().lock().write_all(top)?;
        return success();
    };
    for (name, page) in &pages {
        // A folder that cannot be made or written is the user's to fix.
        write_atomically(&dir.join(name), page).map_err(UserError::wrap)?;
    }
    println!("wrote {} man pages to {}", pages.len(), dir.display());
    success()
}

/// Every page as (file name, roff), the top command's first, then its
/// subcommands depth first. Pure, so the set of pages can be tested without
/// touching a disk.
pub fn man_pages(command: clap::Command) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    // `help` is clap's, not ours: it gets no page, as clap_mangen does too.
    let mut command = command.disable_help_subcommand(true);
    // Building names every subcommand for the page ("herald-subscribers-add").
    command.build();
    let mut pages = Vec::new();
    collect(command, &mut pages)?;
    Ok(pages)
}

fn collect(command: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(command.clone()).manual("Herald Manual");
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("rendering the man page of {}", command.get_name()))?;
    pages.push((man.get_filename(), page));
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        collect(sub.clone(), pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::man_pages;
    use crate::cli::Cli;

    #[test]
    fn every_command_has_a_page_named_for_its_path() {
        let pages = man_pages(Cli::command()).unwrap();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names.first(), Some(&"herald.1"));
        for expected in [
            "herald-send.1",
            "herald-serve.1",
            "herald-subscribers.1",
            "herald-subscribers-add.1",
            "herald-bounces-process.1",
            "herald-man.1",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(!names.iter().any(|name| name.contains("help")), "{names:?}");
        for (name, page) in &pages {
            let page = String::from_utf8_lossy(page);
            assert!(
                page.starts_with(".ie") || page.contains("\n.TH "),
                "{name}: {page}"
            );
        }
    }

    #[test]
    fn a_subcommand_page_carries_its_help_text() {
        let pages = man_pages(Cli::command()).unwrap();
        let (_, send) = pages
            .iter()
            .find(|(name, _)| name == "herald-send.1")
            .unwrap();
        let send = String::from_utf8_lossy(send);
        assert!(send.contains("exactly once"), "{send}");
        assert!(send.contains("dry\\-run"), "{send}");
    }
}
