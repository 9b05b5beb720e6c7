//! JPEG sequential DCT with Huffman coding (ITU-T T.81 processes 1, 2 and 4: baseline and
//! extended, 8 and 12 bits), for 12-bit JPEG Extended (1.2.840.10008.1.2.4.51): jpeg-decoder
//! decodes 8-bit lossy JPEG only.
//!
//! Progressive, hierarchical, lossless and arithmetic-coded streams are refused naming the
//! process; lossless JPEG goes through dicom-pixeldata. The frame header is checked against the
//! image pixel module before anything is allocated, and every read is bounds-checked: a forged
//! stream gets an error, never a panic.

use super::image::{frame_streams, PixelModule};

/// The decoded frames, and what the stream says about their color.
pub(super) struct Decoded {
    /// Samples of every frame, interleaved, little endian, `BitsAllocated / 8` bytes each.
    pub(super) bytes: Vec<u8>,
    /// A JFIF marker, or an Adobe marker with transform 1, says the three components are YCbCr.
    pub(super) ycbcr: bool,
}

/// Decodes every frame of `module` from the fragments of its Pixel Data.
pub(super) fn decode(fragments: &[Vec<u8>], offset_table: &[u32], module: &PixelModule) -> Result<Decoded, String> {
    let frames = module.frames as usize;
    let streams = frame_streams(fragments, offset_table, frames)
        .ok_or("the fragments cannot be told apart into NumberOfFrames frames")?;
    let width = usize::from(module.bits_allocated / 8);
    if width == 0 {
        return Err("JPEG needs BitsAllocated 8, 16 or 32".into());
    }
    let frame_len = module.pixels_per_frame() * usize::from(module.samples_per_pixel) * width;
    let mut bytes = vec![0u8; frame_len * frames];
    let mut ycbcr = false;
    for (index, (stream, out)) in streams.iter().zip(bytes.chunks_exact_mut(frame_len)).enumerate() {
        ycbcr |= decode_frame(stream, module, width, out).map_err(|what| {
            if frames > 1 {
                format!("frame {}: {what}", index + 1)
            } else {
                what
            }
        })?;
    }
    Ok(Decoded { bytes, ycbcr })
}

/// Natural (row-major) index of the k-th coefficient in zigzag order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// What the markers before and between scans defined.
#[derive(Default)]
struct Tables {
    /// Quantization tables in zigzag order.
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Box<Huffman>>; 4],
    ac: [Option<Box<Huffman>>; 4],
    /// MCUs between RSTn markers; 0 for none.
    restart_interval: usize,
    /// Whether there was a JFIF APP0 segment.
    jfif: bool,
    /// The transform flag of an Adobe APP14 segment (0 RGB or CMYK, 1 YCbCr, 2 YCCK).
    adobe_transform: Option<u8>,
}

/// Decodes one frame's stream into `out` (Rows x Columns x SamplesPerPixel samples of `width`
/// bytes). Returns whether the stream marks its components as YCbCr.
fn decode_frame(stream: &[u8], module: &PixelModule, width: usize, out: &mut [u8]) -> Result<bool, String> {
    if !stream.starts_with(&[0xFF, 0xD8]) {
        return Err("a frame does not start with a JPEG SOI marker".into());
    }
    let mut pos = 2;
    let mut tables = Tables::default();
    let mut frame: Option<Frame> = None;
    while let Some(marker) = next_marker(stream, &mut pos)? {
        match marker {
            0xD9 => break,
            0xD0..=0xD7 | 0x01 => {} // stray RSTn or TEM: no segment
            0xD8 => return Err("a JPEG stream has a second SOI marker".into()),
            _ => {
                let body = segment(stream, &mut pos)?;
                match marker {
                    0xC0 | 0xC1 if frame.is_some() => return Err("a JPEG stream has two frame headers".into()),
                    0xC0 | 0xC1 => frame = Some(Frame::parse(body, marker == 0xC0, module, width)?),
                    0xC2..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                        return Err(format!(
                            "the JPEG stream is {} (SOF{}), which the sequential DCT decoder does not decode",
                            process_name(marker),
                            marker - 0xC0
                        ));
                    }
                    0xC4 => tables.define_huffman(body)?,
                    0xDB => tables.define_quantization(body)?,
                    0xDD => {
                        let interval = body.get(..2).ok_or("a JPEG DRI segment is too short")?;
                        tables.restart_interval = usize::from(u16::from_be_bytes([interval[0], interval[1]]));
                    }
                    0xDA => {
                        let frame = frame.as_mut().ok_or("a JPEG scan comes before the frame header")?;
                        pos += frame.decode_scan(body, &tables, &stream[pos..])?;
                    }
                    0xDC => return Err("JPEG DNL markers (height defined after the scan) are not supported".into()),
                    0xDE | 0xDF => return Err("the JPEG stream is hierarchical, which is not supported".into()),
                    0xE0 => tables.jfif |= body.starts_with(b"JFIF\0"),
                    0xEE if body.starts_with(b"Adobe") => tables.adobe_transform = body.get(11).copied(),
                    _ => {} // APPn, COM, DAC and reserved markers carry nothing the pixels need
                }
            }
        }
    }
    let frame = frame.ok_or("a JPEG stream has no frame header")?;
    if frame.components.iter().any(|c| !c.scanned) {
        return Err("a JPEG stream ends before every component has been scanned".into());
    }
    frame.write_samples(width, out);
    let ycbcr = tables.adobe_transform.map_or(tables.jfif, |transform| transform == 1);
    Ok(ycbcr && frame.components.len() == 3)
}

