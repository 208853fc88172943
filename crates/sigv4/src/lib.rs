//! AWS Signature Version 4, small: what the browser needs to reach AWS IoT Core over
//! WebSocket, and nothing else (no HTTP types, no credential chains, no clock of its own:
//! callers pass the signing time).
//!
//! # Layout
//! - [`sign`]: the signature of a canonical request (method, path, query, headers, payload
//!   hash), with its intermediate strings for diagnostics. Tested against AWS's published
//!   examples.
//! - [`presign_iot_websocket`]: the `wss://{endpoint}/mqtt?…` URL IoT Core accepts: service
//!   `iotdevicegateway`, signed header `host`, an empty payload, and the session token
//!   appended **after** signing (IoT Core, unlike S3, leaves it out of the signature).
//!   `tests/known_answer.rs` checks it against botocore's presign (`tests/reference.py`).
//! - [`clock`]: the signing time. AWS refuses a signature more than 5 minutes off its own
//!   clock; [`clock::ServerClock`] corrects this computer's clock by a server's `Date`.
//!
//! # Key decision
//! Not the `aws-sigv4` crate: it builds for wasm32 but adds about 107 KB gzip to the page
//! (TOOLCHAIN.md), against a 250 KB budget for the whole app. This crate is SHA-256 and
//! HMAC from RustCrypto plus the canonical-request rules, a few KB.

pub mod clock;

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name in every string to sign.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The service name IoT Core's WebSocket endpoint signs with.
pub const IOT_SERVICE: &str = "iotdevicegateway";

/// SHA-256 of the empty string, hex: the payload hash of a body-less request.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// AWS credentials. `Debug` hides the secret and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id (`AKIA…` or `ASIA…` for temporary ones).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials (Cognito, STS).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// Why a request cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The time is outside what SigV4 dates can express.
    #[error("the signing time {0} ms is not a valid date")]
    Time(u64),
    /// A field that must not be empty is.
    #[error("{0} is empty")]
    Empty(&'static str),
}

/// The parts of a request that are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The path, as sent (already URI-encoded), e.g. `/mqtt`.
    pub path: &'a str,
    /// Query parameters, not encoded; any order.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign, including `host`; any case and order.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body ([`EMPTY_PAYLOAD_SHA256`] for none), or `UNSIGNED-PAYLOAD`.
    pub payload_sha256: &'a str,
}

/// Where and when a request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. [`IOT_SERVICE`].
    pub service: &'a str,
    /// Signing time, ms since the Unix epoch.
    pub time_ms: u64,
}

/// A signature and what it was computed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The signature, lowercase hex.
    pub signature: String,
    /// `x-amz-date`: `YYYYMMDD'T'HHMMSS'Z'`.
    pub amz_date: String,
    /// `{date}/{region}/{service}/aws4_request`.
    pub credential_scope: String,
    /// Lowercase header names, `;`-separated, sorted.
    pub signed_headers: String,
    /// The canonical request (for diagnosing a mismatch).
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
}

/// Signs `request` with `credentials` in `scope` (AWS "Create a signed AWS API request").
pub fn sign(
    credentials: &Credentials,
    scope: Scope<'_>,
    request: &Request<'_>,
) -> Result<Signature, SignError> {
    if credentials.access_key_id.is_empty() {
        return Err(SignError::Empty("the access key id"));
    }
    if credentials.secret_access_key.is_empty() {
        return Err(SignError::Empty("the secret access key"));
    }
    let (amz_date, credential_scope) = date_and_scope(scope)?;
    let date = &amz_date[..8];

    let headers = sorted(
        request
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), normalize_header_value(v))),
    );
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        let _ = writeln!(canonical_headers, "{k}:{v}");
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        request.payload_sha256
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    Ok(Signature {
        signature,
        amz_date,
        credential_scope,
        signed_headers,
        canonical_request,
        string_to_sign,
    })
}

