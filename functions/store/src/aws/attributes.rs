//! Items as DynamoDB attribute values and back: JSON strings, numbers, booleans, nulls, arrays
//! and objects map to `S`, `N`, `BOOL`, `NULL`, `L` and `M`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value};

use crate::error::{StoreError, StoreResult};
use crate::item::Item;

/// A DynamoDB item or key.
pub(crate) type Attributes = HashMap<String, AttributeValue>;

/// The attribute value of a JSON value.
pub(crate) fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(flag) => AttributeValue::Bool(*flag),
        // The number's own text, so integers keep every digit.
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(values) => AttributeValue::L(values.iter().map(to_attribute).collect()),
        Value::Object(fields) => AttributeValue::M(to_attributes(fields)),
    }
}

/// The attribute map of a JSON object.
pub(crate) fn to_attributes(object: &Map<String, Value>) -> Attributes {
    object
        .iter()
        .map(|(name, value)| (name.clone(), to_attribute(value)))
        .collect()
}

/// The JSON value of an attribute value; `Internal` for types this store never writes (sets,
/// binary).
pub(crate) fn from_attribute(attribute: &AttributeValue) -> StoreResult<Value> {
    Ok(match attribute {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::N(text) => Value::Number(parse_number(text)?),
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::L(values) => Value::Array(values.iter().map(from_attribute).collect::<StoreResult<_>>()?),
        AttributeValue::M(fields) => Value::Object(from_attributes(fields)?),
        other => {
            return Err(StoreError::Internal(format!(
                "DynamoDB returned an attribute type this store does not use: {other:?}"
            )));
        }
    })
}

/// The JSON object of an attribute map.
pub(crate) fn from_attributes(attributes: &Attributes) -> StoreResult<Item> {
    attributes
        .iter()
        .map(|(name, attribute)| Ok((name.clone(), from_attribute(attribute)?)))
        .collect()
}

fn parse_number(text: &str) -> StoreResult<Number> {
    serde_json::from_str::<Number>(text)
        .map_err(|_| StoreError::Internal(format!("DynamoDB returned '{text}', which is not a JSON number")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(value: Value) {
        let attribute = to_attribute(&value);
        assert_eq!(from_attribute(&attribute).expect("convert back"), value);
    }

    #[test]
    fn scalars_map_to_their_dynamodb_types() {
        assert_eq!(to_attribute(&json!("text")), AttributeValue::S("text".into()));
        assert_eq!(to_attribute(&json!("")), AttributeValue::S(String::new()));
        assert_eq!(to_attribute(&json!(42)), AttributeValue::N("42".into()));
        assert_eq!(to_attribute(&json!(-0.5)), AttributeValue::N("-0.5".into()));
        assert_eq!(to_attribute(&json!(true)), AttributeValue::Bool(true));
        assert_eq!(to_attribute(&Value::Null), AttributeValue::Null(true));
    }

    #[test]
    fn values_round_trip() {
        for value in [
            json!("text"),
            json!(""),
            json!(0),
            json!(-42),
            json!(1.5),
            json!(-0.001),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e100),
            json!(false),
            Value::Null,
            json!([]),
            json!({}),
        ] {
            round_trip(value);
        }
    }

    #[test]
    fn nested_lists_and_maps_round_trip() {
        round_trip(json!({
            "params": {"prompt": "a sunset", "steps": 20, "seed": -42, "scale": 7.5},
            "tags": ["a", 1, null, true, {"deep": [[], {"x": ""}]}],
            "none": null
        }));
    }

    #[test]
    fn integers_stay_integers() {
        let back = from_attribute(&AttributeValue::N("1234567890123".into())).expect("number");
        assert_eq!(back.as_i64(), Some(1_234_567_890_123));
        let exponent = from_attribute(&AttributeValue::N("1E+2".into())).expect("number");
        assert_eq!(exponent.as_f64(), Some(100.0));
    }

    #[test]
    fn foreign_types_are_refused() {
        assert!(from_attribute(&AttributeValue::N("not a number".into())).is_err());
        assert!(from_attribute(&AttributeValue::Ss(vec!["a".into()])).is_err());
        let nested = AttributeValue::M(HashMap::from([("set".into(), AttributeValue::Ns(vec!["1".into()]))]));
        assert!(from_attribute(&nested).is_err());
    }

    #[test]
    fn items_convert_field_by_field() {
        let item = json!({"pk": "a", "sk": "b", "n": 1})
            .as_object()
            .cloned()
            .expect("object");
        let attributes = to_attributes(&item);
        assert_eq!(attributes["pk"], AttributeValue::S("a".into()));
        assert_eq!(from_attributes(&attributes).expect("back"), item);
    }
}
