//! Diesel structs and every query of integrations, deliveries and their attempts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{deliveries, delivery_attempts, integration_recipients, integrations, transactions};
use crate::error::{AppError, AppResult};
use crate::secrets::{INTEGRATION_SECRET, Keyring};

#[derive(Queryable, Debug, Clone)]
pub struct Integration {
    pub id: i64,
    pub business_id: i64,
    pub channel: String,
    pub name: String,
    pub url: String,
    pub format: String,
    pub secret_sealed: String,
    pub income_only: bool,
    pub account_ids: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub failing_since: Option<NaiveDateTime>,
    pub created_by: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub deleted_at: Option<NaiveDateTime>,
    pub fields: String,
    pub settings: String,
    pub invite_code: Option<String>,
}

impl Integration {
    /// A value of the channel's JSON settings.
    pub fn setting(&self, key: &str) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&self.settings).unwrap_or_default()[key].clone()
    }

    /// E-mail: minutes between digests, or None for one mail per transaction.
    pub fn digest_minutes(&self) -> Option<i64> {
        self.setting("digest_minutes").as_i64().filter(|m| *m > 0)
    }

    pub fn channel_label(&self) -> &'static str {
        channel_label(&self.channel)
    }

    /// Whether a transaction of `account_id` with `amount` concerns this integration.
    pub fn covers(&self, account_id: i64, amount: i64) -> bool {
        let accounts_ok =
            self.account_ids.is_empty() || self.account_ids.split(',').any(|a| a == account_id.to_string());
        accounts_ok && (!self.income_only || amount > 0)
    }
}

#[derive(Insertable)]
#[diesel(table_name = integrations)]
pub struct NewIntegration<'a> {
    pub business_id: i64,
    pub channel: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub format: &'a str,
    pub secret_sealed: &'a str,
    pub income_only: bool,
    pub account_ids: &'a str,
    pub enabled: bool,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub fields: &'a str,
    pub settings: &'a str,
    pub invite_code: Option<&'a str>,
}

pub const CHANNELS: &[(&str, &str)] =
    &[("zalo", "Zalo OA"), ("webhook", "Webhook"), ("email", "E-mail"), ("telegram", "Telegram bot")];

pub fn channel_label(code: &str) -> &'static str {
    CHANNELS.iter().find(|(c, _)| *c == code).map(|(_, l)| *l).unwrap_or("Tích hợp")
}

#[derive(Queryable, Debug, Clone)]
pub struct Recipient {
    pub id: i64,
    pub integration_id: i64,
    pub kind: String,
    pub address: String,
    pub display_name: String,
    pub status: String,
    pub status_note: Option<String>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
}

pub fn recipients_of(conn: &mut DbConn, integration_id: i64) -> QueryResult<Vec<Recipient>> {
    integration_recipients::table
        .filter(integration_recipients::integration_id.eq(integration_id))
        .order((integration_recipients::kind.desc(), integration_recipients::id.asc()))
        .select(integration_recipients::all_columns)
        .load(conn)
}

pub fn recipient(conn: &mut DbConn, integration_id: i64, address: &str) -> QueryResult<Option<Recipient>> {
    integration_recipients::table
        .filter(integration_recipients::integration_id.eq(integration_id))
        .filter(integration_recipients::address.eq(address))
        .select(integration_recipients::all_columns)
        .first(conn)
        .optional()
}

