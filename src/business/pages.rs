//! Page structs of the merchant area's templates (templates/business/).

use askama::Template;

use super::handlers::{Biz, BusinessForm};
use super::models::{BankAccount, Business, Invitation, MemberRow, Plan, PlanRequest};
use super::service::{BizRole, FEATURES, InvitationView, PlanStatus, feature_label};
use crate::fmt::{LocalTime, Money};
use crate::web::layout::Layout;

pub struct BusinessCard {
    pub business: Business,
    pub role: &'static str,
    pub status: PlanStatus,
}

#[derive(Template)]
#[template(path = "business/home.html")]
pub struct AppHome {
    pub l: Layout,
    pub rows: Vec<BusinessCard>,
}

#[derive(Template)]
#[template(path = "business/new.html")]
pub struct NewBusinessPage {
    pub l: Layout,
    pub form: BusinessForm,
    pub error: Option<String>,
}

impl NewBusinessPage {
    pub fn features(&self) -> &'static [(&'static str, &'static str)] {
        FEATURES
    }
}

#[derive(Template)]
#[template(path = "business/overview.html")]
pub struct OverviewPage {
    pub l: Layout,
    pub tab: &'static str,
    pub biz: Biz,
    pub accounts: Vec<BankAccount>,
    pub members: usize,
}

impl OverviewPage {
    pub fn features(&self) -> Vec<&'static str> {
        self.biz.business.features.split(',').filter(|f| !f.is_empty()).map(feature_label).collect()
    }
}

#[derive(Template)]
#[template(path = "business/accounts.html")]
pub struct AccountsPage {
    pub l: Layout,
    pub tab: &'static str,
    pub biz: Biz,
    pub accounts: Vec<BankAccount>,
}

#[derive(Template)]
#[template(path = "business/members.html")]
pub struct MembersPage {
    pub l: Layout,
    pub tab: &'static str,
    pub biz: Biz,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<Invitation>,
    pub me: i64,
}

impl MembersPage {
    pub fn roles(&self) -> [BizRole; 3] {
        BizRole::ALL
    }

    pub fn expired(&self, i: &Invitation) -> bool {
        i.expires_at <= crate::db::now()
    }
}

#[derive(Template)]
#[template(path = "business/plan.html")]
pub struct PlanPage {
    pub l: Layout,
    pub tab: &'static str,
    pub biz: Biz,
    pub plans: Vec<Plan>,
    pub requests: Vec<PlanRequest>,
}

impl PlanPage {
    pub fn plan_name(&self, id: &i64) -> String {
        self.plans.iter().find(|p| p.id == *id).map(|p| p.name.clone()).unwrap_or_default()
    }

    pub fn request_status(&self, status: &str) -> &'static str {
        match status {
            "open" => "Đang chờ xử lý",
            "done" => "Đã nâng cấp",
            _ => "Đã đóng",
        }
    }
}

#[derive(Template)]
#[template(path = "business/settings.html")]
pub struct SettingsPage {
    pub l: Layout,
    pub tab: &'static str,
    pub biz: Biz,
    pub form: BusinessForm,
    pub accounts: Vec<BankAccount>,
    pub error: Option<String>,
}

impl SettingsPage {
    pub fn features(&self) -> &'static [(&'static str, &'static str)] {
        FEATURES
    }
}

#[derive(Template)]
#[template(path = "business/invitation.html")]
pub struct InvitationPage {
    pub l: Layout,
    pub view: InvitationView,
    pub token: String,
    pub here: String,
}

/// Display helpers shared by the business templates.
pub fn connect_status_label(status: &str) -> &'static str {
    match status {
        "connected" => "Đã kết nối",
        "relogin" => "Cần kết nối lại",
        "error" => "Lỗi kết nối",
        _ => "Đang kết nối",
    }
}

/// A value askama may hand over behind any number of references.
pub trait Plain<T: Copy> {
    fn plain(&self) -> T;
}

impl Plain<i64> for i64 {
    fn plain(&self) -> i64 {
        *self
    }
}

impl Plain<chrono::NaiveDateTime> for chrono::NaiveDateTime {
    fn plain(&self) -> chrono::NaiveDateTime {
        *self
    }
}

impl<T: Copy, P: Plain<T> + ?Sized> Plain<T> for &P {
    fn plain(&self) -> T {
        (**self).plain()
    }
}

pub fn money(v: impl Plain<i64>) -> Money {
    Money(v.plain())
}

pub fn count(v: impl Plain<i64>) -> crate::fmt::Count {
    crate::fmt::Count(v.plain())
}

pub fn when(t: impl Plain<chrono::NaiveDateTime>) -> LocalTime {
    LocalTime(t.plain())
}

pub fn phone<T: AsRef<str>>(e164: T) -> String {
    crate::accounts::merchant::display_phone(e164.as_ref())
}
