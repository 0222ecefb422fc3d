/**
 * The web UI end to end, in a real browser against a real `sdd up --mock`:
 * sign in, see the local agent live, enrol-token dialog, start a session, reach the (mock) IDE
 * through its link with the session password, stop it; a wrong password shows the server's error.
 *
 * Run with `npm run e2e` in frontend/ (after `npm run build`), or `node --test tests/e2e/`.
 * Screenshots of each page go to docs/screenshots/ (or $SDD_E2E_SCREENSHOTS).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
// playwright-core is a devDependency of the UI: resolve it from there.
const { chromium } = createRequire(join(repo, "frontend", "package.json"))("playwright-core");

const SDD = resolve(here, "../../.venv/bin/sdd");
const CHROMIUM = process.env.SDD_E2E_CHROMIUM ?? "/usr/bin/chromium";
// The pictures in the docs; a test command that wants a clean tree can send them elsewhere.
const SCREENSHOTS = process.env.SDD_E2E_SCREENSHOTS ?? join(repo, "docs", "screenshots");
const DIST_INDEX = join(repo, "frontend", "dist", "index.html");
const LIVE_TIMEOUT = 60_000;

/** A port nobody listens on right now. */
function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.on("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

async function waitFor(what, check, timeout = LIVE_TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

describe("the web UI, against sdd up --mock", () => {
  let sdd;
  let output = "";
  let dataDir;
  let profileDir;
  let baseUrl;
  let adminPassword;
  let context;
  let page;
  let sessionPassword;
  let sessionUrl;
  /** What the page logged as an error or warning (Vue warns about misused components there). */
  const problems = [];

  async function shot(name) {
    // No passing toast in the picture; let transitions and charts settle.
    await page.locator(".ant-message-notice").first().waitFor({ state: "detached", timeout: 10_000 }).catch(() => {});
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
  }

  async function goTo(nav) {
    await page.getByTestId(`nav-${nav}`).click();
    await page.waitForURL(`**/${nav}`);
  }

  before(async () => {
    assert.ok(existsSync(SDD), `${SDD} is missing: create the virtualenv first`);
    assert.ok(existsSync(DIST_INDEX), "frontend/dist is missing: run `npm run build` in frontend/ first");
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
    mkdirSync(SCREENSHOTS, { recursive: true });

    dataDir = mkdtempSync(join(tmpdir(), "sdd-e2e-data-"));
    profileDir = mkdtempSync(join(tmpdir(), "sdd-e2e-chromium-"));
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    sdd = spawn(SDD, ["up", "--mock", "--port", String(port), "--data-dir", dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SDD_PUBLIC_URL: baseUrl },
    });
    // If this process dies before `after` runs, take `sdd up` (and so its server and agent) along.
    const child = sdd;
    process.once("exit", () => child.exitCode === null && child.kill("SIGTERM"));
    sdd.stdout.on("data", (chunk) => (output += chunk));
    sdd.stderr.on("data", (chunk) => (output += chunk));

    await waitFor("sdd up to answer /api/health", async () => {
      if (sdd.exitCode !== null) throw new Error(`sdd up exited with ${sdd.exitCode}:\n${output}`);
      return (await fetch(`${baseUrl}/api/health`)).ok;
    });
    adminPassword = readFileSync(join(dataDir, "admin_password"), "utf8").trim();

    // The server must serve this build, not some other copy of the UI.
    const served = await (await fetch(`${baseUrl}/sessions`)).text();
    assert.equal(served, readFileSync(DIST_INDEX, "utf8"), "the server does not serve frontend/dist");

    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      locale: "en-US",
      viewport: { width: 1440, height: 900 },
    });
    context.setDefaultTimeout(30_000);
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (message) => {
      if (["error", "warning"].includes(message.type())) problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  });

  after(async () => {
    try {
      await context?.close();
    } finally {
      if (sdd && sdd.exitCode === null && sdd.signalCode === null) {
        const exited = new Promise((done) => sdd.once("exit", done));
        sdd.kill("SIGTERM");
        const timer = setTimeout(() => sdd.kill("SIGKILL"), 20_000);
        await exited;
        clearTimeout(timer);
      }
      for (const dir of [dataDir, profileDir]) if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it("shows the server's error for a wrong password", async () => {
    await page.goto(`${baseUrl}/`);
    await page.waitForURL("**/login**");
    await page.getByTestId("login-username").fill("admin");
    await shot("login");
    await page.getByTestId("login-password").fill("not-the-password");
    await page.getByTestId("login-submit").click();
    const error = page.getByTestId("login-error");
    await error.waitFor();
    assert.match(await error.innerText(), /wrong username or password/);
    assert.match(page.url(), /\/login/);
  });

  it("signs in and shows the local agent ONLINE with its CPU, live", async () => {
    await page.getByTestId("login-password").fill(adminPassword);
    await page.getByTestId("login-submit").click();
    await page.waitForURL("**/sessions");
    await goTo("agents");
    const card = page.locator('[data-testid="agent-card"][data-agent="local"]');
    await card.locator('[data-testid="agent-status"][data-status="ONLINE"]').waitFor({ timeout: LIVE_TIMEOUT });
    assert.match(await card.getByTestId("agent-cpu").innerText(), /^\d+(\.\d)?%$/);
    await page.locator('[data-testid="live-state"][data-state="open"]').waitFor();
    // The chart is drawn from the live events: it appears once two heartbeats have arrived.
    await card.getByTestId("metric-chart").waitFor({ timeout: LIVE_TIMEOUT });
    await page.waitForTimeout(4000);
    await shot("agents");
  });

  it("creates an enrollment token and shows the agent command once", async () => {
    await page.getByTestId("create-token").click();
    await page.getByTestId("token-note").fill("build box in the lab");
    await shot("token-create");
    await page.locator(".ant-modal-footer .ant-btn-primary").filter({ hasText: "Create" }).click();
    const command = page.getByTestId("agent-command");
    await command.waitFor();
    const text = await command.innerText();
    assert.match(text, /sdd agent/);
    assert.match(text, /sdde_/);
    await shot("token-created");
    await page.getByTestId("token-done").click();
    await page.getByText("build box in the lab").waitFor();
  });

  it("starts a session that goes ACTIVE live, with its link and password", async () => {
    await goTo("sessions");
    await page.getByTestId("start-session").click();
    await page.getByTestId("start-session-modal").waitFor();
    await page.locator(".ant-modal-footer .ant-btn-primary").filter({ hasText: "Start" }).click();
    const status = page.getByTestId("session-status").first();
    await page.locator('[data-testid="session-status"][data-status="ACTIVE"]').waitFor({ timeout: LIVE_TIMEOUT });
    assert.equal(await status.getAttribute("data-status"), "ACTIVE");

    const open = page.getByTestId("session-open");
    sessionUrl = await open.getAttribute("href");
    assert.match(sessionUrl, /^https?:\/\//);
    assert.equal(await open.getAttribute("target"), "_blank");

    const secret = page.getByTestId("secret-value");
    assert.match(await secret.innerText(), /^•+$/);
    await page.getByTestId("secret-toggle").click();
    sessionPassword = (await secret.innerText()).trim();
    assert.ok(sessionPassword.length >= 8 && !sessionPassword.includes("•"));
    await page.getByTestId("secret-toggle").click();
    await shot("sessions");
  });

  it("opens the IDE in a new tab and signs in with the session password", async () => {
    const [ide] = await Promise.all([context.waitForEvent("page"), page.getByTestId("session-open").click()]);
    await ide.waitForLoadState();
    await ide.locator('input[name="password"]').fill(sessionPassword);
    await ide.locator('input[type="submit"]').click();
    await ide.getByText("Mock Code Server is running...").waitFor();
    await ide.close();
  });

  it("lets an admin create a user, and lists every session", async () => {
    await goTo("admin");
    const users = page.getByTestId("users-table");
    await users.getByText("admin", { exact: true }).waitFor();
    await page.getByTestId("create-user").click();
    await page.getByTestId("new-username").fill("lin");
    await page.getByTestId("new-password").fill("a-long-password");
    await page.locator(".ant-modal-footer .ant-btn-primary").filter({ hasText: "Create" }).click();
    await users.getByText("lin", { exact: true }).waitFor();
    await shot("admin");
    await page.getByTestId("tab-sessions").click();
    await page.locator('.ant-tabs-tabpane-active [data-testid="session-status"][data-status="ACTIVE"]').waitFor();
    await shot("admin-sessions");
  });

  it("shows the audit log: the sign-in, the session start and the new user are in it", async () => {
    await page.getByTestId("tab-audit").click();
    const table = page.locator('.ant-tabs-tabpane-active [data-testid="audit-table"]');
    for (const action of ["auth.login", "session.start", "user.create"]) {
      await table.locator('[data-testid="audit-action"]', { hasText: action }).first().waitFor();
    }
    await shot("admin-audit");
  });

  it("stops the session and shows it STOPPED", async () => {
    await goTo("sessions");
    await page.getByTestId("session-stop").click();
    await page.locator(".ant-popover .ant-btn-primary").click();
    await page.locator('[data-testid="session-status"][data-status="STOPPED"]').waitFor({ timeout: LIVE_TIMEOUT });
    assert.equal(await page.getByTestId("session-open").count(), 0);
  });

  it("switches to Simplified Chinese and remembers it", async () => {
    await page.getByTestId("language-switch").click();
    await page.getByTestId("language-zh-CN").click();
    await page.getByTestId("nav-sessions").getByText("会话").waitFor();
    await page.reload();
    await page.getByTestId("nav-agents").getByText("节点").waitFor();
    await goTo("agents");
    await page.getByTestId("metric-chart").waitFor({ timeout: LIVE_TIMEOUT });
    await page.waitForTimeout(4000);
    await shot("agents-zh");
  });

  it("logs no errors or warnings in the browser console", () => {
    // The wrong password's 401 is the one expected failure.
    const unexpected = problems.filter((p) => !/status of 401/.test(p));
    assert.deepEqual(unexpected, []);
  });

  it("signs out from the user menu, back to the login page", async () => {
    await page.getByTestId("user-menu").click();
    await page.getByTestId("logout").click();
    await page.waitForURL("**/login");
    assert.equal(await page.evaluate(() => localStorage.getItem("sdd.token")), null);
    await page.goto(`${baseUrl}/agents`);
    await page.waitForURL("**/login?redirect=/agents");
  });
});
