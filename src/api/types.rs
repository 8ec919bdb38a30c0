//! The shapes the API answers with (their doc comments are the Vietnamese field
//! descriptions of the reference page). Handlers build these and nothing else, and the
//! OpenAPI document (`/v2/openapi.json`) is derived from the same types, so the
//! documentation cannot drift from what is served.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};

/// Mọi câu trả lời: `error` 0 và `message` "success" khi thành công, mã lỗi và lý do
/// khi không; `data` là kết quả (null khi lỗi).
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// 0 khi thành công; ngược lại là mã lỗi (401, 404, 422, 429, 12 …).
    pub error: i64,
    pub message: String,
    pub data: T,
}

/// Một lỗi: `{error, message, data: null}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Mã lỗi: 401 sai khóa, 404 không tìm thấy, 12 không có webhook, 422 dữ liệu không
    /// hợp lệ, 429 quá nhiều yêu cầu, 503 hệ thống bận.
    pub error: i64,
    /// Điều gì sai và cần sửa gì.
    pub message: String,
    pub data: Null,
}

/// JSON `null`: câu trả lời không mang dữ liệu.
#[derive(Serialize, Clone, Copy)]
pub struct Null;

impl utoipa::PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {}

// ---------------------------------------------------------------- v1 token

/// `POST /v1/token`: đổi khóa API lấy access token.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Khóa API.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenGrant {
    /// Gửi sau đó trong `Authorization: <token>` (hoặc `Bearer <token>`).
    pub access_token: String,
    /// Số giây token còn hiệu lực (6 giờ).
    pub expires_in: i64,
    /// Luôn null: dùng lại khóa để lấy token mới.
    pub refresh_token: Null,
}

// ---------------------------------------------------------------- userInfo

#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    pub user: UserRef,
    pub business: BusinessRef,
    #[serde(rename = "bankAccs")]
    pub bank_accs: Vec<UserInfoAccount>,
}

#[derive(Serialize, ToSchema)]
pub struct UserRef {
    pub id: i64,
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct BusinessRef {
    pub id: i64,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserInfoAccount {
    pub id: i64,
    pub bank: BankRef,
    pub bank_account_name: Option<String>,
    /// Số tài khoản.
    pub bank_sub_acc_id: String,
    /// 1 đang kết nối, 0 không.
    pub connect_status: i64,
    /// 1 khi gói dịch vụ của doanh nghiệp bao gồm tài khoản này.
    pub plan_status: i32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BankRef {
    /// Mã BIN của ngân hàng (NAPAS).
    pub bin: i64,
    pub code_name: String,
}

// ---------------------------------------------------------------- accounts

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: i64,
    pub account_number: String,
    pub account_name: String,
    /// Luôn là `payment`.
    pub account_type: String,
    /// Số dư ngân hàng báo lần gần nhất, tính bằng đồng.
    pub balance: Option<i64>,
    /// Luôn là `VND`.
    pub currency: String,
    pub bank_name: String,
    #[serde(rename = "BIN")]
    pub bin: String,
    pub bank_code_name: String,
    pub connect_status: i64,
    /// YYYY-MM-DD (giờ Việt Nam).
    pub beginning_setting_date: Option<String>,
    pub beginning_txn_date: Option<String>,
    /// YYYY-MM-DDTHH:MM:SS (giờ Việt Nam).
    pub last_sync_at: Option<String>,
}

// ---------------------------------------------------------------- transactions

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionOut {
    pub id: i64,
    /// Mã tham chiếu của ngân hàng.
    pub tid: String,
    pub description: String,
    /// Tính bằng đồng; âm khi tiền ra.
    pub amount: i64,
    /// Số dư sau giao dịch (cách viết cũ của Casso).
    #[serde(rename = "cusum_balance")]
    pub cusum_balance_legacy: Option<i64>,
    pub cusum_balance: Option<i64>,
    /// YYYY-MM-DDTHH:MM:SS (giờ Việt Nam).
    pub when: String,
    /// YYYY-MM-DD (giờ Việt Nam).
    pub booking_date: String,
    pub bank_sub_acc_id: String,
    pub payment_channel: String,
    pub virtual_account: String,
    pub virtual_account_name: String,
    pub corresponsive_name: String,
    pub corresponsive_account: String,
    pub corresponsive_bank_id: String,
    pub corresponsive_bank_name: String,
    pub account_id: i64,
    pub bank_code_name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionPage {
    pub page: i64,
    pub page_size: i64,
    pub next_page: Option<i64>,
    pub prev_page: Option<i64>,
    pub total_pages: i64,
    pub total_records: i64,
    pub records: Vec<TransactionOut>,
}

// ---------------------------------------------------------------- sync, webhooks

/// `POST /v2/sync`: một tài khoản theo số, hoặc mọi tài khoản khi không có thân.
#[derive(Deserialize, ToSchema)]
pub struct SyncRequest {
    #[schema(schema_with = account_number)]
    pub bank_acc_id: Option<serde_json::Value>,
}

/// Webhook cần tạo hoặc thay: `webhook` hoặc `url` là bắt buộc (the document adds
/// that rule, which a derive cannot say).
#[derive(Deserialize, ToSchema)]
pub struct WebhookRequest {
    #[schema(schema_with = webhook_url)]
    pub webhook: Option<String>,
    #[schema(schema_with = alias_url)]
    pub url: Option<String>,
    /// Gửi lại trong header `secure-token` của mỗi lần gửi.
    #[schema(max_length = 200)]
    pub secure_token: Option<String>,
    #[schema(schema_with = flag)]
    pub income_only: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    /// Luôn là `webhook`.
    pub channel: String,
    /// URL nhận.
    pub param1: String,
    pub param2: String,
    /// 1 khi chỉ gửi tiền vào.
    pub send_only_income: i32,
}

/// `ASC` (oldest first) or `DESC`.
#[derive(ToSchema)]
pub enum Sort {
    #[allow(clippy::upper_case_acronyms)]
    ASC,
    #[allow(clippy::upper_case_acronyms)]
    DESC,
}

/// What the handlers accept as a webhook URL, as far as a schema can say it (the
/// address must also resolve to a public host, which only the request can tell).
pub const URL_PATTERN: &str = r"^\s*[hH][tT][tT][pP][sS]?://[^\s/?#]+";

fn url_schema(nullable: bool, description: &str) -> Object {
    let kind = if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) };
    ObjectBuilder::new()
        .schema_type(kind)
        .min_length(Some(1))
        .max_length(Some(2000))
        .pattern(Some(URL_PATTERN))
        .description(Some(description))
        .build()
}

fn webhook_url() -> Object {
    url_schema(false, "Nơi nhận mỗi giao dịch mới (http hoặc https, địa chỉ công khai).")
}

fn alias_url() -> Object {
    url_schema(true, "Cùng URL dưới tên một số phần mềm dùng; có `webhook` thì dùng `webhook`.")
}

/// true / false, or Casso's 1 / 0.
fn flag() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([0, 1])))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("Chỉ gửi tiền vào: true hoặc 1."))
        .into()
}

/// A string with something in it, or a number.
fn account_number() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(50))
                .pattern(Some(r"\S")),
        )
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("Số tài khoản (chuỗi hoặc số); bỏ trống: mọi tài khoản."))
        .into()
}
