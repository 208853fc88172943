//! `fleet aws publish-page` as a user runs it, against `moto_server` on 127.0.0.1: a stack
//! created through moto's CloudFormation with the template's page outputs (`PageBucketName`,
//! `PageUrl`, `WebConfig`), a build directory shaped as Trunk writes it, and then what the
//! bucket holds: every file with its content type and cache header, `config.json` equal to
//! the stack's `WebConfig` output, the precompressed twins left out. And the errors a user
//! meets: no such stack, a stack without page hosting, one without browser access.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use serde_json::json;
use support::moto::{Moto, REGION, fleet_aws, start_moto};

/// The template's `WebConfig` output, as a deployed stack gives it.
const WEB_CONFIG: &str = r#"{"mode":"aws","region":"us-east-1","browser_building":"browser", "mqtt":{"url":"wss://abc123-ats.iot.us-east-1.amazonaws.com/mqtt","endpoint":"abc123-ats.iot.us-east-1.amazonaws.com"}, "cognito":{"identity_pool_id":"us-east-1:00000000-0000-0000-0000-000000000000"}, "topics":{"telemetry":"dt/monitoring/browser/+/telemetry","commands":"cmd/monitoring/browser/+/remediation", "alarms":"dt/monitoring/alarms","basic_ingest_prefix":"$aws/rules/fleet_telemetry/"}, "band":{"min":26,"max":28},"dashboard_devices":["381938912","d-0001","d-0002","d-0003"]}"#;
const PAGE_URL: &str = "https://d111111abcdef8.cloudfront.net/";

const JS: &str = "fleet-web-8f3a2b1c0d9e4f5a.js";
const WASM: &str = "fleet-web-8f3a2b1c0d9e4f5a_bg.wasm";
const CSS: &str = "style-0123456789abcdef.css";

/// moto's S3 and CloudFormation through the real SDK.
struct Aws {
    s3: aws_sdk_s3::Client,
    cloudformation: aws_sdk_cloudformation::Client,
    rt: tokio::runtime::Runtime,
}

