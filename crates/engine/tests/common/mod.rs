//! Fixtures shared by the engine's integration tests: one engine thread per test binary, tiny
//! models written into temporary folders, and a helper that drains a generation.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_engine::PoolConfig;
use mlx_manager_engine::{
    Engine, EngineError, EngineHandle, FinishReason, GenerateRequest, GenerationEvent, GenerationParams,
    GenerationStream, Prompt, Usage,
};

/// The one engine (one MLX thread) of this test binary. Tests run in parallel and each loads
/// its own models, so the pool never evicts here (tests/pool.rs covers eviction).
pub fn engine() -> EngineHandle {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    // Quantized models run through libmlx's quantized products, as mlx-lm's do (the conformance
    // tests compare with it); tests/pool.rs covers the dense copy.
    let no_eviction =
        PoolConfig { max_loaded_models: usize::MAX, memory_budget_bytes: None, idle_ttl: None, dense_on_cpu: false };
    ENGINE.get_or_init(|| Engine::start_with(no_eviction).expect("engine starts")).handle()
}

/// A generated model folder that lives as long as the value.
pub struct TinyModel {
    pub dir: tempfile::TempDir,
    pub id: String,
}

impl TinyModel {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("model")
    }
}

/// Writes a model for `spec` and loads it into the shared engine under a fresh id.
pub async fn load_tiny(spec: TinySpec) -> TinyModel {
    let model = write_tiny(spec);
    engine().load(&model.id, model.path()).await.expect("tiny model loads");
    model
}

/// Writes a model without loading it.
pub fn write_tiny(spec: TinySpec) -> TinyModel {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_model(&dir.path().join("model"), &spec).expect("tiny model is written");
    let id = dir.path().file_name().expect("name").to_string_lossy().into_owned();
    TinyModel { dir, id }
}

pub fn spec(family: TinyFamily) -> TinySpec {
    TinySpec::new(family)
}

/// Everything a generation produced.
#[derive(Debug)]
pub struct Outcome {
    pub ids: Vec<u32>,
    pub pieces: Vec<String>,
    pub text: String,
    pub logprobs: Vec<Option<f32>>,
    pub finish: FinishReason,
    pub usage: Usage,
}

pub async fn generate(model: &str, prompt: Prompt, params: GenerationParams) -> Result<Outcome, EngineError> {
    try_collect(engine().generate(GenerateRequest { model: model.to_string(), prompt, params })?).await
}

/// Reads a generation to its end.
pub async fn collect(stream: GenerationStream) -> Outcome {
    try_collect(stream).await.unwrap()
}

async fn try_collect(mut stream: GenerationStream) -> Result<Outcome, EngineError> {
    let (mut ids, mut pieces, mut logprobs, mut text) = (Vec::new(), Vec::new(), Vec::new(), String::new());
    while let Some(event) = stream.next().await {
        match event? {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Token { id, text: piece, logprob } => {
                ids.push(id);
                text.push_str(&piece);
                pieces.push(piece);
                logprobs.push(logprob);
            }
            GenerationEvent::Done { text: piece, finish_reason, usage, .. } => {
                text.push_str(&piece);
                return Ok(Outcome { ids, pieces, text, logprobs, finish: finish_reason, usage });
            }
        }
    }
    panic!("stream ended without Done");
}

pub fn tokens(ids: &[u32]) -> Prompt {
    Prompt::Tokens(ids.to_vec())
}

pub fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams { max_tokens, ..GenerationParams::default() }
}

/// The Python of the reference venv that scripts/setup creates.
pub fn reference_python() -> PathBuf {
    let venv = std::env::var_os("MLX_MANAGER_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
        cache.join("mlx-manager/venv")
    });
    let python = venv.join("bin/python3");
    assert!(python.is_file(), "the reference venv is missing at {}: run scripts/setup", venv.display());
    python
}

/// Runs tests/reference/mlx_lm_reference.py and parses its JSON.
pub fn reference(args: &[&str]) -> serde_json::Value {
    reference_with_env(args, &[])
}

/// [`reference`] with extra environment variables for the Python process.
pub fn reference_with_env(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/mlx_lm_reference.py");
    let out = std::process::Command::new(reference_python())
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("reference runs");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reference prints JSON")
}
