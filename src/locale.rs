//! The languages classbell speaks, and how a request's language is chosen
//! when its user has not said.

crate::text_enum! {
    /// A language classbell speaks.
    pub enum Locale {
        #[serde(rename = "en")]
        En => "en",
        /// Simplified Chinese.
        #[serde(rename = "zh-CN")]
        ZhCn => "zh-CN",
    }
}

impl Locale {
    /// The language an `Accept-Language` header prefers most among those
    /// classbell speaks: any Chinese tag means Simplified Chinese, any
    /// English one English; `None` when it names neither.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut wanted: Vec<(f32, Locale)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.trim().split(';');
                let tag = pieces.next()?.trim().to_ascii_lowercase();
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q=")?.parse::<f32>().ok())
                    .unwrap_or(1.0);
                let locale = match tag.split('-').next()? {
                    "zh" => Locale::ZhCn,
                    "en" => Locale::En,
                    _ => return None,
                };
                (quality > 0.0).then_some((quality, locale))
            })
            .collect();
        // Stable: of equal weight, the one named first wins.
        wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
        wanted.first().map(|(_, locale)| *locale)
    }
}

/// The language a request's `Accept-Language` prefers, if classbell speaks
/// it: for people who have not chosen one (`None` when it names none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskedLocale(pub Option<Locale>);

impl actix_web::FromRequest for AskedLocale {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let asked = req
            .headers()
            .get(actix_web::http::header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .and_then(Locale::from_accept_language);
        std::future::ready(Ok(AskedLocale(asked)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_wanted_language_spoken_here_wins() {
        assert_eq!(
            Locale::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Some(Locale::ZhCn)
        );
        assert_eq!(
            Locale::from_accept_language("fr-FR, en-GB;q=0.7, zh;q=0.5"),
            Some(Locale::En)
        );
        assert_eq!(
            Locale::from_accept_language("zh-Hans-CN"),
            Some(Locale::ZhCn)
        );
        assert_eq!(Locale::from_accept_language("de, fr"), None);
        assert_eq!(
            Locale::from_accept_language("en;q=0, zh"),
            Some(Locale::ZhCn)
        );
        assert_eq!("zh-CN".parse::<Locale>(), Ok(Locale::ZhCn));
        assert_eq!(serde_json::to_string(&Locale::ZhCn).unwrap(), "\"zh-CN\"");
    }
}
