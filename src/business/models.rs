//! Diesel structs and every query of businesses, members, invitations, plans and
//! upgrade requests. Deleted businesses (`deleted_at`) are invisible to every query
//! a merchant reaches.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{
    bank_accounts, business_invitations, business_members, businesses, merchants, plan_requests, plans, users,
};

#[derive(Queryable, Debug, Clone)]
pub struct Plan {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub monthly_tx_quota: i64,
    pub bank_account_limit: i64,
    pub sync_interval_minutes: i64,
    pub price_vnd: i64,
    pub is_free: bool,
    pub is_trial: bool,
    pub position: i64,
}

#[derive(Queryable, Debug, Clone)]
pub struct Business {
    pub id: i64,
    pub name: String,
    pub website: String,
    pub features: String,
    pub plan_id: i64,
    pub trial_plan_id: Option<i64>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub trial_started_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub trial_ends_at: Option<NaiveDateTime>,
    pub hub_merchant_id: Option<i64>,
    pub search_key: String,
    pub created_by: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub deleted_at: Option<NaiveDateTime>,
}

impl Business {
    pub fn audit_view(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "website": self.website,
            "features": self.features,
            "plan_id": self.plan_id,
            "trial_plan_id": self.trial_plan_id,
            "trial_ends_at": self.trial_ends_at.map(|t| t.to_string()),
            "hub_merchant_id": self.hub_merchant_id,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = businesses)]
pub struct NewBusiness<'a> {
    pub name: &'a str,
    pub website: &'a str,
    pub features: &'a str,
    pub plan_id: i64,
    pub search_key: &'a str,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = businesses)]
pub struct BusinessChanges<'a> {
    pub name: Option<&'a str>,
    pub website: Option<&'a str>,
    pub features: Option<&'a str>,
    pub search_key: Option<&'a str>,
    pub plan_id: Option<i64>,
    pub trial_plan_id: Option<Option<i64>>,
    pub trial_started_at: Option<Option<NaiveDateTime>>,
    pub trial_ends_at: Option<Option<NaiveDateTime>>,
    pub hub_merchant_id: Option<Option<i64>>,
    pub updated_at: Option<NaiveDateTime>,
    pub deleted_at: Option<Option<NaiveDateTime>>,
}

/// A member as the members page lists them.
#[derive(Queryable, Debug, Clone)]
pub struct MemberRow {
    pub id: i64,
    pub user_id: i64,
    pub role: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    pub email: String,
    pub name: String,
}

#[derive(Queryable, Debug, Clone)]
pub struct Invitation {
    pub id: i64,
    pub business_id: i64,
    pub email: String,
    pub role: String,
    pub token_hash: String,
    pub invited_by: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub expires_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub accepted_at: Option<NaiveDateTime>,
    pub accepted_by: Option<i64>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub revoked_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Debug, Clone)]
pub struct BankAccount {
    pub id: i64,
    pub business_id: i64,
    pub bank_code: String,
    pub bank_name: String,
    pub account_number: String,
    pub account_name: String,
    pub method: String,
    pub connect_status: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub removed_at: Option<NaiveDateTime>,
    pub connection_id: Option<i64>,
    pub bank_bin: String,
    pub external_id: String,
    pub balance: Option<i64>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub sync_from: Option<NaiveDateTime>,
    pub sync_cursor: Option<String>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub last_sync_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub next_sync_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub rate_limited_until: Option<NaiveDateTime>,
    pub rate_limit_source: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Queryable, Debug, Clone)]
pub struct PlanRequest {
    pub id: i64,
    pub business_id: i64,
    pub plan_id: i64,
    pub requested_by: i64,
    pub note: String,
    pub status: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub handled_at: Option<NaiveDateTime>,
    pub handled_by: Option<i64>,
}

// ---- plans

pub fn plans(conn: &mut DbConn) -> QueryResult<Vec<Plan>> {
    plans::table.order(plans::position.asc()).select(plans::all_columns).load(conn)
}

pub fn plan(conn: &mut DbConn, id: i64) -> QueryResult<Plan> {
    plans::table.find(id).select(plans::all_columns).first(conn)
}

pub fn free_plan(conn: &mut DbConn) -> QueryResult<Plan> {
    plans::table.filter(plans::is_free.eq(true)).order(plans::position.asc()).select(plans::all_columns).first(conn)
}

pub fn trial_plan(conn: &mut DbConn) -> QueryResult<Plan> {
    plans::table.filter(plans::is_trial.eq(true)).order(plans::position.asc()).select(plans::all_columns).first(conn)
}

