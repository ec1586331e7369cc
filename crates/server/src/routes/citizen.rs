//! `/api/v1/citizen`: citizen accounts by phone number (市民账号) and the citizen's follow-up of
//! their own reports and rewards (市民城管通).
//!
//! - **Sign-in by one-time code.** `POST /citizen/codes` sends a 6-digit code through the
//!   configured [`crate::sms`] sender (only a hash is stored; it lives 5 minutes; at most one per
//!   phone a minute and five an hour, else 429); `POST /citizen/token` checks it (5 attempts,
//!   then the code is dead; a used code never works again), creates the account on the first
//!   sign-in and returns a bearer token like `POST /auth/token`. Neither answer says whether
//!   the phone already has an account.
//! - **Anonymous reports** — a citizen-role user without a phone (the demo `citizen`, an
//!   Open311 client's reports) — are accepted as ever and never earn a reward; `/citizen/me*`
//!   is for accounts with a proven phone only.
//! - **Follow-up**: the citizen's reports with their honest public status (fixed, not fixed
//!   with the reason, duplicate of which report, not the city's responsibility), a timeline
//!   without staff names, the after-photos once fixed, and their rewards from the ledger.
//! - **Exclusions** (不予奖励名单): the phones that may not earn (staff, the contractors' own
//!   people), kept by administrators; the reward engine reads the table.

use crate::auth::{hash_password, token_hash, Auth, UserOut};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::sms::{self, CodeSender};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use citygrid_core::case::{Case, Change, EndReason, Event, State as CaseState};
use citygrid_core::citizen::{PayoutChannel, Phone, PublicStatus};
use citygrid_core::org::{Role, Scope};
use citygrid_core::reward::{EntryKind, EntryStatus, PartyKind};
use citygrid_store::{CaseFilter, LedgerFilter, NewUser, User, Visibility};
use jiff::Timestamp;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long a code can be used.
pub const CODE_TTL_MINUTES: i64 = 5;
/// At most one code per phone in this many seconds ...
pub const RESEND_AFTER_SECONDS: i64 = 60;
/// ... and at most this many per phone in an hour.
pub const CODES_PER_HOUR: usize = 5;
/// Wrong guesses a code takes before it is dead.
pub const MAX_ATTEMPTS: i64 = 5;
/// How a new account is paid until its owner chooses: phone credit needs nothing more than
/// the phone the citizen already proved (WeChat needs an account id, cash a visit).
pub const INITIAL_CHANNEL: PayoutChannel = PayoutChannel::PhoneCredit;
/// The demo city's rewardable citizen (the demo `citizen` account has no phone: anonymous).
pub const DEMO_PHONE: &str = "13800000001";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_code))
        .routes(routes!(sign_in))
        .routes(routes!(me))
        .routes(routes!(set_payout))
        .routes(routes!(my_reports))
        .routes(routes!(my_report))
        .routes(routes!(report_photo))
        .routes(routes!(my_rewards))
        .routes(routes!(list_exclusions, add_exclusion))
        .routes(routes!(remove_exclusion))
}

// ---- helpers -------------------------------------------------------------------------------

/// A fresh bearer token and the hash under which it is stored (the scheme of
/// `POST /api/v1/auth/token`: 32 random bytes, only the SHA-256 kept).
pub fn issue_token() -> (String, String) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

/// What is stored of a code: bound to its phone, so that a hash says nothing on its own.
fn code_hash(phone: &Phone, code: &str) -> String {
    hex::encode(Sha256::digest(format!("citygrid-otp:{}:{code}", phone.as_str()).as_bytes()))
}

fn username_of(phone: &Phone) -> String {
    format!("p{}", phone.as_str())
}

fn display_name_of(phone: &Phone) -> String {
    format!("市民{}", phone.masked())
}

/// An argon2 hash of 32 random bytes nobody keeps: the account has a password hash like every
/// user (so password sign-in takes as long for it as for anyone) but no password works.
async fn unusable_password_hash() -> ApiResult<String> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = hex::encode(raw);
    tokio::task::spawn_blocking(move || hash_password(&secret)).await.map_err(|e| ApiError::Internal(e.to_string()))?
}

fn parse_phone(raw: &str, field: &str) -> ApiResult<Phone> {
    if raw.len() > 40 {
        return Err(ApiError::invalid(field, "not a mainland mobile number"));
    }
    Phone::parse(raw).map_err(|e| ApiError::invalid(field, e))
}

/// The citizen account behind a request: role citizen with a proven phone, else 403.
#[derive(Debug, Clone)]
struct Account {
    user: User,
    phone: Phone,
    channel: PayoutChannel,
    payout_account: Option<String>,
    created_at: Timestamp,
}

