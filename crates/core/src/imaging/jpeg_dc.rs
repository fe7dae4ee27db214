//! JPEG at 1/8 scale from the DC coefficients alone, as libjpeg's DCT-scaled 1×1 path does.
//!
//! A block's DC coefficient is its mean, so one DC value per 8×8 block is the image at 1/8 scale.
//! Sequential (baseline and extended Huffman) scans are still walked code by code — entropy-coded data
//! has no index — but AC coefficients are only skipped, never dequantised or transformed, through a
//! table that gives each AC code's whole length (code plus magnitude bits) at once. Progressive files
//! are cheaper still: their AC scans are skipped as bytes, since only the DC scans carry the 1/8 image.
//! Memory is one value per block, whatever the file.
//!
//! Files this does not cover (arithmetic coding, 12-bit, unusual colour transforms, more than four
//! components) return [`DcOutcome::Unsupported`] and go through jpeg-decoder instead.

use crate::rejection::Rejection;

/// The 1/8-scale image in jpeg-decoder's output conventions (so the caller treats both alike): grey,
/// RGB, or 4 channels as jpeg-decoder gives CMYK (inverted) and YCCK (RGB from YCC, K inverted).
pub(crate) struct DcImage {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub data: Vec<u8>,
    pub icc: Option<Vec<u8>>,
    /// The APP1 EXIF segment's body (after "Exif\0\0").
    pub exif: Option<Vec<u8>>,
}

pub(crate) enum DcOutcome {
    Decoded(DcImage),
    /// Valid as far as we can tell, but outside what this decoder covers.
    Unsupported,
}

fn corrupt<T>(message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::corrupt(format!(
        "the JPEG data cannot be decoded: {}",
        message.into()
    )))
}

/// A Huffman table: a lookup on the next [`LOOKUP_BITS`] bits for short codes, canonical decoding for
/// longer ones.
struct Huffman {
    /// Per lookup value: code length (0 = longer than LOOKUP_BITS) and symbol.
    fast: Vec<(u8, u8)>,
    /// For AC tables, per value of the next [`SKIP_BITS`] bits: the whole symbols (code and magnitude)
    /// they hold; empty for DC tables.
    skip: Vec<SkipRun>,
    maxcode: [i32; 18],
    valptr: [i32; 17],
    mincode: [i32; 17],
    symbols: Vec<u8>,
}

const LOOKUP_BITS: u32 = 10;
/// Bits looked at per step when skipping AC coefficients: at the 100 MP bench photo's quality a symbol
/// and its magnitude take ~5 bits, so one lookup skips two or three of them.
const SKIP_BITS: u32 = 12;

/// The AC symbols, with their magnitude bits, that lie wholly within [`SKIP_BITS`] bits: skipping
/// coefficients only needs how many bits and coefficients they cover, so one lookup serves them all.
#[derive(Clone, Copy, Default)]
struct SkipRun {
    /// Bits of all the symbols and magnitudes (0: not even the first fits).
    bits: u8,
    /// Coefficients they cover (each symbol's run + 1; end of block adds none).
    coefficients: u8,
    /// Coefficients before the last symbol: it is only part of this block if that many more from the
    /// current position stay below 64.
    before_last: u8,
    /// The last symbol is the end of block.
    ends_block: bool,
}

