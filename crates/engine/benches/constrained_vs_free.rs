//! What a grammar costs: decode tok/s of the same model generating freely and under a JSON
//! Schema constraint (llguidance masks), alternating in one run, on the tiny test model and the
//! 512-wide bench model; the difference per token is the constraint's overhead (mask
//! computation not hidden behind the forward pass, plus applying it). A third grammar, records
//! whose keys and punctuation are forced, shows what appending forced tokens without a forward
//! pass each gains; both grammars are also run by the reference (llguidance's Python matcher on
//! mlx-lm's logits, fast-forwarding the same way) for a side-by-side ratio.
//!
//! Real vocabularies are far larger than the tiny models' (Qwen2.5/3: 151,643 tokens + specials,
//! 151,936 rows; gpt-oss: ~200k), and llguidance's mask walks the whole token trie. So the bench
//! also extends the tiny model's tokenizer.json to a realistic size (BENCH_BIG_VOCAB tokens,
//! default Qwen2.5's 151,665, on BENCH_BIG_ROWS = 151,936 rows) with generated word pieces
//! (see [`extend_vocabulary`]; nothing is downloaded), decodes with it on the 64-wide model, and
//! times llguidance's mask per token directly on both vocabularies.
//!
//! `cargo bench -p mlx-manager-engine --bench constrained_vs_free` (scripts/bench-engine runs it
//! too). Environment: BENCH_ROUNDS (default 3) × BENCH_RUNS (3), BENCH_PROMPT (64), BENCH_GEN
//! (128), BENCH_LAYERS (4), BENCH_BIG_VOCAB (151665; 0 skips the large vocabulary),
//! BENCH_BIG_ROWS (151936), BENCH_MASK_STEPS (400, per mask measurement).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use common::{bench_model, env_usize, median};
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use mlx_manager_engine::tiny::{write_tiny_model, TinySpec};
use mlx_manager_engine::{
    bounded_whitespace, Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, Grammar, Prompt,
};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A schema the output cannot finish before `gen` tokens: one long string.
fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {"text": {"type": "string", "minLength": 100000}}, "required": ["text"]})
}

/// Records whose keys and punctuation only one way on allows, a few free letters between them (as
/// in a tool call's name and keys): most tokens are forced, which the engine appends without a
/// forward pass each. More records than the run can write, so it never stops early.
const RECORDS: &str = r#"start: record{100}
record: "{\"first_name\": \"" NAME "\", \"last_name\": \"" NAME "\", \"email_address\": \"" USER "@example.com\"}\n"
NAME: /[A-Z][a-z]{2,7}/
USER: /[a-z]{3,8}/
"#;

/// The same without a length bound: the string's lexer state repeats from token to token, which
/// llguidance's one-entry mask cache can reuse (the bound makes every step a new state).
fn schema_unbounded() -> serde_json::Value {
    json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
}

fn decode_tps(handle: &EngineHandle, prompt: &[u32], gen: usize, grammar: Option<Grammar>, runs: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for run in 0..runs + 1 {
        let params = GenerationParams { max_tokens: gen, grammar: grammar.clone(), ..GenerationParams::default() };
        let mut prompt = prompt.to_vec();
        prompt[0] = 10 + run as u32;
        let mut stream = handle
            .generate(GenerateRequest { model: "bench".into(), prompt: Prompt::Tokens(prompt), params })
            .expect("generate");
        while let Some(event) = stream.blocking_next() {
            if let GenerationEvent::Done { usage, .. } = event.expect("event") {
                assert_eq!(usage.completion_tokens, gen, "generation stopped early");
                if run > 0 {
                    out.push(usage.generation_tps());
                }
            }
        }
    }
    out
}

/// The reference's decode tok/s under `grammar` (`kind`: json_schema or lark): llguidance's Python
/// matcher on mlx-lm's logits, fast-forwarding forced tokens as the engine does
/// (tests/reference/mlx_lm_reference.py `constrained`), one run after one warm-up.
fn reference_tps(path: &Path, prompt: &[u32], gen: usize, kind: &str, grammar: &str) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/mlx_lm_reference.py");
    let tokens: Vec<String> = prompt.iter().map(u32::to_string).collect();
    let mut last = 0.0;
    for _ in 0..2 {
        let out = std::process::Command::new(common::python())
            .arg(&script)
            .args(["constrained", "--model", path.to_str().expect("utf-8 path"), "--tokens", &tokens.join(",")])
            .args(["--kind", kind, "--grammar", grammar, "--max-tokens", &gen.to_string()])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(json["tokens"].as_array().map(Vec::len), Some(gen), "the reference stopped early");
        last = json["generation_tps"].as_f64().expect("tok/s");
    }
    last
}

