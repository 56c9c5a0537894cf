//! Who is asking: HTTP Basic (a user with a password, or any user name with an API token) and `Bearer <token>`.
//!
//! Passwords are argon2id hashes. API tokens are 256 random bits shown once; only their sha256 is stored, so a
//! token is checked with one index lookup, and a leaked index reveals no secret. Clients such as docker, helm and
//! mvn send Basic credentials on every request, so a verified password is remembered (as a hash, never the text)
//! for `auth.credential_cache`, instead of paying argon2 dozens of times per push.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use wharf_storage::{Store, Token, User, Write, now};

use crate::error::Error;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub admin: bool,
}

/// Cached password checks are bounded so a flood of distinct credentials cannot grow memory.
const CACHE_LIMIT: usize = 10_000;

pub struct Auth {
    store: Store,
    ttl: Duration,
    signer: Option<crate::bearer::Signer>,
    verified: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Auth {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Auth {
            store,
            ttl,
            signer: None,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts the registry bearer tokens this signer issues, beside API tokens.
    pub fn with_signer(mut self, signer: crate::bearer::Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    pub fn signer(&self) -> Option<&crate::bearer::Signer> {
        self.signer.as_ref()
    }

    /// `Ok(None)` for a request without credentials; an error for credentials that are present but wrong.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Option<Principal>, Error> {
        let Some(value) = authorization else {
            return Ok(None);
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            if let Some(signer) = &self.signer
                && token.starts_with(crate::bearer::PREFIX)
            {
                return match signer.verify(token)? {
                    crate::bearer::Holder::Anonymous => Ok(None),
                    crate::bearer::Holder::User(name) => self.by_name(&name).map(Some),
                };
            }
            return self.by_token(token).map(Some);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Error::Unauthorized(
                "unsupported authorization scheme".into(),
            ));
        }
        let decoded = STANDARD
            .decode(rest.trim())
            .map_err(|_| Error::Unauthorized("malformed Basic credentials".into()))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| Error::Unauthorized("malformed Basic credentials".into()))?;
        let (user, secret) = text
            .split_once(':')
            .ok_or_else(|| Error::Unauthorized("malformed Basic credentials".into()))?;
        if secret.starts_with(TOKEN_PREFIX) {
            // Any user name works with a token (`__token__` for twine, the owner's name for docker login).
            return self.by_token(secret).map(Some);
        }
        self.by_password(user, secret).await.map(Some)
    }

    /// A token reads `wharf_<id>_<random>`. The public id finds the record; the secret's hash is then compared in
    /// constant time, so the time an answer takes says nothing about how much of a guess was right.
    fn by_token(&self, secret: &str) -> Result<Principal, Error> {
        let denied = || Error::Unauthorized("unknown or revoked token".into());
        let id = token_id(secret).ok_or_else(denied)?;
        let token = self.store.meta().token(id)?.ok_or_else(denied)?;
        if !bool::from(token.hash.as_bytes().ct_eq(token_hash(secret).as_bytes())) {
            return Err(denied());
        }
        let user = self
            .store
            .meta()
            .user(&token.user)?
            .ok_or_else(|| Error::Unauthorized("token owner no longer exists".into()))?;
        Ok(Principal {
            name: user.name,
            admin: user.admin,
        })
    }

    fn by_name(&self, name: &str) -> Result<Principal, Error> {
        let user = self
            .store
            .meta()
            .user(name)?
            .ok_or_else(|| Error::Unauthorized("the token's user no longer exists".into()))?;
        Ok(Principal {
            name: user.name,
            admin: user.admin,
        })
    }

