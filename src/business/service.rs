//! Business operations shared by the merchant pages, the staff pages, the demo and
//! (later) the bank sync. Each validates, runs in one transaction, and audits.
//!
//! Plan rules: a business starts on the free plan; linking its first bank account ever
//! starts a 14-day trial of the trial plan; afterwards the business is back on its own
//! plan (free unless staff upgraded it). When the month's transaction quota is used
//! up, transactions are still synced and stored (nothing is lost) but notifications
//! for them are recorded as held and not sent (new transactions notify again from the
//! next month or after an upgrade); the API keeps answering and reports `planStatus`
//! 0. The plan's account limit is checked when an account is linked.

use chrono::{Duration, NaiveDateTime};

use super::models::{self, BankAccount, Business, BusinessChanges, NewBankAccount, NewBusiness, Plan};
use crate::accounts::merchant::{new_link_token, presented_link, token_hash};
use crate::accounts::service::{normalise_email, validate_email};
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::mail::outbound::{OutgoingMail, queue_mail};

pub const TRIAL_DAYS: i64 = 14;
pub const INVITATION_DAYS: i64 = 7;

/// A member's role in one business.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BizRole {
    Viewer,
    Manager,
    Owner,
}

impl BizRole {
    pub const ALL: [BizRole; 3] = [BizRole::Owner, BizRole::Manager, BizRole::Viewer];

    pub fn code(self) -> &'static str {
        match self {
            BizRole::Owner => "owner",
            BizRole::Manager => "manager",
            BizRole::Viewer => "viewer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            BizRole::Owner => "Chủ sở hữu",
            BizRole::Manager => "Quản lý",
            BizRole::Viewer => "Chỉ xem",
        }
    }

    /// A stored or posted role; anything unknown is refused, never widened.
    pub fn parse(s: &str) -> Option<Self> {
        BizRole::ALL.into_iter().find(|r| r.code() == s.trim())
    }

    pub fn label_of(code: &str) -> &'static str {
        BizRole::parse(code).map(BizRole::label).unwrap_or("?")
    }
}

/// The features a business can say it is interested in (checkboxes at creation).
pub const FEATURES: &[(&str, &str)] = &[
    ("sync", "Đồng bộ giao dịch ngân hàng"),
    ("balance", "Thông báo biến động số dư"),
    ("reconcile", "Đối soát"),
    ("api", "API / webhook"),
    ("report", "Báo cáo thu chi"),
];

pub fn feature_label(code: &str) -> &'static str {
    FEATURES.iter().find(|(c, _)| *c == code).map(|(_, l)| *l).unwrap_or("?")
}

/// What a person types to create or edit a business.
#[derive(Debug, Clone, Default)]
pub struct BusinessInput {
    pub name: String,
    pub website: String,
    pub features: Vec<String>,
}

fn validate(input: &BusinessInput) -> AppResult<(String, String, String)> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err(AppError::Validation("Vui lòng nhập tên doanh nghiệp (tối đa 120 ký tự).".into()));
    }
    let website = input.website.trim();
    if website.chars().count() > 200 || website.chars().any(char::is_whitespace) {
        return Err(AppError::Validation("Website không hợp lệ.".into()));
    }
    let website = if website.is_empty() || website.starts_with("https://") || website.starts_with("http://") {
        website.to_string()
    } else if website.contains('.') && !website.contains("://") {
        format!("https://{website}")
    } else {
        return Err(AppError::Validation("Website không hợp lệ.".into()));
    };
    let mut features = Vec::new();
    for f in &input.features {
        if !FEATURES.iter().any(|(c, _)| c == f) {
            return Err(AppError::Validation("Tính năng không hợp lệ.".into()));
        }
        if !features.contains(&f.as_str()) {
            features.push(f.as_str());
        }
    }
    Ok((name.to_string(), website, features.join(",")))
}

pub fn current_month() -> String {
    crate::reports::Month::of(crate::fmt::local_date(now())).to_string()
}

