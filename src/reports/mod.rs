//! The month-end list of points connected successfully (B6) and its Excel workbook.
//!
//! Rules: a month is a calendar month in Asia/Ho_Chi_Minh; a (point, partner)
//! connection counts once, in the month its first PYC was deployed; the workbook is
//! written as the rows stream from the query (`sheets`), so a month of a million
//! connections stays small in memory.

pub mod handlers;
pub mod reconcile;
mod sheets;

/// The accountants' month-end list: the 1st at 08:00, local time.
pub fn register_jobs(r: &mut crate::worker::runner::Registry) {
    r.register(MONTHLY_JOB, monthly_job);
    r.every("monthly-report", crate::worker::schedule::Every::Monthly { day: 1, hour: 8, minute: 0 }, MONTHLY_JOB);
}

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{first_deployments, merchants, partners, points, pycs, requests, users};
use crate::error::{AppError, AppResult};
use crate::fmt::local_midnight_utc;

/// A calendar month, as written `2026-10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.trim().split_once('-')?;
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        NaiveDate::from_ymd_opt(year, month, 1).map(|_| Month { year, month })
    }

    pub fn of(date: NaiveDate) -> Month {
        Month { year: date.year(), month: date.month() }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month { year: self.year - 1, month: 12 }
        } else {
            Month { year: self.year, month: self.month - 1 }
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    /// [start, end) in UTC of the local month.
    pub fn utc_range(self) -> (NaiveDateTime, NaiveDateTime) {
        let first = |m: Month| NaiveDate::from_ymd_opt(m.year, m.month, 1).unwrap_or_default();
        (local_midnight_utc(first(self)), local_midnight_utc(first(self.next())))
    }

    pub fn file_name(self) -> String {
        format!("diem-ket-noi-{self}.xlsx")
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:02}", self.year, self.month)
    }
}

/// One connection that went live.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub partner: String,
    pub merchant: String,
    pub point: String,
    pub address: String,
    pub pos_parent: String,
    pub pos_id: String,
    pub point_code: String,
    /// Go-live time, local (Asia/Ho_Chi_Minh).
    pub live_at: NaiveDateTime,
    pub pyc: String,
    pub technician: String,
    /// Not a column: which request the connection closes (B6 is set on it).
    pub request_id: i64,
}

/// One line of the month query, in `select` order.
type Raw = (String, String, String, String, String, String, String, crate::db::Ts, String, Option<String>, i64);

fn row(r: Raw) -> Row {
    Row {
        partner: r.0,
        merchant: r.1,
        point: r.2,
        address: r.3,
        pos_parent: r.4,
        pos_id: r.5,
        point_code: r.6,
        live_at: crate::fmt::local_time(r.7.0),
        pyc: r.8,
        technician: r.9.unwrap_or_default(),
        request_id: r.10,
    }
}

/// The month's connections: first deployments (point, partner) that fell in the
/// month, with their PYC, point, merchant, partner and technician. Which PYC deployed a
/// connection first is kept in `first_deployments` by the database itself (migration
/// `first_deployments`), so a month is one range of its index.
macro_rules! month_query {
    ($start:expr, $end:expr) => {
        first_deployments::table
            .inner_join(pycs::table.on(pycs::id.eq(first_deployments::pyc_id)))
            .inner_join(points::table.on(points::id.eq(first_deployments::point_id)))
            .inner_join(merchants::table.on(merchants::id.eq(points::merchant_id)))
            .inner_join(partners::table.on(partners::id.eq(first_deployments::partner_id)))
            .left_join(users::table.on(users::id.nullable().eq(pycs::deployed_by)))
            .filter(first_deployments::deployed_at.ge($start))
            .filter(first_deployments::deployed_at.lt($end))
    };
}

/// The month's connections with their columns, in `order`.
macro_rules! month_select {
    ($start:expr, $end:expr, $order:expr) => {
        month_query!($start, $end).order($order).select((
            partners::code,
            merchants::name,
            points::name,
            points::address,
            pycs::pos_parent,
            pycs::pos_id,
            pycs::point_code,
            first_deployments::deployed_at,
            pycs::number,
            users::name.nullable(),
            pycs::request_id,
        ))
    };
}

/// Go-live order: the order of `first_deployments_month_idx`, which the query walks.
macro_rules! by_time {
    () => {
        (first_deployments::deployed_at.asc(), first_deployments::pyc_id.asc(), first_deployments::point_id.asc())
    };
}

