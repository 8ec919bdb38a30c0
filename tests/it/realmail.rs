//! Mail from the wild: 398 real messages from the test suites of twelve mail projects
//! (`testdata/realmail`, outside the repository: see its SOURCES.md and EXPECT.md)
//! go through the one ingest path on both databases, and a property test throws random
//! and mutated mail at it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use hubgate::db::schema::{mail_attachments, mail_blobs, mail_messages};
use hubgate::mail::inbound::service;

/// The corpus stays outside the repository (third-party licences): the directory named
/// by `HUBGATE_TEST_REALMAIL`, else `../shared/testdata/realmail` beside the checkout,
/// else `/work/shared/testdata/realmail` (CI clones elsewhere on a machine that has it).
/// Missing, the tests say so; under `CI` they fail.
pub fn realmail_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("HUBGATE_TEST_REALMAIL") {
        let dir = PathBuf::from(dir);
        assert!(dir.is_dir(), "HUBGATE_TEST_REALMAIL={} is not a directory", dir.display());
        return Some(dir);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/realmail");
    let found = [beside, PathBuf::from("/work/shared/testdata/realmail")].into_iter().find(|d| d.is_dir());
    if found.is_none() {
        crate::support::skipped("the real-mail corpus is missing (set HUBGATE_TEST_REALMAIL)");
    }
    found
}

/// Every `.eml` of the corpus, sorted by name, with its bytes.
pub fn realmail() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = realmail_dir()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    let all: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            (name, std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        })
        .collect();
    assert_eq!(all.len(), 398, "the corpus in {} is incomplete", dir.display());
    Some(all)
}

/// Files with no mail header at all. `cpython-020.eml` is CPython's `msg_19.txt`, the
/// text of a digest that tests compare against: no line of it is a header field.
const UNREADABLE: &[&str] = &["cpython-020.eml"];

/// Fixtures that reuse an earlier file's Message-ID (edited copies of one message, an
/// mbox split into its pieces, sisimai's bare-CR copy of `sisimai-003.eml`). A
/// Message-ID is processed once; these are kept raw and linked to the first.
const SAME_MESSAGE_ID: &[&str] = &[
    "cpython-003.eml",
    "cpython-015.eml",
    "cpython-021.eml",
    "cpython-030.eml",
    "cpython-045.eml",
    "mimekit-003.eml",
    "roundcube-014.eml",
    "roundcube-015.eml",
    "roundcube-016.eml",
    "sisimai-009.eml",
    "thunderbird-032.eml",
    "zammad-048.eml",
    "zammad-050.eml",
    "zammad-051.eml",
    "zammad-056.eml",
    "zammad-059.eml",
    "zammad-060.eml",
    "zammad-061.eml",
    "zammad-063.eml",
    "zammad-064.eml",
    "zammad-072.eml",
    "zammad-076.eml",
    "zammad-080.eml",
    "zammad-083.eml",
    "zammad-084.eml",
    "zammad-088.eml",
    "zammad-090.eml",
    "zammad-100.eml",
    "zammad-101.eml",
    "zammad-104.eml",
    "zammad-105.eml",
    "zammad-107.eml",
    "zammad-109.eml",
];