/// GPT-2's byte-level alphabet: the character that stands for each byte in tokenizer.json.
fn byte_chars() -> Vec<char> {
    let printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars = vec!['\0'; 256];
    for &b in &printable {
        chars[b as usize] = char::from_u32(b).unwrap();
    }
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            chars[b as usize] = char::from_u32(256 + n).unwrap();
            n += 1;
        }
    }
    chars
}

/// Word-piece-like text, as bytes: pronounceable pseudo-words of 1 to 4 syllables (most with a
/// leading space, some capitalized or upper-case), numbers, code and punctuation runs, and CJK
/// runs of 1 to 3 characters (three bytes each), roughly the mix of a real multilingual BPE.
fn piece(rng: &mut impl Rng) -> Vec<u8> {
    const ONSETS: &[&str] = &[
        "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "w", "x", "y", "z",
        "bl", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gl", "gr", "pl", "pr", "sc", "sh", "sk", "sl", "sm", "sn",
        "sp", "st", "str", "sw", "th", "tr", "tw", "wh", "wr",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "y", "ai", "ea", "ee", "ie", "oa", "oo", "ou", "au", "ei"];
    const CODAS: &[&str] =
        &["", "", "", "n", "r", "s", "t", "l", "m", "ng", "nd", "st", "ck", "rd", "x", "tion", "ing", "ed"];
    const CODE: &[&str] = &[
        "(", ")", "{", "}", "[", "]", ";", ",", ".", ":", "=", "==", "->", "=>", "::", "()", "();", "\",", "\":", "//",
        "/*", "*/", "#", "_", "__", "<", ">", "</", "/>", "\n", "\n\n", "\t", "    ", "        ", "'", "\"", "`",
        "```", "!", "?", "-", "--", "+", "*", "&", "&&", "||", "%", "$", "@", "\\", "\\n",
    ];
    let kind = rng.random_range(0..100);
    let mut s = String::new();
    if kind < 70 {
        if rng.random_bool(0.6) {
            s.push(' ');
        }
        for _ in 0..rng.random_range(1..=4) {
            s.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
            s.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
            s.push_str(CODAS[rng.random_range(0..CODAS.len())]);
        }
        match rng.random_range(0..10) {
            0 | 1 => {
                // ASCII so far: capitalize the first letter.
                let at = usize::from(s.starts_with(' '));
                s = format!("{}{}{}", &s[..at], s[at..at + 1].to_uppercase(), &s[at + 1..]);
            }
            2 => s = s.to_uppercase(),
            _ => {}
        }
    } else if kind < 78 {
        if rng.random_bool(0.5) {
            s.push(' ');
        }
        s.push_str(&rng.random_range(0..1000).to_string());
    } else if kind < 85 {
        for _ in 0..rng.random_range(1..=3) {
            s.push_str(CODE[rng.random_range(0..CODE.len())]);
        }
    } else {
        for _ in 0..rng.random_range(1..=3) {
            s.push(char::from_u32(rng.random_range(0x4E00..0x9FA6)).unwrap());
        }
    }
    s.into_bytes()
}

