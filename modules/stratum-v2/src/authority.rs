//! The authority key: the key a pool pins (`public_key` of its
//! `[template_provider_type.Sv2Tp]`), which signs the certificate of every
//! Noise handshake the module answers.
//!
//! A secp256k1 key pair, used x-only as Stratum V2 does. It is made once,
//! from the kernel's random bytes, and kept in the module's storage (tree
//! [`TREE`], key [`SECRET_KEY`]): it survives restarts of the module and
//! of the node, so a pool's configuration stays valid. Its public key is
//! written in SV2's base58check form ([`Authority::public_key_base58`]):
//! version `1` as two little-endian bytes, then the 32-byte x-only key,
//! as the reference implementation's example configurations show.

use std::time::Duration;

use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
use blvm_sdk::NodeApiIpc;
use noise_sv2::Responder;

use crate::Error;

/// The storage tree of the key.
pub const TREE: &str = "authority";
/// The key, in [`TREE`], of the 32-byte secret.
pub const SECRET_KEY: &[u8] = b"secret";
/// The key version SV2 puts before an encoded public key.
pub const KEY_VERSION: [u8; 2] = [1, 0];

/// The authority key pair.
#[derive(Clone)]
pub struct Authority {
    secret: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Authority")
            .field("public", &self.public_key_base58())
            .finish()
    }
}

impl Authority {
    /// The key pair of `secret`.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] when `secret` is not a valid secp256k1 secret key.
    pub fn from_secret(secret: [u8; 32]) -> Result<Authority, Error> {
        let key = SecretKey::from_slice(&secret).map_err(|e| Error::Key(e.to_string()))?;
        let pair = Keypair::from_secret_key(&Secp256k1::signing_only(), &key);
        Ok(Authority {
            secret,
            public: pair.x_only_public_key().0.serialize(),
        })
    }

    /// A new key pair from the kernel's random bytes (`getrandom`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the kernel gives no random bytes.
    pub fn generate() -> Result<Authority, Error> {
        loop {
            let mut secret = [0u8; 32];
            let mut filled = 0;
            while filled < secret.len() {
                filled += rustix::rand::getrandom(&mut secret[filled..], rustix::rand::GetRandomFlags::empty())
                    .map_err(std::io::Error::from)?;
            }
            // All but a 2^-128 fraction of 32-byte strings are valid keys.
            if let Ok(authority) = Authority::from_secret(secret) {
                return Ok(authority);
            }
        }
    }

    /// The key kept in the module's storage, or a new one stored there
    /// (`read_storage`, `write_storage`); true when it is new.
    ///
    /// # Errors
    ///
    /// The node's, or [`Error::Key`] when the stored value is not a key.
    pub async fn load_or_create(api: &NodeApiIpc) -> Result<(Authority, bool), Error> {
        if let Some((value, _)) = api.storage_get(TREE, SECRET_KEY).await? {
            let secret: [u8; 32] = value
                .as_slice()
                .try_into()
                .map_err(|_| Error::Key(format!("the stored secret has {} bytes, not 32", value.len())))?;
            return Ok((Authority::from_secret(secret)?, false));
        }
        let authority = Authority::generate()?;
        api.storage_put(TREE, SECRET_KEY, &authority.secret).await?;
        Ok((authority, true))
    }

    /// The 32-byte x-only public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The public key as pools configure it: base58check of
    /// [`KEY_VERSION`] and the x-only key.
    pub fn public_key_base58(&self) -> String {
        encode_public_key(&self.public)
    }

    /// A Noise responder signing with this key, for one handshake.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if `noise_sv2` refuses the pair (it cannot: it is
    /// checked when made).
    pub fn responder(&self, cert_validity: Duration) -> Result<Box<Responder>, Error> {
        Responder::from_authority_kp(&self.public, &self.secret, cert_validity)
            .map_err(|e| Error::Key(format!("{e:?}")))
    }
}

/// Base58check of [`KEY_VERSION`] and `key`: SV2's form of a public key.
pub fn encode_public_key(key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&KEY_VERSION);
    bytes.extend_from_slice(key);
    bitcoin::base58::encode_check(&bytes)
}

/// The x-only key of SV2's base58check form.
///
/// # Errors
///
/// [`Error::Key`]: a bad checksum, another length or version.
pub fn decode_public_key(text: &str) -> Result<[u8; 32], Error> {
    let bytes = bitcoin::base58::decode_check(text).map_err(|e| Error::Key(e.to_string()))?;
    match bytes.split_first_chunk::<2>() {
        Some((version, key)) if *version == KEY_VERSION => key
            .try_into()
            .map_err(|_| Error::Key(format!("{} key bytes, not 32", key.len()))),
        Some((version, _)) => Err(Error::Key(format!("key version {version:?}, not {KEY_VERSION:?}"))),
        None => Err(Error::Key("too short".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key pair of the reference implementation's example configs
    /// (`pool-config-local-sv2-tp-example.toml` of pool_sv2 0.7.0,
    /// `authority_secret_key` and `authority_public_key`).
    const SRI_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";
    const SRI_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";

    #[test]
    fn the_public_key_is_written_as_the_reference_implementation_writes_it() {
        let secret = bitcoin::base58::decode_check(SRI_SECRET).expect("base58check");
        let secret: [u8; 32] = secret.as_slice().try_into().expect("32 bytes");
        let authority = Authority::from_secret(secret).expect("a key");
        assert_eq!(authority.public_key_base58(), SRI_PUBLIC);
        assert_eq!(decode_public_key(SRI_PUBLIC).expect("decodes"), authority.public_key());
        assert!(authority.responder(Duration::from_secs(60)).is_ok());
        assert!(!format!("{authority:?}").contains(&format!("{:?}", secret)));
    }

    #[test]
    fn generated_keys_differ_and_bad_encodings_are_refused() {
        let a = Authority::generate().expect("random");
        let b = Authority::generate().expect("random");
        assert_ne!(a.public_key(), b.public_key());
        assert_eq!(
            decode_public_key(&a.public_key_base58()).expect("round trip"),
            a.public_key()
        );
        assert!(decode_public_key("not base58!").is_err());
        let mut wrong_version = vec![2, 0];
        wrong_version.extend_from_slice(&a.public_key());
        assert!(decode_public_key(&bitcoin::base58::encode_check(&wrong_version)).is_err());
        assert!(Authority::from_secret([0; 32]).is_err());
    }
}
