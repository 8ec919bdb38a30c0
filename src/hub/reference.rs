//! The desk's reference data and how it changes: partners (added, edited, stopped
//! and taken back into use), customers, and the edits of merchants and points.
//!
//! Every change is audited with what the row was and became. Handlers hold no SQL:
//! they call these functions.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DbError};
use serde::{Deserialize, Serialize};

use super::models::{self, Merchant, Point};
use crate::audit::{self, Actor};
use crate::db::schema::{customers, merchants, partners, points};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::hub::partners::Partner;
use crate::mail::inbound::classify::fold;

fn json(v: &impl Serialize) -> AppResult<serde_json::Value> {
    serde_json::to_value(v).map_err(AppError::internal)
}

/// A unique key lost to a concurrent write means the same as the check before it.
fn taken_or(e: DbError, msg: impl FnOnce() -> String) -> AppError {
    match e {
        DbError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::Conflict(msg()),
        other => other.into(),
    }
}

/// The partner form; also what the audit log keeps.
#[derive(Deserialize, Default, Clone, Serialize)]
pub struct PartnerForm {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub mail_domains: String,
    #[serde(default)]
    pub mail_addresses: String,
    pub leader_confirmation_required: Option<String>,
    #[serde(default)]
    pub leader_addresses: String,
    #[serde(default)]
    pub cms_admin_name: String,
    #[serde(default)]
    pub signing_company: String,
    #[serde(default)]
    pub virtual_brand: String,
    #[serde(default)]
    pub virtual_point: String,
    #[serde(default)]
    pub accept_template: String,
    #[serde(default)]
    pub reply_template: String,
}

impl PartnerForm {
    pub fn of(p: &Partner) -> Self {
        PartnerForm {
            code: p.code.clone(),
            name: p.name.clone(),
            kind: p.kind.clone(),
            mail_domains: p.mail_domains.clone(),
            mail_addresses: p.mail_addresses.clone(),
            leader_confirmation_required: p.leader_confirmation_required.then(String::new),
            leader_addresses: p.leader_addresses.clone(),
            cms_admin_name: p.cms_admin_name.clone(),
            signing_company: p.signing_company.clone(),
            virtual_brand: p.virtual_brand.clone(),
            virtual_point: p.virtual_point.clone(),
            accept_template: p.accept_template.clone(),
            reply_template: p.reply_template.clone(),
        }
    }

    fn validate(&mut self) -> AppResult<()> {
        self.code = self.code.trim().to_uppercase();
        if self.code.is_empty() || !self.code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(AppError::Validation("Mã đối tác chỉ gồm chữ không dấu, số và gạch dưới, ví dụ MOMO.".into()));
        }
        if self.name.trim().is_empty() {
            return Err(AppError::Validation("Vui lòng nhập tên đối tác.".into()));
        }
        if self.kind != "payment" && self.kind != "voucher" {
            return Err(AppError::Validation("Loại đối tác phải là thanh toán hoặc voucher.".into()));
        }
        if self.mail_domains.trim().is_empty() && self.mail_addresses.trim().is_empty() {
            return Err(AppError::Validation(
                "Cần ít nhất một tên miền hoặc địa chỉ mail để nhận diện thư của đối tác.".into(),
            ));
        }
        Ok(())
    }
}

/// Adds (`id` None) or edits a partner; returns its id.
pub fn save_partner(conn: &mut DbConn, actor: &Actor, id: Option<i64>, mut f: PartnerForm) -> AppResult<i64> {
    f.validate()?;
    crate::db::note_reference_written();
    crate::db::tx(conn, |conn| {
        let t = now();
        let taken: Option<i64> =
            partners::table.filter(partners::code.eq(&f.code)).select(partners::id).first(conn).optional()?;
        if taken.is_some() && taken != id {
            return Err(AppError::Validation(format!("Mã {} đã có.", f.code)));
        }
        let values = (
            partners::code.eq(&f.code),
            partners::name.eq(f.name.trim()),
            partners::kind.eq(&f.kind),
            partners::mail_domains.eq(f.mail_domains.trim()),
            partners::mail_addresses.eq(f.mail_addresses.trim()),
            partners::leader_confirmation_required.eq(f.leader_confirmation_required.is_some()),
            partners::leader_addresses.eq(f.leader_addresses.trim()),
            partners::cms_admin_name.eq(f.cms_admin_name.trim()),
            partners::signing_company.eq(f.signing_company.trim()),
            partners::virtual_brand.eq(f.virtual_brand.trim()),
            partners::virtual_point.eq(f.virtual_point.trim()),
            partners::accept_template.eq(&f.accept_template),
            partners::reply_template.eq(&f.reply_template),
            partners::updated_at.eq(t),
        );
        let after = json(&f)?;
        match id {
            Some(id) => {
                let before = crate::hub::partners::find(conn, id)?;
                diesel::update(partners::table.find(id)).set(values).execute(conn)?;
                audit::record(
                    conn,
                    actor,
                    "partner",
                    id,
                    "update",
                    Some(json(&PartnerForm::of(&before))?),
                    Some(after),
                )?;
                Ok(id)
            }
            None => {
                let id: i64 = diesel::insert_into(partners::table)
                    .values((values, partners::created_at.eq(t)))
                    .returning(partners::id)
                    .get_result(conn)?;
                audit::record(conn, actor, "partner", id, "create", None, Some(after))?;
                Ok(id)
            }
        }
    })
}

