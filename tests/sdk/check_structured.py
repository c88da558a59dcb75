"""Structured output and forced tool calls with the official SDKs, on a tiny random-weight model
(which writes valid JSON only if decoding is really constrained). Usage:
check_structured.py BASE_URL MODEL
MODEL is a random tiny model under a Hermes-style template (Qwen2.5's). Exits non-zero on the
first failed check."""

import json
import sys

import anthropic
import jsonschema
import openai
from sdk_check import check, clients, done

base, model = sys.argv[1:3]
oa, an = clients(base)

pet = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "kind": {"enum": ["cat", "dog"]},
        "age": {"type": "integer", "minimum": 1, "maximum": 20},
        "owner": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
    },
    "required": ["name", "kind", "age", "owner", "tags"],
    "additionalProperties": False,
}
ask = [{"role": "user", "content": "Describe a pet."}]
fmt = {"type": "json_schema", "json_schema": {"name": "pet", "schema": pet, "strict": True}}

# `owner` does not say whether it takes other properties: strict mode closes it (a random model
# would otherwise add keys to it until max_tokens).
closed = json.loads(json.dumps(pet))
closed["properties"]["owner"]["additionalProperties"] = False

# response_format json_schema, whole and streamed, for several seeds.
for seed in range(4):
    r = oa.chat.completions.create(model=model, messages=ask, response_format=fmt, seed=seed, max_tokens=1000)
    text = r.choices[0].message.content
    jsonschema.validate(json.loads(text), closed)
    check(r.choices[0].finish_reason == "stop", f"schema answer ends by itself: {text!r}")
    parts = []
    for chunk in oa.chat.completions.create(
        model=model, messages=ask, response_format=fmt, seed=seed, max_tokens=1000, stream=True
    ):
        for c in chunk.choices:
            parts.append(c.delta.content or "")
    jsonschema.validate(json.loads("".join(parts)), pet)
    check(True, "streamed schema answer validates")

# json_object.
# Seeded: an unseeded random model may keep one object open past max_tokens.
r = oa.chat.completions.create(model=model, messages=ask, response_format={"type": "json_object"}, seed=0, max_tokens=1000)
check(isinstance(json.loads(r.choices[0].message.content), dict), "json_object is an object")

# Forced tool calls: `required` with two tools, and a named one, whole and streamed.
weather = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"]}
tools = [
    {"type": "function", "function": {"name": "get_weather", "parameters": weather}},
    {"type": "function", "function": {"name": "get_pet", "parameters": pet}},
]
schemas = {"get_weather": weather, "get_pet": pet}
for seed in range(3):
    r = oa.chat.completions.create(model=model, messages=ask, tools=tools, tool_choice="required", seed=seed, max_tokens=1000)
    calls = r.choices[0].message.tool_calls or []
    check(len(calls) >= 1 and r.choices[0].finish_reason == "tool_calls", f"required makes a call: {r.choices[0]}")
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
named = {"type": "function", "function": {"name": "get_weather"}}
with oa.chat.completions.stream(model=model, messages=ask, tools=tools, tool_choice=named, max_tokens=1000, parallel_tool_calls=False) as s:
    final = s.get_final_completion()
calls = final.choices[0].message.tool_calls
check(len(calls) == 1 and calls[0].function.name == "get_weather", f"named call: {calls}")
jsonschema.validate(json.loads(calls[0].function.arguments), weather)

# The anthropic SDK: tool_choice any and tool.
an_tools = [{"name": t["function"]["name"], "input_schema": t["function"]["parameters"]} for t in tools]
for choice in [{"type": "any"}, {"type": "tool", "name": "get_pet"}]:
    m = an.messages.create(model=model, max_tokens=1000, messages=ask, tools=an_tools, tool_choice=choice)
    uses = [b for b in m.content if b.type == "tool_use"]
    check(m.stop_reason == "tool_use" and uses, f"anthropic {choice}: {m.content}")
    if choice["type"] == "tool":
        check(uses[0].name == "get_pet", "anthropic named tool")
    for u in uses:
        jsonschema.validate(u.input, schemas[u.name])

# The anthropic SDK's structured outputs (output_config.format; Anthropic's are strict), whole
# and streamed.
out = {"format": {"type": "json_schema", "schema": pet}}
m = an.messages.create(model=model, max_tokens=1000, messages=ask, output_config=out)
check(m.stop_reason == "end_turn", f"anthropic structured answer ends by itself: {m.content}")
jsonschema.validate(json.loads(m.content[0].text), closed)
with an.messages.stream(model=model, max_tokens=1000, messages=ask, output_config=out) as s:
    final = s.get_final_message()
jsonschema.validate(json.loads(final.content[0].text), closed)
check(True, "anthropic structured output validates")

# A schema that cannot be enforced is a 422 naming it, before anything runs.
try:
    bad = {"type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": "object", "properties": {"a": {"type": "strng"}}}}}
    oa.chat.completions.create(model=model, messages=ask, response_format=bad, max_tokens=5)
    check(False, "an invalid schema must be refused")
except openai.UnprocessableEntityError as e:
    check(e.body and "response_format.json_schema.schema" in json.dumps(e.body), f"names the field: {e.body}")
try:
    an.messages.create(model=model, max_tokens=5, messages=ask, output_config={"format": {"type": "json_schema", "schema": bad["json_schema"]["schema"]}})
    check(False, "an invalid output_config schema must be refused")
except anthropic.UnprocessableEntityError as e:
    check(e.body and "output_config.format.schema" in json.dumps(e.body), f"names the anthropic field: {e.body}")

done()
