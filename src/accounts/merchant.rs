//! Merchant self-service accounts: sign-up, e-mail verification, password reset by
//! mail, the phone number that finishes an account, and sign-in through an OpenID
//! provider.
//!
//! Rules: a mailed link carries a random token; only its keyed hash is stored, it
//! expires, and it works once (`used_at` is set with a conditional update, so two
//! clicks at the same moment cannot both succeed). Requests that send mail are
//! throttled like logins. An OpenID identity joins an existing account only when the
//! provider says the e-mail is verified, and never a staff account.

use chrono::Duration;

use super::models::{self, NewUser, User, UserChanges, UserKind};
use super::service::{
    ADDRESS_FAILURE_LIMIT, hash_password, normalise_email, throttle_wait, validate_email, validate_name,
    validate_password,
};
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::mail::outbound::{OutgoingMail, queue_mail};
use crate::secrets::hashed::{self, Presented};

pub const VERIFY_EMAIL: &str = "verify_email";
pub const RESET_PASSWORD: &str = "reset_password";
/// How long a verification link works.
pub const VERIFY_HOURS: i64 = 48;
/// How long a password-reset link works.
pub const RESET_MINUTES: i64 = 60;
/// Mail-sending requests (sign-up, reset, resend) per e-mail address in the window.
pub const MAIL_REQUESTS_PER_EMAIL: usize = 5;

/// The stored form of a password that can never match: accounts made through an
/// OpenID provider have no password until they set one through a reset link.
const NO_PASSWORD: &str = "!no-password";

/// A new random token for a mailed link (URL-safe, 256 bits).
pub fn new_link_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The keyed hash stored for a new link token: a database leak alone opens no link.
pub fn token_hash(config: &Config, token: &str) -> String {
    config.keyring().hash(hashed::LINK_TOKEN, token)
}

/// A link token as presented (in a URL, by a person), to be found under the current
/// or an old secret key.
pub fn presented_link(config: &Config, token: &str) -> Presented {
    config.keyring().presented(hashed::LINK_TOKEN, token.trim())
}

/// A Vietnamese phone number in E.164 (`+84912345678`), from what people type:
/// `0912 345 678`, `0912.345.678`, `+84 912 345 678`, `84912345678`.
pub fn normalise_phone(input: &str) -> AppResult<String> {
    let invalid = || {
        AppError::Validation(
            "Số điện thoại không hợp lệ. Nhập số Việt Nam, ví dụ 0912 345 678 hoặc +84912345678.".into(),
        )
    };
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(AppError::Validation("Vui lòng nhập số điện thoại.".into()));
    }
    if trimmed.chars().count() > 32 {
        return Err(invalid());
    }
    // "84912345678" without the plus is how many people write it; the library reads
    // it as a national number otherwise.
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let candidate = if !trimmed.starts_with('+') && digits.starts_with("84") && digits.len() == 11 {
        format!("+{digits}")
    } else {
        trimmed.to_string()
    };
    let number = phonenumber::parse(Some(phonenumber::country::Id::VN), &candidate).map_err(|_| invalid())?;
    if number.code().value() != 84 || !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// How a phone number is shown: `0912 345 678`.
pub fn display_phone(e164: &str) -> String {
    match phonenumber::parse(None, e164) {
        Ok(n) => n.format().mode(phonenumber::Mode::National).to_string(),
        Err(_) => e164.to_string(),
    }
}

/// What a person types to sign up.
#[derive(Debug, Clone, Default)]
pub struct SignupInput {
    pub email: String,
    pub name: String,
    pub phone: String,
    pub password: String,
    pub confirm: String,
}

