//! JPEG-LS (PS3.5 A.4.3; transfer syntaxes 1.2.840.10008.1.2.4.80 lossless and .81
//! near-lossless) through the C API of CharLS 2.
//!
//! CharLS is opened at run time (dlopen), not linked: radstream builds and runs where it is not
//! installed, and only JPEG-LS objects need it; they then get an error that says what to
//! install. (dicom-pixeldata's `charls` feature would build CharLS from source with cmake and a
//! C++ toolchain.) The library is opened once per process: the file named by
//! `RADSTREAM_CHARLS_LIB` if that is set, else `libcharls.so.2`, else `libcharls.so`.
//!
//! CharLS writes samples of up to 8 bits as bytes and of 9 to 16 bits as native-endian 16-bit
//! words. JPEG-LS has no notion of sign: signed data comes out as the two's complement bit
//! pattern of the codestream's precision. It is sign-extended from that precision here when the
//! precision is below BitsStored (as pydicom does), and from BitsStored by `samples_from_le`.

use std::borrow::Cow;
use std::ffi::{c_char, c_int, c_void, CStr, OsStr};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::OnceLock;

use libloading::Library;

use super::PixelModule;

/// JPEG-LS Lossless Image Compression.
pub(super) const LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
/// JPEG-LS Lossy (Near-Lossless) Image Compression.
pub(super) const NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";

/// Names the CharLS library file to open instead of the default names.
const LIBRARY_ENV: &str = "RADSTREAM_CHARLS_LIB";
/// Tried in order. The versioned name first: the unversioned one is a development link that
/// may point at another major version (the version is checked either way).
const LIBRARY_NAMES: &[&str] = &["libcharls.so.2", "libcharls.so"];

// The C API of CharLS 2.1 to 2.4 (include/charls/charls_jpegls_decoder.h, public_types.h,
// jpegls_error.h, version.h). CHARLS_API_CALLING_CONVENTION is empty except on 32-bit Windows,
// so every function is "C"; C enums (charls_jpegls_errc, charls_interleave_mode) are `int`.

/// `charls_jpegls_decoder`, opaque.
#[repr(C)]
struct RawDecoder {
    _opaque: [u8; 0],
}

/// `charls_jpegls_errc`; 0 is `CHARLS_JPEGLS_ERRC_SUCCESS`.
type Errc = c_int;

/// `charls_frame_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FrameInfo {
    width: u32,
    height: u32,
    bits_per_sample: i32,
    component_count: i32,
}

/// `CHARLS_INTERLEAVE_MODE_NONE`: the scan holds one component plane after the other, and so
/// does CharLS's output. Line- and sample-interleaved scans come out pixel-interleaved.
const INTERLEAVE_NONE: c_int = 0;

/// The decoder functions of an opened CharLS 2.
struct Api {
    create: unsafe extern "C" fn() -> *mut RawDecoder,
    destroy: unsafe extern "C" fn(*const RawDecoder),
    set_source_buffer: unsafe extern "C" fn(*mut RawDecoder, *const c_void, usize) -> Errc,
    read_header: unsafe extern "C" fn(*mut RawDecoder) -> Errc,
    get_frame_info: unsafe extern "C" fn(*const RawDecoder, *mut FrameInfo) -> Errc,
    get_near_lossless: unsafe extern "C" fn(*const RawDecoder, i32, *mut i32) -> Errc,
    get_interleave_mode: unsafe extern "C" fn(*const RawDecoder, *mut c_int) -> Errc,
    get_destination_size: unsafe extern "C" fn(*const RawDecoder, u32, *mut usize) -> Errc,
    decode_to_buffer: unsafe extern "C" fn(*mut RawDecoder, *mut c_void, usize, u32) -> Errc,
    get_error_message: unsafe extern "C" fn(Errc) -> *const c_char,
}

/// CharLS 2, opened.
struct CharLs {
    api: Api,
    /// Keeps the functions in `api` mapped; never closed while `api` is reachable.
    #[cfg_attr(not(test), allow(dead_code))]
    library: Library,
}

/// Why a library file could not serve as CharLS 2.
#[derive(Debug)]
enum OpenError {
    /// dlopen failed: no such file (or not loadable on this machine).
    Missing,
    /// Loaded, but not CharLS 2.
    NotCharLs2(String),
}

