//! `hubgate demo-data`: a realistic Vietnamese data set to click through every screen.
//! Everything goes through the normal paths (mail through ingest, requests through
//! the workflow service), and running it again adds nothing twice.

use diesel::prelude::*;

use crate::accounts::Role;
use crate::accounts::service::{self as accounts, UserInput};
use crate::audit::Actor;
use crate::config::Config;
use crate::db::DbConn;
use crate::db::schema::{customers, requests};
use crate::error::{AppError, AppResult};
use crate::hub::models::NewPoint;
use crate::hub::service::{self as hub, OpenRequest};
use crate::hub::state::State;
use crate::mail::inbound::classify::fold;
use crate::mail::inbound::service as inbox;

/// The demo accounts: (e-mail, name, role, password).
pub const USERS: [(&str, &str, Role, &str); 5] = [
    ("admin@demo.ipos.vn", "Nguyễn Quản Trị", Role::Admin, "demo-quan-tri-2026"),
    ("sale@demo.ipos.vn", "Trần Thị Kinh Doanh", Role::Sale, "demo-kinh-doanh-2026"),
    ("leader@demo.ipos.vn", "Lê Văn Trưởng", Role::Leader, "demo-truong-nhom-2026"),
    ("kythuat@demo.ipos.vn", "Phạm Kỹ Thuật", Role::Technician, "demo-ky-thuat-2026"),
    ("ketoan@demo.ipos.vn", "Đỗ Thị Kế Toán", Role::Accountant, "demo-ke-toan-2026"),
];

const DISHES: [&str; 12] = [
    "Phở",
    "Bún bò",
    "Cơm tấm",
    "Bánh mì",
    "Cà phê",
    "Trà sữa",
    "Lẩu",
    "Gà rán",
    "Bún chả",
    "Hủ tiếu",
    "Bánh cuốn",
    "Chè",
];
const NAMES: [&str; 25] = [
    "Thìn",
    "Hương Liên",
    "Cali",
    "Huỳnh Hoa",
    "Phúc Long",
    "Mười Xiềm",
    "Bà Ba",
    "Cô Giang",
    "Ông Tám",
    "Hạnh",
    "Lan Chi",
    "Minh Anh",
    "Thanh Hà",
    "Bảo Ngọc",
    "Hoàng Gia",
    "Sài Gòn Xưa",
    "Phố Cổ",
    "Hồ Tây",
    "Bến Thành",
    "Ngọc Lan",
    "Thu Hà",
    "Đông Du",
    "Tân Định",
    "Hải Châu",
    "Ninh Kiều",
];
const STREETS: [&str; 12] = [
    "Lê Lợi",
    "Nguyễn Huệ",
    "Hai Bà Trưng",
    "Trần Hưng Đạo",
    "Lý Thường Kiệt",
    "Điện Biên Phủ",
    "Pasteur",
    "Võ Văn Tần",
    "Nguyễn Trãi",
    "Cách Mạng Tháng 8",
    "Lò Đúc",
    "Hàng Bông",
];
const DISTRICTS: [&str; 8] = [
    "Quận 1, TP.HCM",
    "Quận 3, TP.HCM",
    "Quận 5, TP.HCM",
    "Bình Thạnh, TP.HCM",
    "Hoàn Kiếm, Hà Nội",
    "Hai Bà Trưng, Hà Nội",
    "Hải Châu, Đà Nẵng",
    "Ninh Kiều, Cần Thơ",
];
const PEOPLE: [&str; 10] = [
    "Chị Lan",
    "Anh Minh",
    "Chị Hoa",
    "Anh Tuấn",
    "Chị Ngọc",
    "Anh Dũng",
    "Chị Mai",
    "Anh Khoa",
    "Chị Thảo",
    "Anh Phát",
];

/// Merchant accounts of the demo (e-mail, name, phone, password).
pub const MERCHANTS: [(&str, &str, &str, &str); 3] = [
    ("chu@phoviet.vn", "Nguyễn Văn Phở", "0912 345 678", "demo-chu-quan-2026"),
    ("quanly@phoviet.vn", "Lê Thị Quản Lý", "0987 654 321", "demo-quan-ly-2026"),
    ("chu@comtam.vn", "Trần Văn Tấm", "0903 111 222", "demo-com-tam-2026"),
];