/// The coding process a SOF marker other than SOF0/SOF1 stands for (T.81 Table B.1).
fn process_name(marker: u8) -> &'static str {
    match marker {
        0xC2 => "progressive DCT",
        0xC3 => "lossless",
        0xC5 => "hierarchical (differential sequential DCT)",
        0xC6 => "hierarchical (differential progressive DCT)",
        0xC7 => "hierarchical (differential lossless)",
        0xC9 => "arithmetic-coded extended sequential DCT",
        0xCA => "arithmetic-coded progressive DCT",
        0xCB => "arithmetic-coded lossless",
        0xCD => "arithmetic-coded hierarchical (differential sequential DCT)",
        0xCE => "arithmetic-coded hierarchical (differential progressive DCT)",
        _ => "arithmetic-coded hierarchical (differential lossless)",
    }
}

/// The next marker code at or after `pos` (skipping fill bytes), with `pos` moved past it;
/// `None` at the end of the stream.
fn next_marker(stream: &[u8], pos: &mut usize) -> Result<Option<u8>, String> {
    loop {
        match stream.get(*pos..*pos + 2) {
            None => return Ok(None),
            Some([0xFF, 0xFF]) => *pos += 1,
            Some([0xFF, code]) => {
                *pos += 2;
                return Ok(Some(*code));
            }
            Some(_) => return Err("a JPEG marker segment is followed by data that is not a marker".into()),
        }
    }
}

/// The body of the marker segment at `pos` (after its length), with `pos` moved past it.
fn segment<'a>(stream: &'a [u8], pos: &mut usize) -> Result<&'a [u8], String> {
    let truncated = "a JPEG marker segment runs past the end of the stream";
    let length = stream.get(*pos..*pos + 2).ok_or(truncated)?;
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    if length < 2 {
        return Err("a JPEG marker segment has a length below 2".into());
    }
    let body = stream.get(*pos + 2..*pos + length).ok_or(truncated)?;
    *pos += length;
    Ok(body)
}

impl Tables {
    /// DQT: one or more tables of 8-bit (Pq 0) or 16-bit (Pq 1) entries in zigzag order.
    fn define_quantization(&mut self, mut body: &[u8]) -> Result<(), String> {
        while let Some((&pq_tq, rest)) = body.split_first() {
            let (precision, id) = (pq_tq >> 4, usize::from(pq_tq & 0x0F));
            if precision > 1 || id > 3 {
                return Err("a JPEG quantization table has an invalid precision or destination".into());
            }
            let size = 64 << precision;
            let entries = rest.get(..size).ok_or("a JPEG DQT segment is too short")?;
            let mut table = [0u16; 64];
            for (k, entry) in table.iter_mut().enumerate() {
                *entry = if precision == 0 {
                    u16::from(entries[k])
                } else {
                    u16::from_be_bytes([entries[2 * k], entries[2 * k + 1]])
                };
            }
            self.quant[id] = Some(table);
            body = &rest[size..];
        }
        Ok(())
    }

