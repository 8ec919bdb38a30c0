//! Page structs and the read models behind them (templates/hub/).

use askama::Template;
use diesel::OptionalExtension;

use super::handlers::{ListQuery, RequestForm};
use super::models::{self, Confirmation, Event, Merchant, Point, Request, RequestFilter};
use super::service;
use super::state::State;
use crate::accounts::{Role, Roles};
use crate::db::DbConn;
use crate::error::AppResult;
use crate::fmt::{Age, LocalDate, LocalTime};
use crate::hub::partners::{Brief, Partner};
use crate::mail::inbound::models::{self as mail, MailMessage};
use crate::web::layout::Layout;

/// One step of the step bar.
pub struct Step {
    pub code: &'static str,
    pub label: &'static str,
    pub done: bool,
    pub current: bool,
}

/// One line of the timeline: an event or a mail, in time order.
pub struct TimelineItem {
    pub at: LocalTime,
    pub who: String,
    pub kind: &'static str,
    pub text: String,
    pub mail_id: Option<i64>,
}

/// Everything the request page shows.
pub struct RequestView {
    pub r: Request,
    pub state: State,
    pub partner: Option<Partner>,
    pub merchant: Merchant,
    pub points: Vec<Point>,
    pub confirmations: Vec<Confirmation>,
    pub missing: Vec<String>,
    pub timeline: Vec<TimelineItem>,
    pub steps: Vec<Step>,
    /// Sales and leaders who can take the request: (id, name).
    pub desk_people: Vec<(i64, String)>,
    /// Its PYC: (id, number, state label).
    pub pyc: Option<(i64, String, &'static str)>,
}

impl RequestView {
    pub fn load(conn: &mut DbConn, id: i64) -> AppResult<Self> {
        let r = models::request(conn, id)?;
        let state = State::from_code(&r.state).unwrap_or(State::Received);
        let partner = crate::hub::partners::find(conn, r.partner_id).optional()?;
        let merchant = models::merchant(conn, r.merchant_id)?;
        let points = models::request_point_list(conn, id)?;
        let confirmations = models::confirmations_of(conn, id)?;
        let live = |kind: &str| confirmations.iter().any(|c| c.kind == kind && c.revoked_at.is_none());
        let missing = service::missing_for(
            &r.state,
            partner.as_ref().map(Brief::from).as_ref(),
            live(service::MERCHANT),
            live(service::LEADER),
        );
        let events = models::events_of(conn, id)?;
        let mails = mail::request_messages(conn, id)?;
        let sent = crate::mail::outbound::outbox_of_request(conn, id)?;
        let timeline = timeline(&events, &mails, &sent);
        let reached = State::STEPS.iter().position(|s| *s == state);
        let steps = State::STEPS
            .iter()
            .enumerate()
            .map(|(i, s)| Step {
                code: s.step().unwrap_or(""),
                label: s.label(),
                done: reached.is_some_and(|r| i < r),
                current: reached == Some(i),
            })
            .collect();
        let desk_people = crate::accounts::models::staff_people(conn)?
            .into_iter()
            .filter(|u| !u.disabled && u.roles().allows(&[Role::Sale, Role::Leader]))
            .map(|u| (u.id, u.name))
            .collect();
        let pyc = crate::pyc::models::pyc_of_request(conn, id)?
            .map(|p| (p.id, p.number.clone(), crate::pyc::PycState::label_of(&p.state)));
        Ok(RequestView {
            r,
            state,
            partner,
            merchant,
            points,
            confirmations,
            missing,
            timeline,
            steps,
            desk_people,
            pyc,
        })
    }

    pub fn assignee(&self) -> String {
        self.r
            .assignee_id
            .and_then(|id| self.desk_people.iter().find(|p| p.0 == id))
            .map(|p| p.1.clone())
            .unwrap_or_else(|| "Chưa giao".into())
    }

    pub fn is_assignee(&self, id: &i64) -> bool {
        self.r.assignee_id == Some(*id)
    }

    pub fn next_step(&self) -> &'static str {
        service::next_step(self.state, &self.missing)
    }

    pub fn opened_on(&self) -> LocalDate {
        LocalDate(crate::fmt::local_date(self.r.opened_on))
    }

    pub fn waiting(&self) -> Age {
        Age(self.r.state_since)
    }

    pub fn confirmation_label(&self, c: &Confirmation) -> &'static str {
        if c.kind == service::LEADER { "Leader đối tác" } else { "Merchant" }
    }

    pub fn confirmation_time(&self, c: &Confirmation) -> LocalTime {
        LocalTime(c.created_at)
    }
}

