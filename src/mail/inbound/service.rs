//! The one ingest function every path ends in (upload, CLI, HTTP, Maildir), and the
//! triage actions.
//!
//! Order matters: the raw bytes are committed first (deduplicated by SHA-256), then
//! parsed and classified in a second transaction. A crash or a parser panic between the
//! two leaves the raw row with status `received` or `unreadable`; nothing is lost and
//! [`process_blob`] can run again.

use chrono::Duration;
use sha2::{Digest, Sha256};

use super::classify::{self, Kind, KindInput, Rule, Sender};
use super::models::{self, NewMessage};
use super::parse::{self, ParsedMail};
use crate::audit::{self, Actor};
use crate::config::MailConfig;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::hub::partners::Partner;

/// How one message fared, as the CLI's JSON line and the upload page show it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    pub file: Option<String>,
    pub blob_id: i64,
    pub id: Option<i64>,
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// stored, duplicate, unreadable, too_large
    pub status: String,
    pub partner: Option<String>,
    pub kind: Option<String>,
    pub thread_id: Option<i64>,
    pub request_id: Option<i64>,
    pub error: Option<String>,
}

impl IngestReport {
    /// The status in Vietnamese, for people.
    pub fn status_label(&self) -> &'static str {
        status_label(&self.status)
    }

    pub fn kind_label(&self) -> &'static str {
        self.kind.as_deref().map(|k| Kind::from_code(k).label()).unwrap_or("")
    }
}

pub fn status_label(status: &str) -> &'static str {
    match status {
        "stored" => "Đã lưu",
        "duplicate" => "Trùng, đã có",
        "unreadable" => "Không đọc được",
        "too_large" => "Vượt giới hạn dung lượng",
        "received" => "Đã nhận, chưa xử lý",
        _ => "Không rõ",
    }
}

/// Partners and enabled rules, loaded once for a batch of messages.
pub struct Known {
    pub partners: Vec<Partner>,
    pub rules: Vec<Rule>,
}

impl Known {
    pub fn load(conn: &mut DbConn) -> AppResult<Self> {
        Ok(Known { partners: crate::hub::partners::all(conn)?, rules: load_rules(conn)? })
    }
}