async fn account(app: &AppState, auth: &Auth) -> ApiResult<Account> {
    if auth.role() != Role::Citizen {
        return Err(ApiError::forbidden(format!(
            "role {} has no citizen account: /citizen/me is for citizens signed in by phone",
            auth.role().as_str()
        )));
    }
    let a = app.store.citizen_account(auth.user.id).await?.ok_or_else(|| ApiError::Forbidden {
        code: "no_citizen_account",
        detail: "this citizen user has no phone number: its reports are anonymous and earn no reward; \
                 sign in with a phone code (POST /api/v1/citizen/codes)"
            .into(),
    })?;
    let phone = Phone::parse(&a.phone).map_err(ApiError::Internal)?;
    let channel = PayoutChannel::parse(&a.payout_channel)
        .ok_or_else(|| ApiError::Internal(format!("stored payout channel {:?}", a.payout_channel)))?;
    Ok(Account { user: auth.user.clone(), phone, channel, payout_account: a.payout_account, created_at: a.created_at })
}

fn cursor_param(cursor: &Option<String>) -> ApiResult<Option<i64>> {
    cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| ApiError::bad_query("cursor", "not a cursor from next_cursor"))
        })
        .transpose()
}

fn limit_param(limit: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_query("limit", format!("1 to {max}")))
    }
}

// ---- sign-in -------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// Mainland mobile number; `+86`, spaces and dashes are accepted.
    #[schema(example = "13800000001", max_length = 40)]
    pub phone: String,
}

/// A code is on its way. The answer is the same whether or not the phone has an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSent {
    #[schema(example = "138****0001")]
    pub phone_masked: String,
    /// Seconds the code can be used.
    pub expires_in: i64,
    /// Seconds before another code may be asked for this phone.
    pub resend_after: i64,
}