/// (file, sender address, sender name, subject, attachments), two or more per project,
/// the ones refused before this reading first (checked against Python's `email`).
type Known = (&'static str, &'static str, &'static str, &'static str, usize);
const KNOWN: &[Known] = &[
    // A message/rfc822 body and no From: the enclosed message is the attachment.
    ("cpython-011.eml", "", "", "The enclosing message", 1),
    ("cpython-007.eml", "barry@digicool.com", "Barry", "Here is your dingus fish", 1),
    // `From: Moderator-Address`: a sender with a name and no address.
    ("mailparser-081.eml", "", "Moderator-Address", "Internet Digest, volume 42", 2),
    ("mailparser-097.eml", "", "", "こんにちは", 0),
    ("mailparser-009.eml", "doug@example.com", "Doug Sauder", "Test message from Microsoft Outlook 00", 3),
    // No From at all (spam); a GB2312 subject; and a From of `"=?GB2312?B?ztI=?=" <>`.
    ("zammad-016.eml", "", "", "【 直通美国排名第49大学 成功后付费 】", 0),
    ("zammad-019.eml", "", "我", "《欧美简讯》", 0),
    ("zammad-071.eml", "me@example.com", "Valérie Oury", "Réclamation commande n° 018255977840", 1),
    ("zammad-091.eml", "mail@domain.jp", "岡本和正", "メルマガ解除", 0),
    ("zammad-010.eml", "smith@example.com", "Smith Sepp", "Gruß aus Oberalteich", 1),
    ("thunderbird-034.eml", "", "", "mail with no from", 0),
    ("thunderbird-014.eml", "bruce@wayne-enterprises.com", "Batman", "Attached message with attachments", 2),
    ("roundcube-009.eml", "thomas@roundcube.net", "Thomas B.", "Attachment filename encoding", 5),
    ("roundcube-005.eml", "attacker@example.org", "", "Email address spoofing attacks", 0),
    // `Subject: =?NONE?B?VEVTVA=?=`, no From.
    ("rubymail-001.eml", "", "", "TEST", 0),
    ("rubymail-006.eml", "lpeters@pacifier.com", "Lon L. Peters", "PGP Comments on RTO West Release of Dec. 14", 1),
    // A line of spaces before the headers.
    ("flanker-012.eml", "bob@example.net", "Bob Marley", "Wow", 1),
    ("flanker-013.eml", "mailboxaddr1234567@yahoo.com", "Bob", "Hello", 1),
    ("flanker-019.eml", "mrc@cac.washington.edu", "Mark Crispin", "Multi-media mail demonstration", 11),
    ("talon-004.eml", "xxx@gmail.com", "Megan One", "Re: Test", 0),
    ("talon-007.eml", "me@example.com", "", "Test", 0),
    // Quoted-printable `=00` in the body: PostgreSQL text takes no NUL.
    ("sisimai-005.eml", "postmaster@example.com", "", "Undeliverable: Nyaan", 1),
    (
        "sisimai-001.eml",
        "mailer-daemon@p351355.pool.example.ne.jp",
        "Mail Delivery System",
        "Undelivered Mail Returned to Sender",
        2,
    ),
    // A UTF-8 byte-order mark before the headers.
    ("mimekit-004.eml", "abusedesk@example.com", "", "FW: Earn money", 2),
    ("mimekit-001.eml", "rrtest1@xink.io", "RR Tester 1", "rr test 7", 1),
    ("spamscope-004.eml", "oneil.844@randtelekom.com.tr", "Ava Oneil", "Hi there", 1),
    (
        "spamscope-003.eml",
        "smgsiso@yahoo.com.mx",
        "El Punto de los Frutos & Verdes",
        "Ahorre Dinero en su Recibo de Luz",
        1,
    ),
    ("vger-007.eml", "andry@inbox.ru", "Andry", "Re: Hash for a commit sourcetree beside to a commit hash", 0),
    (
        "vger-006.eml",
        "schuchmann@schleissheimer.de",
        "Sven Schuchmann",
        "AW: AW: AW: AW: IRQ handler mcp251xfd_handle_tefif() returned -22",
        1,
    ),
];

fn ingest_corpus(app: &crate::support::TestApp, files: &[(String, Vec<u8>)]) -> Vec<service::IngestReport> {
    let cfg = app.state.config.mail.clone();
    app.with_conn(|c| {
        let known = service::Known::load(c).unwrap_or_else(|e| panic!("{e:?}"));
        files
            .iter()
            .map(|(name, raw)| {
                service::ingest_with(c, &cfg, &known, raw, "test", Some(name))
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"))
            })
            .collect()
    })
}

