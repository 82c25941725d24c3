// classbell's browser app, end to end, in headless Chromium: a teacher and
// two students in separate browser contexts, the register page's rules, the
// password-reset flow from the mail the SMTP server received, the main
// journeys once in each language the app speaks, and a walk through every
// page of the app's page list as each demo role and signed out, in each
// language, with axe-core checking every page's accessibility.
//
// Run by ops/test against a real `classbell serve` with the demo school:
//   CLASSBELL_E2E_BASE=http://127.0.0.1:PORT CLASSBELL_E2E_MAILDIR=…/new \
//   CLASSBELL_E2E_CLOSED_BASE=http://127.0.0.1:PORT2 node run.mjs

import { readdirSync, readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const BASE = process.env.CLASSBELL_E2E_BASE ?? "http://127.0.0.1:8080";
const MAILDIR = process.env.CLASSBELL_E2E_MAILDIR;
// The same school served with CLASSBELL_REGISTRATION=closed.
const CLOSED_BASE = process.env.CLASSBELL_E2E_CLOSED_BASE;
const SHOTS = new URL("./screenshots/", import.meta.url).pathname;
const DEMO_PASSWORD = "Bell-Demo-2026!";
const STRONG = "Lantern-Orchard-57";
const tag = Math.random().toString(36).slice(2, 8);
// The demo school's clock (ops/test serves it with CLASSBELL_TIMEZONE); the
// browsers run on another, so a time shown on the viewer's clock would show.
const SCHOOL_ZONE = "Asia/Shanghai";
const VIEWER_ZONE = "America/New_York";
const LANGUAGES = ["en", "zh-CN"];
const CATALOGS = Object.fromEntries(LANGUAGES.map((lang) => [lang,
  JSON.parse(readFileSync(new URL(`../../src/web/assets/js/locales/${lang}.json`, import.meta.url), "utf8"))]));
const AXE = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");

/** The app's words for `key` in `lang`, as its catalogs have them (plural "other" forms). */
function words(lang, key, params = {}) {
  let message = CATALOGS[lang][key];
  assert.ok(message !== undefined, `${lang} has ${key}`);
  if (typeof message === "object") message = message.other;
  return message.replace(/\{(\w+)\}/g, (_, name) => String(params[name]));
}

function step(text) {
  console.log(`  · ${text}`);
}

async function call(method, path, token, body) {
  const send = () => fetch(`${BASE}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  let response = await send();
  // A busy server answers 503 with Retry-After (e.g. every hasher taken by
  // sign-ins at once); a careful client waits as told and tries again.
  for (let tries = 0; response.status === 503 && response.headers.has("retry-after") && tries < 5; tries++) {
    await new Promise((done) => setTimeout(done, 1000 * Number(response.headers.get("retry-after") || 1)));
    response = await send();
  }
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function token(username, password) {
  return (await call("POST", "/auth/login", null, { username, password })).access_token;
}

/** A course and a published section taught by the demo teacher, one of two new students enrolled. */
async function school() {
  const admin = await token("admin", DEMO_PASSWORD);
  const teacher = (await call("GET", "/api/users?q=ms.rivera", admin)).items.find((u) => u.username === "ms.rivera");
  const course = await call("POST", "/api/courses", admin, { code: `E2E${tag}`, title: "Browser testing" });
  const section = await call("POST", "/api/sections", admin, {
    course_id: course.id, section_code: "A", term: "2026-fall", teacher_id: teacher.id, capacity: 10, status: "published",
  });
  const students = [];
  for (const name of ["ines", "omar"]) {
    const username = `${name}-${tag}`;
    const user = await call("POST", "/auth/register", null, {
      username, email: `${username}@school.example`, password: STRONG,
    });
    students.push(user);
  }
  await call("POST", `/api/sections/${section.id}/enrollments`, admin, { student_id: students[0].id });
  // New accounts already hold the demo school's live "all students"
  // announcements: what follows counts from there.
  const inbox = await call("GET", "/api/deliveries?limit=200", await token(students[0].username, STRONG));
  const held = inbox.items.length;
  const unread = inbox.items.filter((item) => item.state !== "acknowledged").length;
  return { course, section, enrolled: students[0], outsider: students[1], held, unread };
}

async function signIn(browser, username, password, errors, lang = "en") {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, locale: lang, timezoneId: VIEWER_ZONE });
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(`${username}: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/Failed to load resource/.test(message.text())) {
      errors.push(`${username}: ${message.text()}`);
    }
  });
  await page.goto(`${BASE}/login`);
  await page.getByLabel(words(lang, "login.username_or_email")).fill(username);
  await page.getByLabel(words(lang, "field.password")).fill(password);
  await page.getByRole("button", { name: words(lang, "login.submit") }).click();
  await page.waitForURL(/\/(inbox|announcements)$/);
  return page;
}

