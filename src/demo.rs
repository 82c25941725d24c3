//! `classbell demo`: a small school to try classbell with. Safe to run again:
//! accounts that exist are left as they are.

use crate::db::DbPool;
use crate::error::AppError;
use crate::users::model::Role;
use crate::users::{accounts, store};

/// Every demo account signs in with this password.
pub const DEMO_PASSWORD: &str = "Bell-Demo-2026!";

pub struct DemoAccount {
    pub username: String,
    pub email: String,
    pub role: Role,
    /// False when it already existed.
    pub created: bool,
}

fn roster() -> Vec<(String, Role)> {
    let mut people = vec![
        ("admin".to_owned(), Role::Admin),
        ("ms.rivera".to_owned(), Role::Teacher),
        ("mr.okafor".to_owned(), Role::Teacher),
        ("manager".to_owned(), Role::Manager),
        ("registrar".to_owned(), Role::Registrar),
    ];
    people.extend((1..=20).map(|n| (format!("student{n:02}"), Role::Student)));
    people
}

pub async fn seed(db: &DbPool) -> Result<Vec<DemoAccount>, AppError> {
    let mut seeded = Vec::new();
    for (username, role) in roster() {
        let email = format!("{username}@demo.classbell.school");
        let exists = store::exists_by_username(&mut *db.get().await?, &username).await?;
        if !exists {
            accounts::create(db, &username, &email, DEMO_PASSWORD, role).await?;
        }
        seeded.push(DemoAccount {
            username,
            email,
            role,
            created: !exists,
        });
    }
    Ok(seeded)
}