/// Send a 6-digit sign-in code by SMS. At most one per phone a minute and five an hour (429
/// with `Retry-After` beyond that; nothing is sent or stored).
#[utoipa::path(post, path = "/api/v1/citizen/codes", tag = "citizens", request_body = CodeRequest,
    responses((status = 202, body = CodeSent),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds until a code may be asked again"))),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn send_code(State(app): State<AppState>, Json(req): Json<CodeRequest>) -> ApiResult<Response> {
    let phone = parse_phone(&req.phone, "phone")?;
    let sender = sms::sender().map_err(|e| ApiError::Internal(e.to_string()))?;
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
    let now = app.now();
    let hour = jiff::SignedDuration::from_hours(1);
    let since = now.checked_sub(hour).map_err(|e| ApiError::Internal(e.to_string()))?;
    let resend = jiff::SignedDuration::from_secs(RESEND_AFTER_SECONDS);
    let ttl = jiff::SignedDuration::from_mins(CODE_TTL_MINUTES);
    // The rate limits, decided inside the store's transaction: `Err(seconds to wait, why)`.
    let decide = |recent: &[Timestamp]| -> Result<Timestamp, (i64, String)> {
        let wait = |until: Timestamp| (until.as_millisecond() - now.as_millisecond() + 999).div_euclid(1000).max(1);
        if let Some(last) = recent.last() {
            let until = last.checked_add(resend).unwrap_or(*last);
            if until > now {
                return Err((
                    wait(until),
                    format!("a code was sent to this phone less than {RESEND_AFTER_SECONDS} seconds ago"),
                ));
            }
        }
        if recent.len() >= CODES_PER_HOUR {
            let oldest = recent[recent.len() - CODES_PER_HOUR];
            let until = oldest.checked_add(hour).unwrap_or(oldest);
            return Err((wait(until), format!("at most {CODES_PER_HOUR} codes per phone per hour")));
        }
        now.checked_add(ttl).map_err(|e| (1, e.to_string()))
    };
    let issued = app.store.issue_code(phone.as_str(), &code_hash(&phone, &code), now, since, decide).await?;
    let id = match issued {
        Ok(id) => id,
        Err((seconds, why)) => {
            return Err(ApiError::TooMany {
                code: "too_many_codes",
                field: Some("phone".into()),
                detail: format!("{why}; ask again in {seconds} s"),
                retry_after: u64::try_from(seconds).ok(),
            });
        }
    };
    let msg = sms::Message::sign_in_code(phone.as_str(), &code, CODE_TTL_MINUTES);
    if let Err(e) = sender.send(&msg).await {
        // Undelivered: the code is of no use and must not count against the limits.
        tracing::error!(error = %e, phone = %phone.masked(), "sign-in code not delivered");
        app.store.delete_code(id).await?;
        return Err(ApiError::Unavailable {
            code: "sms_unavailable",
            detail: "the SMS gateway did not take the message; try again later".into(),
        });
    }
    let out = CodeSent {
        phone_masked: phone.masked(),
        expires_in: CODE_TTL_MINUTES * 60,
        resend_after: RESEND_AFTER_SECONDS,
    };
    Ok((StatusCode::ACCEPTED, Json(out)).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeSignIn {
    #[schema(example = "13800000001", max_length = 40)]
    pub phone: String,
    /// The 6 digits of the SMS.
    #[schema(example = "123456", pattern = "^[0-9]{6}$")]
    pub code: String,
}

/// A session of a citizen, like `POST /api/v1/auth/token` answers, and whether this sign-in
/// created the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct CitizenToken {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub user: UserOut,
    /// This was the phone's first sign-in: the account was created now.
    pub new_account: bool,
}

/// Sign in with a phone and the code sent to it; the first sign-in creates the citizen account
/// (username `p` + the phone, display name `市民138****5678`). A wrong code counts as an
/// attempt (5 per code); a used, expired, superseded or exhausted code is refused.
#[utoipa::path(post, path = "/api/v1/citizen/token", tag = "citizens", request_body = CodeSignIn,
    responses((status = 200, body = CitizenToken),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn sign_in(State(app): State<AppState>, Json(req): Json<CodeSignIn>) -> ApiResult<Json<CitizenToken>> {
    let phone = parse_phone(&req.phone, "phone")?;
    let code = req.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid("code", "the 6 digits of the SMS"));
    }
    let active = app.store.citizen_active(phone.as_str()).await?;
    if active == Some(false) {
        return Err(ApiError::Forbidden {
            code: "account_disabled",
            detail: "this citizen account is deactivated".into(),
        });
    }
    let password_hash = match active {
        None => unusable_password_hash().await?,
        // Not used: the account exists.
        Some(_) => String::new(),
    };
    let new_user = NewUser {
        username: username_of(&phone),
        display_name: display_name_of(&phone),
        password_hash,
        role: Role::Citizen,
        scope: Scope::Own,
    };
    let (token, hash) = issue_token();
    let now = app.now();
    let expires_at = now.checked_add(app.settings.token_ttl).map_err(|e| ApiError::Internal(e.to_string()))?;
    let outcome = app
        .store
        .redeem_code(
            phone.as_str(),
            &code_hash(&phone, code),
            now,
            MAX_ATTEMPTS,
            &new_user,
            INITIAL_CHANNEL.as_str(),
            &hash,
            expires_at,
        )
        .await?;
    match outcome {
        Ok((user, created)) => Ok(Json(CitizenToken { token, expires_at, user: user.into(), new_account: created })),
        Err(Some(0)) => Err(ApiError::Invalid {
            code: "wrong_code",
            field: "code".into(),
            detail: format!("wrong code; that was the last of {MAX_ATTEMPTS} attempts: ask for a new code"),
        }),
        Err(Some(left)) => Err(ApiError::Invalid {
            code: "wrong_code",
            field: "code".into(),
            detail: format!("wrong code; {left} attempts left"),
        }),
        Err(None) => Err(ApiError::Invalid {
            code: "code_expired",
            field: "code".into(),
            detail: "no usable code for this phone (expired, used, replaced by a newer one, out of attempts, \
                     or never sent): ask for a new code"
                .into(),
        }),
    }
}

// ---- the account ---------------------------------------------------------------------------

/// Reward totals of a citizen, integer fen (分).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RewardTotals {
    /// Everything earned so far, net of corrections (approved or not needing approval).
    pub earned_fen: i64,
    /// Paid out by monthly settlements.
    pub paid_fen: i64,
    /// Earned, not yet paid: due at the next settlement (negative when a correction of an
    /// already paid reward is to be offset against later rewards).
    pub pending_fen: i64,
    /// Rewards above the approval threshold, waiting for an approver.
    pub awaiting_approval_fen: i64,
}

/// How the citizen is paid.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payout {
    pub channel: PayoutChannel,
    /// WeChat account id for `wechat`; none for `cash` and `phone_credit` (paid to the phone).
    pub account: Option<String>,
}

