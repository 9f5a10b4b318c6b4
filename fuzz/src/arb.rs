//! Values of any `Deserialize` type, built from fuzz bytes.
//!
//! [`Source::value`] runs a type's own `Deserialize` against a serde
//! `Deserializer` that answers every request from an
//! [`arbitrary::Unstructured`]: every struct field is present, options,
//! lengths, enum variants and numbers are chosen by the bytes, and strings
//! come from a per-field dictionary (so that names, versions and ranges
//! look like the real thing) or are arbitrary UTF-8. Byte strings are most
//! often 32 bytes long (a `Hash32` takes nothing else). So a new payload or
//! params type needs no fuzz code, as in the protocol's own tests
//! (`events/tests.rs`, `Sample`).
//!
//! What it handed out is recorded as a [`Rec`] tree, which [`to_toml`]
//! renders as a TOML value: that is how `manifest_structured` writes
//! manifests whose keys and shapes are the parser's own.
//!
//! No NaN is ever generated: NaN != NaN would break a round-trip property
//! because of IEEE 754, not because of the code under test.

use arbitrary::Unstructured;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// The generator's error: the type refused what it was given, or the
/// bytes ran out in a way the type could not take.
pub type Error = de::value::Error;

/// What the generator handed a type, as a tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Rec {
    /// Nothing: an option's `None` (a TOML key left out).
    Absent,
    /// `()`.
    Unit,
    /// A boolean.
    Bool(bool),
    /// Any integer.
    Int(i128),
    /// A float (never NaN).
    Float(f64),
    /// A string (or a char).
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A sequence or tuple.
    Seq(Vec<Rec>),
    /// A map or struct, entries in the order handed out.
    Map(Vec<(Rec, Rec)>),
    /// An enum variant with content.
    Variant(String, Box<Rec>),
}

/// Strings to prefer for a field (`key`: for the keys of a map field), by
/// the field's name (`""` at the top level).
pub type Dict = fn(field: &str, key: bool) -> &'static [&'static str];

/// No dictionary: every string arbitrary.
pub fn no_dict(_field: &str, _key: bool) -> &'static [&'static str] {
    &[]
}

/// How deep containers nest at most; deeper, every sequence and map is
/// empty and every option `None`.
const MAX_DEPTH: u32 = 6;

/// The fuzz bytes and a dictionary.
pub struct Source<'b> {
    u: Unstructured<'b>,
    dict: Dict,
    depth: u32,
}

fn fail(e: arbitrary::Error) -> Error {
    de::Error::custom(e)
}

impl<'b> Source<'b> {
    /// Values from `data`, strings preferred from `dict`.
    pub fn new(data: &'b [u8], dict: Dict) -> Self {
        Source {
            u: Unstructured::new(data),
            dict,
            depth: 0,
        }
    }

    /// The bytes left, for choices the caller makes itself.
    pub fn unstructured(&mut self) -> &mut Unstructured<'b> {
        &mut self.u
    }

    /// A `T` built by its own `Deserialize`, and what it was handed.
    ///
    /// # Errors
    ///
    /// `T` refused a value (a string that is no event name, say).
    pub fn value<T: DeserializeOwned>(&mut self) -> Result<(T, Rec), Error> {
        let mut rec = Rec::Absent;
        let value = T::deserialize(Gen {
            src: self,
            field: "",
            key: false,
            out: &mut rec,
        })?;
        Ok((value, rec))
    }

    fn byte(&mut self) -> Result<u8, Error> {
        self.u.arbitrary().map_err(fail)
    }

    /// An unsigned number of at most `bits` bits, most often small.
    fn uint(&mut self, bits: u32) -> Result<u64, Error> {
        let width = [8, 16, 32, 64][usize::from(self.byte()? % 4)].min(bits);
        let v: u64 = self.u.arbitrary().map_err(fail)?;
        Ok(if width == 64 { v } else { v & ((1 << width) - 1) })
    }

    /// A signed number of at most `bits` bits, most often small.
    fn int(&mut self, bits: u32) -> Result<i64, Error> {
        let negative = self.byte()? & 1 == 1;
        let magnitude = self.uint(bits - 1)? as i64;
        Ok(if negative { -magnitude - 1 } else { magnitude })
    }

    fn float(&mut self) -> Result<f64, Error> {
        let f = match self.byte()? % 4 {
            0 => f64::from(self.int(32)? as i32),
            1 => f64::from(self.byte()?) / 8.0,
            _ => f64::from_bits(self.u.arbitrary().map_err(fail)?),
        };
        Ok(if f.is_nan() { 0.0 } else { f })
    }

    fn string(&mut self, field: &str, key: bool) -> Result<String, Error> {
        let dict = (self.dict)(field, key);
        let pick = self.byte()?;
        if !dict.is_empty() && pick < 200 {
            let mut s = dict[usize::from(pick) % dict.len()].to_owned();
            // Now and then something after it, to reach the edges of the
            // checks on it.
            if pick % 25 == 0 {
                s.push_str(&self.text()?);
            }
            return Ok(s);
        }
        Ok(self.text()?)
    }

    /// Arbitrary text: most often short (a long string mostly costs
    /// time), now and then as long as the bytes allow.
    fn text(&mut self) -> Result<String, Error> {
        let pick = self.byte()?;
        if pick < 16 {
            return Ok(self.u.arbitrary::<&str>().map_err(fail)?.to_owned());
        }
        let len = usize::from(pick % 24).min(self.u.len());
        Ok(String::from_utf8_lossy(self.u.bytes(len).map_err(fail)?).into_owned())
    }

    fn bytes(&mut self) -> Result<Vec<u8>, Error> {
        let len = match self.byte()? % 8 {
            0..=4 => 32,
            5 => 80,
            6 => usize::from(self.byte()? % 40),
            _ => self.u.arbitrary_len::<u8>().map_err(fail)?,
        };
        let mut out = self.u.bytes(len.min(self.u.len())).map_err(fail)?.to_vec();
        out.resize(len, 0);
        Ok(out)
    }

    /// A container's length: short, now and then longer; 0 too deep.
    fn len(&mut self) -> Result<usize, Error> {
        if self.depth >= MAX_DEPTH || self.u.is_empty() {
            return Ok(0);
        }
        let pick = self.byte()?;
        Ok(match pick % 16 {
            15 => usize::from(pick / 16) * 2,
            n => usize::from(n % 4),
        })
    }
}

