//! The partners (MoMo, VNPAY, GiftPop…): who they are, which addresses their mail comes
//! from, and whether they still take new work. The hub owns them; inbound mail reads
//! them to recognise a sender.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::partners;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = partners)]
pub struct Partner {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub mail_domains: String,
    pub mail_addresses: String,
    pub leader_confirmation_required: bool,
    pub leader_addresses: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
    pub cms_admin_name: String,
    pub signing_company: String,
    pub virtual_brand: String,
    pub virtual_point: String,
    pub accept_template: String,
    pub reply_template: String,
    /// Set when an admin stopped using the partner: no new requests, old ones kept.
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub disabled_at: Option<NaiveDateTime>,
}

/// What the lists show of a partner and need to filter by it: its code, whether it is
/// still used, and whether its requests wait for a leader's confirmation. Reading every
/// column, the two mail templates among them, was 11% of the request list's samples on
/// the demo data (`perf`, issue 17).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = partners)]
pub struct Brief {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub leader_confirmation_required: bool,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub disabled_at: Option<NaiveDateTime>,
}

impl From<&Partner> for Brief {
    fn from(p: &Partner) -> Self {
        Brief {
            id: p.id,
            code: p.code.clone(),
            name: p.name.clone(),
            leader_confirmation_required: p.leader_confirmation_required,
            disabled_at: p.disabled_at,
        }
    }
}

impl Brief {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// Every partner's [`Brief`], by code.
pub fn briefs(conn: &mut DbConn) -> QueryResult<Vec<Brief>> {
    crate::with_conn!(conn, |c| partners::table.order(partners::code.asc()).select(Brief::as_select()).load(c))
}

fn list_of(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split([',', '\n', ';', ' ']).map(|x| x.trim().to_lowercase()).filter(|x| !x.is_empty())
}

impl Partner {
    /// Whether mail from `addr` comes from this partner (an address or a domain of it).
    pub fn owns_address(&self, addr: &str) -> bool {
        let addr = addr.to_lowercase();
        let domain = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        list_of(&self.mail_addresses).any(|a| a == addr)
            || list_of(&self.leader_addresses).any(|a| a == addr)
            || list_of(&self.mail_domains).any(|d| domain == d || domain.ends_with(&format!(".{d}")))
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    pub fn is_leader(&self, addr: &str) -> bool {
        let addr = addr.to_lowercase();
        list_of(&self.leader_addresses).any(|a| a == addr)
    }
}

/// Every partner, disabled ones too: mail from them is still recognised and old
/// requests still show them.
pub fn all(conn: &mut DbConn) -> QueryResult<Vec<Partner>> {
    crate::with_conn!(conn, |c| partners::table.order(partners::code.asc()).select(Partner::as_select()).load(c))
}

/// The partners offered for new work.
pub fn active(conn: &mut DbConn) -> QueryResult<Vec<Partner>> {
    partners::table
        .filter(partners::disabled_at.is_null())
        .order(partners::code.asc())
        .select(Partner::as_select())
        .load(conn)
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Partner> {
    crate::with_conn!(conn, |c| partners::table.find(id).select(Partner::as_select()).first(c))
}