    /// DHT: one or more tables, each class/destination, 16 code counts, then the values.
    fn define_huffman(&mut self, mut body: &[u8]) -> Result<(), String> {
        while let Some((&tc_th, rest)) = body.split_first() {
            let (class, id) = (tc_th >> 4, usize::from(tc_th & 0x0F));
            if class > 1 || id > 3 {
                return Err("a JPEG Huffman table has an invalid class or destination".into());
            }
            let counts = rest.get(..16).ok_or("a JPEG DHT segment is too short")?;
            let total: usize = counts.iter().map(|&n| usize::from(n)).sum();
            let values = rest.get(16..16 + total).ok_or("a JPEG DHT segment is too short")?;
            let table = Some(Box::new(Huffman::new(counts, values)?));
            if class == 0 {
                self.dc[id] = table;
            } else {
                self.ac[id] = table;
            }
            body = &rest[16 + total..];
        }
        Ok(())
    }
}

/// Bits looked up at once; longer codes take the T.81 F.2.2.3 path.
const LOOKUP_BITS: usize = 9;

/// A Huffman table as the decoder uses it (T.81 Annex C and F.2.2.3).
struct Huffman {
    /// For every LOOKUP_BITS-bit prefix holding a whole code: length << 8 | value; 0 otherwise.
    lookup: [u16; 1 << LOOKUP_BITS],
    /// The largest code of each length (index 1 to 16), -1 where there is none.
    max_code: [i32; 17],
    /// Index into `values` of a code of each length, minus that length's first code.
    value_offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8], values: &[u8]) -> Result<Huffman, String> {
        if values.len() > 256 {
            return Err("a JPEG Huffman table has more than 256 codes".into());
        }
        let mut table = Huffman {
            lookup: [0; 1 << LOOKUP_BITS],
            max_code: [-1; 17],
            value_offset: [0; 17],
            values: values.to_vec(),
        };
        let (mut code, mut k) = (0i32, 0usize);
        for (length, &count) in (1..=16).zip(counts) {
            table.value_offset[length] = k as i32 - code;
            for _ in 0..count {
                if code >= 1 << length {
                    return Err("a JPEG Huffman table has more codes than its lengths allow".into());
                }
                if length <= LOOKUP_BITS {
                    let spread = LOOKUP_BITS - length;
                    let first = (code as usize) << spread;
                    let entry = ((length as u16) << 8) | u16::from(values[k]);
                    table.lookup[first..first + (1 << spread)].fill(entry);
                }
                code += 1;
                k += 1;
            }
            if count > 0 {
                table.max_code[length] = code - 1;
            }
            code <<= 1;
        }
        Ok(table)
    }
}

