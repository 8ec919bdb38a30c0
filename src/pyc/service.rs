//! The PYC workflow: draft from an accepted request → reviewed (B7) → created (B8) →
//! deployed → invoiced (0 đ). It moves the request along (ticket, deploying, replied,
//! invoiced) in the same transactions. Keys are sealed before they reach the database.

use chrono::NaiveDateTime;
use diesel::OptionalExtension;

use super::PycState;
use super::models::{self, PycFields};
use crate::accounts::Role;
use crate::audit::{self, Actor};
use crate::config::{Config, OutboundConfig};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::hub::models as hub;
use crate::hub::notice::{self, Event};
use crate::hub::state::State;
use crate::secrets::{self, Keyring};

pub const MAX_SCREENSHOT_BYTES: usize = 5 * 1024 * 1024;

fn stale() -> AppError {
    AppError::Conflict("PYC vừa được người khác cập nhật. Vui lòng tải lại trang.".into())
}

struct Context {
    request: hub::Request,
    partner: crate::hub::partners::Partner,
    merchant: hub::Merchant,
    points: Vec<hub::Point>,
}

fn context(conn: &mut DbConn, request_id: i64) -> AppResult<Context> {
    let request = hub::request(conn, request_id)?;
    let partner =
        crate::hub::partners::all(conn)?.into_iter().find(|p| p.id == request.partner_id).ok_or(AppError::NotFound)?;
    let merchant = hub::merchant(conn, request.merchant_id)?;
    let points = hub::request_point_list(conn, request_id)?;
    Ok(Context { request, partner, merchant, points })
}

fn fill(text: &str, c: &Context) -> String {
    let first = c.points.first();
    text.replace("{partner}", &c.partner.code)
        .replace("{cms}", if c.partner.cms_admin_name.is_empty() { &c.partner.code } else { &c.partner.cms_admin_name })
        .replace("{point}", &c.points.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "))
        .replace("{address}", first.map(|p| p.address.as_str()).unwrap_or(""))
        .replace(
            "{contact}",
            first.map(|p| p.contact_name.as_str()).filter(|s| !s.is_empty()).unwrap_or(&c.merchant.contact_name),
        )
        .replace("{phone}", first.map(|p| p.phone.as_str()).filter(|s| !s.is_empty()).unwrap_or(&c.merchant.phone))
}

/// The PYC as prefilled for an accepted request (the form shows it for editing).
pub fn draft_fields(conn: &mut DbConn, request_id: i64) -> AppResult<(PycFields, models::Template)> {
    let c = context(conn, request_id)?;
    let template = template_for(conn, &c.partner.kind, None)?;
    let opened = crate::fmt::local_date(c.request.opened_on);
    let first = c.points.first();
    let fields = PycFields {
        customer_name: if c.partner.signing_company.is_empty() {
            c.partner.name.clone()
        } else {
            c.partner.signing_company.clone()
        },
        deployment_type: "Extradeploy – tiếp tục từ hợp đồng".into(),
        contract_code: format!("HD-{}-{}", c.partner.code, opened.format("%Y%m%d")),
        signing_rep: if c.partner.signing_company.is_empty() {
            c.partner.name.clone()
        } else {
            c.partner.signing_company.clone()
        },
        product: "HUB → Mở cổng kết nối".into(),
        brand: c.partner.virtual_brand.clone(),
        point_applied: c.partner.virtual_point.clone(),
        location: first.map(|p| format!("{} – {}", p.name, p.address)).unwrap_or_default(),
        support_person: first
            .map(|p| p.contact_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or(c.merchant.contact_name.clone()),
        support_phone: first.map(|p| p.phone.clone()).filter(|s| !s.is_empty()).unwrap_or(c.merchant.phone.clone()),
        notes: fill(&template.body, &c),
    };
    Ok((fields, template))
}

fn validate(f: &PycFields) -> AppResult<()> {
    let required = [
        (&f.customer_name, "Khách hàng"),
        (&f.contract_code, "Mã hợp đồng"),
        (&f.signing_rep, "Đại diện ký"),
        (&f.brand, "Thương hiệu áp dụng"),
        (&f.point_applied, "Điểm áp dụng"),
        (&f.location, "Địa điểm triển khai"),
    ];
    let missing: Vec<&str> = required.iter().filter(|(v, _)| v.trim().is_empty()).map(|(_, l)| *l).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(format!("Còn thiếu: {}.", missing.join(", "))))
    }
}

