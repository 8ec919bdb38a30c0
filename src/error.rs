//! The one application error type.
//!
//! Policy: models return diesel's `QueryResult`; services and handlers return
//! `Result<_, AppError>`. diesel `NotFound` becomes 404, a unique or foreign-key violation 409, a pool
//! timeout 503, and anything else is logged with its cause and shown as a bare 500 page
//! that reveals nothing internal. Messages in the variants are for people, in Vietnamese.

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("Không tìm thấy trang hoặc dữ liệu bạn yêu cầu.")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// Input a person can correct; handlers that own a form re-render it instead.
    #[error("{0}")]
    Validation(String),
    #[error("Biểu mẫu đã hết hạn hoặc không hợp lệ. Vui lòng tải lại trang và thử lại.")]
    Csrf,
    /// An upload over its bounds (file count, total size): refused whole, nothing stored.
    #[error("{0}")]
    TooLarge(String),
    #[error("Hệ thống đang bận, vui lòng thử lại sau ít phút.")]
    Unavailable,
    #[error("Đã xảy ra lỗi hệ thống. Vui lòng thử lại; nếu lỗi còn lặp lại, hãy báo quản trị viên.")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }

    pub fn forbidden() -> Self {
        AppError::Forbidden("Bạn không có quyền truy cập trang này.".into())
    }

    pub fn title(&self) -> &'static str {
        match self {
            AppError::NotFound => "Không tìm thấy",
            AppError::Forbidden(_) | AppError::Csrf => "Không được phép",
            AppError::Conflict(_) => "Xung đột dữ liệu",
            AppError::Validation(_) => "Dữ liệu không hợp lệ",
            AppError::TooLarge(_) => "Tải lên quá lớn",
            AppError::Unavailable => "Tạm thời không khả dụng",
            AppError::Internal(_) => "Lỗi hệ thống",
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                AppError::Conflict("Dữ liệu này đã tồn tại.".into())
            }
            // A form naming a row that is gone (or another still refers to): the person
            // can reload and choose again; nothing is wrong with the server.
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => AppError::Conflict(
                "Dữ liệu liên quan không còn tồn tại hoặc đang được dùng ở nơi khác. Vui lòng tải lại trang.".into(),
            ),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<r2d2::Error> for AppError {
    fn from(e: r2d2::Error) -> Self {
        tracing::warn!(error = %e, "database pool exhausted or unreachable");
        AppError::Unavailable
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AppError::Internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    #[test]
    fn a_missing_referenced_row_is_a_conflict_not_a_server_error() {
        let e = AppError::from(Error::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            Box::new("FOREIGN KEY constraint failed".to_string()),
        ));
        assert!(matches!(e, AppError::Conflict(_)), "{e:?}");
        assert!(e.to_string().contains("tải lại trang"));
    }
}