/// `x-amz-date` and the credential scope of a signature in `scope`.
fn date_and_scope(scope: Scope<'_>) -> Result<(String, String), SignError> {
    let time = i64::try_from(scope.time_ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or(SignError::Time(scope.time_ms))?;
    // Written field by field: chrono's `format` brings a strftime parser into the wasm.
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let credential_scope = format!(
        "{}/{}/{}/aws4_request",
        &amz_date[..8],
        scope.region,
        scope.service
    );
    Ok((amz_date, credential_scope))
}

/// The presigned `wss://{endpoint}/mqtt` URL for AWS IoT Core at `time_ms`, valid for
/// `expires_s` seconds (IoT Core accepts up to 7 days; it checks the signature at CONNECT
/// only, so an open connection outlives it). A session token is appended after signing.
pub fn presign_iot_websocket(
    credentials: &Credentials,
    region: &str,
    endpoint: &str,
    time_ms: u64,
    expires_s: u32,
) -> Result<String, SignError> {
    if endpoint.is_empty() {
        return Err(SignError::Empty("the endpoint"));
    }
    if region.is_empty() {
        return Err(SignError::Empty("the region"));
    }
    let scope = Scope {
        region,
        service: IOT_SERVICE,
        time_ms,
    };
    // The date and scope go in the query that is signed.
    let (amz_date, credential_scope) = date_and_scope(scope)?;
    let credential = format!("{}/{credential_scope}", credentials.access_key_id);
    let expires = expires_s.to_string();
    let query = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", credential.as_str()),
        ("X-Amz-Date", amz_date.as_str()),
        ("X-Amz-Expires", expires.as_str()),
        ("X-Amz-SignedHeaders", "host"),
    ];
    let signed = sign(
        credentials,
        scope,
        &Request {
            method: "GET",
            path: "/mqtt",
            query: &query,
            headers: &[("host", endpoint)],
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        },
    )?;
    let mut url = format!(
        "wss://{endpoint}/mqtt?{}&X-Amz-Signature={}",
        canonical_query(&query),
        signed.signature
    );
    if let Some(token) = &credentials.session_token {
        url.push_str("&X-Amz-Security-Token=");
        url.push_str(&uri_encode(token));
    }
    Ok(url)
}

/// Name-value pairs in order (name, then value). A request has a handful of them: each goes
/// in its place by binary search, which in the web app costs a few hundred bytes of wasm
/// where `sort_unstable` on this type costs 4 KB.
fn sorted(pairs: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in pairs {
        let at = out.binary_search(&pair).unwrap_or_else(|at| at);
        out.insert(at, pair);
    }
    out
}

