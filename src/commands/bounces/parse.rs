//! `herald bounces parse FILE... [--json]`: what the parser makes of each
//! file, without a config or a database.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::bounce::parse::READ_LIMIT;
use crate::bounce::{ParsedReport, ReportKind};

#[derive(Serialize)]
struct JsonLine<'a> {
    file: &'a str,
    kind: ReportKind,
    recipients: Vec<JsonRecipient<'a>>,
}

#[derive(Serialize)]
struct JsonRecipient<'a> {
    address: &'a str,
    status: Option<&'a str>,
    class: &'a str,
    diagnostic: &'a str,
}

/// serde_json's compact output with a space after `:` and `,`, the shape
/// the documentation shows.
struct SpacedFormatter;

impl serde_json::ser::Formatter for SpacedFormatter {
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
}

/// Reads at most what the parser looks at, so a huge file costs no more
/// memory than a small one.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(READ_LIMIT as u64)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub fn run(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut unreadable = Vec::new();
    // The FILE column fits the longest name given, within reason.
    let width = files
        .iter()
        .map(|f| f.display().to_string().chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    if !json {
        writeln!(
            out,
            "{:<width$}  {:<10}  {:<36}  {:<9}  {:<5}  DIAGNOSTIC",
            "FILE", "KIND", "ADDRESS", "STATUS", "CLASS"
        )?;
    }
    for path in files {
        let raw = match read_capped(path) {
            Ok(raw) => raw,
            Err(error) => {
                out.flush()?;
                eprintln!("error: cannot read {}: {error}", path.display());
                unreadable.push(path.display().to_string());
                continue;
            }
        };
        let report = crate::bounce::parse(&raw);
        let name = path.display().to_string();
        if json {
            print_json(&mut out, &name, &report)?;
        } else {
            print_rows(&mut out, &name, width, &report)?;
        }
    }
    out.flush()?;
    if unreadable.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(super::super::user_error(format!(
            "could not read {}",
            unreadable.join(", ")
        )))
    }
}

fn print_json(out: &mut impl Write, file: &str, report: &ParsedReport) -> anyhow::Result<()> {
    let line = JsonLine {
        file,
        kind: report.kind,
        recipients: report
            .recipients
            .iter()
            .map(|r| JsonRecipient {
                address: &r.address,
                status: r.status.as_deref(),
                class: r.class.as_str(),
                diagnostic: &r.diagnostic,
            })
            .collect(),
    };
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, SpacedFormatter);
    line.serialize(&mut serializer)?;
    writeln!(out)?;
    Ok(())
}

fn print_rows(
    out: &mut impl Write,
    file: &str,
    width: usize,
    report: &ParsedReport,
) -> anyhow::Result<()> {
    let kind = report.kind.as_str();
    if report.recipients.is_empty() {
        writeln!(
            out,
            "{file:<width$}  {kind:<10}  {:<36}  {:<9}  {:<5}  -",
            "-", "-", "-"
        )?;
    }
    for r in &report.recipients {
        let address = if r.address.is_empty() {
            "(none given)"
        } else {
            &r.address
        };
        let diagnostic: String = r.diagnostic.chars().take(80).collect();
        writeln!(
            out,
            "{file:<width$}  {kind:<10}  {address:<36}  {:<9}  {:<5}  {diagnostic}",
            r.status.as_deref().unwrap_or("-"),
            r.class.as_str(),
        )?;
    }
    Ok(())
}