/// Creates a business with its creator as owner, on the free plan.
pub fn create_business(conn: &mut DbConn, actor: &Actor, user_id: i64, input: &BusinessInput) -> AppResult<Business> {
    let (name, website, features) = validate(input)?;
    crate::db::tx(conn, |conn| {
        let free = models::free_plan(conn)?;
        let t = now();
        let search = crate::mail::inbound::classify::fold(&name);
        let b = models::insert_business(
            conn,
            &NewBusiness {
                name: &name,
                website: &website,
                features: &features,
                plan_id: free.id,
                search_key: &search,
                created_by: user_id,
                created_at: t,
                updated_at: t,
            },
        )?;
        models::insert_member(conn, b.id, user_id, BizRole::Owner.code(), t)?;
        audit::record(conn, actor, "business", b.id, "create", None, Some(b.audit_view()))?;
        Ok(b)
    })
}

pub fn update_business(conn: &mut DbConn, actor: &Actor, id: i64, input: &BusinessInput) -> AppResult<Business> {
    let (name, website, features) = validate(input)?;
    crate::db::tx(conn, |conn| {
        let before = models::business(conn, id)?;
        let search = crate::mail::inbound::classify::fold(&name);
        let after = models::update_business(
            conn,
            id,
            &BusinessChanges {
                name: Some(&name),
                website: Some(&website),
                features: Some(&features),
                search_key: Some(&search),
                updated_at: Some(now()),
                ..Default::default()
            },
        )?;
        audit::record(conn, actor, "business", id, "update", Some(before.audit_view()), Some(after.audit_view()))?;
        Ok(after)
    })
}

/// Deletes a business: only once every linked bank account is removed (the refusal
/// names them), and only when the person typed the business's name.
pub fn delete_business(conn: &mut DbConn, actor: &Actor, id: i64, typed_name: &str) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let b = models::business(conn, id)?;
        let linked = models::linked_accounts(conn, id)?;
        if !linked.is_empty() {
            let names: Vec<String> = linked.iter().map(|a| format!("{} {}", a.bank_name, a.account_number)).collect();
            return Err(AppError::Validation(format!(
                "Hãy xóa toàn bộ ngân hàng đã liên kết trước khi xóa doanh nghiệp: {}.",
                names.join(", ")
            )));
        }
        if typed_name.trim() != b.name {
            return Err(AppError::Validation("Tên nhập vào không khớp với tên doanh nghiệp; chưa xóa gì.".into()));
        }
        let t = now();
        models::update_business(
            conn,
            id,
            &BusinessChanges {
                deleted_at: Some(Some(t)),
                hub_merchant_id: Some(None),
                updated_at: Some(t),
                ..Default::default()
            },
        )?;
        audit::record(conn, actor, "business", id, "delete", Some(b.audit_view()), None)?;
        Ok(())
    })
}

// ---- plans

/// Where a business stands against its plan right now.
#[derive(Debug, Clone)]
pub struct PlanStatus {
    pub plan: Plan,
    /// The business's own plan (what it returns to after the trial).
    pub base_plan: Plan,
    pub trial_active: bool,
    pub trial_ends_at: Option<NaiveDateTime>,
    /// The trial ran and is over.
    pub trial_over: bool,
    pub usage: i64,
    pub accounts: i64,
}

impl PlanStatus {
    pub fn quota_reached(&self) -> bool {
        self.usage >= self.plan.monthly_tx_quota
    }

    pub fn over_account_limit(&self) -> bool {
        self.accounts > self.plan.bank_account_limit
    }

    /// Casso's `planStatus` of the n-th linked account (0-based, oldest first).
    pub fn account_plan_status(&self, index: impl std::borrow::Borrow<usize>) -> i32 {
        let covered = i64::try_from(*index.borrow()).map(|i| i < self.plan.bank_account_limit).unwrap_or(false);
        i32::from(covered && !self.quota_reached())
    }

    pub fn usage_percent(&self) -> i64 {
        if self.plan.monthly_tx_quota <= 0 {
            return 100;
        }
        (self.usage.saturating_mul(100) / self.plan.monthly_tx_quota).min(100)
    }
}

