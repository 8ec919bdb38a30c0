//! Inbound mail in batches (`batch::ingest_batch`: CLI import, Maildir, multi-file
//! upload): the same result as one by one, duplicates recognised inside a batch and
//! against earlier mail, one failing message never costs the others, and the raw bytes
//! are kept when the store does not commit.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, ensure};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use hubgate::db::schema::{confirmations, mail_blobs, mail_messages, mail_threads, partners, request_events};
use hubgate::db::{Backend, DbConn};
use hubgate::mail::inbound::batch::{self, Incoming};
use hubgate::mail::inbound::service::{self, IngestReport};

use crate::support::TestApp;

type Res<T = ()> = anyhow::Result<T>;

fn incoming(mails: &[(String, Vec<u8>)]) -> Vec<Incoming> {
    mails.iter().map(|(name, raw)| Incoming { raw: raw.clone(), file: Some(name.clone()) }).collect()
}

fn one_by_one(app: &TestApp, mails: &[(String, Vec<u8>)]) -> Res<Vec<IngestReport>> {
    let cfg = app.state.config.mail.clone();
    let mut conn = app.conn();
    let known = service::Known::load(&mut conn)?;
    let mut out = Vec::new();
    for (name, raw) in mails {
        out.push(service::ingest_with(&mut conn, &cfg, &known, raw, "test", Some(name))?);
    }
    Ok(out)
}

fn in_batch(app: &TestApp, mails: &[(String, Vec<u8>)]) -> Res<Vec<IngestReport>> {
    Ok(counted_batch(app, mails)?.0)
}

/// [`in_batch`], and how many statements the batch sent to the database.
fn counted_batch(app: &TestApp, mails: &[(String, Vec<u8>)]) -> Res<(Vec<IngestReport>, usize)> {
    use diesel::connection::{Connection, InstrumentationEvent};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let cfg = app.state.config.mail.clone();
    let mut conn = app.conn();
    let known = service::Known::load(&mut conn)?;
    let statements = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&statements);
    conn.set_instrumentation(move |e: InstrumentationEvent<'_>| {
        if matches!(e, InstrumentationEvent::StartQuery { .. }) {
            seen.fetch_add(1, Ordering::Relaxed);
        }
    });
    let reports = batch::ingest_batch(&mut conn, &cfg, &known, "test", &incoming(mails));
    conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    Ok((reports?, statements.load(Ordering::Relaxed)))
}

fn corpus() -> Res<Vec<(String, Vec<u8>)>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| Ok((p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(), std::fs::read(&p)?)))
        .collect()
}

fn generated(range: impl Iterator<Item = usize>) -> Vec<(String, Vec<u8>)> {
    range.map(|i| (format!("gen-{i}.eml"), hubgate::bench::generated_mail(i))).collect()
}

/// Everything ingest wrote, without row ids: messages, blobs and threads by the SHA-256
/// of their raw bytes, requests' events and confirmations by the mail they name.
fn stored_state(conn: &mut DbConn) -> Res<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let codes: BTreeMap<i64, String> =
        partners::table.select((partners::id, partners::code)).load::<(i64, String)>(conn)?.into_iter().collect();
    let code = |id: Option<i64>| id.and_then(|id| codes.get(&id).cloned());
    type Row = (i64, String, Option<String>, String, String, Option<i64>, String, i64, String, String);
    let messages: Vec<Row> = mail_messages::table
        .inner_join(mail_blobs::table)
        .select((
            mail_messages::id,
            mail_blobs::sha256,
            mail_messages::message_id,
            mail_messages::kind,
            mail_messages::kind_reason,
            mail_messages::partner_id,
            mail_messages::status,
            mail_messages::thread_id,
            mail_messages::suggestions,
            mail_messages::subject,
        ))
        .load(conn)?;
    let sha_of: BTreeMap<i64, String> = messages.iter().map(|m| (m.0, m.1.clone())).collect();
    let mut members: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (_, sha, mid, kind, reason, partner, status, thread, suggestions, subject) in &messages {
        members.entry(*thread).or_default().insert(sha.clone());
        out.insert(format!(
            "message {sha} {mid:?} {kind} {reason} {:?} {status} {suggestions} {subject}",
            code(*partner)
        ));
    }
    type ThreadRow = (i64, Option<i64>, String, String, chrono::NaiveDateTime, chrono::NaiveDateTime, Option<i64>);
    let threads: Vec<ThreadRow> = mail_threads::table
        .select((
            mail_threads::id,
            mail_threads::partner_id,
            mail_threads::subject,
            mail_threads::norm_subject,
            mail_threads::first_at,
            mail_threads::last_at,
            mail_threads::request_id,
        ))
        .load(conn)?;
    for (id, partner, subject, norm, first, last, request) in threads {
        let of = members.get(&id).cloned().unwrap_or_default();
        out.insert(format!("thread {of:?} {:?} {subject} {norm} {first} {last} request {request:?}", code(partner)));
    }
    let blobs: Vec<(String, String, Option<String>, Option<String>)> = mail_blobs::table
        .select((mail_blobs::sha256, mail_blobs::status, mail_blobs::error, mail_blobs::file_name))
        .load(conn)?;
    for b in blobs {
        out.insert(format!("blob {b:?}"));
    }
    let events: Vec<(i64, String, String, Option<i64>)> = request_events::table
        .select((
            request_events::request_id,
            request_events::kind,
            request_events::body,
            request_events::mail_message_id,
        ))
        .load(conn)?;
    for (request, kind, body, mail) in events {
        out.insert(format!("event {request} {kind} {body} {:?}", mail.and_then(|m| sha_of.get(&m))));
    }
    let confirmed: Vec<(i64, String, Option<i64>, String)> = confirmations::table
        .select((confirmations::request_id, confirmations::kind, confirmations::mail_message_id, confirmations::reason))
        .load(conn)?;
    for (request, kind, mail, reason) in confirmed {
        out.insert(format!("confirmation {request} {kind} {reason} {:?}", mail.and_then(|m| sha_of.get(&m))));
    }
    Ok(out)
}