/// The deserializer for one value.
struct Gen<'s, 'b> {
    src: &'s mut Source<'b>,
    field: &'s str,
    key: bool,
    out: &'s mut Rec,
}

macro_rules! numbers {
    ($($method:ident => $visit:ident, $ty:ty, $gen:ident($bits:expr);)+) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let v = self.src.$gen($bits)? as $ty;
            *self.out = Rec::Int(i128::from(v));
            visitor.$visit(v)
        })+
    };
}

impl<'de> de::Deserializer<'de> for Gen<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A field with a dictionary most often holds one of its strings.
        if !(self.src.dict)(self.field, self.key).is_empty() && self.src.byte()? < 160 {
            return self.deserialize_string(visitor);
        }
        let deep = self.src.depth >= MAX_DEPTH;
        match self.src.byte()? % if deep { 5 } else { 7 } {
            0 => self.deserialize_bool(visitor),
            1 => self.deserialize_i64(visitor),
            2 => self.deserialize_u64(visitor),
            3 if self.src.byte()? % 8 == 0 => self.deserialize_f64(visitor),
            3 | 4 => self.deserialize_string(visitor),
            5 => self.deserialize_seq(visitor),
            _ => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.src.byte()? & 1 == 1;
        *self.out = Rec::Bool(v);
        visitor.visit_bool(v)
    }

    numbers! {
        deserialize_u8 => visit_u8, u8, uint(8);
        deserialize_u16 => visit_u16, u16, uint(16);
        deserialize_u32 => visit_u32, u32, uint(32);
        deserialize_u64 => visit_u64, u64, uint(64);
        deserialize_i8 => visit_i8, i8, int(8);
        deserialize_i16 => visit_i16, i16, int(16);
        deserialize_i32 => visit_i32, i32, int(32);
        deserialize_i64 => visit_i64, i64, int(64);
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.src.float()? as f32;
        *self.out = Rec::Float(f64::from(v));
        visitor.visit_f32(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.src.float()?;
        *self.out = Rec::Float(v);
        visitor.visit_f64(v)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v: char = self.src.u.arbitrary().map_err(fail)?;
        *self.out = Rec::Str(v.to_string());
        visitor.visit_char(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.src.string(self.field, self.key)?;
        *self.out = Rec::Str(v.clone());
        visitor.visit_string(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.src.bytes()?;
        *self.out = Rec::Bytes(v.clone());
        visitor.visit_byte_buf(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.src.depth >= MAX_DEPTH || self.src.byte()? < 64 {
            *self.out = Rec::Absent;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        *self.out = Rec::Unit;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.src.len()?;
        self.seq(len, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.seq(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.seq(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let Gen { src, field, out, .. } = self;
        let left = src.len()?;
        let mut entries = Vec::new();
        src.depth += 1;
        let result = visitor.visit_map(Map {
            src: &mut *src,
            field,
            left,
            key: None,
            entries: &mut entries,
        });
        src.depth -= 1;
        *out = Rec::Map(entries);
        result
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let Gen { src, out, .. } = self;
        let mut entries = Vec::new();
        src.depth += 1;
        let result = visitor.visit_map(Fields {
            src: &mut *src,
            fields: fields.iter(),
            current: "",
            entries: &mut entries,
        });
        src.depth -= 1;
        *out = Rec::Map(entries);
        result
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if variants.is_empty() {
            return Err(de::Error::custom("an enum without variants"));
        }
        let variant = variants[usize::from(self.src.byte()?) % variants.len()];
        visitor.visit_enum(Variant {
            src: self.src,
            variant,
            out: self.out,
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }
}

impl<'de> Gen<'_, '_> {
    fn seq<V: Visitor<'de>>(self, left: usize, visitor: V) -> Result<V::Value, Error> {
        let Gen { src, field, out, .. } = self;
        let mut items = Vec::new();
        src.depth += 1;
        let result = visitor.visit_seq(Seq {
            src: &mut *src,
            field,
            left,
            items: &mut items,
        });
        src.depth -= 1;
        *out = Rec::Seq(items);
        result
    }
}

struct Seq<'s, 'b> {
    src: &'s mut Source<'b>,
    field: &'s str,
    left: usize,
    items: &'s mut Vec<Rec>,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut rec = Rec::Absent;
        let value = seed.deserialize(Gen {
            src: &mut *self.src,
            field: self.field,
            key: false,
            out: &mut rec,
        })?;
        self.items.push(rec);
        Ok(Some(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A map field's entries; keys and values both take the field's name.
struct Map<'s, 'b> {
    src: &'s mut Source<'b>,
    field: &'s str,
    left: usize,
    key: Option<Rec>,
    entries: &'s mut Vec<(Rec, Rec)>,
}

impl<'de> de::MapAccess<'de> for Map<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut rec = Rec::Absent;
        let key = seed.deserialize(Gen {
            src: &mut *self.src,
            field: self.field,
            key: true,
            out: &mut rec,
        })?;
        self.key = Some(rec);
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let mut rec = Rec::Absent;
        let value = seed.deserialize(Gen {
            src: &mut *self.src,
            field: self.field,
            key: false,
            out: &mut rec,
        })?;
        self.entries.push((self.key.take().unwrap_or(Rec::Absent), rec));
        Ok(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A struct's fields, every one, in declaration order.
struct Fields<'s, 'b> {
    src: &'s mut Source<'b>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
    entries: &'s mut Vec<(Rec, Rec)>,
}

impl<'de> de::MapAccess<'de> for Fields<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(&field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(IntoDeserializer::<Error>::into_deserializer(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let mut rec = Rec::Absent;
        let value = seed.deserialize(Gen {
            src: &mut *self.src,
            field: self.current,
            key: false,
            out: &mut rec,
        })?;
        self.entries.push((Rec::Str(self.current.to_owned()), rec));
        Ok(value)
    }
}

/// The variant chosen of an enum.
struct Variant<'s, 'b> {
    src: &'s mut Source<'b>,
    variant: &'static str,
    out: &'s mut Rec,
}

impl<'de, 's, 'b> de::EnumAccess<'de> for Variant<'s, 'b> {
    type Error = Error;
    type Variant = Variant<'s, 'b>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), Error> {
        let tag = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(self.variant))?;
        Ok((tag, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        *self.out = Rec::Str(self.variant.to_owned());
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let mut rec = Rec::Absent;
        let value = seed.deserialize(Gen {
            src: &mut *self.src,
            field: self.variant,
            key: false,
            out: &mut rec,
        })?;
        *self.out = Rec::Variant(self.variant.to_owned(), Box::new(rec));
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let mut rec = Rec::Absent;
        let value = Gen {
            src: &mut *self.src,
            field: self.variant,
            key: false,
            out: &mut rec,
        }
        .seq(len, visitor)?;
        *self.out = Rec::Variant(self.variant.to_owned(), Box::new(rec));
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        let mut rec = Rec::Absent;
        let value = de::Deserializer::deserialize_struct(
            Gen {
                src: &mut *self.src,
                field: self.variant,
                key: false,
                out: &mut rec,
            },
            "",
            fields,
            visitor,
        )?;
        *self.out = Rec::Variant(self.variant.to_owned(), Box::new(rec));
        Ok(value)
    }
}

/// `rec` as a TOML value; `None` for what TOML cannot hold (bytes, a
/// number beyond 64 bits, a map key that is no string, an absent element
/// of a sequence). Absent map entries are left out.
pub fn to_toml(rec: &Rec) -> Option<toml::Value> {
    Some(match rec {
        Rec::Absent | Rec::Unit | Rec::Bytes(_) => return None,
        Rec::Bool(b) => toml::Value::Boolean(*b),
        Rec::Int(n) => toml::Value::Integer(i64::try_from(*n).ok()?),
        Rec::Float(f) => toml::Value::Float(*f),
        Rec::Str(s) => toml::Value::String(s.clone()),
        Rec::Seq(items) => toml::Value::Array(items.iter().map(to_toml).collect::<Option<_>>()?),
        Rec::Map(entries) => {
            let mut table = toml::Table::new();
            for (key, value) in entries {
                let Rec::Str(key) = key else {
                    return None;
                };
                if *value == Rec::Absent {
                    continue;
                }
                table.insert(key.clone(), to_toml(value)?);
            }
            toml::Value::Table(table)
        }
        Rec::Variant(name, inner) => {
            let mut table = toml::Table::new();
            table.insert(name.clone(), to_toml(inner)?);
            toml::Value::Table(table)
        }
    })
}