/// The plan a business is on now, its trial and its usage.
pub fn plan_status(conn: &mut DbConn, b: &Business) -> AppResult<PlanStatus> {
    let t = now();
    let base_plan = models::plan(conn, b.plan_id)?;
    let trial_active = b.trial_ends_at.is_some_and(|end| end > t);
    let plan = match (trial_active, b.trial_plan_id) {
        (true, Some(trial)) => models::plan(conn, trial)?,
        _ => base_plan.clone(),
    };
    let usage = models::usage(conn, b.id, &current_month())?;
    let accounts = models::count_linked_accounts(conn, b.id)?;
    Ok(PlanStatus {
        plan,
        base_plan,
        trial_active,
        trial_ends_at: b.trial_ends_at,
        trial_over: b.trial_ends_at.is_some() && !trial_active,
        usage,
        accounts,
    })
}

/// The transactions counted against this month's quota.
pub fn usage_this_month(conn: &mut DbConn, business_id: i64) -> AppResult<i64> {
    Ok(models::usage(conn, business_id, &current_month())?)
}

/// Counts `n` new transactions against this month's quota (called by the sync in the
/// transaction that stores them).
pub fn record_usage(conn: &mut DbConn, business_id: i64, n: i64) -> AppResult<()> {
    record_usage_in(conn, business_id, n, &crate::banking::models::Lane::take(conn))
}

/// [`record_usage`] in the slot of a store's lane.
pub fn record_usage_in(
    conn: &mut DbConn,
    business_id: i64,
    n: i64,
    lane: &crate::banking::models::Lane,
) -> AppResult<()> {
    Ok(models::add_usage(conn, business_id, &current_month(), lane.slot(), n)?)
}

/// Whether this month's quota is used up.
pub fn quota_reached(conn: &mut DbConn, business_id: i64) -> AppResult<bool> {
    quota_reached_with(conn, business_id, 0)
}

/// Whether the quota is reached once `more` transactions not yet counted are (the
/// store counts its new rows at the end of its transaction, after notifying).
pub fn quota_reached_with(conn: &mut DbConn, business_id: i64, more: i64) -> AppResult<bool> {
    let b = models::business(conn, business_id)?;
    let mut status = plan_status(conn, &b)?;
    status.usage = status.usage.saturating_add(more);
    Ok(status.quota_reached())
}

/// Links a bank account; the first link a business ever makes starts its trial. The
/// linking methods (official API, RPA agent, statement, demo, push) all end here.
pub fn link_account(conn: &mut DbConn, actor: &Actor, new: &NewBankAccount<'_>) -> AppResult<BankAccount> {
    crate::db::tx(conn, |conn| {
        let b = models::business(conn, new.business_id)?;
        let first_ever = !models::ever_linked(conn, b.id)?;
        let mut status = plan_status(conn, &b)?;
        if first_ever && b.trial_ends_at.is_none() && status.base_plan.is_free {
            let trial = models::trial_plan(conn)?;
            let t = now();
            let b = models::update_business(
                conn,
                b.id,
                &BusinessChanges {
                    trial_plan_id: Some(Some(trial.id)),
                    trial_started_at: Some(Some(t)),
                    trial_ends_at: Some(Some(t + Duration::days(TRIAL_DAYS))),
                    updated_at: Some(t),
                    ..Default::default()
                },
            )?;
            audit::record(conn, actor, "business", b.id, "start_trial", None, Some(b.audit_view()))?;
            status = plan_status(conn, &b)?;
        }
        if status.accounts >= status.plan.bank_account_limit {
            return Err(AppError::Validation(format!(
                "Gói {} cho phép tối đa {} tài khoản ngân hàng. Hãy nâng cấp gói hoặc xóa một tài khoản.",
                status.plan.name, status.plan.bank_account_limit
            )));
        }
        let account = models::insert_account(conn, new)?;
        audit::record(
            conn,
            actor,
            "bank_account",
            account.id,
            "link",
            None,
            Some(
                serde_json::json!({ "business_id": b.id, "bank": account.bank_code, "number": account.account_number, "method": account.method }),
            ),
        )?;
        Ok(account)
    })
}