    async fn by_password(&self, name: &str, password: &str) -> Result<Principal, Error> {
        let key: [u8; 32] = Sha256::new()
            .chain_update(name)
            .chain_update([0])
            .chain_update(password)
            .finalize()
            .into();
        if let Some((principal, at)) = self.verified.lock().expect("auth cache").get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(principal.clone());
        }
        let denied = || Error::Unauthorized("invalid user name or password".into());
        let user = self.store.meta().user(name)?;
        let (hash, principal) = match &user {
            Some(u) => (
                u.password_hash.clone(),
                Some(Principal {
                    name: u.name.clone(),
                    admin: u.admin,
                }),
            ),
            // Verify against a fixed hash anyway, so an unknown user takes as long as a wrong password.
            None => (dummy_hash().to_string(), None),
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        let principal = principal.filter(|_| ok).ok_or_else(denied)?;
        if !self.ttl.is_zero() {
            let mut cache = self.verified.lock().expect("auth cache");
            if cache.len() >= CACHE_LIMIT {
                cache.retain(|_, (_, at)| at.elapsed() < self.ttl);
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
            }
            cache.insert(key, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }

    /// Forgets cached password checks, after a password change.
    pub fn forget(&self) {
        self.verified.lock().expect("auth cache").clear();
    }
}

/// Every API token starts with this, so a leaked one is easy to spot and scanners can find it.
pub const TOKEN_PREFIX: &str = "wharf_";

/// npm's login and logout go through here: the format sees no hash and no secret store.
impl wharf_formats::Accounts for Auth {
    fn verify_password(&self, user: &str, password: &str) -> bool {
        match self.store.meta().user(user) {
            Ok(Some(u)) => verify_password(password, &u.password_hash),
            // Verify against a fixed hash anyway, so an unknown user takes as long as a wrong password.
            _ => {
                verify_password(password, dummy_hash());
                false
            }
        }
    }

    fn mint_token(&self, user: &str, label: &str) -> (String, Write) {
        new_token(user, label)
    }

    fn revoke_token(&self, user: &str, secret: &str) -> Option<Write> {
        let id = token_id(secret)?;
        let token = self.store.meta().token(id).ok()??;
        let owned = token.user == user
            && bool::from(token.hash.as_bytes().ct_eq(token_hash(secret).as_bytes()));
        owned.then_some(Write::DeleteToken { id: token.id })
    }
}

pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The public id of a `wharf_<id>_<random>` token. Ids are hex, so the first `_` after the prefix ends it even though
/// the random part may contain `_`.
fn token_id(secret: &str) -> Option<&str> {
    let (id, random) = secret.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    (!id.is_empty() && !random.is_empty()).then_some(id)
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source works");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes")
        .to_string()
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("wharf-dummy-password"))
}

/// `bytes` random bytes, URL-safe base64.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(buf)
}

/// Writes that add a user; fails in the transaction when the name is taken.
pub fn new_user(name: &str, password: &str, admin: bool) -> Result<Write, Error> {
    if !valid_user_name(name) {
        return Err(Error::Invalid(format!(
            "user name `{name}` must be 1-64 characters of a-z, A-Z, 0-9, `.`, `_`, `-`"
        )));
    }
    let user = User {
        name: name.into(),
        password_hash: checked_password_hash(password)?,
        admin,
        created: now(),
    };
    Ok(Write::PutUser {
        user,
        replace: false,
    })
}

/// Hashes a password that meets the minimum length; shared by `user add` and `user passwd`.
pub fn checked_password_hash(password: &str) -> Result<String, Error> {
    if password.len() < 8 {
        return Err(Error::Invalid(
            "a password needs at least 8 characters".into(),
        ));
    }
    Ok(hash_password(password))
}

pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A new API token for `user`: the secret (shown once) and the write that stores its hash.
pub fn new_token(user: &str, name: &str) -> (String, Write) {
    let id = wharf_storage::random_id()[..12].to_string();
    let secret = format!("{TOKEN_PREFIX}{id}_{}", random_secret(32));
    let token = Token {
        id,
        user: user.into(),
        name: name.into(),
        created: now(),
        hash: token_hash(&secret),
    };
    (secret, Write::PutToken(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_tokens_and_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(wharf_storage::Options::new(dir.path())).unwrap();
        store
            .apply(&[new_user("alice", "correct horse", false).unwrap()], &[])
            .await
            .unwrap();
        let (secret, write) = new_token("alice", "ci");
        store.apply(&[write], &[]).await.unwrap();
        let auth = Auth::new(store.clone(), Duration::from_secs(60));
        let basic = |u: &str, p: &str| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
        let alice = Some(Principal {
            name: "alice".into(),
            admin: false,
        });

        assert_eq!(auth.authenticate(None).await.unwrap(), None);
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "correct horse")))
                .await
                .unwrap(),
            alice
        );
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "correct horse")))
                .await
                .unwrap(),
            alice,
            "cached"
        );
        assert!(
            auth.authenticate(Some(&basic("alice", "wrong horse")))
                .await
                .is_err()
        );
        assert!(
            auth.authenticate(Some(&basic("mallory", "correct horse")))
                .await
                .is_err()
        );
        assert_eq!(
            auth.authenticate(Some(&basic("__token__", &secret)))
                .await
                .unwrap(),
            alice
        );
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {secret}")))
                .await
                .unwrap(),
            alice
        );
        assert!(auth.authenticate(Some("Bearer wharf_nope")).await.is_err());
        let (id, _) = secret[TOKEN_PREFIX.len()..].split_once('_').unwrap();
        let forged = format!("Bearer {TOKEN_PREFIX}{id}_{}", random_secret(32));
        assert!(
            auth.authenticate(Some(&forged)).await.is_err(),
            "a real id with a wrong secret is refused"
        );
        assert!(auth.authenticate(Some("Basic !!!")).await.is_err());
        assert!(auth.authenticate(Some("Digest x")).await.is_err());
        assert!(secret.len() >= TOKEN_PREFIX.len() + 43, "at least 256 bits");
        assert!(new_user("bad name", "password1", false).is_err());
        assert!(new_user("bob", "short", false).is_err());
    }
}