/// Businesses in every plan state: on trial with linked accounts (and linked to a hub
/// merchant), on the free plan with nothing linked, on a paid plan with its quota used
/// up and an upgrade request waiting, and one whose trial ended.
fn merchant_side(conn: &mut DbConn, config: &Config) -> AppResult<usize> {
    use crate::business::models::{self as biz, BusinessChanges};
    use crate::business::service::{self as biz_service, BusinessInput};
    if crate::accounts::models::find_by_email(conn, MERCHANTS[0].0)?.is_some() {
        return Ok(0);
    }
    let mut users = Vec::new();
    for (email, name, phone, password) in MERCHANTS {
        users.push(crate::accounts::merchant::create_ready_account(conn, email, name, phone, password)?);
    }
    let actor = |u: &crate::accounts::User| Actor::user(u.id, &u.email);
    let business = |conn: &mut DbConn, u: &crate::accounts::User, name: &str, website: &str, features: &[&str]| {
        let input = BusinessInput {
            name: name.into(),
            website: website.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
        };
        biz_service::create_business(conn, &actor(u), u.id, &input)
    };
    // Linked through the demo connection, a month of its transactions synced at once.
    let demo_link = |conn: &mut DbConn, u: &crate::accounts::User, business_id: i64, n: usize| -> AppResult<()> {
        let cid = crate::banking::service::link_demo(conn, &actor(u), business_id)?;
        let connection = crate::banking::models::connection(conn, cid)?;
        let available = crate::banking::connectors::demo_accounts(cid);
        let chosen: Vec<String> = available.iter().take(n).map(|a| a.id.clone()).collect();
        crate::banking::service::finish_selection(conn, &actor(u), &connection, &available, &chosen, 30)?;
        for a in crate::banking::models::accounts_of_connection(conn, cid)? {
            crate::banking::sync::sync_demo_now(conn, &a)?;
        }
        Ok(())
    };
    // On trial, two accounts, a manager, linked to the hub's first merchant.
    let pho = business(conn, &users[0], "Phở Việt", "phoviet.vn", &["sync", "balance", "api"])?;
    demo_link(conn, &users[0], pho.id, 2)?;
    biz::insert_member(conn, pho.id, users[1].id, "manager", crate::db::now())?;
    if let Some((first, _)) = crate::hub::models::search_merchants(conn, "", 0, 1)?.0.first() {
        biz_service::link_hub_merchant(conn, &Actor::system("demo-data"), pho.id, Some(first.id))?;
    }
    // Kho ứng dụng: an e-mail to the owner on every new transaction from now on, and
    // a Telegram bot whose group kicked it (shown as unreachable, nothing retried).
    let t = crate::db::now();
    for (channel, name, kind, address, status, note) in [
        ("email", "Thư cho chủ quán", "email", "chu@phoviet.vn", "active", None),
        (
            "telegram",
            "Nhóm thu ngân",
            "chat",
            "-1001234567890",
            "unreachable",
            Some("Bot không được gửi vào cuộc trò chuyện này: Forbidden: bot was kicked from the group chat"),
        ),
    ] {
        let i = crate::notify::models::insert_integration(
            conn,
            &crate::notify::models::NewIntegration {
                business_id: pho.id,
                channel,
                name,
                url: "",
                format: "",
                secret_sealed: "",
                income_only: true,
                account_ids: "",
                enabled: true,
                created_by: users[0].id,
                created_at: t,
                updated_at: t,
                fields: crate::notify::message::DEFAULT_FIELDS,
                settings: "{}",
                invite_code: None,
            },
        )?;
        if channel == "telegram" {
            let bot = "123456789:AAHdemoDemoDemoDemoDemoDemoDemoDemo";
            crate::notify::models::store_secret(conn, &config.keyring(), i.id, bot)?;
        }
        crate::notify::models::add_recipient(conn, i.id, kind, address, address, t)?;
        if let Some(r) = crate::notify::models::recipient(conn, i.id, address)? {
            crate::notify::models::set_recipient_status(conn, r.id, status, note, t)?;
        }
    }
    // Free, nothing linked yet.
    business(conn, &users[0], "Cà phê Sáng", "", &["balance"])?;
    // Paid plan with the month's quota used up, and an upgrade request waiting.
    let tam = business(conn, &users[2], "Cơm tấm Ba Ghiền", "comtam.vn", &["sync", "reconcile"])?;
    let starter = biz::plans(conn)?.into_iter().find(|p| p.code == "STARTER").ok_or(AppError::NotFound)?;
    let pro = biz::plans(conn)?.into_iter().find(|p| p.code == "PRO").ok_or(AppError::NotFound)?;
    let admin = crate::accounts::models::find_by_email(conn, USERS[0].0)?.ok_or(AppError::NotFound)?;
    biz_service::set_plan(conn, &Actor::user(admin.id, &admin.email), tam.id, starter.id)?;
    demo_link(conn, &users[2], tam.id, 1)?;
    biz_service::record_usage(conn, tam.id, starter.monthly_tx_quota)?;
    biz_service::request_upgrade(
        conn,
        config,
        &actor(&users[2]),
        tam.id,
        pro.id,
        "Cần thêm hạn mức giao dịch cho 3 chi nhánh.",
    )?;
    // A trial that ended last week: back on the free plan.
    let old = business(conn, &users[2], "Tiệm bánh Hạnh", "", &["sync"])?;
    demo_link(conn, &users[2], old.id, 1)?;
    let t = crate::db::now();
    biz::update_business(
        conn,
        old.id,
        &BusinessChanges {
            trial_started_at: Some(Some(t - chrono::Duration::days(21))),
            trial_ends_at: Some(Some(t - chrono::Duration::days(7))),
            ..Default::default()
        },
    )?;
    Ok(4)
}

