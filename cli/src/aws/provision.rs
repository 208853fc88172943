//! `fleet aws provision`: per device a thing named by its id, an active certificate with
//! the device policy attached, the thing attached to the certificate, and the files.
//!
//! Per device, in order, each step recorded in the manifest once AWS confirmed it:
//! DescribeThing (a thing of that name that this manifest does not list is left alone and
//! reported), CreateThing, CreateKeysAndCertificate (the key is written at once, mode
//! 0600, never over an existing file), AttachPolicy, AttachThingPrincipal.
//!
//! Running it again with the same directory is safe: devices the manifest lists as complete
//! are skipped, devices it lists halfway are finished, new ids are added.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use fleet_core::{DeviceId, Fleet};

use super::manifest::{Certificate, DeviceRecord, Manifest};
use super::pace::{self, Ending, Flow};
use super::registry::Registry;
use super::{Connection, amazon_root_ca1, sdk_config};
use crate::certs::DeviceCertDir;

/// Flags of `fleet aws provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// Number of devices, with the ids `fleet sim --devices N` uses: d-0001, d-0002, …
    #[arg(long, required_unless_present = "device", conflicts_with = "device",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: Option<u32>,
    /// A device id to provision (repeatable), instead of --devices.
    #[arg(long = "device", value_name = "ID")]
    pub device: Vec<String>,
    /// The IoT policy to attach to every certificate: the stack's `DevicePolicyName`
    /// output (`sam list stack-outputs --stack-name fleet`).
    #[arg(long, value_name = "NAME")]
    pub policy: String,
    /// Where to write the certificates, keys, AmazonRootCA1.pem and the manifest
    /// fleet-devices.json.
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub out: PathBuf,
    #[command(flatten)]
    pub aws: Connection,
}

/// How many devices may be between their first and last call at once. The pacing sets the
/// rate; this only bounds the work piled up while AWS is slow or throttling.
const MAX_IN_FLIGHT: usize = 32;

/// Progress is printed every this many devices.
const PROGRESS_EVERY: usize = 100;

/// The manifest is rewritten at most this often while devices complete (and always at the
/// end): a crash loses at most this much of the record.
const SAVE_EVERY: Duration = Duration::from_secs(1);

