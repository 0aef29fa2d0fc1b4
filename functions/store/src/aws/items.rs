//! The item store on DynamoDB. Every table has `pk`/`sk` string keys; an expired item (its
//! `ttl` at or before the clock) is filtered out of reads and counts as absent in every
//! condition, since DynamoDB itself only deletes it up to days later.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    self, AttributeValue, CancellationReason, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::AwsStore;
use super::attributes::{Attributes, from_attributes, to_attributes};
use super::errors::{built, is, store_error};
use super::expressions::Expressions;
use crate::error::{StoreError, StoreResult};
use crate::item::{
    Condition, Item, ItemStore, Key, PK, Page, Query, SK, TableDef, Update, Write, cursor_after, decode_cursor,
    is_expired, validate_item, validate_transaction,
};

/// How many times a write that found an expired item in its way clears it and tries again.
const ATTEMPTS: usize = 3;

/// The outcome of one conditional update.
enum Attempt {
    /// The item as it is now.
    Done(Item),
    /// The condition failed; the item as it was, when DynamoDB returned it.
    Refused(Option<Attributes>),
}

#[async_trait]
impl ItemStore for AwsStore {
    async fn get(&self, table: &TableDef, key: &Key) -> StoreResult<Option<Item>> {
        key.validate()?;
        let now = self.now();
        let item = self.stored_item(table, key).await?;
        Ok(item.filter(|item| !is_expired(item, now)))
    }

