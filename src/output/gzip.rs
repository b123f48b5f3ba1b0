//! gzip (RFC 1952) for the archive: a small streaming deflate encoder (LZ77 with hash
//! chains, fixed Huffman codes) and a complete inflater (stored, fixed and dynamic
//! blocks; several members), so `archive verify` reads what gzip or logrotate wrote too.
//! Hand-written because a crate for both directions cost the binary ~39 KB where the
//! budget had 13 KB left (bench/notes.md); the tests check both halves against the
//! `gzip` tool and `miniz_oxide`.
use std::io::Read;

/// CRC-32 (IEEE), as gzip's trailer has it.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

pub fn crc32(mut crc: u32, data: &[u8]) -> u32 {
    crc = !crc;
    for &b in data {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// `v`'s low `n` bits in reverse order (Huffman codes go out most significant bit first
/// into a stream filled from the least significant bit).
const fn reverse(v: u32, n: u32) -> u32 {
    v.reverse_bits() >> (32 - n)
}

/// The fixed literal/length code (RFC 1951 3.2.6): (code bits reversed, length).
const FIXED_LIT: [(u16, u8); 288] = {
    let mut t = [(0u16, 0u8); 288];
    let mut s = 0;
    while s < 288 {
        let (code, len) = match s {
            0..=143 => (0x30 + s, 8),
            144..=255 => (0x190 + s - 144, 9),
            256..=279 => (s - 256, 7),
            _ => (0xc0 + s - 280, 8),
        };
        t[s] = (reverse(code as u32, len) as u16, len as u8);
        s += 1;
    }
    t
};

/// Length 3..=258 → its length code's index (into LEN_BASE).
const LEN_CODE: [u8; 259] = {
    let mut t = [0u8; 259];
    let mut c = 0;
    while c < 29 {
        let top = if c == 28 {
            258
        } else {
            LEN_BASE[c] as usize + (1 << LEN_EXTRA[c]) - 1
        };
        let mut l = LEN_BASE[c] as usize;
        while l <= top {
            t[l] = c as u8;
            l += 1;
        }
        c += 1;
    }
    t
};

fn dist_code(d: u32) -> usize {
    // The last code whose base is at most d (30 entries: a short search).
    DIST_BASE.partition_point(|&b| b as u32 <= d) - 1
}

/// Offset in the file of the 16 bytes of the header's "RW" field: the member's lines
/// and, of them, the daemon's own records (u64 LE each), so retention can count a file's
/// events without reading it.
pub const COUNTS_AT: u64 = 16;

/// The "RW" field's contents.
pub fn counts_field(lines: u64, daemon: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&lines.to_le_bytes());
    b[8..].copy_from_slice(&daemon.to_le_bytes());
    b
}

/// The "RW" counts of a gzip file written by [`Encoder`] (`None`: another writer's).
pub fn counts(mut r: impl Read) -> Option<(u64, u64)> {
    let mut h = [0u8; 32];
    r.read_exact(&mut h).ok()?;
    if h[..4] != [0x1f, 0x8b, 8, 4] || h[10..16] != [20, 0, b'R', b'W', 16, 0] {
        return None;
    }
    let le = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    Some((le(&h[16..24]), le(&h[24..32])))
}

const WINDOW: usize = 32 << 10;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
const HASH_BITS: u32 = 14;
/// Candidates tried per position: speed over the last few percent of size.
const CHAIN: usize = 8;
/// A match this long is good enough: stop looking.
const GOOD: usize = 64;

/// Streaming gzip: [`Encoder::new`] writes the header, [`Encoder::write`] compresses a
/// chunk (one fixed-code block), [`Encoder::finish`] the last block and the trailer.
pub struct Encoder {
    /// The last window of input, followed by the chunk being compressed.
    data: Vec<u8>,
    /// Absolute input position of `data[0]`.
    base: u64,
    /// Hash of 3 bytes → absolute position + 1 of its latest occurrence (0: none).
    head: Vec<u32>,
    /// Absolute position & (WINDOW-1) → the previous position + 1 with the same hash.
    prev: Vec<u32>,
    acc: u64,
    nbits: u32,
    crc: u32,
    total: u64,
}

impl Encoder {
    /// A gzip member whose header says `mtime` (seconds since the epoch), with room for
    /// [`COUNTS_AT`] (filled in by [`counts_field`] once the data is known).
    pub fn new(mtime: u32, out: &mut Vec<u8>) -> Encoder {
        // ID1 ID2 CM=deflate FLG=FEXTRA MTIME XFL=0 OS=3 (Unix), XLEN, then one
        // subfield: SI1 SI2 = "RW", LEN = 16.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 4]);
        out.extend_from_slice(&mtime.to_le_bytes());
        out.extend_from_slice(&[0, 3]);
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(b"RW");
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(&[0; 16]);
        Encoder {
            data: Vec::new(),
            base: 0,
            head: vec![0; 1 << HASH_BITS],
            prev: vec![0; WINDOW],
            acc: 0,
            nbits: 0,
            crc: 0,
            total: 0,
        }
    }

    fn bits(&mut self, v: u32, n: u32, out: &mut Vec<u8>) {
        self.acc |= (v as u64) << self.nbits;
        self.nbits += n;
        while self.nbits >= 8 {
            out.push(self.acc as u8);
            self.acc >>= 8;
            self.nbits -= 8;
        }
    }

    fn sym(&mut self, s: usize, out: &mut Vec<u8>) {
        let (code, len) = FIXED_LIT[s];
        self.bits(code as u32, len as u32, out);
    }

    fn hash(b: &[u8]) -> usize {
        let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
    }

    /// Compresses `input` into `out` as one block (not the last).
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        self.crc = crc32(self.crc, input);
        self.total += input.len() as u64;
        // Keep one window of history before the new input.
        if self.data.len() > WINDOW {
            let cut = self.data.len() - WINDOW;
            self.data.drain(..cut);
            self.base += cut as u64;
        }
        let start = self.data.len();
        self.data.extend_from_slice(input);
        // BFINAL=0, BTYPE=01 (fixed codes).
        self.bits(0b010, 3, out);
        let data = std::mem::take(&mut self.data);
        let mut i = start;
        while i < data.len() {
            let (len, dist) = self.longest(&data, i);
            if len >= MIN_MATCH {
                let c = LEN_CODE[len] as usize;
                self.sym(257 + c, out);
                self.bits(
                    (len - LEN_BASE[c] as usize) as u32,
                    LEN_EXTRA[c] as u32,
                    out,
                );
                let d = dist_code(dist as u32);
                self.bits(reverse(d as u32, 5), 5, out);
                self.bits(dist as u32 - DIST_BASE[d] as u32, DIST_EXTRA[d] as u32, out);
                for k in i..i + len {
                    self.insert(&data, k);
                }
                i += len;
            } else {
                self.sym(data[i] as usize, out);
                self.insert(&data, i);
                i += 1;
            }
        }
        self.sym(256, out);
        self.data = data;
    }

    fn insert(&mut self, data: &[u8], i: usize) {
        if i + MIN_MATCH > data.len() {
            return;
        }
        let h = Self::hash(&data[i..]);
        let abs = self.base + i as u64;
        self.prev[abs as usize & (WINDOW - 1)] = self.head[h];
        // +1: 0 means none. Positions past 4 GiB wrap; the window check drops them.
        self.head[h] = (abs as u32).wrapping_add(1);
    }

    /// The longest earlier match for `data[i..]` within the window: (length, distance).
    fn longest(&self, data: &[u8], i: usize) -> (usize, usize) {
        if i + MIN_MATCH > data.len() {
            return (0, 0);
        }
        let max = (data.len() - i).min(MAX_MATCH);
        let abs = (self.base + i as u64) as u32;
        let mut cand = self.head[Self::hash(&data[i..])];
        let (mut best, mut best_d, mut last) = (0, 0, 0);
        for _ in 0..CHAIN {
            if cand == 0 {
                break;
            }
            // Positions are kept mod 2^32. A chain only goes back in time: a distance
            // that does not grow is a slot a newer position took over.
            let dist = abs.wrapping_sub(cand - 1) as usize;
            if dist <= last || dist > WINDOW || dist > i {
                break;
            }
            let j = i - dist;
            if best == 0 || data[j + best] == data[i + best] {
                let l = data[j..j + max]
                    .iter()
                    .zip(&data[i..i + max])
                    .take_while(|(a, b)| a == b)
                    .count();
                if l > best {
                    best = l;
                    best_d = dist;
                    if l >= GOOD || l == max {
                        break;
                    }
                }
            }
            last = dist;
            cand = self.prev[(cand - 1) as usize & (WINDOW - 1)];
        }
        (best, best_d)
    }

    /// The last (empty) block and the trailer: CRC-32 and length mod 2^32.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        // BFINAL=1, BTYPE=01, end of block.
        self.bits(0b011, 3, out);
        self.sym(256, out);
        if self.nbits > 0 {
            out.push(self.acc as u8);
        }
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&(self.total as u32).to_le_bytes());
    }
}

