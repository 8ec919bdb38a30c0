//! The connection request workflow. Every function validates, runs in one
//! transaction, writes a timeline event and an audit row.

use super::models::{self, NewEvent, NewPoint, NewRequest, Request};
use super::state::State;
use crate::audit::{self, Actor};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::mail::inbound::classify::{Kind, fold};
use crate::mail::inbound::models as mail;

/// Confirmation kinds: the merchant's, and the partner leader's (MoMo).
pub const MERCHANT: &str = "merchant";
pub const LEADER: &str = "leader";

/// What a person types (or the mail suggests) to open a request.
#[derive(Debug, Clone, Default)]
pub struct OpenRequest {
    pub partner_id: i64,
    pub mail_id: Option<i64>,
    pub merchant_name: String,
    pub merchant_contact: String,
    pub merchant_phone: String,
    pub point_name: String,
    pub point_address: String,
    pub point_contact: String,
    pub point_phone: String,
    /// Further points of the same merchant: (name, address).
    pub extra_points: Vec<(String, String)>,
}

/// Parses "Tên điểm – địa chỉ" (or "|" / " - ") lines into (name, address).
pub fn parse_point_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let split = l.split_once(" – ").or_else(|| l.split_once('|')).or_else(|| l.split_once(" - "));
            match split {
                Some((n, a)) => (n.trim().to_string(), a.trim().to_string()),
                None => (l.to_string(), String::new()),
            }
        })
        .collect()
}

fn event(
    conn: &mut DbConn,
    actor: &Actor,
    request_id: i64,
    kind: &str,
    body: &str,
    mail_id: Option<i64>,
) -> AppResult<()> {
    models::insert_event(
        conn,
        &NewEvent {
            request_id,
            user_id: actor.user_id,
            actor: &actor.label,
            kind,
            from_state: None,
            to_state: None,
            body,
            mail_message_id: mail_id,
        },
    )?;
    Ok(())
}

/// Opens a request, from a partner mail or by hand; merchant and point are found by
/// name (case and diacritics folded) or created.
pub fn open_request(conn: &mut DbConn, actor: &Actor, input: &OpenRequest) -> AppResult<i64> {
    let merchant_name = input.merchant_name.trim();
    let point_name = input.point_name.trim();
    if merchant_name.is_empty() {
        return Err(AppError::Validation("Vui lòng nhập tên merchant.".into()));
    }
    if point_name.is_empty() {
        return Err(AppError::Validation("Vui lòng nhập tên điểm cần kết nối.".into()));
    }
    crate::db::tx(conn, |conn| {
        let partner = super::reference::active_partner(conn, input.partner_id)?;
        let opening = match input.mail_id {
            Some(id) => {
                let m = mail::message(conn, id)?;
                if let Some(rid) = mail::thread(conn, m.thread_id)?.request_id {
                    return Err(AppError::Validation(format!("Luồng thư này đã gắn với yêu cầu #{rid}.")));
                }
                Some(m)
            }
            None => None,
        };
        let mkey = fold(merchant_name);
        let merchant_id = models::ensure_merchant(
            conn,
            merchant_name,
            input.merchant_contact.trim(),
            input.merchant_phone.trim(),
            &mkey,
        )?;
        let pkey = fold(point_name);
        let point_id = models::ensure_point(
            conn,
            &NewPoint {
                merchant_id,
                name: point_name,
                address: input.point_address.trim(),
                contact_name: input.point_contact.trim(),
                phone: input.point_phone.trim(),
                key: &pkey,
            },
        )?;
        let id = models::insert_request(
            conn,
            &NewRequest {
                partner_id: partner.id,
                merchant_id,
                opening_mail_id: opening.as_ref().map(|m| m.id),
                opened_on: opening.as_ref().and_then(|m| m.sent_at).unwrap_or_else(now),
                created_by: actor.user_id,
            },
        )?;
        models::link_point(conn, id, point_id)?;
        let mut linked = vec![point_id];
        for (name, address) in &input.extra_points {
            let key = fold(name);
            let pid = models::ensure_point(
                conn,
                &NewPoint {
                    merchant_id,
                    name,
                    address,
                    contact_name: input.point_contact.trim(),
                    phone: input.point_phone.trim(),
                    key: &key,
                },
            )?;
            if !linked.contains(&pid) {
                models::link_point(conn, id, pid)?;
                linked.push(pid);
            }
        }
        models::insert_event(
            conn,
            &NewEvent {
                request_id: id,
                user_id: actor.user_id,
                actor: &actor.label,
                kind: "state",
                from_state: None,
                to_state: Some(State::Received.code()),
                body: &format!("Mở yêu cầu kết nối {} cho {merchant_name} – {point_name}", partner.code),
                mail_message_id: opening.as_ref().map(|m| m.id),
            },
        )?;
        if let Some(m) = &opening {
            attach_thread(conn, actor, id, m.thread_id)?;
        }
        audit::record(
            conn,
            actor,
            "request",
            id,
            "open",
            None,
            Some(
                serde_json::json!({"partner": partner.code, "merchant_id": merchant_id, "point_id": point_id, "mail_id": input.mail_id}),
            ),
        )?;
        Ok(id)
    })
}

