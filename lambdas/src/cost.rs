//! What a million readings cost on AWS: a model fed with the calls the functions make.
//!
//! The per-reading and per-batch call counts come from the moto tests
//! (`tests/aws_moto.rs`, [`Measured`]), the fleet's behaviour (how often a decision is
//! worth storing, how many commands go out) from a simulated hour of the closed loop
//! (`fleet demo`), and the prices from AWS's public price list ([`Prices::US_EAST_1`]).
//! `docs/cost.md` shows the tables this prints and where each number comes from.

use std::fmt::Write as _;

/// Prices in dollars per unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// IoT Core message (metered in 5 KB steps); also each command the Lambda publishes.
    pub iot_message: f64,
    /// IoT Core connection-minute.
    pub iot_connection_minute: f64,
    /// IoT rule triggered (5 KB steps).
    pub iot_rule: f64,
    /// IoT rule action executed (5 KB steps).
    pub iot_action: f64,
    /// SQS standard request (64 KB chunks).
    pub sqs_request: f64,
    /// Lambda request.
    pub lambda_request: f64,
    /// Lambda GB-second, arm64.
    pub lambda_gb_second_arm: f64,
    /// Lambda GB-second, x86 (the original's functions).
    pub lambda_gb_second_x86: f64,
    /// DynamoDB on-demand write request unit (an item up to 1 KB).
    pub dynamodb_wru: f64,
    /// DynamoDB on-demand read request unit (strongly consistent, up to 4 KB).
    pub dynamodb_rru: f64,
    /// S3 Standard PUT.
    pub s3_put: f64,
    /// CloudWatch `PutMetricData` request (the original's per-reading metric).
    pub put_metric_data: f64,
    /// CloudWatch Logs ingestion, per GB.
    pub logs_gb: f64,
}

impl Prices {
    /// us-east-1 list prices, first tier, checked 2026-11 (DynamoDB on demand as lowered on
    /// 2024-11-01). Reads of a DynamoDB stream by Lambda are free.
    pub const US_EAST_1: Prices = Prices {
        iot_message: 1.00e-6,
        iot_connection_minute: 0.08e-6,
        iot_rule: 0.15e-6,
        iot_action: 0.15e-6,
        sqs_request: 0.40e-6,
        lambda_request: 0.20e-6,
        lambda_gb_second_arm: 0.000_013_333_4,
        lambda_gb_second_x86: 0.000_016_666_7,
        dynamodb_wru: 0.625e-6,
        dynamodb_rru: 0.125e-6,
        s3_put: 0.005e-3,
        put_metric_data: 0.01e-3,
        logs_gb: 0.50,
    };
}

/// IoT Core meters messages, rules and actions in steps of this many bytes.
pub const IOT_METERING_BYTES: f64 = 5.0 * 1024.0;

/// How the devices send and how the template batches: the workload's side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Readings per MQTT message (1, or a batch: `fleet sim --batch N`).
    pub readings_per_message: f64,
    /// Bytes of one reading's JSON (a batch adds a comma each and two brackets).
    pub reading_bytes: f64,
    /// Telemetry through the rule's Basic Ingest topic: no messaging charge.
    pub basic_ingest: bool,
    /// Seconds between two readings of a device (connection-minutes per reading).
    pub reading_period_s: f64,
    /// SQS messages per worker invoke (the template's `BatchSize`, reached at scale).
    pub messages_per_worker_invoke: f64,
    /// Stream records per remediation invoke (the template's `BatchSize`).
    pub records_per_remediation_invoke: f64,
    /// Readings of one device in one remediation invoke: the state is read and written
    /// once per device and invoke. About 1 for devices sending one reading a second (the
    /// stream's batching window is 1 s), about the batch size for batched messages (a
    /// message's readings are written, and streamed, together).
    pub readings_per_device_invoke: f64,
    /// Share of readings whose decision is stored (not [`fleet_core::Decision::is_routine`]).
    pub stored_decision_share: f64,
    /// Commands published per reading.
    pub commands_per_reading: f64,
    /// Billed seconds of a worker invoke and of a remediation invoke (256 MB).
    pub worker_invoke_s: f64,
    /// See `worker_invoke_s`.
    pub remediation_invoke_s: f64,
    /// Log bytes per invoke (EMF lines, the batch line, platform lines).
    pub log_bytes_per_invoke: f64,
}

