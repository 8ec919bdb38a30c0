//! Diesel structs and every query of the accounts domain.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{account_tokens, login_failures, user_identities, users};

/// A staff role. Admin passes every role check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Sale,
    Leader,
    Technician,
    Accountant,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Sale, Role::Leader, Role::Technician, Role::Accountant];

    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sale => "sale",
            Role::Leader => "leader",
            Role::Technician => "technician",
            Role::Accountant => "accountant",
        }
    }

    /// The Vietnamese name shown in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Quản trị",
            Role::Sale => "Kinh doanh",
            Role::Leader => "Trưởng nhóm",
            Role::Technician => "Kỹ thuật",
            Role::Accountant => "Kế toán",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.code() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown role `{s}` (expected one of admin, sale, leader, technician, accountant)"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The set of roles one person holds, stored as `admin,sale`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    pub fn from_slice(roles: &[Role]) -> Self {
        Roles(roles.iter().fold(0, |acc, r| acc | r.bit()))
    }

    /// Parses the stored form; unknown codes are ignored (a role removed from the code
    /// must not lock anybody out of the rest of their work).
    pub fn parse_stored(s: &str) -> Self {
        Roles::from_slice(&s.split(',').filter_map(|r| r.parse().ok()).collect::<Vec<_>>())
    }

    pub fn has(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a person with these roles may use something open to `allowed`.
    pub fn allows(self, allowed: &[Role]) -> bool {
        self.has(Role::Admin) || allowed.iter().any(|r| self.has(*r))
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.has(*r))
    }

    pub fn stored(self) -> String {
        self.iter().map(Role::code).collect::<Vec<_>>().join(",")
    }

    pub fn labels(self) -> String {
        self.iter().map(Role::label).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Queryable, Selectable, Identifiable, Debug, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub roles: String,
    pub disabled: bool,
    pub session_epoch: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub last_login_at: Option<NaiveDateTime>,
    pub kind: String,
    pub phone: Option<String>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub email_verified_at: Option<NaiveDateTime>,
}

/// Staff use the hub desk; merchants only the businesses they belong to. A merchant
/// account never passes a staff guard, whatever its roles column says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    Staff,
    Merchant,
}

impl UserKind {
    pub fn code(self) -> &'static str {
        match self {
            UserKind::Staff => "staff",
            UserKind::Merchant => "merchant",
        }
    }

    /// Anything but a known staff marker is a merchant: never widen access by accident.
    pub fn parse_stored(s: &str) -> Self {
        if s == "staff" { UserKind::Staff } else { UserKind::Merchant }
    }
}

impl User {
    pub fn kind(&self) -> UserKind {
        UserKind::parse_stored(&self.kind)
    }

    pub fn roles(&self) -> Roles {
        Roles::parse_stored(&self.roles)
    }