/**
 * The main journeys in `lang`, in browsers that ask for it and run on
 * another clock than the school's: sign in, a live arrival and its
 * acknowledgment, compose and schedule, the teacher's figures. Every word
 * checked is the catalog's for `lang`; every time, the school's local time.
 */
async function journey(browser, lang, data, errors) {
  const say = (key, params) => words(lang, key, params);
  const teacher = await signIn(browser, "ms.rivera", DEMO_PASSWORD, errors, lang);
  const student = await signIn(browser, data.enrolled.username, STRONG, errors, lang);
  for (const page of [teacher, student]) assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
  await student.getByRole("heading", { name: say("inbox.title") }).waitFor();
  await teacher.getByRole("heading", { name: say("mine.title") }).waitFor();
  // Unread as the server counts it, once the live badge shows the same.
  const held = await call("GET", "/api/deliveries?limit=200", await token(data.enrolled.username, STRONG));
  const unread = held.items.filter((item) => item.state !== "acknowledged").length;
  await student.waitForFunction((n) => document.querySelector("#badge").textContent.trim() === String(n), unread, { timeout: 3000 });
  const section = say("audience.section", { course: data.course.code, section: "A", term: "2026-fall" });
  /** `iso` as the app must show it: on the school's clock, formatted for `lang` (by the browser's own Intl). */
  const local = (page, iso, zone = SCHOOL_ZONE) => page.evaluate(([at, l, z]) =>
    new Date(at).toLocaleString(l, { dateStyle: "medium", timeStyle: "short", timeZone: z }), [iso, lang, zone]);
  const compose = async (title, publishAt, dueAt) => {
    await teacher.getByRole("link", { name: say("mine.new") }).click();
    await teacher.getByRole("heading", { name: say("compose.title") }).waitFor();
    await teacher.getByLabel(say("compose.title_field")).fill(title);
    await teacher.getByLabel(say("compose.message")).fill(lang === "en" ? "Bring your sports kit." : "请带好运动服。");
    await teacher.getByLabel(say("compose.audience")).selectOption({ label: section });
    // The form names the school's zone beside the time it asks for.
    if (publishAt) await teacher.getByLabel(say("compose.publish_at", { zone: SCHOOL_ZONE })).fill(publishAt);
    if (dueAt) await teacher.getByLabel(say("compose.ack_due_at", { zone: SCHOOL_ZONE })).fill(dueAt);
    await teacher.getByRole("button", { name: say("compose.publish"), exact: true }).click();
    await teacher.waitForURL(/\/announcements$/);
  };

  step(`${lang}: the teacher publishes to a section; the student sees it arrive live, on the school's clock`);
  const title = `${say("compose.title")} ${lang} ${tag}`;
  await compose(title);
  const item = student.locator("article.item", { hasText: title });
  await item.waitFor({ timeout: 2000 });
  await student.waitForFunction((n) => document.querySelector("#badge").textContent.trim() === String(n), unread + 1, { timeout: 2000 });
  const inbox = await call("GET", "/api/deliveries?limit=200", await token(data.enrolled.username, STRONG));
  const { announcement } = inbox.items.find((d) => d.announcement.title === title);
  const published = await local(student, announcement.published_at);
  assert.notEqual(published, await local(student, announcement.published_at, VIEWER_ZONE), "the zones differ");
  await item.getByText(say("inbox.from", { name: announcement.publisher_name, when: published })).waitFor();

  step(`${lang}: the student opens and acknowledges it; the teacher's figures and charts follow`);
  await item.getByRole("button", { name: say("inbox.open") }).click();
  await item.locator(".pill.delivered", { hasText: say("state.delivered") }).waitFor({ timeout: 3000 });
  await item.getByRole("button", { name: say("inbox.acknowledge") }).click();
  await item.locator(".pill.acknowledged", { hasText: say("state.acknowledged") }).waitFor({ timeout: 3000 });
  await student.waitForFunction((n) => document.querySelector("#badge").textContent.trim() === String(n), unread, { timeout: 3000 });
  const card = teacher.locator("article.announcement", { hasText: title });
  await card.getByText(`${section} · ${say("card.published", { when: await local(teacher, announcement.published_at) })}`).waitFor();
  await card.locator(".acknowledged").filter({ hasText: "1" }).waitFor({ timeout: 3000 });
  await card.getByText(say("figures.charts")).click();
  const total = (await card.locator(".total").textContent()).trim();
  const bar = say("chart.bar", { section: `${data.course.code} A`, acknowledged: 1, total });
  await card.locator(`svg.chart[aria-label*="${bar}"]`).first().waitFor();
  await student.screenshot({ path: join(SHOTS, `${lang}-inbox.png`), fullPage: true });
  await teacher.screenshot({ path: join(SHOTS, `${lang}-teacher.png`), fullPage: true });

  step(`${lang}: the teacher schedules one for 08:00 school time, stored as 00:00Z and shown as 08:00`);
  const later = `${say("status.scheduled")} ${lang} ${tag}`;
  await compose(later, "2031-03-05T08:00");
  const teacherToken = await token("ms.rivera", DEMO_PASSWORD);
  const scheduled = (await call("GET", "/api/announcements?limit=100", teacherToken)).items.find((a) => a.title === later);
  assert.equal(scheduled.status, "scheduled");
  assert.equal(new Date(scheduled.publish_at).toISOString(), "2031-03-05T00:00:00.000Z");
  const at = await local(teacher, scheduled.publish_at);
  assert.match(at, /\b0?8:00\b/, `08:00 on the school's clock: ${at}`);
  const laterCard = teacher.locator("article.announcement", { hasText: later });
  await laterCard.getByText(say("card.scheduled", { when: at })).waitFor();
  await laterCard.locator(".pill", { hasText: say("status.scheduled") }).waitFor();
  // Withdrawn again, so it never reaches an inbox.
  await call("POST", `/api/announcements/${scheduled.id}/withdraw`, teacherToken);

  step(`${lang}: one due at 08:00 school time shows its due time to the student, and the teacher its reminder ladder`);
  const due = `${say("field.ack_due_at")} ${lang} ${tag}`;
  await compose(due, null, "2031-03-06T08:00");
  const dueAt = await local(student, "2031-03-06T00:00:00Z");
  const dueItem = student.locator("article.item", { hasText: due });
  await dueItem.getByText(say("inbox.due", { when: dueAt })).waitFor({ timeout: 3000 });
  const dueCard = teacher.locator("article.announcement", { hasText: due });
  await dueCard.locator("p.muted", { hasText: say("card.due", { when: dueAt }) }).waitFor();
  const rungs = dueCard.locator(".ladder-steps li");
  // The list may be drawn once more just after the publish (the page the
  // composer went to), closing a ladder opened in between: open it again
  // (closing it first if it stayed open, so that it reads the steps anew).
  const ladderOpen = () => dueCard.locator("details.ladder").evaluate((d) => d.open);
  for (let attempt = 1; ; attempt++) {
    if (await ladderOpen()) await dueCard.getByText(say("ladder.title"), { exact: true }).click();
    await dueCard.getByText(say("ladder.title"), { exact: true }).click();
    try {
      await rungs.nth(2).waitFor({ timeout: 5000 });
      break;
    } catch (error) {
      if (attempt === 4) throw error;
    }
  }
  assert.equal(await rungs.count(), 3, "in-app, mail and summary are planned");
  assert.equal(await dueCard.locator('.ladder-steps li[data-state="pending"]').count(), 3);
  await dueCard.locator(".ladder-steps li", { hasText: say("ladder.channel.summary") })
    .getByText(dueAt, { exact: false }).waitFor();
  const dueId = (await call("GET", "/api/announcements?limit=100", teacherToken)).items.find((a) => a.title === due).id;
  await call("POST", `/api/announcements/${dueId}/withdraw`, teacherToken);
  await teacher.context().close();
  await student.context().close();
}

