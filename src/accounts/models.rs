//! Diesel structs and every query of the accounts domain.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{login_failures, users};

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
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
}

impl User {
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
}

pub fn count_users(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
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

pub fn insert(conn: &mut DbConn, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table).values(new).returning(users::all_columns).get_result::<User>(conn)
}

/// Enabled users holding the admin role.
pub fn enabled_admins(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    let candidates: Vec<User> = users::table
        .filter(users::disabled.eq(false))
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
}

pub fn update(conn: &mut DbConn, id: i64, changes: &UserChanges<'_>) -> QueryResult<User> {
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
