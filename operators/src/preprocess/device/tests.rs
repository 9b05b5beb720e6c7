use super::*;
use crate::contract::MemoryRecorder;

/// The `(operator, backend, reason)` labels of every compute-backend recording, each checked to
/// add 1 (a device is chosen, never given up, in these tests).
fn backends(recorder: &MemoryRecorder) -> Vec<(String, String, String)> {
    assert_eq!(recorder.recordings().len(), recorder.of(OperatorMetric::ComputeBackend).len());
    recorder
        .of(OperatorMetric::ComputeBackend)
        .into_iter()
        .map(|r| {
            assert_eq!(r.value, 1.0);
            let [operator, backend, reason] = <[String; 3]>::try_from(r.labels).unwrap();
            (operator, backend, reason)
        })
        .collect()
}

#[test]
fn cpu_when_asked_and_said_once() {
    let recorder = MemoryRecorder::default();
    let device = ComputeDevice::select(DeviceChoice::Cpu, &recorder, "test-model");
    assert_eq!(device.backend_name(), "cpu");
    assert_eq!(backends(&recorder), [("preprocess".into(), "cpu".into(), "cpu_requested".into())]);
}

/// This machine (and CI) has no GPU: `auto` must come back on the CPU, say why in the
/// metric once, and compute the CPU's numbers. On a machine with a GPU the same test checks
/// that the GPU started instead.
#[test]
fn auto_without_a_gpu_falls_back_to_the_cpu_and_says_so() {
    let recorder = MemoryRecorder::default();
    let device = ComputeDevice::select(DeviceChoice::Auto, &recorder, "test-model");
    let seen = backends(&recorder);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (operator, backend, reason) = &seen[0];
    assert_eq!(operator, "preprocess");
    assert_eq!(backend, device.backend_name());
    if backend == "cuda" {
        assert_eq!(reason, "gpu_started");
    } else if cfg!(feature = "cuda") {
        assert_eq!(reason, "gpu_unavailable");
    } else {
        assert_eq!(reason, "cuda_not_built");
    }

    let plan =
        Preprocess { rescale: radstream_kernels::Rescale { slope: 1.0, intercept: -1024.0 }, ..Preprocess::default() };
    let stored: Vec<u16> = (0..12).map(|i| i * 300).collect();
    let mut out = vec![0.0; 12];
    device.run_into(&plan, &stored, 3, 4, &mut out, &recorder).unwrap();
    let expected = plan.run_cpu(&stored, 3, 4).unwrap();
    assert!(out.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-4), "{out:?} vs {expected:?}");
    assert_eq!(backends(&recorder).len(), 1, "said more than once");
}

#[test]
fn device_choice_parses_from_config() {
    #[derive(Deserialize)]
    struct C {
        device: DeviceChoice,
    }
    assert_eq!(toml::from_str::<C>("device = \"cpu\"").unwrap().device, DeviceChoice::Cpu);
    assert_eq!(toml::from_str::<C>("device = \"auto\"").unwrap().device, DeviceChoice::Auto);
    assert!(toml::from_str::<C>("device = \"tpu\"").is_err());
}