/// The template a new PYC of partner kind `kind` uses: the one the form was drafted
/// with (`chosen`), or else the newest in use. A stopped or foreign one is refused.
fn template_for(conn: &mut DbConn, kind: &str, chosen: Option<i64>) -> AppResult<models::Template> {
    let Some(id) = chosen else {
        return models::latest_template(conn, kind)?.ok_or_else(|| {
            AppError::Validation(format!(
                "Chưa có mẫu ghi chú PYC đang dùng cho loại đối tác “{kind}”. Quản trị viên cần thêm hoặc dùng lại một mẫu."
            ))
        });
    };
    match models::template(conn, id).optional()? {
        Some(t) if t.kind == kind && t.disabled_at.is_none() => Ok(t),
        Some(t) if t.disabled_at.is_some() => Err(AppError::Validation(format!(
            "Mẫu ghi chú {} v{} đã ngừng dùng. Vui lòng tải lại trang để lập PYC theo mẫu đang dùng.",
            t.kind, t.version
        ))),
        _ => Err(AppError::Validation("Mẫu ghi chú không dùng được cho đối tác này. Vui lòng tải lại trang.".into())),
    }
}

/// Creates the draft PYC of an accepted request, numbered `PYC-YYYY-NNNNNN`, with the
/// newest template in use.
pub fn create(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    request_id: i64,
    fields: &PycFields,
) -> AppResult<i64> {
    create_with_template(conn, config, actor, request_id, fields, None)
}

/// As [`create`], with the template the form was drafted with (`None`: the newest).
pub fn create_with_template(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    request_id: i64,
    fields: &PycFields,
    template_id: Option<i64>,
) -> AppResult<i64> {
    validate(fields)?;
    crate::db::tx(conn, |conn| {
        let c = context(conn, request_id)?;
        if State::from_code(&c.request.state) != Some(State::Accepted) {
            return Err(AppError::Validation("Chỉ tạo PYC cho yêu cầu đã chấp nhận (B2).".into()));
        }
        if models::pyc_of_request(conn, request_id)?.is_some() {
            return Err(AppError::Validation("Yêu cầu này đã có PYC.".into()));
        }
        let template = template_for(conn, &c.partner.kind, template_id)?;
        let year = i64::from(chrono::Datelike::year(&crate::fmt::local_date(now())));
        let n = models::next_number(conn, year)?;
        let number = format!("PYC-{year}-{n:06}");
        let id = models::insert(conn, &number, request_id, fields, template.id, actor.user_id)?;
        for (i, line) in template.items.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let (required, label) = match line.trim().strip_prefix('*') {
                Some(rest) => (true, rest.trim()),
                None => (false, line.trim()),
            };
            models::insert_item(conn, id, i as i64 + 1, &fill(label, &c), required)?;
        }
        note(conn, actor, request_id, &format!("Lập {number} (nháp, mẫu {} v{})", template.kind, template.version))?;
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "create",
            None,
            Some(serde_json::to_value(fields).map_err(AppError::internal)?),
        )?;
        // B7: every leader may review; each is told unless they opted out.
        let leaders = notice::staff_with_role(conn, Role::Leader)?;
        notice::send(
            conn,
            config,
            actor,
            &leaders,
            Event::ReviewNeeded,
            &format!("[hubgate] {number} cần xem lại (B7) – {}", c.merchant.name),
            &format!(
                "{} vừa lập {number} cho {} – {} (đối tác {}). PYC đang chờ trưởng nhóm xem lại (B7).\n\nMở PYC: {}",
                actor.label,
                c.merchant.name,
                c.points.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
                c.partner.code,
                notice::link(config, &format!("/pyc/{id}"))
            ),
        )?;
        Ok(id)
    })
}

/// Edits a draft.
pub fn update(conn: &mut DbConn, actor: &Actor, id: i64, version: i64, fields: &PycFields) -> AppResult<()> {
    validate(fields)?;
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        if !p.in_state(PycState::Draft) {
            return Err(AppError::Validation("Chỉ sửa được PYC nháp.".into()));
        }
        if !models::bump(conn, id, version)? {
            return Err(stale());
        }
        models::set_fields(conn, id, fields)?;
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "update",
            None,
            Some(serde_json::to_value(fields).map_err(AppError::internal)?),
        )?;
        Ok(())
    })
}

