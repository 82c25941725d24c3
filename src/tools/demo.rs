//! `classbell demo`: a small school to try classbell with. Safe to run again:
//! accounts that exist are left as they are.

use classbell::announcements::audience::Audience;
use classbell::announcements::fanout::{self, FanoutSettings};
use classbell::announcements::model::{AnnouncementStatus, NewAnnouncement};
use classbell::announcements::store as announcement_store;
use classbell::auth::hashing::Hasher;
use classbell::courses::credits::Credits;
use classbell::courses::model::NewCourse;
use classbell::courses::store as courses;
use classbell::db::DbPool;
use classbell::deliveries::store as delivery_store;
use classbell::error::AppError;
use classbell::ids::{CourseId, SectionId};
use classbell::pagination::Page;
use classbell::sections::enrollments;
use classbell::sections::model::{NewSection, SectionStatus};
use classbell::sections::store as sections;
use classbell::users::model::Role;
use classbell::users::{accounts, store};

/// Every demo account signs in with this password.
pub const DEMO_PASSWORD: &str = "Bell-Demo-2026!";

pub struct DemoAccount {
    pub username: String,
    pub email: String,
    pub role: Role,
    /// False when it already existed.
    pub created: bool,
}

/// The demo school's people: username, name, role. The students carry the
/// names of a school that works in Chinese.
fn roster() -> Vec<(String, String, Role)> {
    const STUDENTS: [&str; 20] = [
        "张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴敏", "徐强",
        "孙悦", "马超", "朱婷", "胡军", "郭敏", "何琳", "高翔", "林晨", "罗欣",
    ];
    let mut people: Vec<(String, String, Role)> = [
        ("admin", "School admin", Role::Admin),
        ("ms.rivera", "Ms Rivera", Role::Teacher),
        ("mr.okafor", "Mr Okafor", Role::Teacher),
        ("manager", "School manager", Role::Manager),
        ("registrar", "Registrar", Role::Registrar),
    ]
    .into_iter()
    .map(|(username, name, role)| (username.to_owned(), name.to_owned(), role))
    .collect();
    people.extend(STUDENTS.iter().enumerate().map(|(i, name)| {
        (
            format!("student{:02}", i + 1),
            (*name).to_owned(),
            Role::Student,
        )
    }));
    people
}

/// A course of the demo catalogue, its teacher and which students take it.
struct DemoCourse {
    code: &'static str,
    title: &'static str,
    credits: f64,
    teacher: &'static str,
    /// By student number; every student is in two or three sections.
    takes: fn(u32) -> bool,
}

const CATALOGUE: &[DemoCourse] = &[
    DemoCourse {
        code: "MATH-101",
        title: "Algebra I",
        credits: 4.0,
        teacher: "ms.rivera",
        takes: |n| n <= 10,
    },
    DemoCourse {
        code: "BIO-110",
        title: "Biology",
        credits: 3.5,
        teacher: "mr.okafor",
        takes: |n| n > 10,
    },
    DemoCourse {
        code: "HIST-120",
        title: "World History",
        credits: 3.0,
        teacher: "ms.rivera",
        takes: |n| n % 2 == 1,
    },
    DemoCourse {
        code: "ART-105",
        title: "Drawing",
        credits: 2.0,
        teacher: "mr.okafor",
        takes: |n| n % 2 == 0,
    },
    // The school works in Chinese: its own subjects beside the others.
    DemoCourse {
        code: "CHN-101",
        title: "语文",
        credits: 4.0,
        teacher: "ms.rivera",
        takes: |n| n <= 10,
    },
];

pub const DEMO_TERM: &str = "2026-fall";
pub const CATALOGUE_SIZE: usize = CATALOGUE.len();

/// The demo school: its accounts, and what this run added.
pub struct DemoSchool {
    pub accounts: Vec<DemoAccount>,
    pub courses_created: usize,
    pub announcements_created: usize,
}

pub async fn seed(db: &DbPool, hasher: &Hasher) -> Result<DemoSchool, AppError> {
    let accounts = seed_accounts(db, hasher).await?;
    let courses_created = seed_catalogue(db).await?;
    let announcements_created = seed_announcements(db).await?;
    Ok(DemoSchool {
        accounts,
        courses_created,
        announcements_created,
    })
}

