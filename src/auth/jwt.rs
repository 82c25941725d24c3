//! Short-lived HS256 access tokens. Each names the login session it belongs
//! to (`sid`), so revoking the session ends the token before it expires.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppError;
use crate::ids::UserId;
use crate::users::model::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id, as a string per RFC 7519.
    pub sub: String,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    /// The login session; see `auth_sessions`.
    pub sid: Uuid,
}

impl Claims {
    pub fn user_id(&self) -> Result<UserId, AppError> {
        self.sub
            .parse()
            .map(UserId)
            .map_err(|_| AppError::Unauthorized("invalid access token"))
    }
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl JwtKeys {
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        // Only HS256 is accepted: `alg: none` and algorithm swaps fail here.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(900),
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: UserId, role: Role, session: Uuid) -> Result<String, AppError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat: now,
            exp: now + self.ttl_secs,
            jti: Uuid::new_v4(),
            sid: session,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    AppError::Unauthorized("access token has expired")
                }
                _ => AppError::Unauthorized("invalid access token"),
            })
    }
}
