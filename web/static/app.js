// The shell: who is signed in, the navigation for their role, and a hash router over the views.

import { api, describeError } from "./api.js";
import { clear, h } from "./dom.js";
import { adminView } from "./views/admin.js";
import { signInView, registerView } from "./views/auth.js";
import { documentsView } from "./views/documents.js";
import { examsView, examView } from "./views/exams.js";
import { profileView } from "./views/profile.js";
import { searchView } from "./views/search.js";
import { tutorView } from "./views/tutor.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const statusBox = document.getElementById("status");

export const app = {
  me: null,

  async loadMe() {
    this.me = api.signedIn ? await api.get("/me") : null;
    renderNav();
    return this.me;
  },

  say(text, kind = "info") {
    clear(statusBox);
    if (!text) return;
    statusBox.className = `status ${kind}`;
    statusBox.append(h("p", {}, text), h("button", { type: "button", class: "link", onclick: () => this.say("") },
      "Dismiss"));
  },

  fail(error) {
    this.say(describeError(error), "error");
  },

  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },

  placed() {
    return Boolean(this.me?.faculty_id && this.me?.semester_id);
  },
};

const LINKS = {
  student: [["#/tutor", "Tutor"], ["#/search", "Search"], ["#/exams", "Exams"], ["#/profile", "Profile"]],
  academic: [["#/documents", "Documents"], ["#/exams", "Exams"], ["#/search", "Search"], ["#/tutor", "Tutor"],
    ["#/profile", "Profile"]],
  admin: [["#/admin/users", "Users"], ["#/documents", "Documents"], ["#/exams", "Exams"], ["#/search", "Search"],
    ["#/profile", "Profile"]],
};

function renderNav() {
  clear(nav);
  const list = h("ul");
  if (!app.me) {
    list.append(h("li", {}, h("a", { href: "#/login" }, "Sign in")), h("li", {}, h("a", { href: "#/register" },
      "Register")));
  } else {
    for (const [href, text] of LINKS[app.me.role] || LINKS.student) {
      const current = location.hash.startsWith(href) ? "page" : null;
      list.append(h("li", {}, h("a", { href, "aria-current": current }, text)));
    }
    list.append(h("li", {}, h("button", {
      type: "button", class: "link", onclick: async () => {
        try {
          await api.logout();
        } catch (error) {
          app.fail(error);
        }
        app.go("#/login");
      },
    }, `Sign out (${app.me.full_name || app.me.email})`)));
  }
  nav.append(list);
}

const ROUTES = [
  [/^#\/login$/, () => signInView(app), false],
  [/^#\/register$/, () => registerView(app), false],
  [/^#\/profile$/, () => profileView(app), true],
  [/^#\/search$/, () => searchView(app), true],
  [/^#\/tutor(?:\/([\w-]+))?$/, (m) => tutorView(app, m[1]), true],
  [/^#\/exams$/, () => examsView(app), true],
  [/^#\/exams\/([\w-]+)$/, (m) => examView(app, m[1]), true],
  [/^#\/documents$/, () => documentsView(app), true],
  [/^#\/admin\/users$/, () => adminView(app), true],
];

function home() {
  if (!app.me) return "#/login";
  if (app.me.role === "admin") return "#/admin/users";
  if (app.me.role === "academic") return "#/documents";
  return app.placed() ? "#/tutor" : "#/profile";
}

let routeToken = 0;

async function route() {
  const token = ++routeToken;
  const hash = location.hash || "#/";
  const match = ROUTES.map(([pattern, view, needsAuth]) => [pattern.exec(hash), view, needsAuth])
    .find(([m]) => m);
  if (!match) {
    app.go(home());
    return;
  }
  const [m, view, needsAuth] = match;
  if (needsAuth && !app.me) {
    app.go("#/login");
    return;
  }
  renderNav();
  clear(main);
  try {
    const content = await view(m);
    if (token !== routeToken) return; // the user moved on while this view was loading
    clear(main);
    main.append(content);
  } catch (error) {
    if (token !== routeToken) return;
    app.fail(error);
  }
  const heading = main.querySelector("h1");
  (heading || main).setAttribute("tabindex", "-1");
  (heading || main).focus();
}

api.onSignedOut = () => {
  app.me = null;
  renderNav();
  if (!location.hash.startsWith("#/login") && !location.hash.startsWith("#/register")) {
    app.say("Your session has ended. Please sign in again.");
    app.go("#/login");
  }
};

window.addEventListener("hashchange", route);

(async () => {
  try {
    await app.loadMe();
  } catch (error) {
    if (error.status !== 401) app.fail(error);
  }
  route();
})();