/// The signed-in citizen's account.
#[derive(Debug, Serialize, ToSchema)]
pub struct CitizenMe {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    /// The owner sees the full number.
    #[schema(example = "13800000001")]
    pub phone: String,
    #[schema(example = "138****0001")]
    pub phone_masked: String,
    pub payout: Payout,
    /// False when the phone is on the exclusion list (staff, a contractor's people): reports
    /// are handled as ever but earn no reward.
    pub reward_eligible: bool,
    pub rewards: RewardTotals,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

async fn me_out(app: &AppState, a: &Account) -> ApiResult<CitizenMe> {
    let lines = reward_lines(app, a.user.id).await?;
    let excluded = app.store.get_exclusion(a.phone.as_str()).await?.is_some();
    Ok(CitizenMe {
        user_id: a.user.id,
        username: a.user.username.clone(),
        display_name: a.user.display_name.clone(),
        phone: a.phone.as_str().to_owned(),
        phone_masked: a.phone.masked(),
        payout: Payout { channel: a.channel, account: a.payout_account.clone() },
        reward_eligible: !excluded,
        rewards: totals(&lines),
        created_at: a.created_at,
    })
}

/// The signed-in citizen: phone, payout channel, reward totals.
#[utoipa::path(get, path = "/api/v1/citizen/me", tag = "citizens", security(("bearer" = [])),
    responses((status = 200, body = CitizenMe),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn me(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<CitizenMe>> {
    let a = account(&app, &auth).await?;
    Ok(Json(me_out(&app, &a).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutIn {
    pub channel: PayoutChannel,
    /// Required for `wechat` (the WeChat account id, 6–64 of `A-Z a-z 0-9 _ -`); not allowed
    /// for `cash` and `phone_credit` (phone credit goes to the account's own phone).
    #[schema(max_length = 64)]
    pub account: Option<String>,
}

/// Choose how rewards are paid: cash, phone credit (to the account's phone) or WeChat.
#[utoipa::path(put, path = "/api/v1/citizen/me/payout", tag = "citizens", security(("bearer" = [])),
    request_body = PayoutIn,
    responses((status = 200, body = CitizenMe),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn set_payout(
    State(app): State<AppState>,
    auth: Auth,
    Json(req): Json<PayoutIn>,
) -> ApiResult<Json<CitizenMe>> {
    let a = account(&app, &auth).await?;
    let acct = req.account.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let acct = match (req.channel, acct) {
        (PayoutChannel::Wechat, None) => {
            return Err(ApiError::invalid("account", "wechat needs the WeChat account id to pay to"))
        }
        (PayoutChannel::Wechat, Some(id)) => {
            let ok =
                (6..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(ApiError::invalid("account", "a WeChat account id: 6 to 64 of A-Z a-z 0-9 _ -"));
            }
            Some(id)
        }
        (PayoutChannel::PhoneCredit, Some(_)) => {
            return Err(ApiError::invalid(
                "account",
                "phone credit is paid to this account's own phone; send no account",
            ))
        }
        (PayoutChannel::Cash, Some(_)) => {
            return Err(ApiError::invalid("account", "cash is collected in person; send no account"))
        }
        (_, None) => None,
    };
    let stored = app.store.set_payout(a.user.id, req.channel.as_str(), acct).await?;
    let a = Account { channel: req.channel, payout_account: stored.payout_account, ..a };
    Ok(Json(me_out(&app, &a).await?))
}

// ---- rewards -------------------------------------------------------------------------------

/// One reward entry of the ledger (台账) as its citizen sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RewardOut {
    pub id: i64,
    /// Integer fen; a correction (`reverses` set) is negative.
    pub amount_fen: i64,
    /// The rule that made it, e.g. `first_reporter`; corrections `reversal:...`.
    pub rule: String,
    pub case_id: i64,
    pub case_number: String,
    /// `YYYY-MM` it accrued in.
    pub month: String,
    pub status: EntryStatus,
    pub settled_month: Option<String>,
    /// The entry this one corrects.
    pub reverses: Option<i64>,
    /// The entry that corrected this one.
    pub reversed_by: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(skip)]
    needs_approval: bool,
    #[serde(skip)]
    approved: Option<bool>,
}

/// Every reward entry of the citizen, newest first (the ledger's own list, all pages).
async fn reward_lines(app: &AppState, user_id: i64) -> ApiResult<Vec<RewardOut>> {
    let filter = LedgerFilter {
        kind: Some(EntryKind::Reward),
        party_kind: Some(PartyKind::Citizen),
        party: Some(user_id.to_string()),
        ..LedgerFilter::default()
    };
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = app.store.list_ledger(&filter, cursor, 1000).await?;
        out.extend(page.items.into_iter().map(|l| RewardOut {
            status: l.status(),
            id: l.id,
            amount_fen: l.amount_fen,
            rule: l.rule,
            case_id: l.case_id,
            case_number: l.case_number,
            month: l.month,
            settled_month: l.settled_in,
            reverses: l.reverses,
            reversed_by: l.reversed_by,
            created_at: l.created_at,
            needs_approval: l.needs_approval,
            approved: l.approved,
        }));
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(out),
        }
    }
}

/// The totals of a citizen's entries, exactly, in integer fen. An entry counts as earned once
/// it may be paid (no approval needed, or approved); a correction counts like the entry it
/// corrects, so a reward and its reversal always cancel.
fn totals(lines: &[RewardOut]) -> RewardTotals {
    let by_id: HashMap<i64, &RewardOut> = lines.iter().map(|l| (l.id, l)).collect();
    let mut t = RewardTotals::default();
    for l in lines {
        let basis = l.reverses.and_then(|o| by_id.get(&o).copied()).unwrap_or(l);
        if l.reverses.is_none() && l.reversed_by.is_none() && l.needs_approval && l.approved.is_none() {
            t.awaiting_approval_fen += l.amount_fen;
        }
        let may_pay = !basis.needs_approval || basis.approved == Some(true);
        if !may_pay {
            continue;
        }
        t.earned_fen += l.amount_fen;
        if l.settled_month.is_some() {
            t.paid_fen += l.amount_fen;
        }
    }
    t.pending_fen = t.earned_fen - t.paid_fen;
    t
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
}

/// The citizen's reward entries, newest first, with the totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct RewardPage {
    pub items: Vec<RewardOut>,
    pub totals: RewardTotals,
    pub next_cursor: Option<String>,
}

/// The signed-in citizen's rewards: every ledger entry with amount, rule, case, month and
/// status (pending approval, payable, settled, reversed), newest first.
#[utoipa::path(get, path = "/api/v1/citizen/me/rewards", tag = "citizens", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = RewardPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn my_rewards(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<RewardPage>> {
    let before = cursor_param(&q.cursor)?;
    let limit = limit_param(q.limit, 20, 100)? as usize;
    let a = account(&app, &auth).await?;
    let lines = reward_lines(&app, a.user.id).await?;
    let totals = totals(&lines);
    let mut items: Vec<RewardOut> = lines.into_iter().filter(|l| before.is_none_or(|b| l.id < b)).collect();
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|l| l.id.to_string())
    } else {
        None
    };
    Ok(Json(RewardPage { items, totals, next_cursor }))
}

