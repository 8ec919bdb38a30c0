//! The merchant's bank pages: linking (Kết nối → Thêm tài khoản → loại tài khoản →
//! ngân hàng → lưu ý → Tiếp tục → the method → chọn tài khoản con → Hoàn thành), the
//! bank's OAuth callback, the phone handoff, "Kiểm tra giao dịch mới", the
//! transactions (list, chart, export, one, delete), and the push endpoint.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::catalogue::{self, Bank};
use super::connectors::RemoteAccount;
use super::models::{self, Connection, Transaction, TxFilter};
use super::service;
use crate::business::handlers::Biz;
use crate::business::models::BankAccount;
use crate::business::service::BizRole;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, act, redirect, render, render_status};
use crate::web::once::{self, Done, Once};

const M: Access = Access::Merchant;

crate::routes! {
    GET "/app/b/{bid}/connect" => M, connect_start;
    GET "/app/b/{bid}/connect/next" => M, connect_next;
    GET "/app/b/{bid}/connect/{bin}" => M, connect_bank;
    POST "/app/b/{bid}/connect/{bin}/official" => M, connect_official;
    POST "/app/b/{bid}/connect/{bin}/rpa" => M, connect_rpa;
    POST "/app/b/{bid}/connect/{bin}/push" => M, connect_push;
    POST "/app/b/{bid}/connect-demo" => M, connect_demo;
    GET "/callback/handler/{bank}" => M, official_callback;
    GET "/app/b/{bid}/connections/{cid}/accounts" => M, choose_accounts;
    POST "/app/b/{bid}/connections/{cid}/accounts" => M, finish_accounts;
    GET "/link" => M, handoff;
    POST "/app/b/{bid}/accounts/{aid}/sync" => M, sync_now;
    GET "/app/b/{bid}/transactions" => M, transactions;
    GET "/app/b/{bid}/transactions/export" => M, export;
    GET "/app/b/{bid}/transactions/{tid}" => M, transaction;
    POST "/app/b/{bid}/transactions/{tid}/delete" => M, delete_transaction;
    POST "/bank-hooks/{key}" => Access::Public, bank_hook;
}

fn crumbs(biz: &Biz) -> Vec<(String, String)> {
    vec![("Doanh nghiệp".into(), "/app".into()), (biz.business.name.clone(), format!("/app/b/{}", biz.id()))]
}

fn layout(ctx: &Ctx, title: &str, biz: &Biz) -> Layout {
    let crumbs = crumbs(biz);
    let refs: Vec<(&str, &str)> = crumbs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    ctx.layout(title, &refs)
}

// ---- step 1: account type, bank, notes

#[derive(Template)]
#[template(path = "banking/connect.html")]
struct ConnectPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    banks: Vec<Bank>,
}

async fn connect_start(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let banks = ctx.db(|conn| Ok(catalogue::all(conn)?)).await?;
    render(&ConnectPage { l: layout(&ctx, "Thêm tài khoản ngân hàng", &biz), tab: "accounts", biz, banks })
}

// ---- step 2: the ways to link this bank

#[derive(Template)]
#[template(path = "banking/bank.html")]
struct BankPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    bank: Bank,
    kind: String,
    official_ready: bool,
    rpa_ready: bool,
    redirect_url: String,
    qr: String,
    handoff_url: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    #[serde(default)]
    bank: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    agree: Option<String>,
}

/// The step-1 form's "Tiếp tục": on to the chosen bank's page.
async fn connect_next(ctx: Ctx, bid: web::Path<i64>, q: web::Query<NextQuery>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let q = q.into_inner();
    let bin: String = q.bank.chars().filter(char::is_ascii_digit).take(6).collect();
    if bin.len() != 6 || q.agree.is_none() {
        ctx.flash("error", "Hãy chọn ngân hàng và tick đồng ý với các lưu ý trước khi tiếp tục.");
        return Ok(redirect(&format!("/app/b/{}/connect", biz.id())));
    }
    let kind = if q.kind == "business" { "business" } else { "personal" };
    Ok(redirect(&format!("/app/b/{}/connect/{bin}?kind={kind}&agree=1", biz.id())))
}

#[derive(Deserialize)]
struct KindQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    agree: Option<String>,
}

