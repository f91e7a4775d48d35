//! API tokens: generation, hashing, resolution to principals, and the first administrator.
//!
//! Part of the [`super::People`] aggregate (`core.people()`).

use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Caller, People, ServiceError, ServiceResult, require_admin};
use voronka_model::access::Principal;
use voronka_store::people::{self, NewUser, PeopleTable};

/// Prefix of every token Voronka issues, so leaked tokens are easy to recognise.
pub const TOKEN_PREFIX: &str = "vk_";

/// A fresh random token (256 bits).
pub fn generate_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_secret())
}

/// 256 random bits, hex: API tokens, webhook trigger URLs, webhook signing keys.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a token: its SHA-256, hex. Tokens are random and long, so a plain hash is
/// enough (no password stretching needed).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The outcome of making sure an administrator exists.
#[derive(Debug)]
pub struct AdminBootstrap {
    /// The administrator's user id.
    pub user_id: i64,
    /// A token generated now (first start without `VORONKA_ADMIN_TOKEN`); shown once.
    pub generated_token: Option<String>,
}

impl People<'_> {
    /// Resolves a bearer token to its principal (cached per configuration generation).
    pub async fn authenticate(&self, token: &str) -> ServiceResult<Option<Arc<Principal>>> {
        let hash = hash_token(token);
        let generation = self.core.store.generation().await?;
        if let Ok(cache) = self.core.principals.lock()
            && let Some((cached, principal)) = cache.get(&hash)
            && *cached == generation
        {
            return Ok(Some(principal.clone()));
        }
        let Some(principal) = people::principal_by_token(self.core.store.reader(), &hash).await? else {
            return Ok(None);
        };
        let principal = Arc::new(principal);
        if let Ok(mut cache) = self.core.principals.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(hash, (generation, principal.clone()));
        }
        Ok(Some(principal))
    }

    /// Makes sure a system administrator exists. On first start creates one whose token is
    /// `env_token` when given, otherwise a generated one (returned once). When `env_token` is
    /// given on later starts it is (re)attached to the first administrator, so the operator's
    /// configured token always works.
    pub async fn bootstrap_admin(&self, env_token: Option<&str>) -> ServiceResult<AdminBootstrap> {
        let mut tx = self.core.begin_config().await?;
        let existing = people::first_admin(&mut tx).await?;
        let (user_id, generated_token) = match existing {
            Some(id) => {
                if let Some(token) = env_token {
                    people::insert_token(&mut tx, id, &hash_token(token), "VORONKA_ADMIN_TOKEN").await?;
                }
                (id, None)
            }
            None => {
                let user = NewUser { name: "Administrator", email: "admin@localhost", department: None, admin: true };
                let id = people::insert_user(&mut tx, &user).await?;
                let (token, generated) = match env_token {
                    Some(t) => (t.to_string(), None),
                    None => {
                        let t = generate_token();
                        (t.clone(), Some(t))
                    }
                };
                people::insert_token(&mut tx, id, &hash_token(&token), "admin").await?;
                (id, generated)
            }
        };
        self.core.commit_config(tx).await?;
        Ok(AdminBootstrap { user_id, generated_token })
    }

    /// Issues a new token for a user (administrators, or users for themselves). The token is
    /// returned once; only its hash is kept.
    pub async fn issue_token(&self, caller: &Caller, user_id: i64, name: &str) -> ServiceResult<(i64, String)> {
        if caller.principal.user_id != user_id {
            require_admin(caller)?;
        }
        let mut tx = self.core.begin_config().await?;
        if !people::exists(&mut tx, PeopleTable::Users, user_id).await? {
            return Err(ServiceError::NotFound(format!("no user {user_id}")));
        }
        let token = generate_token();
        let name = if name.trim().is_empty() { "api" } else { name.trim() };
        let id = people::insert_token(&mut tx, user_id, &hash_token(&token), name).await?;
        self.core.commit_config(tx).await?;
        Ok((id, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 67);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), a);
    }
}
