//! The words of every mail, in each language classbell speaks: Fluent files
//! (`locales/<locale>.ftl`, compiled in), so a translator edits text, not
//! code, and plurals and placeholders follow each language's rules.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

use crate::locale::Locale;

/// One bundle per language; a file that does not parse stops nothing but
/// is reported (and tested below).
static BUNDLES: LazyLock<Vec<(Locale, FluentBundle<FluentResource>)>> = LazyLock::new(|| {
    Locale::ALL
        .iter()
        .map(|&locale| {
            let source = match locale {
                Locale::En => include_str!("locales/en.ftl"),
                Locale::ZhCn => include_str!("locales/zh-CN.ftl"),
            };
            let resource =
                FluentResource::try_new(source.to_owned()).unwrap_or_else(|(partial, errors)| {
                    tracing::error!(?errors, %locale, "a mail catalog does not parse");
                    partial
                });
            let tag = locale.as_str().parse().unwrap_or_default();
            let mut bundle = FluentBundle::new_concurrent(vec![tag]);
            // Plain text: no invisible isolation marks around values.
            bundle.set_use_isolating(false);
            if let Err(errors) = bundle.add_resource(resource) {
                tracing::error!(?errors, %locale, "a mail catalog repeats a message");
            }
            (locale, bundle)
        })
        .collect()
});

/// A message's text (or one of its attributes, such as `subject`) in
/// `locale`, with `args` filled in; English when the language lacks it.
pub fn text(locale: Locale, id: &str, attribute: Option<&str>, args: &FluentArgs) -> String {
    for candidate in [locale, Locale::En] {
        let Some((_, bundle)) = BUNDLES.iter().find(|(l, _)| *l == candidate) else {
            continue;
        };
        let Some(message) = bundle.get_message(id) else {
            continue;
        };
        let pattern = match attribute {
            Some(name) => message.get_attribute(name).map(|a| a.value()),
            None => message.value(),
        };
        if let Some(pattern) = pattern {
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, Some(args), &mut errors);
            if !errors.is_empty() {
                tracing::warn!(?errors, id, %candidate, "a mail message lacks an argument");
            }
            return text.into_owned();
        }
    }
    tracing::error!(id, "no mail catalog has this message");
    id.to_owned()
}

/// A moment as the school's clock shows it, written the way `locale` writes
/// dates, with the zone named.
pub fn local_time(locale: Locale, zone: Tz, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&zone);
    match locale {
        Locale::ZhCn => format!(
            "{}（{}）",
            local.format("%Y年%-m月%-d日 %H:%M"),
            zone.name()
        ),
        Locale::En => format!("{} ({})", local.format("%-d %B %Y, %H:%M"), zone.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_in_every_language_with_its_subject() {
        let ids = [
            "forgot-username",
            "password-reset",
            "invitation",
            "reminder",
            "due-summary",
        ];
        for (locale, bundle) in BUNDLES.iter() {
            for id in ids {
                let message = bundle
                    .get_message(id)
                    .unwrap_or_else(|| panic!("{locale} lacks {id}"));
                assert!(message.value().is_some(), "{locale} {id} has no text");
                assert!(
                    message.get_attribute("subject").is_some(),
                    "{locale} {id} has no subject"
                );
            }
        }
    }

    #[test]
    fn placeholders_and_plurals_follow_the_language() {
        let mut args = FluentArgs::new();
        args.set("name", "Ada");
        args.set("minutes", 1);
        args.set("link", "https://school.example/x");
        let english = text(Locale::En, "password-reset", None, &args);
        assert!(english.contains("within one minute"), "{english}");
        args.set("minutes", 30);
        assert!(text(Locale::En, "password-reset", None, &args).contains("within 30 minutes"));
        let chinese = text(Locale::ZhCn, "password-reset", None, &args);
        assert!(chinese.contains("30 分钟内"), "{chinese}");
        assert!(!chinese.contains('\u{2068}'), "no isolation marks");
        assert_eq!(
            text(Locale::ZhCn, "password-reset", Some("subject"), &args),
            "重置您的 classbell 密码"
        );
    }

    #[test]
    fn local_times_name_the_zone() {
        let at = "2026-12-03T00:00:00Z".parse().unwrap();
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        assert_eq!(
            local_time(Locale::ZhCn, zone, at),
            "2026年12月3日 08:00（Asia/Shanghai）"
        );
        assert_eq!(
            local_time(Locale::En, zone, at),
            "3 December 2026, 08:00 (Asia/Shanghai)"
        );
    }
}
