//! `mlx-manager make-tiny-model --family F` for every family the engine runs: the folder it
//! writes loads in our engine (`mlx-manager generate`) and in Python mlx-lm 0.32.2 alike, and both
//! decode the same greedy tokens — so the generated layout is mlx-lm's, not only our loader's.

mod support;

use std::path::Path;
use std::process::Command;

const PROMPT: &str = "5,100,200,300,17,42,99,3,8";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn tokens(json_line: &str) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(json_line.trim()).expect("JSON");
    serde_json::from_value(v["tokens"].clone()).expect("token ids")
}

fn assert_same_tokens(dir: &Path, family: &str, extra: &[&str]) {
    let bin = env!("CARGO_BIN_EXE_mlx-manager");
    run(Command::new(bin).args(["make-tiny-model", "--family", family]).args(extra).arg(dir));
    let ours = tokens(&run(Command::new(bin)
        .args(["generate", "--json", "--keep-quantized", "--max-tokens", "24", "--tokens", PROMPT, "--model"])
        .arg(dir)));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/mlx_lm_reference.py");
    let theirs = tokens(&run(Command::new(support::python())
        .arg(script)
        .args(["greedy", "--max-tokens", "24", "--tokens", PROMPT, "--model"])
        .arg(dir)));
    assert_eq!(ours.len(), 24, "{family} {extra:?}: stopped early");
    assert_eq!(ours, theirs, "{family} {extra:?}: our tokens differ from mlx-lm's on the generated folder");
}

#[test]
fn every_family_s_tiny_model_decodes_as_in_mlx_lm() {
    let tmp = tempfile::tempdir().unwrap();
    for family in mlx_manager_engine::family_names() {
        assert_same_tokens(&tmp.path().join(family), family, &[]);
    }
}

#[test]
fn quantized_and_16_bit_tiny_models_of_moe_and_hybrid_families() {
    let tmp = tempfile::tempdir().unwrap();
    for (family, extra) in [
        ("qwen3_moe", &["--bits", "4"][..]),
        ("gpt_oss", &["--bits", "8", "--dtype", "bf16"][..]),
        ("qwen3_next", &["--bits", "4", "--dtype", "bf16"][..]),
        ("gemma3_text", &["--bits", "4", "--shards", "2"][..]),
        ("gemma4_text", &["--bits", "4"][..]),
        ("deepseek_v3", &["--bits", "4"][..]),
        ("deepseek_v2", &["--bits", "4"][..]),
    ] {
        assert_same_tokens(&tmp.path().join(family), family, extra);
    }
}
