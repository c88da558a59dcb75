//! Reads a model folder's safetensors (one file or an index of shards), checks every tensor's name
//! and shape against the architecture, and hands out the layers. A wrong checkpoint is a typed
//! error naming the file and tensor, never garbage output: MLX's own loader silently ignores
//! unknown keys and never reports missing ones.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use mlx_rs::{Array, Dtype};

use super::layers::{Embedding, Linear, RmsNorm};
use crate::config::Quantization;
use crate::error::{EngineError, Result};

/// The safetensors files of a model folder, in a stable order.
pub(crate) fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| EngineError::Io { path: index.clone(), source })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::InvalidConfig { path: index.clone(), message: e.to_string() })?;
        let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| EngineError::InvalidConfig {
            path: index.clone(),
            message: "no `weight_map` object".into(),
        })?;
        let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| EngineError::Io { path: dir.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EngineError::MissingTensor {
            path: dir.to_path_buf(),
            tensor: "*.safetensors (no weight files)".into(),
        });
    }
    Ok(files)
}

/// Checks a safetensors file's header against its length (catches truncated downloads before MLX
/// reads the data).
fn check_file(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
    // SAFETY: the map is read-only and dropped before this function returns; a concurrent writer
    // could only make the check fail, not corrupt memory we hand out.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
    safetensors::SafeTensors::read_metadata(&map)
        .map(|_| ())
        .map_err(|e| EngineError::CorruptWeights { path: path.to_path_buf(), message: e.to_string() })
}

/// Where a multimodal checkpoint keeps its text model.
const TEXT_MODEL: &str = "language_model.";

/// Weights of a multimodal checkpoint's other towers, which a text engine leaves alone.
const OTHER_TOWERS: &[&str] = &[
    "vision_tower",
    "model.visual",
    "multi_modal_projector",
    // Kimi K2.5's (mlx-lm's `kimi_k25.sanitize`).
    "mm_projector",
    "vision_model",
    "audio_tower",
    "mtp.",
    // Gemma 4's (mlx-lm's `gemma4.sanitize` drops them with or without the `model.` prefix).
    "embed_vision",
    "embed_audio",
    "vision_embedder",
    "model.vision_tower",
    "model.audio_tower",
    "model.multi_modal_projector",
    "model.embed_vision",
    "model.embed_audio",
    "model.vision_embedder",
];

/// A tensor a family's builder asks for, as make-tiny-model records it: its name (the module's,
/// without `.weight`, when `quantizable`), and its shape (unpacked).
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Tensor name, or module name when `quantizable`.
    pub name: String,
    /// Shape of the (unpacked) values.
    pub shape: Vec<i32>,
    /// A matrix the model's quantization packs (as mlx-lm's `quantize_model` would).
    pub quantizable: bool,
}

/// Where a recording [`WeightSet`] writes down what it was asked for.
pub(crate) type Record = std::rc::Rc<std::cell::RefCell<Vec<Wanted>>>;

/// All tensors of a model, with the file each came from, consumed as layers are built.
pub(crate) struct WeightSet {
    dir: PathBuf,
    tensors: HashMap<String, (Array, PathBuf)>,
    /// `language_model.` when the checkpoint is a multimodal model's (its text model's weights
    /// live under it), else empty.
    prefix: String,
    /// Recording instead of reading (make-tiny-model): every tensor asked for is answered with
    /// zeros of its shape and written down here.
    record: Option<Record>,
    /// Per-module quantization that differs from the model's (mlx-lm writes these into
    /// config.json's `quantization`, e.g. an 8-bit MoE router in a 4-bit model).
    overrides: HashMap<String, Quantization>,
    /// Hand quantized modules out dense (see [`WeightSet::expanding`]).
    expand: bool,
    /// Quantized modules announced dense by [`WeightSet::quantization_of`] while expanding, by
    /// prefix: their `.weight` is dequantized when it is taken.
    expanded: HashMap<String, Quantization>,
}

