//! Accounts: tokens, sign-in throttling, and the mail that reaches people.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use utoipa::ToSchema;

/// The JWT secret the defaults ship with; production refuses to start with it.
pub const DEFAULT_JWT_SECRET: &str = "classbell-development-secret-change-me";

/// Tokens, password resets and sign-in throttling.
#[derive(Debug, Clone, Args)]
pub struct Auth {
    /// HS256 signing secret for access tokens (at least 32 bytes in production).
    #[arg(
        long,
        env = "CLASSBELL_JWT_SECRET",
        default_value = DEFAULT_JWT_SECRET,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub jwt_secret: String,

    #[arg(long, env = "CLASSBELL_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    #[arg(long, env = "CLASSBELL_REFRESH_TOKEN_TTL_SECS", default_value_t = 14 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    #[arg(long, env = "CLASSBELL_RESET_TOKEN_TTL_SECS", default_value_t = 30 * 60)]
    pub reset_token_ttl_secs: u64,

    /// How long the link in an invitation to a staff-created account works.
    #[arg(long, env = "CLASSBELL_INVITATION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub invitation_ttl_secs: u64,

    /// Failed logins for one username before it is throttled.
    #[arg(long, env = "CLASSBELL_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Failed logins from one client address before it is throttled.
    #[arg(
        long,
        env = "CLASSBELL_LOGIN_MAX_FAILURES_PER_IP",
        default_value_t = 50
    )]
    pub login_max_failures_per_ip: u32,

    /// Window (seconds) over which failed logins are counted.
    #[arg(
        long,
        env = "CLASSBELL_LOGIN_THROTTLE_WINDOW_SECS",
        default_value_t = 900
    )]
    pub login_throttle_window_secs: u64,

    /// Password hashes (argon2id, ~19 MiB each) computed at once; 0 means one per core.
    #[arg(long, env = "CLASSBELL_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// Milliseconds a sign-in (or password change) waits for a free hasher
    /// before answering 503 with Retry-After.
    #[arg(long, env = "CLASSBELL_PASSWORD_HASH_WAIT_MS", default_value_t = 1000)]
    pub password_hash_wait_ms: u64,

    /// Registrations and forgotten-username or -password requests from one
    /// client address per hour (more: 429).
    #[arg(long, env = "CLASSBELL_ACCOUNT_REQUESTS_PER_IP", default_value_t = 100)]
    pub account_requests_per_ip: u32,

    /// Reverse proxies whose `X-Forwarded-For` is believed: addresses or CIDRs,
    /// comma-separated (default none). The client is the right-most address
    /// in the header that is not one of them.
    #[arg(
        long,
        env = "CLASSBELL_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    /// Who may create their own (student) account: `open`, `closed`, or the
    /// e-mail domains allowed, comma-separated. Unset: `closed` when
    /// CLASSBELL_ENV=production, `open` otherwise.
    #[arg(long, env = "CLASSBELL_REGISTRATION")]
    pub registration: Option<Registration>,

    /// Replaced by CLASSBELL_TRUSTED_PROXIES; set, it stops start-up.
    #[arg(long, env = "CLASSBELL_TRUST_FORWARDED_FOR", hide = true)]
    pub trust_forwarded_for: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Mail {
    /// SMTP relay, e.g. smtp://127.0.0.1:1025 or smtps://user:pass@mail.example:465.
    /// Unset: mail is written to the outbox folder.
    #[arg(long, env = "CLASSBELL_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    #[arg(
        id = "mail_from",
        long = "mail-from",
        env = "CLASSBELL_MAIL_FROM",
        default_value = "classbell <noreply@classbell.localhost>"
    )]
    pub from: String,

    /// Folder that receives one `.eml` per message when no SMTP relay is set.
    #[arg(
        id = "mail_outbox",
        long = "mail-outbox",
        env = "CLASSBELL_MAIL_OUTBOX",
        default_value = "var/outbox"
    )]
    pub outbox: PathBuf,

    /// Invitations a roster import queued that are mailed per second (per node).
    #[arg(long, env = "CLASSBELL_INVITATIONS_PER_SEC", default_value_t = 10)]
    pub invitations_per_sec: u32,

    /// Messages sent to the relay at once.
    #[arg(
        id = "mail_concurrency",
        long = "mail-concurrency",
        env = "CLASSBELL_MAIL_CONCURRENCY",
        default_value_t = 4
    )]
    pub concurrency: usize,

    /// Attempts before a mail is failed for good (and waits for an admin).
    #[arg(long, env = "CLASSBELL_MAIL_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,

    /// Wait before the first retry, in seconds; each later one waits 4× longer (at most a day).
    #[arg(long, env = "CLASSBELL_MAIL_RETRY_SECS", default_value_t = 30)]
    pub retry_secs: u64,

    /// How long a node may hold a mail it is sending; a node that dies leaves
    /// its mails to be sent again after this.
    #[arg(long, env = "CLASSBELL_MAIL_LEASE_SECS", default_value_t = 120)]
    pub lease_secs: u64,

    /// How often each node looks for due mail, in milliseconds (new mail
    /// from this node is looked at at once).
    #[arg(long, env = "CLASSBELL_MAIL_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
}

impl Auth {
    /// The trusted proxies as networks (a bare address is a network of one).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| entry.to_owned())
            })
            .collect()
    }
}

/// Who may register themselves. Staff create accounts whatever it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "mode", content = "domains", rename_all = "snake_case")]
pub enum Registration {
    Open,
    Closed,
    /// Only addresses at one of these domains (lowercase, exact match).
    Domains(Vec<String>),
}

impl Registration {
    /// Whether someone with this e-mail address may register.
    pub fn admits(&self, email: &str) -> bool {
        match self {
            Registration::Open => true,
            Registration::Closed => false,
            Registration::Domains(domains) => email
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domains.contains(&domain.to_lowercase())),
        }
    }
}

impl std::str::FromStr for Registration {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_lowercase().as_str() {
            "open" => Ok(Registration::Open),
            "closed" => Ok(Registration::Closed),
            list => {
                let domains: Vec<String> = list
                    .split(',')
                    .map(|domain| domain.trim().trim_start_matches('@').to_owned())
                    .filter(|domain| !domain.is_empty())
                    .collect();
                let bad = domains.iter().find(|domain| {
                    !domain.contains('.')
                        || !domain
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
                });
                match (domains.is_empty(), bad) {
                    (true, _) => Err("expected open, closed or a list of e-mail domains".into()),
                    (false, Some(bad)) => Err(format!("`{bad}` is not an e-mail domain")),
                    (false, None) => Ok(Registration::Domains(domains)),
                }
            }
        }
    }
}
