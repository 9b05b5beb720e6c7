//! The demo model segments what `synth` planted, and its mask becomes a valid DICOM SEG.
//!
//! A synthetic head CT with a planted bleed goes through the demo model's preprocessing and the
//! model (`tensors.mask = "bleed_mask"`): on every planted slice the thresholded mask covers the
//! planted disc (Dice ≥ 0.7 against the ground truth, which is never written into the files);
//! on the series' other slices it is empty. The planted slices' masks then make a binary SEG
//! that dciodvfy accepts without errors.

use std::path::Path;
use std::process::Command;

use radstream_operators::infer::LoadedModel;
use radstream_operators::parse_header;
use radstream_operators::preprocess::preprocess_object;
use radstream_operators::results::{build_seg, MaskShape, SegError, SegSource, SegmentConcept};
use radstream_pipeline::synth::{self, SynthOptions};

/// Dice of `mask > 0.5` (rows × columns at the model's size) and the planted disc given in
/// pixels of the `side` × `side` written image.
fn dice(mask: &[f32], [rows, columns]: [usize; 2], side: f32, disc: &synth::LesionDisc) -> f64 {
    let (mut both, mut in_mask, mut in_disc) = (0usize, 0usize, 0usize);
    for r in 0..rows {
        for c in 0..columns {
            // The centre of this model pixel, in pixels of the written image.
            let y = (r as f32 + 0.5) * side / rows as f32 - 0.5;
            let x = (c as f32 + 0.5) * side / columns as f32 - 0.5;
            let inside = (x - disc.centre_column).powi(2) + (y - disc.centre_row).powi(2) < disc.radius.powi(2);
            let masked = mask[r * columns + c] > 0.5;
            both += usize::from(inside && masked);
            in_mask += usize::from(masked);
            in_disc += usize::from(inside);
        }
    }
    2.0 * both as f64 / (in_mask + in_disc).max(1) as f64
}

#[test]
fn the_demo_model_segments_the_planted_bleed_and_its_mask_makes_a_valid_seg() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = LoadedModel::load(&repo.join("models/ct-head-bleed.model.toml")).unwrap();
    let [rows, columns] = model.mask_size().expect("the demo manifest names its mask output");
    let spec = &model.manifest().input;

    let opts = SynthOptions { studies: 1, seed: 11, ..Default::default() };
    let truth = synth::ground_truth(&opts).unwrap();
    let lesion = truth.studies[0].lesion.clone().expect("study 0 has a planted bleed");
    let dir = tempfile::tempdir().unwrap();
    let written = synth::write_to_dir(&opts, dir.path()).unwrap();
    let series: Vec<_> = written.iter().filter(|i| i.series_instance_uid == lesion.series_instance_uid).collect();
    assert!(series.len() > lesion.instances.len(), "the series has slices without the bleed too");

    let mut planted = Vec::new();
    for instance in &series {
        let bytes = std::fs::read(dir.path().join(&instance.relative_path)).unwrap();
        let tensor = preprocess_object(spec, &bytes).unwrap();
        let result = model.infer(&tensor, 8).unwrap();
        let mask = result.masks.as_ref().expect("results carry the mask")[0].clone();
        assert_eq!(result.mask_size, Some([rows, columns]));
        let inside = mask.iter().filter(|&&p| p > 0.5).count();
        match lesion.instances.iter().find(|l| l.sop_instance_uid == instance.sop_instance_uid) {
            Some(planted_here) => {
                assert!(!result.findings.is_empty(), "a planted slice is a finding");
                let d = dice(&mask, [rows, columns], f32::from(truth.image_side), &planted_here.disc);
                assert!(d >= 0.7, "slice {}: mask Dice {d:.3} against the planted disc", instance.instance_number);
                eprintln!("slice {}: {inside} mask pixels, Dice {d:.3}", instance.instance_number);
                planted.push((bytes, mask, result));
            }
            None => assert_eq!(inside, 0, "slice {} has no bleed but a mask", instance.instance_number),
        }
    }

    // The planted slices' masks as one SEG in the study.
    let headers: Vec<_> = planted.iter().map(|(bytes, _, _)| parse_header(bytes).unwrap()).collect();
    let sources: Vec<SegSource<'_>> =
        headers.iter().zip(&planted).map(|(header, (_, mask, _))| SegSource { header, frame: 0, mask }).collect();
    let finding = &planted[0].2.findings[0];
    let shape = MaskShape { rows, columns };
    let seg =
        build_seg(&sources, shape, 0.5, SegmentConcept::from(finding), &planted[0].2.model, 1_706_695_200_000).unwrap();
    assert_eq!(seg.frames, planted.len());
    // A slice without the bleed alone makes no SEG.
    let clean =
        series.iter().find(|i| lesion.instances.iter().all(|l| l.sop_instance_uid != i.sop_instance_uid)).unwrap();
    let clean_bytes = std::fs::read(dir.path().join(&clean.relative_path)).unwrap();
    let clean_header = parse_header(&clean_bytes).unwrap();
    let empty = vec![0.0f32; rows * columns];
    let refused = build_seg(
        &[SegSource { header: &clean_header, frame: 0, mask: &empty }],
        shape,
        0.5,
        SegmentConcept::from(finding),
        &planted[0].2.model,
        0,
    );
    assert!(matches!(refused, Err(SegError::Empty { .. })), "{refused:?}");

    let dciodvfy = Path::new("/usr/bin/dciodvfy");
    if !radstream_test_gate::needs("/usr/bin/dciodvfy (Debian's dicom3tools) to validate the SEG", dciodvfy.exists()) {
        return;
    }
    let path = dir.path().join("seg.dcm");
    std::fs::write(&path, seg.to_bytes().unwrap()).unwrap();
    let out = Command::new(dciodvfy).arg(&path).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!report.lines().any(|l| l.starts_with("Error")), "dciodvfy:\n{report}");
    assert!(report.contains("Segmentation"), "{report}");
}
