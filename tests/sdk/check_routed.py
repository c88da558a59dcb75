"""Drives a front `mlx-manager serve` whose routing rules send models to upstream servers, with the
official openai and anthropic Python SDKs. Usage:
check_routed.py BASE_URL TO_ANTHROPIC_MODEL TO_OPENAI_MODEL EXPECTED_TEXT
TO_ANTHROPIC_MODEL is routed to an Anthropic-format upstream (the openai SDK's requests are
translated); TO_OPENAI_MODEL to an OpenAI-format one (the anthropic SDK's requests are translated).
EXPECTED_TEXT is the upstream's own greedy answer. Exits non-zero on the first failed check."""

import sys

import anthropic
import openai
from sdk_check import check, clients, done

base, to_anthropic, to_openai, expected = sys.argv[1:5]
oa, an = clients(base)

msgs = [{"role": "user", "content": "Say hello."}]

# openai SDK -> Anthropic-format upstream
r = oa.chat.completions.create(model=to_anthropic, messages=msgs, max_tokens=8, temperature=0)
check(r.choices[0].message.content == expected, f"openai sdk text {r.choices[0].message.content!r}")
check(r.choices[0].finish_reason == "length", "openai sdk finish_reason")
check(r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 0, "openai sdk usage")
parts, usage = [], None
for chunk in oa.chat.completions.create(
    model=to_anthropic, messages=msgs, max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True}
):
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.content:
            parts.append(c.delta.content)
check("".join(parts) == expected, "openai sdk streamed text")
check(usage is not None and usage.completion_tokens == 8, "openai sdk stream usage")

# anthropic SDK -> OpenAI-format upstream
m = an.messages.create(model=to_openai, max_tokens=8, messages=msgs, extra_body={"temperature": 0})
check(m.content[0].text == expected, f"anthropic sdk text {m.content[0].text!r}")
check(m.stop_reason == "max_tokens", "anthropic sdk stop_reason")
check(m.usage.output_tokens == 8 and m.usage.input_tokens > 0, "anthropic sdk usage")
with an.messages.stream(model=to_openai, max_tokens=8, messages=msgs, extra_body={"temperature": 0}) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check(text == expected, "anthropic sdk streamed text")
check(final.stop_reason == "max_tokens" and final.usage.output_tokens == 8, "anthropic sdk stream final message")

# Upstream errors reach the SDKs as their own exception types.
try:
    oa.chat.completions.create(model=to_anthropic, messages=msgs, max_tokens=8, temperature=1.5)
    check(False, "temperature 1.5 on an Anthropic upstream must fail")
except openai.UnprocessableEntityError as e:
    check("temperature" in str(e), f"upstream validation message: {e}")

done()