impl SkipRun {
    /// Decodes symbols from the top `SKIP_BITS` of `window` with `fast` until the next one does not fit.
    fn new(window: u32, fast: &[(u8, u8)]) -> SkipRun {
        let mut run = SkipRun::default();
        let mut used = 0u32;
        while used < SKIP_BITS {
            // The next LOOKUP_BITS bits from `used`, zero past the window: a code that reads any of
            // those zeros has its end (or its magnitude's) past the window and is not taken.
            let next = ((window << used) & ((1 << SKIP_BITS) - 1)) >> (SKIP_BITS - LOOKUP_BITS);
            let (len, symbol) = fast[next as usize];
            let (zeros, size) = (symbol >> 4, u32::from(symbol & 15));
            let end = used + u32::from(len) + size;
            if len == 0 || end > SKIP_BITS {
                break;
            }
            used = end;
            run.bits = end as u8;
            run.before_last = run.coefficients;
            if size == 0 && zeros != 15 {
                run.ends_block = true;
                break;
            }
            run.coefficients += zeros + 1;
        }
        run
    }
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: Vec<u8>, ac: bool) -> Result<Huffman, Rejection> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total != symbols.len() || total > 256 {
            return corrupt("a Huffman table's counts disagree with its symbols");
        }
        let mut fast = vec![(0u8, 0u8); 1 << LOOKUP_BITS];
        let mut maxcode = [-1i32; 18];
        let mut valptr = [0i32; 17];
        let mut mincode = [0i32; 17];
        let mut code = 0i32;
        let mut k = 0usize;
        for len in 1..=16usize {
            let count = usize::from(counts[len - 1]);
            valptr[len] = k as i32;
            mincode[len] = code;
            for _ in 0..count {
                if code >= (1 << len) {
                    return corrupt("a Huffman table has more codes than fit");
                }
                if len as u32 <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - len as u32;
                    let first = (code as usize) << shift;
                    for entry in &mut fast[first..first + (1 << shift)] {
                        *entry = (len as u8, symbols[k]);
                    }
                }
                code += 1;
                k += 1;
            }
            maxcode[len] = if count > 0 { code - 1 } else { -1 };
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        let skip = if ac {
            (0..1u32 << SKIP_BITS)
                .map(|window| SkipRun::new(window, &fast))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Huffman {
            fast,
            skip,
            maxcode,
            valptr,
            mincode,
            symbols,
        })
    }
}