fn timeline(events: &[Event], mails: &[MailMessage], sent: &[crate::mail::outbound::OutboxRow]) -> Vec<TimelineItem> {
    let mut items: Vec<(chrono::NaiveDateTime, TimelineItem)> = events
        .iter()
        // Mails (in and out) come from their own tables below.
        .filter(|e| (e.kind != "mail" || e.mail_message_id.is_none()) && e.kind != "mail_out")
        .map(|e| {
            let text = match (&e.from_state, &e.to_state) {
                (_, Some(to)) => {
                    let to = State::from_code(to).map(|s| s.label()).unwrap_or("?");
                    if e.body.is_empty() {
                        format!("Chuyển sang “{to}”")
                    } else {
                        format!("Chuyển sang “{to}”: {}", e.body)
                    }
                }
                _ => e.body.clone(),
            };
            let kind = match e.kind.as_str() {
                "state" => "Trạng thái",
                "confirmation" => "Xác nhận",
                "note" => "Ghi chú nội bộ",
                "comment" => "Bình luận",
                _ => "Sự kiện",
            };
            (e.at, TimelineItem { at: LocalTime(e.at), who: e.actor.clone(), kind, text, mail_id: e.mail_message_id })
        })
        .collect();
    for m in mails {
        let at = m.sent_at.unwrap_or(m.created_at);
        items.push((
            at,
            TimelineItem {
                at: LocalTime(at),
                who: m.from_addr.clone(),
                kind: "Thư đến",
                text: format!("{} – {}", m.subject, crate::mail::inbound::pages::kind_label(&m.kind)),
                mail_id: Some(m.id),
            },
        ));
    }
    for m in sent {
        items.push((
            m.created_at,
            TimelineItem {
                at: LocalTime(m.created_at),
                who: m.from_addr.clone(),
                kind: "Thư đi",
                text: format!("{} → {} ({})", m.subject, m.to_addrs, crate::mail::outbound::status_label(&m.status)),
                mail_id: None,
            },
        ));
    }
    items.sort_by_key(|(at, _)| *at);
    items.into_iter().map(|(_, i)| i).collect()
}

#[derive(Template)]
#[template(path = "hub/request.html")]
pub struct RequestPage {
    pub l: Layout,
    pub v: RequestView,
}

impl RequestPage {
    pub fn can_desk(&self) -> bool {
        self.l.user.as_ref().is_some_and(|u| u.roles.allows(&[Role::Sale, Role::Leader]))
    }

    pub fn can_confirm(&self) -> bool {
        self.l.user.as_ref().is_some_and(|u| u.roles.allows(&[Role::Leader]))
    }

    pub fn is_received(&self) -> bool {
        self.v.state == State::Received
    }

    pub fn is_open(&self) -> bool {
        !self.v.state.is_closed()
    }
}

#[derive(Template)]
#[template(path = "hub/accept.html")]
pub struct AcceptPage {
    pub l: Layout,
    pub id: i64,
    pub f: super::handlers::AcceptForm,
    pub in_reply_to: Option<String>,
    pub missing: Vec<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "hub/new.html")]
pub struct NewRequestPage {
    pub l: Layout,
    pub partners: Vec<Partner>,
    pub form: RequestForm,
    pub opening: Option<MailMessage>,
    pub error: Option<String>,
}

/// A page of the request list with what it shows beside each request.
pub struct RequestRows {
    /// (request, partner's code, missing confirmations, overdue).
    pub rows: Vec<(models::Listed, String, Vec<String>, bool)>,
    pub total: i64,
    /// Every partner (for the filter) and the thresholds, as the page read them.
    pub reference: std::sync::Arc<super::Reference>,
}

impl RequestRows {
    pub fn load(
        conn: &mut DbConn,
        f: &RequestFilter,
        offset: i64,
        limit: i64,
        reference: std::sync::Arc<super::Reference>,
    ) -> AppResult<Self> {
        let (listed, total) = models::list_page(conn, f, offset, limit)?;
        let (partners, thresholds) = (&reference.partners, &reference.thresholds);
        let now = crate::db::now();
        let rows = listed
            .into_iter()
            .map(|r| {
                let partner = partners.iter().find(|p| p.id == r.partner_id);
                let missing = service::missing_for(&r.state, partner, r.merchant_confirmed, r.leader_confirmed);
                let overdue = thresholds.is_overdue(&r.state, r.state_since, now);
                (r, partner.map(|p| p.code.clone()).unwrap_or_default(), missing, overdue)
            })
            .collect();
        Ok(RequestRows { rows, total, reference })
    }
}

pub fn state_label(code: &str) -> String {
    State::from_code(code)
        .map(|s| match s.step() {
            Some(step) => format!("{step} · {}", s.label()),
            None => s.label().to_string(),
        })
        .unwrap_or_default()
}

pub fn age_of(r: &models::Listed) -> Age {
    Age(r.state_since)
}

