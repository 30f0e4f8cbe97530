// Drives the page in headless Chromium: watch a row of a table view, and see
// it removed live when its last record is deleted upstream.
//   node watch_removal.mjs URL KEY SCREENSHOT
// Prints "shown" once the row is on the page (the caller then deletes it),
// and a JSON line at the end. PUPPETEER_CORE, CHROMIUM as in place_order.mjs.
import { launch } from "./launch.mjs";
const [url, key, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1000 });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#view option", { timeout: 30000 });
  await page.type("#key", key);
  await page.click("#row-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#live").textContent === "live", { timeout: 30000 });
  // Generous: the suite runs in parallel on a loaded 2-core machine.
  await page.waitForFunction(() => Number(document.querySelector('[data-group="gold"] .count')?.textContent) === 1,
    { timeout: 90000 });
  console.log("shown");
  await page.waitForSelector("#groups .removed", { timeout: 90000 });
  const said = await page.$eval("#groups .removed", (el) => el.textContent);
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ said }));
} finally {
  await browser.close();
}
