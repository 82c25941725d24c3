//! Client-supplied filenames, made safe to store and to send back in a
//! `Content-Disposition` header. They name nothing on disk: object keys are
//! generated.

const MAX_CHARS: usize = 200;

/// Characters that reorder the text around them: a name like
/// `invoice<U+202E>fdp.exe` shows as `invoiceexe.pdf`.
fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The last path segment, without control or text-reordering characters,
/// characters that Windows forbids, or leading dots; `attachment` when
/// nothing is left.
pub fn sanitize(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !reorders_text(*c))
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

/// The name for `filename=`, which old clients read: ASCII only, the rest
/// as `_`. Clients that know RFC 6266 read the exact name from `filename*`.
pub fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{ascii_fallback, sanitize};

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

    #[test]
    fn text_reordering_characters_go() {
        assert_eq!(sanitize("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(sanitize("a\u{2066}b\u{2069}\u{200F}.txt"), "ab.txt");
    }

    #[test]
    fn headers_carry_an_ascii_name_and_the_exact_one() {
        assert_eq!(ascii_fallback("Übung – 1.pdf"), "_bung _ 1.pdf");
        assert_eq!(ascii_fallback("notes.pdf"), "notes.pdf");
    }
}