/// Query parameters URI-encoded and sorted by name, then value.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    sorted(query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))))
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`, uppercase.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Trims a header value and folds inner runs of spaces into one.
fn normalize_header_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example keys of AWS's documentation.
    fn docs_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// 2013-05-24T00:00:00Z, the time of the S3 examples.
    const MAY_24_2013: u64 = 1_369_353_600_000;

    #[test]
    fn s3_get_object_example_of_the_authorization_header_docs() {
        // "Example: GET Object" of "Signature Calculations for the Authorization Header:
        // Transferring Payload in a Single Chunk" (Amazon S3 API reference).
        let signed = sign(
            &docs_credentials(),
            Scope {
                region: "us-east-1",
                service: "s3",
                time_ms: MAY_24_2013,
            },
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[],
                headers: &[
                    ("Host", "examplebucket.s3.amazonaws.com"),
                    ("Range", "bytes=0-9"),
                    ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
                    ("x-amz-date", "20130524T000000Z"),
                ],
                payload_sha256: EMPTY_PAYLOAD_SHA256,
            },
        )
        .unwrap();
        assert_eq!(
            signed.signed_headers,
            "host;range;x-amz-content-sha256;x-amz-date"
        );
        assert_eq!(
            signed.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn s3_presigned_url_example_of_the_query_parameters_docs() {
        // "Authenticating Requests: Using Query Parameters", its example: GET test.txt,
        // valid 86,400 s, signed header host, unsigned payload.
        let credential = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";
        let signed = sign(
            &docs_credentials(),
            Scope {
                region: "us-east-1",
                service: "s3",
                time_ms: MAY_24_2013,
            },
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[
                    ("X-Amz-Algorithm", ALGORITHM),
                    ("X-Amz-Credential", credential),
                    ("X-Amz-Date", "20130524T000000Z"),
                    ("X-Amz-Expires", "86400"),
                    ("X-Amz-SignedHeaders", "host"),
                ],
                headers: &[("host", "examplebucket.s3.amazonaws.com")],
                payload_sha256: "UNSIGNED-PAYLOAD",
            },
        )
        .unwrap();
        assert_eq!(
            signed.canonical_request,
            "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
        );
        assert_eq!(
            signed.signature,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    fn temporary() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret/with+chars=".into(),
            session_token: Some("tok/en+with=chars".into()),
        }
    }

    #[test]
    fn an_iot_url_signs_host_only_and_appends_the_token_after_the_signature() {
        let endpoint = "abc123-ats.iot.eu-west-1.amazonaws.com";
        let url =
            presign_iot_websocket(&temporary(), "eu-west-1", endpoint, MAY_24_2013, 3600).unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, format!("wss://{endpoint}/mqtt"));
        let params: Vec<&str> = query.split('&').collect();
        assert_eq!(params[0], "X-Amz-Algorithm=AWS4-HMAC-SHA256");
        assert_eq!(
            params[1],
            "X-Amz-Credential=ASIAEXAMPLE%2F20130524%2Feu-west-1%2Fiotdevicegateway%2Faws4_request"
        );
        assert_eq!(params[4], "X-Amz-SignedHeaders=host");
        assert!(params[5].starts_with("X-Amz-Signature="));
        // The token comes last, encoded, and is not part of what was signed.
        assert_eq!(params[6], "X-Amz-Security-Token=tok%2Fen%2Bwith%3Dchars");
        let without_token = Credentials {
            session_token: None,
            ..temporary()
        };
        let unsigned_token =
            presign_iot_websocket(&without_token, "eu-west-1", endpoint, MAY_24_2013, 3600)
                .unwrap();
        assert_eq!(url, format!("{unsigned_token}&{}", params[6]));
        // Re-signing later (a reconnect) gives a new date and signature.
        let later = presign_iot_websocket(
            &temporary(),
            "eu-west-1",
            endpoint,
            MAY_24_2013 + 61_000,
            3600,
        )
        .unwrap();
        assert_ne!(later, url);
        assert!(later.contains("X-Amz-Date=20130524T000101Z"));
    }

    #[test]
    fn missing_parts_are_refused_and_the_secret_never_shows_in_debug() {
        let mut c = temporary();
        assert!(format!("{c:?}").contains("<hidden>"));
        assert!(!format!("{c:?}").contains("secret/with"));
        assert!(!format!("{c:?}").contains("tok/en"));
        assert_eq!(
            presign_iot_websocket(&c, "eu-west-1", "", 0, 60),
            Err(SignError::Empty("the endpoint"))
        );
        c.secret_access_key.clear();
        assert_eq!(
            presign_iot_websocket(&c, "eu-west-1", "e", 0, 60),
            Err(SignError::Empty("the secret access key"))
        );
        assert_eq!(
            presign_iot_websocket(&temporary(), "eu-west-1", "e", u64::MAX, 60),
            Err(SignError::Time(u64::MAX))
        );
    }

    proptest::proptest! {
        #[test]
        fn uri_encoding_keeps_only_unreserved_bytes(s in ".*") {
            let e = uri_encode(&s);
            proptest::prop_assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
            // Decoding gives the input back.
            let mut bytes = Vec::new();
            let mut it = e.bytes();
            while let Some(b) = it.next() {
                if b == b'%' {
                    let hi = it.next().unwrap();
                    let lo = it.next().unwrap();
                    bytes.push(u8::from_str_radix(std::str::from_utf8(&[hi, lo]).unwrap(), 16).unwrap());
                } else {
                    bytes.push(b);
                }
            }
            proptest::prop_assert_eq!(bytes, s.as_bytes());
        }

        #[test]
        fn pairs_come_out_in_the_order_a_sort_gives(
            pairs in proptest::collection::vec(("[a-cA-C%-]{0,3}", "[a-c=&]{0,2}"), 0..12)
        ) {
            let mut want = pairs.clone();
            want.sort();
            proptest::prop_assert_eq!(sorted(pairs.into_iter()), want);
        }
    }
}