/// Refuses a mail-sending request when this address or e-mail asked too often; the
/// attempt itself counts (so a flood is slowed even when every attempt is refused).
fn throttle_mail_request(conn: &mut DbConn, email: &str, address: &str) -> AppResult<()> {
    let email_key = format!("mail-request:{email}");
    let address_key = format!("mail-request-address:{address}");
    let wait = [
        throttle_wait(conn, &email_key, MAIL_REQUESTS_PER_EMAIL)?,
        throttle_wait(conn, &address_key, ADDRESS_FAILURE_LIMIT)?,
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(minutes) = wait {
        return Err(AppError::Validation(format!(
            "Bạn đã gửi yêu cầu quá nhiều lần. Vui lòng thử lại sau {minutes} phút."
        )));
    }
    let t = now();
    crate::db::tx(conn, |conn| {
        models::record_login_failure(conn, &email_key, t)?;
        models::record_login_failure(conn, &address_key, t)
    })?;
    Ok(())
}

/// Issues a single-use link for `purpose` (older unused ones of the same purpose stop
/// working) and returns its URL. Runs inside the caller's transaction.
fn issue_link(conn: &mut DbConn, config: &Config, user: &User, purpose: &str, valid: Duration) -> AppResult<String> {
    let token = new_link_token();
    let t = now();
    models::retire_tokens(conn, user.id, purpose, t)?;
    models::insert_token(conn, user.id, purpose, &token_hash(config, &token), t + valid, t)?;
    let path = match purpose {
        VERIFY_EMAIL => "/verify-email",
        _ => "/password/reset",
    };
    Ok(format!("{}{path}?token={token}", config.base_url))
}

fn queue_verification(conn: &mut DbConn, config: &Config, user: &User) -> AppResult<()> {
    let link = issue_link(conn, config, user, VERIFY_EMAIL, Duration::hours(VERIFY_HOURS))?;
    let text = format!(
        "Xin chào {name},\n\nCảm ơn bạn đã đăng ký hubgate. Vui lòng xác nhận địa chỉ email của bạn bằng liên kết \
         dưới đây (có hiệu lực trong {VERIFY_HOURS} giờ, chỉ dùng được một lần):\n\n{link}\n\nNếu bạn không đăng ký, \
         hãy bỏ qua thư này.\n\nhubgate",
        name = user.name
    );
    queue_mail(
        conn,
        &config.outbound,
        &Actor::system("signup"),
        &OutgoingMail::simple(vec![user.email.clone()], "Xác nhận email đăng ký hubgate", text),
    )?;
    Ok(())
}

/// Creates a merchant account (unverified) and queues the verification mail.
pub fn signup(conn: &mut DbConn, config: &Config, input: &SignupInput, address: &str) -> AppResult<User> {
    let email = normalise_email(&input.email);
    validate_email(&email)?;
    validate_name(&input.name)?;
    let phone = normalise_phone(&input.phone)?;
    if input.password != input.confirm {
        return Err(AppError::Validation("Mật khẩu nhập lại không khớp.".into()));
    }
    validate_password(&input.password)?;
    throttle_mail_request(conn, &email, address)?;
    let hash = hash_password(&input.password)?;
    crate::db::tx(conn, |conn| {
        if models::find_by_email(conn, &email)?.is_some() {
            return Err(AppError::Validation(
                "Email này đã có tài khoản. Hãy đăng nhập, hoặc dùng \"Quên mật khẩu\" nếu bạn không nhớ mật khẩu."
                    .into(),
            ));
        }
        let t = now();
        let user = insert_merchant(conn, &email, input.name.trim(), &hash, Some(&phone), None, t)?;
        audit::record(
            conn,
            &Actor::user(user.id, &user.email),
            "user",
            user.id,
            "signup",
            None,
            Some(user.audit_view()),
        )?;
        queue_verification(conn, config, &user)?;
        Ok(user)
    })
}

/// A ready merchant account (verified, with a phone), as the demo data and support
/// tooling make them; no mail is sent.
pub fn create_ready_account(
    conn: &mut DbConn,
    email: &str,
    name: &str,
    phone: &str,
    password: &str,
) -> AppResult<User> {
    let email = normalise_email(email);
    validate_email(&email)?;
    validate_name(name)?;
    validate_password(password)?;
    let phone = normalise_phone(phone)?;
    let hash = hash_password(password)?;
    crate::db::tx(conn, |conn| {
        let t = now();
        let user = insert_merchant(conn, &email, name.trim(), &hash, Some(&phone), Some(t), t)?;
        audit::record(conn, &Actor::system("demo-data"), "user", user.id, "create", None, Some(user.audit_view()))?;
        Ok(user)
    })
}

fn insert_merchant(
    conn: &mut DbConn,
    email: &str,
    name: &str,
    hash: &str,
    phone: Option<&str>,
    verified_at: Option<chrono::NaiveDateTime>,
    t: chrono::NaiveDateTime,
) -> AppResult<User> {
    Ok(models::insert(
        conn,
        &NewUser {
            email,
            name,
            password_hash: hash,
            roles: "",
            disabled: false,
            session_epoch: 0,
            created_at: t,
            updated_at: t,
            kind: UserKind::Merchant.code(),
            phone,
            email_verified_at: verified_at,
        },
    )?)
}

/// Sends a new verification link to a signed-in account that is not verified yet.
pub fn resend_verification(conn: &mut DbConn, config: &Config, user_id: i64, address: &str) -> AppResult<()> {
    let user = models::find(conn, user_id)?;
    if user.email_verified_at.is_some() {
        return Err(AppError::Validation("Email của bạn đã được xác nhận.".into()));
    }
    throttle_mail_request(conn, &user.email, address)?;
    crate::db::tx(conn, |conn| queue_verification(conn, config, &user))
}

/// Why a mailed link did not work.
fn link_refused() -> AppError {
    AppError::Validation(
        "Liên kết không hợp lệ, đã hết hạn hoặc đã được dùng. Vui lòng yêu cầu một liên kết mới.".into(),
    )
}

/// The account token of `purpose` a link carries, whatever its state.
fn find_link(
    conn: &mut DbConn,
    config: &Config,
    purpose: &str,
    token: &str,
) -> AppResult<Option<models::AccountToken>> {
    Ok(presented_link(config, token).find(
        conn,
        |conn, h| models::find_token(conn, purpose, h),
        |conn, row, old, new| models::rehash_token(conn, row.id, old, new),
    )?)
}

/// Consumes a link token of `purpose`, returning its account.
fn consume(conn: &mut DbConn, config: &Config, purpose: &str, token: &str) -> AppResult<User> {
    let row = find_link(conn, config, purpose, token)?.ok_or_else(link_refused)?;
    let t = now();
    if row.used_at.is_some() || row.expires_at <= t || !models::use_token(conn, row.id, t)? {
        return Err(link_refused());
    }
    Ok(models::find(conn, row.user_id)?)
}

/// Whether a link token is still usable (the reset form checks before asking for a password).
pub fn link_is_usable(conn: &mut DbConn, config: &Config, purpose: &str, token: &str) -> AppResult<bool> {
    let row = find_link(conn, config, purpose, token)?;
    Ok(row.is_some_and(|r| r.used_at.is_none() && r.expires_at > now()))
}

/// Opens a verification link: the account's e-mail is verified.
pub fn verify_email(conn: &mut DbConn, config: &Config, token: &str) -> AppResult<User> {
    crate::db::tx(conn, |conn| {
        let user = consume(conn, config, VERIFY_EMAIL, token)?;
        let t = now();
        let updated = models::update(
            conn,
            user.id,
            &UserChanges { email_verified_at: Some(t), updated_at: Some(t), ..Default::default() },
        )?;
        audit::record(conn, &Actor::user(user.id, &user.email), "user", user.id, "verify_email", None, None)?;
        Ok(updated)
    })
}

/// "Quên mật khẩu": mails a reset link when the account exists. The caller shows the
/// same answer either way, so the form tells nobody which e-mails have accounts.
pub fn request_password_reset(conn: &mut DbConn, config: &Config, email: &str, address: &str) -> AppResult<()> {
    let email = normalise_email(email);
    validate_email(&email)?;
    throttle_mail_request(conn, &email, address)?;
    let Some(user) = models::find_by_email(conn, &email)? else {
        return Ok(());
    };
    if user.disabled {
        return Ok(());
    }
    crate::db::tx(conn, |conn| {
        let link = issue_link(conn, config, &user, RESET_PASSWORD, Duration::minutes(RESET_MINUTES))?;
        let text = format!(
            "Xin chào {name},\n\nChúng tôi nhận được yêu cầu đặt lại mật khẩu cho tài khoản hubgate {email}. \
             Đặt mật khẩu mới tại liên kết dưới đây (có hiệu lực trong {RESET_MINUTES} phút, chỉ dùng được một \
             lần):\n\n{link}\n\nNếu bạn không yêu cầu, hãy bỏ qua thư này; mật khẩu của bạn không thay đổi.\n\nhubgate",
            name = user.name,
            email = user.email
        );
        queue_mail(
            conn,
            &config.outbound,
            &Actor::system("password-reset"),
            &OutgoingMail::simple(vec![user.email.clone()], "Đặt lại mật khẩu hubgate", text),
        )?;
        audit::record(conn, &Actor::system("password-reset"), "user", user.id, "request_reset", None, None)?;
        Ok(())
    })
}

/// Sets a new password from a reset link. Every session of the account ends; the
/// mailbox was proven, so the e-mail counts as verified too.
pub fn reset_password_with_link(
    conn: &mut DbConn,
    config: &Config,
    token: &str,
    password: &str,
    confirm: &str,
) -> AppResult<User> {
    if password != confirm {
        return Err(AppError::Validation("Mật khẩu nhập lại không khớp.".into()));
    }
    validate_password(password)?;
    let hash = hash_password(password)?;
    crate::db::tx(conn, |conn| {
        let user = consume(conn, config, RESET_PASSWORD, token)?;
        let t = now();
        let updated = models::update(
            conn,
            user.id,
            &UserChanges {
                password_hash: Some(&hash),
                session_epoch: Some(user.session_epoch + 1),
                email_verified_at: Some(user.email_verified_at.unwrap_or(t)),
                updated_at: Some(t),
                ..Default::default()
            },
        )?;
        audit::record(conn, &Actor::user(user.id, &user.email), "user", user.id, "reset_password_by_link", None, None)?;
        Ok(updated)
    })
}

/// Sets the phone number that finishes an account (and lets a merchant edit it).
pub fn set_phone(conn: &mut DbConn, user_id: i64, phone: &str) -> AppResult<User> {
    let phone = normalise_phone(phone)?;
    crate::db::tx(conn, |conn| {
        let user = models::find(conn, user_id)?;
        let updated = models::update(
            conn,
            user_id,
            &UserChanges { phone: Some(&phone), updated_at: Some(now()), ..Default::default() },
        )?;
        audit::record(
            conn,
            &Actor::user(user.id, &user.email),
            "user",
            user.id,
            "set_phone",
            Some(serde_json::json!({ "phone": user.phone })),
            Some(serde_json::json!({ "phone": phone })),
        )?;
        Ok(updated)
    })
}

/// A merchant edits their own name.
pub fn set_name(conn: &mut DbConn, user_id: i64, name: &str) -> AppResult<User> {
    validate_name(name)?;
    crate::db::tx(conn, |conn| {
        let user = models::find(conn, user_id)?;
        let updated = models::update(
            conn,
            user_id,
            &UserChanges { name: Some(name.trim()), updated_at: Some(now()), ..Default::default() },
        )?;
        audit::record(
            conn,
            &Actor::user(user.id, &user.email),
            "user",
            user.id,
            "update",
            Some(user.audit_view()),
            Some(updated.audit_view()),
        )?;
        Ok(updated)
    })
}

/// What an OpenID provider told us about the person, after the ID token was verified.
#[derive(Debug, Clone)]
pub struct OidcIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Finds or creates the account an OpenID identity signs in as.
pub fn oidc_sign_in(conn: &mut DbConn, config: &Config, id: &OidcIdentity) -> AppResult<User> {
    crate::db::tx(conn, |conn| {
        let t = now();
        if let Some(uid) = models::user_of_identity(conn, &id.provider, &id.subject)? {
            let user = models::find(conn, uid)?;
            if user.disabled {
                return Err(AppError::Forbidden("Tài khoản này đã bị khóa. Vui lòng liên hệ hỗ trợ.".into()));
            }
            models::touch_identity(conn, &id.provider, &id.subject, t)?;
            let user = models::update(conn, uid, &UserChanges { last_login_at: Some(t), ..Default::default() })?;
            audit::record(
                conn,
                &Actor::user(uid, &user.email),
                "user",
                uid,
                "login_oidc",
                None,
                Some(serde_json::json!({ "provider": id.provider })),
            )?;
            return Ok(user);
        }
        let email =
            id.email.as_deref().map(normalise_email).filter(|e| validate_email(e).is_ok()).ok_or_else(|| {
                AppError::Validation(
                    "Nhà cung cấp đăng nhập không cho biết email của bạn; hãy đăng ký bằng email.".into(),
                )
            })?;
        let user = match models::find_by_email(conn, &email)? {
            Some(existing) => {
                if existing.kind() == UserKind::Staff {
                    return Err(AppError::Forbidden(
                        "Email này thuộc một tài khoản nhân viên; hãy đăng nhập bằng email và mật khẩu.".into(),
                    ));
                }
                if !id.email_verified {
                    return Err(AppError::Forbidden(
                        "Email này đã có tài khoản, nhưng nhà cung cấp chưa xác nhận email của bạn. Hãy đăng nhập \
                         bằng email và mật khẩu."
                            .into(),
                    ));
                }
                if existing.disabled {
                    return Err(AppError::Forbidden("Tài khoản này đã bị khóa. Vui lòng liên hệ hỗ trợ.".into()));
                }
                let verified = existing.email_verified_at.unwrap_or(t);
                models::update(
                    conn,
                    existing.id,
                    &UserChanges { email_verified_at: Some(verified), last_login_at: Some(t), ..Default::default() },
                )?
            }
            None => {
                let name = id.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&email).to_string();
                let name: String = name.chars().take(120).collect();
                let verified = id.email_verified.then_some(t);
                let user = insert_merchant(conn, &email, &name, NO_PASSWORD, None, verified, t)?;
                audit::record(
                    conn,
                    &Actor::user(user.id, &user.email),
                    "user",
                    user.id,
                    "signup_oidc",
                    None,
                    Some(user.audit_view()),
                )?;
                if verified.is_none() {
                    queue_verification(conn, config, &user)?;
                }
                user
            }
        };
        models::insert_identity(conn, user.id, &id.provider, &id.subject, &email, t)?;
        audit::record(
            conn,
            &Actor::user(user.id, &user.email),
            "user",
            user.id,
            "link_identity",
            None,
            Some(serde_json::json!({ "provider": id.provider })),
        )?;
        Ok(user)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_numbers_are_normalised() {
        for typed in ["0912 345 678", "0912.345.678", "+84912345678", "+84 912 345 678", "84912345678", "(091) 2345678"]
        {
            assert_eq!(normalise_phone(typed).ok().as_deref(), Some("+84912345678"), "{typed}");
        }
        assert_eq!(normalise_phone("0283 8123 456").ok().as_deref(), Some("+842838123456"));
        for bad in ["", "12345", "0912 345 67", "+1 202 555 0143", "09123456789012", "abc"] {
            assert!(normalise_phone(bad).is_err(), "{bad} should be refused");
        }
    }
}