pub(super) fn sha256_hex(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// Stores `raw` and processes it. `source` says which path it came by.
pub fn ingest(
    conn: &mut DbConn,
    cfg: &MailConfig,
    raw: &[u8],
    source: &str,
    file: Option<&str>,
) -> AppResult<IngestReport> {
    let known = Known::load(conn)?;
    ingest_with(conn, cfg, &known, raw, source, file)
}

/// [`ingest`] with partners and rules from `known` (loaded once for many messages).
/// One message, two commits: what `POST /inbound/mail` does per request. Messages that
/// come many at once go through [`super::batch::ingest_batch`] instead.
pub fn ingest_with(
    conn: &mut DbConn,
    cfg: &MailConfig,
    known: &Known,
    raw: &[u8],
    source: &str,
    file: Option<&str>,
) -> AppResult<IngestReport> {
    let file = clean_file_name(file);
    let file = file.as_deref();
    let sha = sha256_hex(raw);
    // The insert is the duplicate check: the same bytes stored before (or by a
    // concurrent delivery) leave it without a row, one round trip for new mail.
    let Some(blob_id) = models::insert_blob(conn, &sha, raw, source, file, now())? else {
        return duplicate_blob(conn, known, &sha, file);
    };
    let mut report = process(conn, cfg, known, blob_id, raw)?;
    report.file = file.map(str::to_string);
    Ok(report)
}

/// File names come from browsers and senders: without control characters (PostgreSQL
/// text takes no NUL) and of a file-system length, so the raw row can always be written.
pub(super) fn clean_file_name(file: Option<&str>) -> Option<String> {
    file.map(|f| f.chars().map(|c| if c.is_control() { ' ' } else { c }).take(255).collect())
}

/// The report of bytes stored before: the message they became, if any.
pub(super) fn duplicate_blob(
    conn: &mut DbConn,
    known: &Known,
    sha: &str,
    file: Option<&str>,
) -> AppResult<IngestReport> {
    let existing =
        models::blob_by_sha(conn, sha)?.ok_or_else(|| AppError::internal(anyhow::anyhow!("blob {sha} vanished")))?;
    let report = match models::message_by_blob(conn, existing.id)? {
        Some(m) => report_for(conn, &known.partners, &m)?,
        None => IngestReport { blob_id: existing.id, ..Default::default() },
    };
    Ok(as_duplicate(report, file))
}

/// `report` (of the first copy) as the report of a later copy of the same bytes.
pub(super) fn as_duplicate(report: IngestReport, file: Option<&str>) -> IngestReport {
    IngestReport {
        file: file.map(str::to_string),
        status: "duplicate".into(),
        error: Some("Thư này đã được lưu trước đó.".into()),
        ..report
    }
}

/// Processes a kept blob again (after a fix, or one left `received` by a crash).
pub fn process_blob(conn: &mut DbConn, cfg: &MailConfig, blob_id: i64, actor: &Actor) -> AppResult<IngestReport> {
    let blob = models::blob(conn, blob_id)?;
    if blob.status == "stored" {
        return Err(AppError::Validation("Thư này đã được xử lý.".into()));
    }
    let raw = models::blob_raw(conn, blob_id)?;
    audit::record(conn, actor, "mail_blob", blob_id, "retry", Some(serde_json::json!({"status": blob.status})), None)?;
    let known = Known::load(conn)?;
    process(conn, cfg, &known, blob_id, &raw)
}

/// What reading a kept message gave.
pub(super) enum Read {
    Parsed(Box<ParsedMail>),
    /// Not processed: the blob's status (`too_large`, `unreadable`) and why.
    Refused(&'static str, String),
}

/// Parses a kept message unless it is over the size limit; a parser panic is caught.
pub(super) fn read(cfg: &MailConfig, raw: &[u8]) -> Read {
    if raw.len() > cfg.max_message_bytes {
        let msg = format!(
            "Thư {} vượt giới hạn {}; đã giữ nguyên bản gốc nhưng không xử lý.",
            human_size(raw.len()),
            human_size(cfg.max_message_bytes)
        );
        return Read::Refused("too_large", msg);
    }
    match parse_guarded(raw) {
        Ok(p) => Read::Parsed(Box::new(p)),
        Err(reason) => Read::Refused("unreadable", reason),
    }
}

/// Marks a blob that was not processed, and says why.
pub(super) fn refused(conn: &mut DbConn, blob_id: i64, status: &str, why: String) -> AppResult<IngestReport> {
    models::set_blob_status(conn, blob_id, status, Some(&why))?;
    Ok(IngestReport { blob_id, status: status.into(), error: Some(why), ..Default::default() })
}

fn process(conn: &mut DbConn, cfg: &MailConfig, known: &Known, blob_id: i64, raw: &[u8]) -> AppResult<IngestReport> {
    let parsed = match read(cfg, raw) {
        Read::Parsed(p) => p,
        Read::Refused(status, why) => return refused(conn, blob_id, status, why),
    };
    let report = parsed_report(blob_id, &parsed);
    let by_ids = match find_thread(conn, &parsed)? {
        Found::Duplicate(first) => return duplicate_message(conn, known, blob_id, first),
        Found::Thread(t) => t,
    };
    let stored = crate::db::tx(conn, |conn| store(conn, cfg, known, blob_id, &parsed, by_ids, true));
    match stored {
        Ok(s) => Ok(stored_report(s, report)),
        // Two paths racing on the same Message-ID: the other one won.
        Err(AppError::Conflict(_)) => lost_race(conn, report),
        Err(e) => Err(e),
    }
}

/// The report's fields known once a message is parsed.
pub(super) fn parsed_report(blob_id: i64, p: &ParsedMail) -> IngestReport {
    IngestReport {
        blob_id,
        message_id: p.message_id.clone(),
        from: Some(p.from_addr.clone()),
        subject: Some(p.subject.clone()),
        ..Default::default()
    }
}

pub(super) fn stored_report(s: Stored, report: IngestReport) -> IngestReport {
    IngestReport {
        id: Some(s.id),
        status: "stored".into(),
        partner: s.partner,
        kind: Some(s.kind.code().to_string()),
        thread_id: Some(s.thread_id),
        request_id: s.request_id,
        ..report
    }
}

/// Another path stored the same Message-ID between the look-up and the insert.
pub(super) fn lost_race(conn: &mut DbConn, mut report: IngestReport) -> AppResult<IngestReport> {
    let msg = "Trùng Message-ID với một thư vừa được lưu.".to_string();
    models::set_blob_status(conn, report.blob_id, "duplicate", Some(&msg))?;
    report.status = "duplicate".into();
    report.error = Some(msg);
    Ok(report)
}

/// Where an arriving message stands among stored mail.
pub(super) enum Found {
    /// Its Message-ID is stored already, as this message.
    Duplicate(i64),
    /// The thread of the newest stored message it refers to, if any.
    Thread(Option<models::Thread>),
}

/// Its own Message-ID (a duplicate) and the ones it answers (its thread), at once.
pub(super) fn find_thread(conn: &mut DbConn, parsed: &ParsedMail) -> AppResult<Found> {
    let own = parsed.message_id.as_deref();
    let lookup: Vec<String> =
        own.map(str::to_string).into_iter().chain(referenced_ids(parsed).iter().cloned()).collect();
    let known_ids = models::threads_by_message_ids(conn, &lookup)?;
    if let Some((first_id, _, _)) = own.and_then(|mid| known_ids.iter().find(|k| k.1.as_deref() == Some(mid))) {
        return Ok(Found::Duplicate(*first_id));
    }
    Ok(Found::Thread(known_ids.into_iter().next().map(|(_, _, t)| t)))
}

/// Marks `blob_id` a duplicate of stored message `first`.
pub(super) fn duplicate_message(conn: &mut DbConn, known: &Known, blob_id: i64, first: i64) -> AppResult<IngestReport> {
    let first = models::message(conn, first)?;
    let msg = format!("Trùng Message-ID với thư #{} đã lưu; không xử lý lần nữa.", first.id);
    models::set_blob_status(conn, blob_id, "duplicate", Some(&msg))?;
    let mut dup = report_for(conn, &known.partners, &first)?;
    dup.blob_id = blob_id;
    dup.status = "duplicate".into();
    dup.error = Some(msg);
    Ok(dup)
}

fn report_for(conn: &mut DbConn, partners: &[Partner], m: &models::MailMessage) -> AppResult<IngestReport> {
    let partner = m.partner_id.and_then(|pid| partners.iter().find(|p| p.id == pid)).map(|p| p.code.clone());
    let thread = models::thread(conn, m.thread_id)?;
    Ok(IngestReport {
        blob_id: m.blob_id,
        id: Some(m.id),
        message_id: m.message_id.clone(),
        from: Some(m.from_addr.clone()),
        subject: Some(m.subject.clone()),
        status: "stored".into(),
        partner,
        kind: Some(m.kind.clone()),
        thread_id: Some(m.thread_id),
        request_id: thread.request_id,
        ..Default::default()
    })
}

fn human_size(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0)).replace('.', ",")
}