/// A report without its row ids; threads as the index of the first report in them.
fn comparable(reports: &[IngestReport]) -> Vec<String> {
    let mut first_in_thread: BTreeMap<i64, usize> = BTreeMap::new();
    reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let thread = r.thread_id.map(|t| *first_in_thread.entry(t).or_insert(i));
            format!(
                "{:?} {:?} {:?} {:?} {} {:?} {:?} thread {thread:?} request {:?} {:?} message {}",
                r.file,
                r.message_id,
                r.from,
                r.subject,
                r.status,
                r.partner,
                r.kind,
                r.request_id,
                r.error,
                r.id.is_some()
            )
        })
        .collect()
}

/// The first mails of two generated conversations, and a request opened from the first.
fn opened(app: &TestApp) -> Res {
    let reports = one_by_one(app, &[generated(0..1), generated(5..6)].concat())?;
    let mail_id = reports[0].id.context("the opening mail is stored")?;
    let partner_id = crate::support::partner_id(app, reports[0].partner.as_deref().unwrap_or(""));
    let input = hubgate::hub::service::OpenRequest {
        partner_id,
        mail_id: Some(mail_id),
        merchant_name: "Phở Thìn".into(),
        merchant_contact: String::new(),
        merchant_phone: String::new(),
        point_name: "Phở Thìn Lò Đúc".into(),
        point_address: String::new(),
        point_contact: String::new(),
        point_phone: String::new(),
        extra_points: Vec::new(),
    };
    let actor = hubgate::audit::Actor::system("test");
    app.with_conn(|c| hubgate::hub::service::open_request(c, &actor, &input))?;
    Ok(())
}

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::start_with(backend, |_| {}).await
}

mod a_batch_stores_what_one_by_one_stores {
    use super::*;

    // The rest of the conversations (replies to the one a request took, leader
    // approvals, forwarded confirmations) and the test corpus (an unreadable file and
    // a Message-ID repeated in other bytes, in the middle): one by one on one node, as
    // one batch on another; the same rows, the same reports.
    async fn run(backend: Backend) {
        let (Some(one), Some(many)) = (app(backend).await, app(backend).await) else {
            return;
        };
        let check = || -> Res {
            opened(&one)?;
            opened(&many)?;
            let rest: Vec<(String, Vec<u8>)> = [generated((1..40).filter(|i| *i != 5)), corpus()?].concat();
            let singly = one_by_one(&one, &rest)?;
            let (batched, statements) = counted_batch(&many, &rest)?;
            ensure!(batched.len() == rest.len());
            // Stored together: a handful of statements for the batch, and only replies
            // that land on a request and duplicates cost their own. Message by message
            // would be several statements each.
            assert!(statements < rest.len(), "{statements} statements for {} messages", rest.len());
            assert_eq!(comparable(&batched), comparable(&singly));
            let statuses: BTreeSet<&str> = batched.iter().map(|r| r.status.as_str()).collect();
            assert_eq!(statuses, BTreeSet::from(["stored", "duplicate", "unreadable"]), "the corpus has all three");
            assert!(batched.iter().any(|r| r.request_id.is_some()), "replies land on the request");
            let (a, b) = (one.with_conn(stored_state)?, many.with_conn(stored_state)?);
            assert!(a.iter().any(|l| l.starts_with("event ")) && a.iter().any(|l| l.starts_with("confirmation ")));
            assert_eq!(b, a, "one by one: {a:#?}\nbatch: {b:#?}");
            Ok(())
        };
        check().unwrap_or_else(|e| panic!("{e:?}"));
    }

