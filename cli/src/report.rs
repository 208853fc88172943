//! The JSON report of a `fleet sim` run (`--report FILE`), and `fleet report merge`, which
//! combines the reports of a fleet's shards into the report of the whole run.
//!
//! A report holds the run's counters and its latency histograms as HDR histograms
//! (`hdrhistogram`'s V2 format, deflated, base64), not just their percentiles: percentiles
//! of shards cannot be combined, histograms can. Merging adds the counters and the
//! histograms' buckets, so the merged histogram is exactly the histogram of every sample of
//! every shard, and its percentiles are the whole fleet's.
//!
//! A report says which device indexes it covers (`ranges`: one per shard, several once
//! merged) and which fleet they belong to (`fleet`: size, seed, building, shape, batch and
//! device parameters). Merging refuses reports of different fleets and reports whose
//! ranges overlap: either would count devices twice or mix runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Cursor;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// The report's format tag: a reader refuses any other.
pub const FORMAT: &str = "fleet-sim-report/1";

/// Latencies are recorded in µs, from 1 µs to an hour, to 3 significant digits.
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in µs, with the bounds every report uses (so any two add exactly).
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds")
}

/// What identifies a fleet: reports merge only if these are equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetKey {
    /// The whole fleet's size (`--devices`), not the shard's.
    pub devices: u32,
    /// `--seed`.
    pub seed: u64,
    /// `--building`.
    pub building: String,
    /// `--legacy`.
    pub legacy: bool,
    /// `--batch`.
    pub batch: u16,
    /// `--update-frequency`, s.
    pub update_frequency_s: f64,
    /// The broker URL the devices connected to.
    pub broker: String,
}

/// Device indexes `start..end` of the fleet (`d-{start+1}` … `d-{end}`), run as shard
/// `shard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// `I/N`.
    pub shard: String,
    /// First index.
    pub start: u32,
    /// One past the last index.
    pub end: u32,
    /// The first device's id.
    pub first: String,
    /// The last device's id.
    pub last: String,
}

/// A latency distribution: the serialized histogram and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Percentiles and maximum, ms (null without samples).
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Largest sample, ms.
    pub max_ms: Option<f64>,
    /// The histogram of µs: `hdrhistogram` V2 + deflate, base64.
    pub hdr: String,
}

impl Latency {
    /// The summary and serialization of `h`.
    pub fn of(h: &Histogram<u64>) -> Result<Latency> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(|e| anyhow::anyhow!("serializing a histogram: {e:?}"))?;
        let ms = |us: u64| (!h.is_empty()).then_some(us as f64 / 1000.0);
        Ok(Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            hdr: BASE64.encode(bytes),
        })
    }

    /// The histogram back, checked against the summary beside it.
    pub fn histogram(&self) -> Result<Histogram<u64>> {
        let bytes = BASE64.decode(&self.hdr).context("hdr is not base64")?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut Cursor::new(bytes))
            .map_err(|e| anyhow::anyhow!("hdr is not an HDR histogram: {e:?}"))?;
        if h.len() != self.count {
            bail!(
                "the histogram holds {} samples, its count says {}",
                h.len(),
                self.count
            );
        }
        Ok(h)
    }
}

/// One run's report (a shard's, or several shards' merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: String,
    /// The fleet the devices belong to.
    pub fleet: FleetKey,
    /// The device indexes covered, in order.
    pub ranges: Vec<IdRange>,
    /// When the (earliest) run started and the (latest) ended, ms since the Unix epoch.
    pub started_ms: u64,
    /// See `started_ms`.
    pub ended_ms: u64,
    /// Whether a run was stopped by a signal rather than `--duration`.
    pub interrupted: bool,
    /// Counters by name: devices, connections, sent, acked, messages, commands, reconnects,
    /// refused, not_sent, latency_unsampled (`metrics::Counts`).
    pub counters: BTreeMap<String, u64>,
    /// Commands carried out, by action.
    pub commands_by_action: BTreeMap<String, u64>,
    /// `round_trip`: a reading's publish to the command answering it; `ack`: a message's
    /// publish to its acknowledgement.
    pub latency: BTreeMap<String, Latency>,
}

