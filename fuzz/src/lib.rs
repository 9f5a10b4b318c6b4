//! What the fuzz targets share: a structure-aware value generator
//! ([`arb`]), the manifest properties ([`manifest`]) and the NaN-aware
//! equality the round-trip properties use.

pub mod arb;
pub mod manifest;

/// Whether `value` equals itself. Only a float NaN somewhere inside makes
/// a value unequal to itself (`NaN != NaN`): the round-trip properties
/// then compare such values by their encoding only.
#[allow(clippy::eq_op)]
pub fn self_equal<T: PartialEq>(value: &T) -> bool {
    value == value
}