    crate::on_both_backends!(run);
}

mod duplicates_inside_a_batch_and_against_earlier_mail {
    use super::*;

    async fn run(backend: Backend) {
        let Some(app) = app(backend).await else {
            return;
        };
        let check = || -> Res {
            let eml = crate::desk::eml;
            let earlier = eml("hub@vnpay.vn", "Mở cổng Bún Chả", "Nhờ mở cổng.", "bun-1");
            let first = one_by_one(&app, &[("earlier.eml".into(), earlier.clone())])?.remove(0);
            assert_eq!(first.status, "stored");
            let new = eml("hotro@momo.vn", "Mở cổng Phở Thìn", "Nhờ mở cổng.", "pho-1");
            // Other bytes, the Message-ID of the earlier mail.
            let same_id = eml("hub@vnpay.vn", "Mở cổng Bún Chả (gửi lại)", "Nhờ mở cổng lần nữa.", "bun-1");
            let reports = in_batch(
                &app,
                &[
                    ("new.eml".into(), new.clone()),
                    ("earlier-again.eml".into(), earlier),
                    ("new-again.eml".into(), new),
                    ("same-id.eml".into(), same_id),
                ],
            )?;
            let statuses: Vec<&str> = reports.iter().map(|r| r.status.as_str()).collect();
            assert_eq!(statuses, ["stored", "duplicate", "duplicate", "duplicate"]);
            let (new, earlier_again, new_again, same_id) = (&reports[0], &reports[1], &reports[2], &reports[3]);
            // The same bytes: the blob and the message stored before, under this file's name.
            assert_eq!((earlier_again.blob_id, earlier_again.id), (first.blob_id, first.id));
            assert_eq!((new_again.blob_id, new_again.id), (new.blob_id, new.id));
            assert_eq!(new_again.file.as_deref(), Some("new-again.eml"));
            assert_eq!(new_again.partner.as_deref(), Some("MOMO"));
            assert_eq!(new_again.error.as_deref(), Some("Thư này đã được lưu trước đó."));
            // Other bytes with a stored Message-ID: kept as their own blob, marked a duplicate.
            assert_ne!(same_id.blob_id, first.blob_id);
            assert_eq!(same_id.id, first.id);
            let (status, error): (String, Option<String>) = app.with_conn(|c| {
                mail_blobs::table.find(same_id.blob_id).select((mail_blobs::status, mail_blobs::error)).first(c)
            })?;
            assert_eq!(status, "duplicate");
            assert!(error.unwrap_or_default().contains(&format!("#{}", first.id.unwrap_or(-1))));
            let (blobs, messages): (i64, i64) = app.with_conn(|c| -> QueryResult<(i64, i64)> {
                Ok((mail_blobs::table.count().get_result(c)?, mail_messages::table.count().get_result(c)?))
            })?;
            assert_eq!((blobs, messages), (3, 2), "each distinct file kept once, each Message-ID stored once");
            Ok(())
        };
        check().unwrap_or_else(|e| panic!("{e:?}"));
    }

    crate::on_both_backends!(run);
}

