//! Configuration: every setting is a `CLASSBELL_*` environment variable (or the
//! matching `--flag`), with defaults that run on one machine with nothing set.
//! Every subcommand reads the same settings.
//!
//! This module only parses: it holds plain groups, one per concern, and knows
//! nothing of the domains. Each domain turns its group into what it needs
//! (`realtime::sessions::SessionSettings::from(&settings.realtime)`, …), and
//! `startup` hands each group to the part that owns it.

mod accounts;
mod school;
mod server;
mod stores;
mod work;

use clap::Args;

pub use accounts::{Auth, DEFAULT_JWT_SECRET, Mail, Registration};
pub use school::School;
pub use server::{Environment, LogFormat, Server, Telemetry};
pub use stores::{Database, Redis, Storage, StorageBackend};
pub use work::{Announcements, Deliveries, Fanout, Jobs, Realtime};

/// Every setting, grouped by the concern that reads it.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub server: Server,
    #[command(flatten)]
    pub school: School,
    #[command(flatten)]
    pub database: Database,
    #[command(flatten)]
    pub redis: Redis,
    #[command(flatten)]
    pub auth: Auth,
    #[command(flatten)]
    pub mail: Mail,
    #[command(flatten)]
    pub storage: Storage,
    #[command(flatten)]
    pub announcements: Announcements,
    #[command(flatten)]
    pub fanout: Fanout,
    #[command(flatten)]
    pub deliveries: Deliveries,
    #[command(flatten)]
    pub jobs: Jobs,
    #[command(flatten)]
    pub realtime: Realtime,
    #[command(flatten)]
    pub telemetry: Telemetry,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "CLASSBELL_JWT_SECRET must be set to a secret of at least 32 bytes when CLASSBELL_ENV=production"
    )]
    InsecureJwtSecret,
    #[error("CLASSBELL_PUBLIC_URL must start with http:// or https://")]
    PublicUrl,
    #[error(
        "CLASSBELL_TRUST_FORWARDED_FOR is gone: list the proxies whose X-Forwarded-For to believe in CLASSBELL_TRUSTED_PROXIES (addresses or CIDRs) instead"
    )]
    TrustForwardedFor,
    #[error("CLASSBELL_TRUSTED_PROXIES: `{0}` is not an address or a CIDR")]
    TrustedProxy(String),
    #[error("CLASSBELL_TIMEZONE: `{0}` is not an IANA time zone (e.g. Asia/Shanghai, UTC)")]
    TimeZone(String),
}

impl Settings {
    /// Refuses settings that are unsafe for the chosen environment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let public_url = &self.server.public_url;
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::PublicUrl);
        }
        if self.auth.trust_forwarded_for.is_some() {
            return Err(ConfigError::TrustForwardedFor);
        }
        self.auth
            .trusted_proxies()
            .map_err(ConfigError::TrustedProxy)?;
        if self.school.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::TimeZone(self.school.timezone.clone()));
        }
        let secret = &self.auth.jwt_secret;
        if self.server.env == Environment::Production
            && (secret == DEFAULT_JWT_SECRET || secret.len() < 32)
        {
            return Err(ConfigError::InsecureJwtSecret);
        }
        Ok(())
    }
}

impl Settings {
    /// The registration policy in force: as set, or by default closed in
    /// production (a school on the internet hands out accounts itself) and
    /// open elsewhere.
    pub fn registration(&self) -> Registration {
        match (&self.auth.registration, self.server.env) {
            (Some(policy), _) => policy.clone(),
            (None, Environment::Production) => Registration::Closed,
            (None, _) => Registration::Open,
        }
    }
}