impl Report {
    /// Reads and checks a report file.
    pub fn read(path: &Path) -> Result<Report> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a fleet sim report", path.display()))?;
        if report.format != FORMAT {
            bail!(
                "{}: format {:?}, expected {FORMAT:?}",
                path.display(),
                report.format
            );
        }
        for (name, latency) in &report.latency {
            latency
                .histogram()
                .with_context(|| format!("{}: latency {name}", path.display()))?;
        }
        Ok(report)
    }

    /// Writes the report as JSON (through a temporary file, so a reader never sees half).
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("encoding the report")?;
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, json + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// The reports of a fleet's shards as one: counters summed, histograms added.
    pub fn merge(reports: &[(PathBuf, Report)]) -> Result<Report> {
        let Some((first_path, first)) = reports.first() else {
            bail!("nothing to merge: give the shards' report files");
        };
        let mut ranges: Vec<(&Path, &IdRange)> = Vec::new();
        for (path, r) in reports {
            if r.fleet != first.fleet {
                bail!(
                    "{} and {} are reports of different fleets:\n  {:?}\n  {:?}",
                    first_path.display(),
                    path.display(),
                    first.fleet,
                    r.fleet
                );
            }
            ranges.extend(r.ranges.iter().map(|range| (path.as_path(), range)));
        }
        ranges.sort_by_key(|(_, r)| (r.start, r.end));
        for pair in ranges.windows(2) {
            let ((pa, a), (pb, b)) = (pair[0], pair[1]);
            if b.start < a.end {
                bail!(
                    "device ranges overlap: {} has {}..={} (shard {}), {} has {}..={} (shard {}); \
                     each shard must run its own devices",
                    pa.display(),
                    a.first,
                    a.last,
                    a.shard,
                    pb.display(),
                    b.first,
                    b.last,
                    b.shard
                );
            }
        }
        let mut counters = BTreeMap::new();
        let mut commands_by_action = BTreeMap::new();
        let mut histograms: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        for (path, r) in reports {
            for (k, v) in &r.counters {
                *counters.entry(k.clone()).or_insert(0u64) += v;
            }
            for (k, v) in &r.commands_by_action {
                *commands_by_action.entry(k.clone()).or_insert(0u64) += v;
            }
            for (name, latency) in &r.latency {
                let h = latency
                    .histogram()
                    .with_context(|| format!("{}: latency {name}", path.display()))?;
                let merged = histograms
                    .entry(name.clone())
                    .or_insert_with(latency_histogram);
                merged
                    .add(&h)
                    .map_err(|e| anyhow::anyhow!("{}: latency {name}: {e:?}", path.display()))?;
            }
        }
        let latency = histograms
            .iter()
            .map(|(name, h)| Ok((name.clone(), Latency::of(h)?)))
            .collect::<Result<_>>()?;
        Ok(Report {
            format: FORMAT.to_owned(),
            fleet: first.fleet.clone(),
            ranges: ranges.into_iter().map(|(_, r)| r.clone()).collect(),
            started_ms: reports.iter().map(|(_, r)| r.started_ms).min().unwrap_or(0),
            ended_ms: reports.iter().map(|(_, r)| r.ended_ms).max().unwrap_or(0),
            interrupted: reports.iter().any(|(_, r)| r.interrupted),
            counters,
            commands_by_action,
            latency,
        })
    }

    /// Devices covered by the ranges.
    pub fn covered(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.end - r.start)).sum()
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let covered = self.covered();
        let whole = if covered == u64::from(self.fleet.devices) {
            "the whole fleet".to_owned()
        } else {
            format!(
                "{covered} of {} devices: shards missing",
                self.fleet.devices
            )
        };
        let _ = writeln!(
            s,
            "Report: {} shard(s), {whole}, {:.1} s",
            self.ranges.len(),
            self.ended_ms.saturating_sub(self.started_ms) as f64 / 1000.0
        );
        let counters: Vec<String> = self
            .counters
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  {}", counters.join(", "));
        if !self.commands_by_action.is_empty() {
            let by: Vec<String> = self
                .commands_by_action
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "  commands by action: {}", by.join(", "));
        }
        for (name, l) in &self.latency {
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            let _ = writeln!(
                s,
                "  {name} latency over {} samples: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
                l.count,
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            );
        }
        if self.interrupted {
            let _ = writeln!(s, "  (a run was interrupted by a signal)");
        }
        s
    }
}