/// Stops (`disabled`) or resumes offering a partner for new work; nothing that
/// refers to it changes. Returns its code.
pub fn set_partner_disabled(conn: &mut DbConn, actor: &Actor, id: i64, disabled: bool) -> AppResult<String> {
    crate::db::note_reference_written();
    crate::db::tx(conn, |conn| {
        let p = crate::hub::partners::find(conn, id)?;
        if p.is_disabled() == disabled {
            return Ok(p.code);
        }
        let at = disabled.then(now);
        diesel::update(partners::table.find(id))
            .set((partners::disabled_at.eq(at), partners::updated_at.eq(now())))
            .execute(conn)?;
        let action = if disabled { "disable" } else { "enable" };
        audit::record(
            conn,
            actor,
            "partner",
            id,
            action,
            Some(serde_json::json!({"code": p.code, "disabled_at": p.disabled_at})),
            Some(serde_json::json!({"code": p.code, "disabled_at": at})),
        )?;
        Ok(p.code)
    })
}

/// A partner that may take new work, or why not (a form naming a stopped partner).
pub fn active_partner(conn: &mut DbConn, id: i64) -> AppResult<Partner> {
    match crate::hub::partners::find(conn, id).optional()? {
        None => Err(AppError::Validation("Vui lòng chọn đối tác.".into())),
        Some(p) if p.is_disabled() => Err(AppError::Validation(format!(
            "Đối tác {} đã ngừng dùng, không nhận yêu cầu mới. Vui lòng chọn đối tác khác.",
            p.code
        ))),
        Some(p) => Ok(p),
    }
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = customers)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub tax_code: String,
    pub address: String,
    pub search_key: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
}

/// Customers whose name contains `q` (case-insensitive), alphabetically.
pub fn search_customers(conn: &mut DbConn, q: &str, limit: i64) -> QueryResult<Vec<Customer>> {
    let mut query = customers::table.into_boxed();
    if !q.trim().is_empty() {
        // Folded (lower case, no diacritics) on both sides: the same on both backends.
        let key = fold(q).replace(['%', '_'], "");
        query = query.filter(customers::search_key.like(format!("%{key}%")));
    }
    query.order(customers::name.asc()).limit(limit).select(Customer::as_select()).load(conn)
}

pub fn customer(conn: &mut DbConn, id: i64) -> QueryResult<Customer> {
    customers::table.find(id).select(Customer::as_select()).first(conn)
}

/// The customer form; also what the audit log keeps.
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct CustomerForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tax_code: String,
    #[serde(default)]
    pub address: String,
}

impl CustomerForm {
    pub fn of(c: &Customer) -> Self {
        CustomerForm { name: c.name.clone(), tax_code: c.tax_code.clone(), address: c.address.clone() }
    }

    fn trimmed(&self) -> AppResult<Self> {
        if self.name.trim().is_empty() {
            return Err(AppError::Validation("Vui lòng nhập tên khách hàng.".into()));
        }
        Ok(CustomerForm {
            name: self.name.trim().into(),
            tax_code: self.tax_code.trim().into(),
            address: self.address.trim().into(),
        })
    }

    /// Name and tax code are what the customer search looks through.
    fn search_key(&self) -> String {
        fold(&format!("{} {}", self.name, self.tax_code))
    }
}

/// Adds (`id` None) or edits a customer; returns its id.
pub fn save_customer(conn: &mut DbConn, actor: &Actor, id: Option<i64>, f: &CustomerForm) -> AppResult<i64> {
    let f = f.trimmed()?;
    crate::db::tx(conn, |conn| {
        let values = (
            customers::name.eq(&f.name),
            customers::tax_code.eq(&f.tax_code),
            customers::address.eq(&f.address),
            customers::search_key.eq(f.search_key()),
        );
        match id {
            Some(id) => {
                let before = CustomerForm::of(&customer(conn, id)?);
                diesel::update(customers::table.find(id)).set(values).execute(conn)?;
                audit::record(conn, actor, "customer", id, "update", Some(json(&before)?), Some(json(&f)?))?;
                Ok(id)
            }
            None => {
                let id: i64 = diesel::insert_into(customers::table)
                    .values((values, customers::created_at.eq(now())))
                    .returning(customers::id)
                    .get_result(conn)?;
                audit::record(conn, actor, "customer", id, "create", None, Some(json(&f)?))?;
                Ok(id)
            }
        }
    })
}

