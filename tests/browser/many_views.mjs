// The console with many views: the time from navigation until every view is
// listed with its health, then filtering and sorting work on the full list.
//   node many_views.mjs URL COUNT LAST_NAME SCREENSHOT
import { launch } from "./launch.mjs";
const [url, count, last, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1400 });
  const started = Date.now();
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction((n) => document.querySelectorAll("#views tbody tr[data-health]").length === Number(n),
    { timeout: 120000 }, count);
  const listedMs = Date.now() - started;
  // Every row says its health.
  const healths = await page.$$eval("#views tbody tr", (rows) => [...new Set(rows.map((r) => r.dataset.health))]);
  // Filter down to one view.
  const filterStarted = Date.now();
  await page.type("#views-filter", last);
  await page.waitForFunction((name) => {
    const rows = document.querySelectorAll("#views tbody tr");
    return rows.length === 1 && rows[0].dataset.view.endsWith("/" + name);
  }, { timeout: 30000 }, last);
  const filterMs = Date.now() - filterStarted;
  // Clear the filter; the list is sorted by view, ascending: one more click
  // on that column sorts it descending, and the last name comes first.
  await page.$eval("#views-filter", (el) => { el.value = ""; el.dispatchEvent(new Event("input")); });
  await page.click('#views .sort[data-sort="path"]');
  await page.waitForFunction((name) => document.querySelector("#views tbody tr")?.dataset.view.endsWith("/" + name),
    { timeout: 30000 }, last);
  const sortOrder = await page.$eval('#views th:first-child', (th) => th.getAttribute("aria-sort"));
  await page.$eval("#views-title", (el) => el.scrollIntoView());
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ listedMs, filterMs, healths, sortOrder }));
} finally {
  await browser.close();
}