/// The partner a message belongs to: its sender, a forwarded sender, then To/Cc.
fn partner_for<'a>(partners: &'a [Partner], p: &ParsedMail, thread_partner: Option<i64>) -> Option<&'a Partner> {
    let by_addr = |a: &str| partners.iter().find(|pt| pt.owns_address(a));
    by_addr(&p.from_addr)
        .or_else(|| thread_partner.and_then(|id| partners.iter().find(|pt| pt.id == id)))
        .or_else(|| p.forwarded.as_ref().and_then(|f| by_addr(&f.from_addr)))
        .or_else(|| p.to.iter().chain(p.cc.iter()).find_map(|a| by_addr(a)))
}

fn sender_role(addr: &str, partner: Option<&Partner>, cfg: &MailConfig) -> Sender {
    let domain = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if cfg.own_domains.iter().any(|d| domain == d || domain.ends_with(&format!(".{d}"))) {
        return Sender::Ours;
    }
    match partner {
        Some(p) if p.is_leader(addr) => Sender::PartnerLeader,
        Some(p) if p.owns_address(addr) => Sender::Partner,
        _ => Sender::External,
    }
}

fn load_rules(conn: &mut DbConn) -> AppResult<Vec<Rule>> {
    Ok(models::rules(conn)?
        .into_iter()
        .filter(|r| r.enabled)
        .map(|r| Rule { kind: r.kind, pattern: classify::fold(&r.pattern) })
        .collect())
}

/// The Message-IDs a message answers or refers to (In-Reply-To, then References).
pub(super) fn referenced_ids(p: &ParsedMail) -> Vec<String> {
    let mut ids: Vec<String> = p.in_reply_to.clone();
    ids.extend(p.references.iter().cloned());
    ids
}

