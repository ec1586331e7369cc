//! Delivering one-time sign-in codes (短信验证码) to citizens' phones.
//!
//! [`CodeSender`] is the interface; which implementation runs is configuration, read once from
//! the environment variable `CITYGRID_SMS_SENDER` the first time a code is sent (so neither
//! `AppState` nor `Settings` carry it):
//!
//! | value | sender |
//! |---|---|
//! | `log` (default) | a `tracing` line with the code: development only |
//! | `file:PATH` | appends one JSON line `{at, phone, code, text}` per code to PATH |
//! | `webhook:URL` | `POST URL` with JSON `{phone, code, text}`, for a real SMS gateway (or an adapter in front of one); `CITYGRID_SMS_WEBHOOK_TOKEN`, if set, goes as `Authorization: Bearer` |
//! | `memory` | keeps the codes in memory ([`last_code`]): tests |
//!
//! The webhook client is plain HTTP (the workspace builds reqwest without TLS): point it at a
//! gateway adapter on the local network, or add reqwest's TLS feature to reach an `https` URL.
//! A non-2xx answer, or none within 10 seconds, is a failed delivery.

use jiff::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Environment variable choosing the sender.
pub const SENDER_VAR: &str = "CITYGRID_SMS_SENDER";
/// Environment variable with the webhook's bearer token (optional).
pub const WEBHOOK_TOKEN_VAR: &str = "CITYGRID_SMS_WEBHOOK_TOKEN";

/// One text message carrying a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// 11 digits.
    pub phone: String,
    pub code: String,
    /// The text the citizen reads.
    pub text: String,
}

