//! `fleet aws provision` and `fleet aws deprovision` as a user runs them, against
//! `moto_server` on 127.0.0.1: the things, certificates and attachments moto ends up with,
//! the files on disk, re-runs, a thing that was there before, an interrupted run and a
//! half-provisioned manifest.
//!
//! Each test starts moto itself on a free port and stops it when done (`support::moto`).

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use support::moto::{Moto, REGION, fleet_aws, start_moto};

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_iot::config::Credentials;
use aws_sdk_iot::types::CertificateStatus;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

const POLICY: &str = "fleet-DevicePolicy";

/// The test's own view of moto's IoT, through the real SDK.
struct Iot {
    client: aws_sdk_iot::Client,
    rt: tokio::runtime::Runtime,
}

impl Iot {
    fn new(moto: &Moto) -> Iot {
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
        let iot = Iot {
            client: aws_sdk_iot::Client::new(&config),
            rt,
        };
        let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}]}"#;
        iot.rt
            .block_on(
                iot.client
                    .create_policy()
                    .policy_name(POLICY)
                    .policy_document(document)
                    .send(),
            )
            .unwrap();
        iot
    }

    fn things(&self) -> BTreeSet<String> {
        let out = self.rt.block_on(self.client.list_things().send()).unwrap();
        out.things()
            .iter()
            .map(|t| t.thing_name().unwrap().to_owned())
            .collect()
    }

    fn certificate_ids(&self) -> BTreeSet<String> {
        let out = self
            .rt
            .block_on(self.client.list_certificates().send())
            .unwrap();
        out.certificates()
            .iter()
            .map(|c| c.certificate_id().unwrap().to_owned())
            .collect()
    }

    fn principals(&self, thing: &str) -> Vec<String> {
        self.rt
            .block_on(self.client.list_thing_principals().thing_name(thing).send())
            .unwrap()
            .principals()
            .to_vec()
    }

    fn status(&self, certificate_id: &str) -> CertificateStatus {
        let out = self
            .rt
            .block_on(
                self.client
                    .describe_certificate()
                    .certificate_id(certificate_id)
                    .send(),
            )
            .unwrap();
        out.certificate_description()
            .unwrap()
            .status()
            .unwrap()
            .clone()
    }

    fn policies(&self, target: &str) -> Vec<String> {
        let out = self
            .rt
            .block_on(self.client.list_attached_policies().target(target).send())
            .unwrap();
        out.policies()
            .iter()
            .map(|p| p.policy_name().unwrap().to_owned())
            .collect()
    }

    fn create_thing(&self, name: &str) -> String {
        let out = self
            .rt
            .block_on(self.client.create_thing().thing_name(name).send())
            .unwrap();
        out.thing_arn().unwrap().to_owned()
    }
}

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn succeeds(c: Command) -> String {
    let out = run(c);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("fleet-devices.json")).unwrap()).unwrap()
}