/// Why a gzip stream cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GzError {
    #[error("not a gzip file")]
    NotGzip,
    #[error("truncated gzip data")]
    Truncated,
    #[error("corrupt gzip data: {0}")]
    Corrupt(&'static str),
    #[error("gzip checksum mismatch")]
    Checksum,
    #[error("reading: {0}")]
    Io(String),
}

/// Input bits, least significant first, refilled from a reader.
struct Bits<R> {
    r: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    acc: u64,
    /// Real bits in `acc` (past them it reads as zeros).
    n: u32,
    eof: bool,
}

impl<R: Read> Bits<R> {
    fn fill(&mut self) -> Result<(), GzError> {
        while self.n <= 56 {
            if self.pos == self.len {
                if self.eof {
                    return Ok(());
                }
                self.len = loop {
                    match self.r.read(&mut self.buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        r => break r.map_err(|e| GzError::Io(e.to_string()))?,
                    }
                };
                self.pos = 0;
                if self.len == 0 {
                    self.eof = true;
                    return Ok(());
                }
            }
            self.acc |= (self.buf[self.pos] as u64) << self.n;
            self.pos += 1;
            self.n += 8;
        }
        Ok(())
    }

    fn peek(&mut self, k: u32) -> Result<u32, GzError> {
        if self.n < k {
            self.fill()?;
        }
        Ok((self.acc & ((1u64 << k) - 1)) as u32)
    }

