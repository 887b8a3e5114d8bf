//! Enroll keys (contract version 2, section 10): a server joins the fleet by itself with a key
//! `prk_<id>_<secret>` instead of an operator copying a token. The database keeps the id and
//! the SHA-256 of the secret only. A use is taken by a conditional UPDATE (`uses_left > 0`) in
//! the same transaction that creates the host, so N enrolls at once with a key of N uses make
//! exactly N hosts on SQLite and PostgreSQL alike. A host that exists is only ever re-enrolled
//! by a key bound to its id (`--host`): a leaked reusable key must not take a server over.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::events::{self, EventType};
use crate::fleet::store::{Store, StoreError};
use crate::fleet::tokens;

/// The longest a key may live (Tailscale's cap; headscale and SSM are shorter).
pub const MAX_LIFETIME_MS: i64 = 90 * 24 * 3_600_000;
/// A key's life when `--expires` is not given.
pub const DEFAULT_LIFETIME_MS: i64 = 24 * 3_600_000;
/// The most uses one key may have.
pub const MAX_USES: i64 = 1_000_000;

/// The one sentence for every key that cannot be used: a caller must not learn which keys
/// exist, were revoked, expired or used up.
pub const UNUSABLE: &str =
    "this enroll key is not valid: unknown, revoked, expired or used up; ask the store for a new one";

/// Why an enroll-key operation failed; names the key id, host id or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{UNUSABLE}")]
    Unusable,
    #[error("this enroll key only enrolls host ids matching {pattern:?}, not {host:?}")]
    PatternMismatch { pattern: String, host: String },
    #[error("this enroll key only enrolls the host {bound:?}, not {host:?}")]
    BoundElsewhere { bound: String, host: String },
    #[error("the host id {0:?} is not letters, digits and . _ - (first a letter or digit, at most 128)")]
    BadHostId(String),
    #[error("host {0} already exists; only a key made with `enroll-keys create --host {0}` may enroll it again")]
    HostExists(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("there is no enroll key {0}")]
    NoKey(String),
    #[error(transparent)]
    Random(#[from] tokens::TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `enroll-keys create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub uses: Option<i64>,
    pub expires: Option<String>,
    pub host_pattern: Option<String>,
    pub host: Option<String>,
    pub note: Option<String>,
}

/// A key as `enroll-keys list` shows it: never the secret, nor its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyRow {
    pub id: String,
    pub note: Option<String>,
    pub uses: i64,
    pub uses_left: i64,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    pub host_pattern: Option<String>,
    pub host: Option<String>,
    pub revoked: bool,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
    /// The hosts this key enrolled (that still exist).
    pub hosts: Vec<String>,
}

/// A new key: the only time its secret exists outside the caller.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub row: KeyRow,
}

/// What an agent gets for its key.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    pub host_id: String,
    pub token: String,
    pub push_secret: String,
    /// True when an existing host got new credentials (a key bound to it).
    #[serde(skip)]
    pub re_enrolled: bool,
}

/// `1h`, `30m`, `7d`, `90s` → milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms).filter(|v| *v > 0)
}

/// A glob over host ids: `*` any run of characters, `?` one character, the rest literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `prk_<id>_<secret>` → (id, secret); None for anything else.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.trim().strip_prefix("prk_")?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, 12) && hexish(secret, 64)).then_some((id, secret))
}

const KEY_COLS: &str = "id, note, uses_total, uses_left, expires_at, host_pattern, bound_host, revoked_at, \
                        created_at, last_used_at";