impl OpenError {
    fn describe(&self) -> String {
        match self {
            OpenError::Missing => {
                "JPEG-LS needs CharLS 2 (libcharls.so.2, Debian/Ubuntu package libcharls2), which was not found".into()
            }
            OpenError::NotCharLs2(what) => format!("JPEG-LS needs CharLS 2, and the CharLS library found {what}"),
        }
    }
}

/// CharLS 2, opened on first use; the outcome, failure included, is kept for the process.
fn charls() -> Result<&'static CharLs, String> {
    static CHARLS: OnceLock<Result<CharLs, String>> = OnceLock::new();
    CHARLS
        .get_or_init(|| match std::env::var_os(LIBRARY_ENV) {
            Some(path) => open(&path).map_err(|e| format!("{} ({LIBRARY_ENV} names the file to open)", e.describe())),
            None => open_first(LIBRARY_NAMES),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The first of `names` that opens as CharLS 2. A library that is found but is not CharLS 2
/// is named in the error rather than reported as missing.
fn open_first(names: &[&str]) -> Result<CharLs, String> {
    let mut error = OpenError::Missing;
    for name in names {
        match open(OsStr::new(name)) {
            Ok(charls) => return Ok(charls),
            Err(OpenError::Missing) => {}
            Err(other) => error = other,
        }
    }
    Err(error.describe())
}

fn open(path: &OsStr) -> Result<CharLs, OpenError> {
    // SAFETY: loading runs the library's initializers. The file is CharLS (a default name or the
    // operator's explicit choice), whose initializers are C++ static constructors without
    // preconditions; a file that is not CharLS is refused below before any other call.
    let library = unsafe { Library::new(path) }.map_err(|_| OpenError::Missing)?;
    // SAFETY: charls_get_version_number is `void (int32_t* major, int32_t* minor, int32_t*
    // patch)` in version.h since CharLS 2.1.
    let version: unsafe extern "C" fn(*mut i32, *mut i32, *mut i32) =
        unsafe { function(&library, b"charls_get_version_number\0") }?;
    let mut major = 0;
    // SAFETY: each out-parameter may be null (CHARLS_OUT_OPT); `major` is a valid i32.
    unsafe { version(&mut major, std::ptr::null_mut(), std::ptr::null_mut()) };
    if major != 2 {
        return Err(OpenError::NotCharLs2(format!("is version {major}")));
    }
    // SAFETY: each type is the declaration of that name in CharLS 2.1 to 2.4 (see `Api`, whose
    // field types were written from charls_jpegls_decoder.h and jpegls_error.h).
    let api = unsafe {
        Api {
            create: function(&library, b"charls_jpegls_decoder_create\0")?,
            destroy: function(&library, b"charls_jpegls_decoder_destroy\0")?,
            set_source_buffer: function(&library, b"charls_jpegls_decoder_set_source_buffer\0")?,
            read_header: function(&library, b"charls_jpegls_decoder_read_header\0")?,
            get_frame_info: function(&library, b"charls_jpegls_decoder_get_frame_info\0")?,
            get_near_lossless: function(&library, b"charls_jpegls_decoder_get_near_lossless\0")?,
            get_interleave_mode: function(&library, b"charls_jpegls_decoder_get_interleave_mode\0")?,
            get_destination_size: function(&library, b"charls_jpegls_decoder_get_destination_size\0")?,
            decode_to_buffer: function(&library, b"charls_jpegls_decoder_decode_to_buffer\0")?,
            get_error_message: function(&library, b"charls_get_error_message\0")?,
        }
    };
    Ok(CharLs { api, library })
}

/// The function `name` (NUL-terminated) of `library`, as a plain function pointer.
///
/// # Safety
/// `T` must be the `unsafe extern "C" fn` type of the C declaration of `name`, and the pointer
/// must not be called after `library` is dropped.
unsafe fn function<T: Copy>(library: &Library, name: &[u8]) -> Result<T, OpenError> {
    // SAFETY: the caller vouches for `T` and for the library outliving the pointer.
    let symbol = unsafe { library.get::<T>(name) };
    symbol.map(|f| *f).map_err(|_| {
        let name = String::from_utf8_lossy(name.strip_suffix(b"\0").unwrap_or(name)).into_owned();
        OpenError::NotCharLs2(format!("has no function {name}"))
    })
}

impl Api {
    /// CharLS's text for an error code: static English text that quotes nothing from the data.
    fn message(&self, errc: Errc) -> String {
        // SAFETY: charls_get_error_message takes any value (unknown ones get a generic text).
        let text = unsafe { (self.get_error_message)(errc) };
        if text.is_null() {
            return format!("error {errc}");
        }
        // SAFETY: non-null, it points at a NUL-terminated string with static lifetime.
        let text = unsafe { CStr::from_ptr(text) };
        text.to_string_lossy().chars().filter(|c| !c.is_control()).take(200).collect()
    }

    fn check(&self, errc: Errc, what: &str) -> Result<(), String> {
        if errc == 0 {
            Ok(())
        } else {
            Err(format!("CharLS {what} ({})", self.message(errc)))
        }
    }
}

/// What a JPEG-LS header says about its frame.
struct Header {
    info: FrameInfo,
    interleave: c_int,
    near_lossless: i32,
    /// The bytes CharLS will write, rows packed without padding.
    size: usize,
}

/// One CharLS decoder reading `source`; destroyed on drop. A decoder decodes one frame.
struct Decoder<'a> {
    api: &'a Api,
    raw: NonNull<RawDecoder>,
    /// CharLS keeps a pointer to the source until the decoder is destroyed.
    _source: PhantomData<&'a [u8]>,
}

impl<'a> Decoder<'a> {
    fn new(api: &'a Api, source: &'a [u8]) -> Result<Self, String> {
        // SAFETY: no preconditions; null means out of memory.
        let raw = unsafe { (api.create)() };
        let raw = NonNull::new(raw).ok_or("CharLS could not create a JPEG-LS decoder (out of memory)")?;
        let decoder = Decoder { api, raw, _source: PhantomData };
        // SAFETY: `raw` is a fresh decoder; `source` is valid for reads of its length for 'a,
        // which outlives the decoder.
        let errc = unsafe { (api.set_source_buffer)(raw.as_ptr(), source.as_ptr().cast(), source.len()) };
        api.check(errc, "could not take the JPEG-LS codestream")?;
        Ok(decoder)
    }

    fn read_header(&mut self) -> Result<Header, String> {
        let (api, raw) = (self.api, self.raw.as_ptr());
        let mut info = FrameInfo::default();
        let (mut interleave, mut near_lossless, mut size) = (0, 0, 0);
        // SAFETY: `raw` is a live decoder with its source set; the out-pointers are valid locals
        // of the declared types. CharLS reads only within the source buffer it was given.
        unsafe {
            api.check((api.read_header)(raw), "could not read the JPEG-LS header")?;
            api.check((api.get_frame_info)(raw, &mut info), "could not read the JPEG-LS frame header")?;
            api.check((api.get_interleave_mode)(raw, &mut interleave), "could not read the interleave mode")?;
            api.check((api.get_near_lossless)(raw, 0, &mut near_lossless), "could not read the NEAR parameter")?;
            // Stride 0: rows packed one after the other.
            api.check((api.get_destination_size)(raw, 0, &mut size), "could not size the JPEG-LS frame")?;
        }
        Ok(Header { info, interleave, near_lossless, size })
    }

    /// Decodes the frame into `destination`, which must be [`Header::size`] bytes long.
    fn decode_into(&mut self, destination: &mut [u8]) -> Result<(), String> {
        // SAFETY: the header has been read; `destination` is valid for writes of its length and
        // CharLS writes no more than the length it is given (it fails when that is too small).
        let errc = unsafe {
            (self.api.decode_to_buffer)(self.raw.as_ptr(), destination.as_mut_ptr().cast(), destination.len(), 0)
        };
        self.api.check(errc, "could not decode the JPEG-LS codestream")
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from charls_jpegls_decoder_create and is destroyed once, here.
        unsafe { (self.api.destroy)(self.raw.as_ptr()) }
    }
}

/// Decodes one codestream per frame into little-endian samples, BitsAllocated wide and
/// pixel-interleaved, each frame's header checked against the pixel module first.
pub(super) fn decode_frames(streams: &[Cow<'_, [u8]>], module: &PixelModule, uid: &str) -> Result<Vec<u8>, String> {
    if module.bits_allocated != 8 && module.bits_allocated != 16 {
        return Err("JPEG-LS needs BitsAllocated 8 or 16".into());
    }
    if streams.len() != module.frames as usize {
        return Err(format!("there are {} JPEG-LS frames for NumberOfFrames {}", streams.len(), module.frames));
    }
    let charls = charls()?;
    let frame_len = module.pixels_per_frame() * usize::from(module.samples_per_pixel * module.bits_allocated / 8);
    let mut out = vec![0u8; frame_len * streams.len()];
    let mut scratch = Vec::new();
    for (index, (stream, frame)) in streams.iter().zip(out.chunks_exact_mut(frame_len)).enumerate() {
        let near_lossless = decode_frame(&charls.api, stream, module, frame, &mut scratch).map_err(|what| {
            if streams.len() > 1 {
                format!("frame {}: {what}", index + 1)
            } else {
                what
            }
        })?;
        if near_lossless != 0 && uid == LOSSLESS {
            tracing::warn!(near_lossless, "a JPEG-LS Lossless object holds a near-lossless codestream");
        }
    }
    Ok(out)
}

/// Decodes one frame into `out` (little-endian, BitsAllocated wide, pixel-interleaved) and
/// returns its NEAR parameter. `scratch` takes CharLS's output when it needs repacking.
fn decode_frame(
    api: &Api,
    stream: &[u8],
    module: &PixelModule,
    out: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<i32, String> {
    let mut decoder = Decoder::new(api, stream)?;
    let header = decoder.read_header()?;
    let precision = check_header(&header.info, module)?;
    let components = usize::from(module.samples_per_pixel);
    let samples = module.pixels_per_frame() * components;
    let (from_width, to_width) = (if precision <= 8 { 1 } else { 2 }, usize::from(module.bits_allocated / 8));
    if header.size != samples * from_width {
        return Err(format!(
            "CharLS would write {} bytes for a frame of {} samples of {precision} bits",
            header.size, samples
        ));
    }
    let planar = components > 1 && header.interleave == INTERLEAVE_NONE;
    if from_width == to_width && !planar {
        decoder.decode_into(out)?;
        if cfg!(target_endian = "big") && to_width == 2 {
            out.chunks_exact_mut(2).for_each(|word| word.swap(0, 1));
        }
    } else {
        scratch.resize(header.size, 0);
        decoder.decode_into(scratch)?;
        repack(scratch, from_width, planar.then_some(components), out, to_width);
    }
    if module.signed && precision < module.bits_stored {
        sign_extend(out, to_width, precision);
    }
    Ok(header.near_lossless)
}

/// Refuses a header that disagrees with the pixel module; returns the bits per sample.
fn check_header(info: &FrameInfo, module: &PixelModule) -> Result<u16, String> {
    if info.width != module.columns || info.height != module.rows {
        return Err(format!(
            "the JPEG-LS header has {} x {} pixels (columns x rows), Columns x Rows are {} x {}",
            info.width, info.height, module.columns, module.rows
        ));
    }
    if info.component_count != i32::from(module.samples_per_pixel) {
        return Err(format!(
            "the JPEG-LS header has {} components, SamplesPerPixel is {}",
            info.component_count, module.samples_per_pixel
        ));
    }
    u16::try_from(info.bits_per_sample).ok().filter(|&bits| (2..=module.bits_allocated).contains(&bits)).ok_or_else(
        || {
            format!(
                "the JPEG-LS header has {} bits per sample, more than BitsAllocated {}",
                info.bits_per_sample, module.bits_allocated
            )
        },
    )
}

/// Copies CharLS's output to `out`: component planes (`Some(components)`) to interleaved
/// pixels, and bytes to 16-bit words where the codestream has at most 8 bits but BitsAllocated
/// is 16.
fn repack(decoded: &[u8], from_width: usize, planes: Option<usize>, out: &mut [u8], to_width: usize) {
    let count = out.len() / to_width;
    for (i, sample) in out.chunks_exact_mut(to_width).enumerate() {
        let source = match planes {
            Some(components) => (i % components) * (count / components) + i / components,
            None => i,
        };
        let value = match from_width {
            1 => u16::from(decoded[source]),
            _ => u16::from_ne_bytes([decoded[2 * source], decoded[2 * source + 1]]),
        };
        sample.copy_from_slice(&value.to_le_bytes()[..to_width]);
    }
}

/// Sign-extends `precision`-bit two's complement samples to their full width.
fn sign_extend(out: &mut [u8], width: usize, precision: u16) {
    let shift = u32::from(width as u16 * 8 - precision);
    if width == 1 {
        out.iter_mut().for_each(|b| *b = (((*b << shift) as i8) >> shift) as u8);
    } else {
        for word in out.chunks_exact_mut(2) {
            let value = (i16::from_le_bytes([word[0], word[1]]) << shift) >> shift;
            word.copy_from_slice(&value.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::ffi::{c_int, c_void, OsStr};

    use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    use super::super::{decode, PixelModule, Samples};
    use super::*;

    /// CharLS, or None after saying why the test is skipped; RADSTREAM_REQUIRE_STACK=1 makes a
    /// missing CharLS a failure (the convention of `radstream_tests::skip_without`).
    fn charls_or_skip() -> Option<&'static CharLs> {
        match charls() {
            Ok(charls) => Some(charls),
            Err(why) if std::env::var("RADSTREAM_REQUIRE_STACK").as_deref() == Ok("1") => {
                panic!("RADSTREAM_REQUIRE_STACK=1 but {why} (infra/stack.sh installs it)")
            }
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    /// `charls_jpegls_encoder`, opaque.
    #[repr(C)]
    struct RawEncoder {
        _opaque: [u8; 0],
    }

    /// Encodes `source` (native-endian samples: planes for interleave mode 0, pixels otherwise)
    /// with CharLS's own encoder (charls_jpegls_encoder.h).
    fn encode(charls: &CharLs, info: FrameInfo, interleave: c_int, near_lossless: i32, source: &[u8]) -> Vec<u8> {
        type E = *mut RawEncoder;
        let lib = &charls.library;
        let (mut size, mut used) = (0usize, 0usize);
        let mut out = Vec::new();
        // SAFETY: each function type is its declaration in charls_jpegls_encoder.h of CharLS 2.4,
        // and the library lives in a static. The encoder is live from create to destroy; every
        // pointer passed is a valid local or a buffer valid for the length passed with it.
        unsafe {
            let create: unsafe extern "C" fn() -> E = function(lib, b"charls_jpegls_encoder_create\0").unwrap();
            let destroy: unsafe extern "C" fn(E) = function(lib, b"charls_jpegls_encoder_destroy\0").unwrap();
            let set_frame_info: unsafe extern "C" fn(E, *const FrameInfo) -> Errc =
                function(lib, b"charls_jpegls_encoder_set_frame_info\0").unwrap();
            let set_near_lossless: unsafe extern "C" fn(E, i32) -> Errc =
                function(lib, b"charls_jpegls_encoder_set_near_lossless\0").unwrap();
            let set_interleave_mode: unsafe extern "C" fn(E, c_int) -> Errc =
                function(lib, b"charls_jpegls_encoder_set_interleave_mode\0").unwrap();
            let estimate_size: unsafe extern "C" fn(E, *mut usize) -> Errc =
                function(lib, b"charls_jpegls_encoder_get_estimated_destination_size\0").unwrap();
            let set_destination: unsafe extern "C" fn(E, *mut c_void, usize) -> Errc =
                function(lib, b"charls_jpegls_encoder_set_destination_buffer\0").unwrap();
            let encode_from: unsafe extern "C" fn(E, *const c_void, usize, u32) -> Errc =
                function(lib, b"charls_jpegls_encoder_encode_from_buffer\0").unwrap();
            let bytes_written: unsafe extern "C" fn(E, *mut usize) -> Errc =
                function(lib, b"charls_jpegls_encoder_get_bytes_written\0").unwrap();

            let encoder = create();
            assert!(!encoder.is_null());
            assert_eq!(set_frame_info(encoder, &info), 0);
            assert_eq!(set_near_lossless(encoder, near_lossless), 0);
            assert_eq!(set_interleave_mode(encoder, interleave), 0);
            assert_eq!(estimate_size(encoder, &mut size), 0);
            out.resize(size, 0);
            assert_eq!(set_destination(encoder, out.as_mut_ptr().cast(), out.len()), 0);
            assert_eq!(encode_from(encoder, source.as_ptr().cast(), source.len(), 0), 0);
            assert_eq!(bytes_written(encoder, &mut used), 0);
            destroy(encoder);
        }
        out.truncate(used);
        out
    }

    fn module(rows: u32, columns: u32, samples_per_pixel: u16, bits: (u16, u16), signed: bool) -> PixelModule {
        PixelModule {
            rows,
            columns,
            samples_per_pixel,
            bits_allocated: bits.0,
            bits_stored: bits.1,
            signed,
            photometric: if samples_per_pixel == 3 { "RGB" } else { "MONOCHROME2" }.into(),
            planar: false,
            frames: 1,
        }
    }

    fn frame_info(module: &PixelModule, bits_per_sample: i32) -> FrameInfo {
        FrameInfo {
            width: module.columns,
            height: module.rows,
            bits_per_sample,
            component_count: i32::from(module.samples_per_pixel),
        }
    }

    fn native_words(values: impl IntoIterator<Item = u16>) -> Vec<u8> {
        values.into_iter().flat_map(u16::to_ne_bytes).collect()
    }

    /// A CT-like slice: air around an elliptic body of soft tissue with a bony rim, with noise.
    fn ct_slice(size: u32, seed: u64) -> Vec<i16> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let centre = f64::from(size) / 2.0;
        let mut noise = |sigma: f64| (0..4).map(|_| rng.f64() - 0.5).sum::<f64>() * sigma * 1.7;
        (0..size * size)
            .map(|i| {
                let (x, y) = (f64::from(i % size) - centre, f64::from(i / size) - centre);
                let r = (x / (0.42 * centre * 2.0)).hypot(y / (0.32 * centre * 2.0));
                let hu = match r {
                    r if r < 0.93 => 40.0 + noise(15.0),
                    r if r < 1.0 => 900.0 + noise(60.0),
                    _ => -1000.0 + noise(8.0),
                };
                hu.round() as i16
            })
            .collect()
    }

    /// A Part-10 object holding JPEG-LS `fragments` with the basic offset table `offsets`.
    fn part10(module: &PixelModule, uid: &str, offsets: Vec<u32>, fragments: Vec<Vec<u8>>) -> Vec<u8> {
        let us = [
            (tags::ROWS, module.rows as u16),
            (tags::COLUMNS, module.columns as u16),
            (tags::SAMPLES_PER_PIXEL, module.samples_per_pixel),
            (tags::BITS_ALLOCATED, module.bits_allocated),
            (tags::BITS_STORED, module.bits_stored),
            (tags::HIGH_BIT, module.bits_stored - 1),
            (tags::PIXEL_REPRESENTATION, u16::from(module.signed)),
        ];
        let text = [
            (tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
            (tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5"),
            (tags::PHOTOMETRIC_INTERPRETATION, VR::CS, module.photometric.as_str()),
            (tags::NUMBER_OF_FRAMES, VR::IS, &module.frames.to_string()),
        ];
        let obj = InMemDicomObject::from_element_iter(
            us.into_iter()
                .map(|(tag, value)| DataElement::new(tag, VR::US, PrimitiveValue::from(value)))
                .chain(text.into_iter().map(|(tag, vr, value)| DataElement::new(tag, vr, PrimitiveValue::from(value))))
                .chain([DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OB,
                    Value::from(PixelFragmentSequence::new(offsets, fragments)),
                )]),
        );
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(uid)
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
            .media_storage_sop_instance_uid("1.2.3.4.5");
        let mut bytes = Vec::new();
        obj.with_meta(meta).unwrap().write_all(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_missing_library_is_named_with_its_package() {
        let err = open(OsStr::new("/nonexistent/libcharls.so.2")).err().unwrap().describe();
        assert!(err.contains("CharLS 2") && err.contains("libcharls2") && err.contains("not found"), "{err}");
        let err = open_first(&["/nonexistent/libcharls.so.2", "/nonexistent/libcharls.so"]).err().unwrap();
        assert!(err.contains("libcharls2"), "{err}");
    }

    #[test]
    fn a_library_that_is_not_charls_2_is_refused() {
        // libc is loadable everywhere this runs and has none of CharLS's functions.
        let err = open(OsStr::new("libc.so.6")).err().unwrap().describe();
        assert!(err.contains("CharLS 2") && err.contains("charls_get_version_number"), "{err}");
    }

    #[test]
    fn signed_16_bit_round_trips_exactly() {
        let Some(charls) = charls_or_skip() else { return };
        let (rows, columns) = (37, 53);
        let mut values: Vec<i16> = ct_slice(64, 7)[..(rows * columns) as usize].to_vec();
        values[..4].copy_from_slice(&[i16::MIN, i16::MAX, -1, 0]);
        let module = module(rows, columns, 1, (16, 16), true);
        let stream = encode(charls, frame_info(&module, 16), 0, 0, &native_words(values.iter().map(|&v| v as u16)));

        let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module, LOSSLESS).unwrap();
        let decoded: Vec<i16> = bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(decoded, values);

        // The same through the whole decoder, with an odd-length stream padded as PS3.5 A.4 asks.
        let mut padded = stream.clone();
        if padded.len() % 2 == 1 {
            padded.push(0);
        }
        let image = decode(&part10(&module, LOSSLESS, vec![], vec![padded])).unwrap();
        assert_eq!(image.samples, Samples::I16(values));
    }

    #[test]
    fn frames_are_found_through_the_basic_offset_table() {
        let Some(charls) = charls_or_skip() else { return };
        let mut module = module(16, 24, 1, (16, 12), false);
        module.frames = 3;
        let frames: Vec<Vec<u16>> =
            (0..3u16).map(|f| (0..16 * 24).map(|i| (i * 7 + f * 1000) % 4096).collect()).collect();
        let streams: Vec<Vec<u8>> =
            frames.iter().map(|f| encode(charls, frame_info(&module, 12), 0, 0, &native_words(f.clone()))).collect();
        // Frame 2 split over two fragments: 4 fragments for 3 frames, told apart by the table.
        let (head, tail) = streams[1].split_at(streams[1].len() / 2);
        let fragments = vec![streams[0].clone(), head.to_vec(), tail.to_vec(), streams[2].clone()];
        let item = |f: &Vec<u8>| 8 + f.len() as u32;
        let offsets = vec![0, item(&fragments[0]), item(&fragments[0]) + item(&fragments[1]) + item(&fragments[2])];
        let image = decode(&part10(&module, LOSSLESS, offsets, fragments)).unwrap();
        assert_eq!(image.samples, Samples::U16(frames.concat()));
    }

    #[test]
    fn every_interleave_mode_comes_out_pixel_interleaved() {
        let Some(charls) = charls_or_skip() else { return };
        let module = module(5, 7, 3, (8, 8), false);
        let pixels: Vec<u8> = (0..5 * 7 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let planes: Vec<u8> = (0..3).flat_map(|c| pixels.iter().skip(c).step_by(3).copied()).collect();
        for (mode, source) in [(0, &planes), (1, &pixels), (2, &pixels)] {
            let stream = encode(charls, frame_info(&module, 8), mode, 0, source);
            let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module, LOSSLESS).unwrap();
            assert_eq!(bytes, pixels, "interleave mode {mode}");
        }
    }

    #[test]
    fn narrow_codestreams_are_widened_and_sign_extended_from_their_precision() {
        let Some(charls) = charls_or_skip() else { return };
        // 12-bit two's complement in a codestream of precision 12, BitsStored 16: pydicom
        // sign-extends from the codestream's precision.
        let module_16 = module(2, 3, 1, (16, 16), true);
        let values: [i16; 6] = [-2048, -1, 0, 1, 2047, -300];
        let stream = encode(charls, frame_info(&module_16, 12), 0, 0, &native_words(values.map(|v| v as u16 & 0x0FFF)));
        let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module_16, LOSSLESS).unwrap();
        assert_eq!(bytes, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());

        // An 8-bit codestream for BitsAllocated 16 comes out as 16-bit words.
        let module_8_in_16 = module(2, 3, 1, (16, 8), false);
        let stream = encode(charls, frame_info(&module_8_in_16, 8), 0, 0, &[0, 1, 127, 128, 254, 255]);
        let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module_8_in_16, LOSSLESS).unwrap();
        assert_eq!(bytes, [0, 0, 1, 0, 127, 0, 128, 0, 254, 0, 255, 0]);
    }

    #[test]
    fn near_lossless_stays_within_near() {
        let Some(charls) = charls_or_skip() else { return };
        let module = module(32, 32, 1, (16, 16), true);
        let values = ct_slice(32, 3);
        let stream = encode(charls, frame_info(&module, 16), 0, 3, &native_words(values.iter().map(|&v| v as u16)));
        let image = decode(&part10(&module, NEAR_LOSSLESS, vec![], vec![stream])).unwrap();
        let Samples::I16(decoded) = image.samples else { panic!("not I16") };
        assert!(decoded.iter().zip(&values).all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() <= 3));
    }

    #[test]
    fn broken_codestreams_are_errors() {
        let Some(charls) = charls_or_skip() else { return };
        let module = module(16, 16, 1, (16, 16), false);
        let stream = encode(charls, frame_info(&module, 16), 0, 0, &native_words((0..256).map(|i| i * 211)));
        let mut garbage = vec![0u8; 300];
        fastrand::Rng::with_seed(1).fill(&mut garbage);
        let cases: [(&str, &[u8]); 6] = [
            ("empty", &[]),
            ("SOI and EOI only", &[0xFF, 0xD8, 0xFF, 0xD9]),
            ("garbage", &garbage),
            ("cut in the header", &stream[..12]),
            ("cut in the scan", &stream[..stream.len() / 2]),
            ("without EOI", &stream[..stream.len() - 2]),
        ];
        for (what, bytes) in cases {
            let err = decode_frames(&[Cow::Borrowed(bytes)], &module, LOSSLESS).unwrap_err();
            assert!(err.contains("CharLS"), "{what}: {err}");
        }
    }

    #[test]
    fn a_header_that_disagrees_with_the_pixel_module_is_refused() {
        let Some(charls) = charls_or_skip() else { return };
        let module_16 = module(8, 8, 1, (16, 16), false);
        let stream = encode(charls, frame_info(&module_16, 12), 0, 0, &native_words(0..64));
        let decode_as = |module: &PixelModule| decode_frames(&[Cow::Borrowed(&stream[..])], module, LOSSLESS);
        for (module, expected) in [
            (module(8, 9, 1, (16, 16), false), "Columns x Rows"),
            (module(9, 8, 1, (16, 16), false), "Columns x Rows"),
            (module(8, 8, 3, (16, 16), false), "SamplesPerPixel"),
            (module(8, 8, 1, (8, 8), false), "BitsAllocated"),
        ] {
            let err = decode_as(&module).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        assert!(decode_as(&module_16).is_ok());
    }

    /// Decode time of a 512 x 512 signed 16-bit CT-like slice, whole `decode` (parse, CharLS,
    /// sample conversion, frame parameters). Run in release:
    /// `cargo test --release -p radstream-operators --lib jpegls -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run by hand in release"]
    fn decode_time_of_a_ct_slice() {
        let Some(charls) = charls_or_skip() else { return };
        let module = module(512, 512, 1, (16, 16), true);
        let values = ct_slice(512, 11);
        let stream = encode(charls, frame_info(&module, 16), 0, 0, &native_words(values.iter().map(|&v| v as u16)));
        let object = part10(&module, LOSSLESS, vec![], vec![stream.clone()]);
        let time = |f: &dyn Fn()| {
            let mut runs: Vec<f64> = (0..55)
                .map(|_| {
                    let started = std::time::Instant::now();
                    f();
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            runs.drain(..5);
            runs.sort_by(f64::total_cmp);
            (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
        };
        let whole = time(&|| assert_eq!(decode(&object).unwrap().samples.len(), 512 * 512));
        let codec = time(&|| {
            decode_frames(&[Cow::Borrowed(&stream[..])], &module, LOSSLESS).unwrap();
        });
        eprintln!("512x512 signed 16-bit lossless JPEG-LS, {} bytes compressed, 50 runs:", stream.len());
        eprintln!("  decode():        median {:.3} ms (min {:.3}, max {:.3})", whole.0, whole.1, whole.2);
        eprintln!("  decode_frames(): median {:.3} ms (min {:.3}, max {:.3})", codec.0, codec.1, codec.2);
    }
}
