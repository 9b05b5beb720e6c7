//! Destination probes behind `/readyz`: every few seconds each sink's destination is asked
//! whether it answers (for STOW-RS, a QIDO-RS query with the sink's own credentials).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use radstream_operators::{BuildContext, OperatorConfig};
use tracing::{info, warn};

use crate::config::Config;
use crate::http::Readiness;

/// How often destinations are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the probe task; readiness turns false while any destination fails its probe.
pub fn spawn_probes(config: &Config, readiness: Arc<Readiness>) {
    let sinks: Vec<_> = config
        .operators
        .iter()
        .filter_map(|o| match o {
            OperatorConfig::Stow(c) => c.build(&BuildContext::default()).ok(),
            _ => None,
        })
        .collect();
    if sinks.is_empty() {
        readiness.destinations_ok.store(true, Ordering::Relaxed);
        return;
    }
    tokio::spawn(async move {
        let mut was_ok = None;
        loop {
            let mut ok = true;
            for sink in &sinks {
                if let Err(reason) = sink.probe().await {
                    ok = false;
                    if was_ok != Some(false) {
                        warn!(%reason, "PACS probe failed: not ready");
                    }
                }
            }
            if ok && was_ok != Some(true) {
                info!("PACS reachable");
            }
            readiness.destinations_ok.store(ok, Ordering::Relaxed);
            was_ok = Some(ok);
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    });
}
