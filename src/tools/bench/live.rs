//! `classbell bench fanout --live N`: the school-wide fan-out published
//! through a real `classbell serve` node while N students hold websockets
//! open on it and keep receiving other announcements (see [`LiveLoad`]):
//! how long the fan-out takes there, what it costs the node in memory, and
//! what the live sessions' publish → receipt p99 is meanwhile.

use std::time::Duration;

use diesel::sql_types::{BigInt, Double};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::cluster::{self, Helper, Server, announce, percentile, sign_in_first};
use super::load::{self, now_ms};
use super::{BenchResult, fail};
use classbell::config::Settings;
use classbell::ids::UserId;

/// What the live sessions hear while the fan-out runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LiveLoad {
    /// An announcement every 250 ms to one section (500 students) of the
    /// live course in turn: each of 10,000 sessions hears one every five
    /// seconds, 2,000 deliveries a second; a busy school's traffic.
    Sections,
    /// An announcement every 500 ms to the whole live course: at 10,000
    /// sessions, 20,000 more deliveries written and pushed a second beside
    /// the fan-out's own, which is what the fan-out then shares the box with.
    Course,
}

impl LiveLoad {
    /// What the live sessions hear, in the report.
    pub fn heard(self) -> String {
        let what = match self {
            LiveLoad::Sections => "sections",
            LiveLoad::Course => "course",
        };
        format!("{what} (one every {} ms)", self.every().as_millis())
    }

    /// How often the live sessions hear an announcement.
    fn every(self) -> Duration {
        match self {
            LiveLoad::Sections => Duration::from_millis(250),
            LiveLoad::Course => Duration::from_millis(500),
        }
    }
}

/// A node with `live` students connected, ready for fan-out rounds.
pub struct Live {
    server: Server,
    clients: Vec<Helper>,
    http: awc::Client,
    admin_token: String,
    course: i64,
    /// The live course's sections, in order, with how many students each holds.
    sections: Vec<(i64, usize)>,
    live: usize,
    load: LiveLoad,
}

/// What one round through the node measured.
pub struct Round {
    /// The school-wide announcement.
    pub announcement: i64,
    /// Publish → the last delivery written (the announcement's own times).
    pub seconds: f64,
    /// The node's resident memory at its highest during the round, less
    /// before it.
    pub rss_growth_mib: f64,
    /// Publish → receipt of the live course's announcements, in ms, sorted.
    pub live_ms: Vec<f64>,
    /// Live clients that missed one of those announcements.
    pub live_missing: usize,
}

impl Live {
    /// Puts the first `live` students in a course of their own, signs them in
    /// and opens their websockets on a node of the benchmark's own.
    pub async fn start(
        conn: &mut AsyncPgConnection,
        settings: &Settings,
        database_url: &str,
        admin: UserId,
        live: usize,
        load: LiveLoad,
    ) -> BenchResult<Live> {
        let (course, sections) = seed_live_course(conn, admin, live).await?;
        let signed_in = sign_in_first(conn, settings, admin, live).await?;
        let prefix = format!("classbell-bench:{}:", Uuid::new_v4().simple());
        let server = Server::start(settings, database_url, &prefix)?;
        let http = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        server.wait_ready(&http).await?;
        println!(
            "opening {live} websockets from {} load-client process(es) …",
            live.div_ceil(load::CLIENT_SOCKETS)
        );
        let (clients, opened) = cluster::start_clients(
            std::slice::from_ref(&server.base),
            &signed_in.students,
            false,
        )
        .await?;
        if opened.connected < live {
            return Err(format!(
                "{} of {live} websockets opened; the first failure: {}",
                opened.connected,
                opened.first_error.unwrap_or_default()
            ));
        }
        println!("  {live} open in {:.1} s", opened.seconds);
        Ok(Live {
            server,
            clients,
            http,
            admin_token: signed_in.admin_token,
            course,
            sections,
            live,
            load,
        })
    }