/// Fills the database; returns a summary for the console.
pub fn seed(conn: &mut DbConn, config: &Config) -> AppResult<String> {
    let system = Actor::system("demo-data");
    let mut created_users = 0;
    for (email, name, role, password) in USERS {
        if crate::accounts::models::find_by_email(conn, email)?.is_none() {
            let input =
                UserInput { email: email.into(), name: name.into(), password: password.into(), roles: vec![role] };
            accounts::create_user(conn, &system, &input)?;
            created_users += 1;
        }
    }
    let sale = crate::accounts::models::find_by_email(conn, USERS[1].0)?.ok_or(AppError::NotFound)?;
    let leader = crate::accounts::models::find_by_email(conn, USERS[2].0)?.ok_or(AppError::NotFound)?;
    let sale_actor = Actor::user(sale.id, &sale.email);
    let leader_actor = Actor::user(leader.id, &leader.email);
    let tech = crate::accounts::models::find_by_email(conn, USERS[3].0)?.ok_or(AppError::NotFound)?;
    let accountant = crate::accounts::models::find_by_email(conn, USERS[4].0)?.ok_or(AppError::NotFound)?;
    let tech_actor = Actor::user(tech.id, &tech.email);
    let accountant_actor = Actor::user(accountant.id, &accountant.email);

    // Customers: the partners' companies, as PYCs name them.
    let mut new_customers = 0;
    for p in crate::hub::partners::all(conn)? {
        let key = fold(&p.signing_company);
        let exists: i64 = customers::table.filter(customers::search_key.eq(&key)).count().get_result(conn)?;
        if exists == 0 && !p.signing_company.is_empty() {
            diesel::insert_into(customers::table)
                .values((
                    customers::name.eq(&p.signing_company),
                    customers::search_key.eq(&key),
                    customers::address.eq("TP. Hồ Chí Minh"),
                    customers::created_at.eq(crate::db::now()),
                ))
                .execute(conn)?;
            new_customers += 1;
        }
    }

    // A few hundred merchants and their points.
    let mut merchants = 0;
    for i in 0..300usize {
        let name = format!("{} {}", DISHES[i % DISHES.len()], NAMES[(i / DISHES.len()) % NAMES.len()]);
        let name = if i >= DISHES.len() * NAMES.len() { format!("{name} {}", i) } else { name };
        let key = fold(&name);
        if crate::hub::models::merchant_by_key(conn, &key)?.is_some() {
            continue;
        }
        let contact = PEOPLE[i % PEOPLE.len()];
        let phone = format!("09{:08}", 10_000_000 + i * 7919 % 89_999_999);
        let id = crate::hub::models::ensure_merchant(conn, &name, contact, &phone, &key)?;
        for j in 0..(1 + i % 3) {
            let point = format!("{name} – {}", STREETS[(i + j) % STREETS.len()]);
            let address = format!(
                "{} {}, {}",
                10 + (i * 7 + j * 13) % 290,
                STREETS[(i + j) % STREETS.len()],
                DISTRICTS[(i + j) % DISTRICTS.len()]
            );
            let pkey = fold(&point);
            crate::hub::models::ensure_point(
                conn,
                &NewPoint {
                    merchant_id: id,
                    name: &point,
                    address: &address,
                    contact_name: contact,
                    phone: &phone,
                    key: &pkey,
                },
            )?;
        }
        merchants += 1;
    }

    // Partner mail: real .eml through the normal ingest path.
    let known = inbox::Known::load(conn)?;
    // 48 threads of five mails; the last 8 stay in the inbox for sales to triage. Then
    // what else lands in a shared mailbox: a newsletter, and a file that is no mail.
    let mut mails: Vec<crate::mail::inbound::batch::Incoming> = (0..240)
        .map(|i| crate::mail::inbound::batch::Incoming {
            raw: crate::bench::generated_mail(i),
            file: Some(format!("demo-{i}.eml")),
        })
        .collect();
    for (name, raw) in
        [("khuyen-mai.eml", NEWSLETTER.as_bytes()), ("tep-hong.eml", &b"\0\x01 PK\x03\x04 not a mail \xff\xfe"[..])]
    {
        mails.push(crate::mail::inbound::batch::Incoming { raw: raw.to_vec(), file: Some(name.into()) });
    }
    let mut stored = 0;
    for chunk in mails.chunks(crate::mail::inbound::batch::MAX_MESSAGES) {
        let reports = crate::mail::inbound::batch::ingest_batch(conn, &config.mail, &known, "demo", chunk)?;
        stored += reports.iter().filter(|r| r.status == "stored").count();
    }

    // Requests in every state the desk has so far, once.
    let existing: i64 = requests::table.count().get_result(conn)?;
    let mut opened = 0;
    if existing == 0 {
        let requests_mails: Vec<crate::mail::inbound::models::MailMessage> = {
            use crate::db::schema::mail_messages;
            mail_messages::table
                .filter(mail_messages::kind.eq("connection_request"))
                .order(mail_messages::id.asc())
                .limit(40)
                .select(crate::mail::inbound::models::MailMessage::as_select())
                .load(conn)?
        };
        for (n, m) in requests_mails.iter().enumerate() {
            let s: crate::mail::inbound::classify::Suggestions =
                serde_json::from_str(&m.suggestions).unwrap_or_default();
            let merchant = s.merchant.clone().unwrap_or_else(|| format!("Merchant {n}"));
            let input = OpenRequest {
                partner_id: m.partner_id.unwrap_or(1),
                mail_id: Some(m.id),
                merchant_name: merchant.clone(),
                merchant_contact: s.contact.clone().unwrap_or_default(),
                merchant_phone: s.phones.first().cloned().unwrap_or_default(),
                point_name: format!("{merchant} – điểm chính"),
                point_address: s.address.clone().unwrap_or_default(),
                point_contact: s.contact.clone().unwrap_or_default(),
                point_phone: s.phones.first().cloned().unwrap_or_default(),
                extra_points: Vec::new(),
            };
            let id = hub::open_request(conn, &sale_actor, &input)?;
            opened += 1;
            let version = crate::hub::models::request(conn, id)?.version;
            match n % 6 {
                // Accepted, with the acceptance mail queued in the partner's thread,
                // then carried through the PYC as far as `n` says.
                0 | 1 => {
                    let r = crate::hub::models::request(conn, id)?;
                    if !hub::missing(conn, &r)?.is_empty() {
                        hub::manual_confirmation(
                            conn,
                            &leader_actor,
                            id,
                            "leader",
                            "Leader đối tác xác nhận qua điện thoại",
                        )?;
                    }
                    let draft = hub::acceptance_draft(conn, id, &sale.name)?;
                    hub::accept(conn, &config.outbound, &sale_actor, id, version, &draft)?;
                    advance_pyc(conn, config, n, id, &sale_actor, &leader_actor, &tech_actor, &accountant_actor)?;
                }
                2 => hub::transition(
                    conn,
                    &sale_actor,
                    id,
                    version,
                    State::Rejected,
                    "Merchant chưa ký hợp đồng dịch vụ với iPOS",
                )?,
                3 => hub::transition(conn, &sale_actor, id, version, State::Cancelled, "Đối tác rút yêu cầu")?,
                _ => {
                    hub::comment(conn, &sale_actor, id, "Đã gọi merchant, chờ xác nhận bằng mail.", true)?;
                    // Some have waited for the merchant since last week: overdue in the
                    // lists, and in the morning digest.
                    if n % 6 == 4 {
                        diesel::update(requests::table.find(id))
                            .set(requests::state_since.eq(crate::db::now() - chrono::Duration::days(4)))
                            .execute(conn)?;
                    }
                }
            }
        }
        // Month end (B6): last month's list went to accounting, which reconciled it.
        let last = crate::reports::Month::of(crate::fmt::local_date(crate::db::now())).previous();
        crate::reports::report_to_accounting(conn, &config.outbound, &system, last)?;
        reconciled_month(conn, &accountant_actor, last)?;
    }
    let businesses = merchant_side(conn, config)?;
    let mut out = String::new();
    out.push_str(&format!(
        "demo data: {created_users} users, {new_customers} customers, {merchants} merchants, {stored} partner mails, {opened} requests added\n"
    ));
    out.push_str("demo accounts (e-mail / password):\n");
    for (email, _, role, password) in USERS {
        out.push_str(&format!("  {:<24} {:<24} {}\n", email, password, role.label()));
    }
    out.push_str(&format!(
        "merchant accounts ({businesses} businesses added; sign in at /login, their area is /app):\n"
    ));
    for (email, name, _, password) in MERCHANTS {
        out.push_str(&format!("  {:<24} {:<24} {}\n", email, password, name));
    }
    Ok(out)
}

