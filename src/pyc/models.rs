//! PYC queries. Numbering is the dialect-sensitive part: the counter row of the year
//! is created with `ON CONFLICT DO NOTHING`, then incremented with `UPDATE … RETURNING`
//! inside the creating transaction, which row-locks it on PostgreSQL and holds the
//! write lock on SQLite: two nodes never take the same number, and a rolled-back
//! creation gives its number back (no gaps).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::PycState;
use crate::db::DbConn;
use crate::db::schema::{pyc_checklist, pyc_counters, pyc_templates, pycs};
use crate::hub::models::lower;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = pyc_templates)]
pub struct Template {
    pub id: i64,
    pub kind: String,
    pub version: i64,
    pub body: String,
    pub items: String,
    pub created_by: Option<i64>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    /// Set when an admin stopped using this version: not used for new PYCs.
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub disabled_at: Option<NaiveDateTime>,
}

/// The newest version of `kind` still in use, if any.
pub fn latest_template(conn: &mut DbConn, kind: &str) -> QueryResult<Option<Template>> {
    pyc_templates::table
        .filter(pyc_templates::kind.eq(kind))
        .filter(pyc_templates::disabled_at.is_null())
        .order(pyc_templates::version.desc())
        .select(Template::as_select())
        .first(conn)
        .optional()
}

pub fn set_template_disabled(conn: &mut DbConn, id: i64, at: Option<NaiveDateTime>) -> QueryResult<()> {
    diesel::update(pyc_templates::table.find(id)).set(pyc_templates::disabled_at.eq(at)).execute(conn)?;
    Ok(())
}

pub fn template(conn: &mut DbConn, id: i64) -> QueryResult<Template> {
    pyc_templates::table.find(id).select(Template::as_select()).first(conn)
}

pub fn templates(conn: &mut DbConn) -> QueryResult<Vec<Template>> {
    pyc_templates::table
        .order((pyc_templates::kind.asc(), pyc_templates::version.desc()))
        .select(Template::as_select())
        .load(conn)
}

pub fn insert_template(conn: &mut DbConn, kind: &str, body: &str, items: &str, by: Option<i64>) -> QueryResult<i64> {
    let next: i64 = pyc_templates::table
        .filter(pyc_templates::kind.eq(kind))
        .select(diesel::dsl::max(pyc_templates::version))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0)
        + 1;
    diesel::insert_into(pyc_templates::table)
        .values((
            pyc_templates::kind.eq(kind),
            pyc_templates::version.eq(next),
            pyc_templates::body.eq(body),
            pyc_templates::items.eq(items),
            pyc_templates::created_by.eq(by),
            pyc_templates::created_at.eq(crate::db::now()),
        ))
        .returning(pyc_templates::id)
        .get_result(conn)
}

/// The next number of `year`; call inside the transaction that uses it.
pub fn next_number(conn: &mut DbConn, year: i64) -> QueryResult<i64> {
    crate::with_conn!(conn, |c| diesel::insert_into(pyc_counters::table)
        .values((pyc_counters::year.eq(year), pyc_counters::last.eq(0)))
        .on_conflict(pyc_counters::year)
        .do_nothing()
        .execute(c))?;
    diesel::update(pyc_counters::table.find(year))
        .set(pyc_counters::last.eq(pyc_counters::last + 1))
        .returning(pyc_counters::last)
        .get_result(conn)
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = pycs)]
pub struct Pyc {
    pub id: i64,
    pub number: String,
    pub request_id: i64,
    pub state: String,
    pub version: i64,
    pub customer_name: String,
    pub deployment_type: String,
    pub contract_code: String,
    pub signing_rep: String,
    pub product: String,
    pub brand: String,
    pub point_applied: String,
    pub location: String,
    pub support_person: String,
    pub support_phone: String,
    pub notes: String,
    pub template_id: i64,
    pub pos_parent: String,
    pub pos_id: String,
    pub point_code: String,
    pub key1_enc: Option<String>,
    pub key2_enc: Option<String>,
    pub screenshot_type: Option<String>,
    pub invoice_no: Option<String>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub invoice_date: Option<NaiveDateTime>,
    pub created_by: Option<i64>,
    pub deployed_by: Option<i64>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub deployed_at: Option<NaiveDateTime>,
    pub technician_id: Option<i64>,
}

impl Pyc {
    /// Its state; `None` only for a code this version does not know.
    pub fn state(&self) -> Option<PycState> {
        PycState::from_code(&self.state)
    }

    pub fn in_state(&self, s: PycState) -> bool {
        self.state() == Some(s)
    }

    /// Deployed or invoiced: the technician's work is over.
    pub fn is_done(&self) -> bool {
        self.state().is_some_and(PycState::is_done)
    }
}

