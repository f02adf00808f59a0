// The console's shell: a client router on location.pathname (history.pushState, links
// intercepted), the sign-in page, the nav bar's user and sign-out. Each page module
// renders into <main> and resolves once its data is on screen; then
// document.body.dataset.ready names the page (the browser tests wait for it).

import { api, ApiError, get, post, session, setUnauthorizedHandler } from "./api.js";
import { clear, h, showError } from "./dom.js";

const ROUTES = [
  [/^\/$/, "map", () => import("./map.js")],
  [/^\/nodes\/([^/]+)$/, "node", () => import("./node.js")],
  [/^\/schedules$/, "schedules", () => import("./schedules.js")],
  [/^\/energy$/, "energy", () => import("./pages.js").then((m) => m.energy)],
  [/^\/faults$/, "faults", () => import("./pages.js").then((m) => m.faults)],
  [/^\/rollouts$/, "rollouts", () => import("./pages.js").then((m) => m.rollouts)],
  [/^\/audit$/, "audit", () => import("./pages.js").then((m) => m.audit)],
];

const main = document.getElementById("main");
let current = null; // {controller, leave: [fn]} of the page on screen
let serial = 0;

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

function signinPath() {
  const here = location.pathname + location.search;
  return here.startsWith("/signin") ? here : `/signin?next=${encodeURIComponent(here)}`;
}

setUnauthorizedHandler(() => {
  session.user = session.role = session.csrf = null;
  showWho();
  if (!location.pathname.startsWith("/signin")) navigate(signinPath(), { replace: true });
});

function showWho() {
  const who = document.getElementById("whoami");
  const out = document.getElementById("signout");
  who.textContent = session.user ? `${session.user} (${session.role})` : "";
  out.hidden = !session.user;
}

function markNav(page) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function leavePage() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.leave) {
    try {
      fn();
    } catch (err) {
      console.error(err);
    }
  }
  current = null;
}

async function route() {
  const mine = ++serial;
  delete document.body.dataset.ready;
  leavePage();
  const path = location.pathname;
  clear(main);
  if (path === "/signin") {
    markNav(null);
    renderSignin();
    document.body.dataset.ready = "signin";
    return;
  }
  if (!session.csrf) {
    try {
      Object.assign(session, await get("/api/me"));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        navigate(signinPath(), { replace: true });
        return;
      }
      showError(main.appendChild(h("p", { class: "result" })), err);
      return;
    }
    showWho();
    if (mine !== serial) return;
  }
  const found = ROUTES.map(([re, name, load]) => [path.match(re), name, load]).find((r) => r[0]);
  if (!found) {
    markNav(null);
    main.appendChild(h("h1", {}, "Not found"));
    main.appendChild(h("p", {}, `No page at ${path}. `, h("a", { href: "/" }, "Back to the map")));
    return;
  }
  const [match, name, load] = found;
  markNav(name === "node" ? "map" : name);
  const page = { controller: new AbortController(), leave: [] };
  current = page;
  const ctx = {
    signal: page.controller.signal,
    onLeave: (fn) => page.leave.push(fn),
    navigate,
    isCurrent: () => current === page,
    // A page that reloads its data (a filter changed) says so; a page left says nothing.
    busy: () => current === page && delete document.body.dataset.ready,
    ready: () => {
      if (current === page) document.body.dataset.ready = name;
    },
  };
  const root = main.appendChild(h("div", { class: `page page-${name}` }));
  try {
    const mod = await load();
    if (current !== page) return;
    await mod.render(root, match.slice(1).map(decodeURIComponent), ctx);
  } catch (err) {
    if (current !== page) return;
    if (!(err instanceof ApiError)) console.error(err); // a bug here, not an answer
    showError(root.appendChild(h("p", { class: "result", id: "page-error" })), err);
  }
  if (current === page) {
    document.body.dataset.ready = name;
    main.focus({ preventScroll: true });
  }
}

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only a path on this site: never "//host" or "https://..."
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/signin")
    ? next
    : "/";
}

function renderSignin() {
  const err = h("p", { id: "signin-error", class: "result", "aria-live": "polite" });
  const user = h("input", { id: "signin-user", name: "user", autocomplete: "username", required: true });
  const pass = h("input", {
    id: "signin-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const button = h("button", { id: "signin-submit", type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "signin card", novalidate: true },
    h("h1", {}, "Sign in to Lanterna"),
    h("label", { class: "field" }, h("span", {}, "User name"), user),
    h("label", { class: "field" }, h("span", {}, "Password"), pass),
    button,
    err,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    if (!user.value || !pass.value) {
      showError(err, new Error("enter your user name and password"));
      return;
    }
    button.disabled = true;
    try {
      const me = await post("/api/signin", { user: user.value, password: pass.value });
      Object.assign(session, me);
      showWho();
      navigate(safeNext(), { replace: true });
    } catch (e) {
      showError(err, e);
      pass.value = "";
    } finally {
      button.disabled = false;
    }
  });
  main.appendChild(form);
  user.focus();
}

document.getElementById("signout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/signout", {});
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) console.error(err);
  }
  session.user = session.role = session.csrf = null;
  showWho();
  navigate("/signin", { replace: true });
});

// Same-origin links go through the router; modified clicks and downloads do not.
document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  const a = ev.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  if (url.pathname.startsWith("/static/")) return;
  ev.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) {
    navigate(url.pathname + url.search);
  }
});

window.addEventListener("popstate", route);
route();
