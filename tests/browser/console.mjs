// The console on a running `matview dev` with its demo orders, as a
// newcomer opens it: without any input, within 10 s of loading, the feed
// shows changes, the charts have points, the group table has rows and
// rows/lag are numbers. Then a feed entry opens its row, and an order placed
// through the form appears in the feed and in the row.
//   node console.mjs URL USER SHOTS_DIR
import { launch } from "./launch.mjs";
const [url, user, shots] = process.argv.slice(2);
const origin = new URL(url).origin;
const browser = await launch();
const problems = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1400 });
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) problems.push(`fetched ${r.url()}`); });
  page.on("console", (m) => { if (/Content Security Policy|Refused to/.test(m.text())) problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const loaded = Date.now();
  await page.goto(url, { waitUntil: "load" });
  const alive = () => {
    const number = (fact) => /^\d+$/.test(document.querySelector(`[data-fact="${fact}"]`)?.textContent ?? "");
    const points = ["events", "records", "lag", "freshness"]
      .map((c) => Number(document.querySelector(`#chart-${c} svg`)?.dataset.points || 0));
    return document.querySelectorAll("#feed li button[data-key]").length > 0
      && points.every((p) => p > 0)
      && document.querySelectorAll("#scan tr[data-key]").length > 0
      && number("rows") && number("lag")
      && document.querySelectorAll("#group-bars .bar").length > 0;
  };
  await page.waitForFunction(alive, { timeout: 10000 }).catch(async (e) => {
    const seen = await page.evaluate(() => ({
      feed: document.querySelectorAll("#feed li").length,
      points: [...document.querySelectorAll(".charts svg")].map((s) => s.dataset.points),
      scan: document.querySelectorAll("#scan tr").length,
      rows: document.querySelector('[data-fact="rows"]')?.textContent,
      lag: document.querySelector('[data-fact="lag"]')?.textContent,
    }));
    throw new Error(`not alive within 10 s of loading: ${JSON.stringify(seen)}`, { cause: e });
  });
  const aliveAfterMs = Date.now() - loaded;
  const facts = await page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll("[data-fact]")].map((d) => [d.dataset.fact, d.textContent])));

  // A feed entry opens its row.
  const picked = await page.$eval("#feed li button[data-key]", (b) => { b.click(); return b.dataset.key; });
  await page.waitForFunction((k) => document.querySelector("#groups")?.dataset.shown === k
    && document.querySelector("#key").value === k, { timeout: 30000 }, picked);

  // An order through the form: in the feed and in the row (a 1.50 item is cheap, by the example's rules).
  await page.waitForFunction(() => !document.querySelector("#order-section").hidden, { timeout: 10000 });
  await page.$eval("#order-user", (el, u) => { el.value = u; }, user);
  await page.$eval("#order-price", (el) => { el.value = "1.50"; });
  await page.click("#order-form button[type=submit]");
  // Generous: the suite runs in parallel on a loaded 2-core machine.
  await page.waitForFunction((u) => document.querySelector(`#feed button[data-key="${u}"]`)
    && document.querySelector("#groups")?.dataset.shown === u
    && document.querySelector('#groups [data-group="cheap"] .count')?.textContent === "1", { timeout: 90000 }, user)
    .catch(async (e) => {
      const said = await page.$eval("#order-result", (el) => el.textContent).catch(() => "?");
      throw new Error(`the order did not show in the feed and the row; the form says: ${said}`, { cause: e });
    });
  await page.waitForFunction(() => /visible after \d+ ms/.test(document.querySelector("#order-result").textContent), { timeout: 90000 });
  const order = await page.$eval("#order-result", (el) => el.textContent);

  await page.screenshot({ path: `${shots}/console.png` });
  for (const [name, selector] of [["summary", "section.status"], ["charts", "#charts-title"], ["feed", "#feed-title"],
    ["row", "#row-title"], ["group", "#scan-title"], ["views", "#views-title"]]) {
    const section = await page.$(`${selector}`).then((el) => el.evaluateHandle((e) => e.closest("section")));
    await section.asElement().screenshot({ path: `${shots}/console-${name}.png` });
  }
  console.log(JSON.stringify({ aliveAfterMs, facts, picked, order, problems }));
} finally {
  await browser.close();
}
