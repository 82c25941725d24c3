// Signing in and out, registering, and the password pages.

import { api, registration, session } from "../api.js";
import { field, h, notice, replace, values } from "../dom.js";
import { explain, t } from "../i18n.js";

function failure(box, error) {
  replace(box, notice(explain(error), "bad"));
}

/** A list of the password rules that ticks as the user types. */
function passwordRules(form, passwordName, owner = () => ({})) {
  const list = h("ul", { class: "rules", id: "password-rules", "aria-live": "polite" });
  let timer;
  const check = async () => {
    const password = form.elements[passwordName].value;
    const result = await api("POST", "/auth/password-policy", { password, ...owner() });
    replace(list, result.rules.map((rule) => h("li", { class: rule.ok ? "ok" : "" }, t(`password.rule.${rule.id}`))));
  };
  form.elements[passwordName].addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 150);
  });
  check();
  return list;
}

/** "Taking you to sign in in 3…", then there. */
function countdown(box, text, go) {
  let left = 3;
  const tick = () => {
    replace(box, notice(t("account.taking_you", { text, left }), "good"));
    if (left-- === 0) return go("/login");
    timer = setTimeout(tick, 1000);
  };
  let timer;
  tick();
  return () => clearTimeout(timer);
}

export async function home(main, { allowed }) {
  const me = await api("GET", "/auth/me");
  replace(
    main,
    h("h1", {}, t("home.hello", { name: me.display_name })),
    h("p", { id: "role", dataset: { role: me.role } }, t("home.signed_in_as", { role: t(`role.${me.role}`) })),
    h("p", {}, h("a", { class: "button", href: "/inbox", "data-link": true }, t("home.open_inbox")),
      " ", allowed("/announcements") && h("a", { class: "button secondary", href: "/announcements", "data-link": true }, t("home.your_announcements"))),
  );
}

export function login(main, { go, live }) {
  const box = h("div");
  const form = h("form", { class: "stack", novalidate: true },
    field(t("login.username_or_email"), { name: "username", autocomplete: "username", required: true }),
    field(t("field.password"), { name: "password", type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit" }, t("login.submit")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const tokens = await api("POST", "/auth/login", values(form));
      session.set(tokens);
      live.stop();
      window.dispatchEvent(new Event("classbell:signed-in"));
      go(tokens.user.role === "student" ? "/inbox" : "/announcements");
    } catch (error) {
      if (error.code === "unauthorized") replace(box, notice(t("login.failed"), "bad"));
      else failure(box, error);
    }
  });
  const links = h("p", { class: "muted" },
    h("a", { href: "/forgot-username", "data-link": true }, t("login.forgot_username")), " · ",
    h("a", { href: "/forgot-password", "data-link": true }, t("login.forgot_password")));
  replace(main, h("h1", {}, t("login.title")), box, form, links);
  registration().then((policy) => {
    if (policy.mode !== "closed") links.prepend(h("a", { href: "/register", "data-link": true }, t("login.create_account")), " · ");
  });
}

export async function register(main, { go }) {
  const policy = await registration();
  if (policy.mode === "closed") {
    replace(main, h("h1", {}, t("register.title")),
      notice(t("register.closed"), "bad"),
      h("p", {}, h("a", { href: "/login", "data-link": true }, t("login.submit"))));
    return null;
  }
  const box = h("div");
  const form = h("form", { class: "stack", novalidate: true },
    field(t("field.username"), { name: "username", autocomplete: "username", required: true }),
    field(t("field.email"), { name: "email", type: "email", autocomplete: "email", required: true }),
    field(t("field.password"), { name: "password", type: "password", autocomplete: "new-password", required: true }),
  );
  const rules = passwordRules(form, "password", () => ({
    username: form.elements.username.value, email: form.elements.email.value,
  }));
  form.append(h("div", {}, h("p", { class: "muted" }, t("register.rules")), rules),
    h("button", { type: "submit" }, t("register.submit")));
  let stop = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/auth/register", values(form));
      form.hidden = true;
      stop = countdown(box, t("register.ready"), go);
    } catch (error) {
      failure(box, error);
    }
  });
  const hint = policy.mode === "domains"
    && h("p", { class: "muted" }, t("register.domains", { domains: policy.domains.join(", ") }));
  replace(main, h("h1", {}, t("register.title")), hint, box, form);
  return () => stop?.();
}

