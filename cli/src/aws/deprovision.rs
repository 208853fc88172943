//! `fleet aws deprovision`: removes what a `fleet aws provision` manifest lists, and the
//! files it wrote.
//!
//! Per device: DetachPolicy, DetachThingPrincipal, UpdateCertificate INACTIVE,
//! DeleteCertificate, DeleteThing, then its two files. Anything already gone counts as
//! removed. IoT Core applies detaches asynchronously, so a deletion refused because
//! something is "still attached" is retried for a while. Devices that fail stay in the
//! manifest for the next run; when none is left, the manifest, the root CA it wrote and the
//! directory it created (if empty) go too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use clap::Args;

use super::manifest::{DeviceRecord, Manifest};
use super::pace::{self, Ending, Flow};
use super::registry::{CallError, ErrorKind, Registry};
use super::{Connection, sdk_config};
use crate::certs::DeviceCertDir;

/// Flags of `fleet aws deprovision`.
#[derive(Debug, Clone, Args)]
pub struct DeprovisionArgs {
    /// The directory `fleet aws provision --out` wrote (with fleet-devices.json).
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub aws: Connection,
}

/// Devices between their first and last call at once (see provision).
const MAX_IN_FLIGHT: usize = 32;
const PROGRESS_EVERY: usize = 100;
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Waits between attempts at a deletion refused while a detach propagates: about 30 s in
/// all, far more than IoT Core usually needs.
const STILL_ATTACHED_WAITS_MS: [u64; 7] = [250, 500, 1_000, 2_000, 4_000, 8_000, 15_000];

/// What one device's removal found.
#[derive(Debug, Default, Clone, Copy)]
struct Removed {
    things_deleted: u32,
    things_gone: u32,
    certificates_deleted: u32,
    certificates_gone: u32,
}

struct Device {
    id: String,
    record: DeviceRecord,
    result: Result<Removed>,
}

pub async fn run(args: DeprovisionArgs) -> Result<()> {
    let rate = args.aws.rate()?;
    let dir = DeviceCertDir::new(&args.dir);
    let Some(mut manifest) = Manifest::load(dir.path())? else {
        println!(
            "Nothing to remove: {} does not exist (never provisioned, or already removed).",
            Manifest::path(dir.path()).display()
        );
        return Ok(());
    };
    if let Some(region) = &args.aws.region
        && *region != manifest.region
    {
        bail!(
            "--region {region}: the devices in {} live in {}",
            Manifest::path(dir.path()).display(),
            manifest.region
        );
    }
    let endpoint_url = args
        .aws
        .endpoint_url
        .clone()
        .or_else(|| manifest.endpoint_url.clone());
    let config = sdk_config(Some(&manifest.region), endpoint_url.as_deref()).await?;
    let registry = Registry::new(&config);

    let work: Vec<Device> = manifest
        .devices
        .iter()
        .map(|(id, record)| Device {
            id: id.clone(),
            record: record.clone(),
            result: Ok(Removed::default()),
        })
        .collect();
    let total = work.len();
    println!(
        "Removing {total} device(s) from {} at up to {rate} per second…",
        manifest.region
    );
    let started = Instant::now();
    let mut last_save = Instant::now();
    let mut removed = Removed::default();
    let mut files_removed = 0usize;
    let mut failures: Vec<(String, anyhow::Error)> = Vec::new();
    let mut finished = 0usize;
    let context = Arc::new((registry, manifest.policy.clone()));
    let save_dir = dir.path().to_owned();
    let ending = pace::run(
        work,
        rate,
        MAX_IN_FLIGHT,
        |device| {
            let context = context.clone();
            async move {
                let (registry, policy) = &*context;
                remove_one(registry, policy, device).await
            }
        },
        |device: Device| {
            finished += 1;
            let flow = match device.result {
                Ok(r) => {
                    removed.things_deleted += r.things_deleted;
                    removed.things_gone += r.things_gone;
                    removed.certificates_deleted += r.certificates_deleted;
                    removed.certificates_gone += r.certificates_gone;
                    // Only once AWS holds nothing of the device do its key and record go.
                    match remove_device_files(&dir, &device.id) {
                        Ok(n) => {
                            files_removed += n;
                            manifest.devices.remove(&device.id);
                            Flow::Continue
                        }
                        Err(e) => {
                            failures.push((device.id, e));
                            Flow::Stop
                        }
                    }
                }
                Err(e) => {
                    failures.push((device.id, e));
                    Flow::Stop
                }
            };
            if last_save.elapsed() >= SAVE_EVERY && manifest.save(&save_dir).is_ok() {
                last_save = Instant::now();
            }
            if finished.is_multiple_of(PROGRESS_EVERY) && finished < total {
                println!(
                    "  {finished}/{total} ({:.1} per second)",
                    finished as f64 / started.elapsed().as_secs_f64()
                );
            }
            flow
        },
    )
    .await?;

    let d = dir.path().display();
    if manifest.devices.is_empty() {
        files_removed += remove_dir_files(&dir, &manifest)?;
    } else {
        manifest.save(dir.path())?;
    }
    println!(
        "Removed {} device(s) in {:.1} s: {} thing(s) deleted ({} already gone), {} certificate(s) \
         deactivated and deleted ({} already gone), {files_removed} file(s) removed from {d}.",
        total - manifest.devices.len(),
        started.elapsed().as_secs_f64(),
        removed.things_deleted,
        removed.things_gone,
        removed.certificates_deleted,
        removed.certificates_gone,
    );
    if let Some((id, e)) = failures.first() {
        return Err(anyhow!("{e:#}").context(format!(
            "device {id}: not removed; {} device(s) remain in {d}/{}: run the same command again",
            manifest.devices.len(),
            super::manifest::FILE_NAME
        )));
    }
    if ending == Ending::Interrupted {
        bail!(
            "interrupted; {} device(s) remain in the manifest: run the same command again",
            manifest.devices.len()
        );
    }
    Ok(())
}