fn ids(n: usize) -> BTreeSet<String> {
    (1..=n).map(|i| format!("d-{i:04}")).collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn provision_creates_one_attached_thing_per_device_and_deprovision_removes_all() {
    let moto = start_moto();
    let iot = Iot::new(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let d = dir.to_str().unwrap();
    let provision = || {
        fleet_aws(
            &moto,
            &[
                "provision",
                "--devices",
                "5",
                "--policy",
                POLICY,
                "--out",
                d,
            ],
        )
    };

    let t0 = Instant::now();
    let stdout = succeeds(provision());
    eprintln!("provision of 5 devices: {:?}", t0.elapsed());

    // moto holds exactly these things, each with one ACTIVE certificate carrying the policy.
    assert_eq!(iot.things(), ids(5));
    let m = manifest(&dir);
    assert_eq!(m["region"], REGION);
    assert_eq!(m["policy"], POLICY);
    let endpoint = m["endpoint"].as_str().unwrap();
    assert!(endpoint.contains("-ats.iot."), "{endpoint}");
    let devices = m["devices"].as_object().unwrap();
    assert_eq!(devices.keys().cloned().collect::<BTreeSet<_>>(), ids(5));
    let mut certificate_ids = BTreeSet::new();
    for id in ids(5) {
        let principals = iot.principals(&id);
        assert_eq!(principals.len(), 1, "{id}: {principals:?}");
        let record = &devices[&id];
        assert_eq!(
            principals[0],
            record["certificate"]["arn"].as_str().unwrap()
        );
        let cert_id = record["certificate"]["id"].as_str().unwrap();
        assert_eq!(iot.status(cert_id), CertificateStatus::Active);
        assert_eq!(iot.policies(&principals[0]), [POLICY]);
        assert!(
            record["thing_arn"]
                .as_str()
                .unwrap()
                .ends_with(&format!("thing/{id}"))
        );
        certificate_ids.insert(cert_id.to_owned());

        // The files fleet sim loads: PEM, the key readable by its owner only.
        let cert = dir.join(format!("{id}.cert.pem"));
        let key = dir.join(format!("{id}.private.key"));
        CertificateDer::from_pem_file(&cert).unwrap();
        PrivateKeyDer::from_pem_file(&key).unwrap();
        #[cfg(unix)]
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
    assert_eq!(iot.certificate_ids(), certificate_ids);
    let roots: Vec<_> = CertificateDer::pem_file_iter(dir.join("AmazonRootCA1.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(roots.len(), 1);

    // It says where devices connect and how to run them.
    assert!(
        stdout.contains(&format!("Data endpoint (iot:Data-ATS): {endpoint}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "fleet sim --iot-endpoint {endpoint} --cert-dir {d} --devices 5"
        )),
        "{stdout}"
    );

    // Again: nothing new is created.
    let stdout = succeeds(provision());
    assert!(stdout.contains("Provisioned 0 device(s)"), "{stdout}");
    assert!(stdout.contains("(5 already provisioned)"), "{stdout}");
    assert_eq!(iot.things(), ids(5));
    assert_eq!(iot.certificate_ids(), certificate_ids);

    // A key lost on disk cannot be fetched again: said so, and nothing is created.
    let lost = dir.join("d-0005.private.key");
    std::fs::remove_file(&lost).unwrap();
    let out = run(provision());
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "d-0005: provisioned, but {} is gone",
            lost.display()
        )),
        "{}",
        text(&out)
    );
    assert_eq!(iot.certificate_ids(), certificate_ids);

    let t0 = Instant::now();
    let stdout = succeeds(fleet_aws(&moto, &["deprovision", "--dir", d]));
    eprintln!("deprovision of 5 devices: {:?}", t0.elapsed());
    assert!(
        stdout.contains("Removed 5 device(s)")
            && stdout.contains("5 thing(s) deleted (0 already gone)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("5 certificate(s) deactivated and deleted (0 already gone)"),
        "{stdout}"
    );
    // 5 certificates, 4 keys, the root CA and the manifest.
    assert!(stdout.contains("11 file(s) removed"), "{stdout}");
    assert_eq!(iot.things(), BTreeSet::new());
    assert_eq!(iot.certificate_ids(), BTreeSet::new());
    assert!(!dir.exists(), "the directory provision created is removed");

    // A second deprovision is harmless.
    let stdout = succeeds(fleet_aws(&moto, &["deprovision", "--dir", d]));
    assert!(stdout.contains("Nothing to remove"), "{stdout}");
}

#[test]
fn a_thing_that_was_there_before_is_reported_and_never_touched() {
    let moto = start_moto();
    let iot = Iot::new(&moto);
    iot.create_thing("d-0002");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();

    let out = run(fleet_aws(
        &moto,
        &[
            "provision",
            "--devices",
            "3",
            "--policy",
            POLICY,
            "--out",
            d,
        ],
    ));
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("Not touched, a thing with the same name exists and this manifest does not list it (1): d-0002"),
        "{all}"
    );
    assert!(all.contains("1 of 3 device(s) not provisioned"), "{all}");
    assert_eq!(iot.things(), ids(3));
    assert!(iot.principals("d-0002").is_empty());
    assert!(!tmp.path().join("d-0002.private.key").exists());
    let m = manifest(tmp.path());
    let listed: BTreeSet<String> = m["devices"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(listed, BTreeSet::from(["d-0001".into(), "d-0003".into()]));

    // Deprovision removes its own two and leaves the other thing alone, and keeps the
    // directory, which it did not create.
    succeeds(fleet_aws(&moto, &["deprovision", "--dir", d]));
    assert_eq!(iot.things(), BTreeSet::from(["d-0002".to_owned()]));
    assert_eq!(iot.certificate_ids(), BTreeSet::new());
    assert!(tmp.path().is_dir());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn an_interrupted_run_leaves_a_manifest_of_everything_it_created() {
    let moto = start_moto();
    let iot = Iot::new(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("certs");
    let d = d.to_str().unwrap();

    // 40 devices at 10 per second take 4 s; Ctrl-C (SIGINT) once a few things exist.
    let child = fleet_aws(
        &moto,
        &[
            "provision",
            "--devices",
            "40",
            "--rate",
            "10",
            "--policy",
            POLICY,
            "--out",
            d,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while iot.things().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "provision created nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));

    // Every thing and certificate that exists is in the manifest, complete.
    let things = iot.things();
    assert!(!things.is_empty() && things.len() < 40, "{things:?}");
    let m = manifest(Path::new(d));
    let devices = m["devices"].as_object().unwrap();
    assert_eq!(devices.keys().cloned().collect::<BTreeSet<_>>(), things);
    let listed_certs: BTreeSet<String> = devices
        .values()
        .map(|r| r["certificate"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed_certs, iot.certificate_ids());

    // Running it again finishes the job; deprovision then removes all of it.
    succeeds(fleet_aws(
        &moto,
        &[
            "provision",
            "--devices",
            "40",
            "--rate",
            "100",
            "--policy",
            POLICY,
            "--out",
            d,
        ],
    ));
    assert_eq!(iot.things(), ids(40));
    assert_eq!(iot.certificate_ids().len(), 40);
    succeeds(fleet_aws(
        &moto,
        &["deprovision", "--dir", d, "--rate", "100"],
    ));
    assert_eq!(iot.things(), BTreeSet::new());
    assert_eq!(iot.certificate_ids(), BTreeSet::new());
}

#[test]
fn deprovision_cleans_up_half_provisioned_devices_and_things_already_gone() {
    let moto = start_moto();
    let iot = Iot::new(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    succeeds(fleet_aws(
        &moto,
        &[
            "provision",
            "--devices",
            "2",
            "--policy",
            POLICY,
            "--out",
            d,
        ],
    ));
    // As if a run had stopped right after creating d-0003's thing, and someone had deleted
    // d-0002's thing and certificate by hand.
    let arn = iot.create_thing("d-0003");
    let path = tmp.path().join("fleet-devices.json");
    let mut m = manifest(tmp.path());
    m["devices"]["d-0003"] = serde_json::json!({ "thing_arn": arn });
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    let cert = m["devices"]["d-0002"]["certificate"].clone();
    let (cert_id, cert_arn) = (cert["id"].as_str().unwrap(), cert["arn"].as_str().unwrap());
    iot.rt.block_on(async {
        let c = &iot.client;
        c.detach_policy()
            .policy_name(POLICY)
            .target(cert_arn)
            .send()
            .await
            .unwrap();
        c.detach_thing_principal()
            .thing_name("d-0002")
            .principal(cert_arn)
            .send()
            .await
            .unwrap();
        c.update_certificate()
            .certificate_id(cert_id)
            .new_status(CertificateStatus::Inactive)
            .send()
            .await
            .unwrap();
        c.delete_certificate()
            .certificate_id(cert_id)
            .send()
            .await
            .unwrap();
        c.delete_thing().thing_name("d-0002").send().await.unwrap();
    });

    let stdout = succeeds(fleet_aws(&moto, &["deprovision", "--dir", d]));
    assert!(stdout.contains("Removed 3 device(s)"), "{stdout}");
    assert!(
        stdout.contains("2 thing(s) deleted (1 already gone)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 certificate(s) deactivated and deleted (1 already gone)"),
        "{stdout}"
    );
    assert_eq!(iot.things(), BTreeSet::new());
    assert_eq!(iot.certificate_ids(), BTreeSet::new());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_missing_policy_is_named_before_anything_is_created() {
    let moto = start_moto();
    let iot = Iot::new(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("certs");
    let out = run(fleet_aws(
        &moto,
        &[
            "provision",
            "--devices",
            "2",
            "--policy",
            "no-such-policy",
            "--out",
            d.to_str().unwrap(),
        ],
    ));
    assert!(!out.status.success());
    let all = text(&out);
    assert!(
        all.contains("no IoT policy named \"no-such-policy\" in us-east-1"),
        "{all}"
    );
    assert_eq!(iot.things(), BTreeSet::new());
    assert!(!d.exists());
}