async function badge(page) {
  return (await page.locator("#badge").textContent()).trim();
}

/** A mail's headers as they came, then its plain-text part decoded (base64 or quoted-printable). */
function mailText(raw) {
  const headers = raw.slice(0, raw.search(/\r?\n\r?\n/));
  const at = raw.search(/Content-Type: text\/plain/i);
  const part = at >= 0 ? raw.slice(at) : raw;
  const split = part.search(/\r?\n\r?\n/);
  const head = part.slice(0, split);
  let body = part.slice(split).replace(/^\s+/, "");
  const end = body.search(/\r?\n--/);
  if (end >= 0) body = body.slice(0, end);
  if (/content-transfer-encoding:\s*base64/i.test(head)) body = Buffer.from(body, "base64").toString("utf8");
  else if (/content-transfer-encoding:\s*quoted-printable/i.test(head)) {
    const bytes = body.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, hex) => `%${hex}`);
    body = decodeURIComponent(bytes.replace(/%(?![0-9A-F]{2})/gi, "%25"));
  }
  return `${headers}\n\n${body}`;
}

/** The link to `path` (e.g. /reset-password) in the mail sent to `address`. */
function mailLink(address, path) {
  for (let i = 0; i < 50; i++) {
    for (const name of readdirSync(MAILDIR)) {
      const text = mailText(readFileSync(join(MAILDIR, name), "utf8"));
      if (text.includes(address) && text.includes(`${path}#token=`)) {
        return new RegExp(`https?://\\S+${path}#token=[A-Za-z0-9_-]+`).exec(text)[0];
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  throw new Error(`no mail with ${path} reached ${address}`);
}

// ---------------------------------------------------------------------------
// The page walk: every page of the app's page list (the file the server and
// the router read), as each demo role and signed out. A page fails the walk
// on a script error, a console error (a failed request included) or an error
// banner (`.notice.bad`, role=alert).

const PAGES = JSON.parse(readFileSync(new URL("../../src/web/assets/js/pages.json", import.meta.url), "utf8"));
const DEMO_USERS = ["student01", "ms.rivera", "manager", "registrar", "admin"];

/** Real ids for the list's `:id` patterns: a course and a section the user sees (their own when they have some). */
async function demoIds(access) {
  const own = (await call("GET", "/api/me/sections?limit=1", access)).items[0];
  const section = own ?? (await call("GET", "/api/sections?limit=1", access)).items[0];
  const course = own ? { id: own.course_id } : (await call("GET", "/api/courses?limit=1", access)).items[0];
  assert.ok(section && course, "the demo school shows a course and a section");
  return { "/courses/:id": course.id, "/sections/:id": section.id };
}

function address(path, ids) {
  if (!path.includes(":")) return path;
  assert.ok(ids[path] !== undefined, `the walk has an id for ${path}`);
  return path.replace(/:\w+/, ids[path]);
}

/** A tab in `lang` that files every script and console error under the page it is on. */
async function walker(browser, problems, lang) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, locale: lang, timezoneId: VIEWER_ZONE });
  const page = await context.newPage();
  const where = { label: "" };
  page.on("pageerror", (error) => problems.push(`${where.label}: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`${where.label}: console: ${message.text()}`);
  });
  return { page, where, lang };
}

/** axe-core's verdict on the page as it stands: every violation is a problem. */
async function accessibility(page, label, problems) {
  // Evaluated through the browser's debugger, which the page's CSP does not govern.
  await page.evaluate(AXE);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  for (const v of violations) {
    const where = v.nodes.slice(0, 3).map((node) => node.target.join(" ")).join(", ");
    problems.push(`${label}: axe ${v.id} (${v.impact}): ${v.help} at ${where}`);
  }
}

/**
 * Opens `path` and waits until the app has rendered it (the title names the
 * page) and the network is quiet; then checks its language and runs axe-core.
 */
async function visit({ page, where, lang }, label, path, problems) {
  where.label = label;
  await page.goto(`${BASE}${path}`);
  try {
    await page.waitForFunction(() => document.title.includes(" · "), null, { timeout: 5000 });
    await page.waitForLoadState("networkidle", { timeout: 5000 });
  } catch {
    problems.push(`${label}: the page did not finish rendering`);
  }
  for (const text of await page.locator(".notice.bad, [role=alert]").allTextContents()) {
    problems.push(`${label}: error banner: ${text.trim()}`);
  }
  const said = await page.evaluate(() => document.documentElement.lang);
  if (said !== lang) problems.push(`${label}: <html lang="${said}">`);
  await accessibility(page, label, problems);
  return page;
}

/** Every page as one demo user in `lang`: a page for other roles says so plainly instead. */
async function walkAs(browser, username, problems, lang) {
  const access = await token(username, DEMO_PASSWORD);
  const { role } = await call("GET", "/auth/me", access);
  const ids = await demoIds(access);
  const tab = await walker(browser, problems, lang);
  await visit(tab, `${lang} ${username} signing in`, "/login", problems);
  await tab.page.getByLabel(words(lang, "login.username_or_email")).fill(username);
  await tab.page.getByLabel(words(lang, "field.password")).fill(DEMO_PASSWORD);
  await tab.page.getByRole("button", { name: words(lang, "login.submit") }).click();
  await tab.page.waitForURL(/\/(inbox|announcements)$/);
  for (const entry of PAGES) {
    const label = `${lang} ${username} (${role}) ${entry.path}`;
    const page = await visit(tab, label, address(entry.path, ids), problems);
    const forRole = !entry.roles || entry.roles.includes(role);
    const note = await page.locator("#not-for-role").count();
    if (forRole && note) problems.push(`${label}: says it is not for this role`);
    if (!forRole && !note) problems.push(`${label}: does not say it is for other roles`);
    if (!(await page.locator("main h1").count())) problems.push(`${label}: no heading`);
  }
  await tab.page.context().close();
}

/** Signed out: the pages that need no account render; the others lead to the sign-in page. */
async function walkSignedOut(browser, problems, lang) {
  const tab = await walker(browser, problems, lang);
  for (const entry of PAGES) {
    const label = `${lang} signed out ${entry.path}`;
    const page = await visit(tab, label, address(entry.path, { "/courses/:id": 1, "/sections/:id": 1 }), problems);
    const at = new URL(page.url()).pathname;
    if (entry.signed_in && at !== "/login") problems.push(`${label}: shown at ${at}, not sent to sign in`);
    if (!entry.signed_in && at !== entry.path) problems.push(`${label}: moved to ${at}`);
  }
  // Without a token (the page drops it from the address once read, so a reload
  // comes back without one) /reset-password says where to get a link: a note,
  // not an error banner, which the walk above would have reported.
  const reset = await visit(tab, `${lang} signed out /reset-password (no token)`, "/reset-password", problems);
  await reset.locator("main .notice:not(.bad)", { hasText: words(lang, "reset.missing") }).waitFor({ timeout: 2000 });
  await tab.page.context().close();
}

async function walkEveryPage(browser) {
  const problems = [];
  for (const lang of LANGUAGES) {
    await Promise.all([walkSignedOut(browser, problems, lang),
      ...DEMO_USERS.map((name) => walkAs(browser, name, problems, lang))]);
  }
  const visits = PAGES.length * (DEMO_USERS.length + 1) * LANGUAGES.length;
  assert.deepEqual(problems, [], `the page walk (${visits} visits) found problems`);
  console.log(`    (${PAGES.length} pages × ${DEMO_USERS.length} demo roles and signed out × ${LANGUAGES.length} languages, axe-core on each)`);
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const errors = [];
  const browser = await chromium.launch({
    executablePath: process.env.CLASSBELL_E2E_CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    step("the page is served with a content security policy that allows no inline script");
    const shell = await fetch(`${BASE}/inbox`);
    assert.equal(shell.status, 200);
    const csp = shell.headers.get("content-security-policy");
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);

    const data = await school();
    const title = `Field trip on Friday ${tag}`;

    step("a teacher and two students sign in, each in a browser context of their own");
    const teacher = await signIn(browser, "ms.rivera", DEMO_PASSWORD, errors);
    const student = await signIn(browser, data.enrolled.username, STRONG, errors);
    const outsider = await signIn(browser, data.outsider.username, STRONG, errors);
    await student.getByRole("heading", { name: "Inbox" }).waitFor();
    await student.waitForFunction((n) => document.querySelector("#badge").textContent.trim() === String(n), data.unread);

    step("the teacher publishes to one section");
    await teacher.getByRole("link", { name: "New announcement" }).click();
    await teacher.getByLabel("Title").fill(title);
    await teacher.getByLabel("Message").fill("Bring a packed lunch and walking shoes.");
    await teacher.getByLabel("Audience").selectOption({ label: `Section ${data.course.code} A (2026-fall)` });
    const published = Date.now();
    await teacher.getByRole("button", { name: "Publish" }).click();
    await teacher.waitForURL(/\/announcements$/);

    step("the enrolled student sees it within 2 seconds, without reloading, and the badge goes up");
    await student.getByText(title).waitFor({ timeout: 2000 });
    const seenAfter = Date.now() - published;
    console.log(`    (arrived ${seenAfter} ms after the publish click)`);
    await student.waitForFunction((n) => document.querySelector("#badge").textContent.trim() === String(n), data.unread + 1, { timeout: 2000 });

    step("the teacher's figures show the recipient, live");
    const card = teacher.locator("article.announcement", { hasText: title });
    await card.getByText(`Section ${data.course.code} A (2026-fall)`).waitFor();
    await card.locator(".total").filter({ hasText: "1" }).waitFor({ timeout: 3000 });
    assert.equal((await card.locator(".acknowledged").textContent()).trim(), "0");

    step("the other student sees nothing");
    await outsider.waitForTimeout(500);
    assert.equal(await outsider.getByText(title).count(), 0);
    assert.equal(await badge(outsider), String(data.unread));

    step("the student opens the message (delivered) and acknowledges it");
    const item = student.locator("article.item", { hasText: title });
    await item.getByRole("button", { name: "Open" }).click();
    await item.getByText("Bring a packed lunch").waitFor();
    await item.locator(".pill.delivered").waitFor({ timeout: 3000 });
    await item.getByRole("button", { name: "Acknowledge" }).click();
    await item.locator(".pill.acknowledged").waitFor({ timeout: 3000 });
    await student.waitForFunction((n) => document.querySelector("#badge").textContent.trim() === String(n), data.unread, { timeout: 3000 });
    await student.screenshot({ path: join(SHOTS, "student-inbox.png"), fullPage: true });

    step("the teacher's figures move without reloading");
    await card.locator(".acknowledged").filter({ hasText: "1" }).waitFor({ timeout: 3000 });
    assert.equal((await card.locator(".rate").textContent()).trim(), "100%");
    step("the teacher's charts draw the section's bar and the acknowledgments over time");
    await card.getByText("Charts").click();
    const bars = card.locator("svg.chart").first();
    await bars.waitFor();
    assert.match(await bars.getAttribute("aria-label"), new RegExp(`${data.course.code} A: 1 of 1 acknowledged`));
    assert.match(await card.locator("svg.chart").nth(1).getAttribute("aria-label"), /^1 of 1 acknowledged/);
    await teacher.screenshot({ path: join(SHOTS, "teacher-announcements.png"), fullPage: true });

    step("after a dropped connection the inbox reconnects and catches up on what it missed");
    const tab = await (await browser.newContext()).newPage();
    // The test stands between the page and the server, so it can cut the line.
    const sockets = [];
    let first = null;
    let hello = false;
    await tab.routeWebSocket(/\/ws\?/, (socket) => {
      sockets.push(socket);
      if (sockets.length > 1) return; // the reconnection waits until the test lets it through
      first = socket.connectToServer();
      first.onMessage((message) => {
        hello ||= String(message).startsWith('{"type":"hello"');
        socket.send(message);
      });
    });
    await tab.goto(`${BASE}/login`);
    await tab.getByLabel("Username or email").fill(data.enrolled.username);
    await tab.getByLabel("Password").fill(STRONG);
    await tab.getByRole("button", { name: "Sign in" }).click();
    await tab.waitForURL(/\/inbox$/);
    await tab.getByText(title).waitFor();
    while (!hello) await tab.waitForTimeout(20);
    first.close();
    sockets[0].close({ code: 4000, reason: "network lost" });
    const missed = `Room change ${tag}`;
    const teacherToken = await token("ms.rivera", DEMO_PASSWORD);
    await call("POST", "/api/announcements", teacherToken, {
      title: missed, body: "Room 12 today.", audience: { kind: "section", section_id: data.section.id },
    });
    while (sockets.length < 2) await tab.waitForTimeout(50);
    assert.match(sockets[1].url(), /since=/, "it resumes from its cursor");
    await tab.waitForTimeout(300); // the announcement is fanned out before the connection is back
    sockets[1].connectToServer();
    await tab.getByText(missed).waitFor({ timeout: 3000 });
    assert.equal(await tab.locator("article.item").count(), data.held + 2);

    step("a registrar imports a roster with Chinese names: a dry run first, then for real");
    const registrar = await signIn(browser, "registrar", DEMO_PASSWORD, errors);
    await registrar.getByRole("link", { name: "Users" }).click();
    await registrar.getByRole("heading", { name: "Roster" }).waitFor();
    const newcomer = `xiao.ming-${tag}`;
    const roster = "username,display_name,email,role,number\n"
      + `${newcomer},小明,${newcomer}@school.example,student,E2E-${tag}\n`
      + `li.hua-${tag},李华,li.hua-${tag}@school.example,student,\n`;
    const file = { name: "roster.csv", mimeType: "text/csv", buffer: Buffer.from(roster) };
    await registrar.locator('input[type="file"]').setInputFiles(file);
    await registrar.getByRole("button", { name: "Import" }).click();
    await registrar.getByText("2 rows would be imported, 0 with problems.").waitFor({ timeout: 10000 });
    assert.equal(await registrar.getByRole("cell", { name: "小明", exact: true }).count(), 0, "a dry run makes nobody");
    await registrar.getByLabel(/Check only/).uncheck();
    await registrar.locator('input[type="file"]').setInputFiles(file);
    await registrar.getByRole("button", { name: "Import" }).click();
    await registrar.getByText("2 rows imported, 0 with problems.").waitFor({ timeout: 10000 });
    await registrar.getByRole("cell", { name: "小明", exact: true }).waitFor();
    await registrar.screenshot({ path: join(SHOTS, "registrar-users.png"), fullPage: true });

    step("enrolled after the section's announcements went out, the newcomer accepts the invitation and finds them");
    const admin = await token("admin", DEMO_PASSWORD);
    const person = (await call("GET", `/api/users?q=${encodeURIComponent(newcomer)}`, admin)).items[0];
    await call("POST", `/api/sections/${data.section.id}/enrollments`, admin, { student_id: person.id });
    const welcome = await (await browser.newContext()).newPage();
    await welcome.goto(mailLink(`${newcomer}@school.example`, "/accept-invitation").replace(/^https?:\/\/[^/]+/, BASE));
    await welcome.getByLabel("New password").waitFor();
    assert.ok(!welcome.url().includes("token="), "the token leaves the address bar");
    await welcome.getByLabel("New password").fill(STRONG);
    await welcome.getByRole("button", { name: "Set password" }).click();
    await welcome.getByText("Your password is set.").waitFor();
    await welcome.waitForURL(/\/login$/, { timeout: 6000 });
    await welcome.getByLabel("Username or email").fill(newcomer);
    await welcome.getByLabel("Password").fill(STRONG);
    await welcome.getByRole("button", { name: "Sign in" }).click();
    await welcome.waitForURL(/\/inbox$/);
    await welcome.getByText(title).waitFor();
    await welcome.getByText(missed).waitFor();

    for (const lang of LANGUAGES) await journey(browser, lang, data, errors);

    step("a browser that asks for Chinese gets the app in Chinese; the picker switches at once and remembers");
    const chinese = await signIn(browser, data.enrolled.username, STRONG, errors, "zh-CN");
    await chinese.getByRole("heading", { name: "收件箱" }).waitFor();
    await chinese.getByLabel("语言").selectOption("en");
    await chinese.getByRole("heading", { name: "Inbox" }).waitFor();
    assert.equal(await chinese.evaluate(() => document.documentElement.lang), "en");
    const studentToken = await token(data.enrolled.username, STRONG);
    assert.equal((await call("GET", "/auth/me", studentToken)).locale, "en", "the choice is saved on the account");

    step("the register links show while registration is open");
    const visitor = await (await browser.newContext()).newPage();
    await visitor.goto(`${BASE}/login`);
    await visitor.locator('#nav a[href="/register"]').waitFor();
    await visitor.getByRole("link", { name: "Create an account" }).waitFor();
    if (CLOSED_BASE) {
      step("with registration closed, no register link shows and /register says so");
      const turnedAway = await (await browser.newContext()).newPage();
      await turnedAway.goto(`${CLOSED_BASE}/login`);
      await turnedAway.getByRole("button", { name: "Sign in" }).waitFor();
      await turnedAway.waitForLoadState("networkidle");
      assert.equal(await turnedAway.locator('a[href="/register"]').count(), 0, "no register link");
      await turnedAway.goto(`${CLOSED_BASE}/register`);
      await turnedAway.getByText("Registration is closed").waitFor();
      assert.equal(await turnedAway.getByRole("button", { name: "Create account" }).count(), 0);
    }

    step("the register page shows the rules and refuses a weak password");
    await visitor.goto(`${BASE}/register`);
    await visitor.getByLabel("Username").fill(`pat-${tag}`);
    await visitor.getByLabel("Email").fill(`pat-${tag}@school.example`);
    await visitor.getByLabel("Password").fill("password");
    const rules = visitor.locator("#password-rules li");
    await rules.first().waitFor();
    assert.ok((await rules.count()) >= 4, "the rules are listed");
    await visitor.waitForFunction(() => document.querySelectorAll("#password-rules li:not(.ok)").length >= 2);
    await visitor.getByRole("button", { name: "Create account" }).click();
    await visitor.getByRole("alert").waitFor();
    assert.match(await visitor.getByRole("alert").textContent(), /password/i);
    assert.ok(visitor.url().endsWith("/register"));
    step("a strong one ticks every rule, and the account is made");
    await visitor.getByLabel("Password").fill(STRONG);
    await visitor.waitForFunction(() => document.querySelectorAll("#password-rules li:not(.ok)").length === 0);
    await visitor.getByRole("button", { name: "Create account" }).click();
    await visitor.getByText("Your account is ready.").waitFor();
    await visitor.waitForURL(/\/login$/, { timeout: 6000 });

    step("the reset-password flow works from the link in the mail");
    const forgetful = await (await browser.newContext()).newPage();
    await forgetful.goto(`${BASE}/forgot-password`);
    await forgetful.getByLabel("Email").fill(data.outsider.email);
    await forgetful.getByRole("button", { name: "Send" }).click();
    await forgetful.getByText("on its way").waitFor();
    const link = mailLink(data.outsider.email, "/reset-password");
    await forgetful.goto(link.replace(/^https?:\/\/[^/]+/, BASE));
    await forgetful.getByLabel("New password").waitFor();
    assert.ok(!forgetful.url().includes("token="), "the token leaves the address bar");
    await forgetful.getByLabel("New password").fill("Quiet-Harbour-93");
    await forgetful.getByRole("button", { name: "Set password" }).click();
    await forgetful.getByText("Your password is set.").waitFor();
    await forgetful.waitForURL(/\/login$/, { timeout: 6000 });
    await forgetful.getByLabel("Username or email").fill(data.outsider.username);
    await forgetful.getByLabel("Password").fill("Quiet-Harbour-93");
    await forgetful.getByRole("button", { name: "Sign in" }).click();
    await forgetful.waitForURL(/\/inbox$/);

    step("the app works at phone width");
    const phone = await (await browser.newContext({ viewport: { width: 375, height: 740 } })).newPage();
    await phone.goto(`${BASE}/login`);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px)`);

    step("every page of the page list renders as each demo role and signed out, without errors");
    await walkEveryPage(browser);

    assert.deepEqual(errors, [], "no script errors in any page");
    console.log(`browser tests passed; screenshots in ${SHOTS}`);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