pub fn add_recipient(
    conn: &mut DbConn,
    integration_id: i64,
    kind: &str,
    address: &str,
    display_name: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(integration_recipients::table)
        .values((
            integration_recipients::integration_id.eq(integration_id),
            integration_recipients::kind.eq(kind),
            integration_recipients::address.eq(address),
            integration_recipients::display_name.eq(display_name),
            integration_recipients::status.eq("active"),
            integration_recipients::created_at.eq(at),
            integration_recipients::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_recipient_status(
    conn: &mut DbConn,
    recipient_id: i64,
    status: &str,
    note: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(integration_recipients::table.find(recipient_id))
        .set((
            integration_recipients::status.eq(status),
            integration_recipients::status_note.eq(note),
            integration_recipients::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Pending deliveries of a digest integration with their transactions, oldest first.
pub fn pending_of(conn: &mut DbConn, integration_id: i64, limit: i64) -> QueryResult<Vec<(i64, i64)>> {
    deliveries::table
        .filter(deliveries::integration_id.eq(integration_id))
        .filter(deliveries::status.eq("pending"))
        .order(deliveries::id.asc())
        .limit(limit)
        .select((deliveries::id, deliveries::transaction_id))
        .load(conn)
}

pub fn insert_integration(conn: &mut DbConn, new: &NewIntegration<'_>) -> QueryResult<Integration> {
    diesel::insert_into(integrations::table).values(new).returning(integrations::all_columns).get_result(conn)
}

/// Seals an integration's secret (webhook token, bot token) for its row. A new row is
/// inserted without it and sealed right after, in the same transaction: the seal is
/// bound to the row id, known only then.
pub fn store_secret(conn: &mut DbConn, keys: &Keyring, id: i64, clear: &str) -> AppResult<()> {
    let sealed = keys.seal(&INTEGRATION_SECRET, id, clear).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    diesel::update(integrations::table.find(id)).set(integrations::secret_sealed.eq(sealed)).execute(conn)?;
    Ok(())
}

/// The integration's secret in clear ("" when it has none).
pub fn open_secret(keys: &Keyring, i: &Integration) -> AppResult<String> {
    if i.secret_sealed.is_empty() {
        return Ok(String::new());
    }
    keys.open(&INTEGRATION_SECRET, i.id, &i.secret_sealed).map_err(|e| e.for_people(&INTEGRATION_SECRET, i.id))
}

pub fn integrations_of(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<Integration>> {
    integrations::table
        .filter(integrations::business_id.eq(business_id))
        .filter(integrations::deleted_at.is_null())
        .order(integrations::id.asc())
        .select(integrations::all_columns)
        .load(conn)
}

pub fn integration(conn: &mut DbConn, business_id: i64, id: i64) -> QueryResult<Integration> {
    integrations::table
        .filter(integrations::business_id.eq(business_id))
        .filter(integrations::id.eq(id))
        .filter(integrations::deleted_at.is_null())
        .select(integrations::all_columns)
        .first(conn)
}

pub fn integration_by_id(conn: &mut DbConn, id: i64) -> QueryResult<Integration> {
    integrations::table.find(id).select(integrations::all_columns).first(conn)
}

pub fn set_enabled(
    conn: &mut DbConn,
    id: i64,
    enabled: bool,
    reason: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(integrations::table.find(id))
        .set((
            integrations::enabled.eq(enabled),
            integrations::disabled_reason.eq(reason),
            integrations::updated_at.eq(at),
            integrations::failing_since.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn update_common(
    conn: &mut DbConn,
    id: i64,
    name: &str,
    income_only: bool,
    account_ids: &str,
    fields: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(integrations::table.find(id))
        .set((
            integrations::name.eq(name),
            integrations::income_only.eq(income_only),
            integrations::account_ids.eq(account_ids),
            integrations::fields.eq(fields),
            integrations::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_failing_since(conn: &mut DbConn, id: i64, since: Option<NaiveDateTime>) -> QueryResult<()> {
    diesel::update(integrations::table.find(id)).set(integrations::failing_since.eq(since)).execute(conn)?;
    Ok(())
}

pub fn soft_delete(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(integrations::table.find(id))
        .set((integrations::deleted_at.eq(at), integrations::enabled.eq(false)))
        .execute(conn)?;
    Ok(())
}

#[derive(Queryable, Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub integration_id: i64,
    pub transaction_id: i64,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub delivered_at: Option<NaiveDateTime>,
}

/// Creates the delivery unless it exists; returns its id when it was new.
pub fn insert_delivery(
    conn: &mut DbConn,
    integration_id: i64,
    transaction_id: i64,
    recipient: &str,
    status: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    let values = (
        deliveries::integration_id.eq(integration_id),
        deliveries::transaction_id.eq(transaction_id),
        deliveries::recipient.eq(recipient),
        deliveries::status.eq(status),
        deliveries::attempts.eq(0i64),
        deliveries::created_at.eq(at),
    );
    crate::with_conn!(conn, |c| diesel::insert_into(deliveries::table)
        .values(values)
        .on_conflict((deliveries::integration_id, deliveries::transaction_id, deliveries::recipient))
        .do_nothing()
        .returning(deliveries::id)
        .get_result(c)
        .optional())
}

pub fn delivery_of(conn: &mut DbConn, integration_id: i64, transaction_id: i64, recipient: &str) -> QueryResult<i64> {
    deliveries::table
        .filter(deliveries::integration_id.eq(integration_id))
        .filter(deliveries::transaction_id.eq(transaction_id))
        .filter(deliveries::recipient.eq(recipient))
        .select(deliveries::id)
        .first(conn)
}

/// Back to pending for a replay (its attempts and log stay).
pub fn reset_delivery(conn: &mut DbConn, id: i64) -> QueryResult<()> {
    diesel::update(deliveries::table.find(id))
        .set((deliveries::status.eq("pending"), deliveries::delivered_at.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    Ok(())
}

pub fn delivery(conn: &mut DbConn, id: i64) -> QueryResult<Delivery> {
    deliveries::table.find(id).select(deliveries::all_columns).first(conn)
}

#[derive(Insertable)]
#[diesel(table_name = delivery_attempts)]
pub struct NewAttempt<'a> {
    pub delivery_id: i64,
    pub at: NaiveDateTime,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub excerpt: &'a str,
    pub error: Option<&'a str>,
}

pub fn record_attempt(conn: &mut DbConn, new: &NewAttempt<'_>) -> QueryResult<()> {
    diesel::insert_into(delivery_attempts::table).values(new).execute(conn)?;
    Ok(())
}

pub fn update_delivery(
    conn: &mut DbConn,
    id: i64,
    status: &str,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<&str>,
    delivered_at: Option<NaiveDateTime>,
) -> QueryResult<()> {
    diesel::update(deliveries::table.find(id))
        .set((
            deliveries::status.eq(status),
            deliveries::attempts.eq(attempts),
            deliveries::last_status.eq(last_status),
            deliveries::last_error.eq(last_error),
            deliveries::delivered_at.eq(delivered_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// One row of the delivery log: the delivery, its transaction's reference and amount.
#[derive(Queryable, Debug, Clone)]
pub struct LogRow {
    pub id: i64,
    pub transaction_id: i64,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub delivered_at: Option<NaiveDateTime>,
    pub bank_tx_id: String,
    pub amount: i64,
}

pub fn log(conn: &mut DbConn, integration_id: i64, limit: i64) -> QueryResult<Vec<LogRow>> {
    deliveries::table
        .inner_join(transactions::table)
        .filter(deliveries::integration_id.eq(integration_id))
        .order(deliveries::id.desc())
        .limit(limit)
        .select((
            deliveries::id,
            deliveries::transaction_id,
            deliveries::recipient,
            deliveries::status,
            deliveries::attempts,
            deliveries::last_status,
            deliveries::last_error,
            deliveries::created_at,
            deliveries::delivered_at,
            transactions::bank_tx_id,
            transactions::amount,
        ))
        .load(conn)
}

#[derive(Queryable, Debug, Clone)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub at: NaiveDateTime,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub excerpt: String,
    pub error: Option<String>,
}

/// The latest attempts of an integration's deliveries (the log's detail lines).
pub fn attempts_of(conn: &mut DbConn, integration_id: i64, limit: i64) -> QueryResult<Vec<AttemptRow>> {
    delivery_attempts::table
        .inner_join(deliveries::table)
        .filter(deliveries::integration_id.eq(integration_id))
        .order(delivery_attempts::id.desc())
        .limit(limit)
        .select(delivery_attempts::all_columns)
        .load(conn)
}

/// Transactions of a business since `from` (replay), oldest first, not deleted.
pub fn transactions_since(
    conn: &mut DbConn,
    business_id: i64,
    from: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(i64, i64, i64)>> {
    transactions::table
        .filter(transactions::business_id.eq(business_id))
        .filter(transactions::occurred_at.ge(from))
        .filter(transactions::deleted_at.is_null())
        .order(transactions::occurred_at.asc())
        .limit(limit)
        .select((transactions::id, transactions::account_id, transactions::amount))
        .load(conn)
}