// ---- businesses

pub fn insert_business(conn: &mut DbConn, new: &NewBusiness<'_>) -> QueryResult<Business> {
    diesel::insert_into(businesses::table).values(new).returning(businesses::all_columns).get_result(conn)
}

/// A business that is not deleted.
pub fn business(conn: &mut DbConn, id: i64) -> QueryResult<Business> {
    businesses::table.find(id).filter(businesses::deleted_at.is_null()).select(businesses::all_columns).first(conn)
}

pub fn update_business(conn: &mut DbConn, id: i64, changes: &BusinessChanges<'_>) -> QueryResult<Business> {
    diesel::update(businesses::table.find(id)).set(changes).returning(businesses::all_columns).get_result(conn)
}

/// The businesses a user belongs to, with their role, by name.
pub fn businesses_of(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<(Business, String)>> {
    businesses::table
        .inner_join(business_members::table)
        .filter(business_members::user_id.eq(user_id))
        .filter(businesses::deleted_at.is_null())
        .order(businesses::name.asc())
        .select((businesses::all_columns, business_members::role))
        .load(conn)
}

/// The user's role in a (not deleted) business, with the business; None when they are
/// not a member, so a stranger cannot tell a foreign business from a missing one.
pub fn membership(conn: &mut DbConn, business_id: i64, user_id: i64) -> QueryResult<Option<(Business, String)>> {
    businesses::table
        .inner_join(business_members::table)
        .filter(businesses::id.eq(business_id))
        .filter(business_members::user_id.eq(user_id))
        .filter(businesses::deleted_at.is_null())
        .select((businesses::all_columns, business_members::role))
        .first(conn)
        .optional()
}

/// Every business for the staff's read-only list (a page of them, newest first).
pub fn all_businesses(
    conn: &mut DbConn,
    search_key: &str,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Business>, i64)> {
    let like = format!("%{search_key}%");
    let total = businesses::table
        .filter(businesses::deleted_at.is_null())
        .filter(businesses::search_key.like(&like))
        .count()
        .get_result(conn)?;
    let rows = businesses::table
        .filter(businesses::deleted_at.is_null())
        .filter(businesses::search_key.like(&like))
        .order(businesses::id.desc())
        .offset(offset)
        .limit(limit)
        .select(businesses::all_columns)
        .load(conn)?;
    Ok((rows, total))
}

/// Adds `n` to this month's usage, in slot `slot` of the business's counter (see
/// [`crate::banking::models::slot`]).
pub fn add_usage(conn: &mut DbConn, business_id: i64, month: &str, slot: i16, n: i64) -> QueryResult<()> {
    use crate::db::schema::business_usage::dsl as u;
    let row = (u::business_id.eq(business_id), u::month.eq(month), u::slot.eq(slot), u::n.eq(n));
    crate::with_conn!(conn, |c| diesel::insert_into(u::business_usage)
        .values(row)
        .on_conflict((u::business_id, u::month, u::slot))
        .do_update()
        .set(u::n.eq(u::n + n))
        .execute(c))?;
    Ok(())
}

/// The business's usage of `month`: its counter's slots summed.
pub fn usage(conn: &mut DbConn, business_id: i64, month: &str) -> QueryResult<i64> {
    use crate::db::schema::business_usage::dsl as u;
    let slots: Vec<i64> =
        u::business_usage.filter(u::business_id.eq(business_id)).filter(u::month.eq(month)).select(u::n).load(conn)?;
    Ok(slots.iter().sum())
}

/// The business linked to a hub merchant, if any.
pub fn business_of_merchant(conn: &mut DbConn, merchant_id: i64) -> QueryResult<Option<Business>> {
    businesses::table
        .filter(businesses::hub_merchant_id.eq(merchant_id))
        .filter(businesses::deleted_at.is_null())
        .select(businesses::all_columns)
        .first(conn)
        .optional()
}

/// (id, name) of a hub merchant.
pub fn hub_merchant(conn: &mut DbConn, id: i64) -> QueryResult<Option<(i64, String)>> {
    merchants::table.find(id).select((merchants::id, merchants::name)).first(conn).optional()
}

// ---- members

pub fn members(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<MemberRow>> {
    business_members::table
        .inner_join(users::table)
        .filter(business_members::business_id.eq(business_id))
        .order(business_members::created_at.asc())
        .select((
            business_members::id,
            business_members::user_id,
            business_members::role,
            business_members::created_at,
            users::email,
            users::name,
        ))
        .load(conn)
}

pub fn member(conn: &mut DbConn, business_id: i64, member_id: i64) -> QueryResult<MemberRow> {
    business_members::table
        .inner_join(users::table)
        .filter(business_members::business_id.eq(business_id))
        .filter(business_members::id.eq(member_id))
        .select((
            business_members::id,
            business_members::user_id,
            business_members::role,
            business_members::created_at,
            users::email,
            users::name,
        ))
        .first(conn)
}

pub fn insert_member(
    conn: &mut DbConn,
    business_id: i64,
    user_id: i64,
    role: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(business_members::table)
        .values((
            business_members::business_id.eq(business_id),
            business_members::user_id.eq(user_id),
            business_members::role.eq(role),
            business_members::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn is_member(conn: &mut DbConn, business_id: i64, user_id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        business_members::table
            .filter(business_members::business_id.eq(business_id))
            .filter(business_members::user_id.eq(user_id)),
    ))
    .get_result(conn)
}

pub fn set_member_role(conn: &mut DbConn, member_id: i64, role: &str) -> QueryResult<()> {
    diesel::update(business_members::table.find(member_id)).set(business_members::role.eq(role)).execute(conn)?;
    Ok(())
}

pub fn delete_member(conn: &mut DbConn, member_id: i64) -> QueryResult<()> {
    diesel::delete(business_members::table.find(member_id)).execute(conn)?;
    Ok(())
}

pub fn count_owners(conn: &mut DbConn, business_id: i64) -> QueryResult<i64> {
    business_members::table
        .filter(business_members::business_id.eq(business_id))
        .filter(business_members::role.eq("owner"))
        .count()
        .get_result(conn)
}

/// E-mails of the owners of a business (for mail about it).
pub fn owner_emails(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<String>> {
    business_members::table
        .inner_join(users::table)
        .filter(business_members::business_id.eq(business_id))
        .filter(business_members::role.eq("owner"))
        .select(users::email)
        .load(conn)
}

// ---- invitations

#[derive(Insertable)]
#[diesel(table_name = business_invitations)]
pub struct NewInvitation<'a> {
    pub business_id: i64,
    pub email: &'a str,
    pub role: &'a str,
    pub token_hash: &'a str,
    pub invited_by: i64,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

pub fn insert_invitation(conn: &mut DbConn, new: &NewInvitation<'_>) -> QueryResult<Invitation> {
    diesel::insert_into(business_invitations::table)
        .values(new)
        .returning(business_invitations::all_columns)
        .get_result(conn)
}

/// Invitations still waiting for an answer (not accepted, not revoked; expired ones
/// are listed so the owner sees them lapse).
pub fn open_invitations(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<Invitation>> {
    business_invitations::table
        .filter(business_invitations::business_id.eq(business_id))
        .filter(business_invitations::accepted_at.is_null())
        .filter(business_invitations::revoked_at.is_null())
        .order(business_invitations::created_at.desc())
        .select(business_invitations::all_columns)
        .load(conn)
}

pub fn invitation_by_hash(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<Invitation>> {
    business_invitations::table
        .filter(business_invitations::token_hash.eq(token_hash))
        .select(business_invitations::all_columns)
        .first(conn)
        .optional()
}

/// Rewrites an invitation's hash found under an old secret key (see `secrets::hashed`).
pub fn rehash_invitation(conn: &mut DbConn, id: i64, old: &str, new: &str) -> QueryResult<()> {
    crate::rehash!(conn, business_invitations, token_hash, id, old, new)
}

pub fn invitation(conn: &mut DbConn, business_id: i64, id: i64) -> QueryResult<Invitation> {
    business_invitations::table
        .filter(business_invitations::business_id.eq(business_id))
        .filter(business_invitations::id.eq(id))
        .select(business_invitations::all_columns)
        .first(conn)
}

/// Marks an invitation accepted unless something else closed it first.
pub fn accept_invitation(conn: &mut DbConn, id: i64, user_id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(
        business_invitations::table
            .find(id)
            .filter(business_invitations::accepted_at.is_null())
            .filter(business_invitations::revoked_at.is_null()),
    )
    .set((business_invitations::accepted_at.eq(at), business_invitations::accepted_by.eq(user_id)))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn revoke_invitation(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(
        business_invitations::table
            .find(id)
            .filter(business_invitations::accepted_at.is_null())
            .filter(business_invitations::revoked_at.is_null()),
    )
    .set(business_invitations::revoked_at.eq(at))
    .execute(conn)?;
    Ok(n == 1)
}

// ---- bank accounts (linked ones; the linking itself belongs to the banking domain)

/// Linked (not removed) bank accounts, oldest first: the plan's account limit covers
/// the first ones.
pub fn linked_accounts(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<BankAccount>> {
    crate::with_conn!(conn, |c| bank_accounts::table
        .filter(bank_accounts::business_id.eq(business_id))
        .filter(bank_accounts::removed_at.is_null())
        .order((bank_accounts::created_at.asc(), bank_accounts::id.asc()))
        .select(bank_accounts::all_columns)
        .load(c))
}

pub fn count_linked_accounts(conn: &mut DbConn, business_id: i64) -> QueryResult<i64> {
    bank_accounts::table
        .filter(bank_accounts::business_id.eq(business_id))
        .filter(bank_accounts::removed_at.is_null())
        .count()
        .get_result(conn)
}

pub fn linked_account(conn: &mut DbConn, business_id: i64, id: i64) -> QueryResult<BankAccount> {
    bank_accounts::table
        .filter(bank_accounts::business_id.eq(business_id))
        .filter(bank_accounts::id.eq(id))
        .filter(bank_accounts::removed_at.is_null())
        .select(bank_accounts::all_columns)
        .first(conn)
}

#[derive(Insertable)]
#[diesel(table_name = bank_accounts)]
pub struct NewBankAccount<'a> {
    pub business_id: i64,
    pub bank_code: &'a str,
    pub bank_name: &'a str,
    pub account_number: &'a str,
    pub account_name: &'a str,
    pub method: &'a str,
    pub connect_status: &'a str,
    pub created_at: NaiveDateTime,
    pub connection_id: Option<i64>,
    pub bank_bin: &'a str,
    pub external_id: &'a str,
    pub balance: Option<i64>,
    pub sync_from: Option<NaiveDateTime>,
    pub next_sync_at: Option<NaiveDateTime>,
}

pub fn insert_account(conn: &mut DbConn, new: &NewBankAccount<'_>) -> QueryResult<BankAccount> {
    diesel::insert_into(bank_accounts::table).values(new).returning(bank_accounts::all_columns).get_result(conn)
}

pub fn remove_account(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(bank_accounts::table.find(id).filter(bank_accounts::removed_at.is_null()))
        .set(bank_accounts::removed_at.eq(at))
        .execute(conn)?;
    Ok(n == 1)
}

/// Whether the business ever linked an account (the trial starts only once).
pub fn ever_linked(conn: &mut DbConn, business_id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(bank_accounts::table.filter(bank_accounts::business_id.eq(business_id))))
        .get_result(conn)
}

// ---- plan requests

pub fn insert_plan_request(
    conn: &mut DbConn,
    business_id: i64,
    plan_id: i64,
    requested_by: i64,
    note: &str,
    at: NaiveDateTime,
) -> QueryResult<PlanRequest> {
    diesel::insert_into(plan_requests::table)
        .values((
            plan_requests::business_id.eq(business_id),
            plan_requests::plan_id.eq(plan_id),
            plan_requests::requested_by.eq(requested_by),
            plan_requests::note.eq(note),
            plan_requests::status.eq("open"),
            plan_requests::created_at.eq(at),
        ))
        .returning(plan_requests::all_columns)
        .get_result(conn)
}

pub fn plan_requests_of(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<PlanRequest>> {
    plan_requests::table
        .filter(plan_requests::business_id.eq(business_id))
        .order(plan_requests::created_at.desc())
        .select(plan_requests::all_columns)
        .load(conn)
}

/// Open upgrade requests of every business, oldest first (the staff's queue).
pub fn open_plan_requests(conn: &mut DbConn) -> QueryResult<Vec<(PlanRequest, String)>> {
    plan_requests::table
        .inner_join(businesses::table)
        .filter(plan_requests::status.eq("open"))
        .filter(businesses::deleted_at.is_null())
        .order(plan_requests::created_at.asc())
        .select((plan_requests::all_columns, businesses::name))
        .load(conn)
}

pub fn plan_request(conn: &mut DbConn, id: i64) -> QueryResult<PlanRequest> {
    plan_requests::table.find(id).select(plan_requests::all_columns).first(conn)
}

pub fn close_plan_request(conn: &mut DbConn, id: i64, status: &str, by: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(plan_requests::table.find(id).filter(plan_requests::status.eq("open")))
        .set((plan_requests::status.eq(status), plan_requests::handled_by.eq(by), plan_requests::handled_at.eq(at)))
        .execute(conn)?;
    Ok(n == 1)
}
