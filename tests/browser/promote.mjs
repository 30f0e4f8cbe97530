// Drives the page's revisions panel in headless Chromium: waits until the
// pending revision has caught up (100 % applied) and its spec changes and
// comparison are shown, reads them, clicks Promote and waits for the page
// to say the new revision serves and nothing is built beside it.
//   node promote.mjs URL REVISION SCREENSHOT
import { launch } from "./launch.mjs";
const [url, revision, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1200 });
  await page.goto(url, { waitUntil: "load" });
  // Generous: the suite runs in parallel on a loaded 2-core machine.
  await page.waitForFunction(() => !document.querySelector("#promote-row").hidden
    && !document.querySelector("#promote").disabled
    && document.querySelectorAll("#comparison table").length > 0
    && !document.querySelector("#build").hidden
    && document.querySelector("#build-progress").dataset.percent === "100"
    && document.querySelectorAll("#spec-changes tbody tr").length > 0, { timeout: 90000 })
    .catch(async (e) => {
      const said = await page.$eval("#rollout-section", (el) => el.textContent).catch(() => "?");
      throw new Error(`no promotable revision with a comparison; the panel says: ${said}`, { cause: e });
    });
  const state = await page.$eval("#rollout-state", (el) => el.textContent);
  const tables = await page.$$eval("#comparison table", (ts) => ts.map((t) =>
    [...t.querySelectorAll("tr")].map((tr) => [...tr.children].map((c) => c.textContent))));
  const comparison = await page.$eval("#comparison", (el) => el.textContent);
  const build = await page.$eval("#build-state", (el) => el.textContent);
  const specChanges = await page.$$eval("#spec-changes tbody tr", (rows) =>
    rows.map((tr) => [...tr.children].map((c) => c.textContent)));
  const section = await page.$("#rollout-section");
  await section.screenshot({ path: screenshot.replace(/\.png$/, "-revisions.png") });
  await page.screenshot({ path: screenshot });
  await page.click("#promote");
  await page.waitForFunction((r) => document.querySelector("#promote-result").textContent.includes(r),
    { timeout: 30000 }, revision);
  await page.waitForFunction(() => document.querySelector("#build").hidden
    && document.querySelector("#promote-row").hidden, { timeout: 30000 });
  const result = await page.$eval("#promote-result", (el) => el.textContent);
  const status = await page.$eval("#status", (el) => el.textContent);
  const serving = await page.$eval("#revisions-serving", (el) => el.textContent);
  console.log(JSON.stringify({ state, tables, comparison, build, specChanges, result, status, serving }));
} finally {
  await browser.close();
}
