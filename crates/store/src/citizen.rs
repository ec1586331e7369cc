//! Citizen accounts (市民账号) bound to a phone number proved with a one-time code, the codes
//! themselves (only their hash is kept), the reward exclusion list (不予奖励名单), and the
//! citizen's own view of the ledger.
//!
//! The rules (how long a code lives, how many may be sent, how many guesses a code takes) are
//! the server's: these methods take them as arguments or as a closure, and only make the read
//! and the write one transaction, so that two requests racing for the same phone cannot both
//! pass a limit or both use a code.
//!
//! The server builds and matches only public types (`User`, tuples, `Result`): the structs here
//! are read through their fields.

use crate::{both, from_ms, ms, unique_violation, user_from_parts, Inner, NewUser, Result, Store, StoreError, User};
use citygrid_core::case::Event;
use jiff::Timestamp;

/// A citizen account: the user and the phone number it proved it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenAccount {
    pub user_id: i64,
    /// 11 digits, normalised.
    pub phone: String,
    /// `cash`, `phone_credit` or `wechat`.
    pub payout_channel: String,
    pub payout_account: Option<String>,
    pub created_at: Timestamp,
}

/// A phone number that may not earn rewards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub phone: String,
    /// `staff`, `contractor` or `other`.
    pub reason: String,
    pub note: Option<String>,
    pub created_at: Timestamp,
}

type AccountRow = (i64, String, String, Option<String>, i64);

fn account(row: AccountRow) -> Result<CitizenAccount> {
    let (user_id, phone, payout_channel, payout_account, at) = row;
    Ok(CitizenAccount { user_id, phone, payout_channel, payout_account, created_at: from_ms(at)? })
}

const ACCOUNT_COLUMNS: &str = "user_id, phone, payout_channel, payout_account, created_at";

impl Store {
    // ---- accounts ------------------------------------------------------------------------

