// What the Playwright files share: the built UI served by `vite preview`, Debian's Chromium, and
// a window whose Tauri IPC is mock-ipc.js. Importing it registers the before/after hooks of the
// file's run (node --test runs each file in its own process).
import { after, before } from "node:test";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const ui = path.resolve(here, "../..");
const mockIpc = readFileSync(path.join(here, "mock-ipc.js"), "utf8");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let preview;
let browser;
let baseUrl;

before(async () => {
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}/`;
  preview = spawn(process.execPath, [path.join(ui, "node_modules/vite/bin/vite.js"), "preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"], { cwd: ui, stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("vite preview did not start in 20 s")), 20_000);
    preview.stdout.on("data", (d) => {
      if (String(d).includes(String(port))) {
        clearTimeout(timer);
        resolve();
      }
    });
    preview.once("exit", (code) => reject(new Error(`vite preview exited with ${code}`)));
  });
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  preview?.kill();
});

/** A fresh window with `entries` audit rows in the mock backend. */
export async function openWindow(config = {}, viewport = { width: 1200, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.addInitScript(`window.__MOCK_CONFIG__ = ${JSON.stringify(config)};`);
  await page.addInitScript(mockIpc);
  await page.goto(baseUrl);
  await page.getByTestId("server-status").filter({ hasText: "Serving on" }).waitFor();
  return { page, errors };
}

export const calls = (page, cmd) => page.evaluate((c) => window.__calls.filter((x) => x.cmd === c).map((x) => x.args), cmd);

