//! `username,display_name,email,role[,number]`: the school's roster,
//! upserted by username (any case). New accounts get no password: each is
//! queued for an invitation, mailed at a bounded rate. Admins import any
//! role; registrars students and teachers, and never touch a staff account.
//! An admin's role is never changed by a file (the last admin must stay).

use std::collections::HashMap;

use csv::ByteRecord;
use diesel_async::AsyncPgConnection;

use super::rows::{CHUNK, Report, RowError, RowSpec, advance, optional, required_text};
use crate::error::{AppError, FieldError};
use crate::events::Event;
use crate::ids::UserId;
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::Sheet;
use crate::users::fields::{DisplayName, Email, SchoolNumber, Username};
use crate::users::model::Role;
use crate::users::roster::{self, RosterRow};

/// A row, and the account it is about if that exists.
pub struct RosterItem {
    row: RosterRow,
    existing: Option<(UserId, Role)>,
}

pub struct Users;

fn parsed<T>(column: &str, parse: Result<T, FieldError>) -> Result<T, RowError> {
    parse.map_err(|reason| RowError::new(column, reason.message))
}

impl RowSpec for Users {
    const REQUIRED: &'static [&'static str] = &["username", "display_name", "email", "role"];
    const KEY_COLUMN: &'static str = "username";
    type Read = RosterRow;
    /// The username, lowercased.
    type Key = String;
    type Item = RosterItem;

    fn read(sheet: &Sheet, record: &ByteRecord) -> Result<RosterRow, RowError> {
        let username = required_text(sheet, record, "username", 150)?;
        let username = parsed("username", Username::parse(&username))?;
        let name = optional(sheet, record, "display_name")?.unwrap_or_default();
        let display_name = parsed("display_name", DisplayName::parse(&name))?;
        let email = required_text(sheet, record, "email", 254)?;
        let email = parsed("email", Email::parse(&email))?;
        let role = required_text(sheet, record, "role", 16)?;
        let role: Role = role.to_lowercase().parse().map_err(|_| {
            RowError::new(
                "role",
                "must be student, teacher, manager, registrar or admin",
            )
        })?;
        let number = match optional(sheet, record, "number")? {
            Some(number) => Some(parsed("number", SchoolNumber::parse(&number))?),
            None => None,
        };
        Ok(RosterRow {
            username: username.as_str().to_owned(),
            display_name: display_name.as_str().to_owned(),
            email: email.as_str().to_owned(),
            role,
            number: number.map(|n| n.as_str().to_owned()),
        })
    }

    /// The accounts the rows are about, and the e-mails and numbers other
    /// accounts (or other rows) already hold.
    async fn resolve(
        conn: &mut AsyncPgConnection,
        read_rows: Vec<(usize, RosterRow)>,
        report: &mut Report,
    ) -> Result<Vec<(usize, String, RosterItem)>, AppError> {
        let lower = |f: fn(&RosterRow) -> Option<&str>| -> Vec<String> {
            read_rows
                .iter()
                .filter_map(|(_, row)| f(row).map(str::to_lowercase))
                .collect()
        };
        let usernames = lower(|r| Some(&r.username));
        let emails = lower(|r| Some(&r.email));
        let numbers = lower(|r| r.number.as_deref());
        let found = roster::existing(conn, &usernames, &emails, &numbers).await?;
        let by_username: HashMap<&str, &roster::Existing> =
            found.iter().map(|e| (e.username.as_str(), e)).collect();
        // Who holds each e-mail and number: accounts first, then rows.
        let mut emails: HashMap<String, String> = found
            .iter()
            .map(|e| (e.email.clone(), e.username.clone()))
            .collect();
        let mut numbers: HashMap<String, String> = found
            .iter()
            .filter_map(|e| Some((e.number.clone()?, e.username.clone())))
            .collect();
        let mut rows = Vec::new();
        for (line, row) in read_rows {
            let key = row.username.to_lowercase();
            let holder = emails
                .entry(row.email.to_lowercase())
                .or_insert_with(|| key.clone());
            if *holder != key {
                report.fail(
                    line,
                    RowError::new("email", "is already used by another account"),
                );
                continue;
            }
            if let Some(number) = &row.number {
                let holder = numbers
                    .entry(number.to_lowercase())
                    .or_insert_with(|| key.clone());
                if *holder != key {
                    report.fail(
                        line,
                        RowError::new("number", "is already used by another account"),
                    );
                    continue;
                }
            }
            let existing = by_username.get(key.as_str()).map(|e| (e.id, e.role));
            rows.push((line, key, RosterItem { row, existing }));
        }
        Ok(rows)
    }

    fn admit(role: Role, item: &RosterItem) -> Result<(), RowError> {
        let current = item.existing.map(|(_, role)| role);
        if current == Some(Role::Admin) && item.row.role != Role::Admin {
            return Err(RowError::new(
                "role",
                "an admin's role is changed on the users page, not by a file",
            ));
        }
        let manageable = |role: Role| matches!(role, Role::Student | Role::Teacher);
        match role {
            Role::Admin => Ok(()),
            Role::Registrar if manageable(item.row.role) && current.is_none_or(manageable) => {
                Ok(())
            }
            Role::Registrar => Err(RowError::new(
                "role",
                "registrars manage students and teachers only",
            )),
            _ => Err(RowError::new(
                "role",
                "only admins and registrars import accounts",
            )),
        }
    }

    /// A chunk per statement; a chunk that meets an e-mail or number taken
    /// meanwhile is redone row by row, so only the clashing rows fail.
    async fn write(
        ctx: &JobContext,
        rows: Vec<(usize, RosterItem)>,
        report: &mut Report,
        total: usize,
    ) -> Result<(), Stop> {
        for chunk in rows.chunks(CHUNK) {
            let batch: Vec<RosterRow> = chunk.iter().map(|(_, item)| item.row.clone()).collect();
            let mut conn = ctx.conn().await?;
            match roster::upsert_many(&mut conn, &batch).await {
                Ok(_) => report.ok += chunk.len(),
                Err(AppError::Conflict { .. }) => {
                    for ((line, _), row) in chunk.iter().zip(&batch) {
                        match roster::upsert_many(&mut conn, std::slice::from_ref(row)).await {
                            Ok(_) => report.ok += 1,
                            Err(AppError::Conflict { fields, .. }) => {
                                let column = fields.names().next().unwrap_or("email").to_owned();
                                report.fail(
                                    *line,
                                    RowError::new(&column, "is already used by another account"),
                                );
                            }
                            Err(other) => return Err(other.into()),
                        }
                    }
                }
                Err(other) => return Err(other.into()),
            }
            drop(conn);
            for (_, item) in chunk {
                if let Some((id, before)) = item.existing
                    && before != item.row.role
                {
                    ctx.bus.publish(Event::RoleChanged { user_id: id });
                }
            }
            advance(ctx, report, total).await?;
        }
        Ok(())
    }
}