impl WeightSet {
    pub(crate) fn load(dir: &Path) -> Result<WeightSet> {
        let mut tensors = HashMap::new();
        for file in weight_files(dir)? {
            if !file.is_file() {
                return Err(EngineError::Io {
                    path: file,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "weight shard listed but absent"),
                });
            }
            check_file(&file)?;
            let arrays = Array::load_safetensors(&file)
                .map_err(|e| EngineError::CorruptWeights { path: file.clone(), message: e.to_string() })?;
            for (name, array) in arrays {
                // Qwen3.5's transformers layout keeps the text model under `model.language_model`.
                let name = match name.strip_prefix("model.language_model.") {
                    Some(rest) => format!("{TEXT_MODEL}model.{rest}"),
                    None => name,
                };
                tensors.insert(name, (array, file.clone()));
            }
        }
        let prefix = if tensors.keys().any(|k| k.starts_with(TEXT_MODEL)) { TEXT_MODEL } else { "" };
        Ok(WeightSet {
            dir: dir.to_path_buf(),
            tensors,
            overrides: HashMap::new(),
            prefix: prefix.to_string(),
            record: None,
            expand: false,
            expanded: HashMap::new(),
        })
    }

    /// A weight set that answers every request with zeros and writes it down in `record`.
    pub(crate) fn recording(record: Record) -> WeightSet {
        WeightSet {
            dir: PathBuf::from("(recording)"),
            tensors: HashMap::new(),
            overrides: HashMap::new(),
            prefix: String::new(),
            record: Some(record),
            expand: false,
            expanded: HashMap::new(),
        }
    }

    fn zeros(shape: &[i32], dtype: Option<Dtype>) -> Result<Array> {
        Ok(mlx_rs::ops::zeros_dtype(shape, dtype.unwrap_or(Dtype::Float32))?)
    }

    /// With config.json's per-module quantization entries (`"model.layers.0.mlp.gate":
    /// {"group_size": 64, "bits": 8}`).
    pub(crate) fn with_overrides(mut self, config: &serde_json::Value) -> Result<WeightSet> {
        if let Some(map) = config.get("quantization").and_then(|q| q.as_object()) {
            for (module, v) in map {
                if let Ok(q) = serde_json::from_value::<Quantization>(v.clone()) {
                    let mode = v.get("mode").and_then(|m| m.as_str()).unwrap_or("affine");
                    if mode != "affine" || q.check().is_err() {
                        return Err(EngineError::InvalidConfig {
                            path: self.dir.join("config.json"),
                            message: format!(
                                "quantization of `{module}` (bits {}, group {}, mode `{mode}`) is not supported",
                                q.bits, q.group_size
                            ),
                        });
                    }
                    self.overrides.insert(module.clone(), q);
                }
            }
        }
        Ok(self)
    }

    /// With `expand`, every quantized module is handed out dense: its weights dequantized once
    /// here, in its scales' dtype, exactly as mlx-lm's `dequantize_model` does (the numbers of
    /// `mlx_lm.convert --dequantize`). The layers then never see the packed form, whatever their
    /// kind (linear, embedding, experts, per-head projections). Why: see `DenseCopy` in pool.rs.
    pub(crate) fn expanding(mut self, expand: bool) -> WeightSet {
        self.expand = expand;
        self
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(&format!("{}{name}", self.prefix))
    }

    /// Removes a tensor, checking its shape (and, for packed weights, its dtype).
    fn take(&mut self, name: &str, shape: &[i32], dtype: Option<Dtype>) -> Result<Array> {
        if let Some((prefix, q)) = name.strip_suffix(".weight").and_then(|p| self.expanded.remove_entry(p)) {
            let (cols, lead) = shape.split_last().ok_or_else(|| EngineError::TensorShape {
                path: self.dir.clone(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                actual: Vec::new(),
            })?;
            let (weight, scales, biases) = self.packed_shaped(&prefix, lead, *cols, q)?;
            return Ok(mlx_rs::ops::dequantize(&weight, &scales, &biases, q.group_size, q.bits)?);
        }
        if let Some(record) = &self.record {
            record.borrow_mut().push(Wanted { name: name.to_string(), shape: shape.to_vec(), quantizable: false });
            return Self::zeros(shape, dtype);
        }
        let (array, path) = self
            .tensors
            .remove(&format!("{}{name}", self.prefix))
            .ok_or_else(|| EngineError::MissingTensor { path: self.dir.clone(), tensor: name.to_string() })?;
        if array.shape() != shape || dtype.is_some_and(|d| array.dtype() != d) {
            return Err(EngineError::TensorShape {
                path,
                tensor: name.to_string(),
                expected: shape.to_vec(),
                actual: array.shape().to_vec(),
            });
        }
        Ok(array)
    }

    /// How the module under `prefix` is stored: quantized (with the model's parameters or its
    /// own override) when the checkpoint has its scales, else dense.
    pub(crate) fn quantization_of(
        &mut self,
        prefix: &str,
        q: Option<Quantization>,
        cols: i32,
    ) -> Result<Option<Quantization>> {
        if self.record.is_some() {
            // mlx-lm quantizes every matrix whose rows split into whole groups.
            return Ok(q.filter(|q| cols % q.group_size == 0));
        }
        if !self.has(&format!("{prefix}.scales")) {
            return Ok(None);
        }
        let q = match self.overrides.get(&format!("{}{prefix}", self.prefix)) {
            Some(own) => *own,
            None => q.ok_or_else(|| EngineError::InvalidConfig {
                path: self.dir.join("config.json"),
                message: format!("`{prefix}` is quantized but config.json has no `quantization`"),
            })?,
        };
        if self.expand {
            self.expanded.insert(prefix.to_string(), q);
            return Ok(None);
        }
        Ok(Some(q))
    }

    fn packed(&mut self, prefix: &str, rows: i32, cols: i32, q: Quantization) -> Result<(Array, Array, Array)> {
        self.packed_shaped(prefix, &[rows], cols, q)
    }

    /// Packed weights of `lead` × `cols` values (lead: `[rows]`, or `[experts, rows]`).
    fn packed_shaped(
        &mut self,
        prefix: &str,
        lead: &[i32],
        cols: i32,
        q: Quantization,
    ) -> Result<(Array, Array, Array)> {
        let shape = |last: i32| lead.iter().copied().chain([last]).collect::<Vec<i32>>();
        if let Some(record) = &self.record {
            record.borrow_mut().push(Wanted { name: prefix.to_string(), shape: shape(cols), quantizable: true });
            return Ok((
                Self::zeros(&shape(cols * q.bits / 32), Some(Dtype::Uint32))?,
                Self::zeros(&shape(cols / q.group_size), None)?,
                Self::zeros(&shape(cols / q.group_size), None)?,
            ));
        }
        Ok((
            self.take(&format!("{prefix}.weight"), &shape(cols * q.bits / 32), Some(Dtype::Uint32))?,
            self.take(&format!("{prefix}.scales"), &shape(cols / q.group_size), None)?,
            self.take(&format!("{prefix}.biases"), &shape(cols / q.group_size), None)?,
        ))
    }

    /// Every expert's packed weights, `[experts, rows, cols]` unpacked.
    pub(crate) fn packed_experts(
        &mut self,
        prefix: &str,
        experts: i32,
        rows: i32,
        cols: i32,
        q: Quantization,
    ) -> Result<(Array, Array, Array)> {
        self.packed_shaped(prefix, &[experts, rows], cols, q)
    }

    /// A dense tensor of exactly `shape`.
    pub(crate) fn take_shaped(&mut self, name: &str, shape: &[i32]) -> Result<Array> {
        self.take(name, shape, None)
    }

    pub(crate) fn linear(
        &mut self,
        prefix: &str,
        in_dim: i32,
        out_dim: i32,
        bias: bool,
        q: Option<Quantization>,
    ) -> Result<Linear> {
        let bias = if bias { Some(self.take(&format!("{prefix}.bias"), &[out_dim], None)?) } else { None };
        match self.quantization_of(prefix, q, in_dim)? {
            Some(q) => {
                let (weight, scales, biases) = self.packed(prefix, out_dim, in_dim, q)?;
                Ok(Linear::Quantized { weight, scales, biases, bias, q })
            }
            None => {
                let weight = self.take(&format!("{prefix}.weight"), &[out_dim, in_dim], None)?;
                Ok(Linear::dense(weight, bias))
            }
        }
    }

    pub(crate) fn embedding(
        &mut self,
        prefix: &str,
        vocab: i32,
        dim: i32,
        q: Option<Quantization>,
    ) -> Result<Embedding> {
        match self.quantization_of(prefix, q, dim)? {
            Some(q) => {
                let (weight, scales, biases) = self.packed(prefix, vocab, dim, q)?;
                Ok(Embedding::Quantized { weight, scales, biases, q })
            }
            None => {
                let weight = self.take(&format!("{prefix}.weight"), &[vocab, dim], None)?;
                Ok(Embedding::Dense { t: weight.t(), weight })
            }
        }
    }

    /// An RMSNorm; with `plus_one`, Gemma's, which scales by `1 + w` (added once here, in the
    /// weight's dtype, as mlx-lm adds it at every call).
    pub(crate) fn norm(&mut self, prefix: &str, dim: i32, eps: f32, plus_one: bool) -> Result<RmsNorm> {
        let weight = self.take(&format!("{prefix}.weight"), &[dim], None)?;
        let weight = if plus_one { Array::from_f32(1.0).as_dtype(weight.dtype())?.add(&weight)? } else { weight };
        Ok(RmsNorm { weight, eps })
    }

    /// Whether the checkpoint holds a tensor under `prefix` (e.g. an untied `lm_head`).
    pub(crate) fn has_prefix(&self, prefix: &str) -> bool {
        self.record.is_none() && self.has(&format!("{prefix}.weight"))
    }

    /// Drops tensors every loader ignores; anything else left over is a checkpoint of another shape.
    pub(crate) fn finish(mut self, tied: bool) -> Result<()> {
        let head = format!("{}lm_head.", self.prefix);
        self.tensors.retain(|name, _| {
            !(name.contains("rotary_emb.inv_freq")
                || tied && name.starts_with(&head)
                || OTHER_TOWERS.iter().any(|t| name.starts_with(t)))
        });
        let mut left: Vec<_> = self.tensors.into_iter().collect();
        left.sort_by(|a, b| a.0.cmp(&b.0));
        match left.into_iter().next() {
            Some((tensor, (_, path))) => Err(EngineError::UnexpectedTensor { path, tensor }),
            None => Ok(()),
        }
    }
}