/// Entropy-coded bits, with 0xFF00 unstuffed. At a marker (or the end of the data) it feeds zeros and
/// remembers when a scan consumed any of them: that scan needed data the file does not have.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buffer: u64,
    /// Bits in `buffer`, from its top.
    count: u32,
    /// Of those, how many are zero fill past a marker: always the last ones, so a scan that used any
    /// of them has fewer bits left than this.
    fill: u32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            buffer: 0,
            count: 0,
            fill: 0,
            at_marker: false,
        }
    }

    /// Tops the buffer up when fewer than 32 bits are left: callers take at most a code and its magnitude
    /// (16 + 16 bits) per refill, and refilling a byte at a time after every symbol was most of a 100 MP
    /// file's scan time.
    #[inline(always)]
    fn refill(&mut self) {
        if self.count >= 32 {
            return;
        }
        // Four bytes at once when none of them is 0xFF (no stuffing, no marker): the common case.
        if !self.at_marker {
            if let Some(&[a, b, c, d]) = self.data.get(self.pos..self.pos + 4) {
                if a != 0xFF && b != 0xFF && c != 0xFF && d != 0xFF {
                    let word = u32::from_be_bytes([a, b, c, d]);
                    self.buffer |= u64::from(word) << (32 - self.count);
                    self.pos += 4;
                    self.count += 32;
                }
            }
        }
        while self.count <= 56 {
            if !self.at_marker {
                match self.data.get(self.pos) {
                    Some(&0xFF) if self.data.get(self.pos + 1) == Some(&0x00) => {
                        self.pos += 2;
                        self.buffer |= 0xFFu64 << (56 - self.count);
                        self.count += 8;
                        continue;
                    }
                    Some(&0xFF) | None => self.at_marker = true,
                    Some(&byte) => {
                        self.pos += 1;
                        self.buffer |= u64::from(byte) << (56 - self.count);
                        self.count += 8;
                        continue;
                    }
                }
            }
            self.count += 8;
            self.fill += 8;
        }
    }

    /// Whether the scan has used bits the data does not have (it is truncated).
    #[inline(always)]
    fn overrun(&self) -> bool {
        self.count < self.fill
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.buffer >> (64 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buffer <<= n;
        self.count -= n;
    }

    /// `n` (≤ 16) bits as a number; the caller has refilled.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let value = self.peek(n);
        self.consume(n);
        value
    }

    #[inline(always)]
    fn symbol(&mut self, table: &Huffman) -> Result<u8, Rejection> {
        self.refill();
        let (len, symbol) = table.fast[self.peek(LOOKUP_BITS) as usize];
        if len > 0 {
            self.consume(u32::from(len));
            return Ok(symbol);
        }
        for len in LOOKUP_BITS + 1..=16 {
            let code = self.peek(len) as i32;
            if code <= table.maxcode[len as usize] {
                self.consume(len);
                let index = table.valptr[len as usize] + code - table.mincode[len as usize];
                return match table.symbols.get(index as usize) {
                    Some(&symbol) => Ok(symbol),
                    None => corrupt("a Huffman code has no symbol"),
                };
            }
        }
        corrupt("an invalid Huffman code")
    }

    /// A DC difference of `size` bits, sign-extended (JPEG's EXTEND); the caller has refilled.
    #[inline(always)]
    fn signed(&mut self, size: u8) -> i32 {
        let size = u32::from(size);
        let value = self.take(size) as i32;
        if size > 0 && value < 1 << (size - 1) {
            value - (1 << size) + 1
        } else {
            value
        }
    }

    /// Skips the AC coefficients 1..=63 of one block.
    #[inline(always)]
    fn skip_ac(&mut self, table: &Huffman) -> Result<(), Rejection> {
        let mut k = 1u32;
        while k < 64 {
            self.refill();
            let run = table.skip[self.peek(SKIP_BITS) as usize];
            if run.bits > 0 && k + u32::from(run.before_last) < 64 {
                self.consume(u32::from(run.bits));
                if run.ends_block {
                    return Ok(());
                }
                k += u32::from(run.coefficients);
                continue;
            }
            // One symbol at a time: a long code or magnitude, or a block that ends within the run.
            let symbol = self.symbol(table)?;
            let (run, size) = (u32::from(symbol >> 4), symbol & 15);
            if size == 0 && run != 15 {
                return Ok(());
            }
            self.refill();
            self.take(u32::from(size));
            k += run + 1;
        }
        Ok(())
    }

    /// Drops the bits left before a restart marker and steps over it.
    fn restart(&mut self) -> Result<(), Rejection> {
        self.buffer = 0;
        self.count = 0;
        self.fill = 0;
        self.at_marker = false;
        // Fill bytes (0xFF) may precede the marker.
        while self.data.get(self.pos) == Some(&0xFF) && self.data.get(self.pos + 1) == Some(&0xFF) {
            self.pos += 1;
        }
        match self.data.get(self.pos..self.pos + 2) {
            Some([0xFF, 0xD0..=0xD7]) => {
                self.pos += 2;
                Ok(())
            }
            _ => corrupt("a restart marker is missing"),
        }
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
    /// Blocks across and down that cover the component's samples (the image area only).
    blocks_w: usize,
    blocks_h: usize,
    /// Blocks across in the MCU-padded grid `dc` is stored in.
    stride: usize,
    dc: Vec<i32>,
}

struct Frame {
    width: usize,
    height: usize,
    progressive: bool,
    components: Vec<Component>,
    h_max: usize,
    v_max: usize,
    mcus_x: usize,
    mcus_y: usize,
    /// Scans decoded or skipped, in order.
    scans: usize,
}

