// The first run and the app's place in the desktop, in Chromium with mocked IPC: the welcome view
// on an empty model set (endpoint, copy buttons, the model library, the tiny model), the App
// section's switches, and every section fitting the default window width without horizontal
// scrolling.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { calls, openWindow } from "./harness.mjs";

/** Records what the page copies instead of touching the real clipboard. */
const recordClipboard = (page) =>
  page.evaluate(() => {
    window.__copied = [];
    Object.defineProperty(navigator, "clipboard", { value: { writeText: async (t) => void window.__copied.push(t) }, configurable: true });
  });

describe("first run", () => {
  test("with no model the window opens on the welcome view: endpoint, copy buttons, the library and the tiny model", async () => {
    const { page, errors } = await openWindow({ models: [] });
    await page.getByTestId("welcome-no-models").waitFor();
    assert.equal(await page.getByTestId("tab-welcome").getAttribute("aria-selected"), "true");
    assert.equal(await page.getByTestId("welcome-url").textContent(), "http://127.0.0.1:10242");
    assert.equal(await page.getByTestId("welcome-openai-base").textContent(), "http://127.0.0.1:10242/v1");
    assert.equal(await page.getByTestId("welcome-anthropic-base").textContent(), "http://127.0.0.1:10242");

    await recordClipboard(page);
    for (const id of ["copy-url", "copy-openai-base", "copy-anthropic-base", "copy-curl", "copy-python"]) {
      await page.getByTestId(id).click();
      await page.getByTestId(id).filter({ hasText: "Copied" }).waitFor();
    }
    const copied = await page.evaluate(() => window.__copied);
    assert.deepEqual(copied.slice(0, 3), ["http://127.0.0.1:10242", "http://127.0.0.1:10242/v1", "http://127.0.0.1:10242"]);
    assert.match(copied[3], /^curl http:\/\/127\.0\.0\.1:10242\/v1\/chat\/completions/);
    assert.match(copied[4], /OpenAI\(base_url="http:\/\/127\.0\.0\.1:10242\/v1"/);

    // Linux offers the tiny model: once written, the snippets call it and the welcome note goes.
    await page.getByTestId("welcome-tiny").click();
    await page.getByTestId("welcome-message").filter({ hasText: "tiny-llama is ready" }).waitFor();
    assert.equal((await calls(page, "install_tiny_model")).length, 1);
    assert.equal(await page.getByTestId("welcome-no-models").count(), 0);
    assert.match(await page.getByTestId("welcome-curl").textContent(), /"model":"tiny-llama"/);

    // The model library is one click away.
    await page.getByTestId("tab-welcome").click();
    await page.getByTestId("tab-audit").click();
    await page.getByTestId("tab-welcome").click();
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("Browse models opens the Models section; on a Mac there is no tiny model; with models the window opens on the audit log", async () => {
    const { page, errors } = await openWindow({ models: [], os: "macos" });
    await page.getByTestId("welcome-no-models").waitFor();
    assert.equal(await page.getByTestId("welcome-tiny").count(), 0);
    await page.getByTestId("welcome-browse").click();
    await page.getByTestId("models-search-input").waitFor();
    assert.equal(await page.getByTestId("tab-models").getAttribute("aria-selected"), "true");
    await page.close();

    const other = await openWindow({ entries: 3 });
    await other.page.getByTestId("audit-row").first().waitFor();
    assert.equal(await other.page.getByTestId("tab-audit").getAttribute("aria-selected"), "true");
    assert.deepEqual([...errors, ...other.errors], []);
    await other.page.close();
  });
});

describe("app section", () => {
  test("launch at login and the Dock icon apply at once; a refusal puts the switch back", async () => {
    const { page, errors } = await openWindow();
    await page.getByTestId("tab-app").click();
    const login = page.getByTestId("launch-at-login");
    assert.equal(await login.isChecked(), false);
    assert.match(await page.getByTestId("dock-icon-hint").textContent(), /no effect on Linux/);
    await login.check();
    await page.getByTestId("desktop-message").filter({ hasText: "Saved" }).waitFor();
    await page.getByTestId("dock-icon").check();
    await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "set_desktop_settings").length === 2);
    assert.deepEqual(await calls(page, "set_desktop_settings"), [
      { desktop: { launch_at_login: true, show_dock_icon: false } },
      { desktop: { launch_at_login: true, show_dock_icon: true } },
    ]);
    assert.equal(await login.isChecked(), true);
    await page.close();

    const refused = await openWindow({ loginRefused: true, os: "macos" });
    await refused.page.getByTestId("tab-app").click();
    assert.match(await refused.page.getByTestId("dock-icon-hint").textContent(), /Dock and the app switcher/);
    await refused.page.getByTestId("launch-at-login").click();
    await refused.page.getByTestId("desktop-message").filter({ hasText: "permission denied" }).waitFor();
    assert.equal(await refused.page.getByTestId("launch-at-login").isChecked(), false);
    assert.deepEqual([...errors, ...refused.errors], []);
    await refused.page.close();
  });
});

/** What sticks out horizontally: the page itself, scroll containers wider than their box, and
 *  elements (outside those containers) past the section's right edge. Ellipsised cells are fine. */
const horizontalOverflow = () => {
  const found = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth) found.push(`the page scrolls: ${doc.scrollWidth} > ${doc.clientWidth}`);
  const main = document.querySelector("main");
  const edge = main.getBoundingClientRect().right;
  const describe = (el) => `${el.tagName.toLowerCase()}${el.dataset.testid ? `[${el.dataset.testid}]` : ""}.${el.className}`;
  const walk = (el) => {
    const style = getComputedStyle(el);
    if (style.overflowX === "auto" || style.overflowX === "scroll") {
      if (el.scrollWidth > el.clientWidth) found.push(`${describe(el)} scrolls: ${el.scrollWidth} > ${el.clientWidth}`);
      return;
    }
    if (style.overflowX !== "visible" || el.classList.contains("sr-only")) return;
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > edge + 0.5) found.push(`${describe(el)} ends at ${box.right} > ${edge}`);
    for (const child of el.children) walk(child);
  };
  for (const child of main.children) walk(child);
  return found;
};

describe("layout", () => {
  test("at the default window width (1060 px) no section scrolls or sticks out horizontally", async () => {
    const { page, errors } = await openWindow({ entries: 60 }, { width: 1060, height: 760 });
    await page.getByTestId("audit-row").first().waitFor();
    const sections = await page.locator("[role=tab]").evaluateAll((tabs) => tabs.map((t) => t.dataset.testid));
    assert.ok(sections.length >= 9, `${sections}`);
    const problems = [];
    for (const tab of sections) {
      await page.getByTestId(tab).click();
      await page.locator("#panel section").first().waitFor();
      if (tab === "tab-models") {
        // With results and downloads on screen, not just the empty search.
        await page.getByTestId("models-search-input").fill("mlx");
        await page.getByTestId("models-search").click();
        await page.getByTestId("model-result").first().waitFor();
      }
      for (const p of await page.evaluate(horizontalOverflow)) problems.push(`${tab}: ${p}`);
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(errors, []);
    await page.close();
  });
});
