//! Typed ids: a section's id cannot be passed where a course's is expected.
//! Each is its row's key as stored (`BIGINT`, or a UUID for jobs), and
//! travels as that plain value in JSON, paths, queries and SQL. Enrollments
//! have none: a section and a student are their key.

use diesel_derive_newtype::DieselNewType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident($inner:ty);)+) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            DieselNewType, Serialize, Deserialize, ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = <$inner as std::str::FromStr>::Err;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }

        impl From<$inner> for $name {
            fn from(id: $inner) -> Self {
                $name(id)
            }
        }
    )+};
}

/// An id of a `BIGINT` key, which JSON carries as a number.
macro_rules! numeric_ids {
    ($($(#[$doc:meta])* $name:ident;)+) => {
        ids! { $($(#[$doc])* $name(i64);)+ }
        $(
            /// A JSON value is the id when it holds that number (as a client sees it).
            impl PartialEq<$name> for serde_json::Value {
                fn eq(&self, id: &$name) -> bool {
                    *self == id.0
                }
            }
        )+
    };
}

numeric_ids! {
    /// An account: a student, teacher, manager, registrar or admin.
    UserId;
    CourseId;
    SectionId;
    AnnouncementId;
    /// One recipient's copy of an announcement.
    DeliveryId;
    /// A course's file.
    AttachmentId;
}

ids! {
    /// A background job (the API calls it a task).
    JobId(Uuid);
}

impl JobId {
    /// A fresh, random id for a job about to be queued.
    pub fn new() -> Self {
        JobId(Uuid::new_v4())
    }
}