impl Workload {
    /// The template's defaults with devices that send `readings_per_message` readings per
    /// message, with or without Basic Ingest. The decision and command shares are those of
    /// `fleet demo --devices 100 --minutes 60` (the default device parameters and band).
    pub fn fleet(readings_per_message: f64, basic_ingest: bool) -> Workload {
        Workload {
            readings_per_message,
            reading_bytes: 126.0,
            basic_ingest,
            reading_period_s: 2.0,
            messages_per_worker_invoke: 500.0,
            records_per_remediation_invoke: 100.0,
            readings_per_device_invoke: readings_per_message.max(1.0),
            stored_decision_share: 0.016,
            commands_per_reading: 0.016,
            worker_invoke_s: 0.5,
            remediation_invoke_s: 0.2,
            log_bytes_per_invoke: 2_000.0,
        }
    }

    /// Bytes of one message.
    pub fn message_bytes(&self) -> f64 {
        let n = self.readings_per_message;
        if n <= 1.0 {
            self.reading_bytes
        } else {
            n * (self.reading_bytes + 1.0) + 1.0
        }
    }

    /// IoT Core metering steps per message.
    pub fn iot_steps(&self) -> f64 {
        (self.message_bytes() / IOT_METERING_BYTES).ceil()
    }
}

/// What the functions do per unit of work, as counted against moto.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Archive objects the worker puts per invoke (one for the readings; a second only
    /// when the batch had rejects).
    pub objects_per_worker_invoke: f64,
    /// Table items written per reading (each under 1 KB: one WRU).
    pub items_per_reading: f64,
    /// State reads per device and remediation invoke.
    pub state_reads_per_device_invoke: f64,
    /// State items written per device and remediation invoke.
    pub state_writes_per_device_invoke: f64,
    /// IoT publishes per command.
    pub publishes_per_command: f64,
}

/// One line of a cost table.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What is paid for.
    pub item: &'static str,
    /// How the number is made.
    pub derivation: String,
    /// Dollars per million readings.
    pub dollars: f64,
}

/// Sums a table.
pub fn total(lines: &[Line]) -> f64 {
    lines.iter().map(|l| l.dollars).sum()
}

const MILLION: f64 = 1_000_000.0;
/// The template's `MemorySize: 256`.
const LAMBDA_GB: f64 = 0.25;
/// The original's functions: 128 MB.
const ORIGINAL_LAMBDA_GB: f64 = 0.125;

