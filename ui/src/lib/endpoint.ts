// What the welcome view shows about the local endpoint: its base URLs and ready-to-paste client
// snippets (curl, Python with the openai SDK), built from the server's address and API key.
import type { ServerConfig, ServerStatus } from "./bindings";

/** Where clients reach the server: the running listener's URL, else the saved address. */
export function endpointUrl(status: ServerStatus | null, config: ServerConfig): string {
  if (status?.running && status.url) return status.url;
  const host = config.host === "0.0.0.0" || config.host === "localhost" ? "127.0.0.1" : config.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.port}`;
}

export interface Snippets {
  /** OpenAI SDKs' `base_url`. */
  openaiBase: string;
  /** Anthropic SDKs' `base_url` (they add `/v1/messages`). */
  anthropicBase: string;
  curl: string;
  python: string;
}

/** Copy-ready client snippets for `model` on the endpoint at `url` (with the key when one is set). */
export function snippets(url: string, model: string, apiKey: string | null): Snippets {
  const openaiBase = `${url}/v1`;
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Hello!" }] });
  const auth = apiKey ? ` \\\n  -H "Authorization: Bearer ${apiKey}"` : "";
  const curl = `curl ${openaiBase}/chat/completions \\\n  -H "Content-Type: application/json"${auth} \\\n  -d '${body}'`;
  const python = [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${openaiBase}", api_key="${apiKey ?? "not-needed"}")`,
    "reply = client.chat.completions.create(",
    `    model="${model}",`,
    '    messages=[{"role": "user", "content": "Hello!"}],',
    ")",
    "print(reply.choices[0].message.content)",
  ].join("\n");
  return { openaiBase, anthropicBase: url, curl, python };
}
