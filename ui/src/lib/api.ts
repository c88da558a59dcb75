// Unwraps the generated commands' `{status, data | error}` results so callers can `await` them and
// show one sentence per typed error.
import type { CommandError } from "./bindings";
import { formatBytes } from "./format";

type CommandResult<T> = { status: "ok"; data: T } | { status: "error"; error: CommandError };

/** A command answered with a typed error. */
export class CommandFailure extends Error {
  constructor(readonly error: CommandError) {
    super(describeError(error));
  }
}

/** Awaits a generated command and returns its data, or throws `CommandFailure`. */
export async function call<T>(result: Promise<CommandResult<T>>): Promise<T> {
  const r = await result;
  if (r.status === "error") throw new CommandFailure(r.error);
  return r.data;
}

/** One sentence a person can act on. */
export function describeError(e: CommandError): string {
  switch (e.kind) {
    case "invalid":
      return e.message;
    case "model_not_found":
      return `No model named “${e.model}” is registered.`;
    case "insufficient_memory":
      return `Not enough memory for ${e.model}: needs ${formatBytes(e.needed_bytes)}, ${formatBytes(e.available_bytes)} available.`;
    case "model_load":
      return `${e.model} could not be loaded: ${e.message}`;
    case "bind":
      return `Cannot listen on ${e.address}: ${e.message}`;
    case "storage":
      return `Database error: ${e.message}`;
    case "export":
      return `Export to ${e.path} failed: ${e.message}`;
    case "engine_stopped":
      return "The inference engine has stopped; restart MLX Manager.";
    case "not_found":
    case "conflict":
    case "library":
    case "desktop":
      return e.message;
  }
}

/** The message of anything a command or the runtime threw. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The field a validation error is about, if any. */
export function invalidField(e: unknown): string | null {
  return e instanceof CommandFailure && e.error.kind === "invalid" ? e.error.field : null;
}
