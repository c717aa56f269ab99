//! `herald db copy`: a SQLite database into an empty PostgreSQL one, so a
//! list can start embedded and grow. Every table is copied with its ids (so
//! tokens, VERP tags and Message-IDs already sent keep matching), a chunk
//! at a time, in one transaction on the destination: a copy that fails
//! leaves it empty. The identity sequences then continue after the highest
//! id, and the row counts of both sides are compared.

use super::query::Arg;
use super::{query, Backend, Row, Store};

/// How a column is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Blob,
}

use Kind::{Blob, Int, Text};

struct Table {
    name: &'static str,
    /// The first column is the key the copy pages by.
    columns: &'static [(&'static str, Kind)],
    /// Whether `id` is an identity whose sequence must move past the copy.
    identity: bool,
}

/// Parents before children, so every foreign key finds its row.
const TABLES: &[Table] = &[
    Table {
        name: "subscribers",
        columns: &[
            ("id", Int),
            ("email", Text),
            ("name", Text),
            ("state", Text),
            ("source", Text),
            ("unsubscribe_token", Text),
            ("consent_at", Int),
            ("consent_ip", Text),
            ("consent_user_agent", Text),
            ("created_at", Int),
            ("state_changed_at", Int),
        ],
        identity: true,
    },
    Table {
        name: "subscriber_events",
        columns: &[
            ("id", Int),
            ("subscriber_id", Int),
            ("state", Text),
            ("reason", Text),
            ("at", Int),
        ],
        identity: true,
    },
    Table {
        name: "confirmation_tokens",
        columns: &[
            ("token_hash", Blob),
            ("subscriber_id", Int),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "suppressions",
        columns: &[("email_hash", Text), ("reason", Text), ("at", Int)],
        identity: false,
    },
    Table {
        name: "campaigns",
        columns: &[
            ("id", Int),
            ("issue_slug", Text),
            ("issue_number", Int),
            ("issue_hash", Text),
            ("subject", Text),
            ("html", Text),
            ("text", Text),
            ("state", Text),
            ("pause_reason", Text),
            ("retired", Int),
            ("created_at", Int),
            ("finished_at", Int),
            ("message_nonce", Text),
            ("scheduled_at", Int),
        ],
        identity: true,
    },
    Table {
        name: "campaign_links",
        columns: &[
            ("id", Int),
            ("campaign_id", Int),
            ("link_index", Int),
            ("url", Text),
            ("human_clicks", Int),
            ("bot_clicks", Int),
        ],
        identity: true,
    },
    Table {
        name: "click_events",
        columns: &[
            ("id", Int),
            ("link_id", Int),
            ("subscriber_id", Int),
            ("bot", Int),
            ("clicked_at", Int),
        ],
        identity: true,
    },
    Table {
        name: "deliveries",
        columns: &[
            ("id", Int),
            ("campaign_id", Int),
            ("subscriber_id", Int),
            ("kind", Text),
            ("recipient", Text),
            ("payload", Blob),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("lease_until", Int),
            ("first_attempt_at", Int),
            ("last_code", Int),
            ("last_enhanced_code", Text),
            ("last_reply", Text),
            ("message_id", Text),
            ("sent_at", Int),
            ("created_at", Int),
            ("report_kind", Text),
            ("report_class", Text),
            ("report_status", Text),
            ("report_diagnostic", Text),
            ("reported_at", Int),
            ("claimed_by", Text),
        ],
        identity: true,
    },
    Table {
        name: "secrets",
        columns: &[("name", Text), ("value", Blob), ("created_at", Int)],
        identity: false,
    },
    Table {
        name: "bounce_reports",
        columns: &[
            ("id", Int),
            ("received_at", Int),
            ("channel", Text),
            ("provider", Text),
            ("kind", Text),
            ("dedupe_key", Text),
            ("parsed", Text),
            ("raw", Blob),
            ("matched", Int),
            ("unmatched", Int),
        ],
        identity: true,
    },
    Table {
        name: "bounce_recipients",
        columns: &[
            ("id", Int),
            ("report_id", Int),
            ("kind", Text),
            ("address", Text),
            ("status", Text),
            ("class", Text),
            ("diagnostic", Text),
            ("matched_by", Text),
            ("delivery_id", Int),
            ("subscriber_id", Int),
            ("at", Int),
        ],
        identity: true,
    },
    Table {
        name: "webhook_replays",
        columns: &[("replay_key", Text), ("expires_at", Int)],
        identity: false,
    },
    Table {
        name: "relay_states",
        columns: &[
            ("relay", Text),
            ("state", Text),
            ("reason", Text),
            ("changed_at", Int),
            ("open_until", Int),
            ("changed_by", Text),
        ],
        identity: false,
    },
];

/// Rows per statement: 23 columns of deliveries times this stays well
/// under PostgreSQL's 65,535 parameters, and memory stays flat.
const CHUNK: usize = 1_000;

/// One table's rows on each side after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedTable {
    pub table: &'static str,
    pub source: i64,
    pub destination: i64,
}