    /// The citizen account of a user, if the user has one (role citizen with a proven phone).
    pub async fn citizen_account(&self, user_id: i64) -> Result<Option<CitizenAccount>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM citizen_accounts WHERE user_id = $1");
        let row: Option<AccountRow> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(user_id).fetch_optional(r).await? });
        row.map(account).transpose()
    }

    pub async fn citizen_account_by_phone(&self, phone: &str) -> Result<Option<CitizenAccount>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM citizen_accounts WHERE phone = $1");
        let row: Option<AccountRow> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(phone).fetch_optional(r).await? });
        row.map(account).transpose()
    }

    /// Create a user and its citizen account in one transaction (the demo's rewardable citizen;
    /// real citizens are created by their first sign-in, [`Store::redeem_code`]).
    pub async fn create_citizen(&self, u: &NewUser, phone: &str, channel: &str, now: Timestamp) -> Result<User> {
        let insert_user = crate::INSERT_USER;
        let insert_account =
            "INSERT INTO citizen_accounts (user_id, phone, payout_channel, payout_account, created_at) \
                              VALUES ($1, $2, $3, NULL, $4)";
        let scope = crate::json(&u.scope)?;
        let res: std::result::Result<i64, sqlx::Error> = both!(self, |w, _r, _f| {
            async {
                let mut tx = w.begin().await?;
                let id: i64 = sqlx::query_scalar(insert_user)
                    .bind(&u.username)
                    .bind(&u.display_name)
                    .bind(&u.password_hash)
                    .bind(u.role.as_str())
                    .bind(&scope)
                    .bind(ms(now))
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(insert_account).bind(id).bind(phone).bind(channel).bind(ms(now)).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(id)
            }
            .await
        });
        match res {
            Ok(id) => Ok(User {
                id,
                username: u.username.clone(),
                display_name: u.display_name.clone(),
                role: u.role,
                scope: u.scope.clone(),
                active: true,
            }),
            Err(e) if unique_violation(&e) => {
                Err(StoreError::Conflict(format!("username {} or phone {phone} is taken", u.username)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the account of `phone` is active; `None` if the phone has no account.
    pub async fn citizen_active(&self, phone: &str) -> Result<Option<bool>> {
        let sql = "SELECT u.active FROM citizen_accounts a JOIN users u ON u.id = a.user_id WHERE a.phone = $1";
        let row: Option<i64> =
            both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(phone).fetch_optional(r).await? });
        Ok(row.map(|a| a != 0))
    }

    /// Set how a citizen is paid; `NotFound` without an account.
    pub async fn set_payout(&self, user_id: i64, channel: &str, account: Option<&str>) -> Result<CitizenAccount> {
        let sql = "UPDATE citizen_accounts SET payout_channel = $1, payout_account = $2 WHERE user_id = $3";
        let n = both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(channel).bind(account).bind(user_id).execute(w).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.citizen_account(user_id).await?.ok_or(StoreError::NotFound)
    }

    // ---- one-time codes ------------------------------------------------------------------

    /// Store a new code for `phone` if `decide` allows it. `decide` gets the send times of the
    /// phone's codes since `since` (oldest first) and returns the new code's expiry, or its
    /// refusal (a rate limit), in which case nothing is written. Returns the new code's id.
    ///
    /// The read and the insert are one transaction, serialised per phone (SQLite has one
    /// writer; PostgreSQL takes a transaction-scoped advisory lock on the phone), so two
    /// concurrent requests cannot both slip under a limit.
    pub async fn issue_code<F, R>(
        &self,
        phone: &str,
        code_hash: &str,
        now: Timestamp,
        since: Timestamp,
        decide: F,
    ) -> Result<std::result::Result<i64, R>>
    where
        F: FnOnce(&[Timestamp]) -> std::result::Result<Timestamp, R> + Send,
        R: Send,
    {
        let lock = (self.backend() == "postgres").then_some("SELECT pg_advisory_xact_lock(hashtext($1))");
        let recent = "SELECT created_at FROM otp_codes WHERE phone = $1 AND created_at > $2 ORDER BY created_at";
        let insert = "INSERT INTO otp_codes (phone, code_hash, created_at, expires_at, attempts) \
                      VALUES ($1, $2, $3, $4, 0) RETURNING id";
        // Codes of this phone older than a day are of no use to any rule: drop them.
        let purge = "DELETE FROM otp_codes WHERE phone = $1 AND created_at < $2";
        let day_ago = ms(now) - 24 * 3600 * 1000;
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(phone).execute(&mut *tx).await?;
            }
            let times: Vec<i64> = sqlx::query_scalar(recent).bind(phone).bind(ms(since)).fetch_all(&mut *tx).await?;
            let times = times.into_iter().map(from_ms).collect::<Result<Vec<_>>>()?;
            let expires = match decide(&times) {
                Ok(t) => t,
                Err(refusal) => return Ok(Err(refusal)),
            };
            sqlx::query(purge).bind(phone).bind(day_ago).execute(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(insert)
                .bind(phone)
                .bind(code_hash)
                .bind(ms(now))
                .bind(ms(expires))
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(id))
        })
    }

    /// Remove a code that could not be delivered, so the failed send leaves nothing behind.
    pub async fn delete_code(&self, id: i64) -> Result<()> {
        let sql = "DELETE FROM otp_codes WHERE id = $1";
        both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(id).execute(w).await?;
        });
        Ok(())
    }

    /// Check `code_hash` against the phone's newest code and, if it matches, sign the citizen
    /// in: in one transaction, count the attempt, use the code up, create the account on first
    /// sign-in (`new_user`, paid by `channel`) and store the session token (`token_hash`, live
    /// until `expires`). Only the newest code counts: sending a new code kills the older ones.
    ///
    /// `Ok((user, created))`: signed in (`created` on the first sign-in). `Err(Some(n))`: wrong
    /// code, the attempt was counted, `n` attempts are left. `Err(None)`: no code that can still
    /// be used (none sent, expired, used, superseded, out of attempts); nothing was written.
    /// A deactivated account is a `Conflict` (check [`Store::citizen_active`] first).
    #[allow(clippy::too_many_arguments)]
    pub async fn redeem_code(
        &self,
        phone: &str,
        code_hash: &str,
        now: Timestamp,
        max_attempts: i64,
        new_user: &NewUser,
        channel: &str,
        token_hash: &str,
        expires: Timestamp,
    ) -> Result<std::result::Result<(User, bool), Option<i64>>> {
        let attempt = "UPDATE otp_codes SET attempts = attempts + 1 WHERE id = $1";
        let used = "UPDATE otp_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL";
        let find_account = "SELECT user_id FROM citizen_accounts WHERE phone = $1";
        let read_user = "SELECT id, username, display_name, role, scope, active FROM users WHERE id = $1";
        let insert_user = crate::INSERT_USER;
        let insert_account =
            "INSERT INTO citizen_accounts (user_id, phone, payout_channel, payout_account, created_at) \
                              VALUES ($1, $2, $3, NULL, $4)";
        let insert_token = "INSERT INTO tokens (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
        let scope = crate::json(&new_user.scope)?;
        both!(self, |w, _r, for_update| {
            let newest = format!(
                "SELECT id, code_hash, expires_at, attempts, used_at FROM otp_codes WHERE phone = $1 \
                 ORDER BY id DESC LIMIT 1{for_update}"
            );
            let mut tx = w.begin().await?;
            let row: Option<(i64, String, i64, i64, Option<i64>)> =
                sqlx::query_as(&newest).bind(phone).fetch_optional(&mut *tx).await?;
            let Some((id, hash, expires_at, attempts, used_at)) = row else {
                return Ok(Err(None));
            };
            if used_at.is_some() || expires_at <= ms(now) || attempts >= max_attempts {
                return Ok(Err(None));
            }
            if hash != code_hash {
                sqlx::query(attempt).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Err(Some(max_attempts - attempts - 1)));
            }
            let existing: Option<i64> = sqlx::query_scalar(find_account).bind(phone).fetch_optional(&mut *tx).await?;
            let (user, created) = match existing {
                Some(uid) => {
                    let (id, u, d, role, scope, active): (i64, String, String, String, String, i64) =
                        sqlx::query_as(read_user).bind(uid).fetch_one(&mut *tx).await?;
                    let user = user_from_parts(id, u, d, role, scope, active)?;
                    if !user.active {
                        return Err(StoreError::Conflict("this citizen account is deactivated".into()));
                    }
                    (user, false)
                }
                None => {
                    let uid: std::result::Result<i64, sqlx::Error> = sqlx::query_scalar(insert_user)
                        .bind(&new_user.username)
                        .bind(&new_user.display_name)
                        .bind(&new_user.password_hash)
                        .bind(new_user.role.as_str())
                        .bind(&scope)
                        .bind(ms(now))
                        .fetch_one(&mut *tx)
                        .await;
                    let uid = match uid {
                        Ok(id) => id,
                        Err(e) if unique_violation(&e) => {
                            return Err(StoreError::Conflict(format!(
                                "username {} is taken by another user",
                                new_user.username
                            )))
                        }
                        Err(e) => return Err(e.into()),
                    };
                    sqlx::query(insert_account)
                        .bind(uid)
                        .bind(phone)
                        .bind(channel)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await?;
                    let user = User {
                        id: uid,
                        username: new_user.username.clone(),
                        display_name: new_user.display_name.clone(),
                        role: new_user.role,
                        scope: new_user.scope.clone(),
                        active: true,
                    };
                    (user, true)
                }
            };
            sqlx::query(attempt).bind(id).execute(&mut *tx).await?;
            if sqlx::query(used).bind(ms(now)).bind(id).execute(&mut *tx).await?.rows_affected() != 1 {
                return Ok(Err(None));
            }
            sqlx::query(insert_token)
                .bind(token_hash)
                .bind(user.id)
                .bind(ms(now))
                .bind(ms(expires))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok((user, created)))
        })
    }

    // ---- exclusions ----------------------------------------------------------------------

    pub async fn list_exclusions(&self) -> Result<Vec<Exclusion>> {
        let sql = "SELECT phone, reason, note, created_at FROM reward_exclusions ORDER BY phone";
        let rows: Vec<(String, String, Option<String>, i64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        rows.into_iter()
            .map(|(phone, reason, note, at)| Ok(Exclusion { phone, reason, note, created_at: from_ms(at)? }))
            .collect()
    }

    pub async fn get_exclusion(&self, phone: &str) -> Result<Option<Exclusion>> {
        let sql = "SELECT phone, reason, note, created_at FROM reward_exclusions WHERE phone = $1";
        let row: Option<(String, String, Option<String>, i64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(phone).fetch_optional(r).await? });
        row.map(|(phone, reason, note, at)| Ok(Exclusion { phone, reason, note, created_at: from_ms(at)? })).transpose()
    }

    /// Add a phone to the exclusion list; `Conflict` if it is already there.
    pub async fn add_exclusion(&self, phone: &str, reason: &str, note: Option<&str>, now: Timestamp) -> Result<()> {
        let sql = "INSERT INTO reward_exclusions (phone, reason, note, created_at) VALUES ($1, $2, $3, $4)";
        let res: std::result::Result<(), sqlx::Error> = both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(phone).bind(reason).bind(note).bind(ms(now)).execute(w).await.map(|_| ())
        });
        match res {
            Ok(()) => Ok(()),
            Err(err) if unique_violation(&err) => {
                Err(StoreError::Conflict(format!("{phone} is already on the exclusion list")))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Remove a phone from the exclusion list; `NotFound` if it was not there.
    pub async fn remove_exclusion(&self, phone: &str) -> Result<()> {
        let sql = "DELETE FROM reward_exclusions WHERE phone = $1";
        let n = both!(self, |w, _r, _f| { sqlx::query(sql).bind(phone).execute(w).await?.rows_affected() });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- the citizen's follow-up ---------------------------------------------------------

    /// The logs of several cases, each oldest first, as `(case id, event)`.
    pub async fn events_of_cases(&self, ids: &[i64]) -> Result<Vec<(i64, Event)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String)> = both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new("SELECT case_id, data FROM case_events WHERE case_id IN (");
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(*id);
            }
            q.push(") ORDER BY case_id, seq");
            q.build_query_as().fetch_all(r).await?
        });
        rows.into_iter().map(|(id, data)| Ok((id, crate::parse_json(&data)?))).collect()
    }

    /// The numbers of cases by id (ids that do not exist are left out).
    pub async fn case_numbers(&self, ids: &[i64]) -> Result<Vec<(i64, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new("SELECT id, number FROM cases WHERE id IN (");
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(*id);
            }
            q.push(")");
            q.build_query_as().fetch_all(r).await?
        }))
    }
}
