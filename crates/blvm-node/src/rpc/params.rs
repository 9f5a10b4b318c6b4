//! Request parameters, positional or named, and typed access to them with
//! Bitcoin Core's error codes and messages.
//!
//! Core accepts `"params": [..]` and `"params": {..}` for every method; a
//! method declares each argument by position *and* name, so handlers here
//! read an argument with [`Params::get`]`(index, name)` and work with either
//! form. As in Core, a JSON `null` counts as "not given", so a client can skip
//! an optional positional argument by passing `null`.
//!
//! A value of the wrong JSON type is refused with `RPC_TYPE_ERROR` (-3) and
//! Core's message (since v25):
//!
//! ```text
//! Wrong type passed:
//! {
//!     "Position 1 (height)": "JSON value of type string is not of expected type number"
//! }
//! ```
//!
//! The expected type is found by asking `T`'s `Deserialize` impl which
//! `deserialize_*` method it calls (see [`expected_json_type`]); types that
//! accept anything (`serde_json::Value`, untagged enums) fall back to serde's
//! own message under `RPC_INVALID_PARAMETER` (-8).

use std::fmt;

use serde::de::{DeserializeOwned, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::RpcError;

/// The `params` member of a request: an array (positional) or an object (named).
///
/// A request without `params` (or with `"params": null`) gets an empty
/// [`Params::Positional`], as in Core.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `"params": [a, b, …]`.
    Positional(Vec<Value>),
    /// `"params": {"name": a, …}`.
    Named(Map<String, Value>),
}

impl Default for Params {
    fn default() -> Self {
        Params::Positional(Vec::new())
    }
}

impl Params {
    /// Returns the raw value of an argument, by `index` if positional or by
    /// `name` if named; `None` if it is absent or JSON `null`.
    pub fn raw(&self, index: usize, name: &str) -> Option<&Value> {
        let value = match self {
            Params::Positional(values) => values.get(index),
            Params::Named(map) => map.get(name),
        };
        value.filter(|v| !v.is_null())
    }

    /// Reads an optional argument as `T`.
    ///
    /// # Errors
    ///
    /// `RPC_TYPE_ERROR` (-3) with Core's "Wrong type passed" message when the
    /// JSON type is wrong; `RPC_MISC_ERROR` (-1) "JSON integer out of range"
    /// for a number that does not fit `T`; `RPC_INVALID_PARAMETER` (-8) for
    /// any other value `T` refuses.
    pub fn get<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<Option<T>, RpcError> {
        match self.raw(index, name) {
            None => Ok(None),
            Some(value) => convert(value, index, name).map(Some),
        }
    }

    /// Reads an argument that must be present.
    ///
    /// # Errors
    ///
    /// As [`Params::get`], and `RPC_MISC_ERROR` (-1) when the argument is
    /// absent (Core answers a missing argument with -1 and the method's help).
    pub fn required<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, RpcError> {
        self.get(index, name)?
            .ok_or_else(|| RpcError::misc(format!("Missing required parameter: position {} ({name})", index + 1)))
    }

    /// Returns the number of arguments given (positional length or number of names).
    pub fn len(&self) -> usize {
        match self {
            Params::Positional(values) => values.len(),
            Params::Named(map) => map.len(),
        }
    }

    /// Returns whether no argument was given.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the arguments against a method's argument names, in order.
    ///
    /// # Errors
    ///
    /// Named: `RPC_INVALID_PARAMETER` (-8) `Unknown named parameter <name>`, as
    /// Core. Positional: `RPC_MISC_ERROR` (-1) when there are more arguments
    /// than names (Core answers with the help text under the same code).
    pub fn check_names(&self, names: &[&str]) -> Result<(), RpcError> {
        match self {
            Params::Positional(values) if values.len() > names.len() => Err(RpcError::misc(format!(
                "Too many parameters: {} given, at most {} accepted",
                values.len(),
                names.len()
            ))),
            Params::Positional(_) => Ok(()),
            Params::Named(map) => match map.keys().find(|k| !names.contains(&k.as_str())) {
                Some(unknown) => Err(RpcError::invalid_parameter(format!(
                    "Unknown named parameter {unknown}"
                ))),
                None => Ok(()),
            },
        }
    }
}

/// Core's name for a JSON value's type (`uvTypeName`).
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn convert<T: DeserializeOwned>(value: &Value, index: usize, name: &str) -> Result<T, RpcError> {
    let err = match T::deserialize(value) {
        Ok(v) => return Ok(v),
        Err(err) => err,
    };
    let actual = json_type_name(value);
    match expected_json_type::<T>() {
        Some(expected) if expected != actual => {
            let key = format!("Position {} ({name})", index + 1);
            let detail = format!("JSON value of type {actual} is not of expected type {expected}");
            // Core writes the mismatch object with UniValue's 4-space indent.
            Err(RpcError::type_error(format!(
                "Wrong type passed:\n{{\n    {}: {}\n}}",
                Value::String(key),
                Value::String(detail)
            )))
        }
        Some("number") => Err(RpcError::misc("JSON integer out of range")),
        _ => Err(RpcError::invalid_parameter(format!("Invalid parameter {name}: {err}"))),
    }
}

