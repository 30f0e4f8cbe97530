// The console against a gateway that asks for tokens: the messages for no
// token (401), a token that may list views but not read them (403), and a
// view reader without the dead-letter permission (the panel's own message,
// nothing page-wide). Every request URL is recorded: no token may be in one.
//   node console_auth.mjs URL LISTER_TOKEN READER_TOKEN SHOTS_DIR
import { launch } from "./launch.mjs";
const [url, lister, reader, shots] = process.argv.slice(2);
const browser = await launch();
const problems = [];
const urls = [];
const unauthenticatedApiCalls = [];
let token = null;
let readerFigures = 0;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1400 });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("request", (r) => {
    urls.push(r.url());
    const auth = r.headers()["authorization"];
    if (token && new URL(r.url()).pathname.startsWith("/v1/") && auth !== `Bearer ${token}`) {
      unauthenticatedApiCalls.push(`${r.url()} (authorization: ${auth ? "another token" : "none"})`);
    }
  });
  page.on("response", (r) => {
    if (token === reader && r.url().endsWith("/figures") && r.request().headers()["authorization"] === `Bearer ${reader}`) {
      readerFigures += 1;
    }
  });
  const message = (id) => page.$eval(id, (el) => (el.hidden ? null : el.textContent));
  const waitFor = async (what, fn, ...args) => page.waitForFunction(fn, { timeout: 60000 }, ...args).catch(async (e) => {
    const seen = { auth: await message("#auth-message"), deadLetters: await message("#dead-letters-message") };
    throw new Error(`${what}: ${JSON.stringify(seen)}`, { cause: e });
  });
  const useToken = async (value) => {
    token = value;
    await page.$eval("#token", (el, v) => { el.value = v; el.dispatchEvent(new Event("change")); }, value);
  };

  await page.goto(url, { waitUntil: "load" });
  await waitFor("no message for a missing token", () => !document.querySelector("#auth-message").hidden
    && /bearer token/.test(document.querySelector("#auth-message").textContent));
  const unauthorized = await message("#auth-message");

  await useToken(lister);
  await waitFor("no message for a token that may only list", () => document.querySelectorAll("#views tbody tr").length === 1
    && !document.querySelector("#auth-message").hidden
    && /may not/.test(document.querySelector("#auth-message").textContent));
  const forbidden = await message("#auth-message");
  await page.screenshot({ path: `${shots}/console-forbidden.png` });

  await useToken(reader);
  await waitFor("no dead-letter message for a view reader", () => !document.querySelector("#dead-letters-message").hidden
    && /deadletters/.test(document.querySelector("#dead-letters-message").textContent));
  const deadLetters = await message("#dead-letters-message");
  // Two rounds of figures with the reader's token: the page-wide message,
  // if any were left, would have been set again by now.
  const started = Date.now();
  while (readerFigures < 2) {
    if (Date.now() - started > 60000) throw new Error("the page did not ask for figures with the reader's token");
    await new Promise((r) => setTimeout(r, 100));
  }
  const readerAuthMessage = await message("#auth-message");
  console.log(JSON.stringify({ unauthorized, forbidden, deadLetters, readerAuthMessage, urls, unauthenticatedApiCalls, problems }));
} finally {
  await browser.close();
}
