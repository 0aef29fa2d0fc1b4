//! The item store port: DynamoDB-shaped keyed items with conditional writes, range queries on
//! the table or a secondary index, transactions and TTL expiry.
//!
//! Every table has a string partition key `pk` and a string sort key `sk`. A secondary index is
//! sparse: an item appears in it only when it carries both of the index's key attributes as
//! strings. An item whose `ttl` attribute (whole seconds since the epoch) is at or before the
//! store's clock is expired: it is never returned and counts as absent for conditions.

use std::cmp::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::error::{StoreError, StoreResult};
use crate::queue::{OutgoingMessage, QueueDef};

/// One stored item: a JSON object whose `pk` and `sk` attributes are strings.
pub type Item = Map<String, Value>;

/// The partition key attribute of every table.
pub const PK: &str = "pk";
/// The sort key attribute of every table.
pub const SK: &str = "sk";
/// The expiry attribute of every table: whole seconds since the Unix epoch.
pub const TTL: &str = "ttl";
/// The largest item accepted, in bytes of its JSON form (DynamoDB's limit is 400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// The most writes in one transaction (DynamoDB's `TransactWriteItems` takes up to 100; the
/// contract promises 25).
pub const MAX_TRANSACTION_WRITES: usize = 25;
/// The most items one query page may ask for.
pub const MAX_QUERY_LIMIT: usize = 1000;

/// A table: its logical name (the physical one adds the deployment prefix) and its indexes.
/// Shared, so that a clone (one per write of a transaction) costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// Logical name, e.g. `jobs`.
    pub name: Arc<str>,
    /// Global secondary indexes, at most two.
    pub indexes: Arc<[IndexDef]>,
}

/// A global secondary index: a second (partition, sort) key pair over the same items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    /// Index name, e.g. `gsi1`.
    pub name: String,
    /// The attribute holding the index's partition key.
    pub partition_key: String,
    /// The attribute holding the index's sort key.
    pub sort_key: String,
}

impl TableDef {
    /// The index called `name`, or `InvalidInput`.
    pub fn index(&self, name: &str) -> StoreResult<&IndexDef> {
        self.indexes
            .iter()
            .find(|index| index.name == name)
            .ok_or_else(|| StoreError::InvalidInput(format!("table '{}' has no index '{name}'", self.name)))
    }

    /// The position of index `name` in [`TableDef::indexes`].
    pub fn index_position(&self, name: &str) -> StoreResult<usize> {
        self.indexes
            .iter()
            .position(|index| index.name == name)
            .ok_or_else(|| StoreError::InvalidInput(format!("table '{}' has no index '{name}'", self.name)))
    }
}

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
}

impl Key {
    /// A key from its two parts.
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// The key of `item`, or `InvalidInput` when `pk` or `sk` is missing, not a string, or empty.
    pub fn of(item: &Item) -> StoreResult<Self> {
        let part = |name: &str| match item.get(name) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
            _ => Err(StoreError::InvalidInput(format!(
                "an item needs a non-empty string '{name}' attribute"
            ))),
        };
        Ok(Self::new(part(PK)?, part(SK)?))
    }

    /// Rejects empty key parts.
    pub fn validate(&self) -> StoreResult<()> {
        if self.pk.is_empty() || self.sk.is_empty() {
            return Err(StoreError::InvalidInput("key parts must not be empty".into()));
        }
        Ok(())
    }
}

/// A comparison operator of a [`Condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The condition a write is made under. An expired item counts as absent.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The item exists.
    Exists,
    /// The item does not exist.
    NotExists,
    /// The item has the attribute.
    AttributeExists(String),
    /// The item lacks the attribute (true when the item is absent).
    AttributeNotExists(String),
    /// The attribute compares to the value: numbers as numbers, strings as UTF-8 bytes, other
    /// types only for (in)equality. False when the item or attribute is absent, except for `Ne`.
    Compare(String, Cmp, Value),
    /// All of the conditions hold.
    All(Vec<Condition>),
    /// At least one of the conditions holds.
    Any(Vec<Condition>),
}

impl Condition {
    /// `attribute = value`.
    pub fn equals(attribute: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::Compare(attribute.into(), Cmp::Eq, value.into())
    }

