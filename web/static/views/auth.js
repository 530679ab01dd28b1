// Sign in and register.

import { api, describeError } from "../api.js";
import { field, formData, h } from "../dom.js";

function page(title, ...children) {
  return h("section", { class: "card narrow" }, h("h1", {}, title), children);
}

export function signInView(app) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const { email, password } = formData(form);
      try {
        await api.login(email, password);
        await app.loadMe();
        app.say("");
        app.go("#/");
      } catch (err) {
        error.textContent = describeError(err);
      }
    },
  },
  field("Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
  field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password",
    required: true })),
  error,
  h("button", { type: "submit" }, "Sign in"));
  return page("Sign in", form, h("p", {}, "New here? ", h("a", { href: "#/register" }, "Create an account")));
}

export function registerView(app) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const body = formData(form);
      try {
        await api.register(body);
        await api.login(body.email, body.password);
        await app.loadMe();
        app.say("Welcome! Choose your faculty, department and semester to see your course material.");
        app.go("#/profile");
      } catch (err) {
        error.textContent = describeError(err);
      }
    },
  },
  field("Full name", h("input", { name: "full_name", autocomplete: "name", required: true, maxlength: 200 })),
  field("Email", h("input", { name: "email", type: "email", autocomplete: "email", required: true })),
  field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true,
    minlength: 8 }), "At least 8 characters; common passwords are refused."),
  error,
  h("button", { type: "submit" }, "Create account"));
  return page("Create an account", form, h("p", {}, "Already registered? ", h("a", { href: "#/login" }, "Sign in")));
}