/// Removes a linked bank account (its history stays).
pub fn remove_account(conn: &mut DbConn, actor: &Actor, business_id: i64, account_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let a = models::linked_account(conn, business_id, account_id)?;
        if !models::remove_account(conn, a.id, now())? {
            return Err(AppError::NotFound);
        }
        audit::record(
            conn,
            actor,
            "bank_account",
            a.id,
            "remove",
            Some(serde_json::json!({ "business_id": business_id, "bank": a.bank_code, "number": a.account_number })),
            None,
        )?;
        Ok(())
    })
}

/// "Nâng cấp": records the request and mails every administrator through the outbox.
pub fn request_upgrade(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    business_id: i64,
    plan_id: i64,
    note: &str,
) -> AppResult<()> {
    let note = note.trim();
    if note.chars().count() > 1000 {
        return Err(AppError::Validation("Ghi chú tối đa 1000 ký tự.".into()));
    }
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    crate::db::tx(conn, |conn| {
        let b = models::business(conn, business_id)?;
        let plan = models::plan(conn, plan_id).map_err(|_| AppError::Validation("Gói dịch vụ không hợp lệ.".into()))?;
        if plan.is_free || plan.id == b.plan_id {
            return Err(AppError::Validation("Hãy chọn một gói trả phí khác gói hiện tại.".into()));
        }
        let request = models::insert_plan_request(conn, b.id, plan.id, user_id, note, now())?;
        let admins: Vec<String> = crate::accounts::models::enabled_admins(conn)?.into_iter().map(|u| u.email).collect();
        if !admins.is_empty() {
            let text = format!(
                "Doanh nghiệp \"{}\" (#{}) yêu cầu nâng cấp lên gói {} ({}/tháng).\nNgười yêu cầu: {}\nGhi chú: {}\n\n\
                 Xem và xử lý: {}/admin/businesses/{}",
                b.name,
                b.id,
                plan.name,
                crate::fmt::Money(plan.price_vnd),
                actor.label,
                if note.is_empty() { "(không có)" } else { note },
                config.base_url,
                b.id
            );
            queue_mail(
                conn,
                &config.outbound,
                actor,
                &OutgoingMail::simple(admins, format!("Yêu cầu nâng cấp gói: {}", b.name), text),
            )?;
        }
        audit::record(
            conn,
            actor,
            "business",
            b.id,
            "request_upgrade",
            None,
            Some(serde_json::json!({ "plan": plan.code, "request_id": request.id })),
        )?;
        Ok(())
    })
}

/// Staff put a business on a plan (after payment was arranged); open requests close.
pub fn set_plan(conn: &mut DbConn, actor: &Actor, business_id: i64, plan_id: i64) -> AppResult<()> {
    let staff_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    crate::db::tx(conn, |conn| {
        let before = models::business(conn, business_id)?;
        let plan = models::plan(conn, plan_id).map_err(|_| AppError::Validation("Gói dịch vụ không hợp lệ.".into()))?;
        let t = now();
        let after = models::update_business(
            conn,
            business_id,
            &BusinessChanges { plan_id: Some(plan.id), updated_at: Some(t), ..Default::default() },
        )?;
        for (r, _) in models::open_plan_requests(conn)?.into_iter().filter(|(r, _)| r.business_id == business_id) {
            let status = if r.plan_id == plan.id { "done" } else { "declined" };
            models::close_plan_request(conn, r.id, status, staff_id, t)?;
        }
        audit::record(
            conn,
            actor,
            "business",
            business_id,
            "set_plan",
            Some(before.audit_view()),
            Some(after.audit_view()),
        )?;
        Ok(())
    })
}

/// Links a business to a hub desk merchant (or unlinks it with None).
pub fn link_hub_merchant(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    merchant_id: Option<i64>,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let before = models::business(conn, business_id)?;
        if let Some(mid) = merchant_id {
            models::hub_merchant(conn, mid)?.ok_or_else(|| AppError::Validation("Không tìm thấy merchant.".into()))?;
            if let Some(other) = models::business_of_merchant(conn, mid)?
                && other.id != business_id
            {
                return Err(AppError::Validation(format!(
                    "Merchant này đã liên kết với doanh nghiệp \"{}\" (#{}).",
                    other.name, other.id
                )));
            }
        }
        let after = models::update_business(
            conn,
            business_id,
            &BusinessChanges { hub_merchant_id: Some(merchant_id), updated_at: Some(now()), ..Default::default() },
        )?;
        let action = if merchant_id.is_some() { "link_merchant" } else { "unlink_merchant" };
        audit::record(
            conn,
            actor,
            "business",
            business_id,
            action,
            Some(before.audit_view()),
            Some(after.audit_view()),
        )?;
        Ok(())
    })
}

