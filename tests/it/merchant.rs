//! The merchant side: sign-up, mailed links, businesses, members, plans, isolation,
//! and what staff see of it. Every test runs on SQLite and PostgreSQL.

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use hubgate::audit::Actor;
use hubgate::business::models::NewBankAccount;
use hubgate::business::service;
use hubgate::db::schema::{audit_log, business_members, businesses, users};

use crate::support::{PASSWORD, link_in};

fn account<'a>(business_id: i64, number: &'a str) -> NewBankAccount<'a> {
    NewBankAccount {
        business_id,
        bank_code: "ACB",
        bank_name: "ACB",
        account_number: number,
        account_name: "NGUYEN VAN A",
        method: "demo",
        connect_status: "connected",
        created_at: hubgate::db::now(),
        connection_id: None,
        bank_bin: "",
        external_id: number,
        balance: None,
        sync_from: None,
        next_sync_at: None,
    }
}

db_test!(signup_verification_and_reset_by_mail, |app| {
    let b = app.browser();
    // A phone number that is not Vietnamese is refused with the form kept.
    let page = b
        .post(
            "/signup",
            &[
                ("email", "Lan@Cafe.vn"),
                ("name", "Nguyễn Thị Lan"),
                ("phone", "+1 202 555 0143"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("Số điện thoại không hợp lệ"), "{}", page.body);
    assert!(page.body.contains("Nguyễn Thị Lan"));

    let page = b
        .post(
            "/signup",
            &[
                ("email", "Lan@Cafe.vn"),
                ("name", "Nguyễn Thị Lan"),
                ("phone", "0912 345 678"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/app"));
    let (kind, phone, verified): (String, Option<String>, Option<chrono::NaiveDateTime>) = app
        .with_conn(|c| {
            users::table
                .filter(users::email.eq("lan@cafe.vn"))
                .select((users::kind, users::phone, users::email_verified_at))
                .first(c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((kind.as_str(), phone.as_deref(), verified), ("merchant", Some("+84912345678"), None));

    // Unverified: the area asks for the mail first, and the account is no staff.
    let page = b.get("/app").await;
    assert_eq!(page.location.as_deref(), Some("/app/verify"));
    assert_eq!(b.get("/requests").await.status, 403);

    let mail = app.last_mail_to("lan@cafe.vn", "Xác nhận email").unwrap_or_else(|| panic!("no verification mail"));
    let link = link_in(&mail, &app.state.config.base_url, "/verify-email?token=").unwrap_or_else(|| panic!("{mail}"));
    // A forged token does nothing.
    let forged = b.get("/verify-email?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(forged.status, 410);
    let page = b.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("đã được xác nhận"));
    // Single use.
    let again = b.get(&link).await;
    assert_eq!(again.status, 410);
    assert!(again.body.contains("đã được dùng"));
    let page = b.get("/app").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Bạn chưa có doanh nghiệp nào"));

    // Forgotten password: the same answer whether or not the account exists; only a
    // real account gets a mail.
    let anon = app.browser();
    let known = anon.post("/password/forgot", &[("email", "lan@cafe.vn")]).await;
    let unknown = anon.post("/password/forgot", &[("email", "ai-do@cafe.vn")]).await;
    assert_eq!((known.status, unknown.status), (200, 200));
    assert!(known.body.contains("Nếu email này có tài khoản"));
    assert_eq!(known.body.replace("lan@cafe.vn", ""), unknown.body.replace("ai-do@cafe.vn", ""));
    assert!(app.last_mail_to("ai-do@cafe.vn", "").is_none());
    let mail = app.last_mail_to("lan@cafe.vn", "Đặt lại mật khẩu").unwrap_or_else(|| panic!("no reset mail"));
    let link = link_in(&mail, &app.state.config.base_url, "/password/reset?token=").unwrap_or_else(|| panic!("{mail}"));
    let token = link.split("token=").nth(1).unwrap_or_default().to_string();
    let form = anon.get(&link).await;
    assert_eq!(form.status, 200);
    let short = anon.post("/password/reset", &[("token", &token), ("password", "ngan"), ("confirm", "ngan")]).await;
    assert_eq!(short.status, 422);
    let new_password = "mat-khau-moi-cua-lan-2026";
    let done =
        anon.post("/password/reset", &[("token", &token), ("password", new_password), ("confirm", new_password)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    // The old session ended with the password change; the old password no longer works.
    assert_eq!(b.get("/app").await.location.as_deref(), Some("/login?next=%2Fapp"));
    assert_eq!(app.browser().login("lan@cafe.vn", PASSWORD).await.status, 401);
    let fresh = app.browser();
    let login = fresh.login("lan@cafe.vn", new_password).await;
    assert_eq!((login.status, login.location.as_deref()), (303, Some("/app")));
    // The link is spent.
    let reuse = app
        .browser()
        .post("/password/reset", &[("token", &token), ("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(reuse.status, 422);
    assert!(reuse.body.contains("đã được dùng"));
});

db_test!(business_members_and_deletion, |app| {
    let owner = app.create_merchant("chu@pho24.vn");
    let b = app.login("chu@pho24.vn").await;
    // A feature the form never offered is refused.
    let bad = b.post("/app/businesses", &[("name", "Phở 24"), ("website", "pho24.vn"), ("feature", "root")]).await;
    assert_eq!(bad.status, 422);
    let page = b
        .post(
            "/app/businesses",
            &[("name", "Phở 24"), ("website", "pho24.vn"), ("feature", "sync"), ("feature", "api")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let bid: i64 = app
        .with_conn(|c| businesses::table.filter(businesses::name.eq("Phở 24")).select(businesses::id).first(c))
        .unwrap_or_else(|e| panic!("{e}"));
    let overview = b.get(&format!("/app/b/{bid}")).await;
    assert!(overview.body.contains("Miễn phí"), "{}", overview.body);
    assert!(overview.body.contains("Đồng bộ giao dịch ngân hàng, API / webhook"));
    assert!(overview.body.contains("https://pho24.vn"));

    // Invite a manager by mail; the link is for that address only.
    let sent =
        b.post(&format!("/app/b/{bid}/members/invite"), &[("email", "Quanly@Pho24.vn"), ("role", "manager")]).await;
    assert_eq!(sent.status, 303);
    let bogus_role =
        b.post(&format!("/app/b/{bid}/members/invite"), &[("email", "x@pho24.vn"), ("role", "admin")]).await;
    assert_eq!(bogus_role.status, 303);
    assert!(app.last_mail_to("x@pho24.vn", "").is_none(), "an unknown role must not invite");
    let mail = app.last_mail_to("quanly@pho24.vn", "Lời mời").unwrap_or_else(|| panic!("no invitation mail"));
    let link = link_in(&mail, &app.state.config.base_url, "/invite?token=").unwrap_or_else(|| panic!("{mail}"));
    let token = link.split("token=").nth(1).unwrap_or_default().to_string();

    let stranger = app.create_merchant("khac@pho24.vn");
    let s = app.login(&stranger.email).await;
    let refused = s.post("/invite/accept", &[("token", &token)]).await;
    assert_eq!(refused.status, 303);
    assert!(s.get(&link).await.body.contains("dành cho quanly@pho24.vn"));
    assert_eq!(s.get(&format!("/app/b/{bid}")).await.status, 404);

    let manager = app.create_merchant("quanly@pho24.vn");
    let m = app.login(&manager.email).await;
    let invitation = m.get(&link).await;
    assert!(invitation.body.contains("Phở 24") && invitation.body.contains("Quản lý"), "{}", invitation.body);
    let joined = m.post("/invite/accept", &[("token", &token)]).await;
    assert_eq!(joined.location.as_deref(), Some(format!("/app/b/{bid}").as_str()));
    assert_eq!(m.get(&format!("/app/b/{bid}")).await.status, 200);
    // Single use: a second acceptance changes nothing.
    let again = m.post("/invite/accept", &[("token", &token)]).await;
    assert_eq!(again.status, 303);
    let members: i64 = app
        .with_conn(|c| business_members::table.filter(business_members::business_id.eq(bid)).count().get_result(c))
        .unwrap_or(-1);
    assert_eq!(members, 2);

    // A manager edits but cannot manage members or delete.
    assert_eq!(
        m.post(&format!("/app/b/{bid}/members/invite"), &[("email", "y@pho24.vn"), ("role", "viewer")]).await.status,
        403
    );
    assert_eq!(m.post(&format!("/app/b/{bid}/delete"), &[("confirm_name", "Phở 24")]).await.status, 403);
    let edit = m.post(&format!("/app/b/{bid}/settings"), &[("name", "Phở 24 Hà Nội"), ("website", "")]).await;
    assert_eq!(edit.status, 303);

    // The last owner cannot be removed or demoted.
    let owner_member: i64 = app
        .with_conn(|c| {
            business_members::table
                .filter(business_members::business_id.eq(bid))
                .filter(business_members::user_id.eq(owner.id))
                .select(business_members::id)
                .first(c)
        })
        .unwrap_or(-1);
    b.post(&format!("/app/b/{bid}/members/{owner_member}/role"), &[("role", "viewer")]).await;
    let page = b.get(&format!("/app/b/{bid}/members")).await;
    assert!(page.body.contains("phải còn ít nhất một chủ sở hữu"), "{}", page.body);

    // Deletion waits until no bank account is linked, and names the accounts.
    let acc = app
        .with_conn(|c| service::link_account(c, &Actor::system("test"), &account(bid, "0071000123456")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let refused = b.post(&format!("/app/b/{bid}/delete"), &[("confirm_name", "Phở 24 Hà Nội")]).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("0071000123456"), "{}", refused.body);
    assert_eq!(b.post(&format!("/app/b/{bid}/accounts/{}/remove", acc.id), &[]).await.status, 303);
    let wrong_name = b.post(&format!("/app/b/{bid}/delete"), &[("confirm_name", "Pho 24")]).await;
    assert_eq!(wrong_name.status, 422);
    assert_eq!(b.get(&format!("/app/b/{bid}")).await.status, 200);
    let deleted = b.post(&format!("/app/b/{bid}/delete"), &[("confirm_name", "Phở 24 Hà Nội")]).await;
    assert_eq!(deleted.location.as_deref(), Some("/app"));
    assert_eq!(b.get(&format!("/app/b/{bid}")).await.status, 404);
    assert_eq!(m.get(&format!("/app/b/{bid}")).await.status, 404);
    let actions: Vec<String> = app
        .with_conn(|c| {
            audit_log::table
                .filter(audit_log::entity_type.eq("business"))
                .filter(audit_log::entity_id.eq(bid.to_string()))
                .order(audit_log::id.asc())
                .select(audit_log::action)
                .load(c)
        })
        .unwrap_or_default();
    for action in ["create", "invite", "join", "update", "start_trial", "delete"] {
        assert!(actions.iter().any(|a| a == action), "no audit row {action}: {actions:?}");
    }
});

db_test!(trial_quota_and_upgrade_request, |app| {
    let owner = app.create_merchant("chu@banhmi.vn");
    let admin = app.create_user("admin@ipos.vn", &[hubgate::accounts::Role::Admin]);
    let bid = app.create_business(&owner, "Bánh mì Hội An");
    let b = app.login(&owner.email).await;
    assert!(!b.get(&format!("/app/b/{bid}")).await.body.contains("Đang dùng thử"));

    // The first link starts the 14-day trial of the trial plan.
    app.with_conn(|c| service::link_account(c, &Actor::system("test"), &account(bid, "111")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let (trial_ends, trial_plan): (Option<chrono::NaiveDateTime>, Option<i64>) = app
        .with_conn(|c| {
            businesses::table
                .filter(businesses::id.eq(bid))
                .select((businesses::trial_ends_at, businesses::trial_plan_id))
                .first(c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let plan_code = app
        .with_conn(|c| hubgate::business::models::plan(c, trial_plan.unwrap_or(-1)))
        .map(|p| p.code)
        .unwrap_or_default();
    let days = trial_ends.map(|t| (t - hubgate::db::now()).num_hours()).unwrap_or(0);
    assert!((335..=336).contains(&days), "trial of {days} hours");
    assert_eq!(plan_code, "BUSINESS");
    let page = b.get(&format!("/app/b/{bid}")).await;
    assert!(page.body.contains("Đang dùng thử miễn phí gói Doanh nghiệp đến"), "{}", page.body);

    // Quota used up: every page of that business says so; another business does not.
    let other = app.create_business(&owner, "Quán khác");
    let quota: i64 = 20_000;
    app.with_conn(|c| service::record_usage(c, bid, quota - 1)).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!app.with_conn(|c| service::quota_reached(c, bid)).unwrap_or(true), "one transaction left");
    app.with_conn(|c| service::record_usage(c, bid, 1)).unwrap_or_else(|e| panic!("{e:?}"));
    let reached = app.with_conn(|c| service::quota_reached(c, bid)).unwrap_or(false);
    assert!(reached);
    for tab in ["", "/accounts", "/members", "/plan", "/settings"] {
        let page = b.get(&format!("/app/b/{bid}{tab}")).await;
        assert!(page.body.contains("đã dùng hết 20.000 giao dịch"), "{tab}: no quota banner");
    }
    assert!(!b.get(&format!("/app/b/{other}")).await.body.contains("đã dùng hết"));

    // Upgrade request: a plan the page never offered is refused; a real one mails the admins.
    let free_id: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::plans;
            plans::table.filter(plans::code.eq("FREE")).select(plans::id).first(c)
        })
        .unwrap_or(-1);
    let pro_id: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::plans;
            plans::table.filter(plans::code.eq("PRO")).select(plans::id).first(c)
        })
        .unwrap_or(-1);
    b.post(&format!("/app/b/{bid}/plan/upgrade"), &[("plan_id", &free_id.to_string()), ("note", "")]).await;
    assert!(app.last_mail_to(&admin.email, "nâng cấp").is_none());
    let asked = b
        .post(&format!("/app/b/{bid}/plan/upgrade"), &[("plan_id", &pro_id.to_string()), ("note", "Gọi tôi sáng mai")])
        .await;
    assert_eq!(asked.status, 303);
    let mail = app.last_mail_to(&admin.email, "nâng cấp").unwrap_or_else(|| panic!("admins not told"));
    assert!(mail.contains("Bánh mì Hội An") && mail.contains("Chuyên nghiệp") && mail.contains("Gọi tôi sáng mai"));

    // Staff apply the plan; the request closes; the admin's look is audited.
    let a = app.login(&admin.email).await;
    let list = a.get("/admin/businesses").await;
    assert!(list.body.contains("muốn gói Chuyên nghiệp"), "{}", list.body);
    let views_before: i64 = app
        .with_conn(|c| audit_log::table.filter(audit_log::action.eq("staff_view")).count().get_result(c))
        .unwrap_or(-1);
    let show = a.get(&format!("/admin/businesses/{bid}")).await;
    assert!(show.body.contains("chu@banhmi.vn"));
    let views_after: i64 = app
        .with_conn(|c| audit_log::table.filter(audit_log::action.eq("staff_view")).count().get_result(c))
        .unwrap_or(-1);
    assert_eq!(views_after, views_before + 1);
    a.post(&format!("/admin/businesses/{bid}/plan"), &[("plan_id", &pro_id.to_string())]).await;
    let plan_page = b.get(&format!("/app/b/{bid}/plan")).await;
    assert!(plan_page.body.contains("Đã nâng cấp"), "{}", plan_page.body);
    assert!(!a.get("/admin/businesses").await.body.contains("muốn gói Chuyên nghiệp"));
});

db_test!(account_limit_of_the_plan, |app| {
    let owner = app.create_merchant("chu@tra.vn");
    let bid = app.create_business(&owner, "Trà sữa");
    let actor = Actor::system("test");
    // Trial plan allows 10 accounts.
    for n in 0..10 {
        app.with_conn(|c| service::link_account(c, &actor, &account(bid, &format!("acc-{n}"))))
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    let over = app.with_conn(|c| service::link_account(c, &actor, &account(bid, "acc-10")));
    match over {
        Err(hubgate::error::AppError::Validation(msg)) => assert!(msg.contains("tối đa 10"), "{msg}"),
        other => panic!("expected the limit, got {other:?}"),
    }
});

// Every `/app/b/{bid}/…` route, GET or POST, with the ids of a business the merchant
// does not belong to: 404 each time, and nothing of that business changes.
db_test!(no_merchant_reaches_another_business, |app| {
    let alice = app.create_merchant("alice@quan-a.vn");
    let bob = app.create_merchant("bob@quan-b.vn");
    let a_biz = app.create_business(&alice, "Quán A");
    let b_biz = app.create_business(&bob, "Quán B");
    let b_acc = app
        .with_conn(|c| service::link_account(c, &Actor::system("test"), &account(b_biz, "999")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let b_member: i64 = app
        .with_conn(|c| {
            business_members::table
                .filter(business_members::business_id.eq(b_biz))
                .select(business_members::id)
                .first(c)
        })
        .unwrap_or(-1);
    let b_view = app.login(&bob.email).await;
    b_view.post(&format!("/app/b/{b_biz}/members/invite"), &[("email", "moi@quan-b.vn"), ("role", "viewer")]).await;
    let b_inv: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::business_invitations;
            business_invitations::table.select(business_invitations::id).first(c)
        })
        .unwrap_or(-1);
    let before: String =
        app.with_conn(|c| businesses::table.find(b_biz).select(businesses::name).first(c)).unwrap_or_default();

    let a = app.login(&alice.email).await;
    let app_routes: Vec<_> =
        hubgate::web::all_routes().into_iter().filter(|r| r.path.starts_with("/app/b/{bid}")).collect();
    assert!(app_routes.len() >= 25, "{app_routes:?}");
    for r in app_routes {
        let url = r
            .path
            .replace("{bid}", &b_biz.to_string())
            .replace("{aid}", &b_acc.id.to_string())
            .replace("{mid}", &b_member.to_string())
            .replace("{iid}", &b_inv.to_string())
            .replace("{bin}", "970436")
            .replace("{cid}", "1")
            .replace("{tid}", "1")
            .replace("{did}", "1");
        let page = if r.method == "GET" {
            a.get(&url).await
        } else {
            a.post(&url, &[("name", "Bị chiếm"), ("confirm_name", "Quán B"), ("role", "viewer"), ("email", "x@y.vn")])
                .await
        };
        assert_eq!(page.status, 404, "{} {url} answered {}", r.method, page.status);
        // Alice's own business with Bob's member, account and invitation ids: 404 too.
        let own = url.replace(&format!("/app/b/{b_biz}"), &format!("/app/b/{a_biz}"));
        if own.matches(char::is_numeric).count() > a_biz.to_string().len() && r.method == "POST" {
            let page = a.post(&own, &[("role", "viewer")]).await;
            assert!(matches!(page.status, 303 | 404 | 422), "{own}: {}", page.status);
        }
    }
    let after: String =
        app.with_conn(|c| businesses::table.find(b_biz).select(businesses::name).first(c)).unwrap_or_default();
    assert_eq!(before, after);
    assert!(
        app.with_conn(|c| hubgate::business::models::linked_account(c, b_biz, b_acc.id)).is_ok(),
        "account removed"
    );
    let b_members: i64 = app
        .with_conn(|c| business_members::table.filter(business_members::business_id.eq(b_biz)).count().get_result(c))
        .unwrap_or(-1);
    assert_eq!(b_members, 1);
    // And the list shows only her own.
    let home = a.get("/app").await;
    assert!(home.body.contains("Quán A") && !home.body.contains("Quán B"));
});

db_test!(business_and_hub_merchant_see_each_other, |app| {
    use hubgate::hub::models as hub;
    let owner = app.create_merchant("chu@lau.vn");
    let bid = app.create_business(&owner, "Lẩu Phan");
    let merchant_id = app
        .with_conn(|c| hub::ensure_merchant(c, "Lẩu Phan", "Anh Phan", "0909000111", "lau phan"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    app.create_user("sale@ipos.vn", &[hubgate::accounts::Role::Sale]);
    app.create_user("kt@ipos.vn", &[hubgate::accounts::Role::Technician]);
    let tech = app.login("kt@ipos.vn").await;
    assert_eq!(
        tech.post(&format!("/merchants/{merchant_id}/business"), &[("business_id", &bid.to_string())]).await.status,
        403
    );
    let sale = app.login("sale@ipos.vn").await;
    let linked = sale.post(&format!("/merchants/{merchant_id}/business"), &[("business_id", &bid.to_string())]).await;
    assert_eq!(linked.status, 303);
    let page = sale.get(&format!("/merchants/{merchant_id}")).await;
    assert!(page.body.contains(&format!("doanh nghiệp <strong>Lẩu Phan</strong> (#{bid})")), "{}", page.body);
    let b = app.login(&owner.email).await;
    assert!(b.get(&format!("/app/b/{bid}")).await.body.contains("Đã liên kết với merchant <strong>Lẩu Phan</strong>"));
    // Unlink from the merchant page.
    sale.post(&format!("/merchants/{merchant_id}/business"), &[("current", &bid.to_string())]).await;
    assert!(sale.get(&format!("/merchants/{merchant_id}")).await.body.contains("Chưa liên kết"));
    // A merchant account never reaches the desk.
    assert_eq!(b.get(&format!("/merchants/{merchant_id}")).await.status, 403);
    assert_eq!(b.get("/admin/businesses").await.status, 403);
});