/// The merchant form; also what the audit log keeps.
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct MerchantForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub contact_name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

impl MerchantForm {
    pub fn of(m: &Merchant) -> Self {
        MerchantForm {
            name: m.name.clone(),
            contact_name: m.contact_name.clone(),
            phone: m.phone.clone(),
            email: m.email.clone(),
        }
    }
}

/// Edits a merchant. Its search key is the folded name and its phone key the phone's
/// digits, as when [`models::ensure_merchant`] creates it, so a renamed merchant is
/// found by its new name and a request for the old name makes a new merchant.
pub fn update_merchant(conn: &mut DbConn, actor: &Actor, id: i64, f: &MerchantForm) -> AppResult<()> {
    let f = MerchantForm {
        name: f.name.trim().into(),
        contact_name: f.contact_name.trim().into(),
        phone: f.phone.trim().into(),
        email: f.email.trim().into(),
    };
    if f.name.is_empty() {
        return Err(AppError::Validation("Vui lòng nhập tên merchant.".into()));
    }
    let key = fold(&f.name);
    let clash = |name: &str| format!("Đã có merchant khác tên “{name}”. Vui lòng chọn tên khác.");
    crate::db::tx(conn, |conn| {
        let before = models::merchant(conn, id)?;
        if let Some(other) = models::merchant_by_key(conn, &key)?
            && other.id != id
        {
            return Err(AppError::Conflict(clash(&other.name)));
        }
        diesel::update(merchants::table.find(id))
            .set((
                merchants::name.eq(&f.name),
                merchants::contact_name.eq(&f.contact_name),
                merchants::phone.eq(&f.phone),
                merchants::phone_key.eq(models::phone_key(&f.phone)),
                merchants::email.eq(&f.email),
                merchants::search_key.eq(&key),
                merchants::updated_at.eq(now()),
            ))
            .execute(conn)
            .map_err(|e| taken_or(e, || clash(&f.name)))?;
        audit::record(conn, actor, "merchant", id, "update", Some(json(&MerchantForm::of(&before))?), Some(json(&f)?))?;
        Ok(())
    })
}

/// The point form; also what the audit log keeps.
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct PointForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub contact_name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub pos_parent: String,
    #[serde(default)]
    pub pos_id: String,
    #[serde(default)]
    pub point_code: String,
}

impl PointForm {
    pub fn of(p: &Point) -> Self {
        PointForm {
            name: p.name.clone(),
            address: p.address.clone(),
            contact_name: p.contact_name.clone(),
            phone: p.phone.clone(),
            pos_parent: p.pos_parent.clone(),
            pos_id: p.pos_id.clone(),
            point_code: p.point_code.clone(),
        }
    }
}

/// Edits a point; its search key is the folded name, unique within its merchant (as
/// [`models::ensure_point`] keeps it).
pub fn update_point(conn: &mut DbConn, actor: &Actor, id: i64, f: &PointForm) -> AppResult<()> {
    let f = PointForm {
        name: f.name.trim().into(),
        address: f.address.trim().into(),
        contact_name: f.contact_name.trim().into(),
        phone: f.phone.trim().into(),
        pos_parent: f.pos_parent.trim().into(),
        pos_id: f.pos_id.trim().into(),
        point_code: f.point_code.trim().into(),
    };
    if f.name.is_empty() {
        return Err(AppError::Validation("Vui lòng nhập tên điểm.".into()));
    }
    let key = fold(&f.name);
    let clash = |name: &str| format!("Merchant này đã có điểm khác tên “{name}”. Vui lòng chọn tên khác.");
    crate::db::tx(conn, |conn| {
        let before = models::point(conn, id)?;
        if let Some(other) = models::point_by_key(conn, before.merchant_id, &key)?
            && other.id != id
        {
            return Err(AppError::Conflict(clash(&other.name)));
        }
        diesel::update(points::table.find(id))
            .set((
                points::name.eq(&f.name),
                points::address.eq(&f.address),
                points::contact_name.eq(&f.contact_name),
                points::phone.eq(&f.phone),
                points::pos_parent.eq(&f.pos_parent),
                points::pos_id.eq(&f.pos_id),
                points::point_code.eq(&f.point_code),
                points::search_key.eq(&key),
                points::updated_at.eq(now()),
            ))
            .execute(conn)
            .map_err(|e| taken_or(e, || clash(&f.name)))?;
        audit::record(conn, actor, "point", id, "update", Some(json(&PointForm::of(&before))?), Some(json(&f)?))?;
        Ok(())
    })
}