#[derive(Template)]
#[template(path = "hub/list.html")]
pub struct RequestListPage {
    pub l: Layout,
    pub q: ListQuery,
    pub rows: RequestRows,
    pub page: i64,
    pub pages: i64,
}

impl RequestListPage {
    pub fn states(&self) -> [State; 9] {
        State::ALL
    }

    pub fn prev_link(&self) -> Option<String> {
        (self.page > 1).then(|| self.q.link_to_page(self.page - 1))
    }

    pub fn next_link(&self) -> Option<String> {
        (self.page < self.pages).then(|| self.q.link_to_page(self.page + 1))
    }
}

/// One block of "Việc của tôi": what a role has to do now.
pub struct WorkSection {
    pub title: &'static str,
    pub rows: RequestRows,
}

/// One block of PYCs in "Việc của tôi".
pub struct PycSection {
    pub title: &'static str,
    pub rows: Vec<crate::pyc::models::Pyc>,
}

pub struct MyWork {
    pub sections: Vec<WorkSection>,
    pub pycs: Vec<PycSection>,
}

impl MyWork {
    /// Per person: sales see the requests handed to them; leaders the requests waiting
    /// for a confirmation and the draft PYCs waiting for review (B7); technicians the
    /// PYCs handed to them (and those nobody took yet); accountants invoices.
    pub fn load(
        conn: &mut DbConn,
        user_id: i64,
        roles: Roles,
        reference: &std::sync::Arc<super::Reference>,
    ) -> AppResult<MyWork> {
        let mut out = Vec::new();
        let mut section =
            |conn: &mut DbConn, title: &'static str, states: &[State], assignee_id: Option<i64>| -> AppResult<()> {
                let filter = RequestFilter {
                    states: states.iter().map(|s| s.code().to_string()).collect(),
                    assignee_id,
                    ..Default::default()
                };
                out.push(WorkSection { title, rows: RequestRows::load(conn, &filter, 0, 100, reference.clone())? });
                Ok(())
            };
        if roles.allows(&[Role::Sale]) {
            section(conn, "Kinh doanh: chờ xác nhận và gửi mail chấp nhận (B1)", &[State::Received], Some(user_id))?;
            section(conn, "Kinh doanh: cần tạo PYC (B2)", &[State::Accepted], Some(user_id))?;
        }
        if roles.allows(&[Role::Leader]) {
            section(conn, "Trưởng nhóm: yêu cầu chờ xác nhận (B1)", &[State::Received], None)?;
        }
        if roles.allows(&[Role::Accountant]) {
            section(conn, "Kế toán: cần báo cáo và xuất hóa đơn 0 đ", &[State::Replied, State::Reported], None)?;
        }
        let mut pycs = Vec::new();
        if roles.allows(&[Role::Leader]) {
            pycs.push(PycSection {
                title: "Trưởng nhóm: PYC nháp chờ xem lại (B7)",
                rows: crate::pyc::models::in_states(conn, &[crate::pyc::PycState::Draft])?,
            });
        }
        if roles.allows(&[Role::Technician]) {
            pycs.push(PycSection {
                title: "Kỹ thuật: PYC giao cho tôi",
                rows: crate::pyc::models::of_technician(conn, user_id, &[crate::pyc::PycState::Created])?,
            });
            let unassigned = crate::pyc::models::in_states(conn, &[crate::pyc::PycState::Created])?
                .into_iter()
                .filter(|p| p.technician_id.is_none())
                .collect();
            pycs.push(PycSection { title: "Kỹ thuật: PYC đã tạo, chưa giao ai", rows: unassigned });
        }
        Ok(MyWork { sections: out, pycs })
    }
}

#[derive(Template)]
#[template(path = "hub/my.html")]
pub struct MyWorkPage {
    pub l: Layout,
    pub sections: Vec<WorkSection>,
    pub pycs: Vec<PycSection>,
    /// Partner mails waiting in the inbox (sales and leaders).
    pub to_triage: Option<i64>,
}

#[derive(Template)]
#[template(path = "hub/merchants.html")]
pub struct MerchantsPage {
    pub l: Layout,
    pub q: String,
    pub rows: Vec<(Merchant, i64)>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
}

impl MerchantsPage {
    pub fn page_link(&self, page: i64) -> String {
        format!("/merchants?page={page}&q={}", urlencoding::encode(&self.q))
    }
}

#[derive(Template)]
#[template(path = "hub/merchant.html")]
pub struct MerchantPage {
    pub l: Layout,
    pub merchant: Merchant,
    pub points: Vec<Point>,
    /// The bank-sync business this merchant also runs, if linked.
    pub business: Option<(i64, String)>,
    pub can_link: bool,
}