    /// Publishes to every student through the node and, until the fan-out
    /// has written its last delivery, to the live sessions as `load` says.
    pub async fn round(&mut self, conn: &mut AsyncPgConnection) -> BenchResult<Round> {
        let rss_before = self.server.rss_kib()?;
        let mut rss_peak = rss_before;
        let everyone = serde_json::json!({"kind": "all_students"});
        let announcement = announce(&self.http, &self.server, &self.admin_token, everyone).await?;
        // (announcement id, publish time, recipients)
        let mut published = Vec::new();
        let seconds = loop {
            if let Some(seconds) = finished(conn, announcement).await? {
                break seconds;
            }
            let (audience, recipients) = self.next_audience(published.len());
            let at = now_ms();
            let id = announce(&self.http, &self.server, &self.admin_token, audience).await?;
            published.push((id, at, recipients));
            rss_peak = rss_peak.max(self.server.rss_kib()?);
            actix_web::rt::time::sleep(self.load.every()).await;
        };
        // The last of them reaches its clients after the fan-out ends.
        let deadline = now_ms() + 30_000.0;
        if let Some(&(last, _, recipients)) = published.last() {
            while cluster::heard(&mut self.clients, last).await? < recipients && now_ms() < deadline
            {
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let (mut live_ms, mut live_missing) = (Vec::new(), 0);
        for (id, at, recipients) in published {
            let report = cluster::report(&mut self.clients, id).await?;
            let heard: Vec<f64> = report.first_ms.iter().flatten().map(|t| t - at).collect();
            live_missing += recipients.saturating_sub(heard.len());
            live_ms.extend(heard);
        }
        live_ms.sort_by(f64::total_cmp);
        Ok(Round {
            announcement,
            seconds,
            rss_growth_mib: (rss_peak - rss_before) / 1024.0,
            live_ms,
            live_missing,
        })
    }

    /// The `n`-th live announcement's audience and how many it reaches.
    fn next_audience(&self, n: usize) -> (serde_json::Value, usize) {
        match self.load {
            LiveLoad::Course => (
                serde_json::json!({"kind": "course", "course_id": self.course}),
                self.live,
            ),
            LiveLoad::Sections => {
                let (section, students) = self.sections[n % self.sections.len()];
                (
                    serde_json::json!({"kind": "section", "section_id": section}),
                    students,
                )
            }
        }
    }

    pub async fn stop(self) {
        for client in self.clients {
            client.quit().await;
        }
        self.server.kill();
    }
}

impl Round {
    pub fn live_p99_ms(&self) -> f64 {
        percentile(&self.live_ms, 0.99)
    }
}

/// Seconds from publishing `announcement` to its last delivery, once its
/// fan-out has finished.
async fn finished(conn: &mut AsyncPgConnection, announcement: i64) -> BenchResult<Option<f64>> {
    #[derive(diesel::QueryableByName)]
    struct Took {
        #[diesel(sql_type = diesel::sql_types::Nullable<Double>)]
        seconds: Option<f64>,
    }
    let took: Took = diesel::sql_query(
        "SELECT extract(epoch FROM fanout_finished_at - published_at)::float8 AS seconds
         FROM announcements WHERE id = $1",
    )
    .bind::<BigInt, _>(announcement)
    .get_result(conn)
    .await
    .map_err(fail)?;
    Ok(took.seconds)
}

/// Students in each of the live course's sections: the section-sized
/// publish of `bench push`.
const SECTION_SIZE: usize = 500;

/// A course whose published sections hold the first `live` students,
/// `SECTION_SIZE` each; returns it and its sections with their sizes.
async fn seed_live_course(
    conn: &mut AsyncPgConnection,
    teacher: UserId,
    live: usize,
) -> BenchResult<(i64, Vec<(i64, usize)>)> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let course: Id = diesel::sql_query(
        "INSERT INTO courses (code, title) VALUES ('LIVE-101', 'Live sessions') RETURNING id",
    )
    .get_result(conn)
    .await
    .map_err(fail)?;
    let sections = live.div_ceil(SECTION_SIZE);
    diesel::sql_query(
        "INSERT INTO sections (course_id, section_code, term, teacher_id, capacity, status)
         SELECT $1, 'L' || g, 'bench', $2, $3, 'published' FROM generate_series(1, $4) g",
    )
    .bind::<BigInt, _>(course.id)
    .bind::<BigInt, _>(teacher)
    .bind::<diesel::sql_types::Integer, _>(SECTION_SIZE as i32)
    .bind::<BigInt, _>(sections as i64)
    .execute(conn)
    .await
    .map_err(fail)?;
    // The n-th live student goes to the section n / capacity.
    diesel::sql_query(
        "INSERT INTO enrollments (section_id, student_id)
         SELECT s.id, l.id
         FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / $3 AS k
               FROM users WHERE role = 'student' ORDER BY id LIMIT $2) l
         JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k
               FROM sections WHERE course_id = $1) s ON s.k = l.k",
    )
    .bind::<BigInt, _>(course.id)
    .bind::<BigInt, _>(live as i64)
    .bind::<BigInt, _>(SECTION_SIZE as i64)
    .execute(conn)
    .await
    .map_err(fail)?;
    // Each section with the students it now holds, as enrolled above.
    #[derive(diesel::QueryableByName)]
    struct Held {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = BigInt)]
        students: i64,
    }
    let held: Vec<Held> = diesel::sql_query(
        "SELECT s.id, count(e.student_id) AS students
         FROM sections s LEFT JOIN enrollments e ON e.section_id = s.id
         WHERE s.course_id = $1 GROUP BY s.id ORDER BY s.id",
    )
    .bind::<BigInt, _>(course.id)
    .load(conn)
    .await
    .map_err(fail)?;
    let sized = held
        .into_iter()
        .map(|h| (h.id, usize::try_from(h.students).unwrap_or(0)))
        .collect();
    Ok((course.id, sized))
}
