//! Sealed secrets: bound to their row and column, still readable in the format of the
//! previous version, and moved to a new master key by `hubgate rotate-key` (the real
//! binary), after which the old key can leave the configuration.

use diesel::prelude::*;
use hubgate::audit::Actor;
use hubgate::config::SecretKey;
use hubgate::db::schema::{audit_log, bank_connections, integrations, pycs, zalo_tokens};
use hubgate::secrets::{self, Keyring, PYC_KEY1, PYC_KEY2};

use crate::support::{Browser, TestApp};

fn hex_key(byte: &str) -> String {
    byte.repeat(32)
}

fn key(hex: &str) -> SecretKey {
    SecretKey::from_bytes(hex::decode(hex).unwrap_or_else(|e| panic!("{e}")))
}

/// The PYCs of the demo data that hold keys, in id order.
fn pycs_with_keys(app: &TestApp) -> Vec<i64> {
    app.with_conn(|c| pycs::table.filter(pycs::key1_enc.is_not_null()).order(pycs::id).select(pycs::id).load(c))
        .unwrap_or_default()
}

fn set_key(app: &TestApp, id: i64, key1: Option<&str>, key2: Option<&str>) {
    app.with_conn(|c| {
        if let Some(k) = key1 {
            diesel::update(pycs::table.find(id)).set(pycs::key1_enc.eq(k)).execute(c)?;
        }
        if let Some(k) = key2 {
            diesel::update(pycs::table.find(id)).set(pycs::key2_enc.eq(k)).execute(c)?;
        }
        QueryResult::Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn technician(base: &str) -> Browser {
    let b = Browser::new(base);
    let (email, _, _, password) = hubgate::demo::USERS[3];
    assert_eq!(b.login(email, password).await.status, 303);
    b
}

async fn copied_values_do_not_open(backend: hubgate::db::Backend) {
    let Some(app) = TestApp::start_with(backend, |_| {}).await else { return };
    app.with_conn(|c| hubgate::demo::seed(c, &app.state.config)).unwrap_or_else(|e| panic!("{e:?}"));
    let ids = pycs_with_keys(&app);
    assert!(ids.len() >= 2, "the demo data has PYCs with keys: {ids:?}");
    let (a, b) = (ids[0], ids[1]);
    let keys = app.state.config.keyring();
    let k1 = keys.seal(&PYC_KEY1, a, "K1-ALPHA").unwrap_or_default();
    let k2 = keys.seal(&PYC_KEY2, a, "K2-ALPHA").unwrap_or_default();
    set_key(&app, a, Some(&k1), Some(&k2));
    let tech = technician(&app.base).await;
    let shown = tech.post(&format!("/pyc/{a}/reveal"), &[]).await;
    assert!(shown.status == 200 && shown.body.contains("K1-ALPHA") && shown.body.contains("K2-ALPHA"), "{shown:?}");

    // Row A's Key1 pasted into row B: refused, and said so in Vietnamese.
    set_key(&app, b, Some(&k1), None);
    let other_row = tech.post(&format!("/pyc/{b}/reveal"), &[]).await;
    assert_eq!(other_row.status, 409, "{}", other_row.body);
    assert!(other_row.body.contains("Không mở được Key1 đã lưu"), "{}", other_row.body);
    assert!(!other_row.body.contains("K1-ALPHA"));
    // Key1 pasted into Key2 of the same row: refused too.
    set_key(&app, a, None, Some(&k1));
    let other_column = tech.post(&format!("/pyc/{a}/reveal"), &[]).await;
    assert_eq!(other_column.status, 409, "{}", other_column.body);
    assert!(other_column.body.contains("Không mở được Key2 đã lưu"), "{}", other_column.body);
    // Into a column of another table with the same row id.
    assert!(keys.open(&secrets::INTEGRATION_SECRET, a, &k1).is_err());
}

mod copied {
    crate::on_both_backends!(copied_values_do_not_open);
    use super::copied_values_do_not_open;
}

/// `hubgate rotate-key` against this test's database with the given keys.
fn rotate(app: &TestApp, current: &str, old: &str, extra: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
        .arg("rotate-key")
        .args(extra)
        .env("DATABASE_URL", &app.database_url)
        .env("HUBGATE_DATA_DIR", app.data_dir.path())
        .env("HUBGATE_SECRET_KEY", current)
        .env("HUBGATE_OLD_SECRET_KEYS", old)
        .env("HUBGATE_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    // What went wrong includes how the process ended and what it printed.
    let err = format!("{}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
    (out.status.success(), text(&out.stdout), if out.status.success() { text(&out.stderr) } else { err })
}

/// Every non-empty value of every registered sealed column: (column, row, value).
fn all_sealed(app: &TestApp) -> Vec<(String, i64, String)> {
    app.with_conn(|c| {
        let mut out = Vec::new();
        for (id, k1, k2) in
            pycs::table
                .select((pycs::id, pycs::key1_enc, pycs::key2_enc))
                .load::<(i64, Option<String>, Option<String>)>(c)?
        {
            out.extend(k1.map(|v| ("pycs.key1_enc".to_string(), id, v)));
            out.extend(k2.map(|v| ("pycs.key2_enc".to_string(), id, v)));
        }
        for (id, cr, tk) in bank_connections::table
            .select((bank_connections::id, bank_connections::credentials_sealed, bank_connections::tokens_sealed))
            .load::<(i64, Option<String>, Option<String>)>(c)?
        {
            out.extend(cr.map(|v| ("bank_connections.credentials_sealed".to_string(), id, v)));
            out.extend(tk.map(|v| ("bank_connections.tokens_sealed".to_string(), id, v)));
        }
        for (id, s) in
            integrations::table.select((integrations::id, integrations::secret_sealed)).load::<(i64, String)>(c)?
        {
            out.push(("integrations.secret_sealed".to_string(), id, s));
        }
        for (id, a, r) in zalo_tokens::table
            .select((zalo_tokens::id, zalo_tokens::access_sealed, zalo_tokens::refresh_sealed))
            .load::<(i64, String, String)>(c)?
        {
            out.push(("zalo_tokens.access_sealed".to_string(), id, a));
            out.push(("zalo_tokens.refresh_sealed".to_string(), id, r));
        }
        QueryResult::Ok(out.into_iter().filter(|(_, _, v)| !v.is_empty()).collect())
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn rotation_moves_every_secret_to_the_new_key(backend: hubgate::db::Backend) {
    let (k1, k2, k3) = (hex_key("a1"), hex_key("b2"), hex_key("c3"));
    let Some(app) = TestApp::start_with(backend, |c| c.secret = key(&k1)).await else { return };
    app.with_conn(|c| hubgate::demo::seed(c, &app.state.config)).unwrap_or_else(|e| panic!("{e:?}"));
    let ids = pycs_with_keys(&app);
    let (a, b) = (ids[0], ids[1]);
    let under_k1 = Keyring::new(key(&k1), vec![]);
    // A database of the previous version: Key1 sealed without key id nor binding.
    set_key(
        &app,
        a,
        Some(&secrets::seal_legacy(&key(&k1), "K1-LEGACY")),
        Some(&under_k1.seal(&PYC_KEY2, a, "K2-NEW").unwrap_or_default()),
    );
    // A push source whose secret is in the old format too, and the Zalo OA's tokens.
    let owner = app.create_merchant("chu@xoay-khoa.vn");
    let bid = app.create_business(&owner, "Quán Xoay Khóa");
    let (hook, push_secret) = app
        .with_conn(|c| {
            hubgate::banking::service::create_push(
                c,
                &app.state.config,
                &Actor::user(owner.id, &owner.email),
                bid,
                "970422",
                "0801234567",
                "TRAN VAN TAM",
            )
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
    let legacy_push = secrets::seal_legacy(&key(&k1), &serde_json::json!({ "push_secret": push_secret }).to_string());
    app.with_conn(|c| {
        diesel::update(bank_connections::table.filter(bank_connections::push_key.eq(&hook)))
            .set(bank_connections::credentials_sealed.eq(&legacy_push))
            .execute(c)?;
        diesel::insert_into(zalo_tokens::table)
            .values((
                zalo_tokens::id.eq(1i64),
                zalo_tokens::access_sealed.eq(secrets::seal_legacy(&key(&k1), "ACCESS-LEGACY")),
                zalo_tokens::refresh_sealed.eq(secrets::seal_legacy(&key(&k1), "REFRESH-LEGACY")),
                zalo_tokens::access_expires_at.eq(hubgate::db::now()),
                zalo_tokens::generation.eq(0i64),
                zalo_tokens::updated_at.eq(hubgate::db::now()),
            ))
            .execute(c)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // The previous version's values open as they are.
    let shown = technician(&app.base).await.post(&format!("/pyc/{a}/reveal"), &[]).await;
    assert!(shown.status == 200 && shown.body.contains("K1-LEGACY") && shown.body.contains("K2-NEW"), "{shown:?}");
    // One value sealed under a key nobody configured.
    let lost = Keyring::new(key(&k3), vec![]).seal(&PYC_KEY1, b, "K1-LOST").unwrap_or_default();
    set_key(&app, b, Some(&lost), None);
    let before = all_sealed(&app);
    for column in [
        "pycs.key1_enc",
        "pycs.key2_enc",
        "bank_connections.credentials_sealed",
        "integrations.secret_sealed",
        "zalo_tokens.access_sealed",
        "zalo_tokens.refresh_sealed",
    ] {
        assert!(before.iter().any(|(c, _, _)| c == column), "the data covers {column}");
    }

    // Refused, naming the row, and nothing changed.
    let (ok, _, err) = rotate(&app, &k2, &k1, &[]);
    assert!(!ok, "{err}");
    assert!(err.contains(&format!("pycs.key1_enc row {b}")), "{err}");
    assert_eq!(all_sealed(&app), before, "a refused rotation changes nothing");

    // With --skip-unreadable: everything else moves to key 2, the lost value stays.
    let (ok, out, err) = rotate(&app, &k2, &k1, &["--skip-unreadable"]);
    assert!(ok, "{err}");
    assert!(err.contains(&format!("skipped\tpycs.key1_enc row {b}")), "{err}");
    let resealed = |column: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{column}\t")))
            .and_then(|l| l.split("resealed ").nth(1))
            .and_then(|n| n.split('\t').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no count for {column}: {out}"))
    };
    let total: usize = before.iter().filter(|(c, r, _)| !(c == "pycs.key1_enc" && *r == b)).count();
    let counted: usize =
        hubgate::secrets::SEALED_COLUMNS.iter().map(|c| resealed(&format!("{}.{}", c.table, c.column))).sum();
    assert_eq!(counted, total, "{out}");
    let kid2 = secrets::key_id(&key(&k2));
    for (column, row, value) in all_sealed(&app) {
        if column == "pycs.key1_enc" && row == b {
            assert_eq!(value, lost, "the unreadable value is left as it was");
        } else {
            assert!(value.starts_with(&format!("v2:{kid2}:")), "{column} row {row}: {value}");
        }
    }
    let audits = || -> i64 {
        app.with_conn(|c| audit_log::table.filter(audit_log::action.eq("rotate_key")).count().get_result(c))
            .unwrap_or(-1)
    };
    let audited = audits();
    assert!(audited >= 6, "each re-sealed batch is audited: {audited}");

    // Idempotent: a second run finds everything current.
    let (ok, again, err) = rotate(&app, &k2, &k1, &["--skip-unreadable"]);
    assert!(ok, "{err}");
    assert!(
        hubgate::secrets::SEALED_COLUMNS
            .iter()
            .all(|c| again.contains(&format!("{}.{}\tresealed 0\t", c.table, c.column))),
        "{again}"
    );
    assert_eq!(all_sealed(&app).len(), before.len());
    assert_eq!(audits(), audited + 1, "nothing re-sealed: only the value left unreadable is recorded again");

    // Key 1 leaves the configuration: a node with key 2 alone serves everything.
    set_key(&app, b, Some(&Keyring::new(key(&k2), vec![]).seal(&PYC_KEY1, b, "K1-AGAIN").unwrap_or_default()), None);
    let base = app.serve_again(|c| {
        c.secret = key(&k2);
        c.old_secrets = vec![];
    });
    let tech = technician(&base).await;
    let shown = tech.post(&format!("/pyc/{a}/reveal"), &[]).await;
    assert!(shown.status == 200 && shown.body.contains("K1-LEGACY") && shown.body.contains("K2-NEW"), "{shown:?}");
    let sepay = r#"{"id":92704,"gateway":"MBBank","transactionDate":"2026-11-25 14:02:37","accountNumber":"0801234567","code":null,"content":"xoay khoa","transferType":"in","transferAmount":150000,"accumulated":150000,"subAccount":null,"referenceCode":"MB.1","description":""}"#;
    let pushed = reqwest::Client::new()
        .post(format!("{base}/bank-hooks/{hook}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Apikey {push_secret}"))
        .body(sepay)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pushed.status(), 200);
    let body: serde_json::Value = pushed.json().await.unwrap_or_default();
    assert_eq!(body["data"]["new"], 1, "{body}");
    let only_k2 = Keyring::new(key(&k2), vec![]);
    let zalo: (String, String) = app
        .with_conn(|c| {
            zalo_tokens::table.find(1i64).select((zalo_tokens::access_sealed, zalo_tokens::refresh_sealed)).first(c)
        })
        .unwrap_or_default();
    assert_eq!(only_k2.open(&secrets::ZALO_ACCESS, 1, &zalo.0).as_deref(), Ok("ACCESS-LEGACY"));
    assert_eq!(only_k2.open(&secrets::ZALO_REFRESH, 1, &zalo.1).as_deref(), Ok("REFRESH-LEGACY"));
    let telegram: Vec<hubgate::notify::models::Integration> = app
        .with_conn(|c| {
            integrations::table.filter(integrations::channel.eq("telegram")).select(integrations::all_columns).load(c)
        })
        .unwrap_or_default();
    assert!(!telegram.is_empty());
    for i in &telegram {
        let secret = hubgate::notify::models::open_secret(&only_k2, i).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(secret.starts_with("123456789:AAH"), "{secret}");
    }
}

mod rotation {
    crate::on_both_backends!(rotation_moves_every_secret_to_the_new_key);
    use super::rotation_moves_every_secret_to_the_new_key;
}

// Many batches: every value is visited once, whatever the batch size.
async fn rotation_pages_through_small_batches(backend: hubgate::db::Backend) {
    let (k1, k2) = (hex_key("a1"), hex_key("b2"));
    let Some(app) = TestApp::start_with(backend, |c| c.secret = key(&k1)).await else { return };
    app.with_conn(|c| hubgate::demo::seed(c, &app.state.config)).unwrap_or_else(|e| panic!("{e:?}"));
    let before = all_sealed(&app);
    assert!(before.iter().filter(|(c, _, _)| c == "pycs.key1_enc").count() > 4, "several batches of Key1");
    let keys = Keyring::new(key(&k2), vec![key(&k1)]);
    let report = app
        .with_conn(|c| secrets::rotate::rotate(c, &keys, &Actor::system("test"), false, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.columns.iter().map(|c| c.resealed).sum::<usize>(), before.len(), "{report:?}");
    let kid2 = secrets::key_id(&key(&k2));
    assert!(all_sealed(&app).iter().all(|(_, _, v)| v.starts_with(&format!("v2:{kid2}:"))));
    let again = app
        .with_conn(|c| secrets::rotate::rotate(c, &keys, &Actor::system("test"), false, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.columns.iter().map(|c| c.current).sum::<usize>(), before.len(), "{again:?}");
}

mod batches {
    crate::on_both_backends!(rotation_pages_through_small_batches);
    use super::rotation_pages_through_small_batches;
}

// ---- Keyed hashes (API keys, tokens, mailed links) across a rotation ---------------

const REDIRECT: &str = "https://ketoan.example.vn/callback";

/// Rows of `table` whose `column` holds `hash` (hex, so safe to inline).
fn holding(app: &TestApp, table: &str, column: &str, hash: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    app.with_conn(|c| {
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = '{hash}'")).get_result::<N>(c)
    })
    .unwrap_or_else(|e| panic!("{table}.{column}: {e}"))
    .n
}

/// The status of `GET path` with this Authorization header.
async fn status_with(base: &str, path: &str, auth: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .status()
        .as_u16()
}

/// The status of a page for a browser without a session (mailed links).
async fn status_of(base: &str, path: &str) -> u16 {
    Browser::new(base).get(path).await.status
}

async fn rotation_keeps_hashed_tokens_working(backend: hubgate::db::Backend) {
    use hubgate::api::{keys, oauth};
    use hubgate::secrets::hashed::{API_CREDENTIAL, LINK_TOKEN};
    let (k1, k2) = (hex_key("a1"), hex_key("b2"));
    let Some(app) = TestApp::start_with(backend, |c| c.secret = key(&k1)).await else { return };
    let owner = app.create_merchant("chu@buncha-xoaykhoa.vn");
    let bid = app.create_business(&owner, "Bún Chả Xoay Khóa");
    let actor = Actor::user(owner.id, &owner.email);
    let config = app.state.config.clone();

    // Under key 1: two API keys (one will not be used before key 1 goes), a v1 token,
    // an OAuth app with its secret and tokens, two invitations and a reset link.
    let used_key =
        app.with_conn(|c| keys::create(c, &config, &actor, bid, "Máy bán hàng")).unwrap_or_else(|e| panic!("{e:?}")).1;
    let idle_key =
        app.with_conn(|c| keys::create(c, &config, &actor, bid, "Máy để kho")).unwrap_or_else(|e| panic!("{e:?}")).1;
    let v1 = app.with_conn(|c| keys::exchange(c, &config, &used_key)).unwrap_or_else(|e| panic!("{e:?}"));
    let v1 = v1.unwrap_or_else(|| panic!("the key exchanges")).0;
    let new_app = oauth::NewApp {
        name: "Kế toán Xoay Khóa".into(),
        website: String::new(),
        redirect_uris: REDIRECT.into(),
        confidential: true,
    };
    let (oauth_app, client_secret) =
        app.with_conn(|c| oauth::create_app(c, &config, &actor, &new_app)).unwrap_or_else(|e| panic!("{e:?}"));
    let client_secret = client_secret.unwrap_or_else(|| panic!("a confidential app has a secret"));
    let verifier = "xoay-khoa-pkce-verifier-".repeat(3);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let code = app
        .with_conn(|c| oauth::issue_code(c, &config, &actor, &oauth_app, bid, REDIRECT, &["read"], &challenge))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let tokens = app
        .with_conn(|c| oauth::exchange_code(c, &config, &oauth_app, &code, Some(REDIRECT), &verifier))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let invite = |email: &str| {
        app.with_conn(|c| hubgate::business::service::invite(c, &config, &actor, bid, email, "viewer"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mail = app.last_mail_to(email, "Lời mời").unwrap_or_else(|| panic!("no invitation to {email}"));
        crate::support::link_in(&mail, &config.base_url, "/invite?token=").unwrap_or_else(|| panic!("{mail}"))
    };
    let (invitation, idle_invitation) = (invite("lan@buncha-xoaykhoa.vn"), invite("minh@buncha-xoaykhoa.vn"));
    app.with_conn(|c| hubgate::accounts::merchant::request_password_reset(c, &config, &owner.email, "127.0.0.1"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mail = app.last_mail_to(&owner.email, "Đặt lại mật khẩu").unwrap_or_else(|| panic!("no reset mail"));
    let reset = crate::support::link_in(&mail, &config.base_url, "/password/reset?token=").unwrap_or_default();
    let token_of = |link: &str| link.split("token=").nth(1).unwrap_or_default().to_string();

    // What each is stored as, under each key.
    let (one, two) = (Keyring::new(key(&k1), vec![]), Keyring::new(key(&k2), vec![]));
    let stored = [
        ("api_keys", "key_hash", API_CREDENTIAL, used_key.clone()),
        ("api_tokens", "token_hash", API_CREDENTIAL, v1.clone()),
        ("oauth_apps", "secret_hash", API_CREDENTIAL, client_secret.clone()),
        ("oauth_tokens", "token_hash", API_CREDENTIAL, tokens.access_token.clone()),
        ("oauth_grants", "refresh_hash", API_CREDENTIAL, tokens.refresh_token.clone()),
        ("business_invitations", "token_hash", LINK_TOKEN, token_of(&invitation)),
        ("account_tokens", "token_hash", LINK_TOKEN, token_of(&reset)),
    ];
    for (table, column, purpose, clear) in &stored {
        assert_eq!(holding(&app, table, column, &one.hash(*purpose, clear)), 1, "{table}.{column} under key 1");
    }

    // Key 2 in, key 1 old; rotate-key runs (it re-seals, and cannot rehash).
    let (ok, _, err) = rotate(&app, &k2, &k1, &[]);
    assert!(ok, "{err}");
    let base = app.serve_again(|c| {
        c.secret = key(&k2);
        c.old_secrets = vec![key(&k1)];
    });
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Apikey {used_key}")).await, 200);
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Bearer {v1}")).await, 200);
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Bearer {}", tokens.access_token)).await, 200);
    assert_eq!(status_of(&base, &invitation).await, 200, "the invitation opens");
    assert_eq!(status_of(&base, &reset).await, 200, "the reset link opens");
    // The refresh token, with the app's secret, both hashed under key 1.
    let refreshed = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens.refresh_token.as_str())])
        .basic_auth(&oauth_app.client_id, Some(&client_secret))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refreshed.status(), 200);
    let refreshed: serde_json::Value = refreshed.json().await.unwrap_or_default();
    let new_access = refreshed["access_token"].as_str().unwrap_or_default().to_string();
    // Each was rewritten under key 2 as it was used (the refresh token is spent, so it
    // lives on as the grant's previous one, which reuse detection reads).
    for (table, column, purpose, clear) in &stored {
        let column = if *table == "oauth_grants" { "previous_refresh_hash" } else { *column };
        assert_eq!(holding(&app, table, column, &two.hash(*purpose, clear)), 1, "{table}.{column} under key 2");
        assert_eq!(holding(&app, table, column, &one.hash(*purpose, clear)), 0, "{table}.{column} not under key 1");
    }
    assert_eq!(
        holding(&app, "api_keys", "key_hash", &one.hash(API_CREDENTIAL, &idle_key)),
        1,
        "an unused key keeps its key-1 hash"
    );

    // Key 1 leaves the configuration: what was used works; what was not, does not.
    let base = app.serve_again(|c| {
        c.secret = key(&k2);
        c.old_secrets = vec![];
    });
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Apikey {used_key}")).await, 200);
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Bearer {v1}")).await, 200);
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Bearer {}", tokens.access_token)).await, 200);
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Bearer {new_access}")).await, 200);
    assert_eq!(status_of(&base, &invitation).await, 200);
    assert_eq!(status_of(&base, &reset).await, 200);
    assert_eq!(status_with(&base, "/v2/userInfo", &format!("Apikey {idle_key}")).await, 401, "never used under key 1");
    assert_eq!(status_of(&base, &idle_invitation).await, 404, "never opened under key 1");
}

mod hashed_tokens {
    crate::on_both_backends!(rotation_keeps_hashed_tokens_working);
    use super::rotation_keeps_hashed_tokens_working;
}
