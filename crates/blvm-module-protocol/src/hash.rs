//! A 32-byte Bitcoin hash as it travels on the wire.
//!
//! On the wire a hash is a MessagePack `bin 8` of exactly 32 bytes in
//! internal (little-endian, as hashed) byte order, the order every Bitcoin
//! library stores. `Display` shows the usual reversed hex, as Bitcoin Core
//! prints block hashes and txids.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A block hash, txid or other 32-byte hash, internal byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// Parses the display (reversed) hex form Bitcoin Core prints.
    pub fn from_display_hex(s: &str) -> Option<Hash32> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pos = (31 - i) * 2;
            *byte = u8::from_str_radix(&s[pos..pos + 2], 16).ok()?;
        }
        Some(Hash32(out))
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().rev() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({self})")
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HashVisitor;
        impl<'de> Visitor<'de> for HashVisitor {
            type Value = Hash32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Hash32, E> {
                <[u8; 32]>::try_from(v)
                    .map(Hash32)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Hash32, A::Error> {
                let mut out = [0u8; 32];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(de::Error::invalid_length(33, &self));
                }
                Ok(Hash32(out))
            }
        }
        deserializer.deserialize_bytes(HashVisitor)
    }
}

/// Serde helper for `Vec<u8>` fields that must travel as MessagePack `bin`
/// (consensus-serialized blocks, headers, transactions, opaque payloads).
pub mod bytes_field {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as `bin`.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Accepts `bin` (and, leniently, an array of integers).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(ByteBuf::deserialize(d)?.0)
    }

    struct ByteBuf(Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                    while let Some(b) = seq.next_element()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    /// The same for `Option<Vec<u8>>` (nil when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serializes `Some` as `bin`, `None` as nil.
        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_bytes(b),
                None => s.serialize_none(),
            }
        }

        /// Accepts nil or `bin`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Ok(Option::<super::ByteBuf>::deserialize(d)?.map(|b| b.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hex_round_trips_in_reversed_order() {
        let genesis = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
        let h = Hash32::from_display_hex(genesis).unwrap();
        assert_eq!(h.0[0], 0x6f);
        assert_eq!(h.to_string(), genesis);
    }

    #[test]
    fn hash_travels_as_bin32() {
        let h = Hash32([7; 32]);
        let bytes = rmp_serde::to_vec(&h).unwrap();
        assert_eq!(&bytes[..2], &[0xc4, 32]);
        assert_eq!(rmp_serde::from_slice::<Hash32>(&bytes).unwrap(), h);
        assert!(rmp_serde::from_slice::<Hash32>(&rmp_serde::to_vec(&[1u8; 3][..]).unwrap()).is_err());
    }
}
