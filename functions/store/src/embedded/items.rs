//! The item store on the `items` table: one row per item with its JSON, its expiry and the keys
//! of up to two secondary indexes in fixed column slots, so index queries are index range scans.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::Value;

use super::queue::{millis, send_standard};
use super::{EmbeddedStore, prefix_upper_bound};
use crate::error::{StoreError, StoreResult};
use crate::item::{
    Condition, Item, ItemStore, Key, PK, Page, Query, SK, SortRange, TTL, TableDef, TransactionWrites, Update, Write,
    cursor_after, decode_cursor, validate_item, validate_transaction,
};
use crate::queue::{OutgoingMessage, QueueDef};

/// The most rows a query may ask for and still run on the writer's connection when it is
/// free (see [`EmbeddedStore::reader`]); a longer one reads beside the writer.
const SHORT_QUERY_ROWS: usize = 100;

/// How many secondary indexes a table may have: one column pair each in `items`.
pub(super) const INDEX_SLOTS: usize = 2;

#[async_trait]
impl ItemStore for EmbeddedStore {
    async fn get(&self, table: &TableDef, key: &Key) -> StoreResult<Option<Item>> {
        check_table(table)?;
        key.validate()?;
        load_live(&*self.reader()?, &table.name, key, self.now_unix())
    }

    async fn put(&self, table: &TableDef, item: Item, condition: Option<Condition>) -> StoreResult<()> {
        check_table(table)?;
        validate_item(&item)?;
        validate_condition(condition.as_ref())?;
        let row = Row::of(table, &item)?;
        let (table, now) = (table.name.clone(), self.now_unix());
        self.writer
            .write(move |db| {
                // Without a condition, the upsert also replaces an expired item.
                if let Some(condition) = condition
                    && !condition.holds_for(load_live(db, &table, &row.key, now)?.as_ref())
                {
                    return Err(conflict(&table, &row.key));
                }
                row.store(db, &table)
            })
            .await
    }

