//! Which content type a stored file is served with. The type an upload
//! claims is the uploader's word; a browser given `text/html` or
//! `image/svg+xml` from this origin would run it. So only types a school's
//! files have, and that browsers show without running anything, are kept;
//! every other file is served as `application/octet-stream` (downloaded,
//! never displayed).

/// The types served as themselves.
const ALLOWED: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "audio/mpeg",
    "audio/ogg",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/csv",
    "text/plain",
    "video/mp4",
    "video/webm",
];

/// What everything else is served as.
pub const OPAQUE: &str = "application/octet-stream";

/// The type to store and serve for a file that claimed `claimed`: the
/// claim without parameters, if it is one of the allowed types; otherwise
/// [`OPAQUE`].
pub fn served_type(claimed: &str) -> &'static str {
    let essence = claimed.split(';').next().unwrap_or_default().trim();
    ALLOWED
        .iter()
        .find(|allowed| allowed.eq_ignore_ascii_case(essence))
        .copied()
        .unwrap_or(OPAQUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_types_are_served_as_themselves() {
        assert_eq!(served_type("application/pdf"), "application/pdf");
        assert_eq!(served_type("Image/PNG; charset=binary"), "image/png");
        assert_eq!(served_type("text/plain;charset=utf-8"), "text/plain");
        for risky in [
            "text/html",
            "image/svg+xml",
            "application/javascript",
            "text/xml",
            "",
            "pdf",
        ] {
            assert_eq!(served_type(risky), OPAQUE, "{risky}");
        }
    }
}
