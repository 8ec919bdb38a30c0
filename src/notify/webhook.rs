//! Webhook delivery: the three body and signature formats a webhook may choose, the
//! destination guard, and one HTTP attempt.
//!
//! - `casso_legacy`: header `secure-token`, body `{"error":0,"data":[{id, tid, …}]}`.
//! - `casso_v2`: body `{"error":0,"data":{id, reference, …}}`, header
//!   `X-Casso-Signature: t=<unix ms>,v1=<hex HMAC-SHA512(key, t + "." + canonical body)>`,
//!   where the canonical body has every object's keys sorted, compact separators.
//! - `standard` (standardwebhooks.com): headers `webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64 HMAC-SHA256(base64-decoded secret, id.timestamp.body)>`
//!   with a `whsec_` secret.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{NaiveDateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use crate::banking::models::Transaction;
use crate::business::models::BankAccount;

pub const FORMATS: &[(&str, &str)] = &[
    ("casso_v2", "Casso V2 (X-Casso-Signature, HMAC-SHA512)"),
    ("casso_legacy", "Casso cũ (header secure-token)"),
    ("standard", "Standard Webhooks (webhook-signature)"),
];

pub fn format_label(code: &str) -> &'static str {
    FORMATS.iter().find(|(c, _)| *c == code).map(|(_, l)| *l).unwrap_or("?")
}

/// A new signing secret in the format's own style.
pub fn new_secret(format: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    match format {
        "standard" => format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
        _ => hex::encode(bytes),
    }
}

/// JSON with every object's keys sorted and no spaces: what Casso V2 signs.
pub fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", serde_json::Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

pub fn casso_v2_signature(key: &str, t_ms: i64, body: &serde_json::Value) -> String {
    let mut mac =
        <Hmac<Sha512> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(format!("{t_ms}.{}", canonical(body)).as_bytes());
    format!("t={t_ms},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn standard_signature(secret: &str, id: &str, ts: i64, body: &str) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
}

fn local(t: NaiveDateTime) -> String {
    Utc.from_utc_datetime(&t).with_timezone(&crate::fmt::TZ).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The V2 record of a transaction.
pub fn v2_data(t: &Transaction, a: &BankAccount) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "reference": t.bank_tx_id,
        "description": t.description,
        "amount": t.amount,
        "runningBalance": t.balance,
        "transactionDateTime": local(t.occurred_at),
        "accountNumber": a.account_number,
        "bankName": a.bank_name,
        "bankAbbreviation": a.bank_code,
        "virtualAccountNumber": t.virtual_account,
        "virtualAccountName": t.virtual_account_name,
        "counterAccountName": t.counter_name,
        "counterAccountNumber": t.counter_account,
        "counterAccountBankId": t.counter_bank_id,
        "counterAccountBankName": t.counter_bank_name,
    })
}

/// The legacy record of a transaction.
pub fn legacy_data(t: &Transaction, a: &BankAccount) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "tid": t.bank_tx_id,
        "description": t.description,
        "amount": t.amount,
        "cusum_balance": t.balance,
        "when": local(t.occurred_at),
        "bank_sub_acc_id": a.account_number,
        "subAccId": a.account_number,
        "virtualAccount": t.virtual_account,
        "virtualAccountName": t.virtual_account_name,
        "corresponsiveName": t.counter_name,
        "corresponsiveAccount": t.counter_account,
        "corresponsiveBankId": t.counter_bank_id,
        "corresponsiveBankName": t.counter_bank_name,
    })
}

