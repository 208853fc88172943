//! The AWS mode's credentials: a Cognito Identity Pool's unauthenticated identity (the
//! page calls Cognito's `GetId` and `GetCredentialsForIdentity` itself: unsigned JSON
//! requests) or temporary credentials pasted by the user, and the presigned IoT Core URL
//! each connection takes (`fleet-sigv4`).
//!
//! Secrets stay in memory: never in `localStorage`, never in the shareable URL, never in
//! an error message. Only the identity id (not a secret) is remembered, so a reload keeps
//! the same Cognito identity.

use std::cell::RefCell;
use std::rc::Rc;

use fleet_sigv4::{Credentials, presign_iot_websocket};

use crate::json::Json;

/// Refresh Cognito credentials this long before they expire.
pub const REFRESH_BEFORE_MS: u64 = 5 * 60 * 1000;

/// How long a presigned URL is valid (IoT Core checks it at connect time only).
pub const URL_EXPIRES_S: u32 = 3600;

/// IoT Core closes a WebSocket after 24 h; reconnect a little before, with a new URL.
pub const MAX_CONNECTION_MS: u64 = 23 * 3600 * 1000 + 30 * 60 * 1000;

/// Temporary credentials and when they stop working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The keys (`Debug` hides the secret).
    pub credentials: Credentials,
    /// Expiry, ms since the Unix epoch; `None` when unknown (pasted keys).
    pub expires_ms: Option<u64>,
}

impl Session {
    /// Whether these credentials should be replaced at `now_ms`.
    pub fn needs_refresh(&self, now_ms: u64) -> bool {
        self.expires_ms
            .is_some_and(|at| now_ms + REFRESH_BEFORE_MS >= at)
    }
}

/// The credentials a running fleet signs with, shared by the URL source and the refresher.
pub type SharedSession = Rc<RefCell<Option<Session>>>;

/// A URL source for the MQTT transport: a URL presigned at each connect with the current
/// credentials, or an error in plain words while there are none.
pub fn url_source(
    session: SharedSession,
    region: String,
    endpoint: String,
) -> impl FnMut(u64) -> Result<String, String> {
    move |now_ms| {
        let guard = session.borrow();
        let Some(s) = guard.as_ref() else {
            return Err("waiting for AWS credentials".to_owned());
        };
        if s.expires_ms.is_some_and(|at| now_ms >= at) {
            return Err("the AWS credentials expired; getting new ones".to_owned());
        }
        presign_iot_websocket(&s.credentials, &region, &endpoint, now_ms, URL_EXPIRES_S)
            .map_err(|e| format!("cannot sign the IoT Core URL: {e}"))
    }
}

/// Why Cognito gave no credentials, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CognitoError {
    /// The request did not get an answer (network, CORS, bad region).
    #[error("could not reach Cognito at {0}")]
    Unreachable(String),
    /// Cognito answered with an error.
    #[error("Cognito refused: {message} ({kind})")]
    Refused {
        /// The error type, e.g. `NotAuthorizedException`.
        kind: String,
        /// Cognito's message.
        message: String,
    },
    /// The answer was not what Cognito sends.
    #[error("unexpected answer from Cognito: {0}")]
    Unexpected(String),
}

/// Cognito's endpoint for `region`, or the override (a stand-in in tests).
pub fn cognito_endpoint(region: &str, endpoint_override: Option<&str>) -> String {
    match endpoint_override {
        Some(url) => url.to_owned(),
        None => format!("https://cognito-identity.{region}.amazonaws.com/"),
    }
}

/// Reads Cognito's answer to `GetId`: the identity id.
pub fn parse_get_id(status: u16, body: &str) -> Result<String, CognitoError> {
    parse_answer(status, body)?
        .str(&["IdentityId"])
        .ok_or_else(|| missing("IdentityId"))
}

/// Reads Cognito's answer to `GetCredentialsForIdentity`.
pub fn parse_credentials(status: u16, body: &str) -> Result<Session, CognitoError> {
    let answer = parse_answer(status, body)?;
    let field = |name: &str| {
        answer
            .str(&["Credentials", name])
            .ok_or_else(|| missing(&format!("Credentials.{name}")))
    };
    // Seconds since the Unix epoch (Cognito's JSON protocol sends a number).
    let expiration = answer
        .num(&["Credentials", "Expiration"])
        .ok_or_else(|| missing("Credentials.Expiration"))?;
    Ok(Session {
        credentials: Credentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretKey")?,
            session_token: Some(field("SessionToken")?),
        },
        expires_ms: Some((expiration * 1000.0) as u64),
    })
}

fn missing(field: &str) -> CognitoError {
    CognitoError::Unexpected(format!("no {field} in the answer"))
}