/// Extends the byte-level BPE in `dir/tokenizer.json` to `target` tokens (specials included):
/// generated pieces ([`piece`]) are added with a merge each, splitting a piece after its longest
/// prefix already in the vocabulary and adding the rest first (so every merge's parts exist, as
/// the tokenizers crate requires, and the vocabulary gains the suffixes real BPEs have too).
/// New ids follow the existing ones; the special tokens keep theirs. Returns the token count.
fn extend_vocabulary(dir: &Path, target: usize, seed: u64) -> usize {
    let path = dir.join("tokenizer.json");
    let mut tok: Value = serde_json::from_slice(&std::fs::read(&path).expect("read tokenizer.json")).expect("json");
    let chars = byte_chars();
    let added = tok["added_tokens"].as_array().map_or(0, |a| a.len());
    let model = tok["model"].as_object_mut().expect("model");
    let pairs = model["merges"].as_array().and_then(|m| m.first()).is_none_or(|m| m.is_array());
    let mut vocab: Vec<(String, u32)> = model["vocab"]
        .as_object()
        .expect("vocab")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("id") as u32))
        .collect();
    let mut known: HashSet<String> = vocab.iter().map(|(k, _)| k.clone()).collect();
    let mut next = vocab.iter().map(|(_, id)| id + 1).max().unwrap_or(0).max(known.len() as u32);
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Ids run from 0 to `next` (the added tokens are in the trained vocab).
    assert!(added <= next as usize, "added tokens outside the model's vocabulary");
    while (next as usize) < target {
        let text: Vec<char> = piece(&mut rng).into_iter().map(|b| chars[b as usize]).collect();
        // Iteratively: add `text`, adding its missing suffixes first.
        let mut stack = vec![text];
        while let Some(w) = stack.pop() {
            let s: String = w.iter().collect();
            if w.len() < 2 || known.contains(&s) || next as usize >= target {
                continue;
            }
            let k = (1..w.len()).rev().find(|&k| known.contains(&w[..k].iter().collect::<String>())).unwrap_or(1);
            let (a, b): (String, String) = (w[..k].iter().collect(), w[k..].iter().collect());
            if !known.contains(&a) || !known.contains(&b) {
                stack.push(w.clone());
                for part in [&w[k..], &w[..k]] {
                    if !known.contains(&part.iter().collect::<String>()) {
                        stack.push(part.to_vec());
                    }
                }
                continue;
            }
            known.insert(s.clone());
            vocab.push((s, next));
            next += 1;
            merges.push((a, b));
        }
    }
    let map = model["vocab"].as_object_mut().unwrap();
    for (k, id) in vocab.iter().skip(map.len()) {
        map.insert(k.clone(), json!(id));
    }
    let list = model["merges"].as_array_mut().expect("merges");
    for (a, b) in merges {
        list.push(if pairs { json!([a, b]) } else { json!(format!("{a} {b}")) });
    }
    std::fs::write(&path, serde_json::to_vec(&tok).unwrap()).expect("write tokenizer.json");
    let check = tokenizers::Tokenizer::from_file(&path).expect("the extended tokenizer loads");
    check.get_vocab_size(true)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct MaskTimes {
    build_ms: f64,
    first_us: f64,
    mask_us: Vec<f64>,
    logits_us: Vec<f64>,
    allowed: usize,
}

