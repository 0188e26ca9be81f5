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
        let mut stack: Vec<Val> = Vec::new();
        let mut memo: BTreeMap<u32, Val> = BTreeMap::new();
        let pop = |s: &mut Vec<Val>| s.pop().ok_or_else(|| bad("pickle stack underflow"));
        let pop_mark = |s: &mut Vec<Val>| -> Result<Vec<Val>, OnnxError> {
            let m = s.iter().rposition(|v| *v == Val::Mark).ok_or_else(|| bad("pickle mark missing"))?;
            let items = s.split_off(m + 1);
            s.pop();
            Ok(items)
        };
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                b'.' => return pop(&mut stack),
                b'(' => stack.push(Val::Mark),
                b'N' => stack.push(Val::None),
                0x88 => stack.push(Val::Bool(true)),
                0x89 => stack.push(Val::Bool(false)),
                b'K' => stack.push(Val::Int(self.u8()? as i64)),
                b'M' => stack.push(Val::Int(self.u16()? as i64)),
                b'J' => stack.push(Val::Int(self.u32()? as i32 as i64)),
                0x8a => {
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
                    stack.push(Val::Int(v as i64));
                    if n > 8 {
                        stack.pop();
                        stack.push(Val::Str(format!("{:x}", v as u128)));
                    }
                }
                b'G' => stack.push(Val::Float(f64::from_be_bytes(self.take(8)?.try_into().unwrap()))),
                b'X' => {
                    let n = self.u32()? as usize;
                    stack.push(Val::Str(String::from_utf8_lossy(self.take(n)?).into_owned()));
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    stack.push(Val::Str(String::from_utf8_lossy(self.take(n)?).into_owned()));
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    stack.push(Val::Str(String::from_utf8_lossy(self.take(n)?).into_owned()));
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    stack.push(Val::Str(String::from_utf8_lossy(self.take(n)?).into_owned()));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(Val::Global(module, name));
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    memo.insert(k, stack.last().cloned().ok_or_else(|| bad("BINPUT on empty stack"))?);
                }
                b'r' => {
                    let k = self.u32()?;
                    memo.insert(k, stack.last().cloned().ok_or_else(|| bad("LONG_BINPUT on empty stack"))?);
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    stack.push(memo.get(&k).cloned().ok_or_else(|| bad("BINGET of unknown memo"))?);
                }
                b'j' => {
                    let k = self.u32()?;
                    stack.push(memo.get(&k).cloned().ok_or_else(|| bad("LONG_BINGET of unknown memo"))?);
                }
                b'}' => stack.push(Val::Dict(vec![])),
                b']' => stack.push(Val::List(vec![])),
                b')' => stack.push(Val::Tuple(vec![])),
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(Val::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        return Err(bad("pickle stack underflow"));
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Val::Tuple(items));
                }
                b's' => {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    match stack.last_mut() {
                        Some(Val::Dict(d)) => d.push((k, v)),
                        _ => return Err(bad("SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = pop_mark(&mut stack)?;
                    match stack.last_mut() {
                        Some(Val::Dict(d)) => {
                            let mut it = items.into_iter();
                            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                                d.push((k, v));
                            }
                        }
                        _ => return Err(bad("SETITEMS on a non-dict")),
                    }
                }
                b'a' => {
                    let v = pop(&mut stack)?;
                    match stack.last_mut() {
                        Some(Val::List(l)) => l.push(v),
                        _ => return Err(bad("APPEND on a non-list")),
                    }
                }
                b'e' => {
                    let items = pop_mark(&mut stack)?;
                    match stack.last_mut() {
                        Some(Val::List(l)) => l.extend(items),
                        _ => return Err(bad("APPENDS on a non-list")),
                    }
                }
                b'R' => {
                    let args = pop(&mut stack)?;
                    let f = pop(&mut stack)?;
                    let v = match &f {
                        Val::Global(m, n) if m == "collections" && n == "OrderedDict" => Val::Dict(vec![]),
                        _ => Val::Call(Box::new(f), Box::new(args)),
                    };
                    stack.push(v);
                }
                b'b' => {
                    // BUILD: object state (OrderedDict metadata, tensor hooks) is not needed.
                    pop(&mut stack)?;
                }
                b'Q' => {
                    let pid = pop(&mut stack)?;
                    stack.push(Val::Pers(Box::new(pid)));
                }
                other => return Err(bad(format!("unsupported pickle opcode 0x{other:02x} at byte {}", self.pos - 1))),
            }
        }
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