/// Makes the database refuse chosen messages after their thread was written: the
/// subject `hỏng` with an error, `xung đột` with a duplicate key (a Message-ID stored by
/// another path meanwhile looks the same), and the final marking of a batch's blobs as
/// `stored` when `blobs` (the store's commit never happens: a crash after the blob commit).
fn refuse(conn: &mut DbConn, backend: Backend, blobs: bool) -> Res {
    let duplicate_key = "INSERT INTO mail_blobs (sha256, raw, size, source, status, received_at) \
                         SELECT sha256, raw, size, source, status, received_at FROM mail_blobs LIMIT 1";
    match backend {
        Backend::Sqlite => {
            conn.batch_execute(&format!(
                "CREATE TRIGGER refuse_broken BEFORE INSERT ON mail_messages WHEN NEW.subject = 'hỏng' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END; \
                 CREATE TRIGGER refuse_clash BEFORE INSERT ON mail_messages WHEN NEW.subject = 'xung đột' \
                 BEGIN {duplicate_key}; END;"
            ))?;
            if blobs {
                conn.batch_execute(
                    "CREATE TRIGGER refuse_stored BEFORE UPDATE ON mail_blobs WHEN NEW.status = 'stored' \
                     BEGIN SELECT RAISE(ABORT, 'crash'); END;",
                )?;
            }
        }
        Backend::Postgres => {
            conn.batch_execute(&format!(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF TG_TABLE_NAME = 'mail_blobs' THEN \
                     IF NEW.status = 'stored' THEN RAISE EXCEPTION 'crash'; END IF; \
                   ELSIF NEW.subject = 'hỏng' THEN RAISE EXCEPTION 'refused'; \
                   ELSIF NEW.subject = 'xung đột' THEN {duplicate_key}; END IF; \
                   RETURN NEW; END $$; \
                 CREATE TRIGGER refuse BEFORE INSERT ON mail_messages FOR EACH ROW EXECUTE FUNCTION refuse();"
            ))?;
            if blobs {
                conn.batch_execute(
                    "CREATE TRIGGER refuse_stored BEFORE UPDATE ON mail_blobs FOR EACH ROW EXECUTE FUNCTION refuse();",
                )?;
            }
        }
    }
    Ok(())
}

fn allow(conn: &mut DbConn, backend: Backend) -> Res {
    conn.batch_execute(match backend {
        Backend::Sqlite => {
            "DROP TRIGGER refuse_broken; DROP TRIGGER refuse_clash; DROP TRIGGER IF EXISTS refuse_stored;"
        }
        Backend::Postgres => "DROP FUNCTION refuse() CASCADE;",
    })?;
    Ok(())
}

fn blob_of(app: &TestApp, id: i64) -> Res<(String, Option<String>)> {
    Ok(app.with_conn(|c| mail_blobs::table.find(id).select((mail_blobs::status, mail_blobs::error)).first(c))?)
}

fn retry(app: &TestApp, blob_id: i64) -> Res<IngestReport> {
    let cfg = app.state.config.mail.clone();
    let actor = hubgate::audit::Actor::system("test");
    Ok(app.with_conn(|c| service::process_blob(c, &cfg, blob_id, &actor))?)
}

fn threads_named(app: &TestApp, subject: &str) -> Res<i64> {
    Ok(app.with_conn(|c| mail_threads::table.filter(mail_threads::subject.eq(subject)).count().get_result::<i64>(c))?)
}

mod one_failing_message_leaves_the_others_stored {
    use super::*;

    async fn run(backend: Backend) {
        let Some(app) = app(backend).await else {
            return;
        };
        let check = || -> Res {
            let eml = crate::desk::eml;
            app.with_conn(|c| refuse(c, backend, false))?;
            let mails: Vec<(String, Vec<u8>)> = vec![
                ("a.eml".into(), eml("hub@vnpay.vn", "Mở cổng điểm A", "Nhờ mở cổng.", "a")),
                ("broken.eml".into(), eml("hub@vnpay.vn", "hỏng", "Thư hỏng.", "broken")),
                ("b.eml".into(), eml("hub@vnpay.vn", "Mở cổng điểm B", "Nhờ mở cổng.", "b")),
                ("clash.eml".into(), eml("hotro@momo.vn", "xung đột", "Thư trùng.", "clash")),
                ("garbage.eml".into(), b"\x00\x01 khong phai thu \xff\xfe".to_vec()),
                ("c.eml".into(), eml("hotro@momo.vn", "Mở cổng điểm C", "Nhờ mở cổng.", "c")),
            ];
            let reports = in_batch(&app, &mails)?;
            let statuses: Vec<&str> = reports.iter().map(|r| r.status.as_str()).collect();
            assert_eq!(statuses, ["stored", "received", "stored", "duplicate", "unreadable", "stored"]);
            let (broken, clash, garbage) = (&reports[1], &reports[3], &reports[4]);
            // Each failure marks its own blob only; what it had written (its thread) is undone.
            let (status, error) = blob_of(&app, broken.blob_id)?;
            assert_eq!(status, "received");
            assert!(error.unwrap_or_default().starts_with("Chưa lưu được thư"));
            assert_eq!(blob_of(&app, clash.blob_id)?.0, "duplicate");
            assert_eq!(blob_of(&app, garbage.blob_id)?.0, "unreadable");
            assert_eq!((threads_named(&app, "hỏng")?, threads_named(&app, "xung đột")?), (0, 0));
            for r in [&reports[0], &reports[2], &reports[5]] {
                assert_eq!(blob_of(&app, r.blob_id)?.0, "stored");
                let subject: String = app.with_conn(|c| {
                    mail_messages::table.find(r.id.unwrap_or(-1)).select(mail_messages::subject).first(c)
                })?;
                assert_eq!(Some(subject), r.subject);
            }
            // Once the database takes it, the kept blob goes through on retry.
            app.with_conn(|c| allow(c, backend))?;
            assert_eq!(retry(&app, broken.blob_id)?.status, "stored");
            assert_eq!(blob_of(&app, broken.blob_id)?.0, "stored");
            Ok(())
        };
        check().unwrap_or_else(|e| panic!("{e:?}"));
    }