impl ProvisionArgs {
    /// The device ids, validated, without duplicates, in order.
    fn ids(&self) -> Result<Vec<DeviceId>> {
        if let Some(n) = self.devices {
            return Ok((0..n as usize).map(Fleet::device_id).collect());
        }
        let mut seen = BTreeSet::new();
        let mut ids = Vec::new();
        for text in &self.device {
            let id =
                DeviceId::try_from(text.as_str()).with_context(|| format!("--device {text:?}"))?;
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

/// What happened to one device.
enum Outcome {
    /// Already complete in the manifest: nothing to do.
    AlreadyDone,
    /// Provisioned now (or finished now).
    Done,
    /// A thing with its name exists and this manifest does not list it: not touched.
    ThingExists,
    /// Its certificate or key file exists and this manifest does not list the device: not
    /// touched.
    FilesExist(PathBuf),
    /// Complete in the manifest, but one of its files is gone.
    FilesMissing(PathBuf),
    /// A step failed; the record says what exists.
    Failed(anyhow::Error),
}

/// One device's work item and result.
struct Device {
    id: DeviceId,
    record: DeviceRecord,
    outcome: Outcome,
}

pub async fn run(args: ProvisionArgs) -> Result<()> {
    let ids = args.ids()?;
    let rate = args.aws.rate()?;
    let policy = args.policy.trim().to_owned();
    if policy.is_empty() {
        bail!("--policy is empty: give the stack's DevicePolicyName output");
    }
    let dir = DeviceCertDir::new(&args.out);
    let existing = Manifest::load(dir.path())?;

    let config = sdk_config(args.aws.region.as_deref(), args.aws.endpoint_url.as_deref()).await?;
    let region = config.region().map(ToString::to_string).unwrap_or_default();
    let registry = Registry::new(&config);
    let endpoint = registry
        .data_endpoint()
        .await
        .context("looking up the IoT data endpoint (are the credentials and region right?)")?;
    let account = match registry.policy_arn(&policy).await {
        // arn:PARTITION:iot:REGION:ACCOUNT:policy/NAME
        Ok(arn) => arn.split(':').nth(4).unwrap_or_default().to_owned(),
        Err(e) if e.is_not_found() => bail!(
            "no IoT policy named {policy:?} in {region}: give the stack's DevicePolicyName output"
        ),
        Err(e) => return Err(anyhow!(e).context(format!("checking the IoT policy {policy:?}"))),
    };

    let mut manifest = match existing {
        Some(m) => {
            let path = Manifest::path(dir.path());
            // One manifest, one account, region and policy: deprovision uses them for all.
            if (&m.account, &m.region, &m.policy) != (&account, &region, &policy) {
                bail!(
                    "{} lists devices of account {} in {} with policy {:?}; this run is account \
                     {account} in {region} with policy {policy:?}: use another --out",
                    path.display(),
                    m.account,
                    m.region,
                    m.policy,
                );
            }
            m
        }
        None => {
            let mut m = Manifest::new(account, region.clone(), endpoint, policy.clone());
            m.endpoint_url = args.aws.endpoint_url.clone();
            m.created_dir = !dir.path().exists();
            m
        }
    };
    std::fs::create_dir_all(dir.path())
        .with_context(|| format!("creating {}", dir.path().display()))?;
    let root_ca = dir.root_ca();
    if !root_ca.exists() {
        write_new(&root_ca, amazon_root_ca1()?.as_bytes(), false)?;
        manifest.root_ca_written = true;
    }
    // The manifest exists before the first resource does.
    manifest.save(dir.path())?;

    // What each id needs: nothing, a check, or the rest of its steps.
    let mut work = Vec::new();
    let mut results: Vec<Device> = Vec::new();
    for id in ids {
        let record = manifest.devices.get(id.as_str()).cloned();
        let device = |outcome| Device {
            id: id.clone(),
            record: record.clone().unwrap_or_default(),
            outcome,
        };
        match &record {
            Some(r) if r.is_complete() => {
                let missing = [dir.cert(&id), dir.key(&id)]
                    .into_iter()
                    .find(|p| !p.exists());
                results.push(device(match missing {
                    Some(path) => Outcome::FilesMissing(path),
                    None => Outcome::AlreadyDone,
                }));
            }
            Some(_) => work.push(device(Outcome::Done)),
            None => match [dir.cert(&id), dir.key(&id)]
                .into_iter()
                .find(|p| p.exists())
            {
                Some(path) => results.push(device(Outcome::FilesExist(path))),
                None => work.push(device(Outcome::Done)),
            },
        }
    }

    let total = work.len();
    if total > 0 {
        println!(
            "Provisioning {total} device(s) in {region} at up to {rate} per second (about {:.0} s)…",
            total as f64 / rate
        );
    }
    let started = Instant::now();
    let mut last_save = Instant::now();
    let mut finished = 0usize;
    let context = Arc::new((registry, dir.clone(), policy.clone()));
    let ending = {
        let save_dir = dir.path().to_owned();
        pace::run(
            work,
            rate,
            MAX_IN_FLIGHT,
            |device| {
                let context = context.clone();
                async move {
                    let (registry, dir, policy) = &*context;
                    provision_one(registry, dir, policy, device).await
                }
            },
            |device: Device| {
                finished += 1;
                if device.record.created_anything() {
                    manifest
                        .devices
                        .insert(device.id.to_string(), device.record.clone());
                }
                let flow = match &device.outcome {
                    Outcome::Failed(_) => Flow::Stop,
                    _ => Flow::Continue,
                };
                if last_save.elapsed() >= SAVE_EVERY {
                    // A failed save now is retried at the end, where it is reported.
                    if manifest.save(&save_dir).is_ok() {
                        last_save = Instant::now();
                    }
                }
                if finished.is_multiple_of(PROGRESS_EVERY) && finished < total {
                    println!(
                        "  {finished}/{total} ({:.1} per second)",
                        finished as f64 / started.elapsed().as_secs_f64()
                    );
                }
                results.push(device);
                flow
            },
        )
        .await
    };
    let saved = manifest.save(dir.path());
    let ending = ending?;
    saved?;
    report(&dir, &manifest, &results, ending, started.elapsed())
}

/// The remaining steps of one device.
async fn provision_one(
    registry: &Registry,
    dir: &DeviceCertDir,
    policy: &str,
    mut device: Device,
) -> Device {
    device.outcome = match steps(registry, dir, policy, &device.id, &mut device.record).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e.context(format!("device {}", device.id))),
    };
    device
}

async fn steps(
    registry: &Registry,
    dir: &DeviceCertDir,
    policy: &str,
    id: &DeviceId,
    record: &mut DeviceRecord,
) -> Result<Outcome> {
    let name = id.as_str();
    if record.thing_arn.is_none() {
        // CreateThing succeeds on an existing thing with the same settings, so only a
        // lookup tells ours from someone else's.
        if registry.thing_exists(name).await? {
            return Ok(Outcome::ThingExists);
        }
        record.thing_arn = Some(registry.create_thing(name).await?);
    }
    let cert = match &record.certificate {
        Some(cert) if record.files => cert.clone(),
        Some(cert) => bail!(
            "its certificate {} was created but its files were not written, and AWS never \
             returns a private key again: run `fleet aws deprovision --dir {}`, then provision again",
            cert.id,
            dir.path().display()
        ),
        None => {
            let new = registry.create_certificate().await?;
            let cert = Certificate {
                id: new.id,
                arn: new.arn,
            };
            record.certificate = Some(cert.clone());
            write_new(&dir.cert(id), new.pem.as_bytes(), false)?;
            write_new(&dir.key(id), new.private_key.as_bytes(), true)?;
            record.files = true;
            cert
        }
    };
    if !record.policy_attached {
        registry.attach_policy(policy, &cert.arn).await?;
        record.policy_attached = true;
    }
    if !record.thing_attached {
        registry.attach_thing(name, &cert.arn).await?;
        record.thing_attached = true;
    }
    Ok(Outcome::Done)
}

/// Writes a file that must not exist yet; `private`: readable by its owner only (0600).
fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// What was done, the endpoint, how to run and remove the fleet; an error when a device
/// is not ready.
fn report(
    dir: &DeviceCertDir,
    manifest: &Manifest,
    results: &[Device],
    ending: Ending,
    took: Duration,
) -> Result<()> {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|d| f(&d.outcome)).count();
    let done = count(|o| matches!(o, Outcome::Done));
    let already = count(|o| matches!(o, Outcome::AlreadyDone));
    let d = dir.path().display();
    println!(
        "Provisioned {done} device(s) in {:.1} s{}; the manifest {d}/{} lists {} complete.",
        took.as_secs_f64(),
        if already > 0 {
            format!(" ({already} already provisioned)")
        } else {
            String::new()
        },
        super::manifest::FILE_NAME,
        manifest
            .devices
            .values()
            .filter(|r| r.is_complete())
            .count()
    );
    let names = |f: fn(&Outcome) -> bool| -> Vec<String> {
        results
            .iter()
            .filter(|d| f(&d.outcome))
            .map(|d| d.id.to_string())
            .collect()
    };
    let exists = names(|o| matches!(o, Outcome::ThingExists));
    if !exists.is_empty() {
        println!(
            "Not touched, a thing with the same name exists and this manifest does not list it ({}): {}",
            exists.len(),
            abbreviate(&exists)
        );
    }
    for device in results {
        match &device.outcome {
            Outcome::FilesExist(path) => println!(
                "Not touched, {} exists and this manifest does not list {}",
                path.display(),
                device.id
            ),
            Outcome::FilesMissing(path) => println!(
                "{}: provisioned, but {} is gone (AWS never hands out a private key twice): \
                 deprovision and provision again",
                device.id,
                path.display()
            ),
            _ => {}
        }
    }

