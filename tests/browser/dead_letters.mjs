// The console's dead letters on `matview dev`: waits until COUNT letters
// are listed and the per-reason chart has points, then reads back what the
// page shows (each row's reason, source and event text) and whether any
// payload turned into markup or ran.
//   node dead_letters.mjs URL COUNT SHOTS_DIR
import { launch } from "./launch.mjs";
const [url, count, shots] = process.argv.slice(2);
const browser = await launch();
const problems = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1400 });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => { problems.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  await page.goto(url, { waitUntil: "load" });
  // Listed, and charted: the per-reason counts of the closed intervals add up.
  await page.waitForFunction((n) => document.querySelectorAll("#dead-letters tbody tr").length === Number(n)
    && Number(document.querySelector("#chart-dead-letters svg")?.dataset.points || 0) > 0
    && [...document.querySelectorAll("#dead-letter-reasons tbody tr")]
      .reduce((a, tr) => a + Number(tr.cells[1].textContent), 0) === Number(n),
  { timeout: 90000 }, count).catch(async (e) => {
    const seen = await page.evaluate(() => ({
      rows: document.querySelectorAll("#dead-letters tbody tr").length,
      message: document.querySelector("#dead-letters-message").textContent,
      points: document.querySelector("#chart-dead-letters svg")?.dataset.points,
    }));
    throw new Error(`the dead letters were not listed: ${JSON.stringify(seen)}`, { cause: e });
  });
  const shown = await page.evaluate(() => ({
    rows: [...document.querySelectorAll("#dead-letters tbody tr")].map((tr) => ({
      reason: tr.dataset.reason,
      source: tr.cells[2].textContent,
      event: tr.querySelector("[data-payload]").textContent,
    })),
    // Markup a payload could have become: none inside the panel.
    elementsInPayloads: document.querySelectorAll("#dead-letters [data-payload] *").length,
    pwned: window.__pwned === true,
    legend: document.querySelector("#chart-dead-letters .legend").textContent,
    charted: Object.fromEntries([...document.querySelectorAll("#dead-letter-reasons tbody tr")]
      .map((tr) => [tr.dataset.reason, Number(tr.cells[1].textContent)])),
    state: document.querySelector("#dead-letters-state").textContent,
  }));
  const section = await page.$("#dead-letters-title").then((el) => el.evaluateHandle((e) => e.closest("section")));
  await section.asElement().screenshot({ path: `${shots}/console-dead-letters.png` });
  console.log(JSON.stringify({ ...shown, problems }));
} finally {
  await browser.close();
}
