//! `radstream preprocess` from the command line, without servers: synthetic studies (a CT and a
//! CR) in, `.npy` tensors and PNG previews out, read back by NumPy and Python's zlib.

use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use radstream_tests::{
    files_ending, lossy_text as text, path_str as s, run_radstream as radstream, show_output as show,
};

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name)
}

fn synth(dir: &Path) {
    let out = radstream(&["synth", "--studies", "2", "--seed", "3", "--out", s(dir)]);
    assert!(out.status.success(), "{}", show(&out));
}

/// Runs a Python snippet; `None` (with a note) when Python or the module it needs is missing.
fn python(code: &str, needs: &str) -> Option<String> {
    let probe = Command::new(radstream_tests::python()).args(["-c", &format!("import {needs}")]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        radstream_tests::skip_without(&format!("python3 with `{needs}`"));
        return None;
    }
    let out = Command::new(radstream_tests::python()).args(["-c", code]).output().expect("run python3");
    assert!(out.status.success(), "python failed:\n{}", show(&out));
    Some(text(&out.stdout))
}

/// A CT header with no Pixel Data: it parses, but there is nothing to decode.
fn ct_without_pixels(path: &Path) {
    let el = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let dataset = InMemDicomObject::from_element_iter([
        el(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        el(tags::SOP_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.77"),
        el(tags::MODALITY, VR::CS, "CT"),
        el(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.75"),
        el(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.76"),
    ]);
    let file = dataset.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
    file.write_to_file(path).unwrap();
}

#[test]
fn synthetic_studies_become_npy_tensors_and_png_previews() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    synth(&input);
    for (spec, channels, size) in [("ct-head-bleed.preprocess.toml", 1, 256), ("cxr-generic.preprocess.toml", 3, 224)] {
        let out = out.join(spec);
        let run = radstream(&["preprocess", "--model", s(&model(spec)), "--out", s(&out), s(&input)]);
        assert!(run.status.success(), "{}", show(&run));
        let summary = text(&run.stdout);
        assert!(summary.contains("0 failed"), "{summary}");

        let npys = files_ending(&out, ".npy");
        assert!(!npys.is_empty(), "{spec}: no .npy written\n{}", show(&run));
        for npy in &npys {
            let bytes = std::fs::read(npy).unwrap();
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
            let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            assert_eq!((10 + header_len) % 64, 0);
            let header = text(&bytes[10..10 + header_len]);
            let frames = {
                let shape = header.split("'shape': (").nth(1).unwrap();
                shape.split(',').next().unwrap().trim().parse::<usize>().unwrap()
            };
            assert!(header.contains(&format!(", {channels}, {size}, {size})")), "{header}");
            assert_eq!(bytes.len(), 10 + header_len + frames * channels * size * size * 4);
            let stem = npy.to_string_lossy().trim_end_matches(".npy").to_string();
            for k in 0..frames {
                let png = std::fs::read(format!("{stem}.f{k}.png")).unwrap();
                assert_eq!(png[..8], [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']);
            }
        }

        // NumPy reads what we wrote; Python's zlib inflates the previews to one byte per pixel
        // plus a filter byte per row, and every chunk's CRC matches.
        let npy = s(&npys[0]);
        let png = format!("{}.f0.png", npy.trim_end_matches(".npy"));
        let code = format!(
            "import numpy, struct, zlib\n\
             a = numpy.load('{npy}')\n\
             print(a.shape, a.dtype, bool(numpy.isfinite(a).all()))\n\
             p = open('{png}', 'rb').read()\n\
             i, idat = 8, b''\n\
             while i < len(p):\n    \
                 n, = struct.unpack('>I', p[i:i+4]); kind = p[i+4:i+8]; data = p[i+8:i+8+n]\n    \
                 assert struct.unpack('>I', p[i+8+n:i+12+n])[0] == zlib.crc32(kind + data), kind\n    \
                 if kind == b'IHDR': w, h = struct.unpack('>II', data[:8])\n    \
                 if kind == b'IDAT': idat += data\n    \
                 i += 12 + n\n\
             print(w, h, len(zlib.decompress(idat)) == h * (w + 1))\n"
        );
        if let Some(printed) = python(&code, "numpy") {
            let lines: Vec<&str> = printed.lines().collect();
            let shape = lines[0].split(')').next().unwrap();
            assert!(shape.ends_with(&format!(", {channels}, {size}, {size}")), "{printed}");
            assert!(lines[0].ends_with("float32 True"), "{printed}");
            assert_eq!(lines[1], format!("{size} {size} True"), "{printed}");
        }
    }
}

#[test]
fn usage_errors_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ct = model("ct-head-bleed.preprocess.toml");
    let missing = radstream(&["preprocess", "--model", s(&ct), "--out", s(&out), "/nonexistent/input"]);
    assert_eq!(missing.status.code(), Some(2), "{}", show(&missing));
    assert!(text(&missing.stderr).contains("/nonexistent/input"), "{}", show(&missing));

    let bad_spec = dir.path().join("bad.toml");
    std::fs::write(
        &bad_spec,
        "name = \"x\"\nmodalities = [\"CT\"]\ninput = \"slice\"\nsize = [0, 8]\nwindow = \"from_image\"\n",
    )
    .unwrap();
    let bad = radstream(&["preprocess", "--model", s(&bad_spec), "--out", s(&out), s(dir.path())]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(text(&bad.stderr).contains("size"), "{}", show(&bad));

    let no_inputs = radstream(&["preprocess", "--model", s(&ct), "--out", s(&out)]);
    assert_eq!(no_inputs.status.code(), Some(2), "{}", show(&no_inputs));
    assert!(!out.exists());
}

#[test]
fn files_that_cannot_be_decoded_exit_1_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let no_pixels = input.join("no-pixels.dcm");
    ct_without_pixels(&no_pixels);
    let garbage = input.join("garbage.dcm");
    std::fs::write(&garbage, b"not a DICOM file at all").unwrap();
    let out = dir.path().join("out");
    let run =
        radstream(&["preprocess", "--model", s(&model("ct-head-bleed.preprocess.toml")), "--out", s(&out), s(&input)]);
    assert_eq!(run.status.code(), Some(1), "{}", show(&run));
    let stderr = text(&run.stderr);
    assert!(stderr.contains(&format!("{}: cannot decode pixel data", no_pixels.display())), "{}", show(&run));
    assert!(stderr.contains(&format!("{}: ", garbage.display())), "{}", show(&run));
    assert!(text(&run.stdout).contains("2 failed"), "{}", show(&run));
    assert!(files_ending(&out, ".npy").is_empty());
}

/// A 3D spec stacks each CT series into one volume in patient-position order. pydicom and NumPy
/// build the same volume independently (their own sort by position along the normal, the
/// LINEAR window of PS3.3 C.11.2.1.2.1, 2x2 block means) and must agree with radstream's.
#[test]
fn a_series_becomes_one_volume_in_patient_position_order() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    synth(&input);
    let spec = model("ct-volume.preprocess.toml");
    let run = radstream(&["preprocess", "--model", s(&spec), "--device", "cpu", "--out", s(&out), s(&input)]);
    assert!(run.status.success(), "{}", show(&run));
    let summary = text(&run.stdout);
    assert!(
        summary.contains("on the CPU") && summary.contains("series volumes") && summary.contains("0 failed"),
        "{summary}"
    );

    let sidecars = files_ending(&out, ".json");
    let mut multi_slice = 0;
    for sidecar in &sidecars {
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar).unwrap()).unwrap();
        let shape: Vec<usize> = serde_json::from_value(meta["shape"].clone()).unwrap();
        let slices = meta["slices"].as_array().unwrap();
        assert_eq!(shape, [1, 1, slices.len(), 128, 128], "{meta}");
        let distances: Vec<f64> = slices.iter().map(|s| s["distance_mm"].as_f64().unwrap()).collect();
        assert!(distances.windows(2).all(|d| d[0] < d[1]), "not sorted: {distances:?}");
        if slices.len() < 2 {
            continue;
        }
        multi_slice += 1;
        let npy = sidecar.to_string_lossy().trim_end_matches(".json").to_string() + ".npy";
        let series_dir = Path::new(slices[0]["file"].as_str().unwrap()).parent().unwrap().to_path_buf();
        let code = format!(
            "import glob, json, numpy as np, pydicom\n\
             meta = json.load(open('{sidecar}'))\n\
             ds = [pydicom.dcmread(f) for f in glob.glob('{dir}/*.dcm')]\n\
             ds = [d for d in ds if d.Modality == 'CT']\n\
             o = np.array(ds[0].ImageOrientationPatient, float); n = np.cross(o[:3], o[3:])\n\
             ds.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, float))))\n\
             same_order = [str(d.filename) for d in ds] == [s['file'] for s in meta['slices']]\n\
             c, w = 40.0, 400.0\n\
             def win(x):\n    \
                 y = (x - (c - 0.5)) / (w - 1) + 0.5\n    \
                 y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, y)\n    \
                 return np.clip(np.where(x > c - 0.5 + (w - 1) / 2, 1.0, y), 0, 1)\n\
             vol = []\n\
             for d in ds:\n    \
                 hu = d.pixel_array.astype(np.float64) * float(d.get('RescaleSlope', 1)) + float(d.get('RescaleIntercept', 0))\n    \
                 x = win(hu)\n    \
                 vol.append(x.reshape(128, 2, 128, 2).mean(axis=(1, 3)))\n\
             expected = np.stack(vol)[None, None]\n\
             got = np.load('{npy}')\n\
             print(same_order, got.shape == expected.shape, float(np.abs(got - expected).max()))\n",
            sidecar = s(sidecar),
            dir = s(&series_dir),
        );
        if let Some(printed) = python(&code, "numpy, pydicom") {
            let fields: Vec<&str> = printed.split_whitespace().collect();
            assert_eq!(&fields[..2], ["True", "True"], "{printed}");
            let diff: f64 = fields[2].parse().unwrap();
            assert!(diff <= 1e-5, "radstream and NumPy differ by {diff}");
        }
    }
    assert!(multi_slice > 0, "no multi-slice CT series among {sidecars:?}");
}