async fn show_bank(
    ctx: &Ctx,
    biz: Biz,
    bin: String,
    kind: String,
    error: Option<String>,
    status: StatusCode,
) -> AppResult<HttpResponse> {
    let config = ctx.state.config.clone();
    let (bid, uid) = (biz.id(), ctx.user()?.id);
    let b = bin.clone();
    let (bank, handoff_url) = ctx
        .db(move |conn| {
            let bank = service::bank(conn, &b).map_err(|_| AppError::NotFound)?;
            let url = service::create_handoff(conn, &config, bid, uid, &bank.bin)?;
            Ok((bank, url))
        })
        .await?;
    let config = &ctx.state.config;
    let page = BankPage {
        l: layout(ctx, &format!("Kết nối {}", bank.short_name), &biz),
        tab: "accounts",
        official_ready: bank.official_api && config.banking.api_urls.contains_key(&bank.code),
        rpa_ready: config.banking.rpa_url.is_some(),
        redirect_url: service::official_redirect_url(config, &bank),
        qr: service::qr_svg(&handoff_url)?,
        handoff_url,
        kind: if kind == "business" { "business".into() } else { "personal".into() },
        biz,
        bank,
        error,
    };
    render_status(status, &page)
}

async fn connect_bank(ctx: Ctx, path: web::Path<(i64, String)>, q: web::Query<KindQuery>) -> AppResult<HttpResponse> {
    let (bid, bin) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Manager).await?;
    let q = q.into_inner();
    // The notes must have been read and agreed to ("tick đồng ý với những lưu ý").
    if q.agree.is_none() {
        ctx.flash("error", "Hãy đọc và tick đồng ý với các lưu ý trước khi tiếp tục.");
        return Ok(redirect(&format!("/app/b/{bid}/connect")));
    }
    show_bank(&ctx, biz, bin, q.kind, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct OfficialForm {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
}

async fn connect_official(
    ctx: Ctx,
    once: Once,
    path: web::Path<(i64, String)>,
    form: web::Form<OfficialForm>,
) -> AppResult<HttpResponse> {
    let (bid, bin) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Manager).await?;
    let actor = ctx.actor()?;
    let uid = ctx.user()?.id;
    let config = ctx.state.config.clone();
    let f = form.into_inner();
    let b = bin.clone();
    // A repeat of this form goes to the same bank page (same pending connection).
    let started = ctx.db(move |conn| {
        once::record(conn, uid, &once, |conn| {
            let url = service::start_official(conn, &config, &actor, bid, &b, &f.client_id, &f.client_secret)?;
            Ok(Done::new(url, ""))
        })
    });
    match started.await {
        Ok(done) => Ok(redirect(&done.location)),
        Err(AppError::Validation(msg)) => {
            show_bank(&ctx, biz, bin, String::new(), Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: String,
    error: Option<String>,
}

async fn official_callback(
    ctx: Ctx,
    bank_code: web::Path<String>,
    q: web::Query<CallbackQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let uid = ctx.user()?.id;
    let state_param = q.state.clone();
    let code_of_bank = bank_code.into_inner();
    // The state names the connection; the person finishing must manage its business.
    let connection: Connection = ctx
        .db(move |conn| {
            let c = models::connection_by_state(conn, &state_param)?.ok_or(AppError::NotFound)?;
            let bank = service::bank(conn, &c.bank_bin)?;
            let role =
                crate::business::models::membership(conn, c.business_id, uid)?.and_then(|(_, r)| BizRole::parse(&r));
            if bank.code != code_of_bank || c.status != "pending" || role.is_none_or(|r| r < BizRole::Manager) {
                return Err(AppError::NotFound);
            }
            Ok(c)
        })
        .await?;
    let bid = connection.business_id;
    if let Some(err) = q.error {
        ctx.flash(
            "error",
            format!("Ngân hàng không cấp quyền truy cập: {}", err.chars().take(100).collect::<String>()),
        );
        return Ok(redirect(&format!("/app/b/{bid}/accounts")));
    }
    match service::finish_official(&ctx.state, connection, &q.code).await {
        Ok(c) => Ok(redirect(&format!("/app/b/{bid}/connections/{}/accounts", c.id))),
        Err(AppError::Validation(msg)) => {
            ctx.flash("error", msg);
            Ok(redirect(&format!("/app/b/{bid}/accounts")))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct RpaForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn connect_rpa(
    ctx: Ctx,
    once: Once,
    path: web::Path<(i64, String)>,
    form: web::Form<RpaForm>,
) -> AppResult<HttpResponse> {
    let (bid, bin) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Manager).await?;
    let actor = ctx.actor()?;
    let f = form.into_inner();
    match service::link_rpa(&ctx.state, &actor, once, bid, &bin, &f.username, &f.password).await {
        Ok(done) => Ok(redirect(&done.location)),
        Err(AppError::Validation(msg)) => {
            show_bank(&ctx, biz, bin, String::new(), Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "banking/push_created.html")]
struct PushCreated {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    url: String,
    secret: String,
}

#[derive(Deserialize)]
struct PushForm {
    #[serde(default)]
    account_number: String,
    #[serde(default)]
    account_name: String,
}

async fn connect_push(
    ctx: Ctx,
    once: Once,
    path: web::Path<(i64, String)>,
    form: web::Form<PushForm>,
) -> AppResult<HttpResponse> {
    let (bid, bin) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Manager).await?;
    let config = ctx.state.config.clone();
    let f = form.into_inner();
    let b = bin.clone();
    let created = once::submit_first(&ctx, once, move |conn, actor| {
        let made = service::create_push(conn, &config, actor, bid, &b, &f.account_number, &f.account_name)?;
        let repeat = Done::new(
            format!("/app/b/{bid}/accounts"),
            "Biểu mẫu này đã được gửi: địa chỉ nhận giao dịch đẩy đã được tạo ở lần gửi trước và khóa bí mật chỉ hiển thị một lần.",
        );
        Ok((made, repeat))
    });
    match created.await {
        Ok(Err(repeat)) => Ok(repeat),
        Ok(Ok((key, secret))) => {
            let url = format!("{}/bank-hooks/{key}", ctx.state.config.base_url);
            render(&PushCreated {
                l: layout(&ctx, "Nhận giao dịch đẩy", &biz), tab: "accounts", biz, url, secret
            })
        }
        Err(AppError::Validation(msg)) => {
            show_bank(&ctx, biz, bin, String::new(), Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e),
    }
}

async fn connect_demo(ctx: Ctx, once: Once, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let bid = biz.id();
    once::submit(&ctx, once, move |conn, actor| {
        let cid = service::link_demo(conn, actor, bid)?;
        Ok(Done::new(format!("/app/b/{bid}/connections/{cid}/accounts"), "Đã liên kết ngân hàng thử nghiệm."))
    })
    .await
}

// ---- step 3: sub-accounts and how far back

#[derive(Template)]
#[template(path = "banking/choose.html")]
struct ChoosePage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    connection: Connection,
    available: Vec<RemoteAccount>,
    linked: Vec<String>,
    error: Option<String>,
}

impl ChoosePage {
    fn backfill(&self) -> &'static [(i64, &'static str)] {
        service::BACKFILL_DAYS
    }

    fn is_linked(&self, a: &RemoteAccount) -> bool {
        self.linked.contains(&a.id)
    }
}

async fn load_connection(
    ctx: &Ctx,
    bid: i64,
    cid: i64,
) -> AppResult<(Biz, Connection, Vec<RemoteAccount>, Vec<String>)> {
    let biz = Biz::load(ctx, bid, BizRole::Manager).await?;
    let (connection, linked) = ctx
        .db(move |conn| {
            let c = models::connection_of_business(conn, bid, cid)?;
            let linked = models::accounts_of_connection(conn, c.id)?.into_iter().map(|a| a.external_id).collect();
            Ok((c, linked))
        })
        .await?;
    if connection.method == "push" || connection.status == "pending" {
        return Err(AppError::NotFound);
    }
    let available = service::remote_accounts(&ctx.state, &connection).await?;
    Ok((biz, connection, available, linked))
}

async fn choose_accounts(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, cid) = path.into_inner();
    let (biz, connection, available, linked) = match load_connection(&ctx, bid, cid).await {
        Err(AppError::Validation(msg)) => {
            ctx.flash("error", msg);
            return Ok(redirect(&format!("/app/b/{bid}/accounts")));
        }
        other => other?,
    };
    render(&ChoosePage {
        l: layout(&ctx, "Chọn tài khoản con", &biz),
        tab: "accounts",
        biz,
        connection,
        available,
        linked,
        error: None,
    })
}

#[derive(Deserialize, Default)]
struct ChooseForm {
    #[serde(default)]
    account: Vec<String>,
    #[serde(default)]
    days: i64,
}

async fn finish_accounts(ctx: Ctx, path: web::Path<(i64, i64)>, body: web::Bytes) -> AppResult<HttpResponse> {
    let (bid, cid) = path.into_inner();
    let form: ChooseForm =
        serde_html_form::from_bytes(&body).map_err(|e| AppError::Validation(format!("Biểu mẫu không hợp lệ: {e}")))?;
    let (biz, connection, available, linked) = load_connection(&ctx, bid, cid).await?;
    let actor = ctx.actor()?;
    let (c, a, chosen, days) = (connection.clone(), available.clone(), form.account.clone(), form.days);
    match ctx.db(move |conn| service::finish_selection(conn, &actor, &c, &a, &chosen, days)).await {
        Ok(n) => {
            ctx.flash("success", format!("Đã liên kết {n} tài khoản. Giao dịch đang được đồng bộ."));
            Ok(redirect(&format!("/app/b/{bid}/accounts")))
        }
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ChoosePage {
                l: layout(&ctx, "Chọn tài khoản con", &biz),
                tab: "accounts",
                biz,
                connection,
                available,
                linked,
                error: Some(msg),
            },
        ),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn handoff(ctx: Ctx, q: web::Query<TokenQuery>) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let config = ctx.state.config.clone();
    let token = q.into_inner().token;
    match ctx.db(move |conn| service::use_handoff(conn, &config, uid, &token)).await? {
        Some((bid, bin)) => Ok(redirect(&format!("/app/b/{bid}/connect/{bin}?agree=1"))),
        None => Err(AppError::Validation(
            "Mã QR đã hết hạn, đã được dùng, hoặc được tạo cho tài khoản khác. Hãy tạo mã mới trên máy tính.".into(),
        )),
    }
}

async fn sync_now(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, aid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Viewer).await?;
    let actor = ctx.actor()?;
    let back = format!("/app/b/{}/accounts", biz.id());
    match ctx.db(move |conn| service::request_sync(conn, &actor, bid, aid)).await {
        Ok(true) => ctx.flash("success", "Đang kiểm tra giao dịch mới; trang sẽ cập nhật sau ít giây."),
        Ok(false) => ctx.flash("info", "Bạn vừa kiểm tra tài khoản này; giới hạn của gói là một lần mỗi phút."),
        Err(AppError::Validation(msg)) => ctx.flash("error", msg),
        Err(e) => return Err(e),
    }
    Ok(redirect(&back))
}

// ---- transactions

/// The filters as the form sends them (every field a string: an empty box is no filter).
#[derive(Deserialize, Default, Clone)]
pub struct TxQuery {
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub direction: String,
    #[serde(default)]
    pub min: String,
    #[serde(default)]
    pub max: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub format: String,
}

fn parse_money(s: &str) -> AppResult<Option<i64>> {
    let digits: String = s.chars().filter(|c| !matches!(c, '.' | ',' | ' ' | 'đ')).collect();
    if digits.is_empty() {
        return Ok(None);
    }
    // A bound is a size of movement, in or out: only digits.
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 15 {
        return Err(AppError::Validation(format!("Số tiền không hợp lệ: {s}")));
    }
    digits.parse::<i64>().map(Some).map_err(|_| AppError::Validation(format!("Số tiền không hợp lệ: {s}")))
}

fn parse_day(s: &str) -> AppResult<Option<NaiveDate>> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map(Some)
        .map_err(|_| AppError::Validation(format!("Ngày không hợp lệ: {s}")))
}

impl TxQuery {
    fn filter(&self, business_id: i64) -> AppResult<TxFilter> {
        let from = parse_day(&self.from)?.map(crate::fmt::local_midnight_utc);
        let to = parse_day(&self.to)?.and_then(|d| d.succ_opt()).map(crate::fmt::local_midnight_utc);
        let account = match self.account.trim() {
            "" => None,
            a => Some(a.parse::<i64>().map_err(|_| AppError::Validation("Tài khoản không hợp lệ.".into()))?),
        };
        let text = crate::mail::inbound::classify::fold(self.q.trim());
        Ok(TxFilter {
            business_id,
            account_id: account,
            from,
            to,
            income: match self.direction.as_str() {
                "in" => Some(true),
                "out" => Some(false),
                _ => None,
            },
            min_amount: parse_money(&self.min)?,
            max_amount: parse_money(&self.max)?,
            text: Some(text).filter(|t| !t.is_empty()),
        })
    }

    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("account", &self.account),
            ("from", &self.from),
            ("to", &self.to),
            ("direction", &self.direction),
            ("min", &self.min),
            ("max", &self.max),
            ("q", &self.q),
        ])
        .unwrap_or_default()
    }
}