impl Message {
    /// The sign-in message of `code`, valid for `minutes`.
    pub fn sign_in_code(phone: &str, code: &str, minutes: i64) -> Message {
        Message {
            phone: phone.to_owned(),
            code: code.to_owned(),
            text: format!("【市民城管通】您的登录验证码是{code}，{minutes}分钟内有效。如非本人操作，请忽略本短信。"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// `CITYGRID_SMS_SENDER` does not name a sender.
    #[error("{SENDER_VAR}: {0}")]
    Config(String),
    /// The sender could not deliver the message.
    #[error("SMS delivery failed: {0}")]
    Delivery(String),
}

/// Something that delivers a code to a phone.
pub trait CodeSender: Send + Sync {
    fn send(&self, msg: &Message) -> impl Future<Output = Result<(), SmsError>> + Send;
}

/// Development: the code goes to the log.
#[derive(Debug, Default)]
pub struct LogSender;

impl CodeSender for LogSender {
    async fn send(&self, msg: &Message) -> Result<(), SmsError> {
        tracing::info!(phone = %msg.phone, code = %msg.code, "sms (log sender, development only): {}", msg.text);
        Ok(())
    }
}

/// Appends one JSON line per message to a file.
#[derive(Debug)]
pub struct FileSender {
    path: PathBuf,
    // One writer at a time, so that lines never interleave.
    lock: tokio::sync::Mutex<()>,
}

impl FileSender {
    pub fn new(path: impl Into<PathBuf>) -> FileSender {
        FileSender { path: path.into(), lock: tokio::sync::Mutex::new(()) }
    }
}

#[derive(Serialize)]
struct FileLine<'a> {
    at: Timestamp,
    #[serde(flatten)]
    msg: &'a Message,
}

impl CodeSender for FileSender {
    async fn send(&self, msg: &Message) -> Result<(), SmsError> {
        use tokio::io::AsyncWriteExt;
        let mut line = serde_json::to_string(&FileLine { at: Timestamp::now(), msg })
            .map_err(|e| SmsError::Delivery(e.to_string()))?;
        line.push('\n');
        let _guard = self.lock.lock().await;
        let fail = |e: std::io::Error| SmsError::Delivery(format!("{}: {e}", self.path.display()));
        let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await.map_err(fail)?;
        f.write_all(line.as_bytes()).await.map_err(fail)?;
        f.flush().await.map_err(fail)
    }
}

/// POSTs `{phone, code, text}` as JSON to an SMS gateway.
#[derive(Debug)]
pub struct WebhookSender {
    url: reqwest::Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new(url: &str, token: Option<String>) -> Result<WebhookSender, SmsError> {
        let url = reqwest::Url::parse(url).map_err(|e| SmsError::Config(format!("webhook URL {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SmsError::Config(format!("webhook URL {url} must be http or https")));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SmsError::Config(e.to_string()))?;
        Ok(WebhookSender { url, token: token.filter(|t| !t.is_empty()), client })
    }
}

impl CodeSender for WebhookSender {
    async fn send(&self, msg: &Message) -> Result<(), SmsError> {
        let mut req = self.client.post(self.url.clone()).json(msg);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.map_err(|e| SmsError::Delivery(format!("{}: {e}", self.url)))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(SmsError::Delivery(format!("{} answered {}", self.url, res.status())))
        }
    }
}

/// Tests: keeps every code in memory, readable with [`last_code`] and [`codes_sent`].
#[derive(Debug, Default)]
pub struct MemorySender;

fn outbox() -> &'static Mutex<HashMap<String, Vec<String>>> {
    static OUTBOX: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    OUTBOX.get_or_init(Default::default)
}

impl CodeSender for MemorySender {
    async fn send(&self, msg: &Message) -> Result<(), SmsError> {
        let mut boxes = outbox().lock().unwrap_or_else(|p| p.into_inner());
        boxes.entry(msg.phone.clone()).or_default().push(msg.code.clone());
        Ok(())
    }
}

/// The last code the memory sender delivered to `phone`.
pub fn last_code(phone: &str) -> Option<String> {
    codes_sent(phone).pop()
}

/// Every code the memory sender delivered to `phone`, oldest first.
pub fn codes_sent(phone: &str) -> Vec<String> {
    outbox().lock().unwrap_or_else(|p| p.into_inner()).get(phone).cloned().unwrap_or_default()
}

/// The sender chosen by configuration.
#[derive(Debug)]
pub enum Configured {
    Log(LogSender),
    File(FileSender),
    Webhook(WebhookSender),
    Memory(MemorySender),
}

impl Configured {
    /// `log`, `file:PATH`, `webhook:URL` or `memory`; `token` is the webhook's bearer token.
    pub fn parse(spec: &str, token: Option<String>) -> Result<Configured, SmsError> {
        let spec = spec.trim();
        match spec.split_once(':') {
            _ if spec.is_empty() || spec == "log" => Ok(Configured::Log(LogSender)),
            _ if spec == "memory" => Ok(Configured::Memory(MemorySender)),
            Some(("file", path)) if !path.is_empty() => Ok(Configured::File(FileSender::new(path))),
            Some(("webhook", url)) => Ok(Configured::Webhook(WebhookSender::new(url, token)?)),
            _ => Err(SmsError::Config(format!("{spec:?}: expected log, file:PATH, webhook:URL or memory"))),
        }
    }

    /// From `CITYGRID_SMS_SENDER` and `CITYGRID_SMS_WEBHOOK_TOKEN`.
    pub fn from_env() -> Result<Configured, SmsError> {
        let spec = std::env::var(SENDER_VAR).unwrap_or_default();
        Configured::parse(&spec, std::env::var(WEBHOOK_TOKEN_VAR).ok())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Configured::Log(_) => "log",
            Configured::File(_) => "file",
            Configured::Webhook(_) => "webhook",
            Configured::Memory(_) => "memory",
        }
    }
}

impl CodeSender for Configured {
    async fn send(&self, msg: &Message) -> Result<(), SmsError> {
        match self {
            Configured::Log(s) => s.send(msg).await,
            Configured::File(s) => s.send(msg).await,
            Configured::Webhook(s) => s.send(msg).await,
            Configured::Memory(s) => s.send(msg).await,
        }
    }
}

static SENDER: OnceLock<Result<Configured, String>> = OnceLock::new();

/// The process's sender, configured from the environment on first use.
pub fn sender() -> Result<&'static Configured, SmsError> {
    SENDER
        .get_or_init(|| Configured::from_env().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| SmsError::Config(e.clone()))
}

/// Choose the sender in code (tests, embedding) before the first code is sent. `Ok` if it is
/// now the sender, or if a sender of the same kind already was; `Err` naming the sender in
/// place otherwise.
pub fn install(sender: Configured) -> Result<(), String> {
    let name = sender.name();
    let _ = SENDER.set(Ok(sender));
    match SENDER.get() {
        Some(Ok(s)) if s.name() == name => Ok(()),
        Some(Ok(s)) => Err(format!("the {} sender is already in place", s.name())),
        Some(Err(e)) => Err(e.clone()),
        None => Err("no sender".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_configuration() {
        assert_eq!(Configured::parse("", None).map(|s| s.name()).ok(), Some("log"));
        assert_eq!(Configured::parse("log", None).map(|s| s.name()).ok(), Some("log"));
        assert_eq!(Configured::parse("memory", None).map(|s| s.name()).ok(), Some("memory"));
        assert_eq!(Configured::parse("file:/tmp/x.jsonl", None).map(|s| s.name()).ok(), Some("file"));
        assert_eq!(
            Configured::parse("webhook:http://127.0.0.1:9/sms", Some("t".into())).map(|s| s.name()).ok(),
            Some("webhook")
        );
        for bad in ["sms", "file:", "webhook:", "webhook:ftp://x/", "webhook:not a url"] {
            assert!(Configured::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_text_carries_the_code() {
        let m = Message::sign_in_code("13800000001", "042817", 5);
        assert!(m.text.contains("042817") && m.text.contains("5分钟"));
    }
}
