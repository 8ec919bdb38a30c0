//! Telegram: a merchant's bot writes each new transaction to its chats
//! (`POST {api}/bot<token>/sendMessage`).

use std::time::{Duration, Instant};

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Ok,
    /// The chat cannot be written to (bot blocked or removed, chat unknown): no retry.
    Recipient(String),
    /// 429: wait as Telegram says.
    Later(chrono::Duration, String),
    /// A wrong token (401/404) or anything else: the retry schedule.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct SendResult {
    pub sent: Sent,
    pub code: Option<i64>,
    pub duration_ms: i64,
    pub excerpt: String,
}

/// A bot token as BotFather gives it: `<digits>:<35 url-safe characters>`.
pub fn token_ok(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, rest)) => {
            !id.is_empty()
                && id.len() <= 20
                && id.chars().all(|c| c.is_ascii_digit())
                && (20..=100).contains(&rest.len())
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }
        None => false,
    }
}

/// A chat id: a number (negative for groups) or `@channelname`.
pub fn chat_ok(chat: &str) -> bool {
    let digits = chat.strip_prefix('-').unwrap_or(chat);
    (!digits.is_empty() && digits.len() <= 20 && digits.chars().all(|c| c.is_ascii_digit()))
        || chat
            .strip_prefix('@')
            .is_some_and(|n| (5..=32).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

pub async fn send(http: &reqwest::Client, api: &str, token: &str, chat: &str, text: &str) -> SendResult {
    let started = Instant::now();
    let resp = http
        .post(format!("{api}/bot{token}/sendMessage"))
        .timeout(Duration::from_secs(10))
        .json(&serde_json::json!({ "chat_id": chat, "text": text, "disable_web_page_preview": true }))
        .send()
        .await;
    let elapsed = started.elapsed().as_millis() as i64;
    let resp = match resp {
        Ok(r) => r,
        // The error text would carry the URL, and the URL the token: say less.
        Err(e) => {
            let kind = if e.is_timeout() { "hết thời gian chờ" } else { "không kết nối được" };
            return SendResult {
                sent: Sent::Failed(format!("Telegram: {kind}")),
                code: None,
                duration_ms: elapsed,
                excerpt: String::new(),
            };
        }
    };
    let status = i64::from(resp.status().as_u16());
    let body = resp.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let description = v["description"].as_str().unwrap_or("").chars().take(200).collect::<String>();
    let sent = if v["ok"].as_bool() == Some(true) {
        Sent::Ok
    } else {
        match status {
            429 => {
                let secs = v["parameters"]["retry_after"].as_i64().unwrap_or(30).clamp(1, 86_400);
                Sent::Later(chrono::Duration::seconds(secs), format!("Telegram 429: {description}"))
            }
            403 => Sent::Recipient(format!("Bot không được gửi vào cuộc trò chuyện này: {description}")),
            400 if description.to_lowercase().contains("chat not found") => {
                Sent::Recipient("Không tìm thấy cuộc trò chuyện (chat id sai hoặc chưa nhắn cho bot)".into())
            }
            _ => Sent::Failed(format!("Telegram {status}: {description}")),
        }
    };
    SendResult { sent, code: Some(status), duration_ms: elapsed, excerpt: body.chars().take(300).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_chats() {
        assert!(token_ok("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
        assert!(!token_ok("123456789"));
        assert!(!token_ok("abc:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
        assert!(!token_ok("123:AAH/../../x?y=zzzzzzzzzzzzzzzzzzzzz"));
        assert!(chat_ok("-1001234567890") && chat_ok("987654") && chat_ok("@phoviet_thu"));
        assert!(!chat_ok("") && !chat_ok("-") && !chat_ok("@ab") && !chat_ok("12a"));
    }
}
