//! Small result parts written straight as Parquet bytes.
//!
//! The Arrow writer sets up a column writer, a page store and an encoder for
//! each of a part's 30 columns whatever the number of rows: a part of a few
//! rows spent about 0.1 ms there, more than its shard's whole inference on a
//! tiny model. Parts of up to [`DIRECT_ROWS`] rows are written here instead:
//! one row group, one data page per column (version 1, PLAIN values, RLE
//! levels, snappy, as the Arrow writer's pages with the part properties), and
//! a footer whose schema, key-value metadata (the Arrow schema), writer name
//! and column orders are the bytes the Arrow writer gave for a template part,
//! so every reader sees the same file schema. Larger parts go through the
//! Arrow writer, which pages them.

use crate::ResultRow;
use parquet::basic::Type as Physical;
use parquet::schema::types::SchemaDescriptor;

/// Parts of at most this many rows are written directly.
pub(crate) const DIRECT_ROWS: usize = 1024;
/// ... and with at most this many probabilities in all (`probs` columns), so
/// that no page grows past the Arrow writer's 1 MiB page size.
pub(crate) const DIRECT_PROBS: usize = 200_000;

/// Whether a part is written directly.
pub(crate) fn fits(rows: &[ResultRow]) -> bool {
    !rows.is_empty() && rows.len() <= DIRECT_ROWS && rows.iter().map(|r| r.probs.as_ref().map_or(0, Vec::len)).sum::<usize>() <= DIRECT_PROBS
}

/// The fixed parts of every footer, cut out of a template part's footer: the
/// fields before the row count (version, schema) and those after the row
/// groups (key-value metadata, writer name, column orders, end of struct).
pub(crate) struct Template {
    head: Vec<u8>,
    tail: Vec<u8>,
    /// Each leaf's path in the schema.
    paths: Vec<Vec<String>>,
}

/// The leaf columns, in file order: name, physical type, and the maximum
/// definition and repetition levels the writer below gives them.
const LEAVES: [(&str, Physical, i16, i16); 30] = [
    ("sweep_id", Physical::INT64, 0, 0),
    ("shard_id", Physical::INT64, 0, 0),
    ("attempt", Physical::INT32, 0, 0),
    ("model", Physical::BYTE_ARRAY, 0, 0),
    ("family", Physical::BYTE_ARRAY, 0, 0),
    ("family_index", Physical::INT32, 0, 0),
    ("image_index", Physical::INT32, 0, 0),
    ("image_name", Physical::BYTE_ARRAY, 0, 0),
    ("label", Physical::INT32, 1, 0),
    ("point", Physical::INT32, 0, 0),
    ("dx", Physical::FLOAT, 0, 0),
    ("dy", Physical::FLOAT, 0, 0),
    ("scale", Physical::FLOAT, 0, 0),
    ("angle", Physical::FLOAT, 0, 0),
    ("is_reference", Physical::BOOLEAN, 0, 0),
    ("top1", Physical::INT32, 0, 0),
    ("top5_class", Physical::INT32, 2, 1),
    ("top5_prob", Physical::FLOAT, 2, 1),
    ("p_label", Physical::FLOAT, 1, 0),
    ("p_ref_top1", Physical::FLOAT, 0, 0),
    ("fwd_pairs", Physical::INT32, 0, 0),
    ("fwd_top1_changes", Physical::INT32, 0, 0),
    ("fwd_abs_diff", Physical::DOUBLE, 0, 0),
    ("fwd_top5_transitions", Physical::INT32, 0, 0),
    ("fwd_top5_dist", Physical::INT32, 0, 0),
    ("provider", Physical::BYTE_ARRAY, 0, 0),
    ("precision", Physical::BYTE_ARRAY, 0, 0),
    ("probs", Physical::FLOAT, 3, 1),
    ("layers", Physical::BYTE_ARRAY, 1, 0),
    ("render", Physical::BYTE_ARRAY, 0, 0),
];

impl Template {
    /// Cuts the fixed fields out of a part the Arrow writer made with the part
    /// schema, checking that the schema's leaves are those written here;
    /// `None` when anything differs (every part then goes through the Arrow
    /// writer).
    pub(crate) fn from_part(file: &[u8], schema: &SchemaDescriptor) -> Option<Template> {
        let leaves = schema.columns();
        if leaves.len() != LEAVES.len() {
            return None;
        }
        for (c, &(name, physical, def, rep)) in leaves.iter().zip(LEAVES.iter()) {
            let top = c.path().parts().first().map(String::as_str);
            if top != Some(name) || c.physical_type() != physical || c.max_def_level() != def || c.max_rep_level() != rep {
                return None;
            }
        }
        let n = file.len();
        if n < 12 || &file[..4] != b"PAR1" || &file[n - 4..] != b"PAR1" {
            return None;
        }
        let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().ok()?) as usize;
        let footer = file.get(n.checked_sub(8 + len)?..n - 8)?;
        let fields = top_fields(footer)?;
        let ids: Vec<i16> = fields.iter().map(|f| f.0).collect();
        // Version and schema, then row count and row groups, then the rest.
        if ids.len() < 4 || ids[..4] != [1, 2, 3, 4] || ids[4..].iter().any(|&id| !(5..=7).contains(&id)) {
            return None;
        }
        let head = footer[..fields[1].2].to_vec();
        let tail = footer[fields[3].2..].to_vec();
        let paths = leaves.iter().map(|c| c.path().parts().to_vec()).collect();
        Some(Template { head, tail, paths })
    }
}