/// A line on the request's timeline about its PYC.
fn note(conn: &mut DbConn, actor: &Actor, request_id: i64, body: &str) -> AppResult<()> {
    hub::insert_event(
        conn,
        &hub::NewEvent {
            request_id,
            user_id: actor.user_id,
            actor: &actor.label,
            kind: "comment",
            from_state: None,
            to_state: None,
            body,
            mail_message_id: None,
        },
    )?;
    Ok(())
}

fn move_request(conn: &mut DbConn, actor: &Actor, request_id: i64, to: State, why: &str) -> AppResult<()> {
    let r = hub::request(conn, request_id)?;
    crate::hub::service::transition_in_tx(conn, actor, request_id, r.version, to, why)
}

/// B7 (leader) and B8: draft → reviewed → created; creating puts the request at B3.
pub fn advance(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    id: i64,
    version: i64,
    to: PycState,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        if !p.state().is_some_and(|from| from.can_advance_to(to)) {
            return Err(AppError::Validation(format!("Không thể chuyển PYC từ “{}”.", PycState::label_of(&p.state))));
        }
        if !models::bump(conn, id, version)? {
            return Err(stale());
        }
        models::set_state(conn, id, to)?;
        if to == PycState::Created {
            move_request(conn, actor, p.request_id, State::Ticket, &format!("Đã tạo {}", p.number))?;
            // The technician it was handed to; while nobody is, every technician hears of it.
            let techs = match p.technician_id {
                Some(t) => vec![crate::accounts::models::find(conn, t)?],
                None => notice::staff_with_role(conn, Role::Technician)?,
            };
            let c = context(conn, p.request_id)?;
            notice::send(
                conn,
                config,
                actor,
                &techs,
                Event::PycCreated,
                &format!("[hubgate] {} đã tạo (B8), cần triển khai – {}", p.number, c.merchant.name),
                &format!(
                    "{} đã được tạo (B8) và chờ kỹ thuật triển khai.\nĐịa điểm: {}\nNgười hỗ trợ: {} {}\n\nMở PYC: {}",
                    p.number,
                    p.location,
                    p.support_person,
                    p.support_phone,
                    notice::link(config, &format!("/pyc/{id}"))
                ),
            )?;
        }
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "state",
            Some(serde_json::json!({"state": p.state})),
            Some(serde_json::json!({"state": to.code()})),
        )?;
        Ok(())
    })
}

/// Hands the PYC to one technician (or takes it back with `None`); they are mailed.
pub fn assign_technician(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    id: i64,
    user_id: Option<i64>,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        if p.is_done() {
            return Err(AppError::Validation("PYC đã triển khai xong; không đổi kỹ thuật được nữa.".into()));
        }
        let tech = match user_id {
            Some(uid) => {
                let u = crate::accounts::models::find(conn, uid)
                    .map_err(|_| AppError::Validation("Kỹ thuật viên không hợp lệ.".into()))?;
                if u.disabled
                    || u.kind() != crate::accounts::models::UserKind::Staff
                    || !u.roles().has(Role::Technician)
                {
                    return Err(AppError::Validation("Chỉ giao cho kỹ thuật viên đang hoạt động.".into()));
                }
                Some(u)
            }
            None => None,
        };
        models::set_technician(conn, id, tech.as_ref().map(|u| u.id))?;
        let text = match &tech {
            Some(u) => format!("Giao {} cho kỹ thuật {}", p.number, u.name),
            None => format!("Bỏ giao kỹ thuật của {}", p.number),
        };
        note(conn, actor, p.request_id, &text)?;
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "assign_technician",
            Some(serde_json::json!({"technician_id": p.technician_id})),
            Some(serde_json::json!({"technician_id": tech.as_ref().map(|u| u.id)})),
        )?;
        if let Some(u) = tech {
            let c = context(conn, p.request_id)?;
            notice::send(
                conn,
                config,
                actor,
                std::slice::from_ref(&u),
                Event::Assigned,
                &format!("[hubgate] Bạn được giao triển khai {} – {}", p.number, c.merchant.name),
                &format!(
                    "{} giao cho bạn triển khai {} ({}).\nĐịa điểm: {}\nTrạng thái PYC: {}\n\nMở PYC: {}",
                    actor.label,
                    p.number,
                    c.partner.code,
                    p.location,
                    PycState::label_of(&p.state),
                    notice::link(config, &format!("/pyc/{id}"))
                ),
            )?;
        }
        Ok(())
    })
}

