"""Tool calls and reasoning with the official openai and anthropic Python SDKs: whole and streamed
(the SDKs' own stream accumulators must rebuild the full call), a multi-turn conversation with
tool results, and reasoning fields. Usage:
check_tools.py BASE_URL OPENAI_AGENT OPENAI_THINKER ANTHROPIC_AGENT ANTHROPIC_THINKER
The agent models answer with a short text and a call get_weather(city="Paris", days=3); the
thinker models reason, then answer "It is sunny." (scripted tiny models). The openai SDK uses the
OPENAI_* names and the anthropic SDK the ANTHROPIC_* ones, so a routed endpoint can send each to
an upstream of the other API. Exits non-zero on the first failed check."""

import json
import sys

from sdk_check import check, clients, done

base, oa_agent, oa_thinker, an_agent, an_thinker = sys.argv[1:6]
oa, an = clients(base)

WEATHER = {"city": "Paris", "days": 3}
params = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
oa_tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": params}}]
an_tools = [{"name": "get_weather", "description": "Weather", "input_schema": params}]
ask = [{"role": "user", "content": "Weather in Paris?"}]

# openai SDK: a whole answer with a call.
r = oa.chat.completions.create(model=oa_agent, messages=ask, tools=oa_tools, max_tokens=40, temperature=0)
msg = r.choices[0].message
check(r.choices[0].finish_reason == "tool_calls", f"openai finish_reason {r.choices[0].finish_reason}")
check(len(msg.tool_calls or []) == 1, f"openai one tool call: {msg}")
call = msg.tool_calls[0]
check(call.type == "function" and call.function.name == "get_weather", f"openai call {call}")
check(json.loads(call.function.arguments) == WEATHER, f"openai arguments {call.function.arguments}")
check("<tool_call>" not in (msg.content or ""), f"no markup in content {msg.content!r}")

# openai SDK: streamed, rebuilt by the SDK's accumulator.
with oa.chat.completions.stream(model=oa_agent, messages=ask, tools=oa_tools, max_tokens=40, temperature=0) as s:
    final = s.get_final_completion()
fc = final.choices[0]
check(fc.finish_reason == "tool_calls", "openai streamed finish_reason")
check(fc.message.tool_calls[0].function.name == "get_weather", "openai streamed call name")
check(json.loads(fc.message.tool_calls[0].function.arguments) == WEATHER, "openai streamed arguments")
check(fc.message.tool_calls[0].id == fc.message.tool_calls[0].id.strip() != "", "openai streamed call id")

# openai SDK: the tool's result goes back; the history is rendered (a longer prompt).
history = ask + [msg.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
r2 = oa.chat.completions.create(model=oa_agent, messages=history, tools=oa_tools, max_tokens=40, temperature=0)
check(r2.usage.prompt_tokens > r.usage.prompt_tokens, f"openai turn 2 prompt {r2.usage.prompt_tokens}")
check(r2.choices[0].message.tool_calls[0].function.name == "get_weather", "openai turn 2 answer")

# openai SDK: reasoning.
r = oa.chat.completions.create(model=oa_thinker, messages=ask, max_tokens=2000, reasoning_effort="low")
m = r.choices[0].message
reasoning = getattr(m, "reasoning_content", None) or (m.model_extra or {}).get("reasoning_content")
check(reasoning and reasoning.strip() == "The user asks about the weather.", f"openai reasoning {reasoning!r}")
check(m.content.strip() == "It is sunny.", f"openai answer after reasoning {m.content!r}")
parts = []
for chunk in oa.chat.completions.create(
    model=oa_thinker, messages=ask, max_tokens=2000, reasoning_effort="low", stream=True
):
    for c in chunk.choices:
        extra = getattr(c.delta, "reasoning_content", None) or (c.delta.model_extra or {}).get("reasoning_content")
        if extra:
            parts.append(extra)
check("".join(parts).strip() == "The user asks about the weather.", f"openai streamed reasoning {parts}")

# anthropic SDK: a whole answer with a tool_use block.
m = an.messages.create(model=an_agent, max_tokens=40, messages=ask, tools=an_tools, extra_body={"temperature": 0})
check(m.stop_reason == "tool_use", f"anthropic stop_reason {m.stop_reason}")
uses = [b for b in m.content if b.type == "tool_use"]
check(len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == WEATHER, f"anthropic tool_use {m.content}")

# anthropic SDK: streamed, rebuilt by the SDK (input_json_delta accumulated into input).
with an.messages.stream(model=an_agent, max_tokens=40, messages=ask, tools=an_tools, extra_body={"temperature": 0}) as s:
    final = s.get_final_message()
uses = [b for b in final.content if b.type == "tool_use"]
check(final.stop_reason == "tool_use" and uses and uses[0].input == WEATHER, f"anthropic streamed {final.content}")

# anthropic SDK: the tool result goes back.
history = ask + [
    {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C, sunny"}]},
]
m2 = an.messages.create(model=an_agent, max_tokens=40, messages=history, tools=an_tools, extra_body={"temperature": 0})
check(m2.usage.input_tokens > m.usage.input_tokens, f"anthropic turn 2 prompt {m2.usage.input_tokens}")
check(m2.stop_reason == "tool_use", "anthropic turn 2 answer")

# anthropic SDK: extended thinking.
thinking = {"type": "enabled", "budget_tokens": 1024}
m = an.messages.create(model=an_thinker, max_tokens=2000, messages=ask, thinking=thinking)
kinds = [b.type for b in m.content]
check(kinds == ["thinking", "text"], f"anthropic thinking blocks {kinds}")
check(m.content[0].thinking.strip() == "The user asks about the weather.", "anthropic thinking text")
check(m.content[1].text.strip() == "It is sunny.", "anthropic answer after thinking")
with an.messages.stream(model=an_thinker, max_tokens=2000, messages=ask, thinking=thinking) as s:
    final = s.get_final_message()
check([b.type for b in final.content] == ["thinking", "text"], f"anthropic streamed thinking {final.content}")

done()
