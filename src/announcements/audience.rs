//! Who an announcement reaches, and the SQL that lists them.

use crate::ids::{CourseId, SectionId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"kind": "all_students"}`, `{"kind": "course", "course_id": n}` (every
/// student enrolled in a current, not archived, section of the course) or
/// `{"kind": "section", "section_id": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Audience {
    AllStudents,
    Course { course_id: CourseId },
    Section { section_id: SectionId },
}

impl Audience {
    pub fn kind(self) -> &'static str {
        match self {
            Audience::AllStudents => "all_students",
            Audience::Course { .. } => "course",
            Audience::Section { .. } => "section",
        }
    }

    /// The `audience_id` column: the course's or the section's id.
    pub fn id(self) -> Option<i64> {
        match self {
            Audience::AllStudents => None,
            Audience::Course { course_id } => Some(course_id.0),
            Audience::Section { section_id } => Some(section_id.0),
        }
    }

    /// Back from the `audience_kind`/`audience_id` columns (a CHECK keeps them consistent).
    pub fn from_columns(kind: &str, id: Option<i64>) -> Self {
        match (kind, id) {
            ("course", Some(id)) => Audience::Course {
                course_id: CourseId(id),
            },
            ("section", Some(id)) => Audience::Section {
                section_id: SectionId(id),
            },
            _ => Audience::AllStudents,
        }
    }

    /// The same rule the other way round, for every announcement at once:
    /// SQL that is true when the announcement joined as `a` reaches the user
    /// joined as `u` (an active student, checked by the caller). Used when a
    /// student joins an audience after its announcements went out.
    pub const INCLUDES_SQL: &'static str = "(a.audience_kind = 'all_students'
          OR (a.audience_kind = 'section' AND EXISTS (SELECT 1 FROM enrollments e
              WHERE e.student_id = u.id AND e.section_id = a.audience_id))
          OR (a.audience_kind = 'course' AND EXISTS (SELECT 1 FROM enrollments e
              JOIN sections s ON s.id = e.section_id
              WHERE e.student_id = u.id AND s.course_id = a.audience_id AND s.status <> 'archived')))";

    /// A query of the recipients' user ids (`SELECT u.id FROM users u …`):
    /// active students, and for a course or section those enrolled in it.
    /// The id is a typed integer, so formatting it into SQL is safe.
    pub fn recipients_sql(self) -> String {
        let students = "SELECT u.id FROM users u WHERE u.role = 'student' AND u.is_active";
        match self {
            Audience::AllStudents => students.to_owned(),
            Audience::Course { course_id } => format!(
                "{students} AND EXISTS (SELECT 1 FROM enrollments e JOIN sections s ON s.id = e.section_id \
                 WHERE e.student_id = u.id AND s.course_id = {course_id} AND s.status <> 'archived')"
            ),
            Audience::Section { section_id } => format!(
                "{students} AND EXISTS (SELECT 1 FROM enrollments e \
                 WHERE e.student_id = u.id AND e.section_id = {section_id})"
            ),
        }
    }
}