/// A partner statement for `month` as partners send them (their own column names,
/// dd/mm/yyyy dates), one point short, one point we never deployed and one date
/// off, uploaded and matched: the reconciliation screen shows every outcome.
fn reconciled_month(conn: &mut DbConn, accountant: &Actor, month: crate::reports::Month) -> AppResult<()> {
    use crate::reports::reconcile;
    let Some(code) = crate::reports::month_counts(conn, month)?.into_iter().max_by_key(|(_, n)| *n).map(|(c, _)| c)
    else {
        return Ok(());
    };
    let partner = crate::hub::partners::all(conn)?.into_iter().find(|p| p.code == code).ok_or(AppError::NotFound)?;
    let mut ours = Vec::new();
    crate::reports::each_month_row(conn, month, Some(partner.id), &mut |r| {
        ours.push(r);
        Ok(())
    })?;
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet().set_name("DoiSoat").map_err(AppError::internal)?;
    let x = |r: Result<&mut rust_xlsxwriter::Worksheet, rust_xlsxwriter::XlsxError>| {
        r.map(|_| ()).map_err(AppError::internal)
    };
    for (c, h) in ["STT", "Mã POS", "Tên merchant", "Ngày kích hoạt"].iter().enumerate() {
        x(sheet.write_string(0, c as u16, *h))?;
    }
    let mut line = 1u32;
    for (i, r) in ours.iter().enumerate() {
        if ours.len() > 1 && i == ours.len() - 1 {
            break; // the partner's statement missed this one
        }
        let date = if i == 1 { r.live_at + chrono::Duration::days(1) } else { r.live_at };
        x(sheet.write_number(line, 0, f64::from(line)))?;
        x(sheet.write_string(line, 1, &r.pos_id))?;
        x(sheet.write_string(line, 2, &r.merchant))?;
        x(sheet.write_string(line, 3, date.format("%d/%m/%Y").to_string()))?;
        line += 1;
    }
    x(sheet.write_number(line, 0, f64::from(line)))?;
    x(sheet.write_string(line, 1, "POS-999999"))?;
    x(sheet.write_string(line, 2, "Trà sữa Gõ Cửa"))?;
    x(sheet.write_string(line, 3, format!("15/{:02}/{}", month.month, month.year)))?;
    let bytes = book.save_to_buffer().map_err(AppError::internal)?;
    let value = format!("{}-{:02}", month.year, month.month);
    let name = format!("doi-soat-{}-{value}.xlsx", code.to_lowercase());
    let id = reconcile::upload(conn, accountant, partner.id, &value, &name, &bytes)?;
    let mapping = reconcile::Mapping {
        sheet: "DoiSoat".into(),
        header_row: 0,
        pos_id: Some(1),
        point_code: None,
        merchant: Some(2),
        date: Some(3),
    };
    reconcile::run(conn, accountant, id, &mapping)?;
    Ok(())
}

