//! The demo data set: every role can sign in, the desk is populated, a second run
//! adds nothing.

use diesel::prelude::*;
use hubgate::db::schema::{mail_messages, merchants, requests, users};

/// The name in a page's user menu: who the page was made for.
fn signed_in_as(body: &str) -> Option<&str> {
    let after = body.split("<span class=\"who\" title=\"").nth(1)?;
    Some(after.split_once("\">")?.1.split_once("</span>")?.0)
}

db_test!(demo_data_fills_the_desk_once, |app| {
    let counts = |app: &crate::support::TestApp| {
        app.with_conn(|c| {
            let u: i64 = users::table.count().get_result(c)?;
            let m: i64 = merchants::table.count().get_result(c)?;
            let r: i64 = requests::table.count().get_result(c)?;
            let mails: i64 = mail_messages::table.count().get_result(c)?;
            diesel::QueryResult::Ok((u, m, r, mails))
        })
        .unwrap_or_default()
    };
    let seeded_at = hubgate::db::now();
    let summary = app.with_conn(|c| hubgate::demo::seed(c, &app.state.config)).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(summary.contains("sale@demo.ipos.vn"), "passwords are printed: {summary}");
    let first = counts(&app);
    assert_eq!(first.0, 5 + hubgate::demo::MERCHANTS.len() as i64);
    assert!(summary.contains("chu@phoviet.vn"), "merchant passwords are printed: {summary}");
    assert!(first.1 >= 300, "a few hundred merchants");
    assert!(first.2 >= 20 && first.3 >= 150);
    app.with_conn(|c| hubgate::demo::seed(c, &app.state.config)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(counts(&app), first, "a second run adds nothing");
    let states: Vec<String> =
        app.with_conn(|c| requests::table.select(requests::state).distinct().load(c)).unwrap_or_default();
    for s in ["received", "accepted", "ticket", "deploying", "replied", "reported", "invoiced", "rejected", "cancelled"]
    {
        assert!(states.iter().any(|x| x == s), "{s} missing from {states:?}");
    }
    // Each demo account signs in and sees a populated page of its own.
    // Signed in means: the desk's home, with their own name in the user menu and the
    // menu of their role (an administrator's user list; nobody else's).
    for (email, name, role, password) in hubgate::demo::USERS {
        let b = app.browser();
        let login = b.login(email, password).await;
        assert_eq!((login.status, login.location.as_deref()), (303, Some("/")), "{email}: {}", login.body);
        let my = b.get("/my").await;
        assert_eq!(my.status, 200);
        assert_eq!(signed_in_as(&my.body), Some(name), "{email}");
        assert_eq!(my.body.contains("href=\"/admin/users\""), role == hubgate::accounts::Role::Admin, "{email}'s menu");
        // A wrong password is refused: the demo logins are not open doors.
        let wrong = app.browser().login(email, "sai-mat-khau-2026").await;
        assert_ne!(wrong.status, 303, "{email} signed in with a wrong password");
    }
    // Each merchant signs in to their own area; the businesses show every plan state.
    for (email, name, _, password) in hubgate::demo::MERCHANTS {
        let b = app.browser();
        let login = b.login(email, password).await;
        assert_eq!(login.location.as_deref(), Some("/app"), "{email}");
        let home = b.get("/app").await;
        assert_eq!(home.status, 200);
        assert_eq!(signed_in_as(&home.body), Some(name), "{email}");
        assert!(home.body.contains("class=\"tile"), "{email} sees a business of theirs");
    }
    let owner = app.browser();
    owner.login("chu@comtam.vn", "demo-com-tam-2026").await;
    let home = owner.get("/app").await;
    assert!(home.body.contains("Hết hạn mức giao dịch tháng"), "{}", home.body);
    let pho = app.browser();
    pho.login("chu@phoviet.vn", "demo-chu-quan-2026").await;
    let home = pho.get("/app").await;
    assert!(home.body.contains("Phở Việt") && home.body.contains("(dùng thử)") && home.body.contains("Cà phê Sáng"));
    assert!(!home.body.contains("Cơm tấm"), "another owner's business is not listed");
    let linked: Option<i64> = app
        .with_conn(|c| {
            use hubgate::db::schema::businesses;
            businesses::table.filter(businesses::name.eq("Phở Việt")).select(businesses::hub_merchant_id).first(c)
        })
        .unwrap_or(None);
    assert!(linked.is_some(), "one business is linked to a hub merchant");
    // Its demo accounts already hold a month of transactions, and keep syncing.
    let pho_id: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::businesses;
            businesses::table.filter(businesses::name.eq("Phở Việt")).select(businesses::id).first(c)
        })
        .unwrap_or(-1);
    let synced: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::transactions;
            transactions::table.filter(transactions::business_id.eq(pho_id)).count().get_result(c)
        })
        .unwrap_or(-1);
    assert!(synced > 300, "a month of demo transactions: {synced}");
    let list = pho.get(&format!("/app/b/{pho_id}/transactions")).await;
    assert!(list.body.contains("<svg class=\"chart\"") && list.body.contains("Ngân hàng Demo"), "{}", list.body);
    let accounts = pho.get(&format!("/app/b/{pho_id}/accounts")).await;
    assert!(accounts.body.contains("lần đồng bộ tiếp theo lúc"));
    // The accountant's default month (the last one) has connections to look at.
    // The seed filled the month before the one it ran in; the bracket below is that
    // month even when the run crossed midnight at a month's end.
    let last = |at| hubgate::reports::Month::of(hubgate::fmt::local_date(at)).previous();
    let rows = |m| app.with_conn(|c| hubgate::reports::month_rows(c, m)).unwrap_or_default();
    assert!(!rows(last(seeded_at)).is_empty() || !rows(last(hubgate::db::now())).is_empty());
    // ... and a reconciled statement with every kind of outcome to open.
    let accountant = app.browser();
    accountant.login("ketoan@demo.ipos.vn", "demo-ke-toan-2026").await;
    let home = accountant.get("/reports/reconcile").await;
    let rid: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::reconciliations;
            reconciliations::table.select(reconciliations::id).filter(reconciliations::run_at.is_not_null()).first(c)
        })
        .unwrap_or_else(|e| panic!("no reconciled month: {e}"));
    assert!(home.body.contains(&format!("/reports/reconcile/{rid}")), "listed on the reconciliation page");
    let page = accountant.get(&format!("/reports/reconcile/{rid}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("POS-999999"), "the point only the partner has is shown");
    let sale = app.browser();
    sale.login("sale@demo.ipos.vn", "demo-kinh-doanh-2026").await;
    assert!(sale.get("/requests").await.body.contains("MOMO"));
    assert!(sale.get("/merchants?q=pho").await.body.contains("Phở"));
    // Sales also finds work waiting in the partner inbox, and the file that was no mail.
    let inbox = sale.get("/mail").await;
    assert!(inbox.body.contains("Mở cổng kết nối HUB") && inbox.body.contains("quangcao.example"), "{}", inbox.body);
    assert!(sale.get("/mail/unreadable").await.body.contains("tep-hong.eml"));
});