/// One bar of the per-day chart.
pub struct DayBar {
    pub label: String,
    pub income: i64,
    pub out: i64,
    pub x: i64,
    pub income_h: i64,
    pub out_h: i64,
}

const CHART_H: i64 = 120;

/// The local days the chart shows: the 31 ending at the filter's last day (today by default).
fn chart_days(q: &TxQuery) -> Vec<NaiveDate> {
    let today = crate::fmt::local_date(crate::db::now());
    let last = parse_day(&q.to).ok().flatten().unwrap_or(today).min(today);
    let first = parse_day(&q.from)
        .ok()
        .flatten()
        .unwrap_or(last - chrono::Duration::days(30))
        .max(last - chrono::Duration::days(30));
    first.iter_days().take_while(|d| *d <= last).collect()
}

fn chart(days: &[NaiveDate], totals: &[(i64, i64)]) -> Vec<DayBar> {
    let top = totals.iter().map(|(i, o)| (*i).max(*o)).max().unwrap_or(0).max(1);
    days.iter()
        .zip(totals)
        .enumerate()
        .map(|(n, (d, (income, out)))| DayBar {
            label: d.format("%d/%m").to_string(),
            income: *income,
            out: *out,
            x: n as i64 * 24,
            income_h: income.saturating_mul(CHART_H) / top,
            out_h: out.saturating_mul(CHART_H) / top,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "banking/transactions.html")]
struct TransactionsPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    q: TxQuery,
    rows: Vec<Transaction>,
    accounts: Vec<BankAccount>,
    count: i64,
    income: i64,
    out: i64,
    bars: Vec<DayBar>,
    page: i64,
    pages: i64,
    error: Option<String>,
}