async fn remove_one(registry: &Registry, policy: &str, mut device: Device) -> Device {
    device.result = remove_from_aws(registry, policy, &device.id, &device.record).await;
    device
}

/// Removes the device's certificate and thing. Every step tolerates "not found": a
/// previous run, or someone else, may have removed part of it already.
async fn remove_from_aws(
    registry: &Registry,
    policy: &str,
    thing: &str,
    record: &DeviceRecord,
) -> Result<Removed> {
    let mut removed = Removed::default();
    if let Some(cert) = &record.certificate {
        // Detach even when the record says it never attached: the attach may have
        // succeeded after the last save.
        gone_is_fine(registry.detach_policy(policy, &cert.arn).await)?;
        if record.thing_arn.is_some() {
            gone_is_fine(registry.detach_thing(thing, &cert.arn).await)?;
        }
        let exists = gone_is_fine(registry.deactivate_certificate(&cert.id).await)?;
        let deleted =
            exists && retry_while_attached(|| registry.delete_certificate(&cert.id)).await?;
        if deleted {
            removed.certificates_deleted += 1;
        } else {
            removed.certificates_gone += 1;
        }
    }
    if record.thing_arn.is_some() {
        if retry_while_attached(|| registry.delete_thing(thing)).await? {
            removed.things_deleted += 1;
        } else {
            removed.things_gone += 1;
        }
    }
    Ok(removed)
}

/// `Ok(true)` if the call succeeded, `Ok(false)` if the resource was not there.
fn gone_is_fine(result: Result<(), CallError>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A deletion, retried while IoT Core still sees an attachment that was just detached.
async fn retry_while_attached<F, Fut>(mut call: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), CallError>>,
{
    let mut waits = STILL_ATTACHED_WAITS_MS.iter();
    loop {
        match call().await {
            Err(e) if e.kind == ErrorKind::StillAttached => match waits.next() {
                Some(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
                None => return Err(e.into()),
            },
            other => return gone_is_fine(other),
        }
    }
}

/// Removes a device's certificate and key; returns how many files were there.
fn remove_device_files(dir: &DeviceCertDir, id: &str) -> Result<usize> {
    let Ok(id) = fleet_core::DeviceId::try_from(id) else {
        // Not an id provision would have written files for.
        return Ok(0);
    };
    let mut n = 0;
    for path in [dir.cert(&id), dir.key(&id)] {
        n += usize::from(remove_file(&path)?);
    }
    Ok(n)
}

/// With every device gone: the manifest, the root CA if provision wrote it, and the
/// directory if provision created it and nothing else is in it.
fn remove_dir_files(dir: &DeviceCertDir, manifest: &Manifest) -> Result<usize> {
    let mut n = 0;
    if manifest.root_ca_written {
        n += usize::from(remove_file(&dir.root_ca())?);
    }
    n += usize::from(Manifest::remove(dir.path())?);
    if manifest.created_dir {
        // Fails, harmlessly, when the directory holds anything else.
        let _ = std::fs::remove_dir(dir.path());
    }
    Ok(n)
}

/// Removes a file; `false` if it was not there.
fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow!(e).context(format!("removing {}", path.display()))),
    }
}
