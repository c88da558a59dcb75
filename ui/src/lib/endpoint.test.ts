import { describe, expect, test } from "vitest";
import { endpointUrl, snippets } from "./endpoint";

const config = { host: "127.0.0.1", port: 10242, api_key: null, allowed_origins: [], metrics: false };

describe("endpoint", () => {
  test("the running listener's URL wins over the saved address", () => {
    expect(endpointUrl({ running: true, url: "http://127.0.0.1:43001", error: null }, config)).toBe("http://127.0.0.1:43001");
    expect(endpointUrl({ running: false, url: null, error: null }, config)).toBe("http://127.0.0.1:10242");
    expect(endpointUrl(null, { ...config, host: "0.0.0.0", port: 8080 })).toBe("http://127.0.0.1:8080");
    expect(endpointUrl(null, { ...config, host: "::1" })).toBe("http://[::1]:10242");
  });

  test("snippets name the model and the base URLs; the key only when one is set", () => {
    const s = snippets("http://127.0.0.1:10242", "tiny-llama", null);
    expect(s.openaiBase).toBe("http://127.0.0.1:10242/v1");
    expect(s.anthropicBase).toBe("http://127.0.0.1:10242");
    expect(s.curl).toContain("curl http://127.0.0.1:10242/v1/chat/completions");
    expect(s.curl).toContain('"model":"tiny-llama"');
    expect(s.curl).not.toContain("Authorization");
    expect(s.python).toContain('OpenAI(base_url="http://127.0.0.1:10242/v1", api_key="not-needed")');
    expect(s.python).toContain('model="tiny-llama"');

    const keyed = snippets("http://127.0.0.1:10242", "m", "mlxm-secret-key");
    expect(keyed.curl).toContain('-H "Authorization: Bearer mlxm-secret-key"');
    expect(keyed.python).toContain('api_key="mlxm-secret-key"');
  });
});