// ---- reports -------------------------------------------------------------------------------

/// The reward of one report, if it earned one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportReward {
    /// Net of corrections, integer fen.
    pub amount_fen: i64,
    pub status: EntryStatus,
}

/// One step of a report's public timeline (no staff names, no internal steps).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineStep {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `received`, `verified`, `not_verified`, `accepted`, `rejected`, `filed`, `refused`,
    /// `duplicate`, `voided`, `dispatched`, `suspended`, `resumed`, `disposed`, `rework`,
    /// `checked`, `fixed`.
    pub step: String,
    /// What the citizen reads, e.g. `已立案`.
    pub label: String,
    /// The reason given to the reporter (rejections, refusals, voids).
    pub note: Option<String>,
    /// The citizen's own photos (received) and the after-photos (fixed).
    pub photo_ids: Vec<String>,
}

/// A report as its citizen sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MyReport {
    pub id: i64,
    pub number: String,
    #[schema(example = "06010")]
    pub class_code: String,
    pub class_name: String,
    pub description: String,
    pub address: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub reported_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The honest public status.
    pub status: PublicStatus,
    /// Its label, e.g. `已办结`, `不予处理`, `重复举报`, `非城管职责`.
    pub status_label: String,
    /// Why it ended without a fix, when it did.
    pub end_reason: Option<EndReason>,
    /// The reason in words as the reporter was told.
    pub status_note: Option<String>,
    /// The number of the report this one duplicates (status `duplicate`).
    pub duplicate_of: Option<String>,
    /// The citizen's own photos.
    pub photo_ids: Vec<String>,
    /// Photos of the fix, once fixed; read them with
    /// `GET /api/v1/citizen/me/reports/{id}/photos/{photo_id}`.
    pub after_photo_ids: Vec<String>,
    pub reward: Option<ReportReward>,
    /// Single-report reads only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineStep>>,
}

fn end_reason_zh(r: EndReason) -> &'static str {
    match r {
        EndReason::NotFound => "现场核实不属实",
        EndReason::NotCityResponsibility => "不属于城市管理职责范围",
        EndReason::Invalid => "无效举报",
        EndReason::Other => "其他原因",
    }
}