    fn drop(&mut self, k: u32) -> Result<(), GzError> {
        if k > self.n {
            return Err(GzError::Truncated);
        }
        self.acc >>= k;
        self.n -= k;
        Ok(())
    }

    fn take(&mut self, k: u32) -> Result<u32, GzError> {
        if k == 0 {
            return Ok(0);
        }
        let v = self.peek(k)?;
        self.drop(k)?;
        Ok(v)
    }

    fn align(&mut self) {
        let k = self.n % 8;
        self.acc >>= k;
        self.n -= k;
    }

    fn byte(&mut self) -> Result<u8, GzError> {
        self.take(8).map(|v| v as u8)
    }

    /// At the end of the input (only whole bytes are left over from a member).
    fn at_end(&mut self) -> Result<bool, GzError> {
        self.fill()?;
        Ok(self.n == 0)
    }
}

/// A canonical Huffman code as a lookup table on `max` reversed bits: (symbol, length).
struct Table {
    max: u32,
    t: Vec<(u16, u8)>,
}

impl Table {
    fn new(lens: &[u8]) -> Result<Table, GzError> {
        let max = lens.iter().copied().max().unwrap_or(0) as u32;
        let mut count = [0u32; 16];
        for &l in lens {
            count[l as usize] += 1;
        }
        count[0] = 0;
        // Over-subscribed codes are corrupt; incomplete ones are allowed (a single
        // distance code), their holes read as errors.
        let mut left = 1i64;
        for c in &count[1..] {
            left = left * 2 - *c as i64;
            if left < 0 {
                return Err(GzError::Corrupt("over-subscribed code"));
            }
        }
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for l in 1..16 {
            code = (code + count[l - 1]) << 1;
            next[l] = code;
        }
        let max = max.max(1);
        let mut t = vec![(u16::MAX, 0u8); 1 << max];
        for (s, &l) in lens.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let l = l as u32;
            let r = reverse(next[l as usize], l) as usize;
            next[l as usize] += 1;
            let mut i = r;
            while i < t.len() {
                t[i] = (s as u16, l as u8);
                i += 1 << l;
            }
        }
        Ok(Table { max, t })
    }

    fn decode<R: Read>(&self, b: &mut Bits<R>) -> Result<u16, GzError> {
        let (s, l) = self.t[b.peek(self.max)? as usize];
        if l == 0 {
            return Err(GzError::Corrupt("invalid code"));
        }
        b.drop(l as u32)?;
        Ok(s)
    }
}