/// Ties a mail conversation to a request and records the confirmations it holds.
fn attach_thread(conn: &mut DbConn, actor: &Actor, request_id: i64, thread_id: i64) -> AppResult<()> {
    if !mail::attach_thread(conn, thread_id, request_id)? {
        // Someone tied it a moment ago: this whole transaction (a new request with its
        // merchant and point included) is rolled back.
        let other = mail::thread(conn, thread_id)?.request_id.map(|r| format!(" #{r}")).unwrap_or_default();
        return Err(AppError::Conflict(format!("Luồng thư này vừa được gắn với yêu cầu{other}; hãy mở yêu cầu đó.")));
    }
    for m in mail::thread_messages(conn, thread_id)? {
        record_mail_confirmation(conn, actor, request_id, &m)?;
    }
    Ok(())
}

fn record_mail_confirmation(conn: &mut DbConn, actor: &Actor, request_id: i64, m: &mail::MailMessage) -> AppResult<()> {
    let kind = match Kind::from_code(&m.kind) {
        Kind::MerchantConfirmation => MERCHANT,
        Kind::LeaderConfirmation => LEADER,
        _ => return Ok(()),
    };
    if models::confirmations_of(conn, request_id)?.iter().any(|c| c.mail_message_id == Some(m.id)) {
        return Ok(());
    }
    let who = m.forwarded_from.clone().unwrap_or_else(|| m.from_addr.clone());
    models::insert_confirmation(conn, request_id, kind, Some(m.id), None, &format!("Thư của {who}"))?;
    let label = if kind == MERCHANT { "Xác nhận của merchant" } else { "Xác nhận của leader đối tác" };
    event(conn, actor, request_id, "confirmation", &format!("{label} qua thư của {who}"), Some(m.id))
}

/// Called by mail ingest for a message that joined a thread tied to a request.
pub fn on_mail_stored(conn: &mut DbConn, message_id: i64) -> AppResult<()> {
    let m = mail::message(conn, message_id)?;
    let Some(request_id) = mail::thread(conn, m.thread_id)?.request_id else {
        return Ok(());
    };
    mail::set_status(conn, m.id, "attached", None)?;
    let actor = Actor::system("mail");
    event(conn, &actor, request_id, "mail", &format!("Thư mới từ {}: {}", m.from_addr, m.subject), Some(m.id))?;
    record_mail_confirmation(conn, &actor, request_id, &m)
}

/// Attaches the conversation of `mail_id` to an existing request.
pub fn attach_mail(conn: &mut DbConn, actor: &Actor, request_id: i64, mail_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let r = models::request(conn, request_id)?;
        let m = mail::message(conn, mail_id)?;
        match mail::thread(conn, m.thread_id)?.request_id {
            Some(other) if other == r.id => {
                return Err(AppError::Validation("Thư này đã gắn với yêu cầu này.".into()));
            }
            Some(other) => {
                return Err(AppError::Validation(format!("Luồng thư này đã gắn với yêu cầu #{other}.")));
            }
            None => {}
        }
        attach_thread(conn, actor, r.id, m.thread_id)?;
        event(conn, actor, r.id, "mail", &format!("Gắn luồng thư “{}”", m.subject), Some(m.id))?;
        audit::record(
            conn,
            actor,
            "request",
            r.id,
            "attach_mail",
            None,
            Some(serde_json::json!({"mail_id": mail_id})),
        )?;
        Ok(())
    })
}

