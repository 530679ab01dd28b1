// Cited pages: a citation is a link that opens the page (its text and its rendering) in a dialog.

import { api, describeError } from "../api.js";
import { clear, h } from "../dom.js";

export function pagePath(documentId, page) {
  return `/documents/${encodeURIComponent(documentId)}/pages/${encodeURIComponent(page)}`;
}

export function citationLink(app, citation) {
  const unit = { slide: "slide", section: "section" }[citation.unit] || "p.";
  const label = `${citation.title || "Document"}, ${unit} ${citation.page}${citation.ocr ? " (OCR)" : ""}`;
  return h("a", {
    href: `#${pagePath(citation.document_id, citation.page)}`, class: "citation",
    onclick: (event) => {
      event.preventDefault();
      openPage(app, citation);
    },
  }, label);
}

export async function openPage(app, citation) {
  const body = h("div", { class: "page-body" }, h("p", { class: "hint" }, "Loading the page…"));
  const close = h("button", { type: "button", onclick: () => dialog.close() }, "Close");
  const dialog = h("dialog", { class: "page", "aria-labelledby": "page-title" },
    h("h2", { id: "page-title" }, `${citation.title || "Document"} — page ${citation.page}`), body, close);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  try {
    const path = pagePath(citation.document_id, citation.page);
    const page = await api.get(path);
    clear(body);
    if (page.image_url) {
      try {
        const src = await api.blobUrl(page.image_url.replace(api.base, ""));
        body.append(h("img", { src, alt: `Page ${citation.page} of ${citation.title || "the document"}` }));
      } catch {
        /* the text below is the page too */
      }
    }
    body.append(h("pre", { class: "page-text" }, page.text || ""));
  } catch (error) {
    clear(body).append(h("p", { class: "error", role: "alert" }, describeError(error)));
  }
}