/// What the markers before and between scans said.
#[derive(Default)]
struct Tables {
    quant: [Option<u16>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: usize,
    jfif: bool,
    adobe_transform: Option<u8>,
    exif: Option<Vec<u8>>,
    /// ICC_PROFILE chunks by sequence number.
    icc_chunks: Vec<(u8, Vec<u8>)>,
}

struct Scan {
    /// Indices into the frame's components, with their DC and AC table numbers.
    members: Vec<(usize, usize, usize)>,
    ss: u8,
    se: u8,
    ah: u8,
    al: u8,
}

/// Decodes `bytes` (a whole JPEG whose header probe accepted) at 1/8 scale.
pub(crate) fn decode_dc(bytes: &[u8]) -> Result<DcOutcome, Rejection> {
    let mut tables = Tables::default();
    let mut frame: Option<Frame> = None;
    let mut pos = 2;
    loop {
        // Stray bytes between segments are tolerated, as decoders do.
        while pos < bytes.len() && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            return finish(frame, &tables);
        };
        pos += 1;
        match marker {
            0xD9 => return finish(frame, &tables),
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return corrupt("the data ends inside a segment header");
        };
        if len < 2 {
            return corrupt(format!("segment 0x{marker:02X} has length {len}"));
        }
        let Some(segment) = bytes.get(pos + 2..pos + len) else {
            return corrupt("the data ends inside a segment");
        };
        pos += len;
        match marker {
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return corrupt("a second frame header");
                }
                match read_frame(segment, marker == 0xC2)? {
                    Some(f) => frame = Some(f),
                    None => return Ok(DcOutcome::Unsupported),
                }
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Ok(DcOutcome::Unsupported),
            0xC4 => read_huffman(segment, &mut tables)?,
            0xDB => read_quant(segment, &mut tables)?,
            0xDD => {
                let Some(b) = segment.get(..2) else {
                    return corrupt("the restart interval segment is short");
                };
                tables.restart_interval = usize::from(u16::from_be_bytes([b[0], b[1]]));
            }
            0xE0 if segment.starts_with(b"JFIF\0") => tables.jfif = true,
            0xE1 if tables.exif.is_none() && segment.starts_with(b"Exif\0\0") => {
                tables.exif = Some(segment[6..].to_vec());
            }
            0xE2 if segment.len() > 14 && segment.starts_with(b"ICC_PROFILE\0") => {
                tables
                    .icc_chunks
                    .push((segment[12], segment[14..].to_vec()));
            }
            0xEE if segment.starts_with(b"Adobe") => {
                tables.adobe_transform = segment.get(11).copied()
            }
            0xDA => {
                let Some(frame) = frame.as_mut() else {
                    return corrupt("a scan before the frame header");
                };
                let scan = read_scan(segment, frame)?;
                frame.scans += 1;
                pos = if frame.progressive && scan.ss > 0 {
                    skip_entropy_data(bytes, pos)
                } else {
                    decode_scan(bytes, pos, frame, &tables, &scan)?
                };
            }
            _ => {}
        }
    }
}

fn read_frame(segment: &[u8], progressive: bool) -> Result<Option<Frame>, Rejection> {
    if segment.len() < 6 {
        return corrupt("the frame header is short");
    }
    if segment[0] != 8 {
        return Ok(None);
    }
    let height = usize::from(u16::from_be_bytes([segment[1], segment[2]]));
    let width = usize::from(u16::from_be_bytes([segment[3], segment[4]]));
    let count = usize::from(segment[5]);
    // Height 0 (given later by a DNL marker) is legal but rare.
    if width == 0 || height == 0 || !matches!(count, 1 | 3 | 4) || segment.len() < 6 + 3 * count {
        return Ok(None);
    }
    let mut components: Vec<Component> = segment[6..6 + 3 * count]
        .chunks_exact(3)
        .map(|c| Component {
            id: c[0],
            h: usize::from(c[1] >> 4),
            v: usize::from(c[1] & 15),
            quant: usize::from(c[2]),
            blocks_w: 0,
            blocks_h: 0,
            stride: 0,
            dc: Vec::new(),
        })
        .collect();
    if components
        .iter()
        .any(|c| !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v) || c.quant > 3)
    {
        return corrupt("a component has invalid sampling factors or quantisation table");
    }
    if count == 1 {
        // A single component's scan is never interleaved: its MCU is one block.
        components[0].h = 1;
        components[0].v = 1;
    }
    let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
    let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
    if components
        .iter()
        .any(|c| h_max % c.h != 0 || v_max % c.v != 0)
    {
        // Fractional subsampling ratios: legal, rare, left to jpeg-decoder.
        return Ok(None);
    }
    let mcus_x = width.div_ceil(8 * h_max);
    let mcus_y = height.div_ceil(8 * v_max);
    for c in &mut components {
        c.blocks_w = (width * c.h).div_ceil(h_max).div_ceil(8);
        c.blocks_h = (height * c.v).div_ceil(v_max).div_ceil(8);
        c.stride = mcus_x * c.h;
        c.dc = vec![0; c.stride * mcus_y * c.v];
    }
    Ok(Some(Frame {
        width,
        height,
        progressive,
        components,
        h_max,
        v_max,
        mcus_x,
        mcus_y,
        scans: 0,
    }))
}

