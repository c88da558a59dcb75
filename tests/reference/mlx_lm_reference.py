"""The reference side of the conformance tests and benchmarks: Python mlx-lm (and transformers'
chat templates) run on the same model folder as our engine. Prints JSON on stdout."""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def greedy(args):
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, tokenizer = load(args.model)
    prompt = mx.array([int(t) for t in args.tokens.split(",")])
    eos = set(tokenizer.eos_token_ids)
    out = []
    for (tok, _), _ in zip(generate_step(prompt, model, max_tokens=args.max_tokens), range(args.max_tokens)):
        tok = int(tok)
        if tok in eos:
            break
        out.append(tok)
    print(json.dumps({"tokens": out}))


def chat(args):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    messages = json.loads(args.messages)
    tools = json.loads(args.tools) if args.tools else None
    kwargs = {}
    if args.template:
        kwargs["chat_template"] = open(args.template, encoding="utf-8").read()
    text = tok.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=not args.no_generation_prompt, **kwargs
    )
    print(json.dumps({"text": text}))


def encode(args):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    print(json.dumps({"ids": tok.encode(args.text, add_special_tokens=not args.no_special)}))


def bench(args):
    """Prefill and decode speed of mlx-lm on a token prompt (greedy), median of runs."""
    import mlx.core as mx
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
    import mlx.core as mx
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
    import mlx.core as mx
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


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("greedy")
    g.add_argument("--model", required=True)
    g.add_argument("--tokens", required=True)
    g.add_argument("--max-tokens", type=int, default=48)
    c = sub.add_parser("chat")
    c.add_argument("--model", required=True)
    c.add_argument("--messages", required=True)
    c.add_argument("--tools")
    c.add_argument("--template")
    c.add_argument("--no-generation-prompt", action="store_true")
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
    args = p.parse_args()
    {"greedy": greedy, "chat": chat, "encode": encode, "bench": bench, "embed": embed, "pool-bench": pool_bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