/// Hands the month's connections to `each` by go-live time (every partner mixed)
/// without holding them: a row is read, handed over and dropped. Only `partner`'s when
/// given. Go-live order is the order of the `first_deployments` index the query walks,
/// so rows flow from the first without sorting the month: a partner-first sort held
/// the first row back for seconds at a million.
pub fn each_month_row(
    conn: &mut DbConn,
    month: Month,
    partner: Option<i64>,
    each: &mut dyn FnMut(Row) -> AppResult<()>,
) -> AppResult<()> {
    let (start, end) = month.utc_range();
    // -1: no partner has it.
    let (only, id) = (partner.is_some(), partner.unwrap_or(-1));
    match conn {
        // Row by row: the default mode would have libpq hold the whole result first.
        DbConn::Pg(c) => c.transaction(|c| {
            // Compiling this plan took PostgreSQL longer than it saved at a million
            // rows on two cores (`bench report`: 7.0–7.2 s with JIT, 5.3–6.4 s without).
            diesel::sql_query("SET LOCAL jit = off").execute(c)?;
            let mut q = month_select!(start, end, by_time!()).into_boxed();
            if only {
                q = q.filter(first_deployments::partner_id.eq(id));
            }
            for raw in q.load_iter::<Raw, diesel::pg::PgRowByRowLoadingMode>(c)? {
                each(row(raw?))?;
            }
            AppResult::Ok(())
        })?,
        DbConn::Sqlite(c) => {
            let mut q = month_select!(start, end, by_time!()).into_boxed();
            if only {
                q = q.filter(first_deployments::partner_id.eq(id));
            }
            for raw in q.load_iter::<Raw, diesel::connection::DefaultLoadingMode>(c)? {
                each(row(raw?))?;
            }
        }
    }
    Ok(())
}

/// Every (point, partner) connection whose first deployment falls in `month`, partner
/// by partner (code order), each by go-live time.
pub fn month_rows(conn: &mut DbConn, month: Month) -> AppResult<Vec<Row>> {
    let mut out = Vec::new();
    each_month_row(conn, month, None, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    // Stable: each partner's rows keep their go-live order.
    out.sort_by(|a, b| a.partner.cmp(&b.partner));
    Ok(out)
}

/// Connections per partner in `month`, in partner order.
pub fn month_counts(conn: &mut DbConn, month: Month) -> AppResult<Vec<(String, usize)>> {
    let (start, end) = month.utc_range();
    let counts: Vec<(String, i64)> = crate::with_conn!(conn, |c| month_query!(start, end)
        .group_by(partners::code)
        .order(partners::code.asc())
        .select((partners::code, diesel::dsl::count_star()))
        .load(c))?;
    Ok(counts.into_iter().map(|(p, n)| (p, n as usize)).collect())
}

/// One page of the month's connections, partner by partner (code order), each by
/// go-live time.
pub fn month_page(conn: &mut DbConn, month: Month, offset: usize, limit: usize) -> AppResult<Vec<Row>> {
    let (start, end) = month.utc_range();
    let raw: Vec<Raw> = crate::with_conn!(conn, |c| month_select!(
        start,
        end,
        (
            partners::code.asc(),
            first_deployments::deployed_at.asc(),
            first_deployments::pyc_id.asc(),
            first_deployments::point_id.asc()
        )
    )
    .limit(limit as i64)
    .offset(offset as i64)
    .load(c))?;
    Ok(raw.into_iter().map(row).collect())
}

/// Column headers of the partner sheets.
pub const HEADERS: [&str; 10] =
    ["Đối tác", "Merchant", "Điểm", "Địa chỉ", "POS Parent", "POS ID", "Mã điểm", "Ngày kết nối", "Số PYC", "Kỹ thuật"];

/// What a written workbook lists: connections per partner (partner order) and the
/// requests they close.
#[derive(Debug, Default)]
pub struct Listed {
    pub counts: Vec<(String, usize)>,
    pub request_ids: Vec<i64>,
}

impl Listed {
    pub fn total(&self) -> usize {
        self.counts.iter().map(|c| c.1).sum()
    }
}

/// Rows cross from the query's thread to the writer's in batches of this many.
const BATCH: usize = 512;

/// Writes the month's workbook into `out` straight from the query. Rows are never
/// gathered (memory stays flat however long the month is), and the query and the
/// writing run side by side on two threads, a few batches apart.
pub fn write_workbook<W: std::io::Write + std::io::Seek + Send>(
    conn: &mut DbConn,
    month: Month,
    out: W,
) -> AppResult<Listed> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Row>>(8);
        let writer =
            std::thread::Builder::new().name("xlsx".into()).spawn_scoped(scope, move || -> AppResult<Listed> {
                let mut book = sheets::Book::new();
                // An empty batch says the query is done: without it, the query failed and
                // nothing is saved.
                for batch in rx {
                    if batch.is_empty() {
                        return book.save(month, out);
                    }
                    for row in batch {
                        book.add(row)?;
                    }
                }
                Err(AppError::internal(anyhow::anyhow!("the month query stopped")))
            });
        let writer = writer.map_err(AppError::internal)?;
        let mut batch = Vec::with_capacity(BATCH);
        // A send fails only when the writer has stopped on an error.
        let stopped = std::cell::Cell::new(false);
        let gone = || {
            stopped.set(true);
            AppError::internal(anyhow::anyhow!("the workbook writer stopped"))
        };
        let read = each_month_row(conn, month, None, &mut |r| {
            batch.push(r);
            if batch.len() == BATCH {
                tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).map_err(|_| gone())?;
            }
            Ok(())
        })
        .and_then(|()| {
            if !batch.is_empty() {
                tx.send(batch).map_err(|_| gone())?;
            }
            tx.send(Vec::new()).map_err(|_| gone())
        });
        drop(tx);
        let written = writer.join().map_err(|_| AppError::internal(anyhow::anyhow!("the workbook writer panicked")))?;
        // Whichever failed first is the cause: the other only saw it stop.
        if stopped.get() {
            return written;
        }
        read?;
        written
    })
}