/// A leader records a confirmation by hand (phone call, chat...), with the reason.
pub fn manual_confirmation(
    conn: &mut DbConn,
    actor: &Actor,
    request_id: i64,
    kind: &str,
    reason: &str,
) -> AppResult<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::Validation("Vui lòng ghi lý do xác nhận thủ công.".into()));
    }
    if kind != MERCHANT && kind != LEADER {
        return Err(AppError::Validation("Loại xác nhận không hợp lệ.".into()));
    }
    crate::db::tx(conn, |conn| {
        let r = models::request(conn, request_id)?;
        if State::from_code(&r.state) != Some(State::Received) {
            return Err(AppError::Validation("Chỉ ghi nhận xác nhận khi yêu cầu đang chờ chấp nhận (B1).".into()));
        }
        let id = models::insert_confirmation(conn, r.id, kind, None, actor.user_id, reason)?;
        let label = if kind == MERCHANT { "merchant" } else { "leader đối tác" };
        event(conn, actor, r.id, "confirmation", &format!("Ghi nhận thủ công xác nhận của {label}: {reason}"), None)?;
        audit::record(
            conn,
            actor,
            "confirmation",
            id,
            "create_manual",
            None,
            Some(serde_json::json!({"request_id": r.id, "kind": kind, "reason": reason})),
        )?;
        Ok(())
    })
}

/// Unlinks a wrong confirmation (kept in history as revoked).
pub fn revoke_confirmation(conn: &mut DbConn, actor: &Actor, request_id: i64, confirmation_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let c = models::confirmation(conn, confirmation_id)?;
        if c.request_id != request_id {
            return Err(AppError::NotFound);
        }
        if c.revoked_at.is_some() {
            return Err(AppError::Validation("Xác nhận này đã được gỡ.".into()));
        }
        let r = models::request(conn, request_id)?;
        if State::from_code(&r.state) != Some(State::Received) {
            return Err(AppError::Validation("Yêu cầu đã được chấp nhận; không gỡ xác nhận được nữa.".into()));
        }
        models::revoke_confirmation(conn, c.id, actor.user_id.unwrap_or_default())?;
        event(conn, actor, r.id, "confirmation", "Gỡ một xác nhận không đúng", c.mail_message_id)?;
        audit::record(
            conn,
            actor,
            "confirmation",
            c.id,
            "revoke",
            Some(serde_json::json!({"kind": c.kind, "mail_id": c.mail_message_id})),
            None,
        )?;
        Ok(())
    })
}

/// What is still missing before the request can move on, in Vietnamese.
pub fn missing(conn: &mut DbConn, r: &Request) -> AppResult<Vec<String>> {
    let partners = crate::hub::partners::briefs(conn)?;
    Ok(missing_of(conn, std::slice::from_ref(r), &partners)?.pop().unwrap_or_default())
}

/// [`missing`] for a page of requests: one query for all their confirmations.
pub fn missing_of(
    conn: &mut DbConn,
    requests: &[Request],
    partners: &[crate::hub::partners::Brief],
) -> AppResult<Vec<Vec<String>>> {
    let received: Vec<i64> =
        requests.iter().filter(|r| State::from_code(&r.state) == Some(State::Received)).map(|r| r.id).collect();
    let live = if received.is_empty() { Vec::new() } else { models::live_confirmation_kinds_of(conn, &received)? };
    let has = |id: i64, kind: &str| live.iter().any(|(r, k)| *r == id && k == kind);
    Ok(requests
        .iter()
        .map(|r| {
            let partner = partners.iter().find(|p| p.id == r.partner_id);
            missing_for(&r.state, partner, has(r.id, MERCHANT), has(r.id, LEADER))
        })
        .collect())
}

