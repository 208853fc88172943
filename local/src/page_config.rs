//! What `/config.json` tells a page: the stack's own answer (a namespace and a credential
//! issued per page), or a `config.json` the user put in the served `dist/`.
//!
//! # The rule (ARCHITECTURE §4.8, docs/security.md)
//! - No file, or the build's default (`"written_by": "build-web.sh"`, which
//!   `scripts/build-web.sh` ships so that static hosts answer the page's probe): the stack
//!   answers with its own config, a fresh namespace and credential for every page.
//! - Any other file is served verbatim (`no-cache`), and the start says so in the log. Such a
//!   file must not carry a credential: it would be the same for every page that loads it, so
//!   every page would speak for the same devices (or, holding a simulator's or a device's
//!   token, for devices that are not its own). A file with a credential, or one that is not
//!   a config the page understands, fails the start with the reason.
//!
//! The file is read and checked once, at start: what is served is what was checked.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The marker of the build's default `config.json` (`scripts/build-web.sh`).
pub(crate) const BUILD_DEFAULT_WRITER: &str = "build-web.sh";

/// The modes a page understands in `config.json` (web/src/app.rs `host_config`).
const MODES: [&str; 3] = ["in-page", "local", "aws"];

/// Largest `config.json` accepted: a page config is a few hundred bytes.
const MAX_LEN: u64 = 64 * 1024;

/// What `/config.json` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageConfig {
    /// The stack's own: a fresh namespace and credential per page.
    Issued,
    /// A user's file, served as it is.
    File(ServedFile),
}

/// A user's `config.json`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its bytes.
    pub body: Vec<u8>,
    /// A strong validator of the bytes, quoted (`"…"`), for conditional requests.
    pub etag: String,
    /// Its `mode`.
    pub mode: String,
}

/// Why a `config.json` in `dist/` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PageConfigError {
    /// It could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not what a page reads.
    #[error(
        "{}: {reason}; fix it, or remove it to let fleet local answer each page with its own \
         namespace and credential",
        path.display()
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl PageConfig {
    /// Reads `dist/config.json`, if there is one, and decides what `/config.json` answers.
    pub fn load(dist: &Path) -> Result<PageConfig, PageConfigError> {
        let path = dist.join("config.json");
        let read_err = |source| PageConfigError::Read {
            path: path.clone(),
            source,
        };
        let len = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PageConfig::Issued),
            Err(e) => return Err(read_err(e)),
        };
        let invalid = |reason: String| PageConfigError::Invalid {
            path: path.clone(),
            reason,
        };
        if len > MAX_LEN {
            return Err(invalid(format!(
                "{len} bytes, more than a page config ({MAX_LEN} at most)"
            )));
        }
        let body = std::fs::read(&path).map_err(read_err)?;
        match check(&body).map_err(invalid)? {
            Checked::BuildDefault => Ok(PageConfig::Issued),
            Checked::Serve { mode } => Ok(PageConfig::File(ServedFile {
                etag: etag(&body),
                path,
                body,
                mode,
            })),
        }
    }
}

/// What a `config.json` turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// The build's default: the stack answers instead.
    BuildDefault,
    /// A user's file that may be served.
    Serve { mode: String },
}

/// Checks a `config.json`'s bytes (see the module doc).
fn check(body: &[u8]) -> Result<Checked, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(fields) = &value else {
        return Err(String::from("not a JSON object"));
    };
    if fields.get("written_by").and_then(Value::as_str) == Some(BUILD_DEFAULT_WRITER) {
        return Ok(Checked::BuildDefault);
    }
    let mode = match fields.get("mode") {
        Some(Value::String(mode)) if MODES.contains(&mode.as_str()) => mode.clone(),
        Some(other) => {
            return Err(format!(
                "\"mode\" is {other}, not one of {}",
                MODES.join(", ")
            ));
        }
        None => return Err(String::from("no \"mode\"")),
    };
    if let Some(field) = credential_field(&value, "") {
        return Err(format!(
            "{field} is a credential; a served config.json is the same for every page, so it \
             cannot carry one (fleet local issues each page its own; ARCHITECTURE §4.8)"
        ));
    }
    Ok(Checked::Serve { mode })
}