/// Output with a window behind it: handed on in chunks, the last 32 KiB kept for copies.
struct Out<'f> {
    buf: Vec<u8>,
    /// `buf[..given]` was handed on already.
    given: usize,
    crc: u32,
    size: u32,
    f: &'f mut dyn FnMut(&[u8]),
}

impl Out<'_> {
    fn flush(&mut self, keep: usize) {
        let new = &self.buf[self.given..];
        self.crc = crc32(self.crc, new);
        self.size = self.size.wrapping_add(new.len() as u32);
        (self.f)(new);
        let cut = self.buf.len().saturating_sub(keep);
        self.buf.drain(..cut);
        self.given = self.buf.len();
    }

    fn push(&mut self, b: u8) {
        self.buf.push(b);
        if self.buf.len() >= 4 * WINDOW {
            self.flush(WINDOW);
        }
    }

    fn copy(&mut self, dist: usize, len: usize) -> Result<(), GzError> {
        if dist > self.buf.len() {
            return Err(GzError::Corrupt("distance too far back"));
        }
        for _ in 0..len {
            let b = self.buf[self.buf.len() - dist];
            self.push(b);
        }
        Ok(())
    }
}

/// Reads every gzip member of `r`, handing the decompressed bytes to `f` in chunks.
pub fn read_all(r: impl Read, f: &mut dyn FnMut(&[u8])) -> Result<(), GzError> {
    let mut b = Bits {
        r,
        buf: vec![0u8; 64 << 10].into_boxed_slice(),
        pos: 0,
        len: 0,
        acc: 0,
        n: 0,
        eof: false,
    };
    let mut first = true;
    loop {
        if !first && b.at_end()? {
            return Ok(());
        }
        header(&mut b, first)?;
        first = false;
        let mut out = Out {
            buf: Vec::with_capacity(5 * WINDOW),
            given: 0,
            crc: 0,
            size: 0,
            f: &mut *f,
        };
        inflate(&mut b, &mut out)?;
        out.flush(0);
        b.align();
        let mut trailer = [0u8; 8];
        for t in &mut trailer {
            *t = b.byte()?;
        }
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != out.crc || size != out.size {
            return Err(GzError::Checksum);
        }
    }
}