/// A signed request, ready to send.
#[derive(Debug, Clone)]
pub struct Signed {
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// Builds the body and headers of one delivery. `message_id` is stable per delivery,
/// so a receiver can de-duplicate retries.
pub fn sign(format: &str, secret: &str, message_id: &str, t: &Transaction, a: &BankAccount, now_ms: i64) -> Signed {
    match format {
        "casso_legacy" => Signed {
            body: serde_json::json!({ "error": 0, "data": [legacy_data(t, a)] }).to_string(),
            headers: vec![("secure-token".into(), secret.to_string())],
        },
        "standard" => {
            let ts = now_ms / 1000;
            let body = serde_json::json!({ "type": "transaction.created", "timestamp": ts, "data": v2_data(t, a) })
                .to_string();
            let signature = standard_signature(secret, message_id, ts, &body).unwrap_or_default();
            Signed {
                body,
                headers: vec![
                    ("webhook-id".into(), message_id.to_string()),
                    ("webhook-timestamp".into(), ts.to_string()),
                    ("webhook-signature".into(), signature),
                ],
            }
        }
        _ => {
            let value = serde_json::json!({ "error": 0, "data": v2_data(t, a) });
            let signature = casso_v2_signature(secret, now_ms, &value);
            Signed { body: canonical(&value), headers: vec![("X-Casso-Signature".into(), signature)] }
        }
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Refuses a destination that is not http(s) or that resolves to a private, loopback or
/// link-local address (unless the configuration allows them).
pub async fn check_destination(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| "Địa chỉ webhook không hợp lệ.".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") || url.len() > 500 {
        return Err("Địa chỉ webhook phải bắt đầu bằng http:// hoặc https://.".into());
    }
    let host = parsed.host_str().ok_or("Địa chỉ webhook thiếu tên máy.")?.to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    if allow_private {
        return Ok(());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| format!("Không tìm thấy máy chủ {host}."))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() || addrs.iter().any(|ip| is_private(*ip)) {
        return Err("Không gửi webhook đến địa chỉ nội bộ (loopback, mạng riêng).".into());
    }
    Ok(())
}

/// What one attempt got.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<u16>,
    pub duration_ms: i64,
    pub excerpt: String,
    pub retry_after: Option<Duration>,
    pub error: Option<String>,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One POST with a 10-second budget.
pub async fn post(http: &reqwest::Client, url: &str, signed: &Signed) -> Attempt {
    let started = Instant::now();
    let mut req = http
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .body(signed.body.clone());
    for (k, v) in &signed.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp.text().await.unwrap_or_default();
            Attempt {
                status: Some(status),
                duration_ms: started.elapsed().as_millis() as i64,
                excerpt: text.chars().take(300).collect(),
                retry_after,
                error: None,
            }
        }
        Err(e) => Attempt {
            status: None,
            duration_ms: started.elapsed().as_millis() as i64,
            excerpt: String::new(),
            retry_after: None,
            error: Some(e.to_string().chars().take(300).collect()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_published_vector() {
        // From the Standard Webhooks specification's reference tests.
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    #[test]
    fn casso_v2_signs_the_sorted_compact_body() {
        let body =
            serde_json::json!({ "error": 0, "data": { "z": 1, "a": { "y": [2, {"c": 3, "b": 4}], "x": "ĐỒNG" } } });
        assert_eq!(canonical(&body), r#"{"data":{"a":{"x":"ĐỒNG","y":[2,{"b":4,"c":3}]},"z":1},"error":0}"#);
        let key = "mgExMrjj4i7a1p8Cs6LmFbpCd8lbw4sSX4LZXPag7TKazeIogtR90tvWYTkwQbvs";
        let sig = casso_v2_signature(key, 1727948258788, &body);
        // Recomputed independently: HMAC-SHA512 over "t.canonical".
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(format!("1727948258788.{}", canonical(&body)).as_bytes());
        assert_eq!(sig, format!("t=1727948258788,v1={}", hex::encode(mac.finalize().into_bytes())));
    }

    #[test]
    fn private_destinations_are_named() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))), "{ip}");
        }
        for ip in ["8.8.8.8", "203.113.1.1", "2001:4860:4860::8888"] {
            assert!(!is_private(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))), "{ip}");
        }
    }
}