fn read_huffman(mut segment: &[u8], tables: &mut Tables) -> Result<(), Rejection> {
    while !segment.is_empty() {
        if segment.len() < 17 {
            return corrupt("a Huffman table is short");
        }
        let (class, index) = (segment[0] >> 4, usize::from(segment[0] & 15));
        if class > 1 || index > 3 {
            return corrupt("a Huffman table has an invalid class or number");
        }
        let counts: [u8; 16] = segment[1..17].try_into().unwrap();
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let Some(symbols) = segment.get(17..17 + total) else {
            return corrupt("a Huffman table is short");
        };
        let table = Huffman::new(&counts, symbols.to_vec(), class == 1)?;
        if class == 0 {
            tables.dc[index] = Some(table);
        } else {
            tables.ac[index] = Some(table);
        }
        segment = &segment[17 + total..];
    }
    Ok(())
}

fn read_quant(mut segment: &[u8], tables: &mut Tables) -> Result<(), Rejection> {
    while !segment.is_empty() {
        let (precision, index) = (segment[0] >> 4, usize::from(segment[0] & 15));
        let size = if precision == 0 { 64 } else { 128 };
        if index > 3 || precision > 1 || segment.len() < 1 + size {
            return corrupt("a quantisation table is invalid");
        }
        // Only the DC entry (the first, in zigzag and natural order alike) matters at 1/8 scale.
        let dc = if precision == 0 {
            u16::from(segment[1])
        } else {
            u16::from_be_bytes([segment[1], segment[2]])
        };
        tables.quant[index] = Some(dc);
        segment = &segment[1 + size..];
    }
    Ok(())
}

fn read_scan(segment: &[u8], frame: &Frame) -> Result<Scan, Rejection> {
    let count = usize::from(*segment.first().unwrap_or(&0));
    if !(1..=4).contains(&count) || segment.len() < 1 + 2 * count + 3 {
        return corrupt("the scan header is invalid");
    }
    let mut members = Vec::with_capacity(count);
    for c in segment[1..1 + 2 * count].chunks_exact(2) {
        let Some(index) = frame.components.iter().position(|fc| fc.id == c[0]) else {
            return corrupt("a scan names an unknown component");
        };
        if members.iter().any(|&(i, _, _)| i == index) {
            return corrupt("a scan names a component twice");
        }
        members.push((index, usize::from(c[1] >> 4), usize::from(c[1] & 15)));
    }
    let tail = &segment[1 + 2 * count..];
    let scan = Scan {
        members,
        ss: tail[0],
        se: tail[1],
        ah: tail[2] >> 4,
        al: tail[2] & 15,
    };
    let sequential = !frame.progressive && scan.ss == 0 && scan.se == 63;
    let progressive = frame.progressive
        && scan.ss <= scan.se
        && scan.se <= 63
        && (scan.ss > 0 || scan.se == 0)
        && scan.al <= 13;
    if !(sequential || progressive) || scan.members.iter().any(|m| m.1 > 3 || m.2 > 3) {
        return corrupt("the scan's parameters are invalid");
    }
    if scan.members.len() > 1 && scan.ss > 0 {
        return corrupt("an AC scan has several components");
    }
    Ok(scan)
}

