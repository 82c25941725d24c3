//! The app's words come from its catalogs (`js/locales/<locale>.json`): every
//! key the scripts use is in every catalog, every code the server sends has
//! words there, and no visible text is written into the markup or scripts.

use serde_json::{Map, Value};

use super::Assets;
use crate::auth::password::{Owner, evaluate};
use crate::error::{CODES, Code};

const CATALOGS: &[&str] = &["js/locales/en.json", "js/locales/zh-CN.json"];

fn catalog(name: &str) -> Map<String, Value> {
    let file = Assets::get(name).unwrap_or_else(|| panic!("{name} is missing"));
    serde_json::from_slice(&file.data).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The app's scripts, by name, without their comments.
fn scripts() -> Vec<(String, String)> {
    Assets::iter()
        .filter(|name| name.ends_with(".js"))
        .map(|name| {
            let file = Assets::get(&name).unwrap();
            let text = String::from_utf8_lossy(&file.data).into_owned();
            (name.into_owned(), without_comments(&text))
        })
        .collect()
}

/// `text` without `// …` and `/* … */` comments (string literals kept whole,
/// so a `//` inside a URL stays).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' {
                    out.extend(chars.next());
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '/' && chars.peek() == Some(&'/') => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            None if c == '/' && chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for next in chars.by_ref() {
                    if last == '*' && next == '/' {
                        break;
                    }
                    last = next;
                }
            }
            None => {
                if matches!(c, '"' | '\'' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// Each string literal in `source` with the 24 characters before it; a
/// template literal's `${…}` parts are left out of its text. (Regular
/// expressions holding quotes would confuse it: the scripts build those with
/// `new RegExp`.)
fn literals(source: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let q = chars[i];
        if !matches!(q, '"' | '\'' | '`') {
            i += 1;
            continue;
        }
        let before: String = chars[i.saturating_sub(24)..i].iter().collect();
        let mut text = String::new();
        let mut j = i + 1;
        while j < chars.len() && chars[j] != q {
            if chars[j] == '\\' {
                j += 1;
            } else if q == '`' && chars[j] == '$' && chars.get(j + 1) == Some(&'{') {
                // Skip the expression, nested braces included.
                let mut depth = 0;
                while j < chars.len() {
                    match chars[j] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            } else {
                text.push(chars[j]);
            }
            j += 1;
        }
        found.push((text, before));
        i = j + 1;
    }
    found
}

/// Whether a literal reads as words for people: a capitalised word, two
/// words in a row, or a word set off by a space (`" credits"`).
fn reads_as_words(text: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2 && *w != "classbell")
        .collect();
    if words.is_empty() {
        return false;
    }
    let capitalised = words.iter().any(|w| {
        let mut cs = w.chars();
        cs.next().is_some_and(char::is_uppercase) && cs.any(char::is_lowercase)
    });
    let spaced = text.trim() != text || text.trim().contains(char::is_whitespace);
    !text.is_ascii() || capitalised || (spaced && !text.trim().is_empty())
}

/// Where a literal is not shown to people: CSS classes, developer errors,
/// the console, catalog keys, selectors, close reasons.
fn shown(before: &str) -> bool {
    let quiet = [
        "class: ",
        "className = ",
        "new Error(",
        "console.error(",
        "console.warn(",
        "querySelector(",
        // A websocket's close reason is for the server's log.
        ".close(1000, ",
        "t(",
        "tOr(",
        "has(",
    ];
    !quiet.iter().any(|context| before.ends_with(context))
}

/// Every key the app's scripts ask the catalogs for (`t("key")`) is in
/// every catalog, and the catalogs hold the same keys: no language falls
/// back to another's words unnoticed.
#[test]
fn every_catalog_has_every_key_the_app_uses() {
    let english = catalog(CATALOGS[0]);
    let mut english_keys: Vec<&String> = english.keys().collect();
    english_keys.sort();
    for name in &CATALOGS[1..] {
        let other = catalog(name);
        let mut keys: Vec<&String> = other.keys().collect();
        keys.sort();
        assert_eq!(english_keys, keys, "{name} holds the keys en.json does");
    }
    let mut used = 0;
    for (name, text) in scripts() {
        // `t(` as a call of its own, not the end of a longer name.
        let calls = text.match_indices("t(").filter(|(at, _)| {
            !text[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.'))
        });
        for (at, _) in calls {
            let rest = &text[at + 2..];
            if let Some(quoted) = rest.strip_prefix('"') {
                let key = quoted.split('"').next().unwrap_or_default();
                used += 1;
                assert!(
                    english.contains_key(key),
                    "{name} asks for `{key}`, which en.json lacks"
                );
            } else if let Some(built) = rest.strip_prefix('`') {
                // Keys built at run time name their prefix: it must exist.
                let prefix = built.split("${").next().unwrap_or_default();
                assert!(
                    english.keys().any(|key| key.starts_with(prefix)),
                    "{name} builds keys starting `{prefix}`, and no key does"
                );
            }
        }
    }
    assert!(
        used > 100,
        "the app's scripts use the catalogs ({used} calls)"
    );
}

/// The app says every error the server can send in the reader's language:
/// each error code, each field-reason code and each password rule has
/// words in every catalog.
#[test]
fn every_code_the_server_sends_has_words_in_every_catalog() {
    let rules: Vec<&str> = evaluate("", Owner::default())
        .iter()
        .map(|rule| rule.id)
        .collect();
    let keys = CODES
        .iter()
        .map(|code| format!("error.{code}"))
        .chain(
            Code::ALL
                .iter()
                .map(|code| format!("error.field.{}", code.as_str())),
        )
        .chain(rules.iter().map(|id| format!("password.rule.{id}")));
    for key in keys {
        for name in CATALOGS {
            assert!(catalog(name).contains_key(&key), "{name} lacks `{key}`");
        }
    }
}

/// Visible words live in the catalogs only: the page's markup holds no text
/// but the brand, and no script writes words people read as a literal.
#[test]
fn no_words_bypass_the_catalogs() {
    let page = Assets::get("index.html").unwrap();
    let page = String::from_utf8_lossy(&page.data);
    let body = &page[page.find("<body>").expect("a body")..];
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words, ["classbell", "0"], "index.html's visible text");
    for attribute in ["aria-label=", "title=", "alt=", "placeholder="] {
        assert!(!body.contains(attribute), "index.html sets {attribute}");
    }

    let mut bypassing = Vec::new();
    for (name, source) in scripts() {
        for (text, before) in literals(&source) {
            if reads_as_words(&text) && shown(&before) && text != "Bearer " {
                bypassing.push(format!("{name}: {text:?}"));
            }
        }
    }
    assert!(
        bypassing.is_empty(),
        "words written into the scripts instead of the catalogs:\n{}",
        bypassing.join("\n")
    );
}

#[test]
fn the_word_check_tells_words_from_code() {
    assert!(reads_as_words("Not found"));
    assert!(reads_as_words(" credits"));
    assert!(reads_as_words("not accepted yet"));
    assert!(reads_as_words("未找到"));
    for code in [
        "button",
        "/api/courses",
        "GET",
        "aria-label",
        "2026-fall",
        " · ",
    ] {
        assert!(!reads_as_words(code), "{code}");
    }
    let found = literals(r#"h("p", {}, `${n} credits`), t("a.b")"#);
    assert_eq!(found[0].0, "p");
    assert_eq!(found[1].0, " credits");
    assert!(!shown(&found[2].1));
}