    let complete: Vec<&str> = manifest
        .devices
        .iter()
        .filter(|(_, r)| r.is_complete())
        .map(|(id, _)| id.as_str())
        .collect();
    println!("\nData endpoint (iot:Data-ATS): {}", manifest.endpoint);
    if !complete.is_empty() {
        println!("Run them:");
        println!(
            "  {}",
            sim_command(&manifest.endpoint, &d.to_string(), &complete)
        );
    }
    println!("Remove them:\n  fleet aws deprovision --dir {d}");

    let failure = results.iter().find_map(|d| match &d.outcome {
        Outcome::Failed(e) => Some(e),
        _ => None,
    });
    let not_ready = results.len() - done - already;
    match (failure, ending) {
        (Some(e), _) => Err(anyhow!("{e:#}").context(format!(
            "stopped at the first error; the manifest lists what was created: run the same \
             command again to finish, or `fleet aws deprovision --dir {d}` to remove it"
        ))),
        (None, Ending::Interrupted) => bail!(
            "interrupted; the manifest lists what was created: run the same command again to \
             finish, or `fleet aws deprovision --dir {d}` to remove it"
        ),
        (None, _) if not_ready > 0 => bail!(
            "{not_ready} of {} device(s) not provisioned (see above)",
            results.len()
        ),
        (None, _) => Ok(()),
    }
}

