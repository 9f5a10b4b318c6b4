//! Maintainer signatures: checked against the operator's keyring, never
//! against keys the manifest brings along.
//!
//! A manifest's `[signatures]` lists maintainers, each with a public key and
//! an ECDSA secp256k1 signature over the manifest's signing digest
//! ([`super::canonical`]). A signature counts when its key is in the
//! operator's [`Keyring`] and it verifies; each trusted key counts once.
//! The number needed is the stricter of the manifest's threshold `M` and
//! the operator's [`SignaturePolicy::required`]. A signed manifest must pin
//! its binary (`[binary] hash`): the signatures cover the manifest, and
//! only through that hash the code that runs.
//!
//! Signatures are hex: 64 bytes `r || s` (compact), or DER. Only low-S
//! signatures verify (as in Bitcoin's standardness rules), so a valid
//! signature cannot be changed into another valid one by the third party.

use std::collections::BTreeMap;

use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey, Secp256k1, SecretKey};

use crate::registry::ModuleManifest;

/// The operator's trusted maintainer keys, by the name the operator gives
/// them (used in status and errors; the key is what is trusted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: BTreeMap<[u8; 33], String>,
}

impl Keyring {
    /// An empty keyring: no signature counts.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Trusts `key` (a compressed secp256k1 public key, hex) as `name`.
    ///
    /// # Errors
    ///
    /// A key that is not 33 bytes of hex on the curve.
    pub fn trust(&mut self, name: &str, key_hex: &str) -> Result<(), String> {
        let key = parse_public_key(key_hex)?;
        self.keys.insert(key.serialize(), name.to_owned());
        Ok(())
    }

    /// The operator's name for `key`, if trusted.
    pub fn name_of(&self, key: &[u8; 33]) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The operator's side of signature checking (part of `ManagerConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// Keys whose signatures count.
    pub keyring: Keyring,
    /// Signatures from trusted keys every module needs, whatever its
    /// manifest says; 0 (default) lets unsigned modules load.
    pub required: u32,
}

/// What verification found for a module that passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureReport {
    /// The operator's names of the trusted keys whose signatures verified,
    /// sorted. Empty for an unsigned module.
    pub signed_by: Vec<String>,
    /// How many were needed.
    pub required: u32,
}

/// Why a module's signatures do not satisfy the policy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `[signatures]`, and the operator requires some.
    #[error("the module is unsigned, and the operator requires {required} signature(s) from trusted keys")]
    Unsigned {
        /// Signatures required.
        required: u32,
    },
    /// Signed, but `[binary] hash` is missing.
    #[error("the manifest is signed but does not pin its binary with [binary] hash, so the signatures cover no code")]
    BinaryNotPinned,
    /// The manifest holds a value with no canonical form.
    #[error("the manifest cannot be signed: {0}")]
    NotSignable(String),
    /// Fewer valid signatures from trusted keys than required.
    #[error("{valid} valid signature(s) from trusted keys, {required} required ({why}); {}", .details.join("; "))]
    Insufficient {
        /// Valid signatures from trusted keys.
        valid: u32,
        /// Needed.
        required: u32,
        /// Where the requirement comes from.
        why: String,
        /// One line per listed signature that did not count, and why.
        details: Vec<String>,
    },
}