/// The editable fields of a PYC, as the form and the audit log see them.
#[derive(AsChangeset, Insertable, Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = pycs)]
pub struct PycFields {
    pub customer_name: String,
    pub deployment_type: String,
    pub contract_code: String,
    pub signing_rep: String,
    pub product: String,
    pub brand: String,
    pub point_applied: String,
    pub location: String,
    pub support_person: String,
    pub support_phone: String,
    pub notes: String,
}

pub fn insert(
    conn: &mut DbConn,
    number: &str,
    request_id: i64,
    fields: &PycFields,
    template_id: i64,
    by: Option<i64>,
) -> QueryResult<i64> {
    let t = crate::db::now();
    diesel::insert_into(pycs::table)
        .values((
            fields,
            pycs::number.eq(number),
            pycs::request_id.eq(request_id),
            pycs::state.eq(PycState::Draft.code()),
            pycs::template_id.eq(template_id),
            pycs::created_by.eq(by),
            pycs::created_at.eq(t),
            pycs::updated_at.eq(t),
        ))
        .returning(pycs::id)
        .get_result(conn)
}

pub fn pyc(conn: &mut DbConn, id: i64) -> QueryResult<Pyc> {
    pycs::table.find(id).select(Pyc::as_select()).first(conn)
}

pub fn pyc_of_request(conn: &mut DbConn, request_id: i64) -> QueryResult<Option<Pyc>> {
    crate::with_conn!(conn, |c| pycs::table.filter(pycs::request_id.eq(request_id)).select(Pyc::as_select()).first(c))
        .optional()
}

pub fn screenshot(conn: &mut DbConn, id: i64) -> QueryResult<(Option<Vec<u8>>, Option<String>)> {
    pycs::table.find(id).select((pycs::screenshot, pycs::screenshot_type)).first(conn)
}