    crate::on_both_backends!(run);
}

mod a_crash_after_the_blob_commit_keeps_the_batch_retryable {
    use super::*;

    async fn run(backend: Backend) {
        let Some(app) = app(backend).await else {
            return;
        };
        let check = || -> Res {
            let eml = crate::desk::eml;
            app.with_conn(|c| refuse(c, backend, true))?;
            let mails: Vec<(String, Vec<u8>)> = (0..3)
                .map(|i| {
                    (
                        format!("{i}.eml"),
                        eml("hub@vnpay.vn", &format!("Mở cổng điểm {i}"), "Nhờ mở cổng.", &format!("k{i}")),
                    )
                })
                .collect();
            // The store's transaction never commits.
            ensure!(in_batch(&app, &mails).is_err(), "the store fails");
            let kept: Vec<(i64, String)> = app.with_conn(|c| {
                mail_blobs::table.order(mail_blobs::id).select((mail_blobs::id, mail_blobs::status)).load(c)
            })?;
            assert_eq!(kept.iter().map(|b| b.1.as_str()).collect::<Vec<_>>(), ["received"; 3], "every raw mail kept");
            let messages: i64 = app.with_conn(|c| mail_messages::table.count().get_result(c))?;
            assert_eq!(messages, 0);
            assert_eq!(app.with_conn(hubgate::mail::inbound::models::problem_blob_count)?, 3);
            // The same files again are duplicates of the kept bytes, not lost and not stored twice…
            app.with_conn(|c| allow(c, backend))?;
            let again = in_batch(&app, &mails)?;
            assert!(again.iter().all(|r| r.status == "duplicate" && r.id.is_none()), "{again:?}");
            // …and each kept one is processed on retry.
            for (id, _) in &kept {
                assert_eq!(retry(&app, *id)?.status, "stored");
            }
            Ok(())
        };
        check().unwrap_or_else(|e| panic!("{e:?}"));
    }

    crate::on_both_backends!(run);
}

mod a_message_with_thousands_of_parts_is_stored_whole {
    use super::*;

    /// 6,000 attachments: more values than one SQLite statement takes (32,766) if they
    /// went in at once.
    fn many_parts(n: usize) -> Vec<u8> {
        let mut m = String::from(
            "From: hub@vnpay.vn\r\nTo: hub@ipos.vn\r\nSubject: Danh sach diem\r\nMessage-ID: <parts@vnpay.vn>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDanh sach diem ban.\r\n",
        );
        for i in 0..n {
            m.push_str(&format!(
                "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"diem-{i}.txt\"\r\n\r\nDiem {i}\r\n"
            ));
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    }

    async fn run(backend: Backend) {
        let Some(app) = app(backend).await else {
            return;
        };
        let check = || -> Res {
            let eml = crate::desk::eml;
            let mails = vec![
                ("parts.eml".to_string(), many_parts(6000)),
                ("plain.eml".to_string(), eml("hotro@momo.vn", "Mở cổng điểm D", "Nhờ mở cổng.", "d")),
            ];
            let reports = in_batch(&app, &mails)?;
            let statuses: Vec<&str> = reports.iter().map(|r| r.status.as_str()).collect();
            assert_eq!(statuses, ["stored", "stored"], "{reports:?}");
            let names: Vec<String> = app.with_conn(|c| {
                use hubgate::db::schema::mail_attachments;
                mail_attachments::table
                    .filter(mail_attachments::message_id.eq(reports[0].id.unwrap_or(-1)))
                    .order(mail_attachments::id)
                    .select(mail_attachments::file_name)
                    .load(c)
            })?;
            assert_eq!(names.len(), 6000);
            assert_eq!((names[0].as_str(), names[5999].as_str()), ("diem-0.txt", "diem-5999.txt"));
            Ok(())
        };
        check().unwrap_or_else(|e| panic!("{e:?}"));
    }

    crate::on_both_backends!(run);
}