/// Returns the JSON type `T` deserializes from (`"number"`, `"string"`,
/// `"bool"`, `"array"`, `"object"`, `"null"`), or `None` if `T` accepts
/// several (`serde_json::Value`, enums, byte buffers).
///
/// It runs `T::deserialize` against a deserializer that records the first
/// `deserialize_*` hint it receives and then fails, so no value is built.
/// `Option<T>` and newtype wrappers are looked through.
pub fn expected_json_type<T: DeserializeOwned>() -> Option<&'static str> {
    match T::deserialize(TypeProbe) {
        Err(ProbeError(found)) => found,
        // Only a type that deserializes from nothing at all gets here.
        Ok(_) => None,
    }
}

/// Carries the hint found by [`TypeProbe`].
#[derive(Debug)]
struct ProbeError(Option<&'static str>);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type probe: {:?}", self.0)
    }
}

impl std::error::Error for ProbeError {}

impl serde::de::Error for ProbeError {
    fn custom<M: fmt::Display>(_msg: M) -> Self {
        ProbeError(None)
    }
}

/// A deserializer with no data that reports which JSON type was asked for.
struct TypeProbe;

macro_rules! probe {
    ($($method:ident => $name:expr),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeError> {
                Err(ProbeError($name))
            }
        )*
    };
}

impl<'de> serde::Deserializer<'de> for TypeProbe {
    type Error = ProbeError;

    probe! {
        deserialize_any => None,
        deserialize_ignored_any => None,
        deserialize_bytes => None,
        deserialize_byte_buf => None,
        deserialize_bool => Some("bool"),
        deserialize_i8 => Some("number"),
        deserialize_i16 => Some("number"),
        deserialize_i32 => Some("number"),
        deserialize_i64 => Some("number"),
        deserialize_i128 => Some("number"),
        deserialize_u8 => Some("number"),
        deserialize_u16 => Some("number"),
        deserialize_u32 => Some("number"),
        deserialize_u64 => Some("number"),
        deserialize_u128 => Some("number"),
        deserialize_f32 => Some("number"),
        deserialize_f64 => Some("number"),
        deserialize_char => Some("string"),
        deserialize_str => Some("string"),
        deserialize_string => Some("string"),
        deserialize_identifier => Some("string"),
        deserialize_unit => Some("null"),
        deserialize_seq => Some("array"),
        deserialize_map => Some("object"),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some("null")))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some("array")))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some("array")))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some("object")))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }
}

/// Lets `Params` be built from a JSON value in tests and by callers that
/// forward a request (`Value::Array` → positional, `Value::Object` → named).
impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(Params::default()),
            Value::Array(values) => Ok(Params::Positional(values)),
            Value::Object(map) => Ok(Params::Named(map)),
            other => Err(serde::de::Error::custom(format!(
                "params must be an array or object, not {}",
                json_type_name(&other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expected_types_are_found() {
        assert_eq!(expected_json_type::<u32>(), Some("number"));
        assert_eq!(expected_json_type::<String>(), Some("string"));
        assert_eq!(expected_json_type::<bool>(), Some("bool"));
        assert_eq!(expected_json_type::<Vec<String>>(), Some("array"));
        assert_eq!(expected_json_type::<Option<u8>>(), Some("number"));
        assert_eq!(expected_json_type::<Value>(), None);
    }

    #[test]
    fn wrong_type_has_cores_message() {
        let params = Params::Positional(vec![json!("ten")]);
        let err = params.required::<u32>(0, "height").unwrap_err();
        assert_eq!(err.code, -3);
        assert_eq!(
            err.message,
            "Wrong type passed:\n{\n    \"Position 1 (height)\": \"JSON value of type string is not of expected type number\"\n}"
        );
    }

    #[test]
    fn out_of_range_number_is_misc_error() {
        let params = Params::Positional(vec![json!(-1)]);
        assert_eq!(
            params.get::<u32>(0, "height").unwrap_err(),
            RpcError::misc("JSON integer out of range")
        );
    }

    #[test]
    fn null_and_missing_are_absent() {
        let params = Params::Positional(vec![json!(null)]);
        assert_eq!(params.get::<u32>(0, "height").unwrap(), None);
        assert_eq!(params.get::<u32>(5, "height").unwrap(), None);
        assert_eq!(params.required::<u32>(0, "height").unwrap_err().code, -1);
    }

    #[test]
    fn named_lookup_ignores_index() {
        let params: Params = serde_json::from_value(json!({"verbosity": 2, "blockhash": "00"})).unwrap();
        assert_eq!(params.required::<String>(0, "blockhash").unwrap(), "00");
        assert_eq!(params.get::<u8>(1, "verbosity").unwrap(), Some(2));
        assert_eq!(params.check_names(&["blockhash"]).unwrap_err().code, -8);
        assert!(params.check_names(&["blockhash", "verbosity"]).is_ok());
    }
}
