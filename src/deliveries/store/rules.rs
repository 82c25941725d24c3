//! The delivery rules, written once. A delivery is *live* while its
//! announcement is not withdrawn: only live deliveries show in an inbox,
//! replay to a reconnecting client or move through the state machine. A
//! delivery is *unread* while it is live and not acknowledged: every unread
//! count, badge and reminder counts exactly those. Both are SQL over the
//! tables' own names, so diesel queries (`live()`, `unread()`) and the
//! hand-written statements (`concat!` with `live_sql!()`, `unread_sql!()`)
//! share one text.

use diesel::expression::SqlLiteral;
use diesel::sql_types::Bool;

/// SQL: the delivery's announcement is not withdrawn (joined as `announcements`).
macro_rules! live_sql {
    () => {
        "announcements.status <> 'withdrawn'"
    };
}

/// SQL: the delivery is live and not acknowledged.
macro_rules! unread_sql {
    () => {
        concat!(
            "deliveries.state <> 'acknowledged' AND ",
            $crate::deliveries::store::rules::live_sql!()
        )
    };
}

pub(crate) use {live_sql, unread_sql};

/// The live rule as a diesel filter; the query must join `announcements`.
pub fn live() -> SqlLiteral<Bool> {
    diesel::dsl::sql(live_sql!())
}

/// The unread rule as a diesel filter; the query must join `announcements`.
pub fn unread() -> SqlLiteral<Bool> {
    diesel::dsl::sql(unread_sql!())
}