/// The photos of the fix: those of the last disposal, once the case is closed.
fn after_photos(case: &Case, events: &[Event]) -> Vec<String> {
    if case.state != CaseState::Closed {
        return Vec::new();
    }
    events.iter().rev().find(|e| matches!(e.change, Change::Dispose)).map(|e| e.photo_ids.clone()).unwrap_or_default()
}

/// The note of the event that ended the case without a fix, with the reason in words.
fn end_note(case: &Case, events: &[Event]) -> Option<String> {
    let last = events.iter().rev().find(|e| e.to_state == case.state && e.to_state.is_final())?;
    match last.change {
        Change::Reject { .. } | Change::Refuse { .. } | Change::Void { .. } => {
            let reason = case.end_reason.map(end_reason_zh);
            match (reason, last.note.as_deref().map(str::trim).filter(|n| !n.is_empty())) {
                (Some(r), Some(n)) => Some(format!("{r}：{n}")),
                (Some(r), None) => Some(r.to_owned()),
                (None, n) => n.map(str::to_owned),
            }
        }
        _ => None,
    }
}

fn timeline(case: &Case, events: &[Event], numbers: &HashMap<i64, String>) -> Vec<TimelineStep> {
    let after = after_photos(case, events);
    let mut out = Vec::new();
    let mut dispatched = false;
    for e in events {
        let note = || e.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        let with_reason = |reason: &Option<EndReason>| match (reason.map(end_reason_zh), note()) {
            (Some(r), Some(n)) => Some(format!("{r}：{n}")),
            (Some(r), None) => Some(r.to_owned()),
            (None, n) => n,
        };
        let (step, label, note, photos): (&str, String, Option<String>, Vec<String>) = match &e.change {
            Change::Report { .. } => ("received", "已收到举报".into(), None, e.photo_ids.clone()),
            Change::Verify { confirmed: true } => ("verified", "现场核实属实".into(), None, vec![]),
            Change::Verify { confirmed: false } => ("not_verified", "现场核实不属实".into(), None, vec![]),
            Change::Accept => ("accepted", "已受理".into(), None, vec![]),
            Change::Reject { reason } => ("rejected", "不予受理".into(), with_reason(reason), vec![]),
            Change::File { .. } => ("filed", "已立案".into(), None, vec![]),
            Change::Refuse { reason } => ("refused", "不予立案".into(), with_reason(reason), vec![]),
            Change::Void { duplicate_of: Some(d) } => {
                let label = match numbers.get(d) {
                    Some(n) => format!("重复举报，已并入案件 {n}"),
                    None => "重复举报，已并入其他案件".into(),
                };
                ("duplicate", label, note(), vec![])
            }
            Change::Void { duplicate_of: None } => ("voided", "已作废".into(), note(), vec![]),
            // Re-dispatches after a department handed it back are internal: one step.
            Change::Dispatch { .. } if !dispatched => {
                dispatched = true;
                ("dispatched", "已派遣处置".into(), None, vec![])
            }
            Change::ApproveSuspension => ("suspended", "暂缓处置".into(), None, vec![]),
            Change::Resume => ("resumed", "恢复处置".into(), None, vec![]),
            Change::Dispose => ("disposed", "已处置，待核查".into(), None, vec![]),
            Change::Check { passed: false } => ("rework", "核查未通过，返工处置".into(), None, vec![]),
            Change::Check { passed: true } => ("checked", "核查通过".into(), None, vec![]),
            Change::Close => ("fixed", "已办结".into(), None, after.clone()),
            _ => continue,
        };
        out.push(TimelineStep { at: e.at, step: step.into(), label, note, photo_ids: photos });
    }
    out
}