/// Any answer of Cognito's two actions, error answers included (`__type`, and `message` or
/// `Message`), read by path (`json.rs`: no derived `Deserialize` per answer).
fn parse_answer(status: u16, body: &str) -> Result<Json, CognitoError> {
    let answer = Json::parse(body);
    if !(200..300).contains(&status) {
        let kind = answer.as_ref().and_then(|a| a.str(&["__type"]));
        let message = answer
            .as_ref()
            .and_then(|a| a.str(&["message"]).or_else(|| a.str(&["Message"])));
        return Err(match (kind, message) {
            (None, None) => CognitoError::Unexpected(format!("HTTP {status}")),
            (kind, message) => CognitoError::Refused {
                // `__type` may carry a namespace: `com.amazonaws...#NotAuthorizedException`.
                kind: kind
                    .as_deref()
                    .unwrap_or_default()
                    .rsplit('#')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                message: message.unwrap_or_default(),
            },
        });
    }
    answer.ok_or_else(|| CognitoError::Unexpected("not a JSON object".to_owned()))
}

/// Temporary credentials as a user pastes them: `AccessKeyId`, `SecretAccessKey` and an
/// optional `SessionToken`, each trimmed. Refuses obvious mistakes in plain words.
pub fn pasted_credentials(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: &str,
) -> Result<Session, String> {
    let (id, secret, token) = (
        access_key_id.trim(),
        secret_access_key.trim(),
        session_token.trim(),
    );
    if id.is_empty() || secret.is_empty() {
        return Err("paste an access key id and a secret access key".to_owned());
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.len() < 16 {
        return Err("that access key id does not look like one (AKIA… or ASIA…)".to_owned());
    }
    Ok(Session {
        credentials: Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: (!token.is_empty()).then(|| token.to_owned()),
        },
        expires_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognito_answers_and_errors_are_read_in_plain_words() {
        assert_eq!(
            parse_get_id(200, r#"{"IdentityId":"us-east-1:1234"}"#).unwrap(),
            "us-east-1:1234"
        );
        let s = parse_credentials(
            200,
            r#"{"Credentials":{"AccessKeyId":"ASIAXXXXXXXXXXXXXXXX","Expiration":1.764234e9,"SecretKey":"s","SessionToken":"t"},"IdentityId":"us-east-1:1234"}"#,
        )
        .unwrap();
        assert_eq!(s.credentials.session_token.as_deref(), Some("t"));
        assert_eq!(s.expires_ms, Some(1_764_234_000_000));
        assert!(s.needs_refresh(1_764_234_000_000 - REFRESH_BEFORE_MS));
        assert!(!s.needs_refresh(1_764_234_000_000 - REFRESH_BEFORE_MS - 1));
        let refused = parse_get_id(
            400,
            r#"{"__type":"NotAuthorizedException","message":"Unauthenticated access is not supported for this identity pool."}"#,
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Cognito refused: Unauthenticated access is not supported for this identity pool. (NotAuthorizedException)"
        );
        let namespaced = parse_get_id(
            400,
            r#"{"__type":"com.amazonaws.cognito.identity.model#ResourceNotFoundException","Message":"IdentityPool 'x' not found."}"#,
        )
        .unwrap_err();
        assert!(
            matches!(namespaced, CognitoError::Refused { ref kind, .. } if kind == "ResourceNotFoundException")
        );
        assert_eq!(
            parse_get_id(502, "<html>").unwrap_err(),
            CognitoError::Unexpected("HTTP 502".into())
        );
        assert!(matches!(
            parse_get_id(200, "{}"),
            Err(CognitoError::Unexpected(_))
        ));
    }

    #[test]
    fn the_url_source_signs_with_the_current_credentials_and_says_why_it_cannot() {
        let shared: SharedSession = Rc::default();
        let mut source = url_source(
            Rc::clone(&shared),
            "eu-west-1".into(),
            "abc-ats.iot.eu-west-1.amazonaws.com".into(),
        );
        assert_eq!(source(0).unwrap_err(), "waiting for AWS credentials");
        *shared.borrow_mut() = Some(Session {
            expires_ms: Some(2_000_000_000_000),
            ..pasted_credentials("ASIAEXAMPLEEXAMPLE12", "secret", "token").unwrap()
        });
        let url = source(1_764_230_400_000).unwrap();
        assert!(url.starts_with("wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm="));
        assert!(url.ends_with("&X-Amz-Security-Token=token"));
        assert_ne!(
            source(1_764_230_460_000).unwrap(),
            url,
            "re-signed at each connect"
        );
        let err = source(2_000_000_000_000).unwrap_err();
        assert!(err.contains("expired") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn pasted_credentials_are_checked_and_trimmed() {
        let s = pasted_credentials(" AKIAIOSFODNN7EXAMPLE ", " wJalr ", "").unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(s.credentials.session_token, None);
        assert_eq!(s.expires_ms, None);
        assert!(pasted_credentials("", "x", "").is_err());
        assert!(pasted_credentials("not a key", "x", "").is_err());
    }
}