fn ensure_deploying(conn: &mut DbConn, actor: &Actor, p: &models::Pyc) -> AppResult<()> {
    if !p.in_state(PycState::Created) {
        return Err(AppError::Validation("Chỉ triển khai PYC đã tạo (B8) và chưa hoàn tất.".into()));
    }
    let r = hub::request(conn, p.request_id)?;
    if State::from_code(&r.state) == Some(State::Ticket) {
        move_request(conn, actor, p.request_id, State::Deploying, "Kỹ thuật bắt đầu triển khai")?;
    }
    Ok(())
}

/// A technician ticks (or unticks) a checklist item; who and when are kept.
pub fn tick(conn: &mut DbConn, actor: &Actor, id: i64, item_id: i64, done: bool) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        ensure_deploying(conn, actor, &p)?;
        let by = actor.user_id.unwrap_or_default();
        if models::tick(conn, id, item_id, done.then(|| (by, now())))? != 1 {
            return Err(AppError::NotFound);
        }
        audit::record(
            conn,
            actor,
            "pyc_item",
            item_id,
            if done { "done" } else { "undone" },
            None,
            Some(serde_json::json!({"pyc_id": id})),
        )?;
        Ok(())
    })
}

/// Deployment data; Key1/Key2 are sealed, an empty key field keeps the stored one.
#[allow(clippy::too_many_arguments)]
pub fn save_data(
    conn: &mut DbConn,
    keys: &Keyring,
    actor: &Actor,
    id: i64,
    pos_parent: &str,
    pos_id: &str,
    point_code: &str,
    key1: &str,
    key2: &str,
) -> AppResult<()> {
    let seal = |column: &secrets::Column, k: &str| -> AppResult<Option<String>> {
        if k.trim().is_empty() {
            Ok(None)
        } else {
            keys.seal(column, id, k.trim()).map(Some).map_err(|e| AppError::internal(anyhow::anyhow!(e)))
        }
    };
    let (k1, k2) = (seal(&secrets::PYC_KEY1, key1)?, seal(&secrets::PYC_KEY2, key2)?);
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        ensure_deploying(conn, actor, &p)?;
        models::set_deployment_data(
            conn,
            id,
            pos_parent.trim(),
            pos_id.trim(),
            point_code.trim(),
            k1.as_deref(),
            k2.as_deref(),
        )?;
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "deployment_data",
            None,
            Some(
                serde_json::json!({"pos_parent": pos_parent.trim(), "pos_id": pos_id.trim(), "point_code": point_code.trim(), "key1_changed": k1.is_some(), "key2_changed": k2.is_some()}),
            ),
        )?;
        Ok(())
    })
}

/// The screenshot of the successful connection: PNG, JPEG or WebP, at most 5 MB,
/// checked by its bytes, not by what the browser claims.
pub fn save_screenshot(conn: &mut DbConn, actor: &Actor, id: i64, bytes: &[u8]) -> AppResult<()> {
    // By its bytes, as mail attachments are: the upload's name and type are the browser's word.
    let kind = match crate::web::inline::sniff(bytes) {
        Some(crate::web::inline::Preview::Image(m @ ("image/png" | "image/jpeg" | "image/webp"))) => m,
        _ => return Err(AppError::Validation("Ảnh phải là PNG, JPEG hoặc WebP.".into())),
    };
    if bytes.len() > MAX_SCREENSHOT_BYTES {
        return Err(AppError::Validation("Ảnh lớn hơn 5 MB.".into()));
    }
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        ensure_deploying(conn, actor, &p)?;
        models::set_screenshot(conn, id, bytes, kind)?;
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "screenshot",
            None,
            Some(serde_json::json!({"type": kind, "bytes": bytes.len()})),
        )?;
        Ok(())
    })
}

/// Key1 and Key2 in clear, for an allowed role; every reveal is audited.
pub fn reveal_keys(conn: &mut DbConn, keys: &Keyring, actor: &Actor, id: i64) -> AppResult<(String, String)> {
    let p = models::pyc(conn, id)?;
    let open = |column: &secrets::Column, v: &Option<String>| -> AppResult<String> {
        match v {
            Some(s) => keys.open(column, id, s).map_err(|e| e.for_people(column, id)),
            None => Ok(String::new()),
        }
    };
    let keys = (open(&secrets::PYC_KEY1, &p.key1_enc)?, open(&secrets::PYC_KEY2, &p.key2_enc)?);
    audit::record(conn, actor, "pyc", id, "reveal_keys", None, None)?;
    Ok(keys)
}