    /// What the audit log keeps of a user (never the hash).
    pub fn audit_view(&self) -> serde_json::Value {
        serde_json::json!({
            "email": self.email,
            "name": self.name,
            "roles": self.roles,
            "disabled": self.disabled,
            "kind": self.kind,
            "phone": self.phone,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a str,
    pub disabled: bool,
    pub session_epoch: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub kind: &'a str,
    pub phone: Option<&'a str>,
    pub email_verified_at: Option<NaiveDateTime>,
}

pub fn count_users(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Staff accounts only: first-run setup looks at these (merchants signing up must not
/// close the door to the first administrator).
pub fn count_staff(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.filter(users::kind.eq(UserKind::Staff.code())).count().get_result(conn)
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<User> {
    users::table.find(id).select(User::as_select()).first(conn)
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<User>> {
    users::table.filter(users::email.eq(email)).select(User::as_select()).first(conn).optional()
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    users::table.order(users::email.asc()).select(User::as_select()).load(conn)
}

/// A staff member as pages name them: no password hash, no merchant accounts.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = users)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub roles: String,
    pub disabled: bool,
}

impl Person {
    pub fn roles(&self) -> Roles {
        Roles::parse_stored(&self.roles)
    }
}

/// Every staff account (disabled ones too: they still name old assignees), by name.
pub fn staff_people(conn: &mut DbConn) -> QueryResult<Vec<Person>> {
    crate::with_conn!(conn, |c| users::table
        .filter(users::kind.eq(UserKind::Staff.code()))
        .order((users::name.asc(), users::id.asc()))
        .select(Person::as_select())
        .load(c))
}

pub fn insert(conn: &mut DbConn, new: &NewUser<'_>) -> QueryResult<User> {
    crate::db::note_users_written();
    diesel::insert_into(users::table).values(new).returning(users::all_columns).get_result::<User>(conn)
}

/// Enabled users holding the admin role.
pub fn enabled_admins(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    let candidates: Vec<User> = users::table
        .filter(users::disabled.eq(false))
        .filter(users::kind.eq(UserKind::Staff.code()))
        .filter(users::roles.like("%admin%"))
        .select(User::as_select())
        .load(conn)?;
    Ok(candidates.into_iter().filter(|u| u.roles().has(Role::Admin)).collect())
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub roles: Option<&'a str>,
    pub disabled: Option<bool>,
    pub session_epoch: Option<i64>,
    pub last_login_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
    pub phone: Option<&'a str>,
    pub email_verified_at: Option<NaiveDateTime>,
}

/// Every change to a user goes through here: the note it leaves makes the signed-in
/// users' cache of this process reload them (see `crate::web::session`).
pub fn update(conn: &mut DbConn, id: i64, changes: &UserChanges<'_>) -> QueryResult<User> {
    crate::db::note_users_written();
    diesel::update(users::table.find(id)).set(changes).returning(users::all_columns).get_result::<User>(conn)
}

pub fn record_login_failure(conn: &mut DbConn, key: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(login_failures::table)
        .values((login_failures::throttle_key.eq(key), login_failures::at.eq(at)))
        .execute(conn)?;
    Ok(())
}

/// Times of the failures for `key` since `since`, oldest first.
pub fn login_failures_since(conn: &mut DbConn, key: &str, since: NaiveDateTime) -> QueryResult<Vec<NaiveDateTime>> {
    login_failures::table
        .filter(login_failures::throttle_key.eq(key))
        .filter(login_failures::at.ge(since))
        .order(login_failures::at.asc())
        .select(login_failures::at)
        .load(conn)
}

pub fn clear_login_failures(conn: &mut DbConn, key: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.filter(login_failures::throttle_key.eq(key))).execute(conn)?;
    Ok(())
}

/// Drops failures too old to matter, so the table stays small.
pub fn prune_login_failures(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(login_failures::table.filter(login_failures::at.lt(before))).execute(conn)
}

/// A mailed single-use link's row (only a keyed hash of the token is stored).
#[derive(Queryable, Debug, Clone)]
pub struct AccountToken {
    pub id: i64,
    pub user_id: i64,
    pub purpose: String,
    pub token_hash: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub expires_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
}

pub fn insert_token(
    conn: &mut DbConn,
    user_id: i64,
    purpose: &str,
    token_hash: &str,
    expires_at: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::user_id.eq(user_id),
            account_tokens::purpose.eq(purpose),
            account_tokens::token_hash.eq(token_hash),
            account_tokens::expires_at.eq(expires_at),
            account_tokens::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find_token(conn: &mut DbConn, purpose: &str, token_hash: &str) -> QueryResult<Option<AccountToken>> {
    account_tokens::table
        .filter(account_tokens::purpose.eq(purpose))
        .filter(account_tokens::token_hash.eq(token_hash))
        .select(account_tokens::all_columns)
        .first(conn)
        .optional()
}

/// Rewrites a token's hash found under an old secret key (see `secrets::hashed`).
pub fn rehash_token(conn: &mut DbConn, id: i64, old: &str, new: &str) -> QueryResult<()> {
    crate::rehash!(conn, account_tokens, token_hash, id, old, new)
}

/// Marks a token used; false when it was already used (a concurrent click lost).
pub fn use_token(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(account_tokens::table.find(id).filter(account_tokens::used_at.is_null()))
        .set(account_tokens::used_at.eq(at))
        .execute(conn)?;
    Ok(n == 1)
}

/// Retires every unused token of this purpose for the user (a newer link replaces them).
pub fn retire_tokens(conn: &mut DbConn, user_id: i64, purpose: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::purpose.eq(purpose))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(at))
    .execute(conn)?;
    Ok(())
}

/// The user an OpenID identity (provider, subject) signs in as.
pub fn user_of_identity(conn: &mut DbConn, provider: &str, subject: &str) -> QueryResult<Option<i64>> {
    user_identities::table
        .filter(user_identities::provider.eq(provider))
        .filter(user_identities::subject.eq(subject))
        .select(user_identities::user_id)
        .first(conn)
        .optional()
}

pub fn insert_identity(
    conn: &mut DbConn,
    user_id: i64,
    provider: &str,
    subject: &str,
    email: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(user_identities::table)
        .values((
            user_identities::user_id.eq(user_id),
            user_identities::provider.eq(provider),
            user_identities::subject.eq(subject),
            user_identities::email.eq(email),
            user_identities::created_at.eq(at),
            user_identities::last_login_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn touch_identity(conn: &mut DbConn, provider: &str, subject: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        user_identities::table
            .filter(user_identities::provider.eq(provider))
            .filter(user_identities::subject.eq(subject)),
    )
    .set(user_identities::last_login_at.eq(at))
    .execute(conn)?;
    Ok(())
}

/// The providers a user has signed in with, for their account page.
pub fn identities_of(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<(String, String)>> {
    user_identities::table
        .filter(user_identities::user_id.eq(user_id))
        .order(user_identities::provider.asc())
        .select((user_identities::provider, user_identities::email))
        .load(conn)
}