// ---- members and invitations

/// Invites someone by e-mail; the mail carries a single-use link valid 7 days. A new
/// invitation to the same address replaces the open one.
pub fn invite(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    business_id: i64,
    email: &str,
    role: &str,
) -> AppResult<()> {
    let email = normalise_email(email);
    validate_email(&email)?;
    let role = BizRole::parse(role).ok_or_else(|| AppError::Validation("Vai trò không hợp lệ.".into()))?;
    let inviter = actor.user_id.ok_or_else(AppError::forbidden)?;
    crate::db::tx(conn, |conn| {
        let b = models::business(conn, business_id)?;
        if models::members(conn, b.id)?.iter().any(|m| m.email == email) {
            return Err(AppError::Validation(format!("{email} đã là thành viên của doanh nghiệp này.")));
        }
        let t = now();
        for open in models::open_invitations(conn, b.id)?.into_iter().filter(|i| i.email == email) {
            models::revoke_invitation(conn, open.id, t)?;
        }
        let token = new_link_token();
        let inv = models::insert_invitation(
            conn,
            &models::NewInvitation {
                business_id: b.id,
                email: &email,
                role: role.code(),
                token_hash: &token_hash(config, &token),
                invited_by: inviter,
                expires_at: t + Duration::days(INVITATION_DAYS),
                created_at: t,
            },
        )?;
        let text = format!(
            "Xin chào,\n\n{who} mời bạn tham gia doanh nghiệp \"{name}\" trên hubgate với vai trò {role}.\n\n\
             Nhận lời mời tại liên kết dưới đây (có hiệu lực trong {INVITATION_DAYS} ngày, chỉ dùng được một lần). \
             Nếu chưa có tài khoản, bạn có thể đăng ký bằng chính địa chỉ email này:\n\n{base}/invite?token={token}\n\nhubgate",
            who = actor.label,
            name = b.name,
            role = role.label(),
            base = config.base_url,
        );
        queue_mail(
            conn,
            &config.outbound,
            actor,
            &OutgoingMail::simple(
                vec![email.clone()],
                format!("Lời mời tham gia doanh nghiệp {} trên hubgate", b.name),
                text,
            ),
        )?;
        audit::record(
            conn,
            actor,
            "business",
            b.id,
            "invite",
            None,
            Some(serde_json::json!({ "email": email, "role": role.code(), "invitation_id": inv.id })),
        )?;
        Ok(())
    })
}

/// The invitation a mailed link carries, whatever its state.
fn find_invitation(conn: &mut DbConn, config: &Config, token: &str) -> AppResult<models::Invitation> {
    presented_link(config, token)
        .find(conn, models::invitation_by_hash, |conn, inv, old, new| {
            models::rehash_invitation(conn, inv.id, old, new)
        })?
        .ok_or(AppError::NotFound)
}

/// What the invitation page shows before the person accepts.
#[derive(Debug, Clone)]
pub struct InvitationView {
    pub business_name: String,
    pub email: String,
    pub role: BizRole,
    pub usable: bool,
}

pub fn invitation_view(conn: &mut DbConn, config: &Config, token: &str) -> AppResult<InvitationView> {
    let inv = find_invitation(conn, config, token)?;
    let b = models::business(conn, inv.business_id)?;
    let usable = inv.accepted_at.is_none() && inv.revoked_at.is_none() && inv.expires_at > now();
    Ok(InvitationView {
        business_name: b.name,
        email: inv.email,
        role: BizRole::parse(&inv.role).unwrap_or(BizRole::Viewer),
        usable,
    })
}

