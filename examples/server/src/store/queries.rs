//! The SQL both databases run: a [`Dialect`] turns each query template into SQLite's or
//! PostgreSQL's text, and [`Queries`] holds every query of the store, made once per store.

/// What differs between the SQL databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite: `?` parameters, JSON as `TEXT`, writers serialised by `BEGIN IMMEDIATE`.
    Sqlite,
    /// PostgreSQL: `$n` parameters, `JSON` columns, writers lock the document's row.
    Postgres,
}

/// The most rows one `INSERT` of an append writes (each takes five parameters at most).
pub(crate) const ROWS_PER_INSERT: usize = 256;
/// An `INSERT` of events, followed by [`EVENT_ROW`] once per event.
pub(crate) const INSERT_EVENTS: &str =
    "INSERT INTO events (document_id, seq, client_id, client_seq, body) VALUES ";
pub(crate) const EVENT_ROW: &str = "(?, ?, ?, ?, ?json)";
/// An `INSERT` of edits (what each client's `clientSeq` became), then [`EDIT_ROW`] per edit.
pub(crate) const INSERT_EDITS: &str =
    "INSERT INTO edits (document_id, client_id, client_seq, seq) VALUES ";
pub(crate) const EDIT_ROW: &str = "(?, ?, ?, ?)";
/// An `INSERT` of clients' state vectors, then [`STATE_VECTOR_ROW`] per vector and
/// [`STATE_VECTOR_UPSERT`] (a vector replaces the one stored for its document and client).
pub(crate) const INSERT_STATE_VECTORS: &str =
    "INSERT INTO state_vectors (document_id, client_id, vector, last_updated) VALUES ";
pub(crate) const STATE_VECTOR_ROW: &str = "(?, ?, ?json, ?)";
pub(crate) const STATE_VECTOR_UPSERT: &str = " ON CONFLICT (document_id, client_id) DO UPDATE SET \
     vector = excluded.vector, last_updated = excluded.last_updated";

impl Dialect {
    /// This dialect's `INSERT` of `n` rows: `head`, then `row` `n` times, then `tail`.
    pub(crate) fn rows(self, head: &str, row: &str, n: usize, tail: &str) -> String {
        let mut template = String::with_capacity(head.len() + n * (row.len() + 2) + tail.len());
        template.push_str(head);
        for i in 0..n {
            if i > 0 {
                template.push_str(", ");
            }
            template.push_str(row);
        }
        template.push_str(tail);
        self.sql(&template)
    }