/// What a request in `state` still misses, given whether its merchant's and its
/// partner's leader's confirmations are in. Only B1 waits for them.
pub fn missing_for(
    state: &str,
    partner: Option<&crate::hub::partners::Brief>,
    merchant_confirmed: bool,
    leader_confirmed: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if State::from_code(state) == Some(State::Received) {
        if !merchant_confirmed {
            out.push("Chưa có xác nhận của merchant.".to_string());
        }
        if let Some(p) = partner
            && p.leader_confirmation_required
            && !leader_confirmed
        {
            out.push(format!("Chưa có xác nhận của leader {} (bắt buộc với đối tác này).", p.code));
        }
    }
    out
}

/// Who acts next, for the request page and "Việc của tôi".
pub fn next_step(state: State, missing: &[String]) -> &'static str {
    match state {
        State::Received if !missing.is_empty() => "Kinh doanh theo dõi để nhận đủ xác nhận",
        State::Received => "Kinh doanh gửi mail chấp nhận mở cổng (B2)",
        State::Accepted => "Kinh doanh tạo PYC (B3)",
        State::Ticket => "Trưởng nhóm xem lại PYC, kỹ thuật nhận triển khai",
        State::Deploying => "Kỹ thuật hoàn thành checklist triển khai",
        State::Replied => "Cuối tháng báo kế toán (B6)",
        State::Reported => "Kế toán xuất hóa đơn 0 đ (B8)",
        State::Invoiced | State::Rejected | State::Cancelled => "Đã đóng",
    }
}

/// Moves a request. `version` is the one the form was shown with: a stale form
/// (someone else moved the request meanwhile) is refused, never applied twice.
pub fn transition(
    conn: &mut DbConn,
    actor: &Actor,
    request_id: i64,
    version: i64,
    to: State,
    reason: &str,
) -> AppResult<()> {
    // By hand a request is only rejected or cancelled. Every other step happens through
    // its own action (the acceptance mail, the PYC, the checklist, the B5 mail, the
    // invoice), so a crafted form cannot skip them.
    match to {
        State::Rejected | State::Cancelled => {}
        State::Accepted => {
            return Err(AppError::Validation(
                "Chấp nhận (B2) đi kèm mail chấp nhận: dùng nút “Soạn mail chấp nhận”.".into(),
            ));
        }
        other => {
            return Err(AppError::Validation(format!(
                "Không thể chuyển tay sang “{}”: bước này chỉ diễn ra qua thao tác của nó (PYC, checklist triển khai, mail phản hồi, hóa đơn).",
                other.label()
            )));
        }
    }
    crate::db::tx(conn, |conn| transition_inner(conn, actor, request_id, version, to, reason))
}

/// A move made by another domain (the PYC workflow) inside its own transaction.
pub(crate) fn transition_in_tx(
    conn: &mut DbConn,
    actor: &Actor,
    request_id: i64,
    version: i64,
    to: State,
    reason: &str,
) -> AppResult<()> {
    transition_inner(conn, actor, request_id, version, to, reason)
}

/// The move itself, inside the caller's transaction.
fn transition_inner(
    conn: &mut DbConn,
    actor: &Actor,
    request_id: i64,
    version: i64,
    to: State,
    reason: &str,
) -> AppResult<()> {
    let reason = reason.trim();
    {
        let r = models::request(conn, request_id)?;
        let from = State::from_code(&r.state)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("unknown state {}", r.state)))?;
        if r.version != version {
            return Err(AppError::Conflict(
                "Yêu cầu vừa được người khác cập nhật. Vui lòng tải lại trang để xem trạng thái mới.".into(),
            ));
        }
        if !from.can_move_to(to) {
            return Err(AppError::Validation(format!("Không thể chuyển từ “{}” sang “{}”.", from.label(), to.label())));
        }
        if matches!(to, State::Rejected | State::Cancelled) && reason.is_empty() {
            return Err(AppError::Validation("Vui lòng ghi lý do.".into()));
        }
        if to == State::Accepted {
            let missing = missing(conn, &r)?;
            if !missing.is_empty() {
                return Err(AppError::Validation(format!("Chưa thể chấp nhận: {}", missing.join(" "))));
            }
        }
        let closing = matches!(to, State::Rejected | State::Cancelled).then_some(reason);
        if !models::move_state(conn, r.id, version, to.code(), closing, now())? {
            return Err(AppError::Conflict(
                "Yêu cầu vừa được người khác cập nhật. Vui lòng tải lại trang để xem trạng thái mới.".into(),
            ));
        }
        models::insert_event(
            conn,
            &NewEvent {
                request_id: r.id,
                user_id: actor.user_id,
                actor: &actor.label,
                kind: "state",
                from_state: Some(from.code()),
                to_state: Some(to.code()),
                body: reason,
                mail_message_id: None,
            },
        )?;
        audit::record(
            conn,
            actor,
            "request",
            r.id,
            "transition",
            Some(serde_json::json!({"state": from.code(), "version": version})),
            Some(serde_json::json!({"state": to.code(), "reason": reason})),
        )?;
        Ok(())
    }
}