/// Checks `manifest`'s signatures against `policy`.
///
/// # Errors
///
/// [`SignatureError`] naming, for each signature that did not count, why
/// (key not trusted, signature invalid).
pub fn verify(manifest: &ModuleManifest, policy: &SignaturePolicy) -> Result<SignatureReport, SignatureError> {
    let Some(signatures) = manifest.signatures() else {
        if policy.required > 0 {
            return Err(SignatureError::Unsigned {
                required: policy.required,
            });
        }
        return Ok(SignatureReport::default());
    };
    if manifest.binary().and_then(|b| b.hash).is_none() {
        return Err(SignatureError::BinaryNotPinned);
    }
    let digest = manifest
        .signing_digest()
        .map_err(|e| SignatureError::NotSignable(e.to_owned()))?;
    let message = Message::from_digest(*digest);
    let secp = Secp256k1::verification_only();
    let required = signatures.threshold.m().max(policy.required);
    let mut signed_by = Vec::new();
    let mut details = Vec::new();
    for s in &signatures.maintainers {
        let Some(trusted_as) = policy.keyring.name_of(&s.key) else {
            details.push(format!("{}: key {} is not in the keyring", s.name, hex(&s.key)));
            continue;
        };
        let valid = PublicKey::from_slice(&s.key)
            .ok()
            .zip(parse_signature(&s.signature))
            .is_some_and(|(key, sig)| secp.verify_ecdsa(&message, &sig, &key).is_ok());
        if valid {
            signed_by.push(trusted_as.to_owned());
        } else {
            details.push(format!("{}: the signature does not verify for this manifest", s.name));
        }
    }
    signed_by.sort();
    // The manifest's form check already refuses a key listed twice; this
    // keeps "each key counts once" true for any caller.
    signed_by.dedup();
    let valid = u32::try_from(signed_by.len()).unwrap_or(u32::MAX);
    if valid < required {
        let why = if signatures.threshold.m() >= policy.required {
            format!("the manifest's threshold {}", signatures.threshold)
        } else {
            format!("the operator's policy of {}", policy.required)
        };
        return Err(SignatureError::Insufficient {
            valid,
            required,
            why,
            details,
        });
    }
    Ok(SignatureReport { signed_by, required })
}

/// Signs a manifest's signing digest with `secret_key` (32 bytes, hex):
/// the hex of the 64-byte compact, low-S signature to put in its
/// `[signatures]`. For maintainers' tools and tests.
///
/// # Errors
///
/// A secret key that is not 32 bytes of hex in range.
pub fn sign_digest(digest: &[u8; 32], secret_key_hex: &str) -> Result<String, String> {
    let secret = parse_secret_key(secret_key_hex)?;
    let sig = Secp256k1::signing_only().sign_ecdsa(&Message::from_digest(*digest), &secret);
    Ok(hex(&sig.serialize_compact()))
}

/// Whether `signature_hex` (compact or DER, low-S) is `key_hex`'s ECDSA
/// signature of `digest`: the check of [`verify`], for the registry's
/// publisher statements that are signed with the same maintainer keys.
pub fn verify_digest(digest: &[u8; 32], key_hex: &str, signature_hex: &str) -> bool {
    parse_public_key(key_hex)
        .ok()
        .zip(unhex(signature_hex.trim()).as_deref().and_then(parse_signature))
        .is_some_and(|(key, sig)| {
            Secp256k1::verification_only()
                .verify_ecdsa(&Message::from_digest(*digest), &sig, &key)
                .is_ok()
        })
}

/// A new secret key (hex) from the kernel's random source, for a
/// maintainer's keygen.
///
/// # Errors
///
/// The random source failing.
pub fn generate_secret_key() -> std::io::Result<String> {
    loop {
        let mut bytes = [0u8; 32];
        let mut filled = 0;
        while filled < bytes.len() {
            filled += rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())?;
        }
        // Out of range (zero or past the order) with probability ~2^-128.
        if SecretKey::from_slice(&bytes).is_ok() {
            return Ok(hex(&bytes));
        }
    }
}

/// The compressed public key (hex) of a secret key (hex).
///
/// # Errors
///
/// As [`sign_digest`].
pub fn public_key_of(secret_key_hex: &str) -> Result<String, String> {
    let secret = parse_secret_key(secret_key_hex)?;
    Ok(hex(
        &PublicKey::from_secret_key(&Secp256k1::signing_only(), &secret).serialize()
    ))
}

fn parse_secret_key(hex_str: &str) -> Result<SecretKey, String> {
    let bytes = unhex(hex_str.trim()).ok_or("a secret key is 64 hex digits")?;
    SecretKey::from_slice(&bytes).map_err(|_| "a secret key is 32 bytes, below the curve order, not zero".to_owned())
}

fn parse_public_key(hex_str: &str) -> Result<PublicKey, String> {
    let bytes = unhex(hex_str.trim())
        .filter(|b| b.len() == 33)
        .ok_or_else(|| format!("`{hex_str}` is not a compressed public key (66 hex digits)"))?;
    PublicKey::from_slice(&bytes).map_err(|_| format!("`{hex_str}` is not a point on secp256k1"))
}

fn parse_signature(bytes: &[u8]) -> Option<Signature> {
    if bytes.len() == 64 {
        Signature::from_compact(bytes).ok()
    } else {
        Signature::from_der(bytes).ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