impl TransactionsPage {
    fn account_label(&self, id: &i64) -> String {
        self.accounts
            .iter()
            .find(|a| a.id == *id)
            .map(|a| format!("{} {}", a.bank_name, a.account_number))
            .unwrap_or_default()
    }

    fn chart_width(&self) -> i64 {
        (self.bars.len() as i64 * 24).max(24)
    }

    fn chart_h(&self) -> i64 {
        CHART_H
    }

    fn page_link(&self, page: i64) -> String {
        format!("/app/b/{}/transactions?{}&page={page}", self.biz.id(), self.q.query_string())
    }

    fn export_link(&self, format: &str) -> String {
        format!("/app/b/{}/transactions/export?{}&format={format}", self.biz.id(), self.q.query_string())
    }
}

const PER_PAGE: i64 = 50;

async fn transactions(ctx: Ctx, bid: web::Path<i64>, q: web::Query<TxQuery>) -> AppResult<HttpResponse> {
    let (bid, uid) = (bid.into_inner(), ctx.user()?.id);
    let q = q.into_inner();
    let page = crate::web::layout::page_number(q.page);
    let (filter, error) = match q.filter(bid) {
        Ok(f) => (f, None),
        Err(AppError::Validation(msg)) => (TxFilter { business_id: bid, ..Default::default() }, Some(msg)),
        Err(e) => return Err(e),
    };
    let days = chart_days(&q);
    let ranges: Vec<_> = days
        .iter()
        .filter_map(|d| d.succ_opt().map(|n| (crate::fmt::local_midnight_utc(*d), crate::fmt::local_midnight_utc(n))))
        .collect();
    // The filter's days (it refused what does not parse, and then has none).
    let (from_day, to_day) = match error {
        None => (parse_day(&q.from).ok().flatten(), parse_day(&q.to).ok().flatten()),
        Some(_) => (None, None),
    };
    let chart_range = days.clone();
    let (biz, rows, (count, income, out), day_totals, accounts) = ctx
        .db(move |conn| {
            // The membership check first, in the same hop as the rows.
            let biz = Biz::load_in(conn, bid, uid, BizRole::Viewer)?;
            let rows = models::page(conn, &filter, (page - 1) * PER_PAGE, PER_PAGE)?;
            let (totals, per_day) = if filter.by_days_only() {
                // Whole days of the whole business: the per-day sums kept with each write.
                let sums = models::day_totals(conn, bid, from_day, to_day)?;
                let totals = sums.iter().fold((0, 0, 0), |t, d| (t.0 + d.1, t.1 + d.2, t.2 + d.3));
                let per_day = chart_range
                    .iter()
                    .map(|day| match sums.binary_search_by_key(day, |d| d.0) {
                        Ok(i) => (sums[i].2, -sums[i].3),
                        Err(_) => (0, 0),
                    })
                    .collect();
                (totals, per_day)
            } else {
                (models::totals(conn, &filter)?, models::range_totals(conn, &filter, &ranges)?)
            };
            Ok((biz, rows, totals, per_day, crate::business::models::linked_accounts(conn, bid)?))
        })
        .await?;
    let bars = if day_totals.iter().all(|(i, o)| *i == 0 && *o == 0) { Vec::new() } else { chart(&days, &day_totals) };
    let pages = ((count + PER_PAGE - 1) / PER_PAGE).max(1);
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    render_status(
        status,
        &TransactionsPage {
            l: layout(&ctx, "Giao dịch", &biz),
            tab: "transactions",
            biz,
            q,
            rows,
            accounts,
            count,
            income,
            out,
            bars,
            page,
            pages,
            error,
        },
    )
}

