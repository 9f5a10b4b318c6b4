//! Ed25519 role keys, their TUF key ids, and signing.
//!
//! A key travels in root metadata as
//! `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"<hex>"}}`
//! and is named by its key id: the hex SHA-256 of that object's canonical
//! JSON, as python-tuf (securesystemslib) computes it.

use std::fmt;

use ed25519_dalek::Signer as _;
use hex_conservative::{DisplayHex, FromHex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::canonical::to_canonical;

/// The only key type and scheme we write and accept.
pub const ED25519: &str = "ed25519";

/// A key id: the hex SHA-256 of a key's canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `keyval` of a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// The public key, hex.
    pub public: String,
}

/// A public key as root metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// `"ed25519"`.
    pub keytype: String,
    /// `"ed25519"`.
    pub scheme: String,
    /// The key material.
    pub keyval: KeyVal,
}

impl PublicKey {
    /// The key's TUF key id.
    pub fn key_id(&self) -> KeyId {
        let canonical = to_canonical(self).expect("a key of strings is valid canonical JSON");
        KeyId(Sha256::digest(canonical).to_lower_hex_string())
    }

    /// Whether `sig` (hex) is this key's signature of `message`. A key of
    /// another type or scheme, or malformed hex, never verifies.
    pub fn verifies(&self, message: &[u8], sig: &str) -> bool {
        if self.keytype != ED25519 || self.scheme != ED25519 {
            return false;
        }
        let Ok(public) = <[u8; 32]>::from_hex(&self.keyval.public) else {
            return false;
        };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::from_hex(sig) else {
            return false;
        };
        key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }
}

/// A signature in a metadata envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Which key signed.
    pub keyid: KeyId,
    /// The signature, hex.
    pub sig: String,
}

/// A private ed25519 role key, for the repository writer.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("keyid", &self.key_id()).finish()
    }
}

impl SigningKey {
    /// A fresh key from the kernel's random source.
    ///
    /// # Errors
    ///
    /// Fails when `getrandom(2)` does.
    pub fn generate() -> std::io::Result<Self> {
        let mut secret = [0u8; 32];
        let mut filled = 0;
        while filled < secret.len() {
            filled += rustix::rand::getrandom(&mut secret[filled..], rustix::rand::GetRandomFlags::empty())?;
        }
        Ok(Self::from_secret(secret))
    }

    /// The key whose 32-byte secret is `secret`.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&secret),
        }
    }

    /// The 32-byte secret, for storing the key.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public half, as metadata lists it.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            keytype: ED25519.to_owned(),
            scheme: ED25519.to_owned(),
            keyval: KeyVal {
                public: self.key.verifying_key().to_bytes().to_lower_hex_string(),
            },
        }
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> KeyId {
        self.public().key_id()
    }

    /// Signs `message` (the canonical bytes of a `signed` object).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature {
            keyid: self.key_id(),
            sig: self.key.sign(message).to_bytes().to_lower_hex_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_message_and_key() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let sig = key.sign(b"signed");
        assert!(key.public().verifies(b"signed", &sig.sig));
        assert!(!key.public().verifies(b"signeD", &sig.sig));
        assert!(!other.public().verifies(b"signed", &sig.sig));
    }

    #[test]
    fn the_key_id_is_the_sha256_of_the_canonical_key() {
        // RFC 8032's first test key.
        let key = SigningKey::from_secret(
            <[u8; 32]>::from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap(),
        );
        let canonical = r#"{"keytype":"ed25519","keyval":{"public":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"},"scheme":"ed25519"}"#;
        assert_eq!(key.key_id().0, Sha256::digest(canonical).to_lower_hex_string());
    }
}