/// A few published announcements, fanned out, some acknowledged; once.
async fn seed_announcements(db: &DbPool) -> Result<usize, AppError> {
    let mut conn = db.get().await?;
    let (_, existing) = announcement_store::list(
        &mut conn,
        None,
        None,
        Page {
            limit: 1,
            offset: 0,
        },
    )
    .await?;
    if existing > 0 {
        return Ok(0);
    }
    let section_of = async |conn: &mut diesel_async::AsyncPgConnection,
                            code: &str|
           -> Result<(CourseId, SectionId), AppError> {
        let course = courses::find_by_code(conn, code)
            .await?
            .ok_or(AppError::NotFound("demo course"))?;
        let filter = sections::SectionFilter {
            course: Some(course.id),
            ..Default::default()
        };
        let (found, _) = sections::list(
            conn,
            &filter,
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .await?;
        let section = found
            .into_iter()
            .next()
            .ok_or(AppError::NotFound("demo section"))?;
        Ok((course.id, section.section.id))
    };
    let (_, math_section) = section_of(&mut conn, "MATH-101").await?;
    let (biology, _) = section_of(&mut conn, "BIO-110").await?;
    let (chinese, _) = section_of(&mut conn, "CHN-101").await?;
    let plan = [
        (
            "admin",
            "Welcome back!",
            "Classes start Monday at 8:15. Check your timetable in the portal.",
            Audience::AllStudents,
            1..=12,
        ),
        (
            "ms.rivera",
            "Quiz on Friday",
            "Chapters 1–3. Calculators allowed.",
            Audience::Section {
                section_id: math_section,
            },
            1..=4,
        ),
        (
            "mr.okafor",
            "Lab safety briefing",
            "Closed shoes and goggles for Thursday's lab.",
            Audience::Course { course_id: biology },
            11..=13,
        ),
        (
            "admin",
            "运动会通知",
            "本周五上午九点在操场举行秋季运动会，请穿运动鞋并自带水杯。",
            Audience::AllStudents,
            1..=5,
        ),
        (
            "ms.rivera",
            "语文作业",
            "请完成第一课的课后练习，周三交。",
            Audience::Course { course_id: chinese },
            2..=3,
        ),
    ];
    let bus = classbell::events::EventBus::new();
    for (publisher, title, body, audience, acknowledging) in plan {
        let publisher = store::find_by_login(&mut conn, publisher)
            .await?
            .ok_or(AppError::NotFound("demo publisher"))?;
        let announcement = announcement_store::insert(
            &mut conn,
            NewAnnouncement {
                title: title.to_owned(),
                body: body.to_owned(),
                audience_kind: audience.kind(),
                audience_id: audience.id(),
                publisher_id: publisher.id,
                status: AnnouncementStatus::Published,
                publish_at: None,
                published_at: Some(chrono::Utc::now()),
                ack_due_at: None,
                expires_at: None,
                escalation: None,
            },
        )
        .await?;
        fanout::run_now(db, &bus, announcement.id, FanoutSettings::default()).await?;
        let mut readers = Vec::new();
        for n in acknowledging {
            if let Some(student) =
                store::find_by_login(&mut conn, &format!("student{n:02}")).await?
            {
                readers.push(student.id);
            }
        }
        delivery_store::acknowledge_now(&mut conn, announcement.id, &readers).await?;
    }
    Ok(3)
}

/// Adds each missing course with one published section and its students.
async fn seed_catalogue(db: &DbPool) -> Result<usize, AppError> {
    let mut conn = db.get().await?;
    let mut created = 0;
    for DemoCourse {
        code,
        title,
        credits,
        teacher,
        takes,
    } in CATALOGUE
    {
        if courses::find_by_code(&mut conn, code).await?.is_some() {
            continue;
        }
        let course = courses::insert(
            &mut conn,
            NewCourse {
                code: (*code).to_owned(),
                title: (*title).to_owned(),
                description: format!("{title}, taught at the demo school."),
                credits: Credits::parse(*credits).unwrap_or(Credits::DEFAULT),
            },
        )
        .await?;
        let teacher = store::find_by_login(&mut conn, teacher)
            .await?
            .ok_or(AppError::NotFound("demo teacher"))?;
        let section = sections::insert(
            &mut conn,
            NewSection {
                course_id: course.id,
                section_code: "A".to_owned(),
                term: DEMO_TERM.to_owned(),
                teacher_id: teacher.id,
                capacity: 30,
                status: SectionStatus::Published,
            },
        )
        .await?;
        for n in (1..=20).filter(|n| takes(*n)) {
            if let Some(student) =
                store::find_by_login(&mut conn, &format!("student{n:02}")).await?
            {
                // Before any announcement: nothing reaches anyone yet.
                enrollments::enroll(&mut conn, section.id, student.id).await?;
            }
        }
        created += 1;
    }
    Ok(created)
}

async fn seed_accounts(db: &DbPool, hasher: &Hasher) -> Result<Vec<DemoAccount>, AppError> {
    let mut seeded = Vec::new();
    for (username, name, role) in roster() {
        let email = format!("{username}@demo.classbell.school");
        let exists = store::exists_by_username(&mut *db.get().await?, &username).await?;
        if !exists {
            let account = accounts::NewAccount {
                display_name: Some(&name),
                ..accounts::NewAccount::named(&username, &email, role)
            };
            accounts::create(db, hasher, &account, Some(DEMO_PASSWORD)).await?;
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
