//! "Khóa API" under a business: create one (shown once), see each key's prefix and last
//! use, revoke.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::keys::{self, ApiKey};
use crate::business::handlers::Biz;
use crate::business::service::BizRole;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, act, render, render_status};
use crate::web::once::{self, Done, Once};

const M: Access = Access::Merchant;

crate::routes! {
    GET "/app/b/{bid}/api" => M, list;
    POST "/app/b/{bid}/api/keys" => M, create;
    POST "/app/b/{bid}/api/keys/{kid}/revoke" => M, revoke;
}

#[derive(Template)]
#[template(path = "api/keys.html")]
struct KeysPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    keys: Vec<ApiKey>,
    grants: Vec<super::oauth::GrantView>,
    created: Option<(String, String)>,
    error: Option<String>,
    base_url: String,
}

fn layout(ctx: &Ctx, biz: &Biz) -> Layout {
    let crumbs =
        [("Doanh nghiệp".to_string(), "/app".to_string()), (biz.business.name.clone(), format!("/app/b/{}", biz.id()))];
    let refs: Vec<(&str, &str)> = crumbs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    ctx.layout("Khóa API", &refs)
}

async fn page(
    ctx: &Ctx,
    biz: Biz,
    created: Option<(String, String)>,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let bid = biz.id();
    let (list, grants) =
        ctx.db(move |conn| Ok((keys::keys_of(conn, bid)?, super::oauth::grants_of(conn, bid)?))).await?;
    let p = KeysPage {
        l: layout(ctx, &biz),
        tab: "api",
        biz,
        keys: list,
        grants,
        created,
        base_url: ctx.state.config.base_url.clone(),
        error,
    };
    if p.error.is_some() { render_status(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, &p) } else { render(&p) }
}

async fn list(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    page(&ctx, biz, None, None).await
}

#[derive(Deserialize)]
struct NewKey {
    #[serde(default)]
    name: String,
}

async fn create(ctx: Ctx, once: Once, bid: web::Path<i64>, form: web::Form<NewKey>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let (bid, config, name) = (biz.id(), ctx.state.config.clone(), form.name.clone());
    let created = once::submit_first(&ctx, once, move |conn, actor| {
        let (key, clear) = keys::create(conn, &config, actor, bid, &name)?;
        let repeat = Done::new(
            format!("/app/b/{bid}/api"),
            format!(
                "Biểu mẫu này đã được gửi: khóa API “{}” đã được tạo ở lần gửi trước và chỉ hiển thị một lần. \
                 Nếu chưa kịp lưu, hãy thu hồi khóa đó và tạo khóa mới.",
                key.name
            ),
        );
        Ok(((key.name, clear), repeat))
    });
    match created.await {
        Ok(Ok(created)) => page(&ctx, biz, Some(created), None).await,
        Ok(Err(repeat)) => Ok(repeat),
        Err(AppError::Validation(msg)) => page(&ctx, biz, None, Some(msg)).await,
        Err(e) => Err(e),
    }
}

async fn revoke(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, kid) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    act(
        ctx,
        &format!("/app/b/{bid}/api"),
        "Đã thu hồi khóa API; mọi yêu cầu dùng khóa này sẽ bị từ chối.",
        move |conn, actor| keys::revoke(conn, actor, bid, kid),
    )
    .await
}
