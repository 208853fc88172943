//! JSON logs on stdout for CloudWatch Logs: one line per event, no ANSI colours, no local
//! timestamp (CloudWatch stamps each line). `RUST_LOG` (or `AWS_LAMBDA_LOG_LEVEL`) sets the
//! level, `info` by default.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber; a second call does nothing.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}
