//! The AWS mode's credentials: a Cognito Identity Pool's unauthenticated identity (the
//! page calls Cognito's `GetId` and `GetCredentialsForIdentity` itself: unsigned JSON
//! requests) or temporary credentials pasted by the user, and the presigned IoT Core URL
//! each connection takes (`fleet-sigv4`, [`Presigner`]).
//!
//! Secrets stay in memory: never in `localStorage`, never in the shareable URL, never in
//! an error message. Only the identity id (not a secret) is remembered, so a reload keeps
//! the same Cognito identity.
//!
//! # The signing clock
//! IoT Core refuses a signature more than 5 minutes off AWS's time, and the browser's
//! WebSocket shows that refusal as a bare failure. A guest's page therefore signs with
//! AWS's time: every Cognito answer carries a `Date` header, which Cognito exposes to pages
//! (`Access-Control-Expose-Headers: …,Date`, as AWS's JSON services do for the AWS SDK's
//! clock-skew correction); if a browser hides it, the credentials' `Expiration` less their
//! one-hour lifetime is AWS's time of issue. Pasted credentials call nothing before they
//! connect, so they sign with this computer's clock; when IoT Core refuses such a URL, the
//! page asks Cognito's regional endpoint for the time (an unsigned request that needs no
//! pool; at most once a minute) and, if the clock is more than 5 minutes off, the next
//! refusal says by how much ([`Presigner`]'s `refused`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use fleet_sigv4::clock::{MAX_SKEW_MS, ServerClock, offset_minutes};
use fleet_sigv4::{Credentials, presign_iot_websocket};

use crate::json::Json;
use crate::transport::mqtt::ConnectUrl;

/// Refresh Cognito credentials this long before they expire.
pub const REFRESH_BEFORE_MS: u64 = 5 * 60 * 1000;

/// How long a presigned URL is valid (IoT Core checks it at connect time only).
pub const URL_EXPIRES_S: u32 = 3600;

/// IoT Core closes a WebSocket after 24 h; reconnect a little before, with a new URL.
pub const MAX_CONNECTION_MS: u64 = 23 * 3600 * 1000 + 30 * 60 * 1000;

/// How long the credentials of `GetCredentialsForIdentity` last: one hour, fixed (the
/// enhanced flow takes no duration). Their `Expiration` less this is AWS's time of issue.
pub const COGNITO_CREDENTIALS_LIFETIME_MS: u64 = 3600 * 1000;

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

/// What the page knows of AWS's time, kept for the page's life: the clock every Cognito
/// answer sets, and whether IoT Core refused a URL since AWS was last asked.
#[derive(Debug, Default)]
pub struct AwsTime {
    clock: Cell<ServerClock>,
    wanted: Cell<bool>,
    last_asked_ms: Cell<Option<u64>>,
}

/// [`AwsTime`], shared by the Cognito calls, the URL source and the AWS mode.
pub type SharedTime = Rc<AwsTime>;

impl AwsTime {
    /// AWS's time when this computer's clock says `local_ms` (this computer's time while
    /// AWS has not been asked).
    pub fn now(&self, local_ms: u64) -> u64 {
        self.clock.get().now(local_ms)
    }

    /// AWS's time minus this computer's, ms, if known.
    pub fn offset_ms(&self) -> Option<i64> {
        self.clock.get().offset_ms()
    }

    /// Records AWS's time `server_ms` at this computer's `local_ms`.
    pub fn observe(&self, server_ms: u64, local_ms: u64) {
        let mut c = self.clock.get();
        c.observe(server_ms, local_ms);
        self.clock.set(c);
    }

    /// Records an AWS answer's `Date` header, parsed to `date_ms`, received at `local_ms`.
    pub fn observe_date(&self, date_ms: u64, local_ms: u64) {
        let mut c = self.clock.get();
        c.observe_date(date_ms, local_ms);
        self.clock.set(c);
    }

    /// Whether to ask AWS for the time at `local_ms`: after a refusal, at most once every
    /// `every_ms`. Answering yes takes the request.
    pub fn ask_now(&self, local_ms: u64, every_ms: u64) -> bool {
        let due = self.wanted.get()
            && self
                .last_asked_ms
                .get()
                .is_none_or(|at| local_ms.abs_diff(at) >= every_ms);
        if due {
            self.wanted.set(false);
            self.last_asked_ms.set(Some(local_ms));
        }
        due
    }