/// The position of the marker that ends the entropy-coded data starting at `pos` (RSTn are inside it).
fn skip_entropy_data(bytes: &[u8], mut pos: usize) -> usize {
    while pos + 1 < bytes.len() {
        if bytes[pos] == 0xFF && !matches!(bytes[pos + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
            return pos;
        }
        pos += 1;
    }
    bytes.len()
}

/// Decodes one DC-carrying scan (sequential, or a progressive DC first or refinement pass) into the
/// frame's DC planes; returns where the data after it starts.
fn decode_scan(
    bytes: &[u8],
    pos: usize,
    frame: &mut Frame,
    tables: &Tables,
    scan: &Scan,
) -> Result<usize, Rejection> {
    for &(_, dc, ac) in &scan.members {
        let dc_missing = scan.ah == 0 && tables.dc[dc].is_none();
        let ac_missing = !frame.progressive && tables.ac[ac].is_none();
        if dc_missing || ac_missing {
            return corrupt("a scan uses a Huffman table that was not defined");
        }
    }
    let mut bits = Bits::new(bytes, pos);
    let mut predictors = [0i32; 4];
    let interleaved = scan.members.len() > 1;
    // Blocks are visited in MCU order when interleaved, row by row of the component otherwise.
    let units = if interleaved {
        frame.mcus_x * frame.mcus_y
    } else {
        let c = &frame.components[scan.members[0].0];
        c.blocks_w * c.blocks_h
    };
    let restart = tables.restart_interval;
    let mcus_x = frame.mcus_x;
    for unit in 0..units {
        if restart > 0 && unit > 0 && unit % restart == 0 {
            bits.restart()?;
            predictors = [0; 4];
        }
        for (slot, &(ci, dc_table, ac_table)) in scan.members.iter().enumerate() {
            let c = &mut frame.components[ci];
            let (h, v) = if interleaved { (c.h, c.v) } else { (1, 1) };
            for by in 0..v {
                for bx in 0..h {
                    let (x, y) = if interleaved {
                        ((unit % mcus_x) * c.h + bx, (unit / mcus_x) * c.v + by)
                    } else {
                        (unit % c.blocks_w, unit / c.blocks_w)
                    };
                    let at = y * c.stride + x;
                    if scan.ah == 0 {
                        let table = tables.dc[dc_table].as_ref().expect("checked above");
                        let size = bits.symbol(table)?;
                        if size > 11 {
                            return corrupt("a DC difference is out of range");
                        }
                        bits.refill();
                        predictors[slot] += bits.signed(size);
                        c.dc[at] = predictors[slot] << scan.al;
                    } else {
                        bits.refill();
                        if bits.take(1) == 1 {
                            c.dc[at] |= 1 << scan.al;
                        }
                    }
                    if !frame.progressive {
                        let table = tables.ac[ac_table].as_ref().expect("checked above");
                        bits.skip_ac(table)?;
                    }
                }
            }
        }
        if bits.overrun() {
            return corrupt("the data is truncated");
        }
    }
    Ok(skip_entropy_data(bytes, bits.pos))
}

/// The colour model, decided as jpeg-decoder does (component ids, JFIF, Adobe's transform flag).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Model {
    Grey,
    Rgb,
    YCbCr,
    Cmyk,
    Ycck,
}

fn model(frame: &Frame, tables: &Tables) -> Option<Model> {
    let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
    match ids.len() {
        1 => Some(Model::Grey),
        3 => match (ids[0], ids[1], ids[2]) {
            (1, 2, 3) => Some(Model::YCbCr),
            (82, 71, 66) => Some(Model::Rgb),
            (1, 34, 35) | (114, 103, 98) => None,
            _ if tables.jfif => Some(Model::YCbCr),
            _ => match tables.adobe_transform {
                Some(0) => Some(Model::Rgb),
                Some(1) | None => Some(Model::YCbCr),
                _ => None,
            },
        },
        _ => match tables.adobe_transform {
            Some(2) => Some(Model::Ycck),
            Some(0) | None => Some(Model::Cmyk),
            _ => None,
        },
    }
}

/// Where output sample `o` falls between component samples, for an upsampling factor of `f2 / 2`:
/// the left sample and the right one's weight, in units of 1/`f2`. Sample centres line up as in
/// libjpeg's "fancy" (triangle) upsampling.
fn split(o: usize, f2: usize) -> (usize, usize) {
    let f = f2 / 2;
    // (o + 0.5) / f - 0.5, times f2.
    let p = (2 * o + 1).saturating_sub(f);
    (p / f2, p % f2)
}