/// What is still missing before the PYC can be marked deployed.
pub fn deploy_blockers(conn: &mut DbConn, p: &models::Pyc) -> AppResult<Vec<String>> {
    let kind = models::template(conn, p.template_id)?.kind;
    let mut out: Vec<String> = models::items(conn, p.id)?
        .into_iter()
        .filter(|i| i.required && i.done_at.is_none())
        .map(|i| format!("Chưa xong: {}", i.label))
        .collect();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            out.push(format!("Thiếu {what}."));
        }
    };
    need(!p.pos_parent.is_empty(), "POS Parent");
    need(!p.pos_id.is_empty(), "POS ID");
    if kind == "payment" {
        need(p.key1_enc.is_some(), "Key1");
        need(p.key2_enc.is_some(), "Key2");
    } else {
        need(!p.point_code.is_empty(), "mã điểm");
    }
    need(p.screenshot_type.is_some(), "ảnh kết nối thành công");
    Ok(out)
}

/// The technician marks the deployment done: refused while anything is missing.
pub fn mark_deployed(conn: &mut DbConn, actor: &Actor, id: i64, version: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        if !p.in_state(PycState::Created) {
            return Err(AppError::Validation("PYC không ở trạng thái đang triển khai.".into()));
        }
        let blockers = deploy_blockers(conn, &p)?;
        if !blockers.is_empty() {
            return Err(AppError::Validation(format!("Chưa thể hoàn tất: {}", blockers.join(" "))));
        }
        if !models::bump(conn, id, version)? {
            return Err(stale());
        }
        ensure_deploying(conn, actor, &p)?;
        models::set_deployed(conn, id, actor.user_id.unwrap_or_default(), now())?;
        // The point now carries its POS identifiers.
        for point in hub::request_point_list(conn, p.request_id)? {
            hub::set_point_pos(conn, point.id, &p.pos_parent, &p.pos_id, &p.point_code)?;
        }
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "deployed",
            Some(serde_json::json!({"state": PycState::Created.code()})),
            Some(serde_json::json!({"state": PycState::Deployed.code()})),
        )?;
        Ok(())
    })
}

/// B5: the reply to the partner with POS Parent, POS ID (point code) and the screenshot.
pub fn reply_draft(conn: &mut DbConn, id: i64, sender: &str) -> AppResult<crate::hub::service::AcceptanceDraft> {
    let p = models::pyc(conn, id)?;
    let mut d = crate::hub::service::acceptance_draft(conn, p.request_id, sender)?;
    let c = context(conn, p.request_id)?;
    let kind = models::template(conn, p.template_id)?.kind;
    if !c.partner.reply_template.trim().is_empty() {
        let points = c.points.iter().map(|p| format!("- {} – {}", p.name, p.address)).collect::<Vec<_>>().join("\n");
        d.body = c
            .partner
            .reply_template
            .replace("{partner}", &c.partner.name)
            .replace("{merchant}", &c.merchant.name)
            .replace("{points}", &points)
            .replace("{pos_parent}", &p.pos_parent)
            .replace("{pos_id}", &p.pos_id)
            .replace("{point_code}", &p.point_code)
            .replace("{pyc}", &p.number)
            .replace("{sender}", sender);
        return Ok(d);
    }
    let mut body = format!(
        "Kính gửi {},\n\niPOS đã triển khai xong kết nối HUB cho {} – {}.\n\nPOS Parent: {}\nPOS ID: {}\n",
        c.partner.name,
        c.merchant.name,
        c.points.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        p.pos_parent,
        p.pos_id
    );
    if kind == "voucher" {
        body.push_str(&format!("Mã điểm: {}\n", p.point_code));
    }
    body.push_str(&format!(
        "\nẢnh kết nối thành công đính kèm. Nhờ {} duyệt điểm trên {}.\n\nTrân trọng,\n{sender}\niPOS",
        c.partner.code, c.partner.cms_admin_name
    ));
    d.body = body;
    Ok(d)
}