fn key_of(r: &AnyRow) -> KeyRow {
    let revoked_at: Option<i64> = r.get(7);
    KeyRow {
        id: r.get(0),
        note: r.get(1),
        uses: r.get(2),
        uses_left: r.get(3),
        expires_at: r.get(4),
        host_pattern: r.get(5),
        host: r.get(6),
        revoked: revoked_at.is_some(),
        revoked_at,
        created_at: r.get(8),
        last_used_at: r.get(9),
        hosts: Vec::new(),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

impl Store {
    /// Makes a key; its secret is in the answer and nowhere else.
    pub async fn create_enroll_key(&self, req: &NewKey) -> Result<CreatedKey, EnrollError> {
        let bad = |m: String| Err(EnrollError::BadRequest(m));
        if req.host.is_some() && req.host_pattern.is_some() {
            return bad("give either --host or --host-pattern, not both".into());
        }
        if let Some(h) = &req.host {
            if !plesk_reseller_protocol::is_valid_host_id(h) {
                return Err(EnrollError::BadHostId(h.clone()));
            }
            if req.uses.is_some_and(|u| u != 1) {
                return bad(format!("a key bound to the host {h} has exactly 1 use"));
            }
        }
        if let Some(p) = &req.host_pattern {
            let ok = !p.is_empty()
                && p.len() <= 128
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'));
            if !ok {
                return bad(format!(
                    "the host pattern {p:?} is not a glob of letters, digits, . _ - * and ?"
                ));
            }
        }
        let uses = req.uses.unwrap_or(1);
        if !(1..=MAX_USES).contains(&uses) {
            return bad(format!("the number of uses {uses} is not between 1 and {MAX_USES}"));
        }
        let life = match &req.expires {
            None => DEFAULT_LIFETIME_MS,
            Some(d) => match parse_duration(d) {
                Some(ms) if ms <= MAX_LIFETIME_MS => ms,
                Some(_) => return bad(format!("the lifetime {d:?} is longer than 90 days")),
                None => return bad(format!("the lifetime {d:?} is not a duration such as 30m, 1h or 7d")),
            },
        };
        if let Some(n) = &req.note {
            if n.len() > 500 {
                return bad("the note is longer than 500 characters".into());
            }
        }
        let mut idb = [0u8; 6];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut idb).map_err(|e| EnrollError::BadRequest(e.to_string()))?;
        getrandom::fill(&mut secret).map_err(|e| EnrollError::BadRequest(e.to_string()))?;
        let (id, secret) = (hex::encode(idb), hex::encode(secret));
        let now = self.now();
        sqlx::query(
            "INSERT INTO enroll_keys (id, secret_sha256, note, uses_total, uses_left, expires_at, host_pattern, \
             bound_host, created_at) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(tokens::hash(&secret))
        .bind(req.note.as_deref())
        .bind(uses)
        .bind(now + life)
        .bind(req.host_pattern.as_deref())
        .bind(req.host.as_deref())
        .bind(now)
        .execute(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(CreatedKey {
            key: format!("prk_{id}_{secret}"),
            row: self.enroll_key(&id).await?,
        })
    }

    pub async fn enroll_key(&self, id: &str) -> Result<KeyRow, EnrollError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM enroll_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?
        .ok_or_else(|| EnrollError::NoKey(id.into()))?;
        let mut k = key_of(&row);
        k.hosts = self.hosts_enrolled_by(id).await?;
        Ok(k)
    }

    async fn hosts_enrolled_by(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM hosts WHERE enrolled_by = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every key, newest first, with the hosts each enrolled.
    pub async fn enroll_keys(&self) -> Result<Vec<KeyRow>, EnrollError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM enroll_keys ORDER BY created_at DESC, id"
        )))
        .fetch_all(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        let mut keys: Vec<KeyRow> = rows.iter().map(key_of).collect();
        let pairs = sqlx::query("SELECT enrolled_by, id FROM hosts WHERE enrolled_by IS NOT NULL ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        for r in &pairs {
            let (key, host): (String, String) = (r.get(0), r.get(1));
            if let Some(k) = keys.iter_mut().find(|k| k.id == key) {
                k.hosts.push(host);
            }
        }
        Ok(keys)
    }

    /// The key stops working with the commit; the hosts it enrolled keep their tokens.
    pub async fn revoke_enroll_key(&self, id: &str) -> Result<KeyRow, EnrollError> {
        let r = sqlx::query("UPDATE enroll_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(self.now())
            .bind(id)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        let key = self.enroll_key(id).await?;
        if r.rows_affected() == 0 && !key.revoked {
            return Err(EnrollError::NoKey(id.into()));
        }
        Ok(key)
    }

    /// `POST /v1/enroll`: checks the key, takes one use and creates (or, with a key bound to
    /// it, re-enrolls) the host, all in one transaction. Nothing is taken from a key on any
    /// refusal. After a re-enrollment the old token's held polls are woken and re-check it.
    pub async fn enroll(&self, key: &str, host: &str) -> Result<Enrolled, EnrollError> {
        let Some((id, secret)) = split_key(key) else {
            return Err(EnrollError::Unusable);
        };
        let token = tokens::generate()?;
        let push_secret = tokens::generate()?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT secret_sha256, uses_left, expires_at, revoked_at, host_pattern, bound_host \
             FROM enroll_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            return Err(EnrollError::Unusable);
        };
        let (hash, left, expires, revoked): (String, i64, i64, Option<i64>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let (pattern, bound): (Option<String>, Option<String>) = (row.get(4), row.get(5));
        // Compared in constant time; every unusable key gets the same answer.
        if !tokens::same(&hash, &tokens::hash(secret)) || revoked.is_some() || expires <= now || left <= 0 {
            return Err(EnrollError::Unusable);
        }
        if !plesk_reseller_protocol::is_valid_host_id(host) {
            return Err(EnrollError::BadHostId(host.into()));
        }
        if let Some(b) = &bound {
            if b != host {
                return Err(EnrollError::BoundElsewhere {
                    bound: b.clone(),
                    host: host.into(),
                });
            }
        }
        if let Some(p) = &pattern {
            if !glob_match(p, host) {
                return Err(EnrollError::PatternMismatch {
                    pattern: p.clone(),
                    host: host.into(),
                });
            }
        }
        let exists = sqlx::query("SELECT 1 FROM hosts WHERE id = $1")
            .bind(host)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
            .is_some();
        // Only a key bound to this very host id may replace it; a reusable key never does.
        if exists && bound.as_deref() != Some(host) {
            return Err(EnrollError::HostExists(host.into()));
        }
        // The use, counted by the database: a concurrent enroll that took the last one makes
        // this UPDATE change nothing (PostgreSQL re-checks the WHERE after the row lock).
        let took = sqlx::query(
            "UPDATE enroll_keys SET uses_left = uses_left - 1, last_used_at = $1 \
             WHERE id = $2 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if took.rows_affected() != 1 {
            return Err(EnrollError::Unusable);
        }
        let token_hash = tokens::hash(&token);
        if exists {
            // Keeps its jobs, licenses and values; the old token dies with this commit.
            sqlx::query(
                "UPDATE hosts SET token_sha256 = $1, push_secret = $2, enrolled_by = $3, enrolled_at = $4, \
                 rev = rev + 1 WHERE id = $5",
            )
            .bind(&token_hash)
            .bind(&push_secret)
            .bind(id)
            .bind(now)
            .bind(host)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            self.notify_replicas(&mut tx, host).await?;
        } else {
            let inserted = sqlx::query(
                "INSERT INTO hosts (id, token_sha256, push_secret, rev, created_at, enrolled_by, enrolled_at) \
                 VALUES ($1, $2, $3, 1, $4, $5, $4)",
            )
            .bind(host)
            .bind(&token_hash)
            .bind(&push_secret)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                // Another enroll made this host id meanwhile; the rollback gives the use back.
                Err(e) if is_unique_violation(&e) => return Err(EnrollError::HostExists(host.into())),
                Err(e) => return Err(self.err(e).into()),
            }
        }
        let data = serde_json::json!({"host": host, "enroll_key": id, "re_enrolled": exists});
        events::record(&mut tx, EventType::HostEnrolled, data)
            .await
            .map_err(|e| self.err(e))?;
        match tx.commit().await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => return Err(EnrollError::HostExists(host.into())),
            Err(e) => return Err(self.err(e).into()),
        }
        if exists {
            // No push: the old agent must not be told anything; its held polls re-check
            // their token and end.
            self.waiters.notify(host);
        }
        Ok(Enrolled {
            host_id: host.into(),
            token,
            push_secret,
            re_enrolled: exists,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_globs_and_keys() {
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("30m"), Some(1_800_000));
        assert_eq!(parse_duration("7d"), Some(7 * 86_400_000));
        assert_eq!(parse_duration("0h"), None);
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("h"), None);
        assert!(glob_match("web-*", "web-042"));
        assert!(glob_match("web-0?2", "web-042"));
        assert!(!glob_match("web-*", "db-1"));
        assert!(glob_match("*", "x"));
        assert!(!glob_match("web-?", "web-10"));
        let k = format!("prk_{}_{}", "a".repeat(12), "b".repeat(64));
        assert_eq!(split_key(&k), Some(("aaaaaaaaaaaa", &*"b".repeat(64))));
        assert_eq!(split_key("prk_x_y"), None);
        assert_eq!(split_key("hello"), None);
    }
}