function mailForm(main, title, path, sent) {
  const box = h("div");
  const form = h("form", { class: "stack" },
    field(t("field.email"), { name: "email", type: "email", autocomplete: "email", required: true }),
    h("button", { type: "submit" }, t("mail_form.send")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", path, values(form));
      replace(box, notice(sent, "good"));
    } catch (error) {
      failure(box, error);
    }
  });
  replace(main, h("h1", {}, title), box, form);
}

export function forgotUsername(main) {
  mailForm(main, t("forgot_username.title"), "/auth/forgot-username", t("forgot_username.sent"));
}

export function forgotPassword(main) {
  mailForm(main, t("forgot_password.title"), "/auth/forgot-password", t("forgot_password.sent"));
}

/** A page that sets a password with a mailed token: the reset and the invitation. */
function passwordFromMail(main, go, { path, endpoint, title, done, missing }) {
  // The mail's link carries the token in the fragment, which browsers never
  // send to a server (so no log sees it); links from before came as ?token=.
  const token = new URLSearchParams(location.hash.slice(1)).get("token")
    ?? new URLSearchParams(location.search).get("token") ?? "";
  // Out of the address bar and the history: the token is a credential.
  history.replaceState({}, "", path);
  const box = h("div");
  if (!token) {
    // Not an error: the token leaves the address as soon as the page reads it,
    // so a reload, the history or a bookmark brings the visitor here without one.
    replace(main, h("h1", {}, title), ...missing);
    return null;
  }
  const form = h("form", { class: "stack", novalidate: true },
    field(t("field.new_password"), { name: "new_password", type: "password", autocomplete: "new-password", required: true }));
  form.append(passwordRules(form, "new_password"), h("button", { type: "submit" }, t("password.set")));
  let stop = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", endpoint, { token, new_password: form.elements.new_password.value });
      form.hidden = true;
      stop = countdown(box, done, go);
    } catch (error) {
      failure(box, error);
    }
  });
  replace(main, h("h1", {}, title), box, form);
  return () => stop?.();
}

export function resetPassword(main, { go }) {
  return passwordFromMail(main, go, {
    path: "/reset-password",
    endpoint: "/auth/reset-password",
    title: t("reset.title"),
    done: t("reset.done"),
    missing: [notice(t("reset.missing")),
      h("a", { href: "/forgot-password", "data-link": true }, t("reset.new_link"))],
  });
}

export function acceptInvitation(main, { go }) {
  return passwordFromMail(main, go, {
    path: "/accept-invitation",
    endpoint: "/auth/accept-invitation",
    title: t("invitation.title"),
    done: t("invitation.done"),
    missing: [notice(t("invitation.missing"))],
  });
}

export function changePassword(main, { go, live }) {
  const box = h("div");
  const form = h("form", { class: "stack", novalidate: true },
    field(t("field.current_password"), { name: "current_password", type: "password", autocomplete: "current-password", required: true }),
    field(t("field.new_password"), { name: "new_password", type: "password", autocomplete: "new-password", required: true }));
  form.append(passwordRules(form, "new_password"), h("button", { type: "submit" }, t("change_password.submit")));
  let stop = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/auth/change-password", values(form));
      session.clear();
      live.stop();
      form.hidden = true;
      stop = countdown(box, t("change_password.done"), go);
    } catch (error) {
      failure(box, error);
    }
  });
  replace(main, h("h1", {}, t("change_password.title")), box, form);
  return () => stop?.();
}
