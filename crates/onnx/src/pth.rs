//! Reader for legacy (pre-1.6, non-zip) PyTorch checkpoints holding a state dict.
//!
//! Layout: five consecutive pickles (magic number, protocol version, system
//! info, the state dict whose tensors refer to storages by persistent id, the
//! list of storage keys), then each storage in key-list order as a little-endian
//! `u64` element count followed by its raw little-endian elements. Only the
//! pickle opcodes such files use are implemented; anything else is an error.

use crate::OnnxError;
use std::collections::BTreeMap;

/// The magic number that opens a legacy checkpoint.
const MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// A dense float tensor (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements, converted to `f32`.
    pub data: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    Dict(Vec<(Val, Val)>),
    Global(String, String),
    Call(Box<Val>, Box<Val>),
    Pers(Box<Val>),
    Mark,
}

fn bad(m: impl Into<String>) -> OnnxError {
    OnnxError::Checkpoint(m.into())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], OnnxError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| bad("unexpected end of file"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, OnnxError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, OnnxError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, OnnxError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String, OnnxError> {
        let rest = &self.b[self.pos..];
        let n = rest.iter().position(|&c| c == b'\n').ok_or_else(|| bad("unterminated line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    /// Runs one pickle to its STOP and returns the value.
    fn pickle(&mut self) -> Result<Val, OnnxError> {
        let mut m = Machine::default();
        loop {
            let op = self.u8()?;
            match op {
                // PROTO: the protocol version, nothing to push.
                0x80 => {
                    self.u8()?;
                }
                b'.' => return m.pop(),
                b'q' | b'r' | b'h' | b'j' => self.memo_op(op, &mut m)?,
                _ => match self.literal(op)? {
                    Some(v) => m.stack.push(v),
                    None => m.structure(op).map_err(|e| match e {
                        Unknown => bad(format!("unsupported pickle opcode 0x{op:02x} at byte {}", self.pos - 1)),
                        Failed(e) => e,
                    })?,
                },
            }
        }
    }

    /// The value an opcode that pushes one reads from the stream (numbers,
    /// strings, globals, marks and empty containers); `None` for the others.
    fn literal(&mut self, op: u8) -> Result<Option<Val>, OnnxError> {
        let text = |b: &[u8]| Val::Str(String::from_utf8_lossy(b).into_owned());
        Ok(Some(match op {
            b'(' => Val::Mark,
            b'N' => Val::None,
            0x88 => Val::Bool(true),
            0x89 => Val::Bool(false),
            b'K' => Val::Int(self.u8()? as i64),
            b'M' => Val::Int(self.u16()? as i64),
            b'J' => Val::Int(self.u32()? as i32 as i64),
            0x8a => self.long1()?,
            b'G' => Val::Float(f64::from_be_bytes(self.take(8)?.try_into().unwrap())),
            b'X' | b'T' => {
                let n = self.u32()? as usize;
                text(self.take(n)?)
            }
            0x8c | b'U' => {
                let n = self.u8()? as usize;
                text(self.take(n)?)
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                Val::Global(module, name)
            }
            b'}' => Val::Dict(vec![]),
            b']' => Val::List(vec![]),
            b')' => Val::Tuple(vec![]),
            _ => return Ok(None),
        }))
    }

    /// LONG1: a little-endian two's-complement integer of up to 16 bytes.
    fn long1(&mut self) -> Result<Val, OnnxError> {
        let n = self.u8()? as usize;
        let bytes = self.take(n)?;
        if n > 16 {
            return Err(bad("LONG1 too large"));
        }
        let mut v: i128 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            v |= (b as i128) << (8 * i);
        }
        if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
            v -= 1i128 << (8 * n);
        }
        // Values beyond i64 only occur in the magic number; keep its low bits.
        Ok(if n > 8 { Val::Str(format!("{:x}", v as u128)) } else { Val::Int(v as i64) })
    }

    /// The memo's opcodes: BINPUT and LONG_BINPUT keep the top of the stack,
    /// BINGET and LONG_BINGET push what was kept.
    fn memo_op(&mut self, op: u8, m: &mut Machine) -> Result<(), OnnxError> {
        let (k, what) = match op {
            b'q' => (self.u8()? as u32, "BINPUT"),
            b'r' => (self.u32()?, "LONG_BINPUT"),
            b'h' => (self.u8()? as u32, "BINGET"),
            _ => (self.u32()?, "LONG_BINGET"),
        };
        if matches!(op, b'q' | b'r') {
            m.memo.insert(k, m.stack.last().cloned().ok_or_else(|| bad(format!("{what} on empty stack")))?);
        } else {
            m.stack.push(m.memo.get(&k).cloned().ok_or_else(|| bad(format!("{what} of unknown memo")))?);
        }
        Ok(())
    }
}

/// Why an opcode could not be run.
enum OpError {
    /// Not one this reader knows.
    Unknown,
    /// It failed.
    Failed(OnnxError),
}
use OpError::{Failed, Unknown};

/// A pickle machine's state: its stack and its memo.
#[derive(Default)]
struct Machine {
    stack: Vec<Val>,
    memo: BTreeMap<u32, Val>,
}

impl Machine {
    fn pop(&mut self) -> Result<Val, OnnxError> {
        self.stack.pop().ok_or_else(|| bad("pickle stack underflow"))
    }

    /// The items above the topmost mark, the mark removed.
    fn pop_mark(&mut self) -> Result<Vec<Val>, OnnxError> {
        let m = self.stack.iter().rposition(|v| *v == Val::Mark).ok_or_else(|| bad("pickle mark missing"))?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    /// The opcodes that build from what is on the stack: tuples, dict items,
    /// list items, calls, builds and persistent ids.
    fn structure(&mut self, op: u8) -> Result<(), OpError> {
        match op {
            b't' => {
                let items = self.pop_mark().map_err(Failed)?;
                self.stack.push(Val::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(Failed(bad("pickle stack underflow")));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Val::Tuple(items));
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = self.pop().map_err(Failed)?;
                    vec![self.pop().map_err(Failed)?, v]
                } else {
                    self.pop_mark().map_err(Failed)?
                };
                let Some(Val::Dict(d)) = self.stack.last_mut() else {
                    return Err(Failed(bad(if op == b's' { "SETITEM on a non-dict" } else { "SETITEMS on a non-dict" })));
                };
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' { vec![self.pop().map_err(Failed)?] } else { self.pop_mark().map_err(Failed)? };
                let Some(Val::List(l)) = self.stack.last_mut() else {
                    return Err(Failed(bad(if op == b'a' { "APPEND on a non-list" } else { "APPENDS on a non-list" })));
                };
                l.extend(items);
            }
            b'R' => {
                let args = self.pop().map_err(Failed)?;
                let f = self.pop().map_err(Failed)?;
                let v = match &f {
                    Val::Global(m, n) if m == "collections" && n == "OrderedDict" => Val::Dict(vec![]),
                    _ => Val::Call(Box::new(f), Box::new(args)),
                };
                self.stack.push(v);
            }
            // BUILD: object state (OrderedDict metadata, tensor hooks) is not needed.
            b'b' => drop(self.pop().map_err(Failed)?),
            b'Q' => {
                let pid = self.pop().map_err(Failed)?;
                self.stack.push(Val::Pers(Box::new(pid)));
            }
            _ => return Err(Unknown),
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Elem {
    F32,
    F64,
    I64,
    I32,
}

struct TensorRef {
    key: String,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

fn as_usize(v: &Val) -> Result<usize, OnnxError> {
    match v {
        Val::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err(bad(format!("expected a non-negative integer, found {v:?}"))),
    }
}

fn ints(v: &Val) -> Result<Vec<usize>, OnnxError> {
    match v {
        Val::Tuple(t) => t.iter().map(as_usize).collect(),
        _ => Err(bad("expected a tuple of integers")),
    }
}

fn tensor_ref(v: &Val, types: &mut BTreeMap<String, Elem>) -> Result<TensorRef, OnnxError> {
    let Val::Call(f, args) = v else { return Err(bad("state dict value is not a tensor")) };
    match &**f {
        Val::Global(m, n) if m == "torch._utils" && n == "_rebuild_tensor_v2" => {}
        other => return Err(bad(format!("unsupported tensor constructor {other:?}"))),
    }
    let Val::Tuple(a) = &**args else { return Err(bad("tensor arguments are not a tuple")) };
    if a.len() < 4 {
        return Err(bad("tensor arguments too short"));
    }
    let Val::Pers(pid) = &a[0] else { return Err(bad("tensor storage is not a persistent id")) };
    let Val::Tuple(p) = &**pid else { return Err(bad("storage id is not a tuple")) };
    let (Some(Val::Global(_, ty)), Some(Val::Str(key))) = (p.get(1), p.get(2)) else {
        return Err(bad("malformed storage id"));
    };
    let kind = match ty.as_str() {
        "FloatStorage" => Elem::F32,
        "DoubleStorage" => Elem::F64,
        "LongStorage" => Elem::I64,
        "IntStorage" => Elem::I32,
        other => return Err(bad(format!("unsupported storage type {other}"))),
    };
    types.insert(key.clone(), kind);
    Ok(TensorRef { key: key.clone(), offset: as_usize(&a[1])?, shape: ints(&a[2])?, stride: ints(&a[3])? })
}

/// Reads a legacy checkpoint's state dict: parameter name -> tensor.
pub fn read_state_dict(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, OnnxError> {
    let mut r = Reader { b: bytes, pos: 0 };
    match r.pickle()? {
        Val::Str(s) if u128::from_str_radix(&s, 16).ok() == Some(MAGIC) => {}
        _ => return Err(bad("not a legacy PyTorch checkpoint (magic number missing)")),
    }
    let _protocol = r.pickle()?;
    let _sys = r.pickle()?;
    let state = r.pickle()?;
    let keys = match r.pickle()? {
        Val::List(l) => l
            .into_iter()
            .map(|v| match v {
                Val::Str(s) => Ok(s),
                _ => Err(bad("storage key is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad("storage key list missing")),
    };
    let Val::Dict(entries) = state else { return Err(bad("checkpoint does not hold a state dict")) };
    let mut types = BTreeMap::new();
    let mut refs = Vec::new();
    for (k, v) in &entries {
        let Val::Str(name) = k else { return Err(bad("state dict key is not a string")) };
        refs.push((name.clone(), tensor_ref(v, &mut types)?));
    }
    let mut storages: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for key in keys {
        let n = u64::from_le_bytes(r.take(8)?.try_into().unwrap()) as usize;
        let ty = *types.get(&key).ok_or_else(|| bad(format!("storage {key} is not referenced")))?;
        let size = match ty {
            Elem::F32 | Elem::I32 => 4,
            Elem::F64 | Elem::I64 => 8,
        };
        let raw = r.take(n.checked_mul(size).ok_or_else(|| bad("storage too large"))?)?;
        let data: Vec<f32> = match ty {
            Elem::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            Elem::F64 => raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Elem::I64 => raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Elem::I32 => raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        };
        storages.insert(key, data);
    }
    let mut out = BTreeMap::new();
    for (name, t) in refs {
        let s = storages.get(&t.key).ok_or_else(|| bad(format!("storage {} missing", t.key)))?;
        let count: usize = t.shape.iter().product();
        let mut data = Vec::with_capacity(count);
        let mut idx = vec![0usize; t.shape.len()];
        for _ in 0..count {
            let off = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
            data.push(*s.get(off).ok_or_else(|| bad(format!("{name}: element outside its storage")))?);
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < t.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out.insert(name, Tensor { shape: t.shape, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let e = read_state_dict(b"hello world").unwrap_err().to_string();
        assert!(e.starts_with("checkpoint:"), "{e}");
    }
}