async fn corpus_is_read(backend: hubgate::db::Backend) {
    let Some(files) = realmail() else {
        return;
    };
    let Some(app) = crate::support::TestApp::start_with(backend, |_| {}).await else {
        return;
    };
    let reports = ingest_corpus(&app, &files);
    let by_status = |status: &str| -> BTreeSet<&str> {
        reports.iter().filter(|r| r.status == status).filter_map(|r| r.file.as_deref()).collect()
    };
    assert_eq!(by_status("unreadable"), UNREADABLE.iter().copied().collect(), "unreadable");
    assert_eq!(by_status("duplicate"), SAME_MESSAGE_ID.iter().copied().collect(), "Message-ID seen before");
    assert_eq!(by_status("stored").len(), files.len() - UNREADABLE.len() - SAME_MESSAGE_ID.len());
    let unreadable = reports.iter().find(|r| r.status == "unreadable").and_then(|r| r.error.clone());
    assert_eq!(unreadable.as_deref(), Some(hubgate::mail::inbound::parse::NO_HEADERS));

    // Every file is kept byte for byte, framing and all, with a final status.
    let kept: BTreeMap<String, (Vec<u8>, String)> = app.with_conn(|c| {
        mail_blobs::table
            .select((mail_blobs::file_name, mail_blobs::raw, mail_blobs::status))
            .load::<(Option<String>, Vec<u8>, String)>(c)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, raw, status)| (name.unwrap_or_default(), (raw, status)))
            .collect()
    });
    assert_eq!(kept.len(), files.len());
    for (name, raw) in &files {
        let (stored, status) = &kept[name];
        assert!(stored == raw, "{name}: raw bytes changed");
        assert_ne!(status, "received", "{name}: left half-processed");
    }

    let report =
        |file: &str| reports.iter().find(|r| r.file.as_deref() == Some(file)).unwrap_or_else(|| panic!("{file}"));
    for (file, addr, name, subject, attachments) in KNOWN {
        let id = report(file).id.unwrap_or_else(|| panic!("{file} was not stored"));
        let (m, count) = app.with_conn(|c| {
            let m = hubgate::mail::inbound::models::message(c, id).unwrap_or_else(|e| panic!("{file}: {e}"));
            let count: i64 =
                mail_attachments::table.filter(mail_attachments::message_id.eq(id)).count().get_result(c).unwrap_or(-1);
            (m, count)
        });
        assert_eq!((m.from_addr.as_str(), m.from_name.as_str()), (*addr, *name), "{file}: sender");
        assert_eq!(m.subject, *subject, "{file}: subject");
        assert_eq!(count, *attachments as i64, "{file}: attachments");
    }
    let text = |file: &str| {
        let id = report(file).id.unwrap_or(-1);
        app.with_conn(|c| hubgate::mail::inbound::models::message(c, id).map(|m| m.text_body).unwrap_or_default())
    };
    assert!(text("vger-007.eml").starts_with("Hello Đoàn,"), "windows-1258 body");
    assert!(text("sisimai-005.eml").contains("Delivery has failed to these recipients"));
    assert!(text("flanker-012.eml").starts_with("Hello"));

    // Bare CR line ends (sisimai's mac/ copy of sisimai-003): read the same as the
    // original, so recognised as the same message.
    let mac = &files.iter().find(|(n, _)| n == "sisimai-009.eml").unwrap_or_else(|| panic!("sisimai-009")).1;
    let parsed = hubgate::mail::inbound::parse::parse(mac).unwrap_or_else(|e| panic!("sisimai-009: {e}"));
    assert_eq!(parsed.from_addr, "mailer-daemon@smtpgw.example.jp");
    assert_eq!(parsed.from_name, "Mail Delivery Subsystem");
    assert_eq!(parsed.subject, "Returned mail: see transcript for details");
    assert_eq!(parsed.attachments.len(), 2);
    assert!(parsed.text.contains("The original message was received at Wed, 16 Oct 2013"), "{}", parsed.text);
    assert_eq!(report("sisimai-009.eml").id, report("sisimai-003.eml").id);

    // People see a sender-less message as such, and only the header-less file as unreadable.
    app.create_user("sale@ipos.vn", &[hubgate::accounts::Role::Sale]);
    let b = app.login("sale@ipos.vn").await;
    let page = b.get(&format!("/mail/{}", report("thunderbird-034.eml").id.unwrap_or(-1))).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("mail with no from") && page.body.contains("(không rõ người gửi)"), "{}", page.body);
    let problems = b.get("/mail/unreadable").await;
    assert!(problems.body.contains("cpython-020.eml"));
    assert!(!problems.body.contains("sisimai-009.eml") && !problems.body.contains("mailparser-057.eml"));

    // The whole corpus again: nothing new, every file a duplicate of itself.
    let messages = |app: &crate::support::TestApp| -> i64 {
        app.with_conn(|c| mail_messages::table.count().get_result(c).unwrap_or(-1))
    };
    let before = messages(&app);
    let again = ingest_corpus(&app, &files);
    for (first, second) in reports.iter().zip(&again) {
        assert_eq!(second.status, "duplicate", "{:?}", second.file);
        assert_eq!(second.blob_id, first.blob_id, "{:?}", second.file);
    }
    assert_eq!(messages(&app), before);
    let blobs: i64 = app.with_conn(|c| mail_blobs::table.count().get_result(c).unwrap_or(-1));
    assert_eq!(blobs, files.len() as i64);
}

