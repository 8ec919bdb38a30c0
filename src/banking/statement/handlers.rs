//! The statement pages: upload on the account's page → preview (mapping, first rows,
//! balance and account checks) → confirm → summary. A file of a layout whose mapping
//! was confirmed before imports straight from the upload.

use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::OptionalExtension;

use super::{Field, Import, Mapping, PREVIEW_ROWS, Statement};
use crate::business::handlers::Biz;
use crate::business::models::BankAccount;
use crate::business::service::BizRole;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, redirect, render};
use crate::web::once::{Done, Once};
use crate::web::upload::PendingUpload;

const M: Access = Access::Merchant;

crate::routes! {
    GET "/app/b/{bid}/accounts/{aid}/statements" => M, account_page;
    POST "/app/b/{bid}/accounts/{aid}/statements" => M, upload, Upload;
    GET "/app/b/{bid}/statements/{id}" => M, show;
    POST "/app/b/{bid}/statements/{id}/import" => M, confirm;
}

fn layout(ctx: &Ctx, title: &str, biz: &Biz) -> Layout {
    let home = format!("/app/b/{}", biz.id());
    let accounts = format!("/app/b/{}/accounts", biz.id());
    ctx.layout(title, &[("Doanh nghiệp", "/app"), (&biz.business.name, &home), ("Tài khoản ngân hàng", &accounts)])
}

async fn account_of(ctx: &Ctx, biz: &Biz, aid: i64) -> AppResult<BankAccount> {
    let bid = biz.id();
    let account = ctx.db(move |conn| Ok(crate::banking::models::account(conn, aid).optional()?)).await?;
    match account {
        Some(a) if a.business_id == bid && a.removed_at.is_none() => Ok(a),
        _ => Err(AppError::NotFound),
    }
}

#[derive(Template)]
#[template(path = "banking/statements.html")]
struct AccountPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    account: BankAccount,
    imports: Vec<Import>,
}

async fn account_page(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, aid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Viewer).await?;
    let account = account_of(&ctx, &biz, aid).await?;
    let imports = ctx.db(move |conn| Ok(super::recent(conn, aid)?)).await?;
    let title = format!("Sao kê {} {}", account.bank_name, account.account_number);
    render(&AccountPage { l: layout(&ctx, &title, &biz), tab: "accounts", biz, account, imports })
}