    async fn put(&self, table: &TableDef, item: Item, condition: Option<Condition>) -> StoreResult<()> {
        validate_item(&item)?;
        validate_condition(condition.as_ref())?;
        let mut ex = Expressions::default();
        let condition = condition.map(|condition| ex.write_condition(&condition, self.now()));
        let name = self.table_name(table);
        self.dynamodb
            .put_item()
            .table_name(&name)
            .set_item(Some(to_attributes(&item)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .send()
            .await
            .map_err(|error| store_error(&format!("PutItem {name}"), error))?;
        Ok(())
    }

    async fn update(
        &self,
        table: &TableDef,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item> {
        key.validate()?;
        update.validate()?;
        validate_condition(condition.as_ref())?;
        let absent_ok = condition.as_ref().is_none_or(|condition| condition.holds_for(None));
        for _ in 0..ATTEMPTS {
            let now = self.now();
            let seen = match self.try_update(table, key, &update, condition.as_ref(), now).await? {
                Attempt::Done(item) => return Ok(item),
                Attempt::Refused(seen) => seen,
            };
            // An expired item satisfies a condition that holds for an absent one, but the update
            // must start from a fresh item: clear the expired one and go again.
            if !absent_ok || !self.clear_expired(table, key, seen, now).await? {
                break;
            }
        }
        Err(conflict(table, key))
    }

    async fn delete(&self, table: &TableDef, key: &Key, condition: Option<Condition>) -> StoreResult<()> {
        key.validate()?;
        validate_condition(condition.as_ref())?;
        let mut ex = Expressions::default();
        let condition = condition.map(|condition| ex.write_condition(&condition, self.now()));
        let name = self.table_name(table);
        self.dynamodb
            .delete_item()
            .table_name(&name)
            .set_key(Some(key_attributes(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .send()
            .await
            .map_err(|error| store_error(&format!("DeleteItem {name}"), error))?;
        Ok(())
    }

    async fn query(&self, table: &TableDef, query: Query) -> StoreResult<Page> {
        query.validate()?;
        let index = query.index.as_deref();
        let mut start = match &query.cursor {
            Some(cursor) => Some(to_attributes(&decode_cursor(cursor, table, index)?)),
            None => None,
        };
        let now = self.now();
        let mut items = Vec::new();
        // The TTL filter applies after DynamoDB's `Limit`, so a page may come back short while
        // more items follow: read on until one item past the page is found.
        loop {
            let wanted = query.limit + 1 - items.len();
            let (found, next) = self.query_once(table, &query, start, wanted, now).await?;
            items.extend(found);
            start = next;
            if items.len() > query.limit || start.is_none() {
                break;
            }
        }
        let more = items.len() > query.limit;
        items.truncate(query.limit);
        let cursor = match items.last() {
            Some(last) if more => Some(cursor_after(last, table, index)?),
            _ => None,
        };
        Ok(Page { items, cursor })
    }

    async fn count(&self, table: &TableDef, mut query: Query) -> StoreResult<u64> {
        query.cursor = None;
        query.validate()?;
        let (partition_key, sort_key) = match query.index.as_deref() {
            Some(index) => {
                let index = table.index(index)?;
                (index.partition_key.as_str(), index.sort_key.as_str())
            }
            None => (PK, SK),
        };
        let now = self.now();
        let name = self.table_name(table);
        let mut ex = Expressions::default();
        let key_condition = ex.key_condition((partition_key, &query.partition), sort_key, &query.range);
        let live = ex.live(now);
        let mut total = 0_u64;
        let mut start = None;
        loop {
            let output = self
                .dynamodb
                .query()
                .table_name(&name)
                .set_index_name(query.index.clone())
                .key_condition_expression(&key_condition)
                .filter_expression(&live)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .select(aws_sdk_dynamodb::types::Select::Count)
                .limit(i32::try_from(query.limit).unwrap_or(i32::MAX))
                .set_consistent_read(query.index.is_none().then_some(true))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| store_error(&format!("Query (count) {name}"), error))?;
            total += u64::try_from(output.count()).unwrap_or(0);
            start = output.last_evaluated_key().cloned();
            let cap = u64::try_from(query.limit).unwrap_or(u64::MAX);
            if start.is_none() || total >= cap {
                return Ok(total.min(cap));
            }
        }
    }

    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        validate_transaction(&writes)?;
        for _ in 0..ATTEMPTS {
            let now = self.now();
            let requests = writes
                .iter()
                .map(|write| self.transact_item(write, now))
                .collect::<StoreResult<Vec<_>>>()?;
            let result = self
                .dynamodb
                .transact_write_items()
                .set_transact_items(Some(requests))
                .send()
                .await;
            let Err(error) = result else {
                return Ok(());
            };
            let reasons = cancellation_reasons(&error).ok_or_else(|| store_error("TransactWriteItems", error))?;
            for (table, key, seen) in refusals_to_clear(&writes, &reasons)? {
                if !self.clear_expired(table, &key, seen, now).await? {
                    return Err(transaction_conflict());
                }
            }
        }
        Err(transaction_conflict())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.dynamodb
            .list_tables()
            .limit(1)
            .send()
            .await
            .map_err(|error| store_error("ListTables", error))?;
        Ok(())
    }
}

impl AwsStore {
    /// The item as stored, expired or not.
    async fn stored_item(&self, table: &TableDef, key: &Key) -> StoreResult<Option<Item>> {
        let name = self.table_name(table);
        let output = self
            .dynamodb
            .get_item()
            .table_name(&name)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| store_error(&format!("GetItem {name}"), error))?;
        output.item().map(from_attributes).transpose()
    }

    async fn try_update(
        &self,
        table: &TableDef,
        key: &Key,
        update: &Update,
        condition: Option<&Condition>,
        now: i64,
    ) -> StoreResult<Attempt> {
        let mut ex = Expressions::default();
        let condition = ex.live_and(condition, now);
        let expression = ex.update(update);
        let name = self.table_name(table);
        let result = self
            .dynamodb
            .update_item()
            .table_name(&name)
            .set_key(Some(key_attributes(key)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let attributes = output
                    .attributes()
                    .ok_or_else(|| StoreError::Internal(format!("UpdateItem {name} returned no item")))?;
                Ok(Attempt::Done(from_attributes(attributes)?))
            }
            Err(error) => match refused_item(&error) {
                Some(seen) => Ok(Attempt::Refused(seen)),
                None => Err(store_error(&format!("UpdateItem {name}"), error)),
            },
        }
    }

    /// Deletes the item if it expired at `now`; returns whether it had. `seen` is the item as a
    /// refused write found it, if the service returned it (otherwise it is read again).
    async fn clear_expired(
        &self,
        table: &TableDef,
        key: &Key,
        seen: Option<Attributes>,
        now: i64,
    ) -> StoreResult<bool> {
        let item = match seen {
            Some(attributes) => Some(from_attributes(&attributes)?),
            None => self.stored_item(table, key).await?,
        };
        if !item.is_some_and(|item| is_expired(&item, now)) {
            return Ok(false);
        }
        let mut ex = Expressions::default();
        let expired = ex.expired(now);
        let name = self.table_name(table);
        let result = self
            .dynamodb
            .delete_item()
            .table_name(&name)
            .set_key(Some(key_attributes(key)))
            .condition_expression(expired)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .send()
            .await;
        match result {
            // Another writer cleared or replaced it first; the retry sees what is there now.
            Err(error) if is(&error, "ConditionalCheckFailedException") => Ok(true),
            Err(error) => Err(store_error(&format!("DeleteItem {name}"), error)),
            Ok(_) => Ok(true),
        }
    }

    /// One DynamoDB query call: up to `limit` evaluated items, the live ones returned, and
    /// where to go on from.
    async fn query_once(
        &self,
        table: &TableDef,
        query: &Query,
        start: Option<Attributes>,
        limit: usize,
        now: i64,
    ) -> StoreResult<(Vec<Item>, Option<Attributes>)> {
        let (partition_key, sort_key) = match query.index.as_deref() {
            Some(index) => {
                let index = table.index(index)?;
                (index.partition_key.as_str(), index.sort_key.as_str())
            }
            None => (PK, SK),
        };
        let mut ex = Expressions::default();
        let key_condition = ex.key_condition((partition_key, &query.partition), sort_key, &query.range);
        let live = ex.live(now);
        let name = self.table_name(table);
        let output = self
            .dynamodb
            .query()
            .table_name(&name)
            .set_index_name(query.index.clone())
            .key_condition_expression(key_condition)
            .filter_expression(live)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .scan_index_forward(!query.descending)
            // Strong consistency exists on the table only; index reads are eventually consistent.
            .set_consistent_read(query.index.is_none().then_some(true))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|error| store_error(&format!("Query {name}"), error))?;
        let items = output
            .items()
            .iter()
            .map(from_attributes)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((items, output.last_evaluated_key().cloned()))
    }

    fn transact_item(&self, write: &Write, now: i64) -> StoreResult<TransactWriteItem> {
        match write {
            Write::Put { table, item, condition } => self.transact_put(table, item, condition.as_ref(), now),
            Write::Update {
                table,
                key,
                update,
                condition,
            } => self.transact_update(table, key, update, condition.as_ref(), now),
            Write::Delete { table, key, condition } => self.transact_delete(table, key, condition.as_ref(), now),
            Write::Check { table, key, condition } => self.transact_check(table, key, condition, now),
        }
    }

    fn transact_put(
        &self,
        table: &TableDef,
        item: &Item,
        condition: Option<&Condition>,
        now: i64,
    ) -> StoreResult<TransactWriteItem> {
        let mut ex = Expressions::default();
        let condition = condition.map(|condition| ex.write_condition(condition, now));
        let put = types::Put::builder()
            .table_name(self.table_name(table))
            .set_item(Some(to_attributes(item)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values());
        Ok(TransactWriteItem::builder().put(built(put.build())?).build())
    }

    /// As a single update: never on an expired item, and returning the item it refused, so
    /// that an expired one can be cleared.
    fn transact_update(
        &self,
        table: &TableDef,
        key: &Key,
        update: &Update,
        condition: Option<&Condition>,
        now: i64,
    ) -> StoreResult<TransactWriteItem> {
        let mut ex = Expressions::default();
        let condition = ex.live_and(condition, now);
        let expression = ex.update(update);
        let update = types::Update::builder()
            .table_name(self.table_name(table))
            .set_key(Some(key_attributes(key)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        Ok(TransactWriteItem::builder().update(built(update.build())?).build())
    }

    fn transact_delete(
        &self,
        table: &TableDef,
        key: &Key,
        condition: Option<&Condition>,
        now: i64,
    ) -> StoreResult<TransactWriteItem> {
        let mut ex = Expressions::default();
        let condition = condition.map(|condition| ex.write_condition(condition, now));
        let delete = types::Delete::builder()
            .table_name(self.table_name(table))
            .set_key(Some(key_attributes(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values());
        Ok(TransactWriteItem::builder().delete(built(delete.build())?).build())
    }

    fn transact_check(
        &self,
        table: &TableDef,
        key: &Key,
        condition: &Condition,
        now: i64,
    ) -> StoreResult<TransactWriteItem> {
        let mut ex = Expressions::default();
        let condition = ex.write_condition(condition, now);
        let check = types::ConditionCheck::builder()
            .table_name(self.table_name(table))
            .set_key(Some(key_attributes(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values());
        Ok(TransactWriteItem::builder()
            .condition_check(built(check.build())?)
            .build())
    }
}

/// The updates of a cancelled transaction that an expired item may have refused, with the item
/// they found; `Conflict` when any other condition failed, and the matching error when the
/// transaction was cancelled for another reason.
fn refusals_to_clear<'a>(
    writes: &'a [Write],
    reasons: &[CancellationReason],
) -> StoreResult<Vec<(&'a TableDef, Key, Option<Attributes>)>> {
    let mut refusals = Vec::new();
    let mut other = None;
    for (write, reason) in writes.iter().zip(reasons) {
        match (reason.code().unwrap_or("None"), write) {
            ("None", _) => {}
            (
                "ConditionalCheckFailed",
                Write::Update {
                    table, key, condition, ..
                },
            ) if condition.as_ref().is_none_or(|condition| condition.holds_for(None)) => {
                refusals.push((table, key.clone(), reason.item().cloned()));
            }
            ("ConditionalCheckFailed", _) => return Err(transaction_conflict()),
            (code, _) => other = other.or_else(|| Some(cancellation_error(code, reason.message()))),
        }
    }
    match other {
        Some(error) => Err(error),
        None if refusals.is_empty() => Err(StoreError::Internal(
            "a transaction was cancelled without a reason".into(),
        )),
        None => Ok(refusals),
    }
}

fn cancellation_error(code: &str, message: Option<&str>) -> StoreError {
    let detail = format!("transaction cancelled: {code}: {}", message.unwrap_or_default());
    match code {
        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded" => {
            StoreError::Unavailable(detail)
        }
        "ValidationError" | "ItemCollectionSizeLimitExceeded" => StoreError::InvalidInput(detail),
        _ => StoreError::Internal(detail),
    }
}

fn cancellation_reasons(error: &SdkError<TransactWriteItemsError>) -> Option<Vec<CancellationReason>> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            Some(cancelled.cancellation_reasons().to_vec())
        }
        _ => None,
    }
}

/// For a failed condition, the item as DynamoDB found it (when it says).
fn refused_item(error: &SdkError<UpdateItemError>) -> Option<Option<Attributes>> {
    match error.as_service_error()? {
        UpdateItemError::ConditionalCheckFailedException(refusal) => Some(refusal.item().cloned()),
        _ => None,
    }
}

fn validate_condition(condition: Option<&Condition>) -> StoreResult<()> {
    condition.map_or(Ok(()), Condition::validate)
}

fn transaction_conflict() -> StoreError {
    StoreError::Conflict("a condition of the transaction did not hold; nothing was written".into())
}

fn key_attributes(key: &Key) -> Attributes {
    Attributes::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn conflict(table: &TableDef, key: &Key) -> StoreError {
    StoreError::Conflict(format!(
        "the condition on {}/{}/{} did not hold",
        table.name, key.pk, key.sk
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableDef {
        TableDef {
            name: "jobs".into(),
            indexes: vec![].into(),
        }
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn update(condition: Option<Condition>) -> Write {
        Write::Update {
            table: table(),
            key: Key::new("a", "b"),
            update: Update::set("x", 1),
            condition,
        }
    }

    /// How many refusals a cancellation with these reason codes leaves to clear.
    fn refusals(writes: &[Write], codes: &[&str]) -> StoreResult<usize> {
        let reasons: Vec<_> = codes.iter().map(|code| reason(code)).collect();
        refusals_to_clear(writes, &reasons).map(|refusals| refusals.len())
    }

    #[test]
    fn a_failed_condition_that_needs_the_item_is_a_conflict() {
        let writes = [update(Some(Condition::Exists)), update(None)];
        let result = refusals(&writes, &["ConditionalCheckFailed", "None"]);
        assert!(matches!(result, Err(StoreError::Conflict(_))));
        let check = Write::Check {
            table: table(),
            key: Key::new("a", "b"),
            condition: Condition::NotExists,
        };
        let result = refusals(&[check], &["ConditionalCheckFailed"]);
        assert!(matches!(result, Err(StoreError::Conflict(_))));
    }

    #[test]
    fn updates_that_an_absent_item_satisfies_may_have_met_an_expired_one() {
        let writes = [update(Some(Condition::NotExists)), update(None)];
        let codes = ["ConditionalCheckFailed", "ConditionalCheckFailed"];
        assert_eq!(refusals(&writes, &codes), Ok(2));
    }

    #[test]
    fn other_cancellations_keep_their_kind() {
        let writes = [update(None)];
        let result = refusals(&writes, &["TransactionConflict"]);
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        let result = refusals(&writes, &["ValidationError"]);
        assert!(matches!(result, Err(StoreError::InvalidInput(_))));
        let result = refusals(&writes, &["None"]);
        assert!(matches!(result, Err(StoreError::Internal(_))));
    }

    #[test]
    fn keys_are_string_attributes() {
        let attributes = key_attributes(&Key::new("user#1", "meta"));
        assert_eq!(attributes.len(), 2);
        assert_eq!(attributes["sk"], AttributeValue::S("meta".into()));
    }
}
