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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libloading::Library;

use super::image::PixelModule;

/// JPEG-LS Lossless Image Compression.
pub(super) const LOSSLESS: &str = dicom_dictionary_std::uids::JPEGLS_LOSSLESS;
/// JPEG-LS Lossy (Near-Lossless) Image Compression.
pub(super) const NEAR_LOSSLESS: &str = dicom_dictionary_std::uids::JPEGLS_NEAR_LOSSLESS;

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
    api: &'static Api,
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
    drop(decoder);
    let decoded = decode_guarded(api, stream, header.size, samples)?;
    if from_width == to_width && !planar {
        out.copy_from_slice(&decoded);
        if cfg!(target_endian = "big") && to_width == 2 {
            out.chunks_exact_mut(2).for_each(|word| word.swap(0, 1));
        }
    } else {
        *scratch = decoded;
        repack(scratch, from_width, planar.then_some(components), out, to_width);
    }
    if module.signed && precision < module.bits_stored {
        sign_extend(out, to_width, precision);
    }
    Ok(header.near_lossless)
}

/// Decodes still running after their time was up (see [`decode_guarded`]).
static STALLED: AtomicUsize = AtomicUsize::new(0);

/// How many stalled decodes may run on at once before JPEG-LS objects are refused unread.
const MAX_STALLED: usize = 2;

/// Decodes `stream` (whose header announced `size` bytes) on a thread of its own and waits at
/// most one second plus 100 ns a sample. CharLS before 2.4.3 can spin for seconds on a crafted
/// codestream of a few hundred bytes (team-charls/charls#334: a Golomb parameter loop that only
/// ends when an integer wraps; Debian 13 ships 2.4.1), and a native call cannot be interrupted.
/// A decode past its time is refused and left to finish on its own thread; while
/// [`MAX_STALLED`] such threads still run, JPEG-LS objects are refused without decoding.
fn decode_guarded(api: &'static Api, stream: &[u8], size: usize, samples: usize) -> Result<Vec<u8>, String> {
    let limit = Duration::from_secs(1) + Duration::from_nanos(100 * samples as u64);
    let owned = stream.to_vec();
    run_guarded(&STALLED, limit, move || {
        let mut decoder = Decoder::new(api, &owned)?;
        decoder.read_header()?;
        let mut destination = vec![0u8; size];
        decoder.decode_into(&mut destination)?;
        Ok(destination)
    })
    .map_err(|stalled| match stalled {
        Stalled::Refused => format!(
            "refused without decoding: {MAX_STALLED} earlier JPEG-LS codestreams that stalled the decoder are \
             still being decoded; install CharLS 2.4.3 or later, which ends them at once"
        ),
        Stalled::TimedOut => format!(
            "the JPEG-LS decoder did not finish within {limit:?} for a frame of {samples} samples: the codestream \
             is malformed or crafted to stall the decoder"
        ),
        Stalled::Failed(what) => what,
    })
}

/// Why [`run_guarded`] has no decoded frame.
#[derive(Debug, PartialEq)]
enum Stalled {
    /// [`MAX_STALLED`] decodes still run past their time: nothing was started.
    Refused,
    /// The decode did not end within its time; it goes on, counted as stalled.
    TimedOut,
    /// The decode ended with this error.
    Failed(String),
}

/// Runs `decode` on a thread of its own and waits for it at most `limit`; `stalled` counts the
/// decodes still running past their time.
fn run_guarded(
    stalled: &'static AtomicUsize,
    limit: Duration,
    decode: impl FnOnce() -> Result<Vec<u8>, String> + Send + 'static,
) -> Result<Vec<u8>, Stalled> {
    if stalled.load(Ordering::Acquire) >= MAX_STALLED {
        return Err(Stalled::Refused);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    // (the decode has ended, the caller gave up waiting): whichever comes second settles the
    // count of stalled decodes, under the lock.
    let state = Arc::new(Mutex::new((false, false)));
    let job = state.clone();
    std::thread::Builder::new()
        .name("charls-decode".into())
        .spawn(move || {
            let result = decode();
            let mut state = job.lock().unwrap_or_else(|e| e.into_inner());
            state.0 = true;
            if state.1 {
                stalled.fetch_sub(1, Ordering::AcqRel);
            }
            let _ = tx.send(result);
        })
        .map_err(|e| Stalled::Failed(format!("could not start a JPEG-LS decode thread: {e}")))?;
    if let Ok(result) = rx.recv_timeout(limit) {
        return result.map_err(Stalled::Failed);
    }
    let mut settled = state.lock().unwrap_or_else(|e| e.into_inner());
    if settled.0 {
        drop(settled);
        return rx
            .recv()
            .unwrap_or_else(|_| Err("the decode thread ended without an answer".into()))
            .map_err(Stalled::Failed);
    }
    settled.1 = true;
    stalled.fetch_add(1, Ordering::AcqRel);
    Err(Stalled::TimedOut)
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
mod tests;
