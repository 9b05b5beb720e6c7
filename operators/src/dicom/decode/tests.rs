use dicom_core::value::{DataSetSequence, PixelFragmentSequence, Value};
use dicom_core::{dicom_value, DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::*;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn image(rows: u16, columns: u16, photometric: &str, samples: u16, bits: (u16, u16), signed: bool) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7"));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4"));
    obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(columns)));
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(samples)));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric));
    obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(bits.0)));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits.1)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(bits.1 - 1)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(u16::from(signed))));
    obj
}

fn part10(obj: InMemDicomObject, transfer_syntax: &str) -> Vec<u8> {
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(transfer_syntax)
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                .media_storage_sop_instance_uid("1.2.3.4"),
        )
        .unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

#[test]
fn native_signed_16_bit_monochrome_is_sign_extended_from_bits_stored() {
    let values: [i16; 6] = [-2048, -1, 0, 1, 2047, 100];
    let mut obj = image(2, 3, "MONOCHROME2", 1, (16, 12), true);
    // Stored 12-bit two's complement in 16 bits with the unused high bits zero, as some
    // modalities write it: decoding must sign-extend from bit 11.
    let stored: Vec<u16> = values.iter().map(|&v| (v as u16) & 0x0FFF).collect();
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(stored.into())));
    obj.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, "2.5"));
    obj.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, "-1024"));
    obj.put(DataElement::new(tags::WINDOW_CENTER, VR::DS, dicom_value!(Strs, ["40", "400"])));
    obj.put(DataElement::new(tags::WINDOW_WIDTH, VR::DS, dicom_value!(Strs, ["80", "2000"])));
    let decoded = decode(&part10(obj, EXPLICIT_LE)).unwrap();
    assert_eq!((decoded.rows, decoded.columns, decoded.frames, decoded.samples_per_pixel), (2, 3, 1, 1));
    assert_eq!(decoded.photometric, "MONOCHROME2");
    assert_eq!(decoded.transfer_syntax, EXPLICIT_LE);
    assert_eq!(decoded.samples, Samples::I16(values.to_vec()));
    let params = &decoded.frame_params[0];
    assert_eq!((params.rescale_slope, params.rescale_intercept), (2.5, -1024.0));
    assert_eq!(params.window, Some((40.0, 80.0)));
}

#[test]
fn ybr_full_becomes_rgb_and_planar_configuration_is_interleaved() {
    // Two pixels stored planar: Y Y, Cb Cb, Cr Cr. Grey stays grey; (76, 85, 255) is red.
    let mut obj = image(1, 2, "YBR_FULL", 3, (8, 8), false);
    obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, PrimitiveValue::from(1u16)));
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(vec![128u8, 76, 128, 85, 128, 255])));
    let decoded = decode(&part10(obj, EXPLICIT_LE)).unwrap();
    assert_eq!(decoded.photometric, "RGB");
    assert_eq!(decoded.samples_per_pixel, 3);
    assert_eq!(decoded.samples, Samples::U8(vec![128, 128, 128, 254, 0, 0]));
}

#[test]
fn ybr_full_422_is_upsampled() {
    let mut obj = image(1, 2, "YBR_FULL_422", 3, (8, 8), false);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(vec![100u8, 200, 128, 128])));
    let decoded = decode(&part10(obj, EXPLICIT_LE)).unwrap();
    assert_eq!(decoded.samples, Samples::U8(vec![100, 100, 100, 200, 200, 200]));
}

#[test]
fn one_bit_samples_unpack_to_zero_and_one() {
    let mut obj = image(1, 10, "MONOCHROME2", 1, (1, 1), false);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(vec![0b1000_0101u8, 0b10])));
    let decoded = decode(&part10(obj, EXPLICIT_LE)).unwrap();
    assert_eq!(decoded.samples, Samples::U8(vec![1, 0, 1, 0, 0, 0, 0, 1, 0, 1]));
}

#[test]
fn palette_color_maps_through_the_lookup_tables() {
    let mut obj = image(1, 3, "PALETTE COLOR", 1, (8, 8), false);
    for (descriptor, data, lut) in [
        (tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, [10u16, 20, 30]),
        (tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA, [1, 2, 3]),
        (tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, [7, 8, 9]),
    ] {
        obj.put(DataElement::new(descriptor, VR::US, dicom_value!(U16, [3, 5, 16])));
        obj.put(DataElement::new(data, VR::OW, PrimitiveValue::U16(lut.to_vec().into())));
    }
    // 4 is below the first mapped value 5 and 9 above the last: both clamp, like pydicom.
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(vec![4u8, 6, 9])));
    let decoded = decode(&part10(obj, EXPLICIT_LE)).unwrap();
    assert_eq!(decoded.photometric, "RGB");
    assert_eq!(decoded.samples, Samples::U16(vec![10, 1, 7, 20, 2, 8, 30, 3, 9]));
}

fn group(sequence: Tag, attributes: Vec<DataElement<InMemDicomObject>>) -> DataElement<InMemDicomObject> {
    DataElement::new(
        sequence,
        VR::SQ,
        Value::from(DataSetSequence::from(vec![InMemDicomObject::from_element_iter(attributes)])),
    )
}