/// Fleet's cost per million readings.
pub fn fleet_per_million(p: &Prices, w: &Workload, m: &Measured) -> Vec<Line> {
    let messages = MILLION / w.readings_per_message;
    let steps = w.iot_steps();
    let worker_invokes = messages / w.messages_per_worker_invoke;
    let remediation_invokes = MILLION / w.records_per_remediation_invoke;
    let device_invokes = MILLION / w.readings_per_device_invoke;
    let connection_minutes = MILLION * w.reading_period_s / 60.0;
    let line = |item, derivation: String, dollars| Line {
        item,
        derivation,
        dollars,
    };
    vec![
        if w.basic_ingest {
            line(
                "IoT Core messages",
                format!("{messages:.0} messages through Basic Ingest: not charged"),
                0.0,
            )
        } else {
            line(
                "IoT Core messages",
                format!("{messages:.0} messages × {steps} step(s) of 5 KB × $1.00/M"),
                messages * steps * p.iot_message,
            )
        },
        line(
            "IoT connectivity",
            format!(
                "{connection_minutes:.0} connection-minutes (a reading every {} s)",
                w.reading_period_s
            ),
            connection_minutes * p.iot_connection_minute,
        ),
        line(
            "IoT rule + SQS action",
            format!("{messages:.0} × {steps} × ($0.15 + $0.15)/M"),
            messages * steps * (p.iot_rule + p.iot_action),
        ),
        line(
            "SQS",
            format!("{messages:.0} SendMessage + receives and deletes by 10: × 1.2 × $0.40/M"),
            messages * 1.2 * p.sqs_request,
        ),
        line(
            "Lambda requests",
            format!(
                "{worker_invokes:.0} worker ({} messages each) + {remediation_invokes:.0} remediation ({} records each) invokes",
                w.messages_per_worker_invoke, w.records_per_remediation_invoke
            ),
            (worker_invokes + remediation_invokes) * p.lambda_request,
        ),
        line(
            "Lambda duration",
            format!(
                "({worker_invokes:.0} × {} s + {remediation_invokes:.0} × {} s) × 0.25 GB, arm64",
                w.worker_invoke_s, w.remediation_invoke_s
            ),
            (worker_invokes * w.worker_invoke_s + remediation_invokes * w.remediation_invoke_s)
                * LAMBDA_GB
                * p.lambda_gb_second_arm,
        ),
        line(
            "S3 PUT (archive)",
            format!(
                "{worker_invokes:.0} invokes × {} object(s)",
                m.objects_per_worker_invoke
            ),
            worker_invokes * m.objects_per_worker_invoke * p.s3_put,
        ),
        line(
            "DynamoDB readings",
            format!("1M × {} item(s) × 1 WRU × $0.625/M", m.items_per_reading),
            MILLION * m.items_per_reading * p.dynamodb_wru,
        ),
        line(
            "DynamoDB device state",
            format!(
                "{device_invokes:.0} device-invokes ({} readings each) × ({} RRU × $0.125/M + {} WRU × $0.625/M)",
                w.readings_per_device_invoke,
                m.state_reads_per_device_invoke,
                m.state_writes_per_device_invoke
            ),
            device_invokes
                * (m.state_reads_per_device_invoke * p.dynamodb_rru
                    + m.state_writes_per_device_invoke * p.dynamodb_wru),
        ),
        line(
            "DynamoDB decisions",
            format!("1M × {} stored × 1 WRU", w.stored_decision_share),
            MILLION * w.stored_decision_share * p.dynamodb_wru,
        ),
        line(
            "IoT publishes (commands)",
            format!(
                "1M × {} commands × {} publish × $1.00/M",
                w.commands_per_reading, m.publishes_per_command
            ),
            MILLION * w.commands_per_reading * m.publishes_per_command * p.iot_message,
        ),
        line(
            "CloudWatch metrics",
            "EMF log lines, no PutMetricData".to_owned(),
            0.0,
        ),
        line(
            "CloudWatch Logs",
            format!(
                "{:.0} invokes × {} B × $0.50/GB",
                worker_invokes + remediation_invokes,
                w.log_bytes_per_invoke
            ),
            (worker_invokes + remediation_invokes) * w.log_bytes_per_invoke / 1e9 * p.logs_gb,
        ),
    ]
}

/// The original Go stack's cost per million readings, by its design: an IoT rule invoking
/// a 128 MB x86 Lambda per message (about 100 ms), which puts one S3 object, one
/// `PutMetricData` and one table item per reading.
pub fn original_per_million(p: &Prices) -> Vec<Line> {
    let line = |item, derivation: &str, dollars| Line {
        item,
        derivation: derivation.to_owned(),
        dollars,
    };
    vec![
        line("IoT Core messages", "1M × $1.00/M", MILLION * p.iot_message),
        line(
            "IoT rule + Lambda action",
            "1M × ($0.15 + $0.15)/M",
            MILLION * (p.iot_rule + p.iot_action),
        ),
        line("Lambda requests", "1M invokes", MILLION * p.lambda_request),
        line(
            "Lambda duration",
            "1M × 0.1 s × 0.125 GB, x86",
            MILLION * 0.1 * ORIGINAL_LAMBDA_GB * p.lambda_gb_second_x86,
        ),
        line("S3 PUT", "1 object per reading", MILLION * p.s3_put),
        line(
            "CloudWatch PutMetricData",
            "1 call per reading",
            MILLION * p.put_metric_data,
        ),
        line("DynamoDB readings", "1M × 1 WRU", MILLION * p.dynamodb_wru),
    ]
}