/// A comment on the timeline; internal notes are for staff only (never mailed).
pub fn comment(conn: &mut DbConn, actor: &Actor, request_id: i64, body: &str, internal: bool) -> AppResult<()> {
    let body = body.trim();
    if body.is_empty() {
        return Err(AppError::Validation("Nội dung bình luận trống.".into()));
    }
    crate::db::tx(conn, |conn| {
        let r = models::request(conn, request_id)?;
        event(conn, actor, r.id, if internal { "note" } else { "comment" }, body, None)?;
        audit::record(conn, actor, "request", r.id, "comment", None, Some(serde_json::json!({"internal": internal})))?;
        Ok(())
    })
}

/// The acceptance mail as proposed to the user (who may edit it before sending).
#[derive(Debug, Clone, Default)]
pub struct AcceptanceDraft {
    pub to: String,
    pub cc: String,
    pub subject: String,
    pub body: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

#[derive(askama::Template)]
#[template(path = "hub/mail/accept.txt", escape = "none")]
struct AcceptText<'a> {
    partner: &'a str,
    merchant: &'a str,
    points: &'a [models::Point],
    sender: &'a str,
}

/// Drafts the B2 mail: a reply in the partner's thread, from the partner's template
/// (placeholders {partner}, {merchant}, {points}, {sender}) or the default one.
pub fn acceptance_draft(conn: &mut DbConn, request_id: i64, sender: &str) -> AppResult<AcceptanceDraft> {
    use askama::Template;
    let r = models::request(conn, request_id)?;
    let partner =
        crate::hub::partners::all(conn)?.into_iter().find(|p| p.id == r.partner_id).ok_or(AppError::NotFound)?;
    let merchant = models::merchant(conn, r.merchant_id)?;
    let points = models::request_point_list(conn, r.id)?;
    let messages = mail::request_messages(conn, r.id)?;
    let opening = match r.opening_mail_id {
        Some(id) => Some(mail::message(conn, id)?),
        None => None,
    };
    let body = if partner.accept_template.trim().is_empty() {
        AcceptText { partner: &partner.name, merchant: &merchant.name, points: &points, sender }.render()?
    } else {
        let list = points.iter().map(|p| format!("- {} – {}", p.name, p.address)).collect::<Vec<_>>().join("\n");
        partner
            .accept_template
            .replace("{partner}", &partner.name)
            .replace("{merchant}", &merchant.name)
            .replace("{points}", &list)
            .replace("{sender}", sender)
    };
    // Answer the partner's latest mail; reference the whole conversation.
    let partner_mails: Vec<_> = messages.iter().filter(|m| partner.owns_address(&m.from_addr)).collect();
    let parent = partner_mails
        .iter()
        .rev()
        .find(|m| !partner.is_leader(&m.from_addr))
        .or(partner_mails.last())
        .copied()
        .or(opening.as_ref());
    let to = parent
        .map(|m| if m.reply_to.is_empty() { m.from_addr.clone() } else { m.reply_to.clone() })
        .unwrap_or_default();
    // The merchant and the partner leaders who confirmed stay in copy.
    let merchant_addrs: Vec<String> = messages
        .iter()
        .filter(|m| matches!(Kind::from_code(&m.kind), Kind::MerchantConfirmation | Kind::LeaderConfirmation))
        .map(|m| m.forwarded_from.clone().unwrap_or_else(|| m.from_addr.clone()))
        .filter(|a| *a != to)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // The subject of the partner's opening mail, not of a later forward.
    let base_subject = opening
        .as_ref()
        .or(partner_mails.first().copied())
        .map(|m| m.subject.clone())
        .unwrap_or_else(|| format!("Mở cổng kết nối HUB - {}", merchant.name));
    let subject = if crate::mail::inbound::classify::fold(&base_subject).starts_with("re:") {
        base_subject
    } else {
        format!("RE: {base_subject}")
    };
    Ok(AcceptanceDraft {
        to,
        cc: merchant_addrs.join(", "),
        subject,
        body,
        in_reply_to: parent.and_then(|m| m.message_id.clone()),
        references: messages.iter().filter_map(|m| m.message_id.clone()).collect(),
    })
}