/// Keeps the file; a layout confirmed before imports at once, else the preview.
async fn upload(ctx: Ctx, path: web::Path<(i64, i64)>, form: PendingUpload) -> AppResult<HttpResponse> {
    let (bid, aid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Manager).await?;
    let account = account_of(&ctx, &biz, aid).await?;
    // Read only for someone who may import into this account.
    let mut form = form.read().await?;
    let back = format!("/app/b/{bid}/accounts/{aid}/statements");
    let silent = form.field("silent").is_some();
    let once = Once::from_field(form.field("_once"))?;
    let Some(file) = form.take_files("file").into_iter().next() else {
        ctx.flash("error", "Hãy chọn tệp sao kê (xlsx, xls hoặc csv).");
        return Ok(redirect(&back));
    };
    let actor = ctx.actor()?;
    let user_id = ctx.user()?.id;
    let done = ctx
        .db(move |conn| {
            crate::web::once::record(conn, user_id, &once, |conn| {
                let id = super::upload(conn, &actor, &account, &file.name, &file.bytes, silent)?;
                let to = format!("/app/b/{bid}/statements/{id}");
                // The layout's mapping was confirmed before: one step.
                let st = super::parse::read(&file.bytes, &file.name, None, 0).map_err(AppError::Validation)?;
                if super::saved_mapping(conn, &account.bank_code, &st.layout)?.is_some() {
                    match super::queue(conn, &actor, bid, id, None, silent) {
                        Ok(_) => return Ok(Done::new(to, QUEUED)),
                        // Kept for the preview, which says what is wrong.
                        Err(AppError::Validation(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(Done::new(to, "Đã tải tệp lên; kiểm tra cách đọc rồi bấm “Nhập giao dịch”."))
            })
        })
        .await;
    match done {
        Ok(d) => {
            ctx.flash("success", d.message);
            Ok(redirect(&d.location))
        }
        Err(AppError::Validation(m)) => {
            ctx.flash("error", m);
            Ok(redirect(&back))
        }
        Err(e) => Err(e),
    }
}

/// The flash once a statement is confirmed: the page it lands on shows the progress.
const QUEUED: &str = "Đang nhập sao kê; trang này cho biết tiến độ, rồi kết quả.";

#[derive(Template)]
#[template(path = "banking/statement.html")]
struct ShowPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    account: BankAccount,
    import: Import,
    /// The preview (an import not done yet), or why the file cannot be imported.
    statement: Option<Statement>,
    error: Option<String>,
    remembered: bool,
}

impl ShowPage {
    fn fields(&self) -> Vec<(&'static str, &'static str)> {
        Field::ALL.iter().map(|f| (f.key(), f.label())).collect()
    }

    fn columns(&self) -> Vec<(usize, String)> {
        let headers = self.statement.as_ref().map(|s| s.layout.headers.clone()).unwrap_or_default();
        headers
            .into_iter()
            .enumerate()
            .map(|(i, h)| (i, format!("{} – {}", column_name(i), if h.is_empty() { "(trống)".into() } else { h })))
            .collect()
    }

    fn chosen(&self, key: &str, col: &usize) -> bool {
        let m = self.statement.as_ref().map(|s| &s.mapping);
        Field::ALL.iter().find(|f| f.key() == key).and_then(|f| m.and_then(|m| m.get(*f))) == Some(*col)
    }

    fn balance_text(&self) -> String {
        let Some(st) = &self.statement else { return String::new() };
        let money = |v: i64| crate::fmt::Money(v).to_string();
        match st.balance_check() {
            Some(Ok(())) => format!(
                "Khớp: số dư đầu kỳ {} + phát sinh {} = số dư cuối kỳ {}.",
                money(st.opening.unwrap_or(0)),
                money(st.sum),
                money(st.closing.unwrap_or(0))
            ),
            Some(Err(diff)) => format!(
                "Không khớp: số dư đầu kỳ {} + phát sinh {} ≠ số dư cuối kỳ {} (lệch {}). Kiểm tra cách đọc các cột số tiền.",
                money(st.opening.unwrap_or(0)),
                money(st.sum),
                money(st.closing.unwrap_or(0)),
                money(diff)
            ),
            None => "Tệp không ghi cả số dư đầu kỳ và cuối kỳ nên không kiểm tra được.".into(),
        }
    }

    fn balance_ok(&self) -> bool {
        self.statement.as_ref().and_then(Statement::balance_check).is_some_and(|r| r.is_ok())
    }

    fn when(&self, t: &chrono::NaiveDateTime) -> String {
        t.format("%d/%m/%Y %H:%M").to_string()
    }

    fn money(&self, v: &i64) -> String {
        crate::fmt::Money(*v).to_string()
    }

    fn count(&self, v: &i64) -> String {
        crate::fmt::Count(*v).to_string()
    }
}

/// Spreadsheet column letters: 0 → A, 26 → AA.
fn column_name(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

async fn show(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, id) = path.into_inner();
    show_page(&ctx, bid, id, None).await
}

async fn show_page(ctx: &Ctx, bid: i64, id: i64, mapping: Option<Mapping>) -> AppResult<HttpResponse> {
    let biz = Biz::load(ctx, bid, BizRole::Viewer).await?;
    let (import, account, statement, error, remembered) = ctx
        .db(move |conn| {
            let import = super::get(conn, bid, id)?;
            let account = crate::banking::models::account(conn, import.account_id)?;
            if import.done() || import.running() {
                return Ok((import, account, None, None, false));
            }
            let bytes = super::file(conn, id)?;
            let first = super::parse::read(&bytes, &import.file_name, mapping.as_ref(), PREVIEW_ROWS);
            let (mut statement, mut remembered) = (None, false);
            let error = match first {
                Ok(st) => {
                    let saved = super::saved_mapping(conn, &account.bank_code, &st.layout)?;
                    let st = match (&mapping, saved) {
                        (None, Some(m)) if m != st.mapping => {
                            remembered = true;
                            super::parse::read(&bytes, &import.file_name, Some(&m), PREVIEW_ROWS)
                                .map_err(AppError::Validation)?
                        }
                        (None, Some(_)) => {
                            remembered = true;
                            st
                        }
                        _ => st,
                    };
                    let error = st
                        .mapping
                        .check()
                        .err()
                        .or_else(|| st.fault_message())
                        .or_else(|| super::check_account(&st, &account).err());
                    statement = Some(st);
                    error
                }
                Err(e) => Some(e),
            };
            Ok((import, account, statement, error, remembered))
        })
        .await?;
    let title = format!("Sao kê {}", import.file_name);
    render(&ShowPage {
        l: layout(ctx, &title, &biz),
        tab: "accounts",
        biz,
        account,
        import,
        statement,
        error,
        remembered,
    })
}

/// The mapping as the preview form sends it: a column index per field, empty for none.
fn mapping_from(form: &[(String, String)]) -> Mapping {
    let mut m = Mapping::default();
    for f in Field::ALL {
        let col = form.iter().find(|(k, _)| k == f.key()).and_then(|(_, v)| v.trim().parse::<usize>().ok());
        if let Some(c) = col.filter(|c| *c < crate::sheets::MAX_COLS as usize) {
            m.columns.insert(f, c);
        }
    }
    m
}

async fn confirm(
    ctx: Ctx,
    once: Once,
    path: web::Path<(i64, i64)>,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let (bid, id) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    let form = form.into_inner();
    let mapping = mapping_from(&form);
    let silent = form.iter().any(|(k, _)| k == "silent");
    // "Xem lại": the preview with the adjusted mapping, nothing imported.
    if form.iter().any(|(k, v)| k == "action" && v == "preview") {
        return show_page(&ctx, bid, id, Some(mapping)).await;
    }
    let actor = ctx.actor()?;
    let user_id = ctx.user()?.id;
    let m = mapping.clone();
    let done = ctx
        .db(move |conn| {
            crate::web::once::record(conn, user_id, &once, |conn| {
                super::queue(conn, &actor, bid, id, Some(&m), silent)?;
                Ok(Done::new(format!("/app/b/{bid}/statements/{id}"), QUEUED))
            })
        })
        .await;
    match done {
        Ok(d) => {
            ctx.flash("success", d.message);
            Ok(redirect(&d.location))
        }
        Err(AppError::Validation(_)) => show_page(&ctx, bid, id, Some(mapping)).await,
        Err(e) => Err(e),
    }
}
