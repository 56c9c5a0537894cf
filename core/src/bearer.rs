//! Short-lived bearer tokens for the Docker/OCI token flow.
//!
//! docker sends credentials only after a challenge, and with a Basic challenge and no stored credentials it gives
//! up ("no basic auth credentials"), so anonymous pulls need the Bearer flow: `/v2/` answers 401 with
//! `Bearer realm=".../v2/token"`; the client fetches a token there, with Basic credentials (`docker login`, a
//! push) or without (an anonymous pull, where `auth.anonymous_read` allows it), and sends it on every request.
//!
//! A token is `wharfreg.<base64url(user \n expiry)>.<hex HMAC-SHA256>` under a key kept in the metadata store, so
//! any node can check it without a lookup beyond the user record (a deleted user's tokens stop working at once).
//! It proves who the caller is; what they may do is decided per request, as for every other credential.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use wharf_storage::{Store, Write, now};

use crate::error::{Error, Result};

pub const PREFIX: &str = "wharfreg.";
/// Seconds a token lives; clients fetch a new one when it runs out.
pub const LIFETIME: u64 = 300;
const KEY_ENTRY: (&str, &str) = ("", "registry-token-key");

#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

/// Who a valid token speaks for: a user, or nobody (an anonymous token).
#[derive(Debug, PartialEq, Eq)]
pub enum Holder {
    User(String),
    Anonymous,
}

impl Signer {
    /// The key from the store, created on first use.
    pub async fn load(store: &Store) -> Result<Signer> {
        let (repo, name) = KEY_ENTRY;
        if let Some(bytes) = store.meta().kv(repo, name)?
            && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(Signer { key });
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source works");
        let write = Write::PutKv {
            repo: repo.into(),
            key: name.into(),
            value: key.to_vec(),
        };
        store.apply(&[write], &[]).await?;
        Ok(Signer { key })
    }

    pub fn issue(&self, user: Option<&str>) -> String {
        let payload =
            URL_SAFE_NO_PAD.encode(format!("{}\n{}", user.unwrap_or(""), now() + LIFETIME));
        format!(
            "{PREFIX}{payload}.{}",
            hex::encode(self.mac(payload.as_bytes()))
        )
    }

    pub fn verify(&self, token: &str) -> Result<Holder> {
        let invalid = || Error::Unauthorized("invalid or expired registry token".into());
        let rest = token.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let (payload, mac) = rest.split_once('.').ok_or_else(invalid)?;
        let expected = hex::encode(self.mac(payload.as_bytes()));
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(invalid());
        }
        let text = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid)?;
        let (user, expiry) = text.split_once('\n').ok_or_else(invalid)?;
        if expiry.parse::<u64>().map_err(|_| invalid())? < now() {
            return Err(invalid());
        }
        Ok(if user.is_empty() {
            Holder::Anonymous
        } else {
            Holder::User(user.to_string())
        })
    }

    /// HMAC-SHA256 (RFC 2104), written out: one hash construction is not worth a dependency.
    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let pad = |byte: u8| {
            let mut block = [byte; 64];
            for (b, k) in block.iter_mut().zip(self.key) {
                *b ^= k;
            }
            block
        };
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_untouched() {
        let signer = Signer { key: [7; 32] };
        let token = signer.issue(Some("alice"));
        assert_eq!(signer.verify(&token).unwrap(), Holder::User("alice".into()));
        assert_eq!(
            signer.verify(&signer.issue(None)).unwrap(),
            Holder::Anonymous
        );
        let other = Signer { key: [8; 32] };
        assert!(other.verify(&token).is_err());
        let forged = token.replacen(PREFIX, &format!("{PREFIX}x"), 1);
        assert!(signer.verify(&forged).is_err());
        assert!(signer.verify("wharfreg.").is_err());
        // RFC 4231 test case 2 fixes the construction itself.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = Signer { key }.mac(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
