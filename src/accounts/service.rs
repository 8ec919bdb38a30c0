//! Account operations shared by the web pages and the CLI. Each runs in one
//! transaction and writes its audit row there.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::Duration;

use super::models::{self, NewUser, Role, Roles, User, UserChanges};
use crate::audit::{self, Actor};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};

pub const MIN_PASSWORD_LEN: usize = 10;
/// Failures per account (or per address) allowed inside the window before logins wait.
pub const ACCOUNT_FAILURE_LIMIT: usize = 5;
pub const ADDRESS_FAILURE_LIMIT: usize = 30;
pub const THROTTLE_WINDOW_MINUTES: i64 = 15;

pub fn hash_password(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2: {e}")))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// Verified against when the account does not exist, so both cases take as long.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password("not-a-real-password-0000").unwrap_or_default());

/// What a person types to create an account.
#[derive(Debug, Clone, Default)]
pub struct UserInput {
    pub email: String,
    pub name: String,
    pub password: String,
    pub roles: Vec<Role>,
}

pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn validate_email(email: &str) -> AppResult<()> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if ok { Ok(()) } else { Err(AppError::Validation("Email không hợp lệ.".into())) }
}

pub fn validate_password(password: &str) -> AppResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AppError::Validation(format!("Mật khẩu phải có ít nhất {MIN_PASSWORD_LEN} ký tự.")));
    }
    Ok(())
}

pub fn validate_name(name: &str) -> AppResult<()> {
    if name.trim().is_empty() || name.chars().count() > 120 {
        return Err(AppError::Validation("Vui lòng nhập họ tên (tối đa 120 ký tự).".into()));
    }
    Ok(())
}

/// Creates an account. Fails with a Vietnamese message when the e-mail is taken.
pub fn create_user(conn: &mut DbConn, actor: &Actor, input: &UserInput) -> AppResult<User> {
    let email = normalise_email(&input.email);
    validate_email(&email)?;
    validate_name(&input.name)?;
    validate_password(&input.password)?;
    if input.roles.is_empty() {
        return Err(AppError::Validation("Chọn ít nhất một vai trò.".into()));
    }
    let hash = hash_password(&input.password)?;
    let roles = Roles::from_slice(&input.roles).stored();
    crate::db::tx(conn, |conn| {
        if models::find_by_email(conn, &email)?.is_some() {
            return Err(AppError::Validation("Email này đã được dùng cho một tài khoản khác.".into()));
        }
        let t = now();
        let user = models::insert(
            conn,
            &NewUser {
                email: &email,
                name: input.name.trim(),
                password_hash: &hash,
                roles: &roles,
                disabled: false,
                session_epoch: 0,
                created_at: t,
                updated_at: t,
                kind: super::models::UserKind::Staff.code(),
                phone: None,
                email_verified_at: Some(t),
            },
        )?;
        audit::record(conn, actor, "user", user.id, "create", None, Some(user.audit_view()))?;
        Ok(user)
    })
}

/// First run: creates the first admin, only while no account exists at all.
pub fn setup_first_admin(conn: &mut DbConn, email: &str, name: &str, password: &str) -> AppResult<User> {
    crate::db::tx(conn, |conn| {
        if models::count_staff(conn)? > 0 {
            return Err(AppError::NotFound);
        }
        let input = UserInput {
            email: email.to_string(),
            name: name.to_string(),
            password: password.to_string(),
            roles: vec![Role::Admin],
        };
        create_user(conn, &Actor::system("setup"), &input)
    })
}

/// Why a login was refused. The messages never tell whether the account exists.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    Invalid,
    Disabled,
    Throttled { minutes: i64 },
}

impl LoginError {
    pub fn message(&self) -> String {
        match self {
            LoginError::Invalid => "Email hoặc mật khẩu không đúng.".into(),
            LoginError::Disabled => "Tài khoản này đã bị khóa. Vui lòng liên hệ quản trị viên.".into(),
            LoginError::Throttled { minutes } => {
                format!("Bạn đã đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {minutes} phút.")
            }
        }
    }
}

pub fn throttle_wait(conn: &mut DbConn, key: &str, limit: usize) -> AppResult<Option<i64>> {
    let t = now();
    let window = Duration::minutes(THROTTLE_WINDOW_MINUTES);
    let failures = models::login_failures_since(conn, key, t - window)?;
    if failures.len() < limit {
        return Ok(None);
    }
    // Wait until the oldest failure that still counts leaves the window.
    let release = failures[failures.len() - limit] + window;
    let secs = (release - t).num_seconds().max(1);
    Ok(Some((secs + 59) / 60))
}