#[test]
fn enhanced_multi_frame_parameters_come_from_the_functional_groups() {
    let mut obj = image(1, 1, "MONOCHROME2", 1, (16, 16), false);
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "2"));
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![7u16, 9].into())));
    let shared = InMemDicomObject::from_element_iter([
        group(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![DataElement::new(tags::PIXEL_SPACING, VR::DS, dicom_value!(Strs, ["0.5", "0.6"]))],
        ),
        group(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                dicom_value!(Strs, ["1", "0", "0", "0", "1", "0"]),
            )],
        ),
        // The per-frame groups override this one for frame 2 only.
        group(
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            vec![
                DataElement::new(tags::RESCALE_SLOPE, VR::DS, "1"),
                DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, "-1000"),
            ],
        ),
    ]);
    let frame = |z: &str, window: Option<(&str, &str)>, intercept: Option<&str>| {
        let mut elements = vec![group(
            tags::PLANE_POSITION_SEQUENCE,
            vec![DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, dicom_value!(Strs, ["-10", "20.5", z]))],
        )];
        if let Some((center, width)) = window {
            elements.push(group(
                tags::FRAME_VOILUT_SEQUENCE,
                vec![
                    DataElement::new(tags::WINDOW_CENTER, VR::DS, center),
                    DataElement::new(tags::WINDOW_WIDTH, VR::DS, width),
                    DataElement::new(tags::VOILUT_FUNCTION, VR::CS, "SIGMOID"),
                ],
            ));
        }
        if let Some(intercept) = intercept {
            elements.push(group(
                tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
                vec![
                    DataElement::new(tags::RESCALE_SLOPE, VR::DS, "2"),
                    DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, intercept),
                ],
            ));
        }
        InMemDicomObject::from_element_iter(elements)
    };
    obj.put(DataElement::new(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        VR::SQ,
        Value::from(DataSetSequence::from(vec![shared])),
    ));
    obj.put(DataElement::new(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        VR::SQ,
        Value::from(DataSetSequence::from(vec![frame("0", Some(("50", "350")), None), frame("2.5", None, Some("-3"))])),
    ));
    let decoded = decode(&part10(obj, EXPLICIT_LE)).unwrap();
    assert_eq!(decoded.frames, 2);
    assert_eq!(decoded.samples, Samples::U16(vec![7, 9]));
    let [first, second] = decoded.frame_params.as_slice() else { panic!("two frames expected") };
    assert_eq!(
        first,
        &FrameParams {
            rescale_slope: 1.0,
            rescale_intercept: -1000.0,
            window: Some((50.0, 350.0)),
            voi_function: Some("SIGMOID".into()),
            position: Some([-10.0, 20.5, 0.0]),
            orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            pixel_spacing: Some([0.5, 0.6]),
        }
    );
    assert_eq!((second.rescale_slope, second.rescale_intercept), (2.0, -3.0));
    assert_eq!(second.window, None);
    assert_eq!(second.position, Some([-10.0, 20.5, 2.5]));
    assert_eq!(second.pixel_spacing, Some([0.5, 0.6]));
}

#[test]
fn a_jpeg_ls_stream_without_a_frame_is_refused_naming_the_transfer_syntax() {
    // SOI then EOI: with CharLS installed its header error, without it the missing library;
    // either way the reason names the syntax and JPEG-LS.
    let mut obj = image(2, 2, "MONOCHROME2", 1, (8, 8), false);
    let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0xFFu8, 0xD8, 0xFF, 0xD9]]);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, Value::from(fragments)));
    let err = decode(&part10(obj, "1.2.840.10008.1.2.4.80")).unwrap_err().to_string();
    assert!(err.contains("1.2.840.10008.1.2.4.80") && err.contains("JPEG-LS"), "{err}");
}

#[test]
fn broken_input_is_an_error_that_quotes_nothing() {
    // Too short for its Rows x Columns.
    let mut obj = image(4, 4, "MONOCHROME2", 1, (16, 16), false);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![1u16, 2].into())));
    let err = decode(&part10(obj, EXPLICIT_LE)).unwrap_err().to_string();
    assert!(err.contains(EXPLICIT_LE) && err.contains("MONOCHROME2") && err.contains("shorter"), "{err}");

    // A size that would need terabytes is refused before anything is allocated.
    let mut obj = image(u16::MAX, u16::MAX, "MONOCHROME2", 1, (16, 16), false);
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "1000"));
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![1u16, 2].into())));
    let err = decode(&part10(obj, EXPLICIT_LE)).unwrap_err().to_string();
    assert!(err.contains("size limit"), "{err}");

    // Garbage RLE: the codec's failure (or panic) becomes an error naming the syntax.
    let mut obj = image(8, 8, "MONOCHROME2", 1, (8, 8), false);
    let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0xFFu8; 64]]);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, Value::from(fragments)));
    let err = decode(&part10(obj, "1.2.840.10008.1.2.5")).unwrap_err().to_string();
    assert!(err.contains("1.2.840.10008.1.2.5") && err.contains("RLE"), "{err}");

    let err = decode(b"not dicom at all").unwrap_err().to_string();
    assert!(err.contains("Part-10"), "{err}");
}

/// Decoder bombs: codec streams that declare another image than their attributes.
mod bombs;
/// HTJ2K, with fixtures of its own.
mod htj2k;
