// Signing in and out, registering, and the password pages.

import { api, registration, session } from "../api.js";
import { field, h, notice, replace, values } from "../dom.js";

function failure(box, error) {
  replace(box, notice([error.message, ...error.details()].join(" — "), "bad"));
}

/** A list of the password rules that ticks as the user types. */
function passwordRules(form, passwordName, owner = () => ({})) {
  const list = h("ul", { class: "rules", id: "password-rules", "aria-live": "polite" });
  let timer;
  const check = async () => {
    const password = form.elements[passwordName].value;
    const result = await api("POST", "/auth/password-policy", { password, ...owner() });
    replace(list, result.rules.map((rule) => h("li", { class: rule.ok ? "ok" : "" }, rule.message)));
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
    replace(box, notice(`${text} Taking you to sign in in ${left}…`, "good"));
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
    h("h1", {}, `Hello, ${me.display_name}`),
    h("p", {}, "You are signed in as ", h("b", { id: "role" }, me.role), "."),
    h("p", {}, h("a", { class: "button", href: "/inbox", "data-link": true }, "Open your inbox"),
      " ", allowed("/announcements") && h("a", { class: "button secondary", href: "/announcements", "data-link": true }, "Your announcements")),
  );
}

export function login(main, { go, live }) {
  const box = h("div");
  const form = h("form", { class: "stack", novalidate: true },
    field("Username or email", { name: "username", autocomplete: "username", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit" }, "Sign in"),
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
      failure(box, error);
    }
  });
  const links = h("p", { class: "muted" },
    h("a", { href: "/forgot-username", "data-link": true }, "Forgot your username?"), " · ",
    h("a", { href: "/forgot-password", "data-link": true }, "Forgot your password?"));
  replace(main, h("h1", {}, "Sign in"), box, form, links);
  registration().then((policy) => {
    if (policy.mode !== "closed") links.prepend(h("a", { href: "/register", "data-link": true }, "Create an account"), " · ");
  });
}

export async function register(main, { go }) {
  const policy = await registration();
  if (policy.mode === "closed") {
    replace(main, h("h1", {}, "Create an account"),
      notice("Registration is closed: the school creates accounts. Ask the school office for yours.", "bad"),
      h("p", {}, h("a", { href: "/login", "data-link": true }, "Sign in")));
    return null;
  }
  const box = h("div");
  const form = h("form", { class: "stack", novalidate: true },
    field("Username", { name: "username", autocomplete: "username", required: true }),
    field("Email", { name: "email", type: "email", autocomplete: "email", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "new-password", required: true }),
  );
  const rules = passwordRules(form, "password", () => ({
    username: form.elements.username.value, email: form.elements.email.value,
  }));
  form.append(h("div", {}, h("p", { class: "muted" }, "Your password must:"), rules),
    h("button", { type: "submit" }, "Create account"));
  let stop = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/auth/register", values(form));
      form.hidden = true;
      stop = countdown(box, "Your account is ready.", go);
    } catch (error) {
      failure(box, error);
    }
  });
  const hint = policy.mode === "domains"
    && h("p", { class: "muted" }, `Use your address at ${policy.domains.join(" or ")}.`);
  replace(main, h("h1", {}, "Create an account"), hint, box, form);
  return () => stop?.();
}

function mailForm(main, title, path, sent) {
  const box = h("div");
  const form = h("form", { class: "stack" },
    field("Email", { name: "email", type: "email", autocomplete: "email", required: true }),
    h("button", { type: "submit" }, "Send"));
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
  mailForm(main, "Forgot your username", "/auth/forgot-username",
    "If an account uses that address, its username is on its way by mail.");
}

export function forgotPassword(main) {
  mailForm(main, "Forgot your password", "/auth/forgot-password",
    "If an account uses that address, a link to set a new password is on its way by mail.");
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
    field("New password", { name: "new_password", type: "password", autocomplete: "new-password", required: true }));
  form.append(passwordRules(form, "new_password"), h("button", { type: "submit" }, "Set password"));
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
    title: "Set a new password",
    done: "Your password is set.",
    missing: [notice("To set a new password, open the link in the mail we sent you, or ask for a new one."),
      h("a", { href: "/forgot-password", "data-link": true }, "Send me a new link")],
  });
}

export function acceptInvitation(main, { go }) {
  return passwordFromMail(main, go, {
    path: "/accept-invitation",
    endpoint: "/auth/accept-invitation",
    title: "Welcome: choose your password",
    done: "Your password is set. Welcome to classbell.",
    missing: [notice("To choose your password, open the link in the invitation mail. If it has run out, ask the school office for a new one.")],
  });
}

export function changePassword(main, { go, live }) {
  const box = h("div");
  const form = h("form", { class: "stack", novalidate: true },
    field("Current password", { name: "current_password", type: "password", autocomplete: "current-password", required: true }),
    field("New password", { name: "new_password", type: "password", autocomplete: "new-password", required: true }));
  form.append(passwordRules(form, "new_password"), h("button", { type: "submit" }, "Change password"));
  let stop = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/auth/change-password", values(form));
      session.clear();
      live.stop();
      form.hidden = true;
      stop = countdown(box, "Your password is changed and every session has ended.", go);
    } catch (error) {
      failure(box, error);
    }
  });
  replace(main, h("h1", {}, "Change your password"), box, form);
  return () => stop?.();
}