pub fn send_reply(
    conn: &mut DbConn,
    outbound: &OutboundConfig,
    actor: &Actor,
    id: i64,
    version: i64,
    draft: &crate::hub::service::AcceptanceDraft,
) -> AppResult<i64> {
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        if !p.in_state(PycState::Deployed) {
            return Err(AppError::Validation("Chỉ phản hồi đối tác sau khi PYC đã triển khai xong.".into()));
        }
        if !models::bump(conn, id, version)? {
            return Err(stale());
        }
        let (shot, kind) = models::screenshot(conn, id)?;
        let ext = match kind.as_deref() {
            Some("image/jpeg") => "jpg",
            Some("image/webp") => "webp",
            _ => "png",
        };
        let mail = crate::mail::outbound::OutgoingMail {
            to: crate::mail::outbound::split_addresses(&draft.to),
            cc: crate::mail::outbound::split_addresses(&draft.cc),
            subject: draft.subject.clone(),
            text: draft.body.clone(),
            in_reply_to: draft.in_reply_to.clone(),
            references: draft.references.clone(),
            attachments: shot
                .map(|b| vec![(format!("ket-noi-thanh-cong-{}.{ext}", p.number), kind.clone().unwrap_or_default(), b)])
                .unwrap_or_default(),
            request_id: Some(p.request_id),
        };
        let outbox = crate::mail::outbound::queue_mail(conn, outbound, actor, &mail)?;
        move_request(conn, actor, p.request_id, State::Replied, "Gửi lại thông tin cho đối tác (B5)")?;
        for item in models::items(conn, id)?.into_iter().filter(|i| i.done_at.is_none() && !i.required) {
            models::tick(conn, id, item.id, Some((actor.user_id.unwrap_or_default(), now())))?;
        }
        Ok(outbox)
    })
}

/// The 0 đ invoice closes the PYC (and the request once replied).
pub fn record_invoice(
    conn: &mut DbConn,
    actor: &Actor,
    id: i64,
    version: i64,
    number: &str,
    date: NaiveDateTime,
) -> AppResult<()> {
    let number = number.trim();
    if number.is_empty() {
        return Err(AppError::Validation("Vui lòng nhập số hóa đơn.".into()));
    }
    crate::db::tx(conn, |conn| {
        let p = models::pyc(conn, id)?;
        if !p.in_state(PycState::Deployed) {
            return Err(AppError::Validation("Chỉ xuất hóa đơn 0 đ cho PYC đã triển khai.".into()));
        }
        if !models::bump(conn, id, version)? {
            return Err(stale());
        }
        models::set_invoice(conn, id, number, date)?;
        let r = hub::request(conn, p.request_id)?;
        if matches!(State::from_code(&r.state), Some(State::Replied) | Some(State::Reported)) {
            move_request(conn, actor, p.request_id, State::Invoiced, &format!("Hóa đơn 0 đ số {number}"))?;
        }
        audit::record(
            conn,
            actor,
            "pyc",
            id,
            "invoice",
            None,
            Some(serde_json::json!({"invoice_no": number, "date": date.to_string()})),
        )?;
        Ok(())
    })
}

/// Saves a new version of the note template of a partner kind; returns its id.
pub fn save_template(conn: &mut DbConn, actor: &Actor, kind: &str, body: &str, items: &str) -> AppResult<i64> {
    let kind = kind.trim().to_lowercase();
    if kind.is_empty() || body.trim().is_empty() || items.trim().is_empty() {
        return Err(AppError::Validation("Cần loại đối tác, nội dung ghi chú và danh sách việc.".into()));
    }
    crate::db::tx(conn, |conn| {
        let id = models::insert_template(conn, &kind, body, items, actor.user_id)?;
        audit::record(conn, actor, "pyc_template", id, "create", None, Some(serde_json::json!({"kind": kind})))?;
        Ok(id)
    })
}

/// Stops (`disabled`) or resumes using a template version for new PYCs; PYCs made
/// with it keep it. Returns its label ("payment v2").
pub fn set_template_disabled(conn: &mut DbConn, actor: &Actor, id: i64, disabled: bool) -> AppResult<String> {
    crate::db::tx(conn, |conn| {
        let t = models::template(conn, id)?;
        let label = format!("{} v{}", t.kind, t.version);
        if t.disabled_at.is_some() == disabled {
            return Ok(label);
        }
        let at = disabled.then(now);
        models::set_template_disabled(conn, id, at)?;
        audit::record(
            conn,
            actor,
            "pyc_template",
            id,
            if disabled { "disable" } else { "enable" },
            Some(serde_json::json!({"template": label, "disabled_at": t.disabled_at})),
            Some(serde_json::json!({"template": label, "disabled_at": at})),
        )?;
        Ok(label)
    })
}
