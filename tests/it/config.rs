//! Configuration: defaults, file, environment, and errors that name the setting.

use hubgate::config::Config;

fn env(pairs: &[(&str, &str)], dir: &tempfile::TempDir) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.push(("HUBGATE_DATA_DIR".into(), dir.path().display().to_string()));
    v
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn defaults_need_nothing_and_the_secret_is_generated_once() {
    let dir = tmp();
    let a = Config::from_sources(None, &env(&[], &dir)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(a.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(a.database_url, "sqlite://data/hubgate.db");
    assert!(!a.https());
    assert!(dir.path().join("secret.key").exists());
    let b = Config::from_sources(None, &env(&[], &dir)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(a.secret.cookie_key(), b.secret.cookie_key(), "the persisted key is reused");
    assert_ne!(a.secret.derive("cookie"), a.secret.derive("secrets"), "purposes get different keys");
}

#[test]
fn environment_beats_file_beats_default() {
    let dir = tmp();
    let file = "bind = \"0.0.0.0:9000\"\nsession_hours = 8\nbase_url = \"https://hub.ipos.vn/\"";
    let c = Config::from_sources(Some(file), &env(&[("HUBGATE_BIND", "127.0.0.1:9001")], &dir))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(c.bind.to_string(), "127.0.0.1:9001");
    assert_eq!(c.session_ttl.as_secs(), 8 * 3600);
    assert_eq!(c.base_url, "https://hub.ipos.vn");
    assert!(c.https(), "https base URL makes cookies Secure");
}

#[test]
fn unknown_and_malformed_settings_are_named() {
    let dir = tmp();
    let err = |toml: Option<&str>, pairs: &[(&str, &str)]| {
        Config::from_sources(toml, &env(pairs, &dir)).err().map(|e| format!("{e:#}")).unwrap_or_default()
    };
    assert!(err(None, &[("HUBGATE_BINF", "x")]).contains("HUBGATE_BINF"));
    assert!(err(Some("bnid = \"x\""), &[]).contains("`bnid`"));
    assert!(err(None, &[("HUBGATE_BIND", "localhost")]).contains("HUBGATE_BIND"));
    assert!(err(None, &[("HUBGATE_SESSION_HOURS", "mười")]).contains("HUBGATE_SESSION_HOURS"));
    assert!(err(None, &[("DATABASE_URL", "mysql://x")]).contains("DATABASE_URL"));
    assert!(err(None, &[("HUBGATE_SECRET_KEY", "abc")]).contains("HUBGATE_SECRET_KEY"));
    assert!(err(None, &[("HUBGATE_LOG", "info,[[[")]).contains("HUBGATE_LOG"));
    assert!(err(Some("bind = [1]"), &[]).contains("bind"));
}

#[test]
fn old_secret_keys_open_what_they_sealed() {
    use hubgate::secrets::{Keyring, PYC_KEY1};
    let dir = tmp();
    let (k1, k2) = ("a1".repeat(32), "b2".repeat(32));
    let old =
        Config::from_sources(None, &env(&[("HUBGATE_SECRET_KEY", &k1)], &dir)).unwrap_or_else(|e| panic!("{e:#}"));
    let sealed = old.keyring().seal(&PYC_KEY1, 3, "K1").unwrap_or_default();
    let file = format!("old_secret_keys = \"{k1}, {}\"", "c3".repeat(32));
    let new = Config::from_sources(Some(&file), &env(&[("HUBGATE_SECRET_KEY", &k2)], &dir))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(new.old_secrets.len(), 2);
    assert_eq!(new.keyring().open(&PYC_KEY1, 3, &sealed).as_deref(), Ok("K1"));
    assert!(Keyring::new(new.secret.clone(), vec![]).open(&PYC_KEY1, 3, &sealed).is_err());
    let bad = Config::from_sources(None, &env(&[("HUBGATE_OLD_SECRET_KEYS", &format!("{k1},xyz"))], &dir))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(bad.contains("HUBGATE_OLD_SECRET_KEYS") && bad.contains("key 2"), "{bad}");
}

#[test]
fn the_access_log_never_holds_a_mailed_token() {
    use hubgate::web::log_line;
    assert_eq!(log_line("GET", "/verify-email", "token=SECRET123"), "GET /verify-email?token=…");
    assert_eq!(
        log_line("GET", "/auth/google/callback", "code=abc&state=def&iss=http%3A%2F%2Fx"),
        "GET /auth/google/callback?code=…&state=…&iss=http%3A%2F%2Fx"
    );
    assert_eq!(log_line("GET", "/requests", "q=pho&page=2"), "GET /requests?q=pho&page=2");
    assert_eq!(log_line("POST", "/login", ""), "POST /login");
}

#[test]
fn an_openid_provider_needs_all_three_settings() {
    let dir = tmp();
    let partial =
        Config::from_sources(None, &env(&[("HUBGATE_OIDC_GOOGLE_ISSUER", "https://accounts.google.com")], &dir));
    assert!(partial.err().map(|e| format!("{e:#}")).unwrap_or_default().contains("oidc_google_client_id"));
    let full = Config::from_sources(
        None,
        &env(
            &[
                (
                    "HUBGATE_OIDC_MICROSOFT_ISSUER",
                    "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0/",
                ),
                ("HUBGATE_OIDC_MICROSOFT_CLIENT_ID", "id"),
                ("HUBGATE_OIDC_MICROSOFT_CLIENT_SECRET", "secret"),
            ],
            &dir,
        ),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(full.oidc.len(), 1);
    assert_eq!(full.oidc[0].key, "microsoft");
    assert!(full.oidc[0].issuer.ends_with("/v2.0/"), "the issuer is kept as written");
}

#[test]
fn imap_settings_are_checked_and_the_password_is_never_printed() {
    let dir = tmp();
    let load = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("HUBGATE_IMAP_HOST", "imap.gmail.com"),
            ("HUBGATE_IMAP_USER", "doitac@ipos.vn"),
            ("HUBGATE_IMAP_PASSWORD", "abcd efgh ijkl mnop"),
        ];
        all.extend_from_slice(pairs);
        Config::from_sources(None, &env(&all, &dir)).map_err(|e| format!("{e:#}"))
    };
    let c = load(&[]).unwrap_or_else(|e| panic!("{e}"));
    let imap = c.mail.imap.clone().unwrap_or_else(|| panic!("IMAP configured"));
    assert_eq!((imap.port, imap.tls), (993, hubgate::config::ImapTls::Tls), "implicit TLS on 993 by default");
    assert_eq!((imap.mailbox.as_str(), imap.processed_folder.as_str()), ("INBOX", "hubgate/processed"));
    assert!(!format!("{c:?}").contains("abcd efgh"), "Debug output hides the password");
    let starttls = load(&[("HUBGATE_IMAP_TLS", "starttls")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(starttls.mail.imap.map(|i| i.port), Some(143));

    let err = |pairs: &[(&str, &str)]| load(pairs).err().unwrap_or_default();
    assert!(err(&[("HUBGATE_IMAP_TLS", "plain")]).contains("loopback"), "no clear-text password over the network");
    assert!(load(&[("HUBGATE_IMAP_TLS", "plain"), ("HUBGATE_IMAP_HOST", "127.0.0.1")]).is_ok());
    assert!(err(&[("HUBGATE_IMAP_TLS", "ssl")]).contains("HUBGATE_IMAP_TLS"));
    assert!(err(&[("HUBGATE_IMAP_PASSWORD", "")]).contains("HUBGATE_IMAP_PASSWORD"));
    assert!(err(&[("HUBGATE_IMAP_PORT", "imaps")]).contains("HUBGATE_IMAP_PORT"));
    assert!(err(&[("HUBGATE_IMAP_PROCESSED_FOLDER", "Đã xử lý")]).contains("HUBGATE_IMAP_PROCESSED_FOLDER"));
    assert!(err(&[("HUBGATE_IMAP_PROCESSED_FOLDER", "inbox")]).contains("must differ"));
    assert!(err(&[("HUBGATE_IMAP_CA_FILE", "/khong/co/tep.pem")]).contains("HUBGATE_IMAP_CA_FILE"));
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "không phải chứng chỉ").unwrap_or_else(|e| panic!("{e}"));
    let shown = not_pem.display().to_string();
    assert!(err(&[("HUBGATE_IMAP_CA_FILE", shown.as_str())]).contains("no PEM certificate"));
    let off = Config::from_sources(None, &env(&[], &dir)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(off.mail.imap.is_none(), "no host, no IMAP");
}