/// The 1/8-scale samples of one component at the output size: one value per block (the 1×1 inverse
/// DCT: the mean, DC × quantiser / 8, level-shifted), upsampled by its sampling ratio.
///
/// Upsampled rows are made in two passes (across into a row of sums that two output rows share,
/// then down), edges clamped once per column and row instead of at every sample: at 100 MP this was a
/// sixth of the thumbnail's time.
fn plane(c: &Component, quant: u16, out_w: usize, out_h: usize, fx: usize, fy: usize) -> Vec<u8> {
    let q = i32::from(quant);
    let means: Vec<u8> =
        c.dc.iter()
            .map(|&dc| (((dc * q + 4) >> 3) + 128).clamp(0, 255) as u8)
            .collect();
    let (last_x, last_y) = (c.blocks_w - 1, c.blocks_h - 1);
    let source_row = |y: usize| &means[y.min(last_y) * c.stride..][..c.blocks_w];
    let mut out = vec![0u8; out_w * out_h];
    if fx == 1 && fy == 1 {
        for (y, row) in out.chunks_exact_mut(out_w).enumerate() {
            let source = source_row(y);
            for (x, v) in row.iter_mut().enumerate() {
                *v = source[x.min(last_x)];
            }
        }
        return out;
    }
    let (fx2, fy2) = (2 * fx, 2 * fy);
    let columns: Vec<(usize, usize, u32, u32)> = (0..out_w)
        .map(|x| {
            let (x0, wx) = split(x, fx2);
            (
                x0.min(last_x),
                (x0 + 1).min(last_x),
                (fx2 - wx) as u32,
                wx as u32,
            )
        })
        .collect();
    // One source row upsampled across: sums in units of 1/fx2.
    let across = |y: usize, sums: &mut Vec<u32>| {
        let source = source_row(y);
        sums.clear();
        sums.extend(
            columns
                .iter()
                .map(|&(x0, x1, w0, w1)| u32::from(source[x0]) * w0 + u32::from(source[x1]) * w1),
        );
    };
    let denominator = (fx2 * fy2) as u32;
    let (mut upper, mut lower) = (Vec::with_capacity(out_w), Vec::with_capacity(out_w));
    let mut rows_held = (usize::MAX, usize::MAX);
    for (y, row) in out.chunks_exact_mut(out_w).enumerate() {
        let (y0, wy) = split(y, fy2);
        let (y0, y1) = (y0.min(last_y), (y0 + 1).min(last_y));
        if rows_held.0 != y0 {
            if rows_held.1 == y0 {
                std::mem::swap(&mut upper, &mut lower);
            } else {
                across(y0, &mut upper);
            }
            rows_held = (y0, usize::MAX);
        }
        if rows_held.1 != y1 {
            across(y1, &mut lower);
            rows_held.1 = y1;
        }
        let (w0, w1) = ((fy2 - wy) as u32, wy as u32);
        let blended = upper.iter().zip(&lower).map(|(&a, &b)| a * w0 + b * w1);
        // Sampling ratios are 1, 2 or 4 in practice: a shift, not a division, per sample.
        if denominator.is_power_of_two() {
            let shift = denominator.trailing_zeros();
            for (v, total) in row.iter_mut().zip(blended) {
                *v = ((total + denominator / 2) >> shift) as u8;
            }
        } else {
            for (v, total) in row.iter_mut().zip(blended) {
                *v = ((total + denominator / 2) / denominator) as u8;
            }
        }
    }
    out
}

