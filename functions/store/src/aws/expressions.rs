//! DynamoDB expressions built from the port's conditions, updates and sort ranges. Every
//! attribute name and value goes through a `#n`/`:v` placeholder, so reserved words (`ttl`,
//! `status`) and arbitrary names are safe.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::attributes::{Attributes, to_attribute};
use crate::item::{Cmp, Condition, PK, SortRange, TTL, Update};

/// The placeholders of one request, collected while its expressions are written.
#[derive(Debug, Default)]
pub(crate) struct Expressions {
    names: HashMap<String, String>,
    values: Attributes,
}

impl Expressions {
    /// The placeholder of attribute `name`; the same name always gets the same placeholder.
    pub(crate) fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, known)| *known == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    /// The placeholder of a new value.
    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `ExpressionAttributeNames`, or `None` when empty (DynamoDB refuses an empty map).
    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// `ExpressionAttributeValues`, or `None` when empty.
    pub(crate) fn values(&self) -> Option<Attributes> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// The condition expression of a port condition.
    pub(crate) fn condition(&mut self, condition: &Condition) -> String {
        match condition {
            Condition::Exists => format!("attribute_exists({})", self.name(PK)),
            Condition::NotExists => format!("attribute_not_exists({})", self.name(PK)),
            Condition::AttributeExists(name) => format!("attribute_exists({})", self.name(name)),
            Condition::AttributeNotExists(name) => {
                format!("attribute_not_exists({})", self.name(name))
            }
            Condition::Compare(name, cmp, value) => self.compare(name, *cmp, value),
            Condition::All(parts) => self.joined(parts, " AND "),
            Condition::Any(parts) => self.joined(parts, " OR "),
        }
    }

    fn joined(&mut self, parts: &[Condition], operator: &str) -> String {
        let parts: Vec<String> = parts.iter().map(|part| format!("({})", self.condition(part))).collect();
        parts.join(operator)
    }

    fn compare(&mut self, name: &str, cmp: Cmp, value: &Value) -> String {
        let operator = match cmp {
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        };
        let name = self.name(name);
        let value = self.value(to_attribute(value));
        format!("{name} {operator} {value}")
    }

    /// True when the item is absent or not expired at `now`.
    pub(crate) fn live(&mut self, now: i64) -> String {
        let ttl = self.name(TTL);
        let now = self.value(number(now));
        format!("attribute_not_exists({ttl}) OR {ttl} > {now}")
    }

    /// True when the item exists and expired at or before `now`.
    pub(crate) fn expired(&mut self, now: i64) -> String {
        let ttl = self.name(TTL);
        let now = self.value(number(now));
        format!("{ttl} <= {now}")
    }

    /// The condition of a put, delete or check under the port's rule that an expired item is
    /// absent: when the condition holds for an absent item, an expired item satisfies it too;
    /// otherwise the item must also be live.
    pub(crate) fn write_condition(&mut self, condition: &Condition, now: i64) -> String {
        if condition.holds_for(None) {
            let expired = self.expired(now);
            format!("({expired}) OR ({})", self.condition(condition))
        } else {
            self.live_and(Some(condition), now)
        }
    }

    /// The item is live (or absent) and the condition holds. An update uses this for every
    /// write, as it must never build on an expired item.
    pub(crate) fn live_and(&mut self, condition: Option<&Condition>, now: i64) -> String {
        let live = self.live(now);
        match condition {
            Some(condition) => format!("({live}) AND ({})", self.condition(condition)),
            None => live,
        }
    }

    /// The update expression: `SET ... REMOVE ... ADD ...`.
    pub(crate) fn update(&mut self, update: &Update) -> String {
        let mut clauses = Vec::new();
        let set: Vec<String> = update
            .set
            .iter()
            .map(|(name, value)| format!("{} = {}", self.name(name), self.value(to_attribute(value))))
            .collect();
        if !set.is_empty() {
            clauses.push(format!("SET {}", set.join(", ")));
        }
        let remove: Vec<String> = update.remove.iter().map(|name| self.name(name)).collect();
        if !remove.is_empty() {
            clauses.push(format!("REMOVE {}", remove.join(", ")));
        }
        let add: Vec<String> = update
            .add
            .iter()
            .map(|(name, delta)| format!("{} {}", self.name(name), self.value(number(*delta))))
            .collect();
        if !add.is_empty() {
            clauses.push(format!("ADD {}", add.join(", ")));
        }
        clauses.join(" ")
    }

    /// The key condition of a query: the partition, and the sort range if it is not `All`.
    pub(crate) fn key_condition(&mut self, partition: (&str, &str), sort_key: &str, range: &SortRange) -> String {
        let (partition_key, partition_value) = partition;
        let name = self.name(partition_key);
        let value = self.value(AttributeValue::S(partition_value.to_owned()));
        let mut expression = format!("{name} = {value}");
        if let Some(range) = self.sort_range(sort_key, range) {
            expression.push_str(" AND ");
            expression.push_str(&range);
        }
        expression
    }

    fn sort_range(&mut self, sort_key: &str, range: &SortRange) -> Option<String> {
        let (operator, bound) = match range {
            SortRange::All => return None,
            SortRange::Prefix(prefix) => {
                let (name, prefix) = (self.name(sort_key), self.text(prefix));
                return Some(format!("begins_with({name}, {prefix})"));
            }
            SortRange::Between(low, high) => {
                let (name, low, high) = (self.name(sort_key), self.text(low), self.text(high));
                return Some(format!("{name} BETWEEN {low} AND {high}"));
            }
            SortRange::Eq(bound) => ("=", bound),
            SortRange::Lt(bound) => ("<", bound),
            SortRange::Le(bound) => ("<=", bound),
            SortRange::Gt(bound) => (">", bound),
            SortRange::Ge(bound) => (">=", bound),
        };
        let (name, bound) = (self.name(sort_key), self.text(bound));
        Some(format!("{name} {operator} {bound}"))
    }

    fn text(&mut self, text: &str) -> String {
        self.value(AttributeValue::S(text.to_owned()))
    }
}