/// The `fleet sim` command line for these devices.
fn sim_command(endpoint: &str, dir: &str, ids: &[&str]) -> String {
    let base = format!("fleet sim --iot-endpoint {endpoint} --cert-dir {dir}");
    let numbered = ids
        .iter()
        .enumerate()
        .all(|(i, id)| *id == Fleet::device_id(i).as_str());
    match ids {
        [one] if !numbered => format!("{base} --device-id {one}"),
        _ if numbered => format!("{base} --devices {}", ids.len()),
        // `fleet sim` numbers a fleet d-0001…; other ids run one per command.
        _ => format!(
            "{base} --device-id ID   # one per device: {}",
            abbreviate(ids)
        ),
    }
}

/// At most ten names, then how many more.
fn abbreviate<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(10).map(AsRef::as_ref).collect();
    match names.len() {
        n if n > 10 => format!("{} and {} more", shown.join(", "), n - 10),
        _ => shown.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        args: ProvisionArgs,
    }

    fn parse(args: &[&str]) -> Result<ProvisionArgs, clap::Error> {
        Probe::try_parse_from([&["probe"], args].concat()).map(|p| p.args)
    }

    #[test]
    fn ids_are_the_simulators_or_the_ones_given() {
        let a = parse(&["--devices", "3", "--policy", "P"]).unwrap();
        let ids: Vec<String> = a.ids().unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(ids, ["d-0001", "d-0002", "d-0003"]);
        let a = parse(&[
            "--device", "b", "--device", "a", "--device", "b", "--policy", "P",
        ])
        .unwrap();
        let ids: Vec<String> = a.ids().unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(ids, ["b", "a"]);
        let a = parse(&["--device", "no/slash", "--policy", "P"]).unwrap();
        let err = format!("{:#}", a.ids().unwrap_err());
        assert!(err.contains("--device \"no/slash\""), "{err}");
        assert!(
            parse(&["--policy", "P"]).is_err(),
            "needs --devices or --device"
        );
        assert!(parse(&["--devices", "2", "--device", "x", "--policy", "P"]).is_err());
        assert!(parse(&["--devices", "0", "--policy", "P"]).is_err());
        assert!(parse(&["--devices", "2"]).is_err(), "needs --policy");
    }

    #[test]
    fn the_sim_command_matches_the_ids() {
        let e = "x-ats.iot.eu-west-1.amazonaws.com";
        assert_eq!(
            sim_command(e, "certs", &["d-0001", "d-0002"]),
            format!("fleet sim --iot-endpoint {e} --cert-dir certs --devices 2")
        );
        assert_eq!(
            sim_command(e, "certs", &["381938912"]),
            format!("fleet sim --iot-endpoint {e} --cert-dir certs --device-id 381938912")
        );
        assert!(sim_command(e, "certs", &["d-0002", "d-0003"]).contains("one per device"));
    }

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        assert_eq!(
            abbreviate(&names),
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more"
        );
        assert_eq!(abbreviate(&["a", "b"]), "a, b");
    }

    #[test]
    fn files_are_never_overwritten_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        write_new(&key, b"secret", true).unwrap();
        let err = format!("{:#}", write_new(&key, b"other", true).unwrap_err());
        assert!(err.contains("creating"), "{err}");
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