fn finish(frame: Option<Frame>, tables: &Tables) -> Result<DcOutcome, Rejection> {
    let Some(frame) = frame else {
        return corrupt("the JPEG has no frame");
    };
    let icc = (!tables.icc_chunks.is_empty()).then(|| {
        let mut chunks: Vec<&(u8, Vec<u8>)> = tables.icc_chunks.iter().collect();
        chunks.sort_by_key(|(sequence, _)| *sequence);
        chunks
            .iter()
            .flat_map(|(_, data)| data.iter().copied())
            .collect()
    });
    if frame.scans == 0 {
        return corrupt("the JPEG has no scan");
    }
    let Some(model) = model(&frame, tables) else {
        return Ok(DcOutcome::Unsupported);
    };
    let (out_w, out_h) = (frame.width.div_ceil(8), frame.height.div_ceil(8));
    let mut planes = Vec::with_capacity(frame.components.len());
    for c in &frame.components {
        let Some(quant) = tables.quant[c.quant] else {
            return corrupt("a component's quantisation table was not defined");
        };
        let (fx, fy) = (frame.h_max / c.h, frame.v_max / c.v);
        planes.push(plane(c, quant, out_w, out_h, fx, fy));
    }
    let pixels = out_w * out_h;
    let (channels, data) = match model {
        Model::Grey => (1, planes.swap_remove(0)),
        Model::Rgb => (3, interleave(&planes, pixels, |s| [s[0], s[1], s[2], 0])),
        Model::YCbCr => (3, interleave(&planes, pixels, |s| ycbcr(s[0], s[1], s[2]))),
        // jpeg-decoder's conventions, which decode.rs then undoes for files without Adobe's marker.
        Model::Cmyk => (
            4,
            interleave(&planes, pixels, |s| {
                [255 - s[0], 255 - s[1], 255 - s[2], 255 - s[3]]
            }),
        ),
        Model::Ycck => (
            4,
            interleave(&planes, pixels, |s| {
                let [r, g, b, _] = ycbcr(s[0], s[1], s[2]);
                [r, g, b, 255 - s[3]]
            }),
        ),
    };
    Ok(DcOutcome::Decoded(DcImage {
        width: out_w as u32,
        height: out_h as u32,
        channels,
        data,
        icc,
        exif: tables.exif.clone(),
    }))
}

/// Pixels from per-component planes through `convert` (which returns up to 4 samples; as many as
/// there are planes are kept, 3 for 3 planes and 4 for 4).
fn interleave(planes: &[Vec<u8>], pixels: usize, convert: impl Fn([u8; 4]) -> [u8; 4]) -> Vec<u8> {
    match planes {
        [a, b, c] => interleave_n([a, b, c], pixels, convert),
        [a, b, c, d] => interleave_n([a, b, c, d], pixels, convert),
        _ => unreachable!(
            "read_frame admits 1, 3 or 4 components; the grey model has no interleaving"
        ),
    }
}

/// [`interleave`] for a known number of planes, so that the per-pixel loop has no inner loop.
fn interleave_n<const N: usize>(
    planes: [&Vec<u8>; N],
    pixels: usize,
    convert: impl Fn([u8; 4]) -> [u8; 4],
) -> Vec<u8> {
    let planes = planes.map(|plane| &plane[..pixels]);
    let mut out = vec![0u8; pixels * N];
    for (i, pixel) in out.chunks_exact_mut(N).enumerate() {
        let mut s = [0u8; 4];
        for (sample, plane) in s.iter_mut().zip(planes) {
            *sample = plane[i];
        }
        pixel.copy_from_slice(&convert(s)[..N]);
    }
    out
}

/// JFIF's YCbCr to RGB, in jpeg-decoder's fixed point.
fn ycbcr(y: u8, cb: u8, cr: u8) -> [u8; 4] {
    const SHIFT: i32 = 20;
    const HALF: i32 = 1 << (SHIFT - 1);
    let fixed = |x: f32| (x * (1 << SHIFT) as f32 + 0.5) as i32;
    let y = i32::from(y) * (1 << SHIFT) + HALF;
    let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
    let clamp = |v: i32| (v >> SHIFT).clamp(0, 255) as u8;
    [
        clamp(y + fixed(1.402) * cr),
        clamp(y - fixed(0.344_14) * cb - fixed(0.714_14) * cr),
        clamp(y + fixed(1.772) * cb),
        0,
    ]
}