/// Accepts an invitation as the signed-in merchant, whose e-mail must be the invited
/// one (a forwarded link does not let somebody else in). Returns the business id.
pub fn accept_invitation(conn: &mut DbConn, config: &Config, user_id: i64, token: &str) -> AppResult<i64> {
    crate::db::tx(conn, |conn| {
        let inv = find_invitation(conn, config, token)?;
        let user = crate::accounts::models::find(conn, user_id)?;
        let t = now();
        if inv.accepted_at.is_some() || inv.revoked_at.is_some() || inv.expires_at <= t {
            return Err(AppError::Validation(
                "Lời mời đã hết hạn, đã được dùng hoặc đã bị hủy. Hãy đề nghị chủ doanh nghiệp mời lại.".into(),
            ));
        }
        if user.email != inv.email {
            return Err(AppError::Validation(format!(
                "Lời mời này dành cho {}; bạn đang đăng nhập bằng {}. Hãy đăng nhập đúng tài khoản.",
                inv.email, user.email
            )));
        }
        let b = models::business(conn, inv.business_id)?;
        if !models::accept_invitation(conn, inv.id, user.id, t)? {
            return Err(AppError::Validation("Lời mời đã được dùng.".into()));
        }
        if !models::is_member(conn, b.id, user.id)? {
            models::insert_member(conn, b.id, user.id, &inv.role, t)?;
        }
        // Following the mailed link proves the mailbox.
        if user.email_verified_at.is_none() {
            crate::accounts::models::update(
                conn,
                user.id,
                &crate::accounts::models::UserChanges { email_verified_at: Some(t), ..Default::default() },
            )?;
        }
        audit::record(
            conn,
            &Actor::user(user.id, &user.email),
            "business",
            b.id,
            "join",
            None,
            Some(serde_json::json!({ "user_id": user.id, "role": inv.role })),
        )?;
        Ok(b.id)
    })
}

pub fn revoke_invitation(conn: &mut DbConn, actor: &Actor, business_id: i64, id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let inv = models::invitation(conn, business_id, id)?;
        if !models::revoke_invitation(conn, inv.id, now())? {
            return Err(AppError::Validation("Lời mời này đã được dùng hoặc đã hủy.".into()));
        }
        audit::record(
            conn,
            actor,
            "business",
            business_id,
            "revoke_invitation",
            Some(serde_json::json!({ "email": inv.email })),
            None,
        )?;
        Ok(())
    })
}

fn ensure_owner_remains(conn: &mut DbConn, business_id: i64, member: &models::MemberRow) -> AppResult<()> {
    if member.role == BizRole::Owner.code() && models::count_owners(conn, business_id)? <= 1 {
        return Err(AppError::Validation(
            "Doanh nghiệp phải còn ít nhất một chủ sở hữu; hãy chỉ định chủ sở hữu khác trước.".into(),
        ));
    }
    Ok(())
}

pub fn set_member_role(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    member_id: i64,
    role: &str,
) -> AppResult<()> {
    let role = BizRole::parse(role).ok_or_else(|| AppError::Validation("Vai trò không hợp lệ.".into()))?;
    crate::db::tx(conn, |conn| {
        let m = models::member(conn, business_id, member_id)?;
        if role != BizRole::Owner {
            ensure_owner_remains(conn, business_id, &m)?;
        }
        models::set_member_role(conn, m.id, role.code())?;
        audit::record(
            conn,
            actor,
            "business",
            business_id,
            "set_member_role",
            Some(serde_json::json!({ "user_id": m.user_id, "role": m.role })),
            Some(serde_json::json!({ "user_id": m.user_id, "role": role.code() })),
        )?;
        Ok(())
    })
}

pub fn remove_member(conn: &mut DbConn, actor: &Actor, business_id: i64, member_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let m = models::member(conn, business_id, member_id)?;
        ensure_owner_remains(conn, business_id, &m)?;
        models::delete_member(conn, m.id)?;
        audit::record(
            conn,
            actor,
            "business",
            business_id,
            "remove_member",
            Some(serde_json::json!({ "user_id": m.user_id, "email": m.email, "role": m.role })),
            None,
        )?;
        Ok(())
    })
}