const EXPORT_HEADERS: [&str; 9] =
    ["Mã GD", "Mã ngân hàng", "Thời gian", "Tài khoản", "Số tiền", "Số dư", "Nội dung", "Đối ứng", "Tên đối ứng"];

async fn export(ctx: Ctx, bid: web::Path<i64>, q: web::Query<TxQuery>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    let bid = biz.id();
    let q = q.into_inner();
    let filter = q.filter(bid)?;
    let xlsx = match q.format.as_str() {
        "xlsx" => true,
        "csv" => false,
        _ => return Err(AppError::Validation("Định dạng phải là csv hoặc xlsx.".into())),
    };
    let bytes = ctx
        .db(move |conn| {
            let accounts = crate::business::models::linked_accounts(conn, bid)?;
            let label =
                |id: i64| accounts.iter().find(|a| a.id == id).map(|a| a.account_number.clone()).unwrap_or_default();
            let mut rows = Vec::new();
            let mut after = 0;
            // Batches by id keep memory flat whatever the period.
            loop {
                let batch = models::batch_after(conn, &filter, after, 5_000)?;
                let Some(last) = batch.last() else { break };
                after = last.id;
                rows.extend(batch.into_iter().map(|t| (label(t.account_id), t)));
            }
            if xlsx { export_xlsx(&rows) } else { export_csv(&rows) }
        })
        .await?;
    let (ctype, ext) = if xlsx {
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    Ok(HttpResponse::Ok()
        .content_type(ctype)
        .insert_header(("Content-Disposition", format!("attachment; filename=\"giao-dich-{bid}.{ext}\"")))
        .body(bytes))
}

fn export_csv(rows: &[(String, Transaction)]) -> AppResult<Vec<u8>> {
    // A BOM so Excel opens the Vietnamese text as UTF-8.
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(EXPORT_HEADERS).map_err(AppError::internal)?;
        for (acc, t) in rows {
            w.write_record([
                t.id.to_string(),
                t.bank_tx_id.clone(),
                crate::fmt::local_time(t.occurred_at).format("%Y-%m-%d %H:%M:%S").to_string(),
                acc.clone(),
                t.amount.to_string(),
                t.balance.map(|b| b.to_string()).unwrap_or_default(),
                t.description.clone(),
                t.counter_account.clone(),
                t.counter_name.clone(),
            ])
            .map_err(AppError::internal)?;
        }
        w.flush().map_err(AppError::internal)?;
    }
    Ok(out)
}

