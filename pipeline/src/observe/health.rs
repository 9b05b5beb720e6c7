//! Destination probes behind `/readyz`: every few seconds each sink's destination is asked
//! whether it answers, through the sink's own readiness probe (for STOW-RS, a QIDO-RS query with
//! the sink's own credentials; for a FHIR server, its CapabilityStatement).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use radstream_operators::ReadinessProbe;
use tracing::{info, warn};

use crate::config::Config;
use crate::observe::http::Readiness;

/// How often destinations are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the probe task; readiness turns false while any destination fails its probe.
pub fn spawn_probes(config: &Config, readiness: Arc<Readiness>) {
    let probes: Vec<Arc<dyn ReadinessProbe>> =
        config.operators.iter().filter(|o| o.is_sink()).filter_map(|o| o.readiness()).collect();
    if probes.is_empty() {
        readiness.destinations_ok.store(true, Ordering::Relaxed);
        return;
    }
    tokio::spawn(async move {
        let mut was_ok = None;
        loop {
            let mut ok = true;
            for probe in &probes {
                if let Err(reason) = probe.probe().await {
                    ok = false;
                    if was_ok != Some(false) {
                        warn!(destination = probe.name(), %reason, "destination probe failed: not ready");
                    }
                }
            }
            if ok && was_ok != Some(true) {
                info!(destinations = probes.len(), "destinations reachable");
            }
            readiness.destinations_ok.store(ok, Ordering::Relaxed);
            was_ok = Some(ok);
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    });
}