/// Reads the entropy-coded segment of a scan: removes stuffed zero bytes and stops at the first
/// marker, after which it supplies zero bits (and counts them, so that a truncated scan is an
/// error rather than a grey block).
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Unread bits, most significant first.
    acc: u64,
    bits: u32,
    /// How many of the last bits in `acc` are padding past the end of the segment.
    padding: u32,
    at_marker: bool,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0, acc: 0, bits: 0, padding: 0, at_marker: false }
    }

    fn fill(&mut self) {
        while self.bits <= 56 {
            let byte = match self.next_byte() {
                Some(byte) => byte,
                None => {
                    self.padding += 8;
                    0
                }
            };
            self.acc |= u64::from(byte) << (56 - self.bits);
            self.bits += 8;
        }
    }

    fn next_byte(&mut self) -> Option<u8> {
        while !self.at_marker {
            let byte = *self.data.get(self.pos)?;
            if byte != 0xFF {
                self.pos += 1;
                return Some(byte);
            }
            match self.data.get(self.pos + 1) {
                Some(0x00) => {
                    self.pos += 2;
                    return Some(0xFF);
                }
                Some(0xFF) => self.pos += 1, // fill byte before a marker
                _ => self.at_marker = true,
            }
        }
        None
    }

    /// One Huffman-coded value.
    fn decode(&mut self, table: &Huffman) -> Result<u8, String> {
        if self.bits < 32 {
            self.fill();
        }
        let peek = (self.acc >> 48) as usize;
        let entry = table.lookup[peek >> (16 - LOOKUP_BITS)];
        if entry != 0 {
            self.consume(u32::from(entry >> 8));
            return Ok(entry as u8);
        }
        for length in LOOKUP_BITS + 1..=16 {
            let code = (peek >> (16 - length)) as i32;
            if code <= table.max_code[length] {
                self.consume(length as u32);
                let index = usize::try_from(code + table.value_offset[length]).map_err(|_| BAD_CODE)?;
                return table.values.get(index).copied().ok_or_else(|| BAD_CODE.into());
            }
        }
        Err(BAD_CODE.into())
    }

    /// `size` more bits as a signed value (T.81 F.2.2.1 EXTEND); `size` is at most 16.
    fn receive_extend(&mut self, size: u8) -> i32 {
        if size == 0 {
            return 0;
        }
        if self.bits < 16 {
            self.fill();
        }
        let size = u32::from(size.min(16));
        let value = (self.acc >> (64 - size)) as i32;
        self.consume(size);
        if value < 1 << (size - 1) {
            value - (1 << size) + 1
        } else {
            value
        }
    }

    fn consume(&mut self, bits: u32) {
        self.acc <<= bits;
        self.bits -= bits;
    }

    /// Whether more bits were read than the segment holds.
    fn overran(&self) -> bool {
        self.bits < self.padding
    }

    /// At the end of a restart interval: drops the byte's padding bits and the RSTn marker.
    fn restart(&mut self) -> Result<(), String> {
        (self.acc, self.bits, self.padding, self.at_marker) = (0, 0, 0, false);
        while self.data.get(self.pos..self.pos + 2) == Some(&[0xFF, 0xFF]) {
            self.pos += 1;
        }
        match self.data.get(self.pos..self.pos + 2) {
            Some([0xFF, 0xD0..=0xD7]) => {
                self.pos += 2;
                Ok(())
            }
            _ => Err("a JPEG restart marker is missing".into()),
        }
    }

    /// The offset of the marker that ends the scan.
    fn end_of_scan(&self) -> usize {
        let mut pos = self.pos;
        while let Some(&[a, b]) = self.data.get(pos..pos + 2) {
            if a == 0xFF && b != 0x00 && b != 0xFF && !(0xD0..=0xD7).contains(&b) {
                return pos;
            }
            pos += 1;
        }
        self.data.len()
    }
}

const BAD_CODE: &str = "a JPEG Huffman code is not in its table";

struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant_id: usize,
    /// The sample plane covers whole MCUs: blocks_wide x 8 samples a line.
    blocks_wide: usize,
    plane: Vec<u16>,
    scanned: bool,
}

struct Frame {
    precision: u32,
    rows: usize,
    columns: usize,
    components: Vec<Component>,
    h_max: usize,
    v_max: usize,
    mcus_wide: usize,
    mcus_high: usize,
    idct: Idct,
}