mod corpus_is_read {
    use super::*;
    crate::on_both_backends!(corpus_is_read);
}

/// `POST /inbound/mail` reads what the other paths read: the files refused before, the
/// NUL-bearing bounce and the header-less file give the same answer as the service.
async fn http_delivery_reads_the_same(backend: hubgate::db::Backend) {
    let Some(files) = realmail() else {
        return;
    };
    let Some(app) = crate::support::TestApp::start_with(backend, |c| {
        c.mail.inbound_token = "bi-mat-mta".into();
    })
    .await
    else {
        return;
    };
    let client = reqwest::Client::new();
    let url = format!("{}/inbound/mail", app.base);
    for (file, status, from, subject) in [
        ("sisimai-009.eml", "stored", "mailer-daemon@smtpgw.example.jp", "Returned mail: see transcript for details"),
        ("flanker-012.eml", "stored", "bob@example.net", "Wow"),
        ("mimekit-004.eml", "stored", "abusedesk@example.com", "FW: Earn money"),
        ("thunderbird-034.eml", "stored", "", "mail with no from"),
        ("rubymail-001.eml", "stored", "", "TEST"),
        ("sisimai-005.eml", "stored", "postmaster@example.com", "Undeliverable: Nyaan"),
        ("cpython-020.eml", "unreadable", "", ""),
    ] {
        let raw = files.iter().find(|(n, _)| n == file).map(|f| f.1.clone()).unwrap_or_default();
        let r = client
            .post(&url)
            .bearer_auth("bi-mat-mta")
            .body(raw.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 202, "{file}");
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert_eq!(body["data"]["status"], status, "{file}: {body}");
        assert_eq!(body["data"]["from"].as_str().unwrap_or(""), from, "{file}");
        assert_eq!(body["data"]["subject"].as_str().unwrap_or(""), subject, "{file}");
        let blob = body["data"]["blob_id"].as_i64().unwrap_or(-1);
        let kept: Vec<u8> =
            app.with_conn(|c| mail_blobs::table.find(blob).select(mail_blobs::raw).first(c).unwrap_or_default());
        assert!(kept == raw, "{file}: raw bytes changed");
    }
}

mod http_delivery_reads_the_same {
    use super::*;
    crate::on_both_backends!(http_delivery_reads_the_same);
}

/// Mail over the limit: kept raw as too large up to 1 MB beyond it; larger bodies are
/// refused with a reason the MTA can log, and never read before the token is checked.
#[actix_web::test]
async fn http_delivery_bounds_the_body() {
    let app = crate::support::TestApp::start_with(hubgate::db::Backend::Sqlite, |c| {
        c.mail.inbound_token = "bi-mat-mta".into();
        c.mail.max_message_bytes = 1024 * 1024;
    })
    .await
    .unwrap_or_else(|| panic!("sqlite"));
    let client = reqwest::Client::new();
    let url = format!("{}/inbound/mail", app.base);
    let mail = |size: usize| {
        let mut m = b"From: a@momo.vn\r\nSubject: Lon\r\n\r\n".to_vec();
        m.resize(size, b'x');
        m
    };
    let kept = client.post(&url).bearer_auth("bi-mat-mta").body(mail(1024 * 1024 + 10)).send().await;
    let kept = kept.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept.status(), 202);
    let body: serde_json::Value = kept.json().await.unwrap_or_default();
    assert_eq!(body["data"]["status"], "too_large");

    let refused = client.post(&url).bearer_auth("bi-mat-mta").body(mail(3 * 1024 * 1024)).send().await;
    let refused = refused.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status(), 413);
    let body: serde_json::Value = refused.json().await.unwrap_or_default();
    assert_eq!(body["error"], "too_large");
    assert!(body["message"].as_str().unwrap_or("").contains("lớn hơn giới hạn 1 MB"), "{body}");

    let stranger = client.post(&url).bearer_auth("sai").body(mail(3 * 1024 * 1024)).send().await;
    assert_eq!(stranger.map(|r| r.status().as_u16()).unwrap_or(0), 401, "the token comes before the body");
    let blobs: i64 = app.with_conn(|c| mail_blobs::table.count().get_result(c).unwrap_or(-1));
    assert_eq!(blobs, 1);
}

