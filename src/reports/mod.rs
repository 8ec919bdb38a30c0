//! The month-end list of points connected successfully (B6) and its Excel workbook.
//!
//! Rules: a month is a calendar month in Asia/Ho_Chi_Minh; a (point, partner)
//! connection counts once, in the month its first PYC was deployed; the workbook is
//! written with rust_xlsxwriter's constant-memory sheets so a month of 100,000
//! connections stays small in memory.

pub mod handlers;
pub mod reconcile;

/// The accountants' month-end list: the 1st at 08:00, local time.
pub fn register_jobs(r: &mut crate::worker::runner::Registry) {
    r.register(MONTHLY_JOB, monthly_job);
    r.every("monthly-report", crate::worker::schedule::Every::Monthly { day: 1, hour: 8, minute: 0 }, MONTHLY_JOB);
}

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use rust_xlsxwriter::{Format, FormatAlign, Workbook, XlsxError};

use crate::db::DbConn;
use crate::db::schema::{merchants, partners, points, pycs, request_points, requests, users};
use crate::error::{AppError, AppResult};
use crate::fmt::{TZ, local_midnight_utc};

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

/// One loaded line of the month query, in `select` order.
#[derive(Queryable)]
struct Raw {
    point_id: i64,
    partner_id: i64,
    partner: String,
    merchant: String,
    point: String,
    address: String,
    pos_parent: String,
    pos_id: String,
    point_code: String,
    deployed_at: Option<NaiveDateTime>,
    pyc: String,
    deployed_by: Option<i64>,
    request_id: i64,
}

/// Every (point, partner) connection whose first deployment falls in `month`.
pub fn month_rows(conn: &mut DbConn, month: Month) -> AppResult<Vec<Row>> {
    let (start, end) = month.utc_range();
    let raw: Vec<Raw> = pycs::table
        .inner_join(requests::table.on(requests::id.eq(pycs::request_id)))
        .inner_join(request_points::table.on(request_points::request_id.eq(requests::id)))
        .inner_join(points::table.on(points::id.eq(request_points::point_id)))
        .inner_join(merchants::table.on(merchants::id.eq(points::merchant_id)))
        .inner_join(partners::table.on(partners::id.eq(requests::partner_id)))
        .filter(pycs::deployed_at.lt(end))
        .order((pycs::deployed_at.asc(), pycs::id.asc()))
        .select((
            points::id,
            partners::id,
            partners::code,
            merchants::name,
            points::name,
            points::address,
            pycs::pos_parent,
            pycs::pos_id,
            pycs::point_code,
            pycs::deployed_at,
            pycs::number,
            pycs::deployed_by,
            requests::id,
        ))
        .load(conn)?;
    let names: Vec<(i64, String)> = users::table.select((users::id, users::name)).load(conn)?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in raw {
        let Some(at) = r.deployed_at else { continue };
        // Earlier deployments of the same connection were counted in their month.
        if !seen.insert((r.point_id, r.partner_id)) || at < start {
            continue;
        }
        let local = chrono::TimeZone::from_utc_datetime(&chrono::Utc, &at).with_timezone(&TZ).naive_local();
        let technician =
            r.deployed_by.and_then(|id| names.iter().find(|n| n.0 == id)).map(|n| n.1.clone()).unwrap_or_default();
        out.push(Row {
            partner: r.partner,
            merchant: r.merchant,
            point: r.point,
            address: r.address,
            pos_parent: r.pos_parent,
            pos_id: r.pos_id,
            point_code: r.point_code,
            live_at: local,
            pyc: r.pyc,
            technician,
            request_id: r.request_id,
        });
    }
    Ok(out)
}

/// Column headers of the partner sheets.
pub const HEADERS: [&str; 10] =
    ["Đối tác", "Merchant", "Điểm", "Địa chỉ", "POS Parent", "POS ID", "Mã điểm", "Ngày kết nối", "Số PYC", "Kỹ thuật"];

/// Counts per partner, in partner order.
pub fn counts(rows: &[Row]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|c| c.0 == r.partner) {
            Some(c) => c.1 += 1,
            None => out.push((r.partner.clone(), 1)),
        }
    }
    out.sort();
    out
}

fn xlsx(e: XlsxError) -> AppError {
    AppError::internal(anyhow::anyhow!("xlsx: {e}"))
}