fn export_xlsx(rows: &[(String, Transaction)]) -> AppResult<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let x = |e: rust_xlsxwriter::XlsxError| AppError::internal(e);
    let mut book = Workbook::new();
    // Rows are written in order, so the sheet can stream to disk instead of memory.
    let sheet = book.add_worksheet_with_constant_memory().map_err(x)?;
    sheet.set_name("Giao dịch").map_err(x)?;
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("#,##0");
    let date = Format::new().set_num_format("dd/mm/yyyy hh:mm");
    for (c, h) in EXPORT_HEADERS.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *h, &bold).map_err(x)?;
    }
    for (r, (acc, t)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_number(r, 0, t.id as f64).map_err(x)?;
        sheet.write_string(r, 1, &t.bank_tx_id).map_err(x)?;
        sheet.write_datetime_with_format(r, 2, crate::fmt::local_time(t.occurred_at), &date).map_err(x)?;
        sheet.write_string(r, 3, acc).map_err(x)?;
        sheet.write_number_with_format(r, 4, t.amount as f64, &money).map_err(x)?;
        if let Some(b) = t.balance {
            sheet.write_number_with_format(r, 5, b as f64, &money).map_err(x)?;
        }
        sheet.write_string(r, 6, &t.description).map_err(x)?;
        sheet.write_string(r, 7, &t.counter_account).map_err(x)?;
        sheet.write_string(r, 8, &t.counter_name).map_err(x)?;
    }
    sheet.set_freeze_panes(1, 0).map_err(x)?;
    sheet.autofilter(0, 0, rows.len() as u32, EXPORT_HEADERS.len() as u16 - 1).map_err(x)?;
    book.save_to_buffer().map_err(x)
}