/// The month's workbook in memory (the mail attachment).
pub fn workbook(conn: &mut DbConn, month: Month) -> AppResult<(Vec<u8>, Listed)> {
    let mut out = std::io::Cursor::new(Vec::new());
    let listed = write_workbook(conn, month, &mut out)?;
    Ok((out.into_inner(), listed))
}

/// The scheduled job: the previous month's workbook mailed to every accountant, once.
pub const MONTHLY_JOB: &str = "report.monthly_mail";

/// The monthly job (day 1, 08:00): last month's list goes to the accountants.
pub async fn monthly_job(ctx: crate::worker::runner::JobCtx) -> Result<(), String> {
    let slot = ctx.payload["slot"].as_str().and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok());
    let today = crate::fmt::local_date(slot.unwrap_or_else(crate::db::now));
    let month = Month::of(today).previous();
    let outbound = ctx.services.config.outbound.clone();
    let actor = crate::audit::Actor::system(&format!("job {}", ctx.id));
    ctx.db(move |conn| report_to_accounting(conn, &outbound, &actor, month).map(|_| ())).await
}

/// B6 of the flow: mails the month's list of connected points to every accountant
/// and marks the requests it lists (those replied to, B5) as reported. Returns how
/// many requests moved, or `None` when there is nobody to tell or it was already sent.
pub fn report_to_accounting(
    conn: &mut DbConn,
    outbound: &crate::config::OutboundConfig,
    actor: &crate::audit::Actor,
    month: Month,
) -> AppResult<Option<usize>> {
    let accountants: Vec<String> = crate::accounts::models::list(conn)?
        .into_iter()
        .filter(|u| !u.disabled && u.roles().has(crate::accounts::Role::Accountant))
        .map(|u| u.email)
        .collect();
    if accountants.is_empty() {
        return Ok(None);
    }
    let subject = format!("Danh sách điểm kết nối thành công tháng {:02}/{}", month.month, month.year);
    // A re-run after a crash must not mail the accountants twice.
    if crate::mail::outbound::outbox_has_subject(conn, &subject)? {
        return Ok(None);
    }
    let (book, listed) = workbook(conn, month)?;
    let summary = listed.counts.iter().map(|(p, n)| format!("- {p}: {n} điểm")).collect::<Vec<_>>().join("\n");
    let mail = crate::mail::outbound::OutgoingMail {
        to: accountants,
        subject,
        text: format!(
            "Chào chị/anh kế toán,\n\nĐính kèm danh sách {} điểm kết nối thành công tháng {:02}/{} để đối soát:\n{}\n\nhubgate (thư tự động)",
            listed.total(),
            month.month,
            month.year,
            if summary.is_empty() { "- không có điểm nào".to_string() } else { summary }
        ),
        attachments: vec![(
            month.file_name(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
            book,
        )],
        ..Default::default()
    };
    crate::db::tx(conn, |conn| {
        crate::mail::outbound::queue_mail(conn, outbound, actor, &mail)?;
        let reason = format!("Có trong danh sách điểm kết nối tháng {:02}/{} gửi kế toán", month.month, month.year);
        use crate::hub::state::State;
        // Only those replied to move: an invoiced one (the 0 đ invoice may come first)
        // or a cancelled one stays where it is.
        // In chunks: SQLite binds each id of an IN list, up to 32,766 of them.
        let mut replied: Vec<(i64, i64)> = Vec::new();
        for ids in listed.request_ids.chunks(10_000) {
            replied.extend(
                requests::table
                    .filter(requests::id.eq_any(ids))
                    .filter(requests::state.eq(State::Replied.code()))
                    .select((requests::id, requests::version))
                    .load::<(i64, i64)>(conn)?,
            );
        }
        for (id, version) in &replied {
            crate::hub::service::transition_in_tx(conn, actor, *id, *version, State::Reported, &reason)?;
        }
        let moved = replied.len();
        Ok(Some(moved))
    })
}
