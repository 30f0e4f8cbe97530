// Drives the page in headless Chromium: show a row, place an order through
// the form, wait until the right group's count in the DOM goes up by one
// (with the order's answer held back until then) and the page says so.
//   node place_order.mjs URL USER SCREENSHOT
import { launch } from "./launch.mjs";
const [url, user, screenshot] = process.argv.slice(2);
const browser = await launch();
const count = () => Number(document.querySelector('[data-group="cheap"] .count')?.textContent ?? NaN);
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1000 });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#view option", { timeout: 30000 });
  await page.type("#key", user);
  await page.click("#row-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#live").textContent === "live", { timeout: 30000 });
  await page.waitForSelector('[data-group="cheap"] .count');
  const before = await page.evaluate(count);
  await page.waitForFunction(() => !document.querySelector("#order-section").hidden, { timeout: 10000 });
  // Hold the order's answer until the stream has shown the item, so the page
  // must cope with the row arriving before its own order's acknowledgement.
  const cdp = await page.createCDPSession();
  const held = new Promise((resolve) => cdp.on("Fetch.requestPaused", (e) => resolve(e.requestId)));
  await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*/dev/orders", requestStage: "Response" }] });
  await page.click("#order-form button[type=submit]");
  // Generous: the suite runs in parallel on a loaded 2-core machine.
  await page.waitForFunction((b) => Number(document.querySelector('[data-group="cheap"] .count').textContent) === b + 1,
    { timeout: 90000 }, before).catch(async (e) => {
      const shown = await page.$eval("#order-result", (el) => el.textContent).catch(() => "?");
      throw new Error(`the cheap count did not go up; the order form says: ${shown}`, { cause: e });
    });
  await cdp.send("Fetch.continueRequest", { requestId: await held });
  await page.waitForFunction(() => /visible after \d+ ms/.test(document.querySelector("#order-result").textContent),
    { timeout: 90000 });
  const after = await page.evaluate(count);
  const result = await page.$eval("#order-result", (el) => el.textContent);
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ before, after, result }));
} finally {
  await browser.close();
}