    /// Evaluates the condition against the live item (`None` when absent or expired).
    pub fn holds_for(&self, item: Option<&Item>) -> bool {
        match self {
            Self::Exists => item.is_some(),
            Self::NotExists => item.is_none(),
            Self::AttributeExists(name) => item.is_some_and(|item| item.contains_key(name)),
            Self::AttributeNotExists(name) => !item.is_some_and(|item| item.contains_key(name)),
            Self::Compare(name, cmp, expected) => match item.and_then(|item| item.get(name)) {
                None => *cmp == Cmp::Ne,
                Some(actual) => compare(actual, *cmp, expected),
            },
            Self::All(conditions) => conditions.iter().all(|condition| condition.holds_for(item)),
            Self::Any(conditions) => conditions.iter().any(|condition| condition.holds_for(item)),
        }
    }

    /// Checks attribute names and values for what both backends can evaluate.
    pub fn validate(&self) -> StoreResult<()> {
        match self {
            Self::Exists | Self::NotExists => Ok(()),
            Self::AttributeExists(name) | Self::AttributeNotExists(name) => validate_attribute_name(name),
            Self::Compare(name, cmp, value) => {
                validate_attribute_name(name)?;
                let ordered = matches!(value, Value::Number(_) | Value::String(_));
                if !ordered && !matches!(cmp, Cmp::Eq | Cmp::Ne) {
                    return Err(StoreError::InvalidInput(format!(
                        "'{name}' can only be compared for (in)equality with {value}"
                    )));
                }
                Ok(())
            }
            Self::All(conditions) | Self::Any(conditions) if conditions.is_empty() => Err(StoreError::InvalidInput(
                "an All or Any condition needs at least one part".into(),
            )),
            Self::All(conditions) | Self::Any(conditions) => conditions.iter().try_for_each(Condition::validate),
        }
    }
}

fn compare(actual: &Value, cmp: Cmp, expected: &Value) -> bool {
    let ordering = match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (a, b) => {
            return match cmp {
                Cmp::Eq => a == b,
                Cmp::Ne => a != b,
                _ => false,
            };
        }
    };
    let Some(ordering) = ordering else {
        return cmp == Cmp::Ne;
    };
    match cmp {
        Cmp::Eq => ordering == Ordering::Equal,
        Cmp::Ne => ordering != Ordering::Equal,
        Cmp::Lt => ordering == Ordering::Less,
        Cmp::Le => ordering != Ordering::Greater,
        Cmp::Gt => ordering == Ordering::Greater,
        Cmp::Ge => ordering != Ordering::Less,
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// A partial update, applied atomically: set attributes, remove attributes, add to numbers.
/// Updating an absent item creates it (as DynamoDB's `UpdateItem` does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Attributes to set to a value.
    pub set: Item,
    /// Attributes to remove.
    pub remove: Vec<String>,
    /// Integer attributes to increase (or decrease); a missing attribute counts as 0.
    pub add: Vec<(String, i64)>,
}

impl Update {
    /// An update that sets one attribute.
    pub fn set(attribute: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::default().and_set(attribute, value)
    }

    /// Also sets `attribute` to `value`.
    pub fn and_set(mut self, attribute: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set.insert(attribute.into(), value.into());
        self
    }

    /// Also adds `delta` to the integer `attribute`.
    pub fn and_add(mut self, attribute: impl Into<String>, delta: i64) -> Self {
        self.add.push((attribute.into(), delta));
        self
    }

    /// Also removes `attribute`.
    pub fn and_remove(mut self, attribute: impl Into<String>) -> Self {
        self.remove.push(attribute.into());
        self
    }

    /// Rejects an empty update, one that touches the key, touches an attribute twice, or sets
    /// a bad `ttl`.
    pub fn validate(&self) -> StoreResult<()> {
        let names: Vec<&String> = self
            .set
            .keys()
            .chain(self.remove.iter())
            .chain(self.add.iter().map(|(name, _)| name))
            .collect();
        if names.is_empty() {
            return Err(StoreError::InvalidInput("an update must change something".into()));
        }
        for (position, name) in names.iter().enumerate() {
            validate_attribute_name(name)?;
            if *name == PK || *name == SK {
                return Err(StoreError::InvalidInput(format!(
                    "an update cannot change the key attribute '{name}'"
                )));
            }
            if names[..position].contains(name) {
                return Err(StoreError::InvalidInput(format!("an update names '{name}' twice")));
            }
        }
        if let Some(ttl) = self.set.get(TTL) {
            validate_ttl(ttl)?;
        }
        Ok(())
    }

