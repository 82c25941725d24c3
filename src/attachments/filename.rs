//! Client-supplied filenames, made safe to store and to send back in a
//! `Content-Disposition` header. They name nothing on disk: object keys are
//! generated.

const MAX_CHARS: usize = 200;

/// The last path segment, without control characters, characters that
/// Windows forbids, or leading dots; `attachment` when nothing is left.
pub fn sanitize(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| {
            if matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let name: String = trimmed.chars().take(MAX_CHARS).collect();
    if name.is_empty() {
        "attachment".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn path_traversal_keeps_only_the_last_segment() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("..\\..\\Windows\\system32\\cmd.exe"), "cmd.exe");
        assert_eq!(sanitize("/absolute/notes.pdf"), "notes.pdf");
        assert_eq!(sanitize(".."), "attachment");
        assert_eq!(sanitize("dir/"), "attachment");
    }

    #[test]
    fn control_and_reserved_characters_go() {
        assert_eq!(sanitize("re\u{0}port\r\n.txt"), "report.txt");
        assert_eq!(sanitize("a\"b<c>.txt"), "a_b_c_.txt");
        assert_eq!(sanitize("  .hidden  "), "hidden");
        assert_eq!(sanitize("syllabus – week 1.pdf"), "syllabus – week 1.pdf");
        assert_eq!(sanitize(&"x".repeat(500)).chars().count(), 200);
    }
}