/// A table as Markdown.
pub fn markdown(title: &str, lines: &[Line]) -> String {
    let mut out =
        format!("### {title}\n\n| item | derivation | $ per 1M readings |\n|---|---|---|\n");
    for l in lines {
        let _ = writeln!(out, "| {} | {} | {:.3} |", l.item, l.derivation, l.dollars);
    }
    let _ = writeln!(out, "| **total** | | **{:.2}** |", total(lines));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEASURED: Measured = Measured {
        objects_per_worker_invoke: 1.0,
        items_per_reading: 1.0,
        state_reads_per_device_invoke: 1.0,
        state_writes_per_device_invoke: 1.0,
        publishes_per_command: 1.0,
    };

    fn dollars(lines: &[Line], item: &str) -> f64 {
        lines.iter().find(|l| l.item == item).unwrap().dollars
    }

    #[test]
    fn the_original_design_comes_to_about_17_dollars() {
        let t = total(&original_per_million(&Prices::US_EAST_1));
        // $10 PutMetricData + $5 S3 + $1 IoT + $0.3 rule + $0.2 + $0.21 Lambda + $0.625.
        assert!((t - 17.34).abs() < 0.01, "{t}");
    }

    #[test]
    fn batching_divides_the_per_message_lines_and_basic_ingest_removes_messaging() {
        let p = Prices::US_EAST_1;
        let one = fleet_per_million(&p, &Workload::fleet(1.0, false), &MEASURED);
        let ten = fleet_per_million(&p, &Workload::fleet(10.0, false), &MEASURED);
        for item in ["IoT Core messages", "IoT rule + SQS action", "SQS"] {
            let (a, b) = (dollars(&one, item), dollars(&ten, item));
            assert!((a / b - 10.0).abs() < 1e-9, "{item}: {a} vs {b}");
        }
        assert_eq!(dollars(&one, "IoT Core messages"), 1.0);
        // Per-reading lines do not move.
        assert_eq!(
            dollars(&one, "DynamoDB readings"),
            dollars(&ten, "DynamoDB readings")
        );
        let basic = fleet_per_million(&p, &Workload::fleet(1.0, true), &MEASURED);
        assert_eq!(dollars(&basic, "IoT Core messages"), 0.0);
        assert_eq!(total(&one) - total(&basic), 1.0);
    }

    #[test]
    fn a_message_over_5_kb_is_billed_as_several() {
        let w = Workload::fleet(40.0, false);
        assert_eq!(w.message_bytes(), 40.0 * 127.0 + 1.0);
        assert_eq!(w.iot_steps(), 1.0);
        assert_eq!(Workload::fleet(41.0, false).iot_steps(), 2.0);
        assert_eq!(Workload::fleet(100.0, false).iot_steps(), 3.0);
    }

    #[test]
    fn the_state_is_paid_once_per_device_and_invoke() {
        let p = Prices::US_EAST_1;
        let one = dollars(
            &fleet_per_million(&p, &Workload::fleet(1.0, true), &MEASURED),
            "DynamoDB device state",
        );
        let ten = dollars(
            &fleet_per_million(&p, &Workload::fleet(10.0, true), &MEASURED),
            "DynamoDB device state",
        );
        assert!((one - 0.75).abs() < 1e-9, "{one}");
        assert!((one / ten - 10.0).abs() < 1e-9);
    }
}