    /// Applies the update to `item` (the live item, or a fresh one holding only the key).
    /// `InvalidInput` when adding to an attribute that is not an integer.
    pub fn apply_to(&self, item: &mut Item) -> StoreResult<()> {
        for (name, value) in &self.set {
            item.insert(name.clone(), value.clone());
        }
        for name in &self.remove {
            item.remove(name);
        }
        for (name, delta) in &self.add {
            let current = match item.get(name) {
                None => 0,
                Some(value) => value
                    .as_i64()
                    .ok_or_else(|| StoreError::InvalidInput(format!("cannot add to '{name}': it is not an integer")))?,
            };
            let sum = current
                .checked_add(*delta)
                .ok_or_else(|| StoreError::InvalidInput(format!("adding to '{name}' overflows")))?;
            item.insert(name.clone(), Value::from(sum));
        }
        Ok(())
    }
}

/// Which sort keys a query returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SortRange {
    /// Every sort key.
    #[default]
    All,
    /// Exactly this sort key.
    Eq(String),
    /// Sort keys starting with this prefix.
    Prefix(String),
    /// Sort keys between the two, both included.
    Between(String, String),
    /// Sort keys before this one.
    Lt(String),
    /// Sort keys up to and including this one.
    Le(String),
    /// Sort keys after this one.
    Gt(String),
    /// Sort keys from this one on.
    Ge(String),
}

impl SortRange {
    /// Whether `sort_key` is in the range.
    pub fn contains(&self, sort_key: &str) -> bool {
        match self {
            Self::All => true,
            Self::Eq(value) => sort_key == value,
            Self::Prefix(prefix) => sort_key.starts_with(prefix.as_str()),
            Self::Between(low, high) => low.as_str() <= sort_key && sort_key <= high.as_str(),
            Self::Lt(value) => sort_key < value.as_str(),
            Self::Le(value) => sort_key <= value.as_str(),
            Self::Gt(value) => sort_key > value.as_str(),
            Self::Ge(value) => sort_key >= value.as_str(),
        }
    }
}

/// A query: one partition of the table or of an index, a sort-key range, an order, a page size
/// and the cursor of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `None` for the table itself, or the name of one of its indexes.
    pub index: Option<String>,
    /// The partition key value.
    pub partition: String,
    /// Which sort keys to return.
    pub range: SortRange,
    /// Highest sort key first when true.
    pub descending: bool,
    /// The most items to return, 1 to [`MAX_QUERY_LIMIT`].
    pub limit: usize,
    /// The cursor of the previous page, as returned in [`Page::cursor`].
    pub cursor: Option<String>,
}

impl Query {
    /// The first page (up to 100 items, ascending) of a table partition.
    pub fn partition(partition: impl Into<String>) -> Self {
        Self {
            index: None,
            partition: partition.into(),
            range: SortRange::All,
            descending: false,
            limit: 100,
            cursor: None,
        }
    }

    /// Checks the page size and partition.
    pub fn validate(&self) -> StoreResult<()> {
        if self.partition.is_empty() {
            return Err(StoreError::InvalidInput("a query needs a partition key".into()));
        }
        if self.limit == 0 || self.limit > MAX_QUERY_LIMIT {
            return Err(StoreError::InvalidInput(format!(
                "a query limit must be between 1 and {MAX_QUERY_LIMIT}"
            )));
        }
        Ok(())
    }
}

/// One page of query results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The items, in the query's order.
    pub items: Vec<Item>,
    /// Present exactly when more items follow: pass it as [`Query::cursor`] for the next page.
    pub cursor: Option<String>,
}