/// The workbook: a summary sheet and one constant-memory sheet per partner.
pub fn workbook(month: Month, rows: &[Row]) -> AppResult<Vec<u8>> {
    let mut book = Workbook::new();
    let bold =
        Format::new().set_bold().set_background_color("DDEBF7").set_border_bottom(rust_xlsxwriter::FormatBorder::Thin);
    let date = Format::new().set_num_format("dd/mm/yyyy hh:mm").set_align(FormatAlign::Left);
    let counts = counts(rows);
    {
        let sheet = book.add_worksheet().set_name("Tổng hợp").map_err(xlsx)?;
        sheet
            .write_string_with_format(
                0,
                0,
                format!("Điểm kết nối thành công tháng {:02}/{}", month.month, month.year),
                &bold,
            )
            .map_err(xlsx)?;
        sheet.write_string_with_format(2, 0, "Đối tác", &bold).map_err(xlsx)?;
        sheet.write_string_with_format(2, 1, "Số điểm kết nối", &bold).map_err(xlsx)?;
        for (i, (partner, n)) in counts.iter().enumerate() {
            sheet.write_string(3 + i as u32, 0, partner).map_err(xlsx)?;
            sheet.write_number(3 + i as u32, 1, *n as f64).map_err(xlsx)?;
        }
        let total_row = 3 + counts.len() as u32;
        sheet.write_string_with_format(total_row, 0, "Tổng cộng", &bold).map_err(xlsx)?;
        sheet.write_number_with_format(total_row, 1, rows.len() as f64, &bold).map_err(xlsx)?;
        sheet.set_column_width(0, 40).map_err(xlsx)?;
        sheet.set_column_width(1, 18).map_err(xlsx)?;
    }
    for (partner, n) in &counts {
        let sheet = book.add_worksheet_with_constant_memory().map_err(xlsx)?;
        sheet.set_name(partner.chars().take(31).collect::<String>()).map_err(xlsx)?;
        let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count() + 2).collect();
        for (c, h) in HEADERS.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, *h, &bold).map_err(xlsx)?;
        }
        for (r, row) in (1u32..).zip(rows.iter().filter(|x| &x.partner == partner)) {
            let texts =
                [&row.partner, &row.merchant, &row.point, &row.address, &row.pos_parent, &row.pos_id, &row.point_code];
            for (c, t) in texts.iter().enumerate() {
                sheet.write_string(r, c as u16, t.as_str()).map_err(xlsx)?;
                widths[c] = widths[c].max(t.chars().count() + 2);
            }
            sheet.write_datetime_with_format(r, 7, row.live_at, &date).map_err(xlsx)?;
            widths[7] = widths[7].max(18);
            sheet.write_string(r, 8, &row.pyc).map_err(xlsx)?;
            sheet.write_string(r, 9, &row.technician).map_err(xlsx)?;
            widths[8] = widths[8].max(row.pyc.chars().count() + 2);
            widths[9] = widths[9].max(row.technician.chars().count() + 2);
        }
        for (c, w) in widths.iter().enumerate() {
            sheet.set_column_width(c as u16, (*w).min(60) as f64).map_err(xlsx)?;
        }
        sheet.set_freeze_panes(1, 0).map_err(xlsx)?;
        sheet.autofilter(0, 0, (*n as u32).max(1), (HEADERS.len() - 1) as u16).map_err(xlsx)?;
    }
    book.save_to_buffer().map_err(xlsx)
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
    let rows = month_rows(conn, month)?;
    let book = workbook(month, &rows)?;
    let summary = counts(&rows).iter().map(|(p, n)| format!("- {p}: {n} điểm")).collect::<Vec<_>>().join("\n");
    let mail = crate::mail::outbound::OutgoingMail {
        to: accountants,
        subject,
        text: format!(
            "Chào chị/anh kế toán,\n\nĐính kèm danh sách {} điểm kết nối thành công tháng {:02}/{} để đối soát:\n{}\n\nhubgate (thư tự động)",
            rows.len(),
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
        let listed: Vec<i64> = rows.iter().map(|r| r.request_id).collect();
        // Only those replied to move: an invoiced one (the 0 đ invoice may come first)
        // or a cancelled one stays where it is.
        let replied: Vec<(i64, i64)> = requests::table
            .filter(requests::id.eq_any(&listed))
            .filter(requests::state.eq(State::Replied.code()))
            .select((requests::id, requests::version))
            .load(conn)?;
        for (id, version) in &replied {
            crate::hub::service::transition_in_tx(conn, actor, *id, *version, State::Reported, &reason)?;
        }
        let moved = replied.len();
        Ok(Some(moved))
    })
}