/// The first field (as a JSON path) whose name says it holds a secret: a password, a token,
/// a secret or access key, a session token. Names are compared without case, `_` or `-`.
fn credential_field(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::Object(fields) => fields.iter().find_map(|(name, inner)| {
            let path = format!("{at}.{name}");
            let plain: String = name
                .chars()
                .filter(|c| !matches!(c, '_' | '-'))
                .collect::<String>()
                .to_ascii_lowercase();
            let secret = ["password", "secret", "token", "credential", "accesskey"]
                .iter()
                .any(|word| plain.contains(word));
            if secret {
                Some(path.trim_start_matches('.').to_owned())
            } else {
                credential_field(inner, &path)
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, inner)| credential_field(inner, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// A strong `ETag` for `body`: the first 16 bytes of its SHA-256, in hex.
fn etag(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per rule of the module doc.
    #[test]
    fn what_a_dist_config_json_turns_into() {
        let serve = |mode: &str| Ok(Checked::Serve { mode: mode.into() });
        let cases: [(&str, Result<Checked, &str>); 14] = [
            // The build's default is replaced, whatever else it says.
            (
                r#"{"mode":"in-page","written_by":"build-web.sh"}"#,
                Ok(Checked::BuildDefault),
            ),
            (
                r#"{"written_by":"build-web.sh","mode":"aws"}"#,
                Ok(Checked::BuildDefault),
            ),
            // A user's file, without secrets, is served.
            // The template's WebConfig output, as the deploy docs say to save it.
            (
                r#"{"mode":"aws","region":"eu-west-1","browser_building":"browser",
                "mqtt":{"url":"wss://x-ats.iot.eu-west-1.amazonaws.com/mqtt","endpoint":"x-ats.iot.eu-west-1.amazonaws.com"},
                "cognito":{"identity_pool_id":"eu-west-1:0000"},
                "topics":{"telemetry":"dt/monitoring/browser/+/telemetry","commands":"cmd/monitoring/browser/+/remediation",
                "alarms":"dt/monitoring/alarms","basic_ingest_prefix":"$aws/rules/telemetry/"},
                "band":{"min":26,"max":28},"dashboard_devices":["d-0001"]}"#,
                serve("aws"),
            ),
            (r#"{"mode":"in-page"}"#, serve("in-page")),
            (
                r#"{"mode":"local","mqtt":{"url":"ws://broker.example:8083/mqtt"}}"#,
                serve("local"),
            ),
            (r#"{"mode":"in-page","written_by":"me"}"#, serve("in-page")),
            // Credentials, anywhere, under any spelling.
            (
                r#"{"mode":"local","mqtt":{"url":"ws://h/mqtt","username":"fleet","password":"x"}}"#,
                Err("mqtt.password is a credential"),
            ),
            (
                r#"{"mode":"aws","aws":{"secret_access_key":"x"}}"#,
                Err("aws.secret_access_key is a credential"),
            ),
            (
                r#"{"mode":"aws","SessionToken":"x"}"#,
                Err("SessionToken is a credential"),
            ),
            (
                r#"{"mode":"aws","keys":[{"Access-Key-Id":"AKIA"}]}"#,
                Err("keys[0].Access-Key-Id is a credential"),
            ),
            // Not a config a page reads.
            ("not json", Err("not JSON")),
            ("[1]", Err("not a JSON object")),
            (r#"{"region":"eu-west-1"}"#, Err("no \"mode\"")),
            (
                r#"{"mode":"cloud"}"#,
                Err("\"mode\" is \"cloud\", not one of"),
            ),
        ];
        for (text, want) in cases {
            let got = check(text.as_bytes());
            match (&got, &want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{text}: {got}"),
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn load_reads_checks_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PageConfig::load(dir.path()).unwrap(), PageConfig::Issued);
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"mode":"in-page","written_by":"build-web.sh"}"#).unwrap();
        assert_eq!(PageConfig::load(dir.path()).unwrap(), PageConfig::Issued);
        let body = br#"{"mode":"aws","region":"eu-west-1"}"#;
        std::fs::write(&path, body).unwrap();
        let PageConfig::File(file) = PageConfig::load(dir.path()).unwrap() else {
            panic!("a user's file is served");
        };
        assert_eq!(file.body, body);
        assert_eq!(file.mode, "aws");
        assert_eq!(file.path, path);
        assert!(
            file.etag.starts_with('"') && file.etag.len() == 34,
            "{}",
            file.etag
        );
        std::fs::write(&path, r#"{"mode":"local","mqtt":{"password":"p"}}"#).unwrap();
        let err = PageConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string())
                && err.contains("mqtt.password")
                && err.contains("remove it"),
            "{err}"
        );
    }
}
