// Headless Chromium for the browser tests, through puppeteer-core.
// PUPPETEER_CORE: path of the puppeteer-core package; CHROMIUM: the browser.
const { default: puppeteer } = await import(process.env.PUPPETEER_CORE);

export function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}