/// The top-level fields of a compact-protocol struct: (id, start, end) each,
/// the struct's stop byte after the last.
fn top_fields(b: &[u8]) -> Option<Vec<(i16, usize, usize)>> {
    let mut pos = 0;
    let mut last = 0i16;
    let mut out = Vec::new();
    loop {
        let start = pos;
        let h = *b.get(pos)?;
        pos += 1;
        if h == 0 {
            return (pos == b.len()).then_some(out);
        }
        let id = match h >> 4 {
            0 => i16::try_from(unzigzag(varint(b, &mut pos)?)).ok()?,
            d => last.checked_add(d as i16)?,
        };
        skip(b, &mut pos, h & 0x0f, 0)?;
        out.push((id, start, pos));
        last = id;
    }
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Skips one compact-protocol value of type `ty` (a field's value: booleans
/// are in the field header).
fn skip(b: &[u8], pos: &mut usize, ty: u8, depth: u8) -> Option<()> {
    if depth > 32 {
        return None;
    }
    match ty {
        T_TRUE | T_FALSE => {}
        T_BYTE => *pos += 1,
        T_I16 | T_I32 | T_I64 => {
            varint(b, pos)?;
        }
        T_DOUBLE => *pos += 8,
        T_BINARY => {
            let n = varint(b, pos)? as usize;
            *pos = pos.checked_add(n)?;
        }
        T_LIST | 10 => {
            let h = *b.get(*pos)?;
            *pos += 1;
            let n = match h >> 4 {
                15 => varint(b, pos)? as usize,
                n => n as usize,
            };
            for _ in 0..n {
                match h & 0x0f {
                    // A list's booleans are a byte each.
                    T_TRUE | T_FALSE => *pos += 1,
                    et => skip(b, pos, et, depth + 1)?,
                }
            }
        }
        11 => {
            let n = varint(b, pos)? as usize;
            if n > 0 {
                let kv = *b.get(*pos)?;
                *pos += 1;
                for _ in 0..n {
                    skip(b, pos, kv >> 4, depth + 1)?;
                    skip(b, pos, kv & 0x0f, depth + 1)?;
                }
            }
        }
        T_STRUCT => loop {
            let h = *b.get(*pos)?;
            *pos += 1;
            if h == 0 {
                break;
            }
            if h >> 4 == 0 {
                varint(b, pos)?;
            }
            skip(b, pos, h & 0x0f, depth + 1)?;
        },
        _ => return None,
    }
    (*pos <= b.len()).then_some(())
}

// Compact-protocol type ids.
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_STRUCT: u8 = 12;

// Parquet's enum values.
const PAGE_DATA: i32 = 0;
const ENC_PLAIN: i32 = 0;
const ENC_RLE: i32 = 3;
const CODEC_SNAPPY: i32 = 1;

/// A compact-protocol writer over a buffer, with the last field id of each
/// open struct.
struct Compact {
    buf: Vec<u8>,
    last: Vec<i16>,
}

impl Compact {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn field(&mut self, id: i16, ty: u8) {
        let last = self.last.last_mut().expect("inside a struct");
        let delta = id - *last;
        *last = id;
        if (1..=15).contains(&delta) {
            self.buf.push((delta as u8) << 4 | ty);
        } else {
            self.buf.push(ty);
            self.zigzag(id.into());
        }
    }

    fn i16(&mut self, id: i16, v: i16) {
        self.field(id, T_I16);
        self.zigzag(v.into());
    }

    fn i32(&mut self, id: i16, v: i32) {
        self.field(id, T_I32);
        self.zigzag(v.into());
    }

    fn i64(&mut self, id: i16, v: i64) {
        self.field(id, T_I64);
        self.zigzag(v);
    }

    fn list(&mut self, id: i16, elem: u8, n: usize) {
        self.field(id, T_LIST);
        if n < 15 {
            self.buf.push((n as u8) << 4 | elem);
        } else {
            self.buf.push(0xf0 | elem);
            self.varint(n as u64);
        }
    }

    /// Opens a struct: a field's (`Some(id)`) or a list element's.
    fn open(&mut self, id: Option<i16>) {
        if let Some(id) = id {
            self.field(id, T_STRUCT);
        }
        self.last.push(0);
    }

    fn close(&mut self) {
        self.buf.push(0);
        self.last.pop();
    }
}

/// A value in PLAIN encoding.
trait Plain {
    fn put(&self, out: &mut Vec<u8>);
}

macro_rules! plain_le {
    ($($t:ty),*) => {$(impl Plain for $t {
        fn put(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
    })*};
}
plain_le!(i32, i64, f32, f64);

impl Plain for &str {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(self.as_bytes());
    }
}

/// Levels in the RLE / bit-packing hybrid, runs only, after their byte length.
fn levels(out: &mut Vec<u8>, levels: &[u8], max: u8) {
    let width = (8 - max.leading_zeros()) as usize;
    let bytes = width.div_ceil(8);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut i = 0;
    while i < levels.len() {
        let v = levels[i];
        let run = levels[i..].iter().take_while(|&&l| l == v).count();
        let mut h = (run as u64) << 1;
        while h >= 0x80 {
            out.push(h as u8 | 0x80);
            h >>= 7;
        }
        out.push(h as u8);
        out.extend_from_slice(&[v][..bytes]);
        i += run;
    }
    let n = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// One column's page body (uncompressed) and its number of level entries.
struct Page {
    body: Vec<u8>,
    values: usize,
}

fn required<'a, T: Plain>(rows: &'a [ResultRow], f: impl Fn(&'a ResultRow) -> T) -> Page {
    let mut body = Vec::with_capacity(rows.len() * 8);
    rows.iter().for_each(|r| f(r).put(&mut body));
    Page { body, values: rows.len() }
}

fn optional<'a, T: Plain>(rows: &'a [ResultRow], f: impl Fn(&'a ResultRow) -> Option<T>) -> Page {
    let defs: Vec<u8> = rows.iter().map(|r| f(r).is_some() as u8).collect();
    let mut body = Vec::with_capacity(rows.len() * 8 + 16);
    levels(&mut body, &defs, 1);
    rows.iter().filter_map(&f).for_each(|v| v.put(&mut body));
    Page { body, values: rows.len() }
}

/// A list column (`optional`: the list itself may be null) of non-null items.
fn list<'a, T: Plain + 'a>(rows: &'a [ResultRow], optional: bool, f: impl Fn(&'a ResultRow) -> Option<&'a [T]>) -> Page {
    let base = optional as u8; // definition level of a present list
    let (mut reps, mut defs) = (Vec::new(), Vec::new());
    let mut values = Vec::new();
    for r in rows {
        match f(r) {
            None => {
                reps.push(0);
                defs.push(0);
            }
            Some([]) => {
                reps.push(0);
                defs.push(base);
            }
            Some(items) => {
                for (j, v) in items.iter().enumerate() {
                    reps.push((j > 0) as u8);
                    defs.push(base + 2);
                    v.put(&mut values);
                }
            }
        }
    }
    let mut body = Vec::with_capacity(values.len() + 32);
    levels(&mut body, &reps, 1);
    levels(&mut body, &defs, base + 2);
    body.extend_from_slice(&values);
    Page { values: reps.len(), body }
}

fn booleans(rows: &[ResultRow], f: impl Fn(&ResultRow) -> bool) -> Page {
    let mut body = vec![0u8; rows.len().div_ceil(8)];
    for (i, r) in rows.iter().enumerate() {
        body[i / 8] |= (f(r) as u8) << (i % 8);
    }
    Page { body, values: rows.len() }
}

/// The pages of a part's columns, in [`LEAVES`] order.
fn pages(rows: &[ResultRow], layers: &[Option<String>]) -> [Page; 30] {
    [
        required(rows, |r| r.sweep_id),
        required(rows, |r| r.shard_id),
        required(rows, |r| r.attempt),
        required(rows, |r| r.model.as_str()),
        required(rows, |r| r.family.as_str()),
        required(rows, |r| r.family_index),
        required(rows, |r| r.image_index),
        required(rows, |r| r.image_name.as_str()),
        optional(rows, |r| r.label),
        required(rows, |r| r.point),
        required(rows, |r| r.dx),
        required(rows, |r| r.dy),
        required(rows, |r| r.scale),
        required(rows, |r| r.angle),
        booleans(rows, |r| r.is_reference),
        required(rows, |r| r.top1),
        list(rows, false, |r| Some(r.top5_class.as_slice())),
        list(rows, false, |r| Some(r.top5_prob.as_slice())),
        optional(rows, |r| r.p_label),
        required(rows, |r| r.p_ref_top1),
        required(rows, |r| r.fwd_pairs),
        required(rows, |r| r.fwd_top1_changes),
        required(rows, |r| r.fwd_abs_diff),
        required(rows, |r| r.fwd_top5_transitions),
        required(rows, |r| r.fwd_top5_dist),
        required(rows, |r| r.provider.as_str()),
        required(rows, |r| r.precision.as_str()),
        list(rows, true, |r| r.probs.as_deref()),
        {
            let defs: Vec<u8> = layers.iter().map(|l| l.is_some() as u8).collect();
            let mut body = Vec::new();
            levels(&mut body, &defs, 1);
            layers.iter().flatten().for_each(|l| l.as_str().put(&mut body));
            Page { body, values: rows.len() }
        },
        required(rows, |r| r.render.as_str()),
    ]
}

/// Where a column chunk went and what it holds, for the footer.
struct Chunk {
    offset: i64,
    values: usize,
    uncompressed: usize,
    compressed: usize,
}

/// Writes rows (at least one; [`fits`]) as a part file.
pub(crate) fn encode(rows: &[ResultRow], template: &Template) -> Vec<u8> {
    let layers: Vec<Option<String>> = rows.iter().map(|r| r.layers.as_ref().map(|l| serde_json::to_string(l).expect("plain data"))).collect();
    let pages = pages(rows, &layers);
    let size: usize = pages.iter().map(|p| p.body.len() + 32).sum();
    let mut w = Compact { buf: Vec::with_capacity(size + template.head.len() + template.tail.len() + 64 * LEAVES.len()), last: Vec::new() };
    w.buf.extend_from_slice(b"PAR1");
    let mut encoder = snap::raw::Encoder::new();
    let mut packed = Vec::new();
    let mut chunks = Vec::with_capacity(LEAVES.len());
    for page in &pages {
        packed.resize(snap::raw::max_compress_len(page.body.len()), 0);
        let n = encoder.compress(&page.body, &mut packed).expect("a buffer of the maximum compressed length");
        let offset = w.buf.len();
        // PageHeader { type, uncompressed_page_size, compressed_page_size,
        // data_page_header: { num_values, encoding, definition and repetition
        // level encodings } }
        w.open(None);
        w.i32(1, PAGE_DATA);
        w.i32(2, page.body.len() as i32);
        w.i32(3, n as i32);
        w.open(Some(5));
        w.i32(1, page.values as i32);
        w.i32(2, ENC_PLAIN);
        w.i32(3, ENC_RLE);
        w.i32(4, ENC_RLE);
        w.close();
        w.close();
        let header = w.buf.len() - offset;
        w.buf.extend_from_slice(&packed[..n]);
        chunks.push(Chunk { offset: offset as i64, values: page.values, uncompressed: header + page.body.len(), compressed: header + n });
    }
    let footer = w.buf.len();
    // FileMetaData: version and schema from the template, the row count and
    // the one row group here, the rest from the template.
    w.buf.extend_from_slice(&template.head);
    w.last = vec![2];
    w.i64(3, rows.len() as i64);
    w.list(4, T_STRUCT, 1);
    // RowGroup { columns, total_byte_size, num_rows, file_offset,
    // total_compressed_size, ordinal }
    w.open(None);
    w.list(1, T_STRUCT, chunks.len());
    for ((c, &(_, physical, def, rep)), path) in chunks.iter().zip(LEAVES.iter()).zip(&template.paths) {
        // ColumnChunk { file_offset, meta_data: ColumnMetaData { type,
        // encodings, path_in_schema, codec, num_values,
        // total_uncompressed_size, total_compressed_size, data_page_offset } }
        w.open(None);
        w.i64(2, c.offset);
        w.open(Some(3));
        w.i32(1, physical as i32);
        let leveled = def > 0 || rep > 0;
        w.list(2, T_I32, 1 + leveled as usize);
        w.zigzag(ENC_PLAIN.into());
        if leveled {
            w.zigzag(ENC_RLE.into());
        }
        w.list(3, T_BINARY, path.len());
        for p in path {
            w.varint(p.len() as u64);
            w.buf.extend_from_slice(p.as_bytes());
        }
        w.i32(4, CODEC_SNAPPY);
        w.i64(5, c.values as i64);
        w.i64(6, c.uncompressed as i64);
        w.i64(7, c.compressed as i64);
        w.i64(9, c.offset);
        w.close();
        w.close();
    }
    w.i64(2, chunks.iter().map(|c| c.uncompressed as i64).sum());
    w.i64(3, rows.len() as i64);
    w.i64(5, chunks[0].offset);
    w.i64(6, chunks.iter().map(|c| c.compressed as i64).sum());
    w.i16(7, 0);
    w.close();
    w.buf.extend_from_slice(&template.tail);
    let len = (w.buf.len() - footer) as u32;
    w.buf.extend_from_slice(&len.to_le_bytes());
    w.buf.extend_from_slice(b"PAR1");
    w.buf
}