impl Aws {
    fn new(moto: &Moto) -> Aws {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = rt.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(http)
                .region(Region::new(REGION))
                .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
                .endpoint_url(&moto.url)
                .load(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        Aws {
            s3,
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            rt,
        }
    }

    /// Creates a stack with a bucket and the given outputs (besides `PageBucketName` when
    /// `hosting`), and returns the bucket's name.
    fn stack(&self, name: &str, hosting: bool, outputs: &[(&str, &str)]) -> String {
        let mut out = serde_json::Map::new();
        if hosting {
            out.insert(
                "PageBucketName".into(),
                json!({"Value": {"Ref": "PageBucket"}}),
            );
        }
        for (k, v) in outputs {
            out.insert((*k).into(), json!({ "Value": v }));
        }
        let template = json!({
            "Resources": {"PageBucket": {"Type": "AWS::S3::Bucket"}},
            "Outputs": out,
        });
        self.rt
            .block_on(
                self.cloudformation
                    .create_stack()
                    .stack_name(name)
                    .template_body(template.to_string())
                    .send(),
            )
            .unwrap();
        let described = self
            .rt
            .block_on(
                self.cloudformation
                    .describe_stack_resource()
                    .stack_name(name)
                    .logical_resource_id("PageBucket")
                    .send(),
            )
            .unwrap();
        described
            .stack_resource_detail()
            .unwrap()
            .physical_resource_id()
            .unwrap()
            .to_owned()
    }

    /// Every object in the bucket: key → (content type, cache control, body).
    fn objects(&self, bucket: &str) -> BTreeMap<String, (String, String, Vec<u8>)> {
        let listed = self
            .rt
            .block_on(self.s3.list_objects_v2().bucket(bucket).send())
            .unwrap();
        let mut objects = BTreeMap::new();
        for o in listed.contents() {
            let key = o.key().unwrap().to_owned();
            let got = self
                .rt
                .block_on(self.s3.get_object().bucket(bucket).key(&key).send())
                .unwrap();
            let content_type = got.content_type().unwrap_or_default().to_owned();
            let cache_control = got.cache_control().unwrap_or_default().to_owned();
            let body = self
                .rt
                .block_on(got.body.collect())
                .unwrap()
                .into_bytes()
                .to_vec();
            objects.insert(key, (content_type, cache_control, body));
        }
        objects
    }
}

/// A build as `scripts/build-web.sh` leaves it: Trunk's hashed assets, `index.html`, the
/// default `config.json`, and the precompressed twins `fleet local` serves.
fn dist(dir: &Path) {
    let index = format!("<!doctype html><script type=module src=./{JS}></script>");
    let files: [(&str, &[u8]); 8] = [
        ("index.html", index.as_bytes()),
        (JS, b"export default function init() {}"),
        (WASM, b"\0asm\x01\0\0\0"),
        (CSS, b"body{margin:0}"),
        (
            "config.json",
            br#"{"mode":"in-page","written_by":"build-web.sh"}"#,
        ),
        ("fleet-web-8f3a2b1c0d9e4f5a_bg.wasm.gz", b"\x1f\x8b"),
        ("fleet-web-8f3a2b1c0d9e4f5a_bg.wasm.br", b"br"),
        ("index.html.gz", b"\x1f\x8b"),
    ];
    std::fs::create_dir_all(dir).unwrap();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn publish(moto: &Moto, args: &[&str]) -> Output {
    let mut args = args.to_vec();
    args.insert(0, "publish-page");
    fleet_aws(moto, &args).output().unwrap()
}

#[test]
fn the_build_and_the_stacks_config_land_in_the_bucket_with_their_headers() {
    let moto = start_moto();
    let aws = Aws::new(&moto);
    let bucket = aws.stack(
        "fleet",
        true,
        &[("PageUrl", PAGE_URL), ("WebConfig", WEB_CONFIG)],
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("dist");
    dist(&d);

    let out = publish(&moto, &["--stack", "fleet", "--dist", d.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Open {PAGE_URL}")),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("Uploaded 5 files"), "{}", text(&out));

    let objects = aws.objects(&bucket);
    let summary: Vec<(&str, &str, &str)> = objects
        .iter()
        .map(|(k, (t, c, _))| (k.as_str(), t.as_str(), c.as_str()))
        .collect();
    let immutable = "public, max-age=31536000, immutable";
    assert_eq!(
        summary,
        [
            ("config.json", "application/json", "no-cache"),
            (JS, "text/javascript; charset=utf-8", immutable),
            (WASM, "application/wasm", immutable),
            ("index.html", "text/html; charset=utf-8", "no-cache"),
            (CSS, "text/css; charset=utf-8", immutable),
        ]
    );
    // config.json is the stack's output, byte for byte; the files are the build's.
    assert_eq!(
        String::from_utf8(objects["config.json"].2.clone()).unwrap(),
        WEB_CONFIG
    );
    for name in [JS, WASM, CSS, "index.html"] {
        assert_eq!(
            objects[name].2,
            std::fs::read(d.join(name)).unwrap(),
            "{name}"
        );
    }

    // A second publish (a new build) replaces the files in place.
    std::fs::write(d.join("index.html"), "<!doctype html><p>new build").unwrap();
    let out = publish(&moto, &["--stack", "fleet", "--dist", d.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        aws.objects(&bucket)["index.html"].2,
        b"<!doctype html><p>new build"
    );
}

#[test]
fn a_stack_without_browser_access_needs_in_page_and_gets_the_in_page_config() {
    let moto = start_moto();
    let aws = Aws::new(&moto);
    let bucket = aws.stack("guests-off", true, &[("PageUrl", PAGE_URL)]);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("dist");
    dist(&d);
    let dir = d.to_str().unwrap();

    let out = publish(&moto, &["--stack", "guests-off", "--dist", dir]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no WebConfig output") && stderr.contains("BrowserAccess=true"),
        "{}",
        text(&out)
    );
    assert!(aws.objects(&bucket).is_empty(), "nothing is uploaded");

    let out = publish(
        &moto,
        &["--stack", "guests-off", "--dist", dir, "--in-page"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let config: serde_json::Value =
        serde_json::from_slice(&aws.objects(&bucket)["config.json"].2).unwrap();
    assert_eq!(config["mode"], "in-page");
}

#[test]
fn a_missing_stack_a_stack_without_hosting_and_a_missing_build_are_said_plainly() {
    let moto = start_moto();
    let aws = Aws::new(&moto);
    aws.stack("no-hosting", false, &[("WebConfig", WEB_CONFIG)]);
    let bucket = aws.stack("fleet", true, &[("WebConfig", WEB_CONFIG)]);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("dist");
    dist(&d);
    let dir = d.to_str().unwrap();

    let fails = |args: &[&str], words: &[&str]| {
        let out = publish(&moto, args);
        assert!(!out.status.success(), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for w in words {
            assert!(stderr.contains(w), "{w:?} not in\n{}", text(&out));
        }
    };
    fails(
        &["--stack", "nope", "--dist", dir],
        &["no stack named nope"],
    );
    fails(
        &["--stack", "no-hosting", "--dist", dir],
        &["no PageBucketName output", "PageHosting=true"],
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(
        &["--stack", "fleet", "--dist", empty.to_str().unwrap()],
        &["has no index.html", "scripts/build-web.sh"],
    );
    assert!(aws.objects(&bucket).is_empty(), "nothing is uploaded");
}
