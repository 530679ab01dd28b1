// Search the caller's course material.

import { api, describeError } from "../api.js";
import { clear, field, formData, h } from "../dom.js";
import { citationLink } from "./pages.js";

export function searchView(app) {
  const results = h("div", { class: "results", "aria-live": "polite" });
  const form = h("form", {
    class: "inline", role: "search",
    onsubmit: async (event) => {
      event.preventDefault();
      const { query, course } = formData(form);
      clear(results).append(h("p", { class: "hint" }, "Searching…"));
      try {
        const reply = await api.post("/search", { query, top_k: 10, course: course || undefined });
        clear(results);
        if (!reply.results.length) results.append(h("p", {}, "Nothing in your material matches that."));
        const list = h("ol", { class: "hits" });
        for (const hit of reply.results) {
          list.append(h("li", {}, h("p", { class: "hit-title" }, citationLink(app, hit),
            h("span", { class: "hint" }, ` · ${hit.course} · score ${hit.score.toFixed(2)}`)),
          h("p", { class: "hit-text" }, hit.text)));
        }
        results.append(list);
      } catch (err) {
        clear(results).append(h("p", { class: "error", role: "alert" }, describeError(err)));
      }
    },
  },
  field("Search your material", h("input", { name: "query", type: "search", required: true, maxlength: 1000 })),
  field("Course (optional)", h("input", { name: "course", maxlength: 100 })),
  h("button", { type: "submit" }, "Search"));
  return h("section", { class: "card" }, h("h1", {}, "Search"), form, results);
}