/// The id range of device indexes `range`, run as shard `shard`.
pub fn id_range(shard: &str, range: &Range<usize>) -> IdRange {
    let id = |i: usize| fleet_core::Fleet::device_id(i).as_str().to_owned();
    IdRange {
        shard: shard.to_owned(),
        start: range.start as u32,
        end: range.end as u32,
        first: id(range.start),
        last: id(range.end.saturating_sub(1)),
    }
}

/// Flags of `fleet report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Combine shards' reports (`fleet sim --shard I/N --report FILE`) into one: counters
    /// summed, HDR histograms added exactly. Refuses reports of different fleets and
    /// overlapping device ranges. Prints the summary.
    Merge {
        /// The shards' report files.
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// Write the merged report here (JSON, the same format).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs `fleet report`.
pub fn run(args: ReportArgs) -> Result<()> {
    match args.command {
        ReportCommand::Merge { reports, out } => {
            let reports = reports
                .into_iter()
                .map(|p| Report::read(&p).map(|r| (p, r)))
                .collect::<Result<Vec<_>>>()?;
            let merged = Report::merge(&reports)?;
            if let Some(out) = out {
                merged.write(&out)?;
            }
            print!("{}", merged.summary());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetKey {
        FleetKey {
            devices: 100,
            seed: 1,
            building: "1".into(),
            legacy: false,
            batch: 1,
            update_frequency_s: 2.0,
            broker: "mqtt://127.0.0.1:1883".into(),
        }
    }

    fn report(shard: &str, range: Range<usize>, samples: &[u64]) -> Report {
        let mut h = latency_histogram();
        for &s in samples {
            h.saturating_record(s);
        }
        let mut ack = latency_histogram();
        ack.saturating_record(range.start as u64 + 1);
        Report {
            format: FORMAT.into(),
            fleet: fleet(),
            ranges: vec![id_range(shard, &range)],
            started_ms: 1_000 + range.start as u64,
            ended_ms: 2_000 + range.start as u64,
            interrupted: false,
            counters: BTreeMap::from([
                ("sent".into(), samples.len() as u64),
                ("acked".into(), range.len() as u64),
            ]),
            commands_by_action: BTreeMap::from([("cool".into(), 1)]),
            latency: BTreeMap::from([
                ("round_trip".into(), Latency::of(&h).unwrap()),
                ("ack".into(), Latency::of(&ack).unwrap()),
            ]),
        }
    }

    /// Deterministic samples spread over 1 µs … minutes (xorshift).
    fn samples(n: usize, mut x: u64) -> Vec<u64> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                1 + (x % 1_000) * 10u64.pow((x >> 32) as u32 % 6)
            })
            .collect()
    }

    #[test]
    fn merging_shards_gives_the_histogram_of_all_their_samples() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<Vec<u64>> = (0..4)
            .map(|i| samples(5_000 + i * 777, i as u64 + 1))
            .collect();
        // Through the files, as `fleet report merge` reads them.
        let reports: Vec<(PathBuf, Report)> = (0..4)
            .map(|i| {
                let r = report(&format!("{i}/4"), i * 25..(i + 1) * 25, &all[i]);
                let path = dir.path().join(format!("shard-{i}.json"));
                r.write(&path).unwrap();
                (path.clone(), Report::read(&path).unwrap())
            })
            .collect();
        // In another order: the merge sorts the ranges.
        let shuffled = vec![
            reports[2].clone(),
            reports[0].clone(),
            reports[3].clone(),
            reports[1].clone(),
        ];
        let merged = Report::merge(&shuffled).unwrap();

        let mut union = latency_histogram();
        for s in all.iter().flatten() {
            union.saturating_record(*s);
        }
        let got = merged.latency["round_trip"].histogram().unwrap();
        assert_eq!(got, union, "the merged histogram is the union's");
        assert_eq!(got.len(), all.iter().map(Vec::len).sum::<usize>() as u64);
        assert_eq!(merged.latency["round_trip"], Latency::of(&union).unwrap());
        assert_eq!(merged.latency["ack"].count, 4);
        assert_eq!(
            merged.counters["sent"],
            all.iter().map(Vec::len).sum::<usize>() as u64
        );
        assert_eq!(merged.counters["acked"], 100);
        assert_eq!(merged.commands_by_action["cool"], 4);
        assert_eq!(merged.covered(), 100);
        let starts: Vec<u32> = merged.ranges.iter().map(|r| r.start).collect();
        assert_eq!(starts, [0, 25, 50, 75]);
        assert_eq!((merged.started_ms, merged.ended_ms), (1_000, 2_075));
        assert_eq!(merged.ranges[3].last, "d-0100");
        assert!(
            merged.summary().contains("the whole fleet"),
            "{}",
            merged.summary()
        );

        // Merging merged reports is the same as merging the shards at once.
        let halves = [
            (PathBuf::from("a"), Report::merge(&reports[..2]).unwrap()),
            (PathBuf::from("b"), Report::merge(&reports[2..]).unwrap()),
        ];
        assert_eq!(Report::merge(&halves).unwrap(), merged);
    }

    #[test]
    fn overlapping_ranges_and_other_fleets_are_refused() {
        let a = (PathBuf::from("a.json"), report("0/2", 0..50, &[1, 2]));
        let b = (PathBuf::from("b.json"), report("1/3", 33..66, &[3]));
        let e = Report::merge(&[a.clone(), b]).unwrap_err().to_string();
        assert!(e.contains("overlap") && e.contains("d-0034"), "{e}");
        let again = Report::merge(&[a.clone(), a.clone()])
            .unwrap_err()
            .to_string();
        assert!(again.contains("overlap"), "{again}");

        let mut other = report("1/2", 50..100, &[3]);
        other.fleet.seed = 2;
        let e = Report::merge(&[a.clone(), (PathBuf::from("c.json"), other)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("different fleets"), "{e}");

        // A missing shard merges, and says so.
        let partial = Report::merge(&[a]).unwrap();
        assert!(
            partial.summary().contains("50 of 100 devices"),
            "{}",
            partial.summary()
        );
        assert!(Report::merge(&[]).is_err());
    }

    #[test]
    fn bad_report_files_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "{}").unwrap();
        let e = format!("{:#}", Report::read(&path).unwrap_err());
        assert!(
            e.contains("r.json") && e.contains("not a fleet sim report"),
            "{e}"
        );

        let mut r = report("0/1", 0..100, &[5]);
        r.latency.get_mut("round_trip").unwrap().count = 2;
        r.write(&path).unwrap();
        let e = format!("{:#}", Report::read(&path).unwrap_err());
        assert!(
            e.contains("round_trip") && e.contains("count says 2"),
            "{e}"
        );

        let mut r = report("0/1", 0..100, &[5]);
        r.latency.get_mut("ack").unwrap().hdr = "not base64!".into();
        r.write(&path).unwrap();
        assert!(format!("{:#}", Report::read(&path).unwrap_err()).contains("base64"));

        let mut r = report("0/1", 0..100, &[5]);
        r.format = "other/2".into();
        r.write(&path).unwrap();
        assert!(format!("{:#}", Report::read(&path).unwrap_err()).contains("format"));
        let e = format!(
            "{:#}",
            Report::read(&dir.path().join("none.json")).unwrap_err()
        );
        assert!(e.contains("none.json"), "{e}");
    }
}