/// Build the citizen's view of `cases`, with one query each for their logs, the numbers of
/// the reports they duplicate, and the citizen's reward entries.
async fn my_reports_out(
    app: &AppState,
    user_id: i64,
    cases: Vec<Case>,
    with_timeline: bool,
) -> ApiResult<Vec<MyReport>> {
    let ids: Vec<i64> = cases.iter().map(|c| c.id).collect();
    let mut events: HashMap<i64, Vec<Event>> = HashMap::new();
    for (id, e) in app.store.events_of_cases(&ids).await? {
        events.entry(id).or_default().push(e);
    }
    let dup_ids: Vec<i64> = cases.iter().filter_map(|c| c.duplicate_of).collect::<HashSet<_>>().into_iter().collect();
    let numbers: HashMap<i64, String> = app.store.case_numbers(&dup_ids).await?.into_iter().collect();
    let lines = reward_lines(app, user_id).await?;
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        let evs = events.remove(&case.id).unwrap_or_default();
        let status = PublicStatus::of(&case);
        let mine: Vec<&RewardOut> = lines.iter().filter(|l| l.case_id == case.id).collect();
        let reward = (!mine.is_empty()).then(|| {
            let standing = mine.iter().find(|l| l.reverses.is_none() && l.reversed_by.is_none());
            ReportReward {
                amount_fen: mine.iter().map(|l| l.amount_fen).sum(),
                status: standing.map(|l| l.status).unwrap_or(EntryStatus::Reversed),
            }
        });
        let class_name = app.class(case.kind, case.class_code.as_str()).map(|c| c.name_zh).unwrap_or_default();
        out.push(MyReport {
            id: case.id,
            number: case.number.clone(),
            class_code: case.class_code.as_str().to_owned(),
            class_name,
            description: case.description.clone(),
            address: case.address.clone(),
            reported_at: case.created_at,
            updated_at: case.updated_at,
            status,
            status_label: status.label_zh().to_owned(),
            end_reason: case.end_reason,
            status_note: end_note(&case, &evs),
            duplicate_of: case.duplicate_of.and_then(|d| numbers.get(&d).cloned()),
            photo_ids: case.photo_ids.clone(),
            after_photo_ids: after_photos(&case, &evs),
            reward,
            timeline: with_timeline.then(|| timeline(&case, &evs, &numbers)),
        });
    }
    Ok(out)
}

/// One page of the citizen's reports, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyReportPage {
    pub items: Vec<MyReport>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The signed-in citizen's reports, newest first, with their public status, the reason when
/// not fixed, the after-photos when fixed, and the reward.
#[utoipa::path(get, path = "/api/v1/citizen/me/reports", tag = "citizens", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = MyReportPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn my_reports(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<MyReportPage>> {
    let before = cursor_param(&q.cursor)?;
    let limit = limit_param(q.limit, 20, 100)?;
    let a = account(&app, &auth).await?;
    let page = app.store.list_cases(&Visibility::Reporter(a.user.id), &CaseFilter::default(), before, limit).await?;
    let items = my_reports_out(&app, a.user.id, page.items, false).await?;
    Ok(Json(MyReportPage { items, next_cursor: page.next.map(|n| n.to_string()) }))
}

/// One of the citizen's own cases; 404 for anyone else's.
async fn own_case(app: &AppState, a: &Account, id: i64) -> ApiResult<Case> {
    match app.store.get_case(id).await? {
        Some(c) if c.reporter_id == Some(a.user.id) => Ok(c),
        _ => Err(ApiError::NotFound("report")),
    }
}