    /// Turns a query template into this dialect's SQL. In the template, `?` is a parameter and
    /// `?json` a parameter written to a JSON column; `{col}` reads the JSON column `col` as
    /// text; `{lock}` and `{share}` lock the rows read for the rest of the transaction.
    pub(crate) fn sql(self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        let mut params = 0;
        let mut rest = template;
        while let Some(at) = rest.find(['?', '{']) {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix('?') {
                params += 1;
                let json = after.starts_with("json");
                rest = if json { &after[4..] } else { after };
                match (self, json) {
                    (Dialect::Sqlite, _) => out.push('?'),
                    (Dialect::Postgres, false) => out.push_str(&format!("${params}")),
                    (Dialect::Postgres, true) => out.push_str(&format!("${params}::json")),
                }
            } else {
                let end = rest.find('}').expect("a closed {name} in the template");
                let name = &rest[1..end];
                rest = &rest[end + 1..];
                match (self, name) {
                    (Dialect::Postgres, "lock") => out.push_str(" FOR UPDATE"),
                    (Dialect::Postgres, "share") => out.push_str(" FOR SHARE"),
                    (Dialect::Sqlite, "lock" | "share") => {}
                    (Dialect::Postgres, column) => {
                        out.push_str(&format!("{column}::text AS {column}"))
                    }
                    (Dialect::Sqlite, column) => out.push_str(column),
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// How a writing transaction starts: SQLite takes the database's write lock at once, so
    /// that writers (also in other processes) queue on it instead of failing half-way.
    pub(crate) fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }
}

/// Every query of the store, in its dialect (made once).
pub(crate) struct Queries {
    pub(crate) head: String,
    pub(crate) lock_head: String,
    pub(crate) update_document: String,
    pub(crate) insert_document: String,
    pub(crate) notify: Option<String>,
    pub(crate) events_after: String,
    pub(crate) events_page: String,
    pub(crate) ordered_edit: String,
    pub(crate) highest_client_seq: String,
    pub(crate) save_snapshot: String,
    pub(crate) latest_snapshot: String,
    pub(crate) snapshot_seq: String,
    pub(crate) delete_events: String,
    pub(crate) set_first_retained: String,
    pub(crate) state_vectors: String,
    pub(crate) insert_outbox: String,
    pub(crate) due_outbox: String,
    pub(crate) lease_outbox: String,
    pub(crate) finish_outbox: String,
    pub(crate) retry_outbox: String,
    pub(crate) release_outbox: String,
}

impl Queries {
    pub(crate) fn new(d: Dialect) -> Self {
        Queries {
            head: d.sql(
                "SELECT {body}, head_seq, {vector}, first_retained_seq FROM documents \
                 WHERE document_id = ?",
            ),
            lock_head: d.sql("SELECT head_seq, {vector} FROM documents WHERE document_id = ?{lock}"),
            update_document: d.sql(
                "UPDATE documents SET body = ?json, head_seq = ?, vector = ?json \
                 WHERE document_id = ?",
            ),
            // A concurrent first append waits on the primary key here and then writes nothing.
            insert_document: d.sql(
                "INSERT INTO documents (document_id, body, head_seq, vector, first_retained_seq) \
                 VALUES (?, ?json, ?, ?json, 1) ON CONFLICT (document_id) DO NOTHING",
            ),
            // pg_notify returns `void`, which the Any driver cannot read: select a constant instead.
            notify: (d == Dialect::Postgres)
                .then(|| d.sql("SELECT 1 AS notified FROM (SELECT pg_notify(?, ?)) AS notify")),
            events_after: d.sql(
                "SELECT {body} FROM events WHERE document_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            ),
            // A page in one row: the events' texts and client ids one a line (no row per event
            // to hand over, nor JSON to read). The aggregates take the rows in the order the
            // subquery reads them (an aggregate's own ORDER BY would sort them again):
            // `EncodedEvents::from_lines` checks each text's `sequenceNum` against it.
            events_page: d.sql(&{
                let (agg, newline, body) = match d {
                    Dialect::Sqlite => ("group_concat", "char(10)", "body"),
                    Dialect::Postgres => ("string_agg", "chr(10)", "body::text"),
                };
                format!(
                    "SELECT COUNT(*) AS n, MIN(seq) AS first_seq, MAX(seq) AS last_seq, \
                     {agg}(client_id, {newline}) AS ids, {agg}({body}, {newline}) AS bodies \
                     FROM (SELECT seq, client_id, body FROM events \
                     WHERE document_id = ? AND seq > ? ORDER BY seq LIMIT ?) AS page"
                )
            }),
            ordered_edit: d.sql(
                "SELECT seq FROM edits WHERE document_id = ? AND client_id = ? AND client_seq = ?",
            ),
            highest_client_seq: d.sql(
                "SELECT MAX(client_seq) AS highest FROM edits WHERE document_id = ? AND client_id = ?",
            ),
            // An older snapshot never replaces a newer one: compaction relies on the newer one.
            save_snapshot: d.sql(
                "INSERT INTO snapshots (document_id, seq, body, vector) VALUES (?, ?, ?json, ?json) \
                 ON CONFLICT (document_id) DO UPDATE SET \
                 seq = excluded.seq, body = excluded.body, vector = excluded.vector \
                 WHERE excluded.seq >= snapshots.seq",
            ),
            latest_snapshot: d.sql(
                "SELECT seq, {body}, {vector} FROM snapshots WHERE document_id = ?",
            ),
            snapshot_seq: d.sql("SELECT seq FROM snapshots WHERE document_id = ?{share}"),
            delete_events: d.sql("DELETE FROM events WHERE document_id = ? AND seq <= ?"),
            set_first_retained: d.sql(
                "UPDATE documents SET first_retained_seq = \
                 CASE WHEN first_retained_seq > ? THEN first_retained_seq ELSE ? END \
                 WHERE document_id = ?",
            ),
            state_vectors: d.sql(
                "SELECT client_id, {vector}, last_updated FROM state_vectors \
                 WHERE document_id = ? ORDER BY client_id",
            ),
            insert_outbox: d.sql(
                "INSERT INTO webhook_outbox \
                 (document_id, seq, body, attempts, next_attempt_at, leased_until) \
                 VALUES (?, ?, ?, 0, 0, 0)",
            ),
            // The first row of each document (whatever its state), when it is due and free.
            due_outbox: d.sql(
                "SELECT id, document_id, seq, body, attempts FROM webhook_outbox \
                 WHERE next_attempt_at <= ? AND leased_until <= ? AND seq = \
                 (SELECT MIN(h.seq) FROM webhook_outbox h \
                  WHERE h.document_id = webhook_outbox.document_id) \
                 ORDER BY id LIMIT ?",
            ),
            // A compare-and-set: of processes racing for a row, one changes it.
            lease_outbox: d.sql(
                "UPDATE webhook_outbox SET leased_by = ?, leased_until = ? \
                 WHERE id = ? AND leased_until <= ?",
            ),
            finish_outbox: d.sql("DELETE FROM webhook_outbox WHERE id = ? AND leased_by = ?"),
            retry_outbox: d.sql(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?, \
                 leased_by = NULL, leased_until = 0 WHERE id = ? AND leased_by = ?",
            ),
            release_outbox: d.sql(
                "UPDATE webhook_outbox SET leased_by = NULL, leased_until = 0 \
                 WHERE leased_by = ?",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_each_dialects_sql() {
        let template = "SELECT {body}, seq FROM t WHERE a = ? AND b = ?json{lock}";
        assert_eq!(
            Dialect::Sqlite.sql(template),
            "SELECT body, seq FROM t WHERE a = ? AND b = ?"
        );
        assert_eq!(
            Dialect::Postgres.sql(template),
            "SELECT body::text AS body, seq FROM t WHERE a = $1 AND b = $2::json FOR UPDATE"
        );
    }
}
