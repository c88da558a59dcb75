"""The reference side of the conformance tests and benchmarks: Python mlx-lm (and transformers'
chat templates) run on the same model folder as our engine. Prints JSON on stdout."""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _mlx():
    """mlx.core, with mx.gather_qmm shimmed for quantized MoE: mlx-lm 0.32.2 passes global_scale,
    mlx 0.32.2 does not take it, so a global_scale of None is dropped."""
    import mlx.core as mx

    if "global_scale" not in (mx.gather_qmm.__doc__ or "") and not hasattr(mx.gather_qmm, "shimmed"):
        gather_qmm = mx.gather_qmm

        def shim(*args, global_scale=None, **kwargs):
            if global_scale is not None:
                kwargs["global_scale"] = global_scale
            return gather_qmm(*args, **kwargs)

        shim.shimmed = True
        mx.gather_qmm = shim
    return mx


def greedy(args):
    mx = _mlx()
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, tokenizer = load(args.model)
    if args.dequantize:
        # What `mlx_lm.convert --dequantize` writes: the quantized layers made dense.
        from mlx_lm.utils import dequantize_model

        model = dequantize_model(model)
    prompt = mx.array([int(t) for t in args.tokens.split(",")])
    eos = set(tokenizer.eos_token_ids)
    out = []
    for (tok, _), _ in zip(generate_step(prompt, model, max_tokens=args.max_tokens), range(args.max_tokens)):
        tok = int(tok)
        if tok in eos:
            break
        out.append(tok)
    print(json.dumps({"tokens": out}))


def constrained(args):
    """Greedy decoding under a grammar, the reference way: mlx-lm's logits, llguidance's own
    Python matcher and mask (same tokenizer, the model's EOS ids), and its fast-forward tokens
    after each sampled one (2 to 16 of them, leaving room in max_tokens for one sampled after them)
    run through the model as one pass, as llguidance's interface suggests. Prints {"tokens": [...],
    "generation_tps": ...} (tokens after the first over the time after it, as the bench command)."""
    mx = _mlx()
    import llguidance
    import llguidance.hf
    import numpy as np
    from llguidance.numpy import allocate_token_bitmask, apply_token_bitmask_inplace, fill_next_token_bitmask
    from mlx_lm import load
    from mlx_lm.models.cache import make_prompt_cache

    model, tokenizer = load(args.model)
    eos = sorted(set(tokenizer.eos_token_ids))
    vocab = model.args.vocab_size
    lltok = llguidance.hf.from_tokenizer(tokenizer._tokenizer, n_vocab=vocab, eos_token=eos)
    kind, text = args.kind, args.grammar
    grammar = {
        "json_schema": lambda: llguidance.LLMatcher.grammar_from_json_schema(json.loads(text)),
        "lark": lambda: llguidance.LLMatcher.grammar_from_lark(text),
        "regex": lambda: llguidance.LLMatcher.grammar_from_regex(text),
    }[kind]()
    matcher = llguidance.LLMatcher(lltok, grammar)
    assert not matcher.is_error(), matcher.get_error()
    cache = make_prompt_cache(model)
    prompt = mx.array([[int(t) for t in args.tokens.split(",")]])
    logits = model(prompt, cache=cache)[:, -1, :]
    mask = allocate_token_bitmask(1, vocab)
    out = []
    first = None
    while len(out) < args.max_tokens:
        fill_next_token_bitmask(matcher, mask)
        row = np.array(logits.astype(mx.float32))
        apply_token_bitmask_inplace(row, mask)
        tok = int(np.argmax(row[0]))
        if tok in eos:
            break
        out.append(tok)
        if first is None:
            first = time.perf_counter()
        if len(out) == args.max_tokens:
            break
        assert matcher.consume_token(tok), matcher.get_error()
        logits = model(mx.array([[tok]]), cache=cache)[:, -1, :]
        forced = matcher.compute_ff_tokens()[: min(16, args.max_tokens - len(out) - 1)]
        forced = forced[: matcher.validate_tokens(forced)] if forced else []
        if len(forced) >= 2:
            assert matcher.consume_tokens(forced), matcher.get_error()
            out.extend(forced)
            logits = model(mx.array([forced]), cache=cache)[:, -1, :]
    end = time.perf_counter()
    tps = (len(out) - 1) / (end - first) if first is not None and len(out) > 1 else None
    print(json.dumps({"tokens": out, "generation_tps": tps}))


