import { describe, expect, test } from "vitest";
import type { RoutingRule } from "./bindings";
import { describeRoute, formatHeaders, moveRule, parseHeaders } from "./routing";

const rule = (id: number): RoutingRule => ({ id, pattern: `p${id}`, match_type: "exact", priority: 0, backend: "local", backend_model: null, fallback: null, fallback_model: null, enabled: true });

describe("extra headers", () => {
  test("round-trip through the text form, blank lines ignored", () => {
    const parsed = parseHeaders("OpenAI-Organization: org-1\n\nX-Team:  blue \n");
    expect(parsed).toEqual({ headers: { "OpenAI-Organization": "org-1", "X-Team": "blue" } });
    expect(formatHeaders({ "OpenAI-Organization": "org-1", "X-Team": "blue" })).toBe("OpenAI-Organization: org-1\nX-Team: blue");
  });
  test("a line without a colon or with a bad name names the line", () => {
    expect(parseHeaders("X-Ok: 1\nnot a header")).toEqual({ error: "line 2: write it as “Name: value”" });
    expect(parseHeaders("Bad Name: 1")).toEqual({ error: "line 1: “Bad Name” is not a header name" });
  });
});

describe("moveRule", () => {
  const rules = [rule(1), rule(2), rule(3)];
  test("moves up and down", () => {
    expect(moveRule(rules, 2, -1)).toEqual([1, 3, 2]);
    expect(moveRule(rules, 0, 1)).toEqual([2, 1, 3]);
  });
  test("stays put at the ends", () => {
    expect(moveRule(rules, 0, -1)).toEqual([1, 2, 3]);
    expect(moveRule(rules, 2, 1)).toEqual([1, 2, 3]);
  });
});

describe("describeRoute", () => {
  test("no rule", () => {
    expect(describeRoute({ model: "m", rule_id: null, backend: "local", backend_type: "local", backend_model: "m", fallback: null, fallback_model: null })).toBe(
      "No rule matches: the local engine serves it.",
    );
  });
  test("rule with model mapping and fallback", () => {
    expect(
      describeRoute({ model: "gpt-4o", rule_id: 3, backend: "openai", backend_type: "openai", backend_model: "gpt-4o-2024", fallback: "local", fallback_model: "qwen" }),
    ).toBe("Rule #3: openai serves it as “gpt-4o-2024”; fallback the local engine as “qwen”.");
  });
});
