//! The delivery rules, written once. A delivery is *live* while its
//! announcement is not withdrawn and the delivery itself was not retracted
//! (its student left the audience before acknowledging it): only live
//! deliveries show in an inbox,
//! replay to a reconnecting client or move through the state machine. A
//! delivery is *unread* while it is live, not acknowledged and its
//! announcement not expired: every unread
//! count, badge and reminder counts exactly those. Both are SQL over the
//! tables' own names, so diesel queries (the `Live` and `Unread` filters)
//! and the hand-written statements (`concat!` with `live_sql!()` or
//! `unread_sql!()`) share one text.

use diesel::QueryResult;
use diesel::expression::{
    AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Bool;

/// SQL: the delivery's announcement (joined as `announcements`) is not
/// withdrawn, and the delivery is not retracted.
macro_rules! live_sql {
    () => {
        "announcements.status <> 'withdrawn' AND deliveries.retracted_at IS NULL"
    };
}

/// SQL: the announcement has not expired (an expired one no longer
/// matters: no badge, no reminder).
macro_rules! unexpired_sql {
    () => {
        "(announcements.expires_at IS NULL OR announcements.expires_at > now())"
    };
}

/// SQL: the delivery is live, not acknowledged, and its announcement has
/// not expired.
macro_rules! unread_sql {
    () => {
        concat!(
            "deliveries.state <> 'acknowledged' AND ",
            $crate::deliveries::store::rules::unexpired_sql!(),
            " AND ",
            $crate::deliveries::store::rules::live_sql!()
        )
    };
}

/// SQL: the delivery counts in its publisher's figures (stats, the
/// unacknowledged list): not retracted, and acknowledged or its recipient
/// (joined as `users`) still active. A deactivated student drops out of what
/// is pending and comes back when reactivated; what they acknowledged stays.
macro_rules! counted_sql {
    () => {
        "deliveries.retracted_at IS NULL AND (deliveries.state = 'acknowledged' OR users.is_active)"
    };
}

pub(crate) use {counted_sql, live_sql, unexpired_sql, unread_sql};

/// A rule as a diesel filter: fixed SQL with a static query id, so the
/// statements that use it stay prepared (a `sql()` literal would make diesel
/// plan them afresh on every call). The query must join `announcements`.
macro_rules! rule {
    ($(#[$doc:meta])* $name:ident = $sql:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, QueryId)]
        pub struct $name;

        impl Expression for $name {
            type SqlType = Bool;
        }

        impl<QS> AppearsOnTable<QS> for $name {}

        impl<QS> SelectableExpression<QS> for $name {}

        impl<GroupBy> ValidGrouping<GroupBy> for $name {
            type IsAggregate = is_aggregate::Never;
        }

        impl QueryFragment<Pg> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                out.push_sql(concat!("(", $sql, ")"));
                Ok(())
            }
        }
    };
}

rule! {
    /// The live rule: the announcement is not withdrawn, the delivery not retracted.
    Live = live_sql!()
}

rule! {
    /// The unread rule: live and not acknowledged.
    Unread = unread_sql!()
}

rule! {
    /// The counted rule: what the publisher's figures include.
    Counted = counted_sql!()
}