impl Frame {
    /// SOF0/SOF1, checked against the pixel module before the planes are allocated.
    fn parse(body: &[u8], baseline: bool, module: &PixelModule, width: usize) -> Result<Frame, String> {
        let header = body.get(..6).ok_or("a JPEG frame header is too short")?;
        let precision = header[0];
        let rows = usize::from(u16::from_be_bytes([header[1], header[2]]));
        let columns = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let count = usize::from(header[5]);
        if !(precision == 8 || (precision == 12 && !baseline)) {
            return Err("the JPEG sample precision is not 8 (baseline) or 8 or 12 (extended)".into());
        }
        if usize::from(precision) > width * 8 {
            return Err("the JPEG sample precision is larger than BitsAllocated".into());
        }
        if rows == 0 {
            return Err("JPEG DNL markers (height defined after the scan) are not supported".into());
        }
        if rows != module.rows as usize || columns != module.columns as usize {
            return Err("the JPEG frame size does not match Rows and Columns".into());
        }
        if count != usize::from(module.samples_per_pixel) {
            return Err("the JPEG component count does not match SamplesPerPixel".into());
        }
        let specs = body.get(6..6 + 3 * count).ok_or("a JPEG frame header is too short")?;
        let mut components: Vec<Component> = Vec::with_capacity(count);
        for spec in specs.chunks_exact(3) {
            let (h, v, quant_id) = (usize::from(spec[1] >> 4), usize::from(spec[1] & 0x0F), usize::from(spec[2]));
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) || quant_id > 3 {
                return Err("a JPEG component has invalid sampling factors or quantization table".into());
            }
            if components.iter().any(|c| c.id == spec[0]) {
                return Err("two JPEG components have the same identifier".into());
            }
            components.push(Component {
                id: spec[0],
                h,
                v,
                quant_id,
                blocks_wide: 0,
                plane: Vec::new(),
                scanned: false,
            });
        }
        let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
        let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
        let (mcus_wide, mcus_high) = (columns.div_ceil(8 * h_max), rows.div_ceil(8 * v_max));
        for component in &mut components {
            component.blocks_wide = mcus_wide * component.h;
            component.plane = vec![0; component.blocks_wide * 8 * mcus_high * component.v * 8];
        }
        let precision = u32::from(precision);
        Ok(Frame { precision, rows, columns, components, h_max, v_max, mcus_wide, mcus_high, idct: Idct::new() })
    }

    /// Decodes the scan whose SOS body is `header` and whose entropy-coded data starts `data`;
    /// returns how many bytes of `data` it took.
    fn decode_scan(&mut self, header: &[u8], tables: &Tables, data: &[u8]) -> Result<usize, String> {
        let count = usize::from(*header.first().ok_or("a JPEG scan header is too short")?);
        let specs = header.get(1..1 + 2 * count).ok_or("a JPEG scan header is too short")?;
        if !(1..=4).contains(&count) {
            return Err("a JPEG scan has no components or more than four".into());
        }
        // Ss, Se, Ah and Al must be 0, 63, 0, 0 here; like libjpeg (IJG), other values are
        // ignored rather than refused.
        let mut scan = Vec::with_capacity(count);
        for spec in specs.chunks_exact(2) {
            let index = self
                .components
                .iter()
                .position(|c| c.id == spec[0])
                .ok_or("a JPEG scan names a component the frame does not have")?;
            let component = &self.components[index];
            if component.scanned || scan.iter().any(|s: &ScanComponent| s.index == index) {
                return Err("a JPEG component is coded in more than one scan".into());
            }
            let missing = "a JPEG scan uses a table that was not defined";
            let quant = tables.quant[component.quant_id].as_ref().ok_or(missing)?;
            let dc = tables.dc.get(usize::from(spec[1] >> 4)).and_then(Option::as_deref).ok_or(missing)?;
            let ac = tables.ac.get(usize::from(spec[1] & 0x0F)).and_then(Option::as_deref).ok_or(missing)?;
            scan.push(ScanComponent { index, dc, ac, quant: quant.map(f32::from) });
        }
        let interleaved = count > 1;
        if interleaved
            && scan.iter().map(|s| self.components[s.index].h * self.components[s.index].v).sum::<usize>() > 10
        {
            return Err("a JPEG MCU has more than 10 blocks".into());
        }
        // A non-interleaved scan codes one block per MCU and only the blocks the component's
        // samples reach (T.81 A.2.2), not the whole MCUs of the frame.
        let (mcus_wide, mcus_high) = if interleaved {
            (self.mcus_wide, self.mcus_high)
        } else {
            let c = &self.components[scan[0].index];
            ((self.columns * c.h).div_ceil(self.h_max).div_ceil(8), (self.rows * c.v).div_ceil(self.v_max).div_ceil(8))
        };
        let level_shift = (1u32 << (self.precision - 1)) as f32;
        let max = ((1u32 << self.precision) - 1) as f32;
        let mut reader = BitReader::new(data);
        let mut predictions = [0i32; 4];
        let mut block = [0f32; 64];
        for mcu in 0..mcus_wide * mcus_high {
            if tables.restart_interval > 0 && mcu > 0 && mcu % tables.restart_interval == 0 {
                reader.restart()?;
                predictions = [0; 4];
            }
            let (mcu_x, mcu_y) = (mcu % mcus_wide, mcu / mcus_wide);
            for (s, prediction) in scan.iter().zip(&mut predictions) {
                let component = &mut self.components[s.index];
                let (h, v) = if interleaved { (component.h, component.v) } else { (1, 1) };
                for block_y in mcu_y * v..(mcu_y + 1) * v {
                    for block_x in mcu_x * h..(mcu_x + 1) * h {
                        decode_block(&mut reader, s, prediction, &mut block)?;
                        let stride = component.blocks_wide * 8;
                        let start = block_y * 8 * stride + block_x * 8;
                        self.idct.run(&block, &mut component.plane[start..], stride, level_shift, max);
                    }
                }
            }
            if reader.overran() {
                return Err("the JPEG entropy-coded data ends before the last block".into());
            }
        }
        for s in &scan {
            self.components[s.index].scanned = true;
        }
        Ok(reader.end_of_scan())
    }

    /// Writes the samples, upsampling subsampled components by replication.
    fn write_samples(&self, width: usize, out: &mut [u8]) {
        let count = self.components.len();
        for (index, component) in self.components.iter().enumerate() {
            let stride = component.blocks_wide * 8;
            for y in 0..self.rows {
                let line = &component.plane[y * component.v / self.v_max * stride..];
                let out_line = &mut out[y * self.columns * count * width..(y + 1) * self.columns * count * width];
                for (x, pixel) in out_line.chunks_exact_mut(count * width).enumerate() {
                    let sample = u32::from(line[x * component.h / self.h_max]).to_le_bytes();
                    pixel[index * width..(index + 1) * width].copy_from_slice(&sample[..width]);
                }
            }
        }
    }
}