/// Values no real message has but a hostile one may, on both databases: each stored
/// once, the raw kept, a second delivery a duplicate.
async fn hostile_values_are_stored(backend: hubgate::db::Backend) {
    let Some(app) = crate::support::TestApp::start_with(backend, |_| {}).await else {
        return;
    };
    let cfg = app.state.config.mail.clone();
    // Distinct ideographs: a subject PostgreSQL cannot compress into an index row.
    let ideographs: String = (0..3000u32).filter_map(|i| char::from_u32(0x4E00 + i * 7)).collect();
    let refs: String = (0..40_000).map(|i| format!(" <r{i}@momo.vn>")).collect();
    let id: String = (0..1000u64).map(|i| format!("{:04x}", i.wrapping_mul(2_654_435_761) % 65_521)).collect();
    let cases: Vec<(&str, String)> = vec![
        ("nul.eml", "From: a@momo.vn\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nM=C3=A3 =00=00 xong".into()),
        ("subject.eml", format!("From: a@momo.vn\r\nSubject: =?utf-8?b?{}?=\r\n\r\nx", base64_of(&ideographs))),
        ("id.eml", format!("From: a@momo.vn\r\nMessage-ID: <{id}@momo.vn>\r\n\r\nx")),
        ("refs.eml", format!("From: a@momo.vn\r\nReferences:{refs}\r\n\r\nx")),
        ("tên\0tệp\r\n.eml", "From: a@momo.vn\r\nSubject: file name\r\n\r\nx".into()),
    ];
    // Every case is tried, so one run shows each bound that is missing.
    let mut failures = Vec::new();
    for (file, raw) in &cases {
        let (first, second) = app.with_conn(|c| {
            let first = service::ingest(c, &cfg, raw.as_bytes(), "test", Some(file));
            (first, service::ingest(c, &cfg, raw.as_bytes(), "test", Some(file)))
        });
        let (first, second) = match (first, second) {
            (Ok(f), Ok(s)) => (f, s),
            (f, s) => {
                failures.push(format!("{file:?}: {:?} / {:?}", f.err(), s.err()));
                continue;
            }
        };
        let (kept, name): (Vec<u8>, Option<String>) = app.with_conn(|c| {
            mail_blobs::table
                .find(first.blob_id)
                .select((mail_blobs::raw, mail_blobs::file_name))
                .first(c)
                .unwrap_or_else(|e| panic!("{e}"))
        });
        if first.status != "stored"
            || (second.status.as_str(), second.blob_id) != ("duplicate", first.blob_id)
            || kept != raw.as_bytes()
            || name.is_none_or(|n| n.contains(['\0', '\r', '\n']))
        {
            failures.push(format!("{file:?}: {} then {}, {:?}", first.status, second.status, first.error));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let subject: String = app.with_conn(|c| {
        mail_messages::table
            .filter(mail_messages::text_body.eq("x"))
            .select(mail_messages::subject)
            .order(mail_messages::id)
            .first(c)
            .unwrap_or_default()
    });
    assert!(subject.starts_with(&ideographs[..30]), "the long subject was decoded: {subject:.40}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

mod hostile_values_are_stored {
    use super::*;
    crate::on_both_backends!(hostile_values_are_stored);
}

/// The property test over the whole ingest path: random bytes and real messages
/// mutated the ways mail breaks in transit or on purpose.
mod fuzz {
    use std::sync::atomic::{AtomicU64, Ordering};

    use diesel::prelude::*;
    use hubgate::db::schema::{mail_blobs, mail_messages};
    use hubgate::mail::inbound::service;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

    /// Fixed, so CI runs the same cases every time; change it to explore further.
    const SEED: [u8; 32] = *b"hubgate-realmail-fuzz-seed-00001";
    const DEFAULT_CASES: u32 = 192;
    /// Real messages up to this size are mutated (the big ones only slow the run down).
    const MAX_SEED_BYTES: usize = 64 * 1024;

    #[derive(Debug, Clone)]
    enum Op {
        Flip { at: usize, mask: u8 },
        Truncate { keep: usize },
        LineEnds(u8),
        DuplicateHeader { line: usize, times: usize },
        HugeHeader { kind: u8, size: usize },
        Nest { depth: usize, rfc822: bool },
        DeepHtml { depth: usize },
        BlankLinesFirst(usize),
        Insert { at: usize, bytes: Vec<u8> },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Op::Flip { at, mask }),
            2 => any::<usize>().prop_map(|keep| Op::Truncate { keep }),
            2 => (0u8..4).prop_map(Op::LineEnds),
            2 => (any::<usize>(), 1usize..200).prop_map(|(line, times)| Op::DuplicateHeader { line, times }),
            2 => (0u8..6, 1usize..300_000).prop_map(|(kind, size)| Op::HugeHeader { kind, size }),
            1 => (1usize..3000, any::<bool>()).prop_map(|(depth, rfc822)| Op::Nest { depth, rfc822 }),
            1 => (1usize..20_000).prop_map(|depth| Op::DeepHtml { depth }),
            1 => (1usize..5).prop_map(Op::BlankLinesFirst),
            2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..64))
                .prop_map(|(at, bytes)| Op::Insert { at, bytes }),
        ]
    }

    /// Where the header block ends (the first empty line), or the end.
    fn header_end(m: &[u8]) -> usize {
        m.windows(2)
            .position(|w| w == b"\n\n")
            .or_else(|| m.windows(4).position(|w| w == b"\r\n\r\n"))
            .unwrap_or(m.len())
    }

    /// `len` characters from `alphabet` in an order PostgreSQL cannot compress away
    /// (its index rows are compressed, so a repeated pattern would fit any limit).
    fn noise(len: usize, alphabet: &str) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        xorshift(len).map(|x| chars[(x % chars.len() as u64) as usize]).collect()
    }

    /// `len` CJK ideographs, any of 20,000: text no compression shortens.
    fn ideographs(len: usize) -> String {
        xorshift(len).filter_map(|x| char::from_u32(0x4E00 + (x % 20_000) as u32)).collect()
    }

    fn xorshift(len: usize) -> impl Iterator<Item = u64> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
        (0..len).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
    }

    /// RFC 2047 encoded words of at most 15 characters, folded one per line.
    fn encoded_words(s: &str) -> String {
        use base64::Engine;
        let chars: Vec<char> = s.chars().collect();
        chars
            .chunks(15)
            .map(|c| {
                let word = base64::engine::general_purpose::STANDARD.encode(c.iter().collect::<String>().as_bytes());
                format!("=?utf-8?b?{word}?=")
            })
            .collect::<Vec<_>>()
            .join("\r\n ")
    }

    fn apply(mut m: Vec<u8>, op: &Op) -> Vec<u8> {
        match op {
            Op::Flip { at, mask } => {
                if !m.is_empty() {
                    let i = at % m.len();
                    m[i] ^= mask;
                }
                m
            }
            Op::Truncate { keep } => {
                m.truncate(keep % (m.len() + 1));
                m
            }
            Op::LineEnds(kind) => {
                let lf: Vec<u8> = m.iter().copied().filter(|b| *b != b'\r').collect();
                let mut out = Vec::with_capacity(lf.len() * 2);
                for (n, b) in lf.into_iter().enumerate() {
                    match (b, kind) {
                        (b'\n', 1) => out.extend_from_slice(b"\r\n"),
                        (b'\n', 2) => out.push(b'\r'),
                        (b'\n', 3) if n % 2 == 0 => out.extend_from_slice(b"\r\n"),
                        _ => out.push(b),
                    }
                }
                out
            }
            Op::DuplicateHeader { line, times } => {
                let end = header_end(&m);
                let lines: Vec<&[u8]> = m[..end].split(|b| *b == b'\n').collect();
                let chosen = lines[line % lines.len()].to_vec();
                let mut out = m[..end].to_vec();
                for _ in 0..*times {
                    out.push(b'\n');
                    out.extend_from_slice(&chosen);
                }
                out.extend_from_slice(&m[end..]);
                out
            }
            Op::HugeHeader { kind, size } => {
                let header = match kind {
                    0 => format!("Subject: {}", noise(*size, "mở cổng HUB đồng ý xác nhận 0123456789")),
                    1 => {
                        format!("Message-ID: <{}@hubgate.test>", noise(*size, "abcdefghijklmnopqrstuvwxyz0123456789.-"))
                    }
                    2 => format!(
                        "References:{}",
                        (0..size / 20 + 1).map(|i| format!(" <r{i}@hubgate.test>")).collect::<String>()
                    ),
                    3 => {
                        format!("To:{}", (0..size / 20 + 1).map(|i| format!(" a{i}@hubgate.test,")).collect::<String>())
                    }
                    4 => format!("From: \"{}\" <a@hubgate.test>", "Đ".repeat(*size)),
                    _ => format!("Subject: {}", encoded_words(&ideographs(*size / 3))),
                };
                // Last in the header block: of repeated fields, the last one counts.
                let end = header_end(&m);
                let mut out = m[..end].to_vec();
                out.push(b'\n');
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(&m[end..]);
                out
            }
            Op::Nest { depth, rfc822 } => {
                let mut out = b"From: fuzz@hubgate.test\nSubject: nested\n".to_vec();
                for i in 0..*depth {
                    if *rfc822 {
                        out.extend_from_slice(b"Content-Type: message/rfc822\n\n");
                    } else {
                        out.extend_from_slice(
                            format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n").as_bytes(),
                        );
                    }
                }
                out.extend_from_slice(&m);
                if !rfc822 {
                    for i in (0..*depth).rev() {
                        out.extend_from_slice(format!("\n--b{i}--\n").as_bytes());
                    }
                }
                out
            }
            Op::DeepHtml { depth } => {
                let mut out = b"From: fuzz@hubgate.test\nContent-Type: text/html; charset=utf-8\n\n".to_vec();
                out.extend_from_slice("<div>".repeat(*depth).as_bytes());
                out.extend_from_slice(&m[header_end(&m)..]);
                out
            }
            Op::BlankLinesFirst(n) => {
                let mut out = b" \t\r\n".repeat(*n);
                out.extend_from_slice(&m);
                out
            }
            Op::Insert { at, bytes } => {
                let i = at % (m.len() + 1);
                m.splice(i..i, bytes.iter().copied());
                m
            }
        }
    }

    /// Replaces the message's own Message-ID with a fresh one (so the mutant is stored,
    /// not set aside as an earlier case's duplicate): old ones become "Xessage-ID".
    fn fresh_id(mut m: Vec<u8>) -> Vec<u8> {
        static N: AtomicU64 = AtomicU64::new(0);
        let end = header_end(&m);
        for i in 0..end {
            let at_line_start = i == 0 || m[i - 1] == b'\n' || m[i - 1] == b'\r';
            if at_line_start && m[i..].len() >= 11 && m[i..i + 11].eq_ignore_ascii_case(b"message-id:") {
                m[i] = b'X';
            }
        }
        let mut out = format!("Message-ID: <fuzz-{}@hubgate.test>\r\n", N.fetch_add(1, Ordering::Relaxed)).into_bytes();
        out.append(&mut m);
        out
    }

    fn input(seeds: std::sync::Arc<Vec<Vec<u8>>>) -> impl Strategy<Value = Vec<u8>> {
        let n = seeds.len();
        prop_oneof![
            1 => proptest::collection::vec(any::<u8>(), 0..4096),
            1 => (proptest::collection::vec(any::<u8>(), 0..2048)).prop_map(|tail| {
                let mut m = b"From: a@b.vn\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n".to_vec();
                m.extend_from_slice(&tail);
                m
            }),
            6 => (0..n, proptest::collection::vec(op(), 1..4), any::<bool>()).prop_map(move |(i, ops, fresh)| {
                let seed = if fresh { fresh_id(seeds[i].clone()) } else { seeds[i].clone() };
                ops.iter().fold(seed, apply)
            }),
        ]
    }

    fn seeds() -> Vec<Vec<u8>> {
        let mut seeds: Vec<Vec<u8>> = super::realmail()
            .unwrap_or_default()
            .into_iter()
            .map(|(_, raw)| raw)
            .filter(|raw| raw.len() <= MAX_SEED_BYTES)
            .collect();
        // Without the corpus (noted above), the repository's own samples still serve.
        let own = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail");
        for entry in std::fs::read_dir(own).unwrap_or_else(|e| panic!("{e}")).flatten() {
            seeds.push(std::fs::read(entry.path()).unwrap_or_default());
        }
        seeds
    }

    fn cases() -> u32 {
        match std::env::var("HUBGATE_TEST_FUZZ_CASES") {
            Ok(v) => v.parse().unwrap_or_else(|_| panic!("HUBGATE_TEST_FUZZ_CASES={v} is not a number")),
            Err(_) => DEFAULT_CASES,
        }
    }

    /// Ingests `raw` twice: a status every time, the raw kept byte for byte, and the
    /// second time a duplicate of the first with nothing new stored.
    fn check(app: &crate::support::TestApp, raw: &[u8]) -> Result<(), TestCaseError> {
        let cfg = app.state.config.mail.clone();
        app.with_conn(|c| {
            let blobs_before: i64 =
                mail_blobs::table.count().get_result(c).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let first = service::ingest(c, &cfg, raw, "fuzz", None)
                .map_err(|e| TestCaseError::fail(format!("ingest failed: {e:?}")))?;
            prop_assert!(
                ["stored", "unreadable", "duplicate", "too_large"].contains(&first.status.as_str()),
                "status {}",
                first.status
            );
            let (kept, status): (Vec<u8>, String) = mail_blobs::table
                .find(first.blob_id)
                .select((mail_blobs::raw, mail_blobs::status))
                .first(c)
                .map_err(|e| TestCaseError::fail(format!("no raw row: {e}")))?;
            prop_assert!(kept == raw, "the raw bytes were changed");
            let new_blob = blobs_before + 1 == mail_blobs::table.count().get_result::<i64>(c).unwrap_or(-1);
            prop_assert!(status != "received" || !new_blob, "left half-processed");
            if first.status == "stored" {
                let stored: i64 = mail_messages::table
                    .filter(mail_messages::blob_id.eq(first.blob_id))
                    .count()
                    .get_result(c)
                    .unwrap_or(-1);
                prop_assert_eq!(stored, 1);
            }
            let second = service::ingest(c, &cfg, raw, "fuzz", None)
                .map_err(|e| TestCaseError::fail(format!("second ingest failed: {e:?}")))?;
            prop_assert_eq!(second.status.as_str(), "duplicate");
            prop_assert_eq!(second.blob_id, first.blob_id);
            let blobs_after: i64 = mail_blobs::table.count().get_result(c).unwrap_or(-1);
            prop_assert!(blobs_after <= blobs_before + 1, "one raw row per distinct input");
            let messages: i64 = mail_messages::table
                .filter(mail_messages::blob_id.eq(first.blob_id))
                .count()
                .get_result(c)
                .unwrap_or(-1);
            prop_assert!(messages <= 1);
            Ok(())
        })
    }

    async fn ingest_never_loses_or_repeats(backend: hubgate::db::Backend) {
        let Some(app) = crate::support::TestApp::start_with(backend, |_| {}).await else {
            return;
        };
        let strategy = input(std::sync::Arc::new(seeds()));
        let config = Config { cases: cases(), failure_persistence: None, max_shrink_iters: 512, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
        match runner.run(&strategy, |raw| check(&app, &raw)) {
            Ok(()) => {}
            Err(TestError::Fail(why, raw)) => {
                let path =
                    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-failure-{backend:?}.eml"));
                std::fs::write(&path, &raw).unwrap_or_else(|e| panic!("{e}"));
                panic!("{why}; the smallest failing input ({} bytes) is in {}", raw.len(), path.display());
            }
            Err(e) => panic!("{e}"),
        }
    }

    crate::on_both_backends!(ingest_never_loses_or_repeats);
}
