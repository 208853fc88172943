//! The web app's files as `fleet aws publish-page` uploads them: which objects, with which
//! `Content-Type` and `Cache-Control`, in which order, and the `config.json` that goes with
//! them. No SDK types and no network here: `publish_page` does the calls.
//!
//! # Key decisions
//! - **Cache by name.** Trunk puts a content hash in every asset's name
//!   (`fleet-web-0123456789abcdef_bg.wasm`, `style-….css`), so those are cached for a year
//!   and marked `immutable`; a new build has new names. Everything else, above all
//!   `index.html` (which names the current assets) and `config.json` (which names the
//!   stack), is `no-cache`: browsers and CloudFront revalidate it on every visit, so a new
//!   upload shows at once with no CloudFront invalidation.
//! - **Order.** Assets first, then `config.json`, then `index.html`: a visitor who loads
//!   the new `index.html` finds every file it names already there.
//! - **`config.json` is the stack's**, from its `WebConfig` output, never the build's
//!   default (`{"mode":"in-page",…}` from `scripts/build-web.sh`).
//! - Precompressed twins (`x.wasm.gz`, `x.wasm.br`, for `fleet local`) and dotfiles are
//!   left out: S3 cannot choose an encoding per request; CloudFront compresses instead.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
/// `Cache-Control` by name: immutable for content-hashed names, no-cache for the rest; the
/// rule `fleet local` serves the app by.
pub use fleet_local::web_app::cache_control;

/// The page's config file, next to `index.html`.
pub const CONFIG: &str = "config.json";
const INDEX: &str = "index.html";

/// One object to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    /// The object key: the path under the dist directory, with `/`.
    pub key: String,
    /// What to upload: a file, or the stack's `config.json`.
    pub body: Body,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
}

/// Where an object's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A file of the build.
    File(PathBuf),
    /// Text written here (`config.json`).
    Text(String),
}

/// The files of a build, ready to upload in order, with `config` as `config.json`.
pub fn plan(dist: &Path, config: String) -> Result<Vec<SiteFile>> {
    let index = dist.join(INDEX);
    if !index.is_file() {
        bail!(
            "{} has no index.html: build the app first (scripts/build-web.sh --dist {})",
            dist.display(),
            dist.display()
        );
    }
    let mut keys = Vec::new();
    collect(dist, "", &mut keys)?;
    let skipped = |key: &str| {
        key == CONFIG
            || [".gz", ".br"].iter().any(|ext| {
                key.strip_suffix(ext)
                    .is_some_and(|plain| keys.iter().any(|k| k == plain))
            })
    };
    let mut files: Vec<SiteFile> = keys
        .iter()
        .filter(|k| !skipped(k))
        .map(|key| SiteFile {
            key: key.clone(),
            body: Body::File(dist.join(key)),
            content_type: content_type(key),
            cache_control: cache_control(key),
        })
        .collect();
    files.push(SiteFile {
        key: CONFIG.to_owned(),
        body: Body::Text(config),
        content_type: content_type(CONFIG),
        cache_control: cache_control(CONFIG),
    });
    // Stable: assets in name order, then config.json, then index.html last.
    files.sort_by_key(|f| match f.key.as_str() {
        INDEX => 2,
        CONFIG => 1,
        _ => 0,
    });
    Ok(files)
}

/// Every regular file under `dir`, as keys relative to the dist root, in name order.
fn collect(dir: &Path, prefix: &str, keys: &mut Vec<String>) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!(
                "{}: the file name is not UTF-8, which an object key must be",
                entry.path().display()
            );
        };
        if name.starts_with('.') {
            continue;
        }
        let key = format!("{prefix}{name}");
        // Follows symbolic links, as a web server would.
        let meta = std::fs::metadata(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        if meta.is_dir() {
            collect(&entry.path(), &format!("{key}/"), keys)?;
        } else if meta.is_file() {
            keys.push(key);
        }
    }
    Ok(())
}

/// `Content-Type` by extension: what browsers need (`application/wasm` for streaming
/// compilation, a JavaScript type for module scripts), UTF-8 for text.
pub fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// What the stack says about its page: where it goes and what its `config.json` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackPage {
    /// The bucket CloudFront serves (`PageBucketName`).
    pub bucket: String,
    /// The page's address (`PageUrl`), if the stack gives one.
    pub url: Option<String>,
    /// The `config.json` to upload.
    pub config: String,
}

/// The config an in-page publish uploads: the page runs its fleet and cloud in the tab.
pub const IN_PAGE_CONFIG: &str = r#"{"mode":"in-page","written_by":"fleet aws publish-page"}"#;

