// The console in a real browser (Debian's chromium, headless, driven by
// puppeteer-core) against a running pipeline. Started by
// infra/tributary/tests/console.rs, which sets:
//   CONSOLE_URL      http://127.0.0.1:PORT (the API, serving /console/)
//   ADMIN_KEY        a key for every company
//   SCOPED_KEY       a key for SCOPED_COMPANY only
//   SCOPED_COMPANY   the one company SCOPED_KEY may read
//   XERO_COMPANY     a company with no connection yet, to link to Xero
//   SCREENSHOTS      where to save a screenshot of each page
//   CHROMIUM         the browser (default /usr/bin/chromium)
// Every step says what it waits for; the first that fails ends the test
// with its name, the page's URL and what the page showed.
import puppeteer from "puppeteer-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const base = env("CONSOLE_URL");
const adminKey = env("ADMIN_KEY");
const scopedKey = env("SCOPED_KEY");
const scopedCompany = env("SCOPED_COMPANY");
const xeroCompany = env("XERO_COMPANY");
const shots = env("SCREENSHOTS");
const chromium = env("CHROMIUM", "/usr/bin/chromium");
mkdirSync(shots, { recursive: true });

const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 390, height: 844 };
const TIMEOUT = 60_000;

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  // As root (CI), chromium needs --no-sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const page = await browser.newPage();
page.setDefaultTimeout(TIMEOUT);
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));

let stepName = "start";
async function step(name, body) {
  stepName = name;
  const started = Date.now();
  await body();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

/// Waits until `text` shows in an element matching `selector`.
async function waitText(selector, text) {
  await page.waitForFunction(
    (sel, t) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(t)),
    { timeout: TIMEOUT },
    selector,
    text,
  );
}

/// Clicks the first element matching `selector` whose text is `text`.
async function clickText(selector, text) {
  await waitText(selector, text);
  const clicked = await page.$$eval(
    selector,
    (els, t) => {
      const el = els.find((e) => e.textContent.trim() === t || e.textContent.includes(t));
      if (!el) return false;
      el.click();
      return true;
    },
    text,
  );
  if (!clicked) throw new Error(`no ${selector} saying ${text}`);
}

async function go(hash) {
  await page.goto(`${base}/console/${hash}`, { waitUntil: "networkidle0" });
}

/// No horizontal scrolling of the page itself (tables scroll in their box).
async function noOverflow(label) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  if (scroll > width) throw new Error(`${label}: the page is ${scroll} px wide in a ${width} px window`);
}

async function shoot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/// Each page at both widths: no overflow, a screenshot of each.
async function bothWidths(name) {
  for (const [size, suffix] of [
    [WIDE, ""],
    [NARROW, "-390"],
  ]) {
    await page.setViewport(size);
    await new Promise((r) => setTimeout(r, 300));
    await noOverflow(`${name} at ${size.width} px`);
    await shoot(`${name}${suffix}`);
  }
  await page.setViewport(WIDE);
}

async function signIn(key) {
  await go("");
  await page.waitForSelector("#api-key");
  await page.$eval("#api-key", (e) => (e.value = ""));
  await page.type("#api-key", key);
  await page.click("button[type=submit]");
}