/// The key attributes that position a query after `item`: the table key, plus the index key
/// when querying an index.
pub fn cursor_after(item: &Item, table: &TableDef, index: Option<&str>) -> StoreResult<String> {
    let mut position = Map::new();
    let mut names = vec![PK, SK];
    if let Some(index) = index {
        let index = table.index(index)?;
        names.push(&index.partition_key);
        names.push(&index.sort_key);
    }
    for name in names {
        let value = item
            .get(name)
            .ok_or_else(|| StoreError::Internal(format!("item lacks key attribute '{name}'")))?;
        position.insert(name.to_owned(), value.clone());
    }
    let json = serde_json::to_vec(&position).map_err(|error| StoreError::Internal(error.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a cursor made by [`cursor_after`] into its key attributes (all strings), checking
/// that it carries exactly the attributes this query needs.
pub fn decode_cursor(cursor: &str, table: &TableDef, index: Option<&str>) -> StoreResult<Map<String, Value>> {
    let invalid = || StoreError::InvalidInput("the cursor is not one this query returned".into());
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let position: Map<String, Value> = serde_json::from_slice(&json).map_err(|_| invalid())?;
    let mut expected = vec![PK.to_owned(), SK.to_owned()];
    if let Some(index) = index {
        let index = table.index(index)?;
        expected.push(index.partition_key.clone());
        expected.push(index.sort_key.clone());
    }
    let well_formed = position.len() == expected.len()
        && expected
            .iter()
            .all(|name| matches!(position.get(name), Some(Value::String(_))));
    if well_formed { Ok(position) } else { Err(invalid()) }
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Put (create or replace) an item.
    Put {
        /// Target table.
        table: TableDef,
        /// The whole item.
        item: Item,
        /// Optional condition on the current item.
        condition: Option<Condition>,
    },
    /// Apply a partial update.
    Update {
        /// Target table.
        table: TableDef,
        /// Item key.
        key: Key,
        /// The change.
        update: Update,
        /// Optional condition on the current item.
        condition: Option<Condition>,
    },
    /// Delete an item.
    Delete {
        /// Target table.
        table: TableDef,
        /// Item key.
        key: Key,
        /// Optional condition on the current item.
        condition: Option<Condition>,
    },
    /// Write nothing, but require a condition on an item.
    Check {
        /// Target table.
        table: TableDef,
        /// Item key.
        key: Key,
        /// The condition that must hold.
        condition: Condition,
    },
}

impl Write {
    /// The table and key the write touches.
    pub fn target(&self) -> StoreResult<(&TableDef, Key)> {
        match self {
            Self::Put { table, item, .. } => Ok((table, Key::of(item)?)),
            Self::Update { table, key, .. } | Self::Delete { table, key, .. } | Self::Check { table, key, .. } => {
                Ok((table, key.clone()))
            }
        }
    }

    /// The write's condition, if any.
    pub fn condition(&self) -> Option<&Condition> {
        match self {
            Self::Put { condition, .. } | Self::Update { condition, .. } | Self::Delete { condition, .. } => {
                condition.as_ref()
            }
            Self::Check { condition, .. } => Some(condition),
        }
    }
}

/// Checks a transaction's size, that no item is touched twice, and each write's parts.
pub fn validate_transaction(writes: &[Write]) -> StoreResult<()> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::InvalidInput(format!(
            "a transaction holds 1 to {MAX_TRANSACTION_WRITES} writes, not {}",
            writes.len()
        )));
    }
    let mut seen = Vec::with_capacity(writes.len());
    for write in writes {
        let (table, key) = write.target()?;
        key.validate()?;
        if seen.contains(&(&table.name, key.clone())) {
            return Err(StoreError::InvalidInput(format!(
                "a transaction touches {}/{}/{} twice",
                table.name, key.pk, key.sk
            )));
        }
        seen.push((&table.name, key));
        if let Some(condition) = write.condition() {
            condition.validate()?;
        }
        match write {
            Write::Put { item, .. } => validate_item(item)?,
            Write::Update { update, .. } => update.validate()?,
            Write::Delete { .. } | Write::Check { .. } => {}
        }
    }
    Ok(())
}

/// Checks that an item has a valid key, a valid `ttl` if any, and fits the size limit.
pub fn validate_item(item: &Item) -> StoreResult<()> {
    Key::of(item)?;
    if let Some(ttl) = item.get(TTL) {
        validate_ttl(ttl)?;
    }
    for name in item.keys() {
        validate_attribute_name(name)?;
    }
    let size = json_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "the item is {size} bytes; the limit is {MAX_ITEM_BYTES}"
        )));
    }
    Ok(())
}

