//! Ed25519 signatures of plugin components: key generation, signing, and the
//! trust check every load path applies (`plugins.require_signed`,
//! `plugins.trusted_keys`). Stock plugins are trusted as built in and never
//! checked here.
//!
//! A signature is detached text, one line:
//! `ed25519 <public key, 64 hex digits> <signature over the component bytes, 128 hex digits>`.
//! It lives in `NAME.wasm.sig` beside the component (plugins directory,
//! `plugins.files`) or in the `X-Klaxon-Signature` header of an upload.
//! A secret key file holds the 32-byte seed as 64 hex digits.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// The scheme word that starts every signature line.
pub const SCHEME: &str = "ed25519";

/// Why a component's signature is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SignatureError {
    #[error("the component is not signed and plugins.require_signed is on")]
    Unsigned,
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error(
        "signed by key {0}, which is not in plugins.trusted_keys (plugins.require_signed is on)"
    )]
    UnknownKey(String),
    #[error(
        "signature by key {0} does not match the component (tampered or re-built after signing)"
    )]
    Mismatch(String),
    #[error("invalid key: {0}")]
    BadKey(String),
}

/// What the host trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub require_signed: bool,
    keys: Vec<VerifyingKey>,
}

/// A key in hex.
fn key_bytes(hex_text: &str) -> Result<[u8; 32], SignatureError> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|e| SignatureError::BadKey(format!("`{}`: {e}", hex_text.trim())))?;
    bytes
        .try_into()
        .map_err(|_| SignatureError::BadKey(format!("`{}` is not 32 bytes", hex_text.trim())))
}

fn verifying_key(hex_text: &str) -> Result<VerifyingKey, SignatureError> {
    VerifyingKey::from_bytes(&key_bytes(hex_text)?)
        .map_err(|e| SignatureError::BadKey(format!("`{}`: {e}", hex_text.trim())))
}

impl TrustPolicy {
    /// From the config's `require_signed` and `trusted_keys`.
    pub fn new(require_signed: bool, trusted_keys: &[String]) -> Result<Self, SignatureError> {
        let keys = trusted_keys
            .iter()
            .map(|k| verifying_key(k))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            require_signed,
            keys,
        })
    }

    /// Checks `signature` (the detached signature text, if any) over `bytes`.
    /// Returns the signing key (hex) when the signature is valid and trusted.
    /// A signature that does not match is refused even when signing is not
    /// required; an untrusted key is refused only when it is.
    pub fn check(
        &self,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> Result<Option<String>, SignatureError> {
        let Some(text) = signature.map(str::trim).filter(|t| !t.is_empty()) else {
            return if self.require_signed {
                Err(SignatureError::Unsigned)
            } else {
                Ok(None)
            };
        };
        let (key, sig) = parse_signature(text)?;
        let key_hex = hex::encode(key.as_bytes());
        if key.verify(bytes, &sig).is_err() {
            return Err(SignatureError::Mismatch(key_hex));
        }
        if self.keys.contains(&key) {
            Ok(Some(key_hex))
        } else if self.require_signed {
            Err(SignatureError::UnknownKey(key_hex))
        } else {
            Ok(None)
        }
    }
}

fn parse_signature(text: &str) -> Result<(VerifyingKey, Signature), SignatureError> {
    let mut words = text.split_whitespace();
    let (Some(scheme), Some(key), Some(sig), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(SignatureError::Malformed(format!(
            "expected `{SCHEME} <public key hex> <signature hex>`"
        )));
    };
    if scheme != SCHEME {
        return Err(SignatureError::Malformed(format!(
            "scheme `{scheme}`, expected `{SCHEME}`"
        )));
    }
    let key = verifying_key(key)?;
    let sig_bytes: [u8; 64] = hex::decode(sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SignatureError::Malformed("signature is not 64 bytes of hex".into()))?;
    Ok((key, Signature::from_bytes(&sig_bytes)))
}

/// A new secret key: (secret seed hex, public key hex).
pub fn generate_key() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    (
        hex::encode(seed),
        hex::encode(key.verifying_key().as_bytes()),
    )
}

/// The public key (hex) of a secret key file's text.
pub fn public_key(secret_hex: &str) -> Result<String, SignatureError> {
    let key = SigningKey::from_bytes(&key_bytes(secret_hex)?);
    Ok(hex::encode(key.verifying_key().as_bytes()))
}

/// The signature line of `bytes` under the secret key (hex seed).
pub fn sign(secret_hex: &str, bytes: &[u8]) -> Result<String, SignatureError> {
    let key = SigningKey::from_bytes(&key_bytes(secret_hex)?);
    let sig = key.sign(bytes);
    Ok(format!(
        "{SCHEME} {} {}\n",
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(sig.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_trusted_unsigned_unknown_and_tampered() {
        let (secret, public) = generate_key();
        let (other_secret, _) = generate_key();
        let bytes = b"component bytes".to_vec();
        let sig = sign(&secret, &bytes).expect("sign");
        assert_eq!(public_key(&secret).expect("public"), public);

        let strict = TrustPolicy::new(true, std::slice::from_ref(&public)).expect("policy");
        assert_eq!(strict.check(&bytes, Some(&sig)), Ok(Some(public.clone())));
        assert_eq!(strict.check(&bytes, None), Err(SignatureError::Unsigned));
        let mut tampered = bytes.clone();
        tampered[0] ^= 1;
        assert_eq!(
            strict.check(&tampered, Some(&sig)),
            Err(SignatureError::Mismatch(public.clone()))
        );
        let foreign = sign(&other_secret, &bytes).expect("sign");
        assert!(matches!(
            strict.check(&bytes, Some(&foreign)),
            Err(SignatureError::UnknownKey(_))
        ));
        assert!(matches!(
            strict.check(&bytes, Some("ed25519 zz zz")),
            Err(SignatureError::BadKey(_))
        ));

        let lax = TrustPolicy::new(false, &[]).expect("policy");
        assert_eq!(lax.check(&bytes, None), Ok(None));
        assert_eq!(lax.check(&bytes, Some(&foreign)), Ok(None));
        assert!(lax.check(&tampered, Some(&sig)).is_err());
    }

    #[test]
    fn bad_trusted_keys_are_refused() {
        assert!(TrustPolicy::new(true, &["abcd".into()]).is_err());
    }
}
