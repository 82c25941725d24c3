//! `limit`/`offset` paging shared by every list endpoint.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, Code, FieldError, FieldErrors};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
pub struct PageQuery {
    /// At most this many items (1–200, default 50).
    pub limit: Option<i64>,
    /// Skip this many items (default 0).
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl PageQuery {
    pub fn validate(self, errors: &mut FieldErrors) -> Page {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let offset = self.offset.unwrap_or(0);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.add(
                "limit",
                FieldError::new(Code::OutOfRange)
                    .with("min", 1)
                    .with("max", MAX_LIMIT),
            );
        }
        if offset < 0 {
            errors.add("offset", FieldError::new(Code::TooSmall).with("min", 0));
        }
        Page { limit, offset }
    }

    pub fn page(self) -> Result<Page, AppError> {
        let mut errors = FieldErrors::new();
        let page = self.validate(&mut errors);
        errors.into_result().map(|()| page)
    }
}

/// One page of a list, with the total across all pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub total: i64,
}