/// A component as one scan codes it.
struct ScanComponent<'t> {
    index: usize,
    dc: &'t Huffman,
    ac: &'t Huffman,
    /// Quantization steps in zigzag order.
    quant: [f32; 64],
}

/// One block's coefficients, dequantized, in natural order (T.81 F.2.2).
fn decode_block(
    reader: &mut BitReader<'_>,
    scan: &ScanComponent<'_>,
    prediction: &mut i32,
    block: &mut [f32; 64],
) -> Result<(), String> {
    block.fill(0.0);
    let size = reader.decode(scan.dc)?;
    if size > 16 {
        return Err("a JPEG DC difference is longer than 16 bits".into());
    }
    *prediction = prediction.wrapping_add(reader.receive_extend(size));
    block[0] = *prediction as f32 * scan.quant[0];
    let mut k = 1;
    while k < 64 {
        let symbol = reader.decode(scan.ac)?;
        let (run, size) = (usize::from(symbol >> 4), symbol & 0x0F);
        if size == 0 {
            if run != 15 {
                break; // end of block
            }
            k += 16;
            continue;
        }
        k += run;
        if k > 63 {
            return Err("a JPEG block has more than 64 coefficients".into());
        }
        block[ZIGZAG[k]] = reader.receive_extend(size) as f32 * scan.quant[k];
        k += 1;
    }
    Ok(())
}

/// The separable floating-point inverse DCT (T.81 A.3.3), cosines computed once per frame.
struct Idct {
    /// cos[x][u] = C(u) / 2 * cos((2x + 1) u pi / 16).
    cos: [[f32; 8]; 8],
}

impl Idct {
    fn new() -> Idct {
        let mut cos = [[0f32; 8]; 8];
        for (x, row) in cos.iter_mut().enumerate() {
            for (u, c) in row.iter_mut().enumerate() {
                let scale = if u == 0 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
                *c = (scale / 2.0 * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos()) as f32;
            }
        }
        Idct { cos }
    }

    /// Transforms `block` and writes it, level-shifted and clamped to [0, max], at the start of
    /// `plane` (8 lines of `stride` samples).
    fn run(&self, block: &[f32; 64], plane: &mut [u16], stride: usize, level_shift: f32, max: f32) {
        let mut rows = [0f32; 64];
        for (coefs, out) in block.chunks_exact(8).zip(rows.chunks_exact_mut(8)) {
            if coefs[1..].iter().all(|&c| c == 0.0) {
                out.fill(coefs[0] * self.cos[0][0]);
                continue;
            }
            for (x, value) in out.iter_mut().enumerate() {
                *value = self.cos[x].iter().zip(coefs).map(|(c, f)| c * f).sum();
            }
        }
        for (y, line) in plane.chunks_mut(stride).take(8).enumerate() {
            for (x, sample) in line[..8].iter_mut().enumerate() {
                let value: f32 = (0..8).map(|v| self.cos[y][v] * rows[v * 8 + x]).sum();
                *sample = (value + level_shift).round().clamp(0.0, max) as u16;
            }
        }
    }
}

#[cfg(test)]
mod tests;