/// The length of `item` as JSON, counted without writing it out (`usize::MAX` if it cannot be
/// written).
fn json_size(item: &Item) -> usize {
    /// A sink that only counts the bytes written to it.
    struct Counted(usize);
    impl std::io::Write for Counted {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counted = Counted(0);
    match serde_json::to_writer(&mut counted, item) {
        Ok(()) => counted.0,
        Err(_) => usize::MAX,
    }
}

fn validate_ttl(ttl: &Value) -> StoreResult<()> {
    match ttl.as_i64() {
        Some(seconds) if seconds >= 0 => Ok(()),
        _ => Err(StoreError::InvalidInput(format!(
            "'{TTL}' must be whole seconds since the Unix epoch, not {ttl}"
        ))),
    }
}

fn validate_attribute_name(name: &str) -> StoreResult<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(StoreError::InvalidInput(format!(
            "attribute names are 1 to 255 bytes long: '{name}'"
        )));
    }
    Ok(())
}

/// Whether `item` has expired at `now_unix`.
pub fn is_expired(item: &Item, now_unix: i64) -> bool {
    item.get(TTL).and_then(Value::as_i64).is_some_and(|ttl| ttl <= now_unix)
}

/// The writes of [`ItemStore::transact_and_send`], built once the backend knows whether the
/// message goes in the same transaction (the argument): a record may say whether its message
/// was sent.
pub type TransactionWrites<'a> = Box<dyn FnOnce(bool) -> StoreResult<Vec<Write>> + Send + 'a>;

/// The item store port.
#[async_trait]
pub trait ItemStore: Send + Sync {
    /// The live item with `key`, or `None` if it is absent or expired.
    async fn get(&self, table: &TableDef, key: &Key) -> StoreResult<Option<Item>>;

    /// Creates or replaces `item`; with a condition, only if it holds for the current item
    /// (`Condition::NotExists` makes it a put-if-absent). `Conflict` when it does not.
    async fn put(&self, table: &TableDef, item: Item, condition: Option<Condition>) -> StoreResult<()>;