/// B2: accepts the request and queues the acceptance mail in the same transaction
/// (either both happen or neither).
pub fn accept(
    conn: &mut DbConn,
    outbound: &crate::config::OutboundConfig,
    actor: &Actor,
    request_id: i64,
    version: i64,
    draft: &AcceptanceDraft,
) -> AppResult<i64> {
    let to = crate::mail::outbound::split_addresses(&draft.to);
    if to.is_empty() {
        return Err(AppError::Validation("Vui lòng nhập địa chỉ nhận mail chấp nhận.".into()));
    }
    crate::db::tx(conn, |conn| {
        transition_inner(conn, actor, request_id, version, State::Accepted, "Gửi mail chấp nhận mở cổng")?;
        let mail = crate::mail::outbound::OutgoingMail {
            to,
            cc: crate::mail::outbound::split_addresses(&draft.cc),
            subject: draft.subject.clone(),
            text: draft.body.clone(),
            in_reply_to: draft.in_reply_to.clone(),
            references: draft.references.clone(),
            attachments: Vec::new(),
            request_id: Some(request_id),
        };
        let outbox_id = crate::mail::outbound::queue_mail(conn, outbound, actor, &mail)?;
        event(
            conn,
            actor,
            request_id,
            "mail_out",
            &format!("Mail chấp nhận gửi {}: {}", draft.to, draft.subject),
            None,
        )?;
        Ok(outbox_id)
    })
}

/// Hands a request to another staff member (sales or leader).
pub fn assign(
    conn: &mut DbConn,
    config: &crate::config::Config,
    actor: &Actor,
    request_id: i64,
    user_id: i64,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let r = models::request(conn, request_id)?;
        let user = crate::accounts::models::find(conn, user_id)
            .map_err(|_| AppError::Validation("Người phụ trách không hợp lệ.".into()))?;
        if user.disabled || !user.roles().allows(&[crate::accounts::Role::Sale, crate::accounts::Role::Leader]) {
            return Err(AppError::Validation("Chỉ giao cho kinh doanh hoặc trưởng nhóm đang hoạt động.".into()));
        }
        models::set_assignee(conn, r.id, user.id)?;
        event(conn, actor, r.id, "comment", &format!("Giao cho {}", user.name), None)?;
        audit::record(
            conn,
            actor,
            "request",
            r.id,
            "assign",
            Some(serde_json::json!({"assignee_id": r.assignee_id})),
            Some(serde_json::json!({"assignee_id": user.id})),
        )?;
        let partner = crate::hub::partners::all(conn)?.into_iter().find(|p| p.id == r.partner_id);
        let merchant = models::merchant(conn, r.merchant_id)?;
        let state = State::from_code(&r.state).map(|s| s.label()).unwrap_or("?");
        super::notice::send(
            conn,
            config,
            actor,
            std::slice::from_ref(&user),
            super::notice::Event::Assigned,
            &format!("[hubgate] Bạn được giao yêu cầu #{} – {}", r.id, merchant.name),
            &format!(
                "{} giao cho bạn yêu cầu kết nối #{} ({} – {}), đang ở bước “{state}”.\n\nMở yêu cầu: {}",
                actor.label,
                r.id,
                partner.map(|p| p.code).unwrap_or_default(),
                merchant.name,
                super::notice::link(config, &format!("/requests/{}", r.id))
            ),
        )?;
        Ok(())
    })
}