/// llguidance's mask per token, as the engine computes it (constraint.rs's Guide and
/// Constraint): the model's vocabulary as a token environment, the schema's matcher, then per
/// step `compute_mask_or_eos` and the additive logits row built from it (take_mask), each timed,
/// and a random allowed token (quotes and specials left out, so the string goes on) consumed.
fn mask_times(model: &Path, schema: Value, steps: usize) -> MaskTimes {
    let config: Value = serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let rows = config["vocab_size"].as_u64().unwrap() as usize;
    let eos = config["eos_token_id"].as_u64().unwrap() as u32;
    let t = Instant::now();
    let mut bytes = toktrie_hf_tokenizers::ByteTokenizer::from_file(model.join("tokenizer.json")).expect("toktrie");
    bytes.set_eos_tokens(&[eos]);
    let env = bytes.into_tok_env(Some(rows)).expect("tok env");
    let mut factory = ParserFactory::new_simple(&env).expect("factory");
    factory.quiet();
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let trie = env.tok_trie();
    let parser = factory.create_parser(TopLevelGrammar::from_json_schema(bounded_whitespace(schema))).expect("parser");
    let mut matcher = Matcher::new(Ok(parser));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    let prefix = trie.greedy_tokenize(br#"{"text": ""#);
    let (mut first_us, mut mask_us, mut logits_us, mut allowed) = (0.0, Vec::new(), Vec::new(), 0);
    for step in 0..steps + 1 {
        let t = Instant::now();
        let mask = matcher.compute_mask_or_eos().expect("mask");
        let d = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let mut add = vec![f32::NEG_INFINITY; rows];
        mask.iter_set_entries(|i| {
            if i < rows {
                add[i] = 0.0;
            }
        });
        std::hint::black_box(&add);
        let l = t.elapsed().as_secs_f64() * 1e6;
        let mut ids = Vec::new();
        mask.iter_set_entries(|i| {
            let bytes = trie.token(i as u32);
            if i as u32 != eos && !bytes.is_empty() && !bytes.contains(&b'"') && bytes[0] != 0xff {
                ids.push(i as u32)
            }
        });
        if step == 0 {
            first_us = d;
        } else {
            mask_us.push(d);
            logits_us.push(l);
            allowed = allowed.max(mask.num_set());
        }
        // The opening `{"text": "` first (random whitespace would take a while), then text.
        let token = match prefix.get(step) {
            Some(&t) => t,
            None => ids[rng.random_range(0..ids.len())],
        };
        matcher.consume_token(token).expect("consume");
    }
    MaskTimes { build_ms, first_us, mask_us, logits_us, allowed }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (rounds, runs) = (env_usize("BENCH_ROUNDS", 3), env_usize("BENCH_RUNS", 3));
    let (prompt_len, gen, layers) =
        (env_usize("BENCH_PROMPT", 64), env_usize("BENCH_GEN", 128), env_usize("BENCH_LAYERS", 4));
    let (big, big_rows, steps) = (
        env_usize("BENCH_BIG_VOCAB", 151_665),
        env_usize("BENCH_BIG_ROWS", 151_936),
        env_usize("BENCH_MASK_STEPS", 400),
    );
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| 10 + (i * 37) % 400).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // The models: (label, path, hidden); the large vocabulary on the 64-wide model (where a mask's
    // cost would show most), its embedding and output rows padded to cover it.
    let mut models = Vec::new();
    for hidden in [64, 512] {
        let path = bench_model(&dir.path().join(format!("h{hidden}")), hidden, layers);
        let tok = tokenizers::Tokenizer::from_file(path.join("tokenizer.json")).unwrap();
        let tokens = tok.get_vocab_size(true);
        models.push((format!("llama fp32, hidden {hidden}, {layers} layers, {tokens} tokens"), path, hidden));
    }
    if big > 0 {
        let path = dir.path().join("big");
        write_tiny_model(&path, &TinySpec { vocab_rows: Some(big_rows), ..TinySpec::bench(64, layers) })
            .expect("model");
        let t = Instant::now();
        let tokens = extend_vocabulary(&path, big, 22);
        eprintln!("vocabulary extended to {tokens} tokens in {:.1} s", t.elapsed().as_secs_f64());
        models.push((format!("llama fp32, hidden 64, {layers} layers, {tokens} tokens / {big_rows} rows"), path, 64));
    }

    println!("Mask per token (llguidance compute_mask_or_eos; µs), {steps} steps of a random walk through the string, after the first:");
    println!(
        "| vocabulary | schema | trie build | first mask | mask p50 | mask p95 | logits row p50 | allowed tokens |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (label, path, hidden) in &models {
        if *hidden != 64 {
            continue; // same vocabulary as the 64-wide model
        }
        for (name, s) in [("minLength 100000 (the decode bench's)", schema()), ("no length bound", schema_unbounded())]
        {
            let m = mask_times(path, s, steps);
            println!(
                "| {} | {name} | {:.0} ms | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                label.split(", ").last().unwrap(),
                m.build_ms,
                m.first_us,
                percentile(m.mask_us.clone(), 0.5),
                percentile(m.mask_us, 0.95),
                percentile(m.logits_us, 0.5),
                m.allowed
            );
        }
    }

    println!();
    println!("{prompt_len}-token prompt, {gen} tokens generated; median of {} runs each, alternating", rounds * runs);
    println!(
        "| model | free decode tok/s | JSON Schema decode tok/s | ratio | overhead per token | forced-heavy records tok/s | ratio to free |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut against = Vec::new();
    for (label, path, _) in &models {
        let engine = Engine::start().expect("engine");
        let handle = engine.handle();
        handle.load_blocking("bench", path).expect("load");
        let (mut free, mut constrained, mut records) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ref_schema, mut ref_records) = (Vec::new(), Vec::new());
        let bounded = bounded_whitespace(schema()).to_string();
        for _ in 0..rounds {
            free.extend(decode_tps(&handle, &prompt, gen, None, runs));
            constrained.extend(decode_tps(&handle, &prompt, gen, Some(Grammar::JsonSchema(schema())), runs));
            records.extend(decode_tps(&handle, &prompt, gen, Some(Grammar::Lark(RECORDS.into())), runs));
            ref_schema.push(reference_tps(path, &prompt, gen, "json_schema", &bounded));
            ref_records.push(reference_tps(path, &prompt, gen, "lark", RECORDS));
        }
        let (f, c, r) = (median(free), median(constrained), median(records));
        let overhead_us = (1.0 / c - 1.0 / f) * 1e6;
        println!("| {label} | {f:.1} | {c:.1} | {:.2}× | {overhead_us:.0} µs | {r:.1} | {:.2}× |", c / f, r / f);
        let (rs, rr) = (median(ref_schema), median(ref_records));
        against.push(format!("| {label} | {c:.1} | {rs:.1} | {:.2}× | {r:.1} | {rr:.1} | {:.2}× |", c / rs, r / rr));
    }
    println!();
    println!("Against the reference (llguidance's Python matcher on mlx-lm's logits, forced tokens fast-forwarded too), median of {rounds} runs each:");
    println!("| model | ours JSON Schema tok/s | reference | ratio | ours records tok/s | reference | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in against {
        println!("{row}");
    }
}