/// Seconds from configuration as a `chrono::Duration`, saturating instead of overflowing.
pub fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn parse(args: &[&str]) -> Settings {
        Cli::try_parse_from(std::iter::once("classbell").chain(args.iter().copied()))
            .expect("parse")
            .settings
    }

    #[test]
    fn flags_keep_their_names_across_groups() {
        let settings = parse(&[
            "--database-url",
            "postgres://db/school",
            "--redis-url",
            "redis://cache",
            "--redis-prefix",
            "school:",
            "--fanout-workers",
            "7",
            "--job-workers",
            "3",
            "--ws-outbound-queue",
            "9",
            "--storage",
            "s3",
            "--mail-from",
            "Bell <bell@school.example>",
        ]);
        assert_eq!(settings.database.url, "postgres://db/school");
        assert_eq!(settings.redis.url, "redis://cache");
        assert_eq!(settings.redis.prefix, "school:");
        assert_eq!(settings.fanout.workers, 7);
        assert_eq!(settings.jobs.workers, 3);
        assert_eq!(settings.realtime.outbound_queue, 9);
        assert_eq!(settings.storage.backend, StorageBackend::S3);
        assert_eq!(settings.mail.from, "Bell <bell@school.example>");
    }

    #[test]
    fn forwarded_headers_are_believed_from_listed_proxies_only() {
        let old = parse(&["--trust-forwarded-for", "true"]);
        let refused = old.validate().unwrap_err().to_string();
        assert!(refused.contains("CLASSBELL_TRUSTED_PROXIES"), "{refused}");
        let listed = parse(&["--trusted-proxies", "10.0.0.0/8,192.0.2.7"]);
        assert!(listed.validate().is_ok());
        assert_eq!(listed.auth.trusted_proxies().unwrap().len(), 2);
        let bad = parse(&["--trusted-proxies", "10.0.0.0/8,proxy.example"]);
        assert!(
            matches!(bad.validate(), Err(ConfigError::TrustedProxy(entry)) if entry == "proxy.example")
        );
    }

    #[test]
    fn registration_is_closed_by_default_in_production_only() {
        assert_eq!(parse(&[]).registration(), Registration::Open);
        let secret = "s".repeat(32);
        let production = ["--env", "production", "--jwt-secret", &secret];
        assert_eq!(parse(&production).registration(), Registration::Closed);
        let listed = parse(
            &[
                &production[..],
                &["--registration", "School.example, @pupils.school.example"],
            ]
            .concat(),
        );
        let policy = listed.registration();
        assert_eq!(
            policy,
            Registration::Domains(vec![
                "school.example".into(),
                "pupils.school.example".into()
            ])
        );
        assert!(policy.admits("li.wei@SCHOOL.example"));
        assert!(policy.admits("a@pupils.school.example"));
        assert!(!policy.admits("a@school.example.evil.test"));
        assert!(!policy.admits("school.example"));
        assert!(!Registration::Closed.admits("a@school.example"));
        assert!("school example".parse::<Registration>().is_err());
        assert!(",".parse::<Registration>().is_err());
    }

    #[test]
    fn the_school_zone_must_be_an_iana_name() {
        assert!(parse(&["--timezone", "Asia/Shanghai"]).validate().is_ok());
        assert!(matches!(
            parse(&["--timezone", "China Standard Time"]).validate(),
            Err(ConfigError::TimeZone(name)) if name == "China Standard Time"
        ));
        let refused = Cli::try_parse_from(["classbell", "--default-locale", "fr"]);
        assert!(refused.is_err(), "only the languages classbell speaks");
    }

    #[test]
    fn connection_buffers_stay_between_half_a_kib_and_64_kib() {
        assert_eq!(parse(&[]).server.connection_buffer_bytes, 1024);
        let set = parse(&["--connection-buffer-bytes", "4096"]);
        assert_eq!(set.server.connection_buffer_bytes, 4096);
        for refused in ["100", "1000000", "-1"] {
            let parsed = Cli::try_parse_from(["classbell", "--connection-buffer-bytes", refused]);
            assert!(parsed.is_err(), "{refused} bytes");
        }
    }

    #[test]
    fn production_refuses_the_shipped_secret() {
        let development = parse(&[]);
        assert!(development.validate().is_ok());
        let production = parse(&["--env", "production"]);
        assert!(matches!(
            production.validate(),
            Err(ConfigError::InsecureJwtSecret)
        ));
        let secret = "s".repeat(32);
        assert!(
            parse(&["--env", "production", "--jwt-secret", &secret])
                .validate()
                .is_ok()
        );
    }
}
