//! A streaming GGUF v3 writer (ggml-org/ggml `docs/gguf.md`): header, metadata, tensor
//! directory, then each tensor's bytes as the caller produces them, so a whole model never has
//! to sit in memory. Written to a temporary file in the target folder and renamed into place:
//! a failure never leaves a half-written GGUF behind.

use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

/// Tensor data alignment (`general.alignment`, GGUF's default).
pub const ALIGNMENT: u64 = 32;

/// One tensor of the file: its name, row-major shape (`[out, in]`, as torch and candle hold
/// it; the file stores the reverse, fastest dimension first) and ggml type.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
}

impl TensorEntry {
    /// Bytes of data, or `None` when the row length is not a whole number of blocks.
    pub fn bytes(&self) -> Option<u64> {
        let elems: usize = self.shape.iter().product();
        let row = *self.shape.last()?;
        let bs = self.dtype.block_size();
        if !row.is_multiple_of(bs) {
            return None;
        }
        Some(((elems / bs) * self.dtype.type_size()) as u64)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GgufWriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The producer of a tensor's bytes failed.
    #[error("{0}")]
    Producer(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> GgufWriteError + '_ {
    move |source| GgufWriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// ggml's type id of `t` (candle keeps its own mapping crate-private).
pub fn ggml_type_code(t: GgmlDType) -> u32 {
    match t {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

/// GGUF value type code of `v`.
fn type_code(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Serialise a value (without its type code). Arrays must be homogeneous and non-nested.
fn put_value(out: &mut Vec<u8>, key: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(items) => {
            // An empty array keeps a type code; u32 is what gguf-py writes for empty lists.
            let code = items.first().map_or(4, type_code);
            if code == 9 {
                return Err(format!("{key}: nested arrays are not supported"));
            }
            if items.iter().any(|i| type_code(i) != code) {
                return Err(format!("{key}: array elements of mixed types"));
            }
            out.extend_from_slice(&code.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, key, i)?;
            }
        }
    }
    Ok(())
}

fn pad_len(pos: u64) -> u64 {
    pos.div_ceil(ALIGNMENT) * ALIGNMENT - pos
}

/// Where the time of a [`write_gguf`] call went.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct WriteStats {
    /// Bytes of the file.
    pub bytes: u64,
    /// Wall time of producing tensor bytes (merging, converting; several tensors at once).
    pub produce_s: f64,
    /// Time the writer thread spent in `write` calls.
    pub write_s: f64,
    /// Time of the final `fsync`.
    pub sync_s: f64,
}

/// Write a GGUF v3 file at `path` atomically. `produce(i)` returns the raw ggml bytes of
/// `tensors[i]` (called once per tensor); their length is checked against the entry.
/// `general.alignment` must not be in `metadata` (the writer uses 32).
///
/// Tensors are produced in windows of a few at a time on rayon's pool while a writer thread
/// writes the previous window in file order, so converting and writing overlap and at most two
/// windows of tensor bytes are in memory.
pub fn write_gguf<F>(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[TensorEntry],
    produce: F,
) -> Result<WriteStats, GgufWriteError>
where
    F: Fn(usize) -> Result<Vec<u8>, String> + Sync,
{
    let invalid = |reason: String| GgufWriteError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        if k == "general.alignment" {
            return Err(invalid("general.alignment is set by the writer".into()));
        }
        put_str(&mut head, k);
        head.extend_from_slice(&type_code(v).to_le_bytes());
        put_value(&mut head, k, v).map_err(invalid)?;
    }
    let mut offset = 0u64;
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.name.len() > 64 {
            return Err(invalid(format!("tensor name {} is over 64 bytes", t.name)));
        }
        if t.shape.is_empty() || t.shape.len() > 4 {
            return Err(invalid(format!(
                "tensor {} has {} dimensions",
                t.name,
                t.shape.len()
            )));
        }
        let size = t.bytes().ok_or_else(|| {
            invalid(format!(
                "tensor {} of shape {:?} is not a whole number of {:?} blocks",
                t.name, t.shape, t.dtype
            ))
        })?;
        put_str(&mut head, &t.name);
        head.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in t.shape.iter().rev() {
            head.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        head.extend_from_slice(&ggml_type_code(t.dtype).to_le_bytes());
        head.extend_from_slice(&offset.to_le_bytes());
        sizes.push(size);
        offset += size + pad_len(size);
    }
    let pad = pad_len(head.len() as u64);
    head.extend(std::iter::repeat_n(0u8, pad as usize));

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".gguf")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let file = tmp.as_file();
    // Large writes: tensors arrive as whole buffers, the buffer only gathers the small pieces
    // (header, padding).
    let mut w = BufWriter::with_capacity(8 << 20, file);
    w.write_all(&head).map_err(io(path))?;

    let window = (rayon::current_num_threads() * 2).max(2);
    let mut stats = WriteStats::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, Vec<u8>)>>(1);
    let written = std::thread::scope(|s| {
        let sizes = &sizes;
        let writer = s.spawn(
            move || -> Result<(BufWriter<&std::fs::File>, f64), GgufWriteError> {
                let mut secs = 0.0;
                for batch in rx {
                    for (i, data) in batch {
                        let (t, size) = (&tensors[i], sizes[i]);
                        if data.len() as u64 != size {
                            return Err(GgufWriteError::Invalid {
                                path: path.to_path_buf(),
                                reason: format!(
                                    "tensor {}: {} bytes produced, {size} expected",
                                    t.name,
                                    data.len()
                                ),
                            });
                        }
                        let t0 = std::time::Instant::now();
                        w.write_all(&data).map_err(io(path))?;
                        w.write_all(&[0u8; ALIGNMENT as usize][..pad_len(size) as usize])
                            .map_err(io(path))?;
                        secs += t0.elapsed().as_secs_f64();
                    }
                }
                let t0 = std::time::Instant::now();
                w.flush().map_err(io(path))?;
                Ok((w, secs + t0.elapsed().as_secs_f64()))
            },
        );
        let t0 = std::time::Instant::now();
        let idx: Vec<usize> = (0..tensors.len()).collect();
        let mut failed = None;
        for chunk in idx.chunks(window) {
            let out: Vec<Result<Vec<u8>, String>> = chunk.par_iter().map(|&i| produce(i)).collect();
            let mut batch = Vec::with_capacity(chunk.len());
            for (&i, r) in chunk.iter().zip(out) {
                match r {
                    Ok(d) => batch.push((i, d)),
                    Err(e) => {
                        failed = Some(GgufWriteError::Producer(e));
                        break;
                    }
                }
            }
            // A closed channel means the writer failed: its error is reported below.
            if failed.is_some() || tx.send(batch).is_err() {
                break;
            }
        }
        drop(tx);
        stats.produce_s = t0.elapsed().as_secs_f64();
        let res = writer
            .join()
            .map_err(|_| invalid("the writer thread panicked".into()))
            .and_then(|r| r);
        match failed {
            Some(e) => Err(e),
            None => res,
        }
    });
    let (mut w, write_s) = written?;
    stats.write_s = write_s;
    stats.bytes = w.stream_position().map_err(io(path))?;
    drop(w);
    let t0 = std::time::Instant::now();
    file.sync_all().map_err(io(path))?;
    stats.sync_s = t0.elapsed().as_secs_f64();
    tmp.persist(path).map_err(|e| GgufWriteError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file;

    #[test]
    fn candle_reads_back_what_we_write() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.gguf");
        let meta = vec![
            (
                "general.architecture".to_string(),
                Value::String("llama".into()),
            ),
            ("x.count".to_string(), Value::U32(7)),
            ("x.eps".to_string(), Value::F32(1e-5)),
            ("x.flag".to_string(), Value::Bool(true)),
            (
                "x.list".to_string(),
                Value::Array(vec![Value::String("a b".into()), Value::String("c".into())]),
            ),
        ];
        let tensors = vec![
            TensorEntry {
                name: "a".into(),
                shape: vec![3],
                dtype: GgmlDType::F32,
            },
            TensorEntry {
                name: "b".into(),
                shape: vec![2, 32],
                dtype: GgmlDType::Q8_0,
            },
        ];
        let b = candle_core::Tensor::arange(0f32, 64., &candle_core::Device::Cpu)
            .and_then(|t| t.reshape((2, 32)))
            .expect("t");
        let qb = candle_core::quantized::QTensor::quantize(&b, GgmlDType::Q8_0).expect("q");
        let bytes = write_gguf(&path, &meta, &tensors, |i| {
            Ok(match i {
                0 => [1f32, 2., 3.]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                _ => qb.data().expect("data").to_vec(),
            })
        })
        .expect("write");
        assert_eq!(bytes.bytes, std::fs::metadata(&path).expect("meta").len());
        let mut f = std::fs::File::open(&path).expect("open");
        let c = gguf_file::Content::read(&mut f).expect("read");
        assert!(matches!(c.magic, gguf_file::VersionedMagic::GgufV3));
        assert_eq!(c.metadata["x.count"].to_u32().expect("u32"), 7);
        assert!(c.metadata["x.flag"].to_bool().expect("bool"));
        assert_eq!(c.tensor_infos["b"].shape.dims(), &[2, 32]);
        let t = c
            .tensor(&mut f, "b", &candle_core::Device::Cpu)
            .and_then(|q| q.dequantize(&candle_core::Device::Cpu))
            .expect("tensor");
        let back: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        assert!((back[63] - 63.).abs() < 0.3);
    }

    #[test]
    fn a_failed_producer_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.gguf");
        let tensors = vec![TensorEntry {
            name: "a".into(),
            shape: vec![4],
            dtype: GgmlDType::F32,
        }];
        let err = write_gguf(&path, &[], &tensors, |_| Err("boom".into())).expect_err("fails");
        assert!(err.to_string().contains("boom"));
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