/// Copies `from` (SQLite) into `to` (PostgreSQL, empty), calling
/// `progress` after each table. Fails, copying nothing, when `to` is not
/// empty or a count differs afterwards.
pub async fn copy_database(
    from: &Store,
    to: &Store,
    mut progress: impl FnMut(&CopiedTable),
) -> anyhow::Result<Vec<CopiedTable>> {
    anyhow::ensure!(
        from.backend() == Backend::Sqlite && to.backend() == Backend::Postgres,
        "db copy goes from SQLite to PostgreSQL"
    );
    let mut read = from.begin_read().await?;
    let mut write = to.begin().await?;
    for table in TABLES {
        let present = count_rows(&mut write, table.name).await?;
        anyhow::ensure!(
            present == 0,
            "the destination is not empty: {} holds {present} row(s); copy into a new database",
            table.name
        );
    }
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        copy_table(&mut read, &mut write, table).await?;
        if table.identity {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {0}), 0) + 1, false)",
                table.name
            );
            query(&sql).fetch_one(&mut write).await?;
        }
        let counts = CopiedTable {
            table: table.name,
            source: count_rows(&mut read, table.name).await?,
            destination: count_rows(&mut write, table.name).await?,
        };
        anyhow::ensure!(
            counts.source == counts.destination,
            "{}: {} row(s) in SQLite but {} copied; nothing was kept",
            table.name,
            counts.source,
            counts.destination
        );
        progress(&counts);
        copied.push(counts);
    }
    write.commit().await?;
    read.commit().await?;
    Ok(copied)
}

async fn count_rows(tx: &mut super::Tx<'_>, table: &str) -> sqlx::Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    query(&sql).fetch_one(tx).await?.try_get(0)
}

async fn copy_table(
    read: &mut super::Tx<'_>,
    write: &mut super::Tx<'_>,
    table: &Table,
) -> anyhow::Result<()> {
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let columns = names.join(", ");
    let (key, key_kind) = table.columns[0];
    let mut last: Option<Arg<'static>> = None;
    loop {
        let condition = if last.is_some() {
            format!("WHERE {key} > $1")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {columns} FROM {} {condition} ORDER BY {key} LIMIT {CHUNK}",
            table.name
        );
        let mut select = query(&sql);
        if let Some(last) = &last {
            select = select.bind_arg(last.clone());
        }
        let rows = select.fetch_all(read).await?;
        let Some(final_row) = rows.last() else {
            return Ok(());
        };
        last = Some(read_value(final_row, key, key_kind)?);
        insert_rows(write, table, &columns, &rows).await?;
        if rows.len() < CHUNK {
            return Ok(());
        }
    }
}

async fn insert_rows(
    write: &mut super::Tx<'_>,
    table: &Table,
    columns: &str,
    rows: &[Row],
) -> anyhow::Result<()> {
    let width = table.columns.len();
    let values = (0..rows.len())
        .map(|row| {
            let params: Vec<String> = (1..=width)
                .map(|column| format!("${}", row * width + column))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("INSERT INTO {} ({columns}) VALUES {values}", table.name);
    let mut insert = query(&sql).persistent(false);
    for row in rows {
        for (name, kind) in table.columns {
            insert = insert.bind_arg(read_value(row, name, *kind)?);
        }
    }
    insert.execute(write).await?;
    Ok(())
}

fn read_value(row: &Row, column: &str, kind: Kind) -> sqlx::Result<Arg<'static>> {
    Ok(match kind {
        Int => Arg::Int(row.try_get(column)?),
        Text => Arg::OwnedText(row.try_get(column)?),
        Blob => Arg::OwnedBlob(row.try_get(column)?),
    })
}
