"""Drives a running `mlx-manager serve` with the official openai and anthropic Python SDKs.
Usage: check_sdks.py BASE_URL MODEL. Exits non-zero on the first failed check."""

import sys

import anthropic
import openai
from sdk_check import check, clients, done

base, model = sys.argv[1], sys.argv[2]
oa, an = clients(base)

# Models
ids = [m.id for m in oa.models.list()]
check(model in ids, f"models.list has {model}: {ids}")
check(oa.models.retrieve(model).id == model, "models.retrieve")

# Chat, non-streaming and streaming, same greedy text
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
r = oa.chat.completions.create(model=model, messages=msgs, max_tokens=10, temperature=0)
check(r.choices[0].finish_reason == "length", "chat finish_reason")
check(r.usage.completion_tokens == 10, "chat usage")
text = r.choices[0].message.content
parts, usage = [], None
stream = oa.chat.completions.create(
    model=model, messages=msgs, max_tokens=10, temperature=0, stream=True, stream_options={"include_usage": True}
)
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.content:
            parts.append(c.delta.content)
check("".join(parts) == text, "streamed chat text equals non-streamed")
check(usage is not None and usage.completion_tokens == 10, "stream usage chunk")

# Logprobs
r = oa.chat.completions.create(model=model, messages=msgs, max_tokens=3, temperature=0, logprobs=True)
check(len(r.choices[0].logprobs.content) == 3 and all(t.logprob <= 0 for t in r.choices[0].logprobs.content), "logprobs")

# Completions
r = oa.completions.create(model=model, prompt="The sea", max_tokens=5, temperature=0)
check(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5, "completions")
s = "".join(c.choices[0].text for c in oa.completions.create(model=model, prompt="The sea", max_tokens=5, temperature=0, stream=True))
check(s == r.choices[0].text, "streamed completion equals non-streamed")

# Embeddings (the SDK asks for base64 by default and decodes it)
e = oa.embeddings.create(model=model, input=["hello", "world"])
check(len(e.data) == 2 and len(e.data[0].embedding) > 0, "embeddings")
norm = sum(x * x for x in e.data[0].embedding) ** 0.5
check(abs(norm - 1) < 1e-3, f"embeddings are unit length ({norm})")
f = oa.embeddings.create(model=model, input="hello", encoding_format="float")
check(max(abs(a - b) for a, b in zip(f.data[0].embedding, e.data[0].embedding)) < 1e-6, "float and base64 agree")

# Errors the SDK maps to its exception types
try:
    oa.chat.completions.create(model="no-such-model", messages=msgs, max_tokens=2)
    check(False, "unknown model raises")
except openai.NotFoundError as err:
    check(err.status_code == 404 and err.code == "model_not_found", f"NotFoundError code {err.code}")
try:
    oa.chat.completions.create(model=model, messages=msgs, max_tokens=2, logit_bias={"42": 5})
    check(False, "unsupported parameter raises")
except openai.UnprocessableEntityError as err:
    check(err.param == "logit_bias", f"422 names the parameter ({err.param})")
try:
    oa.chat.completions.create(model=model, messages=msgs, max_tokens=2, temperature=-1)
    check(False, "bad temperature raises")
except openai.UnprocessableEntityError as err:
    check(err.param == "temperature", "422 names temperature")

# Anthropic messages (this SDK version takes sampling parameters only through extra_body)
m = an.messages.create(model=model, max_tokens=8, system="Be brief.", messages=[{"role": "user", "content": "Say hello."}], extra_body={"temperature": 0})
check(m.stop_reason == "max_tokens" and m.usage.output_tokens == 8, "messages")
with an.messages.stream(model=model, max_tokens=8, system="Be brief.", messages=[{"role": "user", "content": "Say hello."}], extra_body={"temperature": 0}) as st:
    streamed = "".join(st.text_stream)
    final = st.get_final_message()
check(streamed == m.content[0].text, "streamed message equals non-streamed")
check(final.stop_reason == "max_tokens", "stream final stop_reason")
try:
    an.messages.create(model="no-such-model", max_tokens=4, messages=[{"role": "user", "content": "x"}])
    check(False, "anthropic unknown model raises")
except anthropic.NotFoundError as err:
    check(err.status_code == 404 and err.body["error"]["type"] == "not_found_error", "anthropic NotFoundError body")
try:
    an.messages.create(model=model, max_tokens=4, messages=[{"role": "user", "content": "x"}], extra_body={"temperature": 5})
    check(False, "anthropic bad temperature raises")
except anthropic.UnprocessableEntityError as err:
    check(err.status_code == 422, "anthropic 422")

done()