#[derive(Template)]
#[template(path = "banking/transaction.html")]
struct TransactionPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    t: Transaction,
    account: BankAccount,
}

async fn transaction(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, tid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Viewer).await?;
    let (t, account) = ctx
        .db(move |conn| {
            let t = models::transaction(conn, bid, tid)?;
            let account = models::account(conn, t.account_id)?;
            Ok((t, account))
        })
        .await?;
    render(&TransactionPage {
        l: layout(&ctx, &format!("Giao dịch {}", t.bank_tx_id), &biz),
        tab: "transactions",
        biz,
        t,
        account,
    })
}

async fn delete_transaction(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, tid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Manager).await?;
    let back = format!("/app/b/{}/transactions", biz.id());
    act(ctx, &back, "Đã xóa giao dịch; lần đồng bộ sau sẽ không thêm lại.", move |conn, actor| {
        service::delete_transaction(conn, actor, bid, tid)
    })
    .await
}

// ---- push

/// `POST /bank-hooks/{key}`: JSON answers for machines.
async fn bank_hook(ctx: Ctx, req: HttpRequest, key: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (sig, auth) = (header("x-hubgate-signature"), header("authorization"));
    let config = ctx.state.config.clone();
    let key = key.into_inner();
    let result =
        ctx.db(move |conn| service::receive_push(conn, &config, &key, sig.as_deref(), auth.as_deref(), &body)).await;
    let answer = |status: StatusCode, ok: bool, message: &str, data: serde_json::Value| {
        HttpResponse::build(status).json(serde_json::json!({ "success": ok, "message": message, "data": data }))
    };
    match result {
        Ok(a) => answer(
            StatusCode::OK,
            true,
            "ok",
            serde_json::json!({ "new": a.new_ids.len(), "known": a.known, "replaced": a.replaced }),
        ),
        Err(AppError::NotFound) | Err(AppError::Forbidden(_)) => {
            answer(StatusCode::UNAUTHORIZED, false, "unknown hook or bad signature", serde_json::Value::Null)
        }
        Err(AppError::Validation(msg)) => {
            answer(StatusCode::UNPROCESSABLE_ENTITY, false, &msg, serde_json::Value::Null)
        }
        Err(e) => {
            tracing::error!(error = ?e, "push hook failed");
            answer(StatusCode::SERVICE_UNAVAILABLE, false, "try again later", serde_json::Value::Null)
        }
    }
}