/// One of the signed-in citizen's reports with its public timeline.
#[utoipa::path(get, path = "/api/v1/citizen/me/reports/{id}", tag = "citizens", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Case id")),
    responses((status = 200, body = MyReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn my_report(State(app): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<MyReport>> {
    let a = account(&app, &auth).await?;
    let case = own_case(&app, &a, id).await?;
    let mut out = my_reports_out(&app, a.user.id, vec![case], true).await?;
    out.pop().map(Json).ok_or(ApiError::NotFound("report"))
}

/// A photo of the citizen's own report: their own photos, and the after-photos once it is
/// fixed (`GET /api/v1/photos/{id}` serves a citizen only the photos they uploaded). Metadata
/// is removed as there.
#[utoipa::path(get, path = "/api/v1/citizen/me/reports/{id}/photos/{photo_id}", tag = "citizens",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Case id"), ("photo_id" = String, Path, description = "Photo id (SHA-256)")),
    responses((status = 200, description = "The photo, metadata removed",
            content((crate::routes::photos::PhotoBytes = "image/jpeg"), (crate::routes::photos::PhotoBytes = "image/png"),
                (crate::routes::photos::PhotoBytes = "image/webp"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn report_photo(
    State(app): State<AppState>,
    auth: Auth,
    Path((id, photo_id)): Path<(i64, String)>,
) -> ApiResult<Response> {
    let a = account(&app, &auth).await?;
    let case = own_case(&app, &a, id).await?;
    let events = app.store.case_events(id).await?;
    if !case.photo_ids.contains(&photo_id) && !after_photos(&case, &events).contains(&photo_id) {
        return Err(ApiError::NotFound("photo"));
    }
    let photo = app.store.get_photo(&photo_id).await?.ok_or(ApiError::NotFound("photo"))?;
    let ct = photo.content_type.clone();
    let bytes = tokio::task::spawn_blocking(move || crate::routes::photos::strip_metadata(&ct, &photo.bytes))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::Internal(format!("stored photo {photo_id} does not parse")))?;
    let mut res = bytes.into_response();
    if let Ok(v) = HeaderValue::from_str(&photo.content_type) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    Ok(res)
}

// ---- exclusions ----------------------------------------------------------------------------

/// Why a phone may not earn rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionReason {
    /// City staff: collectors, acceptors, ...
    Staff,
    /// A contractor's own people (cleaning companies, the collection company).
    Contractor,
    Other,
}

impl ExclusionReason {
    fn as_str(self) -> &'static str {
        match self {
            ExclusionReason::Staff => "staff",
            ExclusionReason::Contractor => "contractor",
            ExclusionReason::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<ExclusionReason> {
        [ExclusionReason::Staff, ExclusionReason::Contractor, ExclusionReason::Other]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExclusionIn {
    #[schema(example = "13900000002", max_length = 40)]
    pub phone: String,
    pub reason: ExclusionReason,
    /// Who this is (≤ 200 characters).
    #[schema(max_length = 200)]
    pub note: Option<String>,
}

/// A phone that may not earn rewards.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExclusionOut {
    pub phone: String,
    pub reason: ExclusionReason,
    pub note: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExclusionList {
    pub items: Vec<ExclusionOut>,
}

/// The phones that may not earn rewards (administrators only).
#[utoipa::path(get, path = "/api/v1/citizen/exclusions", tag = "citizens", security(("bearer" = [])),
    responses((status = 200, body = ExclusionList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_exclusions(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<ExclusionList>> {
    auth.require(&[Role::Admin])?;
    let mut items = Vec::new();
    for e in app.store.list_exclusions().await? {
        let reason = ExclusionReason::parse(&e.reason)
            .ok_or_else(|| ApiError::Internal(format!("stored exclusion reason {:?}", e.reason)))?;
        items.push(ExclusionOut { phone: e.phone, reason, note: e.note, created_at: e.created_at });
    }
    Ok(Json(ExclusionList { items }))
}

/// Put a phone on the exclusion list (administrators only); 409 if it is there already.
#[utoipa::path(post, path = "/api/v1/citizen/exclusions", tag = "citizens", security(("bearer" = [])),
    request_body = ExclusionIn,
    responses((status = 201, body = ExclusionOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_exclusion(
    State(app): State<AppState>,
    auth: Auth,
    Json(req): Json<ExclusionIn>,
) -> ApiResult<(StatusCode, Json<ExclusionOut>)> {
    auth.require(&[Role::Admin])?;
    let phone = parse_phone(&req.phone, "phone")?;
    let note = req.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    if note.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::invalid("note", "at most 200 characters"));
    }
    let now = app.now();
    app.store.add_exclusion(phone.as_str(), req.reason.as_str(), note.as_deref(), now).await.map_err(|e| match e {
        citygrid_store::StoreError::Conflict(m) => ApiError::conflict("already_excluded", m),
        other => other.into(),
    })?;
    let out = ExclusionOut { phone: phone.as_str().to_owned(), reason: req.reason, note, created_at: now };
    Ok((StatusCode::CREATED, Json(out)))
}

/// Take a phone off the exclusion list (administrators only).
#[utoipa::path(delete, path = "/api/v1/citizen/exclusions/{phone}", tag = "citizens", security(("bearer" = [])),
    params(("phone" = String, Path, description = "The phone number")),
    responses((status = 204),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_exclusion(
    State(app): State<AppState>,
    auth: Auth,
    Path(phone): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(&[Role::Admin])?;
    let phone = Phone::parse(&phone).map_err(|e| ApiError::BadRequest {
        code: "invalid_path",
        field: Some("phone".into()),
        detail: e,
    })?;
    app.store.remove_exclusion(phone.as_str()).await.map_err(|e| match e {
        citygrid_store::StoreError::NotFound => ApiError::NotFound("exclusion"),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- demo ----------------------------------------------------------------------------------

/// Demo data of the citizen channel: a rewardable citizen with phone 13800000001 (account
/// `p13800000001`, signed in by code like anyone). Idempotent.
pub async fn seed_demo(app: &AppState) -> ApiResult<()> {
    let phone = Phone::parse(DEMO_PHONE).map_err(ApiError::Internal)?;
    if app.store.citizen_account_by_phone(phone.as_str()).await?.is_some()
        || app.store.user_by_name(&username_of(&phone)).await?.is_some()
    {
        return Ok(());
    }
    let user = NewUser {
        username: username_of(&phone),
        display_name: display_name_of(&phone),
        password_hash: unusable_password_hash().await?,
        role: Role::Citizen,
        scope: Scope::Own,
    };
    app.store.create_citizen(&user, phone.as_str(), INITIAL_CHANNEL.as_str(), app.now()).await?;
    Ok(())
}