impl StackPage {
    /// Reads the stack's outputs (`PageBucketName`, `PageUrl`, `WebConfig`). Without
    /// `WebConfig` (a stack deployed with `BrowserAccess=false`) the page could not reach
    /// the stack, so that is an error unless `in_page` asks for the in-page config.
    pub fn from_outputs(
        stack: &str,
        outputs: &[(String, String)],
        in_page: bool,
    ) -> Result<StackPage> {
        let get = |key: &str| {
            outputs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let Some(bucket) = get("PageBucketName") else {
            bail!(
                "stack {stack} has no PageBucketName output: it does not host the page. \
                 Deploy it with PageHosting=true (sam deploy --parameter-overrides \
                 PageHosting=true), or put dist/ on any static host (docs/deploy.md)"
            );
        };
        let config = match (get("WebConfig"), in_page) {
            (_, true) => IN_PAGE_CONFIG.to_owned(),
            (Some(config), false) => {
                let json: serde_json::Value = serde_json::from_str(&config).with_context(|| {
                    format!("stack {stack}: its WebConfig output is not JSON: {config}")
                })?;
                if json.get("mode").and_then(|m| m.as_str()) != Some("aws") {
                    bail!("stack {stack}: its WebConfig output does not say \"mode\":\"aws\"");
                }
                config
            }
            (None, false) => bail!(
                "stack {stack} has no WebConfig output (BrowserAccess=false), so a page \
                 could not connect to it. Deploy it with BrowserAccess=true, or pass \
                 --in-page to publish the page with its fleet running in the tab"
            ),
        };
        Ok(StackPage {
            bucket,
            url: get("PageUrl"),
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_local::web_app::{IMMUTABLE, NO_CACHE};

    #[test]
    fn trunk_asset_names_are_hashed_and_the_rest_is_not() {
        for name in [
            "fleet-web-0123456789abcdef.js",
            "fleet-web-0123456789abcdef_bg.wasm",
            "fleet-web-24f6d5f47fe1aae.js",
            "fleet-web-24f6d5f47fe1aae_bg.wasm",
            "style-fedcba9876543210.css",
            "boot-3b1f0c9d2e4a5f60.js",
            "snippets/x/inline0-0123456789abcdef.js",
        ] {
            assert_eq!(cache_control(name), IMMUTABLE, "{name}");
        }
        for name in [
            "index.html",
            "config.json",
            "fleet-web.js",
            "style-123.css",
            "style-0123456789abcdef0.css",
            "style-0123456789ABCDEF.css",
            "-0123456789abcdef.js",
            "fleet-web-0123456789abcdeg.js",
        ] {
            assert_eq!(cache_control(name), NO_CACHE, "{name}");
        }
    }

    #[test]
    fn content_types_are_what_browsers_need() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a/b.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x_bg.wasm"), "application/wasm");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("config.json"), "application/json");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn the_plan_puts_assets_first_index_last_and_the_stacks_config_in() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, body) in [
            ("index.html", "<html>"),
            ("fleet-web-0123456789abcdef.js", "js"),
            ("fleet-web-0123456789abcdef_bg.wasm", "wasm"),
            ("fleet-web-0123456789abcdef_bg.wasm.gz", "gz"),
            ("fleet-web-0123456789abcdef_bg.wasm.br", "br"),
            (
                "config.json",
                r#"{"mode":"in-page","written_by":"build-web.sh"}"#,
            ),
            (".stage", "trunk's"),
        ] {
            std::fs::write(d.join(name), body).unwrap();
        }
        std::fs::create_dir(d.join("snippets")).unwrap();
        std::fs::write(d.join("snippets/a.js"), "a").unwrap();
        let files = plan(d, r#"{"mode":"aws"}"#.into()).unwrap();
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "fleet-web-0123456789abcdef.js",
                "fleet-web-0123456789abcdef_bg.wasm",
                "snippets/a.js",
                "config.json",
                "index.html"
            ]
        );
        assert_eq!(files[3].body, Body::Text(r#"{"mode":"aws"}"#.into()));
        assert_eq!(files[3].cache_control, NO_CACHE);
        assert_eq!(files[4].body, Body::File(d.join("index.html")));
    }

    #[test]
    fn a_directory_without_index_html_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = plan(dir.path(), "{}".into()).unwrap_err().to_string();
        assert!(err.contains("no index.html"), "{err}");
    }

    #[test]
    fn the_stack_must_host_the_page_and_give_its_config() {
        let out = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let full = out(&[
            ("PageBucketName", "b"),
            ("PageUrl", "https://d1.cloudfront.net/"),
            ("WebConfig", r#"{"mode":"aws","region":"eu-west-1"}"#),
        ]);
        let page = StackPage::from_outputs("s", &full, false).unwrap();
        assert_eq!(page.bucket, "b");
        assert_eq!(page.url.as_deref(), Some("https://d1.cloudfront.net/"));
        assert_eq!(page.config, r#"{"mode":"aws","region":"eu-west-1"}"#);
        assert_eq!(
            StackPage::from_outputs("s", &full, true).unwrap().config,
            IN_PAGE_CONFIG
        );

        let err = |o: Vec<(String, String)>| {
            StackPage::from_outputs("s", &o, false)
                .unwrap_err()
                .to_string()
        };
        assert!(err(out(&[("WebConfig", "{}")])).contains("PageHosting=true"));
        assert!(err(out(&[("PageBucketName", "b")])).contains("BrowserAccess=true"));
        assert!(err(out(&[("PageBucketName", "b"), ("WebConfig", "{")])).contains("not JSON"));
        assert!(
            err(out(&[
                ("PageBucketName", "b"),
                ("WebConfig", r#"{"mode":"x"}"#)
            ]))
            .contains("mode")
        );
    }
}