    /// Forgets a pending request (a new fleet starts).
    pub fn reset(&self) {
        self.wanted.set(false);
        self.last_asked_ms.set(None);
    }
}

/// Which clock a fleet's URLs are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningClock {
    /// AWS's time ([`AwsTime`]): a Cognito guest, whose page has asked AWS already.
    Aws,
    /// This computer's: pasted credentials.
    Local,
}

/// The MQTT transport's URL source in AWS mode: a URL presigned at each connect with the
/// current credentials, or an error in plain words while there are none; and when IoT Core
/// refuses one, whether its time was why.
pub struct Presigner {
    session: SharedSession,
    time: SharedTime,
    signing: SigningClock,
    region: String,
    endpoint: String,
}

impl Presigner {
    /// Signs connections to `endpoint` in `region` with `session`'s credentials at the time
    /// `signing` says. A refusal asks `time` for AWS's time again.
    pub fn new(
        session: SharedSession,
        time: SharedTime,
        signing: SigningClock,
        region: String,
        endpoint: String,
    ) -> Presigner {
        Presigner {
            session,
            time,
            signing,
            region,
            endpoint,
        }
    }
}

impl ConnectUrl for Presigner {
    fn url(&mut self, now_ms: u64) -> Result<String, String> {
        let aws_now = self.time.now(now_ms);
        let guard = self.session.borrow();
        let Some(s) = guard.as_ref() else {
            return Err("waiting for AWS credentials".to_owned());
        };
        // `Expiration` is AWS's time.
        if s.expires_ms.is_some_and(|at| aws_now >= at) {
            return Err("the AWS credentials expired; getting new ones".to_owned());
        }
        let at = match self.signing {
            SigningClock::Aws => aws_now,
            SigningClock::Local => now_ms,
        };
        let url = presign_iot_websocket(
            &s.credentials,
            &self.region,
            &self.endpoint,
            at,
            URL_EXPIRES_S,
        )
        .map_err(|e| format!("cannot sign the IoT Core URL: {e}"))?;
        Ok(url)
    }