    /// Applies `update` to the item (creating it if absent) if the condition holds, and returns
    /// the item as it is afterwards. `Conflict` when the condition does not hold.
    async fn update(
        &self,
        table: &TableDef,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item>;

    /// Deletes the item if the condition holds; deleting an absent item without condition
    /// succeeds. `Conflict` when the condition does not hold.
    async fn delete(&self, table: &TableDef, key: &Key, condition: Option<Condition>) -> StoreResult<()>;

    /// One page of live items from a partition of the table or of one of its indexes.
    async fn query(&self, table: &TableDef, query: Query) -> StoreResult<Page>;

    /// How many live items the query would return over all its pages, counting at most
    /// `query.limit` (its cursor is ignored), without sending the items back. The cap bounds
    /// the work: counting is linear in what it counts on both backends.
    async fn count(&self, table: &TableDef, query: Query) -> StoreResult<u64>;

    /// Applies 1 to 25 writes all together, or none of them: `Conflict` if any condition fails.
    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()>;

    /// A transaction that a queue message goes with, where the backend keeps its queues in the
    /// same database as its items (the embedded one): it applies `writes(true)` and sends
    /// `message` to `queue`, all together or none, and answers `true`. Elsewhere (DynamoDB and
    /// SQS) it applies `writes(false)` as [`ItemStore::transact`] does and answers `false`: the
    /// caller then sends the message itself, after. `writes` is called once, with whether the
    /// message goes in the same transaction, so that only the writes applied are built.
    async fn transact_and_send(
        &self,
        writes: TransactionWrites<'_>,
        queue: &QueueDef,
        message: OutgoingMessage,
    ) -> StoreResult<bool> {
        let _ = (queue, message);
        self.transact(writes(false)?).await.map(|()| false)
    }

    /// Checks that the backend answers.
    async fn ping(&self) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Value) -> Item {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn conditions_evaluate_like_dynamodb() {
        let job = item(json!({"pk": "a", "sk": "b", "status": "QUEUED", "version": 3, "flag": true}));
        assert!(Condition::Exists.holds_for(Some(&job)));
        assert!(Condition::NotExists.holds_for(None));
        assert!(Condition::equals("status", "QUEUED").holds_for(Some(&job)));
        assert!(!Condition::equals("status", "RUNNING").holds_for(Some(&job)));
        assert!(Condition::Compare("version".into(), Cmp::Lt, json!(4)).holds_for(Some(&job)));
        assert!(Condition::Compare("version".into(), Cmp::Ge, json!(3.0)).holds_for(Some(&job)));
        assert!(!Condition::equals("missing", 1).holds_for(Some(&job)));
        assert!(Condition::Compare("missing".into(), Cmp::Ne, json!(1)).holds_for(Some(&job)));
        assert!(Condition::AttributeNotExists("missing".into()).holds_for(None));
        assert!(Condition::equals("flag", true).holds_for(Some(&job)));
        assert!(!Condition::Compare("status".into(), Cmp::Lt, json!(3)).holds_for(Some(&job)));
        assert!(!Condition::All(vec![Condition::Exists, Condition::equals("version", 2)]).holds_for(Some(&job)));
    }

    #[test]
    fn updates_apply_set_remove_and_add() {
        let mut current = item(json!({"pk": "a", "sk": "b", "count": 2, "old": 1}));
        Update::set("status", "RUNNING")
            .and_add("count", 3)
            .and_add("fresh", -1)
            .and_remove("old")
            .apply_to(&mut current)
            .expect("apply");
        assert_eq!(
            Value::Object(current),
            json!({"pk": "a", "sk": "b", "count": 5, "fresh": -1, "status": "RUNNING"})
        );
    }

    #[test]
    fn bad_updates_are_refused() {
        assert!(Update::default().validate().is_err());
        assert!(Update::set("pk", "x").validate().is_err());
        assert!(Update::set("a", 1).and_add("a", 1).validate().is_err());
        assert!(Update::set("ttl", "soon").validate().is_err());
        let mut text = item(json!({"pk": "a", "sk": "b", "n": "x"}));
        assert!(Update::default().and_add("n", 1).apply_to(&mut text).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let table = TableDef {
            name: "jobs".into(),
            indexes: vec![IndexDef {
                name: "gsi1".into(),
                partition_key: "gsi1pk".into(),
                sort_key: "gsi1sk".into(),
            }]
            .into(),
        };
        let row = item(json!({"pk": "a", "sk": "b", "gsi1pk": "u", "gsi1sk": "t", "other": 1}));
        let cursor = cursor_after(&row, &table, Some("gsi1")).expect("cursor");
        let position = decode_cursor(&cursor, &table, Some("gsi1")).expect("decode");
        assert_eq!(position.len(), 4);
        assert!(decode_cursor(&cursor, &table, None).is_err());
        assert!(decode_cursor("not base64!", &table, None).is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("{\"pk\":1,\"sk\":\"b\"}"), &table, None).is_err());
    }

    #[test]
    fn items_need_a_key_a_numeric_ttl_and_a_bounded_size() {
        assert!(validate_item(&item(json!({"pk": "a", "sk": "b"}))).is_ok());
        assert!(validate_item(&item(json!({"pk": "a"}))).is_err());
        assert!(validate_item(&item(json!({"pk": "", "sk": "b"}))).is_err());
        assert!(validate_item(&item(json!({"pk": "a", "sk": "b", "ttl": "tomorrow"}))).is_err());
        let big = "x".repeat(MAX_ITEM_BYTES);
        assert!(validate_item(&item(json!({"pk": "a", "sk": "b", "blob": big}))).is_err());
    }

    #[test]
    fn sort_ranges_select_like_key_conditions() {
        assert!(SortRange::Prefix("2025-".into()).contains("2025-12"));
        assert!(!SortRange::Prefix("2025-".into()).contains("2024-12"));
        assert!(SortRange::Between("b".into(), "d".into()).contains("d"));
        assert!(!SortRange::Gt("b".into()).contains("b"));
        assert!(SortRange::Le("b".into()).contains("b"));
    }
}