/// The conversation of the request one of our own sent mails among `ids` belongs to
/// (a partner answering our acceptance mail lands in the request's conversation).
fn thread_of_our_mail(conn: &mut DbConn, ids: &[String]) -> AppResult<Option<models::Thread>> {
    let Some(request_id) = crate::mail::outbound::request_of_message_ids(conn, ids)? else { return Ok(None) };
    match models::thread_of_request(conn, request_id)? {
        Some(id) => Ok(Some(models::thread(conn, id)?)),
        None => Ok(None),
    }
}

/// How [`classify_parsed`] finds the thread.
enum ThreadHint {
    /// The message is stored in this thread already (reclassifying).
    Existing(i64),
    /// Arriving: the thread of the newest stored message it refers to, looked up
    /// before the store's transaction (None: look for our own mail, then the subject).
    Arriving(Option<models::Thread>),
}

/// Finds the thread (Message-ID chain first, then subject within the partner and 60
/// days), decides partner and kind.
fn classify_parsed(
    conn: &mut DbConn,
    cfg: &MailConfig,
    known: &Known,
    p: &ParsedMail,
    hint: ThreadHint,
) -> AppResult<(Option<models::Thread>, Option<Partner>, Kind, String)> {
    let norm = classify::normalise_subject(&p.subject);
    let at = p.sent_at.unwrap_or_else(now);
    let reclassifying = matches!(hint, ThreadHint::Existing(_));
    let by_ids = match hint {
        ThreadHint::Existing(id) => Some(models::thread(conn, id)?),
        ThreadHint::Arriving(Some(t)) => Some(t),
        ThreadHint::Arriving(None) => thread_of_our_mail(conn, &referenced_ids(p))?,
    };
    let thread = match by_ids {
        Some(t) => Some(t),
        None => {
            let guess = subject_partner(known, p);
            if norm.is_empty() { None } else { models::thread_by_subject(conn, &norm, guess, at - Duration::days(60))? }
        }
    };
    // A thread that already holds other mail is a conversation this one joins.
    let in_thread = match &thread {
        Some(t) if reclassifying => models::thread_messages(conn, t.id)?.len() > 1,
        Some(_) => true,
        None => false,
    };
    let (partner, kind, reason) = decide(cfg, known, p, thread.as_ref(), in_thread);
    Ok((thread, partner, kind, reason))
}

/// The partner a subject match is looked for under, before the thread is known.
pub(super) fn subject_partner(known: &Known, p: &ParsedMail) -> Option<i64> {
    partner_for(&known.partners, p, None).map(|pt| pt.id)
}

/// Partner and kind of a message once its thread is known: no database.
pub(super) fn decide(
    cfg: &MailConfig,
    known: &Known,
    p: &ParsedMail,
    thread: Option<&models::Thread>,
    in_thread: bool,
) -> (Option<Partner>, Kind, String) {
    let partner = partner_for(&known.partners, p, thread.and_then(|t| t.partner_id)).cloned();
    let own = classify::own_text(&p.text);
    let forwarded = p.forwarded.as_ref().map(|f| (f, sender_role(&f.from_addr, partner.as_ref(), cfg)));
    let (kind, reason) = classify::decide_kind(&KindInput {
        in_thread,
        sender: sender_role(&p.from_addr, partner.as_ref(), cfg),
        own_text: &own,
        subject: &p.subject,
        forwarded,
        rules: &known.rules,
    });
    (partner, kind, reason)
}

/// What [`store`] decided, for the report.
pub(super) struct Stored {
    pub(super) id: i64,
    pub(super) thread_id: i64,
    pub(super) request_id: Option<i64>,
    pub(super) partner: Option<String>,
    pub(super) kind: Kind,
}

/// The texts a stored message keeps besides the parsed fields (joined lists, the
/// suggestions as JSON, the folded search text), owned so a batch can hold many rows.
pub(super) struct MessageTexts {
    in_reply_to: String,
    refs: String,
    to: String,
    cc: String,
    suggestions: String,
    search_text: String,
}

pub(super) fn message_texts(p: &ParsedMail) -> AppResult<MessageTexts> {
    let suggestions = serde_json::to_string(&classify::suggestions(
        &p.forwarded.as_ref().map(|f| format!("{}\n{}", p.text, f.text)).unwrap_or_else(|| p.text.clone()),
    ))
    .map_err(AppError::internal)?;
    Ok(MessageTexts {
        in_reply_to: p.in_reply_to.join(" "),
        refs: p.references.join(" "),
        to: p.to.join(", "),
        cc: p.cc.join(", "),
        suggestions,
        search_text: models::search_text(&p.subject, &p.from_name, &p.from_addr, &p.text),
    })
}

