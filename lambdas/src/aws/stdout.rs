//! EMF lines on stdout: Lambda sends stdout to CloudWatch Logs, which extracts the metrics
//! (no PutMetricData calls).

use std::io::Write;

use crate::ports::MetricLog;

/// Prints each EMF line on its own line of stdout.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutMetrics;

impl MetricLog for StdoutMetrics {
    fn emit(&self, lines: &[String]) {
        let mut out = std::io::stdout().lock();
        for line in lines {
            if let Err(e) = writeln!(out, "{line}") {
                tracing::error!(error = %e, "could not write EMF lines to stdout");
                return;
            }
        }
        if let Err(e) = out.flush() {
            tracing::error!(error = %e, "could not flush EMF lines");
        }
    }
}