try {
  await page.setViewport(WIDE);

  await step("a wrong key is refused with the API's message", async () => {
    await signIn("not-a-key");
    await waitText(".error", "unknown API key");
    await bothWidths("sign-in");
  });

  await step("signed in, the companies with their data types", async () => {
    await signIn(adminKey);
    await page.waitForSelector("article.company");
    await waitText("article.company", "sandbox-001");
    await waitText("article.company", "invoices");
    await bothWidths("companies");
  });

  await step("a company: connections, data, sync history", async () => {
    await page.click("article.company[data-company='sandbox-001'] h2 a");
    await waitText("h1", "sandbox-001");
    await waitText("tr[data-connection]", "conn-sandbox-001");
    await page.waitForSelector("li.run");
    await bothWidths("company");
  });

  await step("records of a data type, paged", async () => {
    await go("#/companies/sandbox-001/records/invoices");
    await page.waitForSelector("tr.record a");
  });

  let recordId;
  await step("search within them", async () => {
    // A word of the first record's summary.
    const summary = await page.$eval("tr.record td.wrap", (e) => e.textContent);
    const word = summary.split(/[^A-Za-z0-9]+/).find((w) => w.length >= 3);
    if (!word) throw new Error(`no word to search in ${JSON.stringify(summary)}`);
    await page.type("input[type=search]", word);
    await clickText("form.search button", "Search");
    await waitText("p.muted", "hit(s)");
    const hits = await page.$$("tr.hit");
    if (hits.length === 0) throw new Error(`no hit for ${word}`);
    await bothWidths("records-search");
    recordId = await page.$eval("tr.hit a", (e) => e.textContent);
  });

  await step("one record with its envelope", async () => {
    await clickText("tr.hit a", recordId);
    await waitText("h1", recordId);
    await waitText("dl.envelope", "sandbox-001");
    await page.waitForSelector("pre.json");
    await bothWidths("record");
  });

  await step("a Xero connection added and linked through the consent page", async () => {
    await go(`#/companies/${xeroCompany}`);
    await waitText("p.muted", "No data for");
    await page.select("select[aria-label=source]", "xero");
    await clickText("form.add-connection button", "Add");
    await page.waitForSelector("a.authorize");
    await Promise.all([page.waitForNavigation(), page.click("a.authorize")]);
    await page.waitForSelector("#allow");
    await shoot("xero-consent");
    await Promise.all([page.waitForNavigation({ waitUntil: "networkidle0" }), page.click("#allow")]);
    // The callback sends the browser back to the company's page.
    if (!page.url().includes(`/console/#/companies/${xeroCompany}`)) throw new Error(`back at ${page.url()}`);
    await waitText("tr[data-connection]", "linked");
    await bothWidths("company-linked");
  });

  /// Clicks `label` and waits until the run it queued shows in the history
  /// and has ended (the page follows open runs).
  async function queueAndFollow(label, trigger) {
    const before = await page.$eval(".queued", (e) => e.dataset.runs).catch(() => null);
    await clickText("button", label);
    await page.waitForFunction((b) => {
      const q = document.querySelector(".queued");
      return q && q.dataset.runs !== b;
    }, { timeout: TIMEOUT }, before);
    const id = await page.$eval(".queued", (e) => e.dataset.runs);
    await page.waitForFunction(
      (id, trigger) => {
        const run = document.querySelector(`li.run[data-run="${id}"]`);
        return run && run.textContent.includes(trigger) && run.classList.contains("run-good");
      },
      { timeout: TIMEOUT },
      id,
      trigger,
    );
  }

  await step("a sync asked for shows its run, followed until it ends", async () => {
    await go("#/companies/sandbox-002");
    await page.waitForSelector("li.run");
    // The data types come with the company's status.
    await page.waitForSelector("select[aria-label='data type to sync'] option[value=customers]");
    await page.select("select[aria-label='data type to sync']", "customers");
    await queueAndFollow("Sync now", "request");
  });

  await step("a resync of the same data type, once the sync ended", async () => {
    await queueAndFollow("Resync", "resync");
    await bothWidths("company-syncs");
  });

  await step("a dead letter's payload shown and replayed", async () => {
    await go("#/dead-letters");
    await page.waitForSelector("tr[data-letter]");
    await clickText("tr[data-letter] button", "Payload");
    await page.waitForSelector("pre.payload");
    await clickText("tr[data-letter] button", "Replay");
    await page.waitForSelector(".replayed");
    await bothWidths("dead-letters");
  });

  await step("a webhook subscribed, tested, its delivery listed", async () => {
    await go("#/webhooks");
    await page.type("input[aria-label=url]", "http://127.0.0.1:9/hook");
    await clickText("form button", "Subscribe");
    await page.waitForSelector("code.secret");
    await page.waitForSelector("tr[data-subscription]");
    await clickText("tr[data-subscription] button", "Send test");
    await page.waitForSelector("tr[data-delivery]");
    await waitText("tr[data-delivery]", "webhook.test");
    await bothWidths("webhooks");
  });

  await step("the pipeline's charts", async () => {
    await go("#/pipeline");
    await page.waitForSelector("figure[data-chart]");
    const charts = await page.$$("figure[data-chart]");
    if (charts.length !== 4) throw new Error(`${charts.length} charts`);
    // The history fills every 15 s: wait for lines to draw.
    await page.waitForFunction(
      () => [...document.querySelectorAll("svg.chart polyline")].some((l) => l.getAttribute("points").split(" ").length >= 2),
      { timeout: 90_000, polling: 1000 },
    );
    await bothWidths("pipeline");
  });

  await step("a scoped key sees only its company", async () => {
    await clickText("button", "Sign out");
    await signIn(scopedKey);
    await page.waitForSelector("article.company");
    const shown = await page.$$eval("article.company", (els) => els.map((e) => e.dataset.company));
    if (shown.length !== 1 || shown[0] !== scopedCompany) throw new Error(`the scoped key sees ${JSON.stringify(shown)}`);
    await bothWidths("companies-scoped");
  });

  if (consoleErrors.length) throw new Error(`errors in the page: ${consoleErrors.join("; ")}`);
  console.log("browser test passed");
} catch (e) {
  console.error(`FAILED at "${stepName}": ${e.message}\nat ${page.url()}`);
  try {
    await shoot("failure");
    console.error((await page.evaluate(() => document.body.innerText)).slice(0, 3000));
  } catch {
    // the page is gone
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