/// A number attribute.
pub(crate) fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(expressions: &Expressions) -> HashMap<String, String> {
        expressions.names().unwrap_or_default()
    }

    #[test]
    fn each_condition_has_its_expression() {
        let mut ex = Expressions::default();
        assert_eq!(ex.condition(&Condition::Exists), "attribute_exists(#n0)");
        assert_eq!(ex.condition(&Condition::NotExists), "attribute_not_exists(#n0)");
        assert_eq!(
            ex.condition(&Condition::AttributeExists("status".into())),
            "attribute_exists(#n1)"
        );
        assert_eq!(
            ex.condition(&Condition::AttributeNotExists("ttl".into())),
            "attribute_not_exists(#n2)"
        );
        assert_eq!(names(&ex)["#n0"], "pk");
        assert_eq!(names(&ex)["#n1"], "status");
        assert_eq!(names(&ex)["#n2"], "ttl");
        assert_eq!(ex.values(), None);
    }

    #[test]
    fn comparisons_use_placeholders_for_names_and_values() {
        let operators = [
            (Cmp::Eq, "="),
            (Cmp::Ne, "<>"),
            (Cmp::Lt, "<"),
            (Cmp::Le, "<="),
            (Cmp::Gt, ">"),
            (Cmp::Ge, ">="),
        ];
        for (cmp, operator) in operators {
            let mut ex = Expressions::default();
            let expression = ex.condition(&Condition::Compare("version".into(), cmp, json!(3)));
            assert_eq!(expression, format!("#n0 {operator} :v0"));
            assert_eq!(names(&ex)["#n0"], "version");
            assert_eq!(ex.values().expect("values")[":v0"], AttributeValue::N("3".into()));
        }
    }

    #[test]
    fn all_joins_its_parts_and_reuses_names() {
        let mut ex = Expressions::default();
        let condition = Condition::All(vec![
            Condition::equals("status", "QUEUED"),
            Condition::Compare("status".into(), Cmp::Ne, json!("DONE")),
            Condition::Exists,
        ]);
        assert_eq!(
            ex.condition(&condition),
            "(#n0 = :v0) AND (#n0 <> :v1) AND (attribute_exists(#n1))"
        );
        assert_eq!(ex.values().expect("values")[":v1"], AttributeValue::S("DONE".into()));
    }

    #[test]
    fn write_conditions_treat_expired_items_as_absent() {
        let mut ex = Expressions::default();
        let absent_ok = ex.write_condition(&Condition::NotExists, 100);
        assert_eq!(absent_ok, "(#n0 <= :v0) OR (attribute_not_exists(#n1))");
        assert_eq!(names(&ex)["#n0"], "ttl");
        assert_eq!(ex.values().expect("values")[":v0"], AttributeValue::N("100".into()));

        let mut ex = Expressions::default();
        let needs_item = ex.write_condition(&Condition::equals("n", 1), 100);
        assert_eq!(needs_item, "(attribute_not_exists(#n0) OR #n0 > :v0) AND (#n1 = :v1)");
    }

    #[test]
    fn updates_set_remove_and_add() {
        let mut ex = Expressions::default();
        let update = Update::set("status", "RUNNING")
            .and_remove("old")
            .and_add("version", -1);
        assert_eq!(ex.update(&update), "SET #n0 = :v0 REMOVE #n1 ADD #n2 :v1");
        let values = ex.values().expect("values");
        assert_eq!(values[":v0"], AttributeValue::S("RUNNING".into()));
        assert_eq!(values[":v1"], AttributeValue::N("-1".into()));
        let mut ex = Expressions::default();
        assert_eq!(
            ex.update(&Update::default().and_add("a", 1).and_add("b", 2)),
            "ADD #n0 :v0, #n1 :v1"
        );
    }

    #[test]
    fn each_sort_range_has_its_key_condition() {
        let cases = [
            (SortRange::All, "#n0 = :v0"),
            (SortRange::Eq("b".into()), "#n0 = :v0 AND #n1 = :v1"),
            (SortRange::Prefix("b".into()), "#n0 = :v0 AND begins_with(#n1, :v1)"),
            (
                SortRange::Between("b".into(), "c".into()),
                "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2",
            ),
            (SortRange::Lt("b".into()), "#n0 = :v0 AND #n1 < :v1"),
            (SortRange::Le("b".into()), "#n0 = :v0 AND #n1 <= :v1"),
            (SortRange::Gt("b".into()), "#n0 = :v0 AND #n1 > :v1"),
            (SortRange::Ge("b".into()), "#n0 = :v0 AND #n1 >= :v1"),
        ];
        for (range, expected) in cases {
            let mut ex = Expressions::default();
            assert_eq!(
                ex.key_condition(("gsi1pk", "user#1"), "gsi1sk", &range),
                expected,
                "{range:?}"
            );
            assert_eq!(names(&ex)["#n0"], "gsi1pk");
            assert_eq!(ex.values().expect("values")[":v0"], AttributeValue::S("user#1".into()));
        }
    }
}