/// What classifying a message decided, for its row.
pub(super) struct Decided<'a> {
    pub(super) partner_id: Option<i64>,
    pub(super) kind: Kind,
    pub(super) reason: &'a str,
    pub(super) thread_id: i64,
}

pub(super) fn new_message<'a>(blob_id: i64, p: &'a ParsedMail, t: &'a MessageTexts, d: &Decided<'a>) -> NewMessage<'a> {
    NewMessage {
        blob_id,
        message_id: p.message_id.as_deref(),
        in_reply_to: &t.in_reply_to,
        refs: &t.refs,
        from_addr: &p.from_addr,
        from_name: &p.from_name,
        to_addrs: &t.to,
        cc_addrs: &t.cc,
        reply_to: &p.reply_to,
        subject: &p.subject,
        sent_at: p.sent_at,
        text_body: &p.text,
        html_body: p.html.as_deref(),
        forwarded_from: p.forwarded.as_ref().map(|f| f.from_addr.as_str()),
        forwarded_name: p.forwarded.as_ref().map(|f| f.from_name.as_str()),
        partner_id: d.partner_id,
        kind: d.kind.code(),
        kind_reason: d.reason,
        thread_id: d.thread_id,
        status: "new",
        suggestions: &t.suggestions,
        created_at: now(),
        search_text: Some(&t.search_text),
    }
}

/// A message's attachments as rows: over the limit, only the name, size and why.
pub(super) fn attachment_rows<'a>(
    cfg: &MailConfig,
    p: &'a ParsedMail,
    message_id: i64,
) -> Vec<models::NewAttachment<'a>> {
    p.attachments
        .iter()
        .map(|a| {
            let over = a.bytes.len() > cfg.max_attachment_bytes;
            models::NewAttachment {
                message_id,
                file_name: &a.name,
                content_type: &a.content_type,
                size: a.bytes.len() as i64,
                content: (!over).then_some(a.bytes.as_slice()),
                omitted_reason: over.then(|| {
                    format!(
                        "Tệp {} vượt giới hạn {}; nội dung chỉ còn trong thư gốc.",
                        human_size(a.bytes.len()),
                        human_size(cfg.max_attachment_bytes)
                    )
                }),
            }
        })
        .collect()
}

/// Threads, classifies and inserts a parsed message; `mark_stored` also sets its blob
/// `stored` (a batch sets all of its blobs at once instead).
pub(super) fn store(
    conn: &mut DbConn,
    cfg: &MailConfig,
    known: &Known,
    blob_id: i64,
    p: &ParsedMail,
    by_ids: Option<models::Thread>,
    mark_stored: bool,
) -> AppResult<Stored> {
    let (thread, partner, kind, reason) = classify_parsed(conn, cfg, known, p, ThreadHint::Arriving(by_ids))?;
    let at = p.sent_at.unwrap_or_else(now);
    let thread_id = match &thread {
        Some(t) => {
            models::touch_thread(conn, t, partner.as_ref().map(|x| x.id), at)?;
            t.id
        }
        None => models::insert_thread(
            conn,
            partner.as_ref().map(|x| x.id),
            &p.subject,
            &classify::normalise_subject(&p.subject),
            at,
        )?,
    };
    let texts = message_texts(p)?;
    let decided = Decided { partner_id: partner.as_ref().map(|x| x.id), kind, reason: &reason, thread_id };
    let id = models::insert_message(conn, &new_message(blob_id, p, &texts, &decided))?;
    models::insert_attachments(conn, &attachment_rows(cfg, p, id))?;
    if mark_stored {
        models::set_blob_status(conn, blob_id, "stored", None)?;
    }
    // A reply in a conversation already tied to a request lands on its timeline.
    if thread.as_ref().is_some_and(|t| t.request_id.is_some()) {
        crate::hub::service::on_mail_stored(conn, id)?;
    }
    Ok(Stored {
        id,
        thread_id,
        request_id: thread.as_ref().and_then(|t| t.request_id),
        partner: partner.map(|p| p.code),
        kind,
    })
}