    /// Pasted keys sign with this computer's clock: when AWS's time is known (a probe
    /// after the first refusal) and more than 5 minutes away, that is why. A guest signs with
    /// AWS's time, so its refusals have other causes, or a clock that moved since AWS was
    /// last asked, which the renewal this refusal asks for corrects.
    fn refused(&mut self, _now_ms: u64, socket_said: String) -> String {
        self.time.wanted.set(true);
        match self.time.offset_ms() {
            Some(skew)
                if self.signing == SigningClock::Local && skew.unsigned_abs() > MAX_SKEW_MS =>
            {
                let (minutes, way) = offset_minutes(skew);
                format!(
                    "IoT Core at {} refused the connection: this computer's clock is {minutes} \
                     minutes {way} by AWS's time, and IoT Core refuses a signature more than 5 \
                     minutes off. Pasted credentials are signed with it: set it right, or use \
                     an identity pool (the page then signs with AWS's time)",
                    self.endpoint
                )
            }
            _ => socket_said,
        }
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

    const ENDPOINT: &str = "abc-ats.iot.eu-west-1.amazonaws.com";
    /// 2025-11-27T08:00:00Z.
    const NOW: u64 = 1_764_230_400_000;
    const MINUTE: u64 = 60_000;

    fn presigner(signing: SigningClock) -> (Presigner, SharedSession, SharedTime) {
        let (session, time): (SharedSession, SharedTime) = Default::default();
        let p = Presigner::new(
            Rc::clone(&session),
            Rc::clone(&time),
            signing,
            "eu-west-1".into(),
            ENDPOINT.into(),
        );
        (p, session, time)
    }

    fn amz_date(url: &str) -> &str {
        url.split("X-Amz-Date=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
    }

    #[test]
    fn the_url_source_signs_with_the_current_credentials_and_says_why_it_cannot() {
        let (mut source, shared, _) = presigner(SigningClock::Aws);
        assert_eq!(source.url(0).unwrap_err(), "waiting for AWS credentials");
        *shared.borrow_mut() = Some(Session {
            expires_ms: Some(2_000_000_000_000),
            ..pasted_credentials("ASIAEXAMPLEEXAMPLE12", "secret", "token").unwrap()
        });
        let url = source.url(NOW).unwrap();
        assert!(url.starts_with("wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm="));
        assert!(url.ends_with("&X-Amz-Security-Token=token"));
        assert_ne!(
            source.url(NOW + MINUTE).unwrap(),
            url,
            "re-signed at each connect"
        );
        let err = source.url(2_000_000_000_000).unwrap_err();
        assert!(err.contains("expired") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn a_guest_signs_with_aws_time_and_judges_expiry_by_it() {
        let (mut source, shared, time) = presigner(SigningClock::Aws);
        // Cognito said 08:00:00 when this computer said 06:00:00: 2 hours slow.
        time.observe_date(NOW, NOW - 120 * MINUTE);
        *shared.borrow_mut() = Some(Session {
            expires_ms: Some(NOW + 60 * MINUTE),
            ..pasted_credentials("ASIAEXAMPLEEXAMPLE12", "secret", "token").unwrap()
        });
        let url = source.url(NOW - 120 * MINUTE + 1_000).unwrap();
        assert_eq!(amz_date(&url), "20251127T080001Z");
        // 61 minutes later by this computer's clock is past the expiry by AWS's.
        let err = source.url(NOW - 59 * MINUTE).unwrap_err();
        assert!(err.contains("expired"), "{err}");
        // A computer 2 hours fast does not take fresh credentials for expired ones.
        time.observe(NOW, NOW + 120 * MINUTE);
        assert!(source.url(NOW + 121 * MINUTE).is_ok());
    }

    #[test]
    fn a_refusal_of_a_url_signed_with_a_clock_off_by_more_than_5_minutes_names_the_skew() {
        let said =
            || "the broker at wss://…/mqtt is unreachable or refused the connection".to_owned();
        let (mut source, shared, time) = presigner(SigningClock::Local);
        *shared.borrow_mut() = Some(pasted_credentials("AKIAIOSFODNN7EXAMPLE", "s", "").unwrap());
        // Pasted keys sign with this computer's clock, 20 minutes fast.
        let url = source.url(NOW + 20 * MINUTE).unwrap();
        assert_eq!(amz_date(&url), "20251127T082000Z");
        // Before AWS's time is known: the socket's words.
        assert_eq!(source.refused(0, said()), said());
        assert!(time.ask_now(0, 60_000), "the refusal asks for AWS's time");
        assert!(!time.ask_now(1, 60_000), "once");
        // AWS said 08:00:30 when this computer said 08:20:30.
        time.observe(NOW + 30_000, NOW + 20 * MINUTE + 30_000);
        let named = source.refused(0, said());
        assert!(
            named.starts_with(&format!(
                "IoT Core at {ENDPOINT} refused the connection: this computer's clock is 20 minutes fast by AWS's time"
            )),
            "{named}"
        );
        // Pasted keys keep signing with this computer's clock.
        assert_eq!(
            amz_date(&source.url(NOW + 21 * MINUTE).unwrap()),
            "20251127T082100Z"
        );
        // 4 minutes off is within what IoT Core accepts: not the cause.
        time.observe(NOW, NOW + 4 * MINUTE);
        source.url(NOW + 4 * MINUTE).unwrap();
        assert_eq!(source.refused(0, said()), said());

        // A guest signs with AWS's time: its refusals are not the clock's.
        let (mut guest, shared, time) = presigner(SigningClock::Aws);
        *shared.borrow_mut() = Some(pasted_credentials("ASIAEXAMPLEEXAMPLE12", "s", "t").unwrap());
        time.observe(NOW, NOW - 30 * MINUTE);
        assert_eq!(
            amz_date(&guest.url(NOW - 30 * MINUTE).unwrap()),
            "20251127T080000Z"
        );
        assert_eq!(guest.refused(0, said()), said());
        // It asks for AWS's time again: the computer's clock may have moved since.
        assert!(time.ask_now(0, 60_000));
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
