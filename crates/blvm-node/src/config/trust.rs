//! The `[trust]` section: whose module signatures count.
//!
//! ```toml
//! [trust]
//! required_signatures = 1      # every module needs this many from the keys below; 0 (default): unsigned modules load
//!
//! [trust.keys]                 # name = compressed secp256k1 public key, hex
//! alice = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
//! ```
//!
//! A signed module must also meet its own manifest's threshold with keys
//! from this list; keys a manifest lists itself count for nothing.

use std::collections::BTreeMap;

use blvm_module_host::security::{Keyring, SignaturePolicy};
use serde::Deserialize;

use super::ConfigError;

/// `[trust]` as written.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSettings {
    /// Signatures from trusted keys every module needs.
    pub required_signatures: Option<u32>,
    /// Trusted maintainer keys by name.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

impl TrustSettings {
    /// The host's signature policy.
    pub fn resolve(&self) -> Result<SignaturePolicy, ConfigError> {
        let mut keyring = Keyring::new();
        for (name, key) in &self.keys {
            keyring.trust(name, key).map_err(|message| ConfigError::Invalid {
                key: "trust",
                message: format!("[trust.keys] {name}: {message}"),
            })?;
        }
        let required = self.required_signatures.unwrap_or(0);
        if usize::try_from(required).is_ok_and(|r| r > keyring.len()) {
            return Err(ConfigError::Invalid {
                key: "trust",
                message: format!(
                    "[trust] required_signatures = {required}, but only {} key(s) are trusted: no module could load",
                    keyring.len()
                ),
            });
        }
        Ok(SignaturePolicy { keyring, required })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";

    fn parse(text: &str) -> Result<SignaturePolicy, String> {
        #[derive(Deserialize)]
        struct File {
            trust: TrustSettings,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.trust.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn keys_and_the_requirement_are_read() {
        let p = parse(&format!(
            "[trust]\nrequired_signatures = 1\n[trust.keys]\nalice = \"{ALICE}\"\n"
        ))
        .expect("resolves");
        assert_eq!(p.required, 1);
        assert_eq!(p.keyring.len(), 1);
        assert_eq!(parse("[trust]\n").expect("resolves"), SignaturePolicy::default());
    }

    #[test]
    fn a_bad_key_or_an_impossible_requirement_is_refused_by_name() {
        let err = parse("[trust.keys]\nbob = \"02abc\"\n").unwrap_err();
        assert!(err.contains("[trust.keys] bob"), "{err}");
        let err = parse(&format!(
            "[trust]\nrequired_signatures = 2\n[trust.keys]\nalice = \"{ALICE}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("only 1 key(s) are trusted"), "{err}");
        assert!(parse("[trust]\nrequired = 1\n").is_err());
    }
}
