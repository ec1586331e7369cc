//! The citizen-facing categories (Open311 services) and the reward rules.

use crate::{both, json, parse_json, Inner, Result, Store};
use citygrid_core::citizen::Service;
use citygrid_core::reward::Rules;

/// Settings key of the reward rules (JSON of [`Rules`]).
const RULES_KEY: &str = "reward.rules";

impl Store {
    /// Every citizen category, active or not, by code.
    pub async fn list_services(&self) -> Result<Vec<Service>> {
        let sql = "SELECT data FROM citizen_services ORDER BY code";
        let rows: Vec<String> = both!(self, |_w, r, _f| { sqlx::query_scalar(sql).fetch_all(r).await? });
        rows.iter().map(|d| parse_json(d)).collect()
    }

    pub async fn get_service(&self, code: &str) -> Result<Option<Service>> {
        let sql = "SELECT data FROM citizen_services WHERE code = $1";
        let row: Option<String> =
            both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(code).fetch_optional(r).await? });
        row.map(|d| parse_json(&d)).transpose()
    }

    /// Insert or replace categories (validated by the caller).
    pub async fn put_services(&self, services: &[Service]) -> Result<()> {
        let sql = "INSERT INTO citizen_services (code, data) VALUES ($1, $2) \
                   ON CONFLICT (code) DO UPDATE SET data = excluded.data";
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            for s in services {
                sqlx::query(sql).bind(&s.code).bind(json(s)?).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The reward rules; the defaults until an administrator sets them.
    pub async fn reward_rules(&self) -> Result<Rules> {
        match self.get_setting(RULES_KEY).await? {
            Some(text) => parse_json(&text),
            None => Ok(Rules::default()),
        }
    }

    pub async fn put_reward_rules(&self, rules: &Rules) -> Result<()> {
        self.put_setting(RULES_KEY, &json(rules)?).await
    }

    /// How many cases `user_id` reported at or after `since`.
    pub async fn reports_since(&self, user_id: i64, since: jiff::Timestamp) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM cases WHERE reporter_id = $1 AND created_at >= $2";
        Ok(both!(self, |_w, r, _f| {
            sqlx::query_scalar(sql).bind(user_id).bind(crate::ms(since)).fetch_one(r).await?
        }))
    }

    /// Is `user_id` the filing account of an Open311 client (its volume is the client's)?
    pub async fn is_open311_client_user(&self, user_id: i64) -> Result<bool> {
        let sql = "SELECT COUNT(*) FROM open311_clients WHERE user_id = $1";
        let n: i64 = both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(user_id).fetch_one(r).await? });
        Ok(n > 0)
    }

    /// Has this idempotency key been used by `user_id` (a retry, not a new report)?
    pub async fn idempotency_used(&self, user_id: i64, key: &str) -> Result<bool> {
        let sql = "SELECT COUNT(*) FROM idempotency WHERE user_id = $1 AND key = $2";
        let n: i64 = both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(user_id).bind(key).fetch_one(r).await? });
        Ok(n > 0)
    }
}