fn header<R: Read>(b: &mut Bits<R>, first: bool) -> Result<(), GzError> {
    let (id1, id2) = (b.byte(), b.byte());
    match (id1, id2) {
        (Ok(0x1f), Ok(0x8b)) => {}
        (Err(GzError::Truncated), _) | (_, Err(GzError::Truncated)) if !first => {
            return Err(GzError::Truncated);
        }
        _ => return Err(GzError::NotGzip),
    }
    if b.byte()? != 8 {
        return Err(GzError::Corrupt("unknown compression method"));
    }
    let flg = b.byte()?;
    for _ in 0..6 {
        b.byte()?; // MTIME, XFL, OS
    }
    if flg & 4 != 0 {
        let xlen = b.take(16)?;
        for _ in 0..xlen {
            b.byte()?;
        }
    }
    for bit in [8, 16] {
        // FNAME, FCOMMENT: zero-terminated.
        if flg & bit != 0 {
            while b.byte()? != 0 {}
        }
    }
    if flg & 2 != 0 {
        b.take(16)?; // FHCRC
    }
    Ok(())
}

fn inflate<R: Read>(b: &mut Bits<R>, out: &mut Out) -> Result<(), GzError> {
    loop {
        let last = b.take(1)?;
        match b.take(2)? {
            0 => {
                b.align();
                let len = b.take(16)?;
                let nlen = b.take(16)?;
                if len != !nlen & 0xffff {
                    return Err(GzError::Corrupt("stored block length"));
                }
                for _ in 0..len {
                    let c = b.byte()?;
                    out.push(c);
                }
            }
            1 => {
                let mut lens = [0u8; 288];
                for (s, l) in lens.iter_mut().enumerate() {
                    *l = FIXED_LIT[s].1;
                }
                let lit = Table::new(&lens)?;
                let dist = Table::new(&[5u8; 30])?;
                codes(b, out, &lit, &dist)?;
            }
            2 => {
                let (lit, dist) = dynamic(b)?;
                codes(b, out, &lit, &dist)?;
            }
            _ => return Err(GzError::Corrupt("invalid block type")),
        }
        if last == 1 {
            return Ok(());
        }
    }
}

fn dynamic<R: Read>(b: &mut Bits<R>) -> Result<(Table, Table), GzError> {
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let nlen = b.take(5)? as usize + 257;
    let ndist = b.take(5)? as usize + 1;
    let ncode = b.take(4)? as usize + 4;
    if nlen > 286 || ndist > 30 {
        return Err(GzError::Corrupt("too many codes"));
    }
    let mut cl = [0u8; 19];
    for &o in &ORDER[..ncode] {
        cl[o] = b.take(3)? as u8;
    }
    let clt = Table::new(&cl)?;
    let mut lens = [0u8; 316];
    let mut i = 0;
    while i < nlen + ndist {
        let s = clt.decode(b)?;
        let (v, n) = match s {
            0..=15 => (s as u8, 1),
            16 => {
                let prev = *lens[..i]
                    .last()
                    .ok_or(GzError::Corrupt("repeat with no length"))?;
                (prev, 3 + b.take(2)? as usize)
            }
            17 => (0, 3 + b.take(3)? as usize),
            _ => (0, 11 + b.take(7)? as usize),
        };
        if i + n > nlen + ndist {
            return Err(GzError::Corrupt("too many lengths"));
        }
        lens[i..i + n].fill(v);
        i += n;
    }
    if lens[256] == 0 {
        return Err(GzError::Corrupt("no end-of-block code"));
    }
    Ok((
        Table::new(&lens[..nlen])?,
        Table::new(&lens[nlen..nlen + ndist])?,
    ))
}

