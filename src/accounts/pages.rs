//! Page structs of the accounts templates (templates/accounts/).

use askama::Template;

use super::handlers::UserForm;
use super::models::{Role, User};
use crate::fmt::{Age, LocalTime};
use crate::web::layout::Layout;

pub const ALL_ROLES: [Role; 5] = Role::ALL;

#[derive(Template)]
#[template(path = "accounts/login.html")]
pub struct LoginPage {
    pub l: Layout,
    pub email: String,
    pub next: String,
    pub error: Option<String>,
    /// (key, label) of each configured OpenID provider: one button each.
    pub providers: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "accounts/setup.html")]
pub struct SetupPage {
    pub l: Layout,
    pub email: String,
    pub name: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "accounts/password.html")]
pub struct PasswordPage {
    pub l: Layout,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "accounts/users.html")]
pub struct UsersPage {
    pub l: Layout,
    pub users: Vec<User>,
}

impl UsersPage {
    pub fn last_login(&self, u: &User) -> String {
        u.last_login_at.map(|t| format!("{} ({})", LocalTime(t), Age(t))).unwrap_or_else(|| "Chưa đăng nhập".into())
    }
}

#[derive(Template)]
#[template(path = "accounts/user_new.html")]
pub struct NewUserPage {
    pub l: Layout,
    pub form: UserForm,
    pub error: Option<String>,
}

impl NewUserPage {
    pub fn roles(&self) -> [Role; 5] {
        ALL_ROLES
    }
}

#[derive(Template)]
#[template(path = "accounts/user_edit.html")]
pub struct EditUserPage {
    pub l: Layout,
    pub user: User,
    pub form: UserForm,
    pub error: Option<String>,
}

impl EditUserPage {
    pub fn roles(&self) -> [Role; 5] {
        ALL_ROLES
    }

    pub fn created(&self) -> LocalTime {
        LocalTime(self.user.created_at)
    }

    /// When the account last changed (roles, name, password, locked or unlocked): an admin
    /// answering "who locked me out, and when?" reads it here before the audit log.
    pub fn updated(&self) -> LocalTime {
        LocalTime(self.user.updated_at)
    }

    pub fn last_login(&self) -> String {
        self.user.last_login_at.map(|t| LocalTime(t).to_string()).unwrap_or_else(|| "Chưa đăng nhập".into())
    }
}