/// Checks an e-mail and password, applying throttling per account and per address.
pub fn authenticate(
    conn: &mut DbConn,
    email: &str,
    password: &str,
    address: &str,
) -> AppResult<Result<User, LoginError>> {
    let email = normalise_email(email);
    let account_key = format!("account:{email}");
    let address_key = format!("address:{address}");
    let wait = [
        throttle_wait(conn, &account_key, ACCOUNT_FAILURE_LIMIT)?,
        throttle_wait(conn, &address_key, ADDRESS_FAILURE_LIMIT)?,
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(minutes) = wait {
        return Ok(Err(LoginError::Throttled { minutes }));
    }
    let user = models::find_by_email(conn, &email)?;
    let verified = match &user {
        Some(u) => verify_password(&u.password_hash, password),
        None => {
            verify_password(&DUMMY_HASH, password);
            false
        }
    };
    let t = now();
    match user {
        Some(user) if verified => {
            if user.disabled {
                return Ok(Err(LoginError::Disabled));
            }
            crate::db::tx(conn, |conn| {
                models::clear_login_failures(conn, &account_key)?;
                models::prune_login_failures(conn, t - Duration::days(1))?;
                let user =
                    models::update(conn, user.id, &UserChanges { last_login_at: Some(t), ..Default::default() })?;
                audit::record(conn, &Actor::user(user.id, &user.email), "user", user.id, "login", None, None)?;
                Ok(Ok(user))
            })
        }
        _ => {
            crate::db::tx(conn, |conn| {
                models::record_login_failure(conn, &account_key, t)?;
                models::record_login_failure(conn, &address_key, t)
            })?;
            Ok(Err(LoginError::Invalid))
        }
    }
}

fn ensure_admin_remains(conn: &mut DbConn, user: &User, next_roles: Roles, next_disabled: bool) -> AppResult<()> {
    let loses_admin =
        user.roles().has(Role::Admin) && !user.disabled && (!next_roles.has(Role::Admin) || next_disabled);
    if loses_admin && models::enabled_admins(conn)?.iter().all(|a| a.id == user.id) {
        return Err(AppError::Validation(
            "Phải còn ít nhất một quản trị viên đang hoạt động; không thể gỡ quyền hoặc khóa tài khoản này.".into(),
        ));
    }
    Ok(())
}

/// Sets a user's name and roles.
pub fn update_profile(conn: &mut DbConn, actor: &Actor, id: i64, name: &str, roles: &[Role]) -> AppResult<User> {
    validate_name(name)?;
    if roles.is_empty() {
        return Err(AppError::Validation("Chọn ít nhất một vai trò.".into()));
    }
    let next = Roles::from_slice(roles);
    crate::db::tx(conn, |conn| {
        let user = models::find(conn, id)?;
        ensure_admin_remains(conn, &user, next, user.disabled)?;
        let stored = next.stored();
        let updated = models::update(
            conn,
            id,
            &UserChanges {
                name: Some(name.trim()),
                roles: Some(&stored),
                updated_at: Some(now()),
                ..Default::default()
            },
        )?;
        audit::record(conn, actor, "user", id, "update", Some(user.audit_view()), Some(updated.audit_view()))?;
        Ok(updated)
    })
}

/// Disables or re-enables an account; disabling ends its sessions at once.
pub fn set_disabled(conn: &mut DbConn, actor: &Actor, id: i64, disabled: bool) -> AppResult<User> {
    crate::db::tx(conn, |conn| {
        let user = models::find(conn, id)?;
        if disabled && actor.user_id == Some(id) {
            return Err(AppError::Validation("Bạn không thể tự khóa tài khoản của mình.".into()));
        }
        ensure_admin_remains(conn, &user, user.roles(), disabled)?;
        let updated = models::update(
            conn,
            id,
            &UserChanges {
                disabled: Some(disabled),
                session_epoch: disabled.then_some(user.session_epoch + 1),
                updated_at: Some(now()),
                ..Default::default()
            },
        )?;
        let action = if disabled { "disable" } else { "enable" };
        audit::record(conn, actor, "user", id, action, Some(user.audit_view()), Some(updated.audit_view()))?;
        Ok(updated)
    })
}

/// An admin sets a new password for someone; their sessions end.
pub fn reset_password(conn: &mut DbConn, actor: &Actor, id: i64, password: &str) -> AppResult<User> {
    validate_password(password)?;
    let hash = hash_password(password)?;
    crate::db::tx(conn, |conn| {
        let user = models::find(conn, id)?;
        let updated = models::update(
            conn,
            id,
            &UserChanges {
                password_hash: Some(&hash),
                session_epoch: Some(user.session_epoch + 1),
                updated_at: Some(now()),
                ..Default::default()
            },
        )?;
        audit::record(conn, actor, "user", id, "reset_password", None, None)?;
        Ok(updated)
    })
}

/// A user changes their own password after proving the current one. Other sessions end;
/// the caller refreshes the current one with the returned epoch.
pub fn change_own_password(conn: &mut DbConn, id: i64, current: &str, new: &str, confirm: &str) -> AppResult<User> {
    let user = models::find(conn, id)?;
    if !verify_password(&user.password_hash, current) {
        return Err(AppError::Validation("Mật khẩu hiện tại không đúng.".into()));
    }
    if new != confirm {
        return Err(AppError::Validation("Mật khẩu nhập lại không khớp.".into()));
    }
    validate_password(new)?;
    let hash = hash_password(new)?;
    crate::db::tx(conn, |conn| {
        let updated = models::update(
            conn,
            id,
            &UserChanges {
                password_hash: Some(&hash),
                session_epoch: Some(user.session_epoch + 1),
                updated_at: Some(now()),
                ..Default::default()
            },
        )?;
        audit::record(conn, &Actor::user(id, &user.email), "user", id, "change_password", None, None)?;
        Ok(updated)
    })
}

/// The hourly clean-up of login failures: only the throttle window's count, and a
/// day is plenty. Without it, failures from addresses that never log in again (a
/// password-guessing run from many addresses) would stay forever.
pub const PRUNE_JOB: &str = "accounts.prune_login_failures";

pub async fn prune_job(ctx: crate::worker::runner::JobCtx) -> Result<(), String> {
    let removed = ctx.db(|conn| Ok(models::prune_login_failures(conn, now() - Duration::days(1))?)).await?;
    if removed > 0 {
        tracing::info!(removed, "pruned old login failures");
    }
    Ok(())
}