fn codes<R: Read>(
    b: &mut Bits<R>,
    out: &mut Out,
    lit: &Table,
    dist: &Table,
) -> Result<(), GzError> {
    loop {
        let s = lit.decode(b)? as usize;
        match s {
            0..=255 => out.push(s as u8),
            256 => return Ok(()),
            257..=285 => {
                let c = s - 257;
                let len = LEN_BASE[c] as usize + b.take(LEN_EXTRA[c] as u32)? as usize;
                let d = dist.decode(b)? as usize;
                if d >= 30 {
                    return Err(GzError::Corrupt("invalid distance code"));
                }
                let dd = DIST_BASE[d] as usize + b.take(DIST_EXTRA[d] as u32)? as usize;
                out.copy(dd, len)?;
            }
            _ => return Err(GzError::Corrupt("invalid length code")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new(0, &mut out);
        for c in chunks {
            e.write(c, &mut out);
        }
        e.finish(&mut out);
        out
    }

    fn gunzip(data: &[u8]) -> Result<Vec<u8>, GzError> {
        let mut v = Vec::new();
        read_all(data, &mut |b| v.extend_from_slice(b))?;
        Ok(v)
    }

    fn sample(n: usize) -> Vec<u8> {
        let mut s = Vec::new();
        let mut x = 12345u32;
        for i in 0..n {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            s.extend_from_slice(
                format!(
                    "{{\"type\":\"open\",\"seq\":{i},\"pid\":{},\"path\":\"/usr/lib/x{}\"}}\n",
                    x >> 20,
                    x % 97
                )
                .as_bytes(),
            );
        }
        s
    }

    #[test]
    fn crc_of_check_string() {
        assert_eq!(crc32(0, b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn round_trip_in_chunks() {
        let data = sample(20_000);
        for split in [1usize, 7, 4096, 100_000, data.len()] {
            // Byte-sized chunks on a part (a block each: slow in a debug build).
            let part = if split < 100 {
                &data[..50_000]
            } else {
                &data[..]
            };
            let chunks: Vec<&[u8]> = part.chunks(split).collect();
            let z = gz(&chunks);
            // A block per chunk: tiny chunks cost their headers.
            if split >= 4096 {
                assert!(z.len() < data.len() / 4, "{} of {}", z.len(), data.len());
            }
            assert_eq!(gunzip(&z).expect("inflate"), part, "split {split}");
        }
        assert_eq!(gunzip(&gz(&[])).expect("empty"), b"");
    }

    #[test]
    fn runs_and_long_matches() {
        let mut data = vec![b'a'; 100_000];
        data.extend((0..70_000u32).map(|i| (i % 251) as u8));
        data.extend(vec![0u8; 300]);
        let z = gz(&[&data]);
        assert_eq!(gunzip(&z).expect("inflate"), data);
    }

    #[test]
    fn damage_is_reported() {
        let data = sample(2000);
        let z = gz(&[&data]);
        assert_eq!(gunzip(&z[..z.len() - 5]), Err(GzError::Truncated));
        assert_eq!(gunzip(b"plain text\n"), Err(GzError::NotGzip));
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        assert_eq!(gunzip(&bad), Err(GzError::Checksum));
        // Two members read as one stream, as gzip does.
        let mut two = z.clone();
        two.extend_from_slice(&z);
        let mut both = data.clone();
        both.extend_from_slice(&data);
        assert_eq!(gunzip(&two).expect("two members"), both);
    }

    fn tool(args: &[&str], input: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut c = Command::new("gzip")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        let mut stdin = c.stdin.take().expect("stdin");
        let input = input.to_vec();
        let w = std::thread::spawn(move || stdin.write_all(&input));
        let out = c.wait_with_output().expect("gzip output");
        w.join().expect("writer").expect("write");
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn the_gzip_tool_reads_ours_and_we_read_its() {
        let mut data = sample(30_000);
        // Incompressible bytes: gzip stores them (stored blocks).
        let mut x = 7u64;
        data.extend((0..70_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        let ours = gz(&data.chunks(128 << 10).collect::<Vec<_>>());
        assert_eq!(tool(&["-dc"], &ours), data);
        for level in ["-1", "-6", "-9"] {
            let theirs = tool(&["-c", level], &data);
            assert_eq!(gunzip(&theirs).expect(level), data, "{level}");
        }
    }
}