def validate(args):
    """Checks JSON texts against a JSON Schema: prints one error message (or null) per text."""
    import jsonschema

    schema = json.loads(args.schema)
    out = []
    for text in json.loads(args.texts):
        try:
            jsonschema.validate(json.loads(text), schema)
            out.append(None)
        except (ValueError, jsonschema.ValidationError) as e:
            out.append(str(e).splitlines()[0])
    print(json.dumps(out))


def _render(tok, messages, tools, add_generation_prompt, kwargs, template):
    """One apply_chat_template call: {"text": ...}, or {"error": message} where the template
    raises: raise_exception or any Jinja error, or a Python error an expression hits (a TypeError
    for `'a' + none`), which apply_chat_template passes on to its caller just the same."""
    import jinja2

    kwargs = dict(kwargs or {})
    if template is not None:
        kwargs["chat_template"] = template
    try:
        text = tok.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )
    except (jinja2.exceptions.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    return {"text": text}


def chat(args):
    """transformers' apply_chat_template on the folder's tokenizer. --template overrides the folder's
    template; --kwargs is a JSON object of extra template variables (what a request's
    chat_template_kwargs carries: enable_thinking, reasoning_effort, ...). A template that raises
    (raise_exception, or any Jinja error) prints {"error": message} instead of {"text": ...}."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    messages = json.loads(args.messages)
    tools = json.loads(args.tools) if args.tools else None
    kwargs = json.loads(args.kwargs) if args.kwargs else {}
    template = open(args.template, encoding="utf-8").read() if args.template else None
    print(json.dumps(_render(tok, messages, tools, not args.no_generation_prompt, kwargs, template)))


def chat_batch(args):
    """`chat` for many renderings in one process (importing transformers and loading the tokenizer
    dominate a single rendering). --cases is a JSON list (or "-": read it from stdin) of objects
    {"messages": [...], "tools": [...]?, "kwargs": {...}?, "add_generation_prompt": bool (default
    true), "template": path?}; a case's "template" overrides --template, which overrides the
    folder's template. Prints a JSON list with one {"text"} or {"error"} per case, in order."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    cases = json.loads(sys.stdin.read() if args.cases == "-" else args.cases)
    sources = {}

    def source(path):
        if path is None:
            return None
        if path not in sources:
            with open(path, encoding="utf-8") as f:
                sources[path] = f.read()
        return sources[path]

    results = [
        _render(
            tok,
            case["messages"],
            case.get("tools"),
            case.get("add_generation_prompt", True),
            case.get("kwargs"),
            source(case.get("template", args.template)),
        )
        for case in cases
    ]
    print(json.dumps(results))


def encode(args):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    print(json.dumps({"ids": tok.encode(args.text, add_special_tokens=not args.no_special)}))


def bench(args):
    """Prefill and decode speed of mlx-lm on a token prompt (greedy), median of runs."""
    mx = _mlx()
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, _ = load(args.model)
    prompt = mx.array([int(t) for t in args.tokens.split(",")])
    results = []
    for _ in range(args.warmup + args.runs):
        start = time.perf_counter()
        n = 0
        first = None
        for (tok, _), _ in zip(generate_step(prompt, model, max_tokens=args.max_tokens), range(args.max_tokens)):
            tok = int(tok)
            n += 1
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        results.append(
            {
                "prompt_tps": len(prompt) / (first - start),
                "generation_tps": (n - 1) / (end - first),
                "generated": n,
            }
        )
    print(json.dumps({"runs": results[args.warmup:]}))


def embed(args):
    """Mean-pooled, L2-normalised final hidden states (after the last norm), one input at a time."""
    mx = _mlx()
    from mlx_lm import load

    model, _ = load(args.model)
    vectors = []
    for seq in args.inputs.split(";"):
        x = mx.array([[int(t) for t in seq.split(",")]])
        v = model.model(x).astype(mx.float32).mean(axis=1)[0]
        v = v / mx.linalg.norm(v)
        vectors.append(v.tolist())
    print(json.dumps({"vectors": vectors}))


def pool_bench(args):
    """Load time, cold/warm time to first token and embeddings per second (mean-pooled,
    L2-normalised final hidden states, as our engine computes them) for mlx-lm on one model."""
    mx = _mlx()
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    prompt = mx.array([int(t) for t in args.tokens.split(",")])
    out = {"load_ms": [], "cold_first_token_ms": [], "warm_first_token_ms": [], "embed_per_s": {}}
    for _ in range(args.runs):
        start = time.perf_counter()
        model, _ = load(args.model)
        mx.eval(model.parameters())
        loaded = time.perf_counter()
        next(generate_step(prompt, model, max_tokens=1))
        first = time.perf_counter()
        out["load_ms"].append((loaded - start) * 1000)
        out["cold_first_token_ms"].append((first - start) * 1000)
        start = time.perf_counter()
        next(generate_step(prompt, model, max_tokens=1))
        out["warm_first_token_ms"].append((time.perf_counter() - start) * 1000)
    model, _ = load(args.model)
    for batch in [int(b) for b in args.batches.split(",")]:
        x = mx.array([[10 + (i * 37 + j * 11) % 400 for i in range(args.embed_len)] for j in range(batch)])
        rates = []
        for _ in range(args.runs + 1):
            start = time.perf_counter()
            h = model.model(x)
            v = h.mean(axis=1)
            v = v / mx.linalg.norm(v, axis=-1, keepdims=True)
            mx.eval(v)
            rates.append(batch / (time.perf_counter() - start))
        out["embed_per_s"][str(batch)] = rates[1:]
    print(json.dumps(out))


def make_model(args):
    """A tiny random-weight model built with mlx-lm's own class for a model_type, saved as
    mlx_lm.convert saves it (optionally cast and quantized) into a folder holding a tokenizer."""
    import contextlib
    from pathlib import Path

    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_map, tree_map_with_path
    from mlx_lm.utils import _get_classes, get_total_parameters, quantize_model, save_config, save_model

    mx = _mlx()
    out = Path(args.out)
    existing = json.loads((out / "config.json").read_text())
    config = {k: existing[k] for k in ("vocab_size", "eos_token_id", "bos_token_id") if k in existing}
    config.update(json.loads(args.config))
    if isinstance(config.get("text_config"), dict):
        # A wrapper class (kimi_k25) builds its text model from text_config alone: it needs the
        # tokenizer's vocabulary there too.
        for k in ("vocab_size",):
            if k in config:
                config["text_config"].setdefault(k, config[k])
    with contextlib.redirect_stdout(sys.stderr):  # mlx-lm prints progress
        mx.random.seed(args.seed)
        model_class, args_class = _get_classes(config)
        model_args = args_class.from_dict(config)
        model = model_class(model_args)

        def randomise(p):
            if not mx.issubdtype(p.dtype, mx.floating):
                return p
            if p.ndim >= 2:
                return mx.random.normal(p.shape, dtype=p.dtype) * p.shape[-1] ** -0.5
            return p + 0.1 * mx.random.normal(p.shape, dtype=p.dtype)

        model.update(tree_map(randomise, model.parameters()))
        # Zero the special tokens' rows of the embedding (and of an untied output head) so greedy
        # decoding of random weights never picks EOS.
        eos = config.get("eos_token_id", [])
        eos = eos if isinstance(eos, list) else [eos]
        for name, module in model.named_modules():
            if name.split(".")[-1] in ("embed_tokens", "lm_head") and isinstance(module, (nn.Embedding, nn.Linear)):
                module.weight[mx.array(eos, dtype=mx.int32)] = 0
        # Round-trip through sanitize as mlx_lm.load does (e.g. Gemma 3 drops a tied lm_head).
        weights = dict(tree_flatten(model.parameters()))
        if config.get("tie_word_embeddings", getattr(model_args, "tie_word_embeddings", False)):
            weights.pop("lm_head.weight", None)
        if hasattr(model, "sanitize"):
            weights = model.sanitize(weights)
        model.load_weights(list(weights.items()))

        dtype = getattr(mx, args.dtype)
        cast = getattr(model, "cast_predicate", lambda _: True)
        model.update(
            tree_map_with_path(
                lambda k, v: v.astype(dtype) if cast(k) and mx.issubdtype(v.dtype, mx.floating) else v,
                model.parameters(),
            )
        )
        if args.quantize:
            bits, group_size = (int(x) for x in args.quantize.split(","))
            model, config = quantize_model(model, config, group_size, bits)
        save_model(out, model)
        save_config(config, out / "config.json")
    print(json.dumps({"ok": True, "params": get_total_parameters(model)}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("greedy")
    g.add_argument("--model", required=True)
    g.add_argument("--tokens", required=True)
    g.add_argument("--max-tokens", type=int, default=48)
    g.add_argument("--dequantize", action="store_true", help="run the quantized layers dense")
    k = sub.add_parser("constrained")
    k.add_argument("--model", required=True)
    k.add_argument("--tokens", required=True)
    k.add_argument("--kind", choices=["json_schema", "lark", "regex"], required=True)
    k.add_argument("--grammar", required=True)
    k.add_argument("--max-tokens", type=int, default=64)
    v = sub.add_parser("validate")
    v.add_argument("--schema", required=True)
    v.add_argument("--texts", required=True)
    c = sub.add_parser("chat")
    c.add_argument("--model", required=True)
    c.add_argument("--messages", required=True)
    c.add_argument("--tools")
    c.add_argument("--template")
    c.add_argument("--no-generation-prompt", action="store_true")
    c.add_argument("--kwargs", help="JSON object of extra template variables (chat_template_kwargs)")
    cb = sub.add_parser("chat-batch")
    cb.add_argument("--model", required=True)
    cb.add_argument("--template", help="default template file for cases that name none")
    cb.add_argument(
        "--cases",
        required=True,
        help='JSON list of {messages, tools?, kwargs?, add_generation_prompt?, template?}, or "-" for stdin',
    )
    e = sub.add_parser("encode")
    e.add_argument("--model", required=True)
    e.add_argument("--text", required=True)
    e.add_argument("--no-special", action="store_true")
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--tokens", required=True)
    b.add_argument("--max-tokens", type=int, default=128)
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--warmup", type=int, default=1)
    em = sub.add_parser("embed")
    em.add_argument("--model", required=True)
    em.add_argument("--inputs", required=True, help="token ids, comma-separated; inputs separated by ';'")
    pb = sub.add_parser("pool-bench")
    pb.add_argument("--model", required=True)
    pb.add_argument("--tokens", required=True)
    pb.add_argument("--runs", type=int, default=5)
    pb.add_argument("--batches", default="1,8,32")
    pb.add_argument("--embed-len", type=int, default=32)
    mm = sub.add_parser("make-model")
    mm.add_argument("--out", required=True, help="existing folder with tokenizer files and a config.json")
    mm.add_argument("--config", required=True, help="JSON object of config.json fields, model_type included")
    mm.add_argument("--quantize", help="BITS,GROUP_SIZE, e.g. 4,64")
    mm.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    mm.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    {
        "greedy": greedy,
        "constrained": constrained,
        "validate": validate,
        "chat": chat,
        "chat-batch": chat_batch,
        "encode": encode,
        "bench": bench,
        "embed": embed,
        "pool-bench": pool_bench,
        "make-model": make_model,
    }[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