const NEWSLETTER: &str = "From: \"Tin khuyến mãi\" <news@quangcao.example>\r\n\
To: hub@ipos.vn\r\n\
Subject: =?UTF-8?B?xq91IMSRw6NpIGN14buRaSBuxINtIGNobyBkb2FuaCBuZ2hp4buHcA==?=\r\n\
Date: Mon, 2 Nov 2026 08:00:00 +0700\r\n\
Message-ID: <demo-newsletter-2026-11@quangcao.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Giảm 30% phí phần mềm quản lý bán hàng cho doanh nghiệp đăng ký trước 31/12.\r\n";

/// A 1×1 PNG standing in for the screenshot of a successful connection.
const DEMO_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49,
    0x44, 0x41, 0x54, 0x78, 0xDA, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D,
    0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// Takes an accepted request's PYC to a stage that depends on `n`: draft, created,
/// deploying, deployed and replied, or invoiced.
#[allow(clippy::too_many_arguments)]
fn advance_pyc(
    conn: &mut DbConn,
    config: &Config,
    n: usize,
    request_id: i64,
    sale: &Actor,
    leader: &Actor,
    tech: &Actor,
    accountant: &Actor,
) -> AppResult<()> {
    use crate::pyc::{models as pyc_models, service as pyc};
    let stage = n / 6;
    let (fields, _) = pyc::draft_fields(conn, request_id)?;
    let id = pyc::create(conn, config, sale, request_id, &fields)?;
    if stage == 0 {
        return Ok(());
    }
    let v = pyc_models::pyc(conn, id)?.version;
    pyc::advance(conn, config, leader, id, v, crate::pyc::PycState::Reviewed)?;
    // Handed to the demo technician by person, so their "Việc của tôi" lists it.
    pyc::assign_technician(conn, config, leader, id, tech.user_id)?;
    let v = pyc_models::pyc(conn, id)?.version;
    pyc::advance(conn, config, sale, id, v, crate::pyc::PycState::Created)?;
    if stage == 1 {
        return Ok(());
    }
    let items = pyc_models::items(conn, id)?;
    for item in items.iter().filter(|i| i.required).take(if stage == 2 { 3 } else { usize::MAX }) {
        pyc::tick(conn, tech, id, item.id, true)?;
    }
    if stage == 2 {
        return Ok(());
    }
    pyc::save_data(
        conn,
        &config.keyring(),
        tech,
        id,
        &format!("PP-{:04}", 1000 + n),
        &format!("POS-{:06}", 200_000 + n),
        &format!("MD-{n:04}"),
        &format!("K1-{n:04}-demo"),
        &format!("K2-{n:04}-demo"),
    )?;
    pyc::save_screenshot(conn, tech, id, DEMO_PNG)?;
    let v = pyc_models::pyc(conn, id)?.version;
    pyc::mark_deployed(conn, tech, id, v)?;
    // Went live last month, so the accountant's default report (last month) shows it.
    {
        use crate::db::schema::pycs;
        let last = crate::reports::Month::of(crate::fmt::local_date(crate::db::now())).previous();
        // One replied request went live this month: it waits in B5 for next month's list.
        let start = if stage == 3 && n % 2 == 1 { last.next().utc_range().0 } else { last.utc_range().0 };
        let when = (start + chrono::Duration::hours(10 + n as i64)).min(crate::db::now());
        diesel::update(pycs::table.find(id)).set(pycs::deployed_at.eq(Some(when))).execute(conn)?;
    }
    let draft = pyc::reply_draft(conn, id, "Phạm Kỹ Thuật")?;
    let v = pyc_models::pyc(conn, id)?.version;
    pyc::send_reply(conn, &config.outbound, tech, id, v, &draft)?;
    if stage >= 4 {
        let v = pyc_models::pyc(conn, id)?.version;
        pyc::record_invoice(conn, accountant, id, v, &format!("HD0-{:05}", n), crate::db::now())?;
    }
    Ok(())
}