    async fn update(
        &self,
        table: &TableDef,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item> {
        check_table(table)?;
        key.validate()?;
        update.validate()?;
        validate_condition(condition.as_ref())?;
        let (table, key, now) = (table.clone(), key.clone(), self.now_unix());
        self.writer
            .write(move |db| {
                let live = load_live(db, &table.name, &key, now)?;
                if !condition.is_none_or(|condition| condition.holds_for(live.as_ref())) {
                    return Err(conflict(&table.name, &key));
                }
                let item = updated(live, &key, &update)?;
                Row::of(&table, &item)?.store(db, &table.name)?;
                Ok(item)
            })
            .await
    }

    async fn delete(&self, table: &TableDef, key: &Key, condition: Option<Condition>) -> StoreResult<()> {
        check_table(table)?;
        key.validate()?;
        validate_condition(condition.as_ref())?;
        let (table, key, now) = (table.name.clone(), key.clone(), self.now_unix());
        self.writer
            .write(move |db| {
                if let Some(condition) = condition
                    && !condition.holds_for(load_live(db, &table, &key, now)?.as_ref())
                {
                    return Err(conflict(&table, &key));
                }
                remove(db, &table, &key)
            })
            .await
    }

    async fn query(&self, table: &TableDef, query: Query) -> StoreResult<Page> {
        check_table(table)?;
        query.validate()?;
        let plan = QueryPlan::new(table, &query, self.now_unix())?;
        let mut items = if query.limit <= SHORT_QUERY_ROWS {
            plan.run(&*self.reader()?)?
        } else {
            plan.run(&*self.pooled_reader()?)?
        };
        let more = items.len() > query.limit;
        items.truncate(query.limit);
        let cursor = match items.last() {
            Some(last) if more => Some(cursor_after(last, table, query.index.as_deref())?),
            _ => None,
        };
        Ok(Page { items, cursor })
    }

    async fn count(&self, table: &TableDef, mut query: Query) -> StoreResult<u64> {
        check_table(table)?;
        query.cursor = None;
        query.validate()?;
        if let Some(count) = count_from_size(&*self.reader()?, table, &query)? {
            return Ok(count);
        }
        let plan = QueryPlan::counting(table, &query, self.now_unix())?;
        let db = self.pooled_reader()?;
        let mut statement = db.prepare_cached(&plan.sql)?;
        let count: i64 = statement.query_row(params_from_iter(&plan.params), |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        check_transaction(&writes)?;
        let now = self.now_unix();
        self.writer.write(move |db| apply_writes(db, &writes, now)).await
    }

    async fn transact_and_send(
        &self,
        writes: TransactionWrites<'_>,
        queue: &QueueDef,
        message: OutgoingMessage,
    ) -> StoreResult<bool> {
        if queue.fifo {
            // A FIFO send deduplicates in a transaction of its own; it goes after.
            return self.transact(writes(false)?).await.map(|()| false);
        }
        let writes = writes(true)?;
        check_transaction(&writes)?;
        queue.validate()?;
        message.validate_for(queue)?;
        let now = self.now_unix();
        let name = queue.name.clone();
        let visible_at = self.now_ms().saturating_add(millis(message.delay));
        self.writer
            .write(move |db| {
                apply_writes(db, &writes, now)?;
                send_standard(db, &name, &message, visible_at)
            })
            .await?;
        self.announce(&queue.name);
        Ok(true)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.check_health()
    }
}

impl EmbeddedStore {
    /// Deletes every expired item for good (reads already skip them); returns how many went.
    /// The dev server may call it now and then to keep the file small.
    pub fn purge_expired_items(&self) -> StoreResult<usize> {
        let now = self.now_unix();
        let db = self.db();
        let mut statement = db.prepare_cached("DELETE FROM items WHERE ttl IS NOT NULL AND ttl <= ?1")?;
        Ok(statement.execute([now])?)
    }
}

/// An item as stored: its key, JSON, expiry, and its key in each index slot it appears in.
struct Row {
    key: Key,
    doc: String,
    ttl: Option<i64>,
    indexes: [Option<(String, String)>; INDEX_SLOTS],
}

impl Row {
    /// The row of a validated item.
    fn of(table: &TableDef, item: &Item) -> StoreResult<Self> {
        let mut indexes = [None, None];
        for (slot, index) in table.indexes.iter().enumerate() {
            let partition = index_key_part(item, &index.partition_key)?;
            let sort = index_key_part(item, &index.sort_key)?;
            indexes[slot] = partition.zip(sort);
        }
        Ok(Self {
            key: Key::of(item)?,
            doc: serde_json::to_string(item).map_err(internal)?,
            ttl: item.get(TTL).and_then(Value::as_i64),
            indexes,
        })
    }

    /// Creates or replaces the row (an upsert, not `INSERT OR REPLACE`: a replaced row must fire
    /// the update trigger that keeps the index sizes).
    fn store(&self, db: &Connection, table: &str) -> StoreResult<()> {
        let mut statement = db.prepare_cached(
            "INSERT INTO items (tbl, pk, sk, doc, ttl, i0pk, i0sk, i1pk, i1sk)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (tbl, pk, sk) DO UPDATE SET doc = excluded.doc, ttl = excluded.ttl,
                 i0pk = excluded.i0pk, i0sk = excluded.i0sk, i1pk = excluded.i1pk, i1sk = excluded.i1sk",
        )?;
        let part = |slot: usize, sort: bool| {
            self.indexes[slot]
                .as_ref()
                .map(|(partition, sort_key)| if sort { sort_key } else { partition })
        };
        statement.execute(params![
            table,
            self.key.pk,
            self.key.sk,
            self.doc,
            self.ttl,
            part(0, false),
            part(0, true),
            part(1, false),
            part(1, true),
        ])?;
        Ok(())
    }
}

/// The string an index key attribute holds, `None` when absent. DynamoDB refuses an index key
/// of another type or an empty one, so this backend does too.
fn index_key_part(item: &Item, attribute: &str) -> StoreResult<Option<String>> {
    match item.get(attribute) {
        None => Ok(None),
        Some(Value::String(value)) if !value.is_empty() => Ok(Some(value.clone())),
        Some(_) => Err(StoreError::InvalidInput(format!(
            "the index key attribute '{attribute}' must be a non-empty string"
        ))),
    }
}

/// What one write of a transaction does once its condition held.
enum Effect {
    Store(Row),
    Remove(Key),
    Nothing,
}

/// Checks one transaction write against the live item and works out its effect.
fn plan_write(db: &Connection, write: &Write, position: usize, now: i64) -> StoreResult<(std::sync::Arc<str>, Effect)> {
    let (table, key) = write.target()?;
    let live = load_live(db, &table.name, &key, now)?;
    if let Some(condition) = write.condition()
        && !condition.holds_for(live.as_ref())
    {
        return Err(StoreError::Conflict(format!(
            "transaction write {position} on {}/{}/{}: the condition does not hold",
            table.name, key.pk, key.sk
        )));
    }
    let effect = match write {
        Write::Put { item, .. } => Effect::Store(Row::of(table, item)?),
        Write::Update { update, .. } => Effect::Store(Row::of(table, &updated(live, &key, update)?)?),
        Write::Delete { .. } => Effect::Remove(key),
        Write::Check { .. } => Effect::Nothing,
    };
    Ok((table.name.clone(), effect))
}

/// Checks a transaction's writes before it is queued for the writer.
fn check_transaction(writes: &[Write]) -> StoreResult<()> {
    validate_transaction(writes)?;
    for write in writes {
        check_table(write.target()?.0)?;
    }
    Ok(())
}

/// Applies a transaction's writes: every condition is checked and every new item built before
/// anything is written, so a refusal leaves the store as it was.
fn apply_writes(db: &Connection, writes: &[Write], now: i64) -> StoreResult<()> {
    let effects = writes
        .iter()
        .enumerate()
        .map(|(position, write)| plan_write(db, write, position, now))
        .collect::<StoreResult<Vec<_>>>()?;
    for (table, effect) in &effects {
        match effect {
            Effect::Store(row) => row.store(db, table)?,
            Effect::Remove(key) => remove(db, table, key)?,
            Effect::Nothing => {}
        }
    }
    Ok(())
}

/// The item after `update`: applied to the live item, or to a fresh one holding only the key.
fn updated(live: Option<Item>, key: &Key, update: &Update) -> StoreResult<Item> {
    let mut item = live.unwrap_or_else(|| {
        let mut fresh = Item::new();
        fresh.insert(PK.to_owned(), Value::String(key.pk.clone()));
        fresh.insert(SK.to_owned(), Value::String(key.sk.clone()));
        fresh
    });
    update.apply_to(&mut item)?;
    validate_item(&item)?;
    Ok(item)
}

/// The live (present and unexpired) item with `key`.
fn load_live(db: &Connection, table: &str, key: &Key, now: i64) -> StoreResult<Option<Item>> {
    let mut statement = db
        .prepare_cached("SELECT doc FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3 AND (ttl IS NULL OR ttl > ?4)")?;
    let doc: Option<String> = statement
        .query_row(params![table, key.pk, key.sk, now], |row| row.get(0))
        .optional()?;
    doc.map(|doc| parse(&doc)).transpose()
}

fn remove(db: &Connection, table: &str, key: &Key) -> StoreResult<()> {
    let mut statement = db.prepare_cached("DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")?;
    statement.execute(params![table, key.pk, key.sk])?;
    Ok(())
}

/// How many items past the range's bound [`count_from_size`] steps over before it gives up on
/// the index size: a count near the end of a partition (a new job's place in its lane) is
/// answered in a few steps, whatever the partition holds.
const SIZE_PROBE: i64 = 32;

/// Counts an index query from its partition's size, when that is exact and cheap: the
/// partition holds no item with a TTL (so every item in it is live), and the range is the whole
/// partition or everything below a bound with fewer than [`SIZE_PROBE`] items at or above it.
/// `None` when the index must be stepped instead.
fn count_from_size(db: &Connection, table: &TableDef, query: &Query) -> StoreResult<Option<u64>> {
    let Some(index) = query.index.as_deref() else {
        return Ok(None);
    };
    let slot = table.index_position(index)?;
    let (above, bound) = match &query.range {
        SortRange::All => (">=", None),
        SortRange::Lt(bound) => (">=", Some(bound)),
        SortRange::Le(bound) => (">", Some(bound)),
        _ => return Ok(None),
    };
    // With no bound, `>= ''` takes in the whole partition; the probe is then not needed.
    let (bound, probe) = match bound {
        Some(bound) => (bound.as_str(), SIZE_PROBE),
        None => ("", 0),
    };
    let mut statement = db.prepare_cached(&size_count_sql(slot, above, probe))?;
    let (items, expiring, at_or_above): (Option<i64>, Option<i64>, i64) = statement
        .query_row(params![table.name, query.partition, bound, slot], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    if expiring.unwrap_or(0) != 0 || at_or_above >= probe.max(1) {
        return Ok(None);
    }
    let below = items.unwrap_or(0) - at_or_above;
    let limit = i64::try_from(query.limit).map_err(internal)?;
    Ok(Some(u64::try_from(below.clamp(0, limit)).unwrap_or(0)))
}

/// The statement of [`count_from_size`]: the partition's size and how many items (up to a
/// limit) lie `above` (`>=` or `>`) the bound.
fn size_count_sql(slot: usize, above: &str, limit: i64) -> String {
    format!(
        "SELECT size.items, size.expiring,
                (SELECT COUNT(*) FROM (SELECT 1 FROM items
                    WHERE tbl = ?1 AND i{slot}pk = ?2 AND i{slot}sk {above} ?3 LIMIT {limit}))
         FROM (SELECT 1) LEFT JOIN index_sizes AS size ON size.tbl = ?1 AND size.slot = ?4 AND size.part = ?2"
    )
}

/// A query as SQL: the statement text depends only on the query's shape, so each shape is
/// prepared once and cached.
struct QueryPlan {
    sql: String,
    params: Vec<SqlValue>,
}

impl QueryPlan {
    fn new(table: &TableDef, query: &Query, now: i64) -> StoreResult<Self> {
        let (slot, partition_column, sort_column) = key_columns(table, query)?;
        let mut plan = Self {
            sql: format!("SELECT doc FROM items WHERE tbl = ? AND {partition_column} = ?"),
            params: vec![text(&table.name), text(&query.partition)],
        };
        let after_cursor = query.cursor.as_ref().map(|_| query.descending);
        plan.add_range(&sort_column, &query.range, after_cursor)?;
        if let Some(cursor) = &query.cursor {
            plan.add_cursor(table, query, &sort_column, cursor)?;
        }
        let order = if query.descending { "DESC" } else { "ASC" };
        let tie_break = match slot {
            Some(_) => format!(", pk {order}, sk {order}"),
            None => String::new(),
        };
        // One row past the page tells whether more follow. The limit is part of the text: SQLite
        // prepares a statement anew each time a bound LIMIT is bound, even to the same value.
        let limit = query.limit + 1;
        plan.sql += &format!(" AND (ttl IS NULL OR ttl > ?) ORDER BY {sort_column} {order}{tie_break} LIMIT {limit}");
        plan.params.push(SqlValue::Integer(now));
        Ok(plan)
    }

    /// `SELECT COUNT(*)` over the query's live items.
    fn counting(table: &TableDef, query: &Query, now: i64) -> StoreResult<Self> {
        let (_, partition_column, sort_column) = key_columns(table, query)?;
        let mut plan = Self {
            sql: format!("SELECT COUNT(*) FROM (SELECT 1 FROM items WHERE tbl = ? AND {partition_column} = ?"),
            params: vec![text(&table.name), text(&query.partition)],
        };
        plan.add_range(&sort_column, &query.range, None)?;
        plan.sql += &format!(" AND (ttl IS NULL OR ttl > ?) LIMIT {})", query.limit);
        plan.params.push(SqlValue::Integer(now));
        Ok(plan)
    }

    /// The range's bounds on the sort `column`. After a cursor (`after_cursor`: whether the
    /// query descends), the bound on the cursor's side is only checked, never used to seek
    /// (`+column`, SQLite's way to keep a term off the index): SQLite seeks with one bound per
    /// side and would take the range's, stepping from the range's start to the cursor at every
    /// page (a sweep paging through a lane of 170,000 jobs read it about 85 times over).
    fn add_range(&mut self, column: &str, range: &SortRange, after_cursor: Option<bool>) -> StoreResult<()> {
        let mut bound = |operator: &str, value: &str| {
            let lower = operator.starts_with('>');
            let checked_only = after_cursor.is_some_and(|descending| lower != descending);
            let operand = if checked_only { "+" } else { "" };
            self.sql += &format!(" AND {operand}{column} {operator} ?");
            self.params.push(text(value));
        };
        match range {
            SortRange::All => {}
            SortRange::Eq(value) => bound("=", value),
            SortRange::Lt(value) => bound("<", value),
            SortRange::Le(value) => bound("<=", value),
            SortRange::Gt(value) => bound(">", value),
            SortRange::Ge(value) => bound(">=", value),
            SortRange::Prefix(prefix) => {
                bound(">=", prefix);
                if let Some(upper) = prefix_upper_bound(prefix) {
                    bound("<", &upper);
                }
            }
            SortRange::Between(low, high) if low > high => {
                // DynamoDB refuses such a key condition rather than answering nothing.
                return Err(StoreError::InvalidInput(format!(
                    "a BETWEEN range needs its low bound '{low}' at or below its high bound '{high}'"
                )));
            }
            SortRange::Between(low, high) => {
                bound(">=", low);
                bound("<=", high);
            }
        }
        Ok(())
    }

    /// Positions the query strictly after the cursor's item, in the query's order.
    fn add_cursor(&mut self, table: &TableDef, query: &Query, sort_column: &str, cursor: &str) -> StoreResult<()> {
        let index = query.index.as_deref();
        let position = decode_cursor(cursor, table, index)?;
        let part = |name: &str| position.get(name).and_then(Value::as_str).unwrap_or_default();
        let operator = if query.descending { "<" } else { ">" };
        let partition = match index {
            Some(index) => part(&table.index(index)?.partition_key),
            None => part(PK),
        };
        if partition != query.partition {
            return Err(StoreError::InvalidInput(
                "the cursor is not one this query returned".into(),
            ));
        }
        match index {
            Some(index) => {
                self.sql += &format!(" AND ({sort_column}, pk, sk) {operator} (?, ?, ?)");
                let sort = part(&table.index(index)?.sort_key);
                self.params.extend([text(sort), text(part(PK)), text(part(SK))]);
            }
            None => {
                self.sql += &format!(" AND sk {operator} ?");
                self.params.push(text(part(SK)));
            }
        }
        Ok(())
    }

    /// Up to `limit + 1` live items.
    fn run(&self, db: &Connection) -> StoreResult<Vec<Item>> {
        let mut statement = db.prepare_cached(&self.sql)?;
        let docs = statement
            .query_map(params_from_iter(&self.params), |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        docs.iter().map(|doc| parse(doc)).collect()
    }
}

/// The query's index slot (`None` for the table's own key), and its partition and sort columns.
fn key_columns(table: &TableDef, query: &Query) -> StoreResult<(Option<usize>, String, String)> {
    Ok(match query.index.as_deref() {
        Some(index) => {
            let slot = table.index_position(index)?;
            (Some(slot), format!("i{slot}pk"), format!("i{slot}sk"))
        }
        None => (None, "pk".to_owned(), "sk".to_owned()),
    })
}

fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_owned())
}

fn check_table(table: &TableDef) -> StoreResult<()> {
    if table.indexes.len() > INDEX_SLOTS {
        return Err(StoreError::InvalidInput(format!(
            "table '{}' has {} indexes; at most {INDEX_SLOTS} are supported",
            table.name,
            table.indexes.len()
        )));
    }
    Ok(())
}

fn validate_condition(condition: Option<&Condition>) -> StoreResult<()> {
    condition.map_or(Ok(()), Condition::validate)
}

fn conflict(table: &str, key: &Key) -> StoreError {
    StoreError::Conflict(format!("the condition on {table}/{}/{} does not hold", key.pk, key.sk))
}

fn parse(doc: &str) -> StoreResult<Item> {
    serde_json::from_str(doc).map_err(internal)
}

fn internal(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("item store: {error}"))
}

#[cfg(test)]
mod tests;