/// Parses a stored or arriving message; a parser panic on hostile input becomes an
/// "unreadable" reason instead of taking the request or the worker down with it.
fn parse_guarded(raw: &[u8]) -> Result<parse::ParsedMail, String> {
    std::panic::catch_unwind(|| parse::parse(raw))
        .unwrap_or_else(|_| Err("Bộ phân tích thư gặp lỗi với thư này.".to_string()))
}

/// Runs partner and kind detection again (after rules or partners changed).
pub fn reclassify(conn: &mut DbConn, cfg: &MailConfig, actor: &Actor, id: i64) -> AppResult<Kind> {
    let m = models::message(conn, id)?;
    let raw = models::blob_raw(conn, m.blob_id)?;
    let parsed = parse_guarded(&raw).map_err(AppError::Validation)?;
    crate::db::tx(conn, |conn| {
        let known = Known::load(conn)?;
        let (_, partner, kind, reason) =
            classify_parsed(conn, cfg, &known, &parsed, ThreadHint::Existing(m.thread_id))?;
        let partner_id = partner.as_ref().map(|p| p.id);
        models::set_classification(conn, id, partner_id, kind.code(), &reason)?;
        audit::record(
            conn,
            actor,
            "mail_message",
            id,
            "reclassify",
            Some(serde_json::json!({"kind": m.kind, "partner_id": m.partner_id})),
            Some(serde_json::json!({"kind": kind.code(), "partner_id": partner_id, "reason": reason})),
        )?;
        Ok(kind)
    })
}

/// Takes a message out of the inbox, with the reason.
pub fn mark_not_relevant(conn: &mut DbConn, actor: &Actor, id: i64, reason: &str) -> AppResult<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::Validation("Vui lòng ghi lý do thư không liên quan.".into()));
    }
    crate::db::tx(conn, |conn| {
        let m = models::message(conn, id)?;
        models::set_status(conn, id, "not_relevant", Some(reason))?;
        audit::record(
            conn,
            actor,
            "mail_message",
            id,
            "not_relevant",
            Some(serde_json::json!({"status": m.status})),
            Some(serde_json::json!({"status": "not_relevant", "reason": reason})),
        )?;
        Ok(())
    })
}

/// Puts a message back into the inbox.
pub fn reopen(conn: &mut DbConn, actor: &Actor, id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let m = models::message(conn, id)?;
        models::set_status(conn, id, "new", None)?;
        audit::record(
            conn,
            actor,
            "mail_message",
            id,
            "reopen",
            Some(serde_json::json!({"status": m.status})),
            Some(serde_json::json!({"status": "new"})),
        )?;
        Ok(())
    })
}

pub const RULE_KINDS: [(&str, &str); 2] = [("request", "Yêu cầu mở cổng"), ("confirmation", "Xác nhận")];

/// Adds a keyword rule; patterns are stored folded so they match with or without diacritics.
pub fn add_rule(conn: &mut DbConn, actor: &Actor, kind: &str, pattern: &str) -> AppResult<i64> {
    if !RULE_KINDS.iter().any(|(k, _)| *k == kind) {
        return Err(AppError::Validation("Loại quy tắc không hợp lệ.".into()));
    }
    let folded = classify::fold(pattern);
    if folded.chars().count() < 2 {
        return Err(AppError::Validation("Từ khóa phải có ít nhất 2 ký tự.".into()));
    }
    crate::db::tx(conn, |conn| {
        if models::rules(conn)?.iter().any(|r| r.kind == kind && r.pattern == folded) {
            return Err(AppError::Validation("Quy tắc này đã có.".into()));
        }
        let id = models::insert_rule(conn, kind, &folded)?;
        audit::record(
            conn,
            actor,
            "mail_rule",
            id,
            "create",
            None,
            Some(serde_json::json!({"kind": kind, "pattern": folded})),
        )?;
        Ok(id)
    })
}

pub fn toggle_rule(conn: &mut DbConn, actor: &Actor, id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let r = models::rule(conn, id)?;
        models::set_rule_enabled(conn, id, !r.enabled)?;
        audit::record(conn, actor, "mail_rule", id, if r.enabled { "disable" } else { "enable" }, None, None)?;
        Ok(())
    })
}

pub fn delete_rule(conn: &mut DbConn, actor: &Actor, id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let r = models::rule(conn, id)?;
        models::delete_rule(conn, id)?;
        audit::record(
            conn,
            actor,
            "mail_rule",
            id,
            "delete",
            Some(serde_json::json!({"kind": r.kind, "pattern": r.pattern})),
            None,
        )?;
        Ok(())
    })
}