/// Bumps the version only if it is still `version` (optimistic lock).
pub fn bump(conn: &mut DbConn, id: i64, version: i64) -> QueryResult<bool> {
    let n = diesel::update(pycs::table.filter(pycs::id.eq(id)).filter(pycs::version.eq(version)))
        .set((pycs::version.eq(version + 1), pycs::updated_at.eq(crate::db::now())))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn set_fields(conn: &mut DbConn, id: i64, f: &PycFields) -> QueryResult<()> {
    diesel::update(pycs::table.find(id)).set(f).execute(conn)?;
    Ok(())
}

pub fn set_state(conn: &mut DbConn, id: i64, state: PycState) -> QueryResult<()> {
    diesel::update(pycs::table.find(id)).set(pycs::state.eq(state.code())).execute(conn)?;
    Ok(())
}

pub fn set_deployment_data(
    conn: &mut DbConn,
    id: i64,
    pos_parent: &str,
    pos_id: &str,
    point_code: &str,
    key1: Option<&str>,
    key2: Option<&str>,
) -> QueryResult<()> {
    diesel::update(pycs::table.find(id))
        .set((pycs::pos_parent.eq(pos_parent), pycs::pos_id.eq(pos_id), pycs::point_code.eq(point_code)))
        .execute(conn)?;
    if let Some(k) = key1 {
        diesel::update(pycs::table.find(id)).set(pycs::key1_enc.eq(Some(k))).execute(conn)?;
    }
    if let Some(k) = key2 {
        diesel::update(pycs::table.find(id)).set(pycs::key2_enc.eq(Some(k))).execute(conn)?;
    }
    Ok(())
}

pub fn set_screenshot(conn: &mut DbConn, id: i64, bytes: &[u8], content_type: &str) -> QueryResult<()> {
    diesel::update(pycs::table.find(id))
        .set((pycs::screenshot.eq(Some(bytes)), pycs::screenshot_type.eq(Some(content_type))))
        .execute(conn)?;
    Ok(())
}

pub fn set_deployed(conn: &mut DbConn, id: i64, by: i64, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(pycs::table.find(id))
        .set((
            pycs::state.eq(PycState::Deployed.code()),
            pycs::deployed_by.eq(Some(by)),
            pycs::deployed_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_invoice(conn: &mut DbConn, id: i64, no: &str, date: NaiveDateTime) -> QueryResult<()> {
    diesel::update(pycs::table.find(id))
        .set((
            pycs::state.eq(PycState::Invoiced.code()),
            pycs::invoice_no.eq(Some(no)),
            pycs::invoice_date.eq(Some(date)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_technician(conn: &mut DbConn, id: i64, user_id: Option<i64>) -> QueryResult<()> {
    diesel::update(pycs::table.find(id))
        .set((pycs::technician_id.eq(user_id), pycs::updated_at.eq(crate::db::now())))
        .execute(conn)?;
    Ok(())
}

/// PYCs in the given states, oldest first.
pub fn in_states(conn: &mut DbConn, states: &[PycState]) -> QueryResult<Vec<Pyc>> {
    let states: Vec<&str> = states.iter().map(|s| s.code()).collect();
    pycs::table
        .filter(crate::db::in_any(pycs::state, states))
        .order(pycs::created_at.asc())
        .select(Pyc::as_select())
        .load(conn)
}

/// PYCs in `states` that a search finds (the request list's search: merchant, phone,
/// PYC number, POS ID, point code), as a query to page or export. A macro, so that its
/// backend is the one of the connection it runs on (see [`crate::with_conn`]).
macro_rules! filtered {
    ($states:expr, $search:expr) => {{
        let (states, search): (&[String], Option<&str>) = ($states, $search);
        let mut q = pycs::table.into_boxed();
        if !states.is_empty() {
            q = q.filter(crate::db::in_any(pycs::state, states.to_vec()));
        }
        if let Some(p) = search.and_then(crate::hub::models::SearchPatterns::of) {
            use crate::db::schema::requests;
            let code = p.code.clone();
            q = q.filter(crate::request_search!(
                &p,
                pycs::request_id,
                m => pycs::request_id.eq_any(requests::table.filter(requests::merchant_id.eq_any(m)).select(requests::id)),
                _c => lower(pycs::number)
                    .like(code.clone())
                    .or(lower(pycs::pos_id).like(code.clone()))
                    .or(lower(pycs::point_code).like(code))
            ));
        }
        q
    }};
}

/// One page of [`filtered`], oldest first, and the total.
/// A PYC as the list shows it. The whole row (thirty columns, the notes and keys among
/// them) was three quarters of the list's instructions (callgrind, session 25).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = pycs)]
pub struct Listed {
    pub id: i64,
    pub number: String,
    pub request_id: i64,
    pub state: String,
    pub customer_name: String,
    pub location: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub deployed_at: Option<NaiveDateTime>,
}

pub fn list(
    conn: &mut DbConn,
    states: &[String],
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Listed>, i64)> {
    crate::with_conn!(conn, |c| {
        let total = filtered!(states, search).count().get_result(c)?;
        let rows = filtered!(states, search)
            .order((pycs::created_at.asc(), pycs::id.asc()))
            .offset(offset)
            .limit(limit)
            .select(Listed::as_select())
            .load(c)?;
        Ok((rows, total))
    })
}

/// The next `limit` PYCs of [`filtered`] after id `after` (exports go by id).
pub fn list_after(
    conn: &mut DbConn,
    states: &[String],
    search: Option<&str>,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Pyc>> {
    crate::with_conn!(conn, |c| filtered!(states, search)
        .filter(pycs::id.gt(after))
        .order(pycs::id.asc())
        .limit(limit)
        .select(Pyc::as_select())
        .load(c))
}

/// PYCs in the given states handed to one technician, oldest first.
pub fn of_technician(conn: &mut DbConn, user_id: i64, states: &[PycState]) -> QueryResult<Vec<Pyc>> {
    let states: Vec<&str> = states.iter().map(|s| s.code()).collect();
    pycs::table
        .filter(pycs::technician_id.eq(user_id))
        .filter(crate::db::in_any(pycs::state, states))
        .order(pycs::created_at.asc())
        .select(Pyc::as_select())
        .load(conn)
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = pyc_checklist)]
pub struct Item {
    pub id: i64,
    pub pyc_id: i64,
    pub position: i64,
    pub label: String,
    pub required: bool,
    pub done_by: Option<i64>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub done_at: Option<NaiveDateTime>,
}

pub fn insert_item(conn: &mut DbConn, pyc_id: i64, position: i64, label: &str, required: bool) -> QueryResult<()> {
    diesel::insert_into(pyc_checklist::table)
        .values((
            pyc_checklist::pyc_id.eq(pyc_id),
            pyc_checklist::position.eq(position),
            pyc_checklist::label.eq(label),
            pyc_checklist::required.eq(required),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn items(conn: &mut DbConn, pyc_id: i64) -> QueryResult<Vec<Item>> {
    pyc_checklist::table
        .filter(pyc_checklist::pyc_id.eq(pyc_id))
        .order(pyc_checklist::position.asc())
        .select(Item::as_select())
        .load(conn)
}

pub fn tick(conn: &mut DbConn, pyc_id: i64, item_id: i64, done: Option<(i64, NaiveDateTime)>) -> QueryResult<usize> {
    diesel::update(pyc_checklist::table.filter(pyc_checklist::id.eq(item_id)).filter(pyc_checklist::pyc_id.eq(pyc_id)))
        .set((pyc_checklist::done_by.eq(done.map(|d| d.0)), pyc_checklist::done_at.eq(done.map(|d| d.1))))
        .execute(conn)
}
