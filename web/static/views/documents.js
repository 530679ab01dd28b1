// Academics' documents: drag-and-drop upload with live progress per document, the list by course,
// errors of failed ingestions, and delete.

import { api, describeError } from "../api.js";
import { clear, field, formData, h } from "../dom.js";

const POLL_MS = 1000;
const ACCEPT = ".pdf,.pptx,.docx,.md,.markdown,.html,.htm,application/pdf";

function progressLabel(doc) {
  const p = doc.progress;
  if (doc.status === "ready") return `ready · ${doc.pages ?? "?"} pages · ${doc.chunks ?? "?"} chunks`;
  if (doc.status === "failed") return "failed";
  if (p && (p.total || p.pages_total)) {
    return `${doc.status}${p.stage ? ` (${p.stage})` : ""} · ${p.done ?? p.pages_done ?? 0}/${p.total ?? p.pages_total}`;
  }
  return doc.status;
}

export async function documentsView(app) {
  const rows = h("tbody");
  const filter = h("input", { name: "course", maxlength: 100 });
  let timer = null;

  const render = (documents) => {
    clear(rows);
    for (const doc of documents) {
      const p = doc.progress;
      const total = p?.total ?? p?.pages_total;
      const done = p?.done ?? p?.pages_done;
      const bar = total && doc.status !== "ready" && doc.status !== "failed"
        ? h("progress", { max: total, value: done ?? 0, "aria-label": `Progress of ${doc.title}` }) : null;
      rows.append(h("tr", { "data-status": doc.status },
        h("td", {}, doc.title), h("td", {}, doc.course),
        h("td", {}, h("span", { class: `badge ${doc.status}` }, progressLabel(doc)), bar,
          doc.error ? h("p", { class: "error" }, doc.error) : null),
        h("td", {}, h("button", {
          type: "button", class: "link danger", "aria-label": `Delete ${doc.title}`,
          onclick: async () => {
            if (!window.confirm(`Delete “${doc.title}” and its search index?`)) return;
            try {
              await api.del(`/documents/${doc.id}`);
              load();
            } catch (error) {
              app.fail(error);
            }
          },
        }, "Delete"))));
    }
    if (!documents.length) rows.append(h("tr", {}, h("td", { colspan: 4, class: "hint" }, "No documents yet.")));
  };

  const load = async () => {
    clearTimeout(timer);
    if (!table.isConnected && timer !== null) return;
    try {
      const reply = await api.get("/documents", { course: filter.value || undefined, limit: 200 });
      render(reply.documents);
      if (reply.documents.some((d) => d.status === "queued" || d.status === "processing")) {
        timer = setTimeout(load, POLL_MS);
      }
    } catch (error) {
      app.fail(error);
    }
  };

  const uploadError = h("p", { class: "error", role: "alert" });
  const fileInput = h("input", { name: "file", type: "file", accept: ACCEPT, multiple: true });
  const uploadForm = h("form", { class: "upload" },
    h("div", { class: "row" },
      field("Course", h("input", { name: "course", required: true, maxlength: 100 })),
      field("Semester id", h("input", { name: "semester_id", type: "number", min: 1, required: true })),
      app.me.role === "admin" ? field("Faculty id", h("input", { name: "faculty_id", type: "number", min: 1,
        value: app.me.faculty_id ?? "" })) : null),
    field("Files (PDF, PPTX, DOCX, Markdown, HTML)", fileInput, "Or drop files on this box."),
    uploadError, h("button", { type: "submit" }, "Upload"));

  const upload = async (files) => {
    uploadError.textContent = "";
    if (!uploadForm.reportValidity()) return;
    const values = formData(uploadForm);
    for (const file of files) {
      const form = new FormData();
      form.append("file", file);
      form.append("course", values.course);
      form.append("semester_id", values.semester_id);
      if (values.faculty_id) form.append("faculty_id", values.faculty_id);
      else if (app.me.faculty_id) form.append("faculty_id", app.me.faculty_id);
      try {
        await api.request("POST", "/ingest", { form });
      } catch (error) {
        uploadError.textContent = `${file.name}: ${describeError(error)}`;
      }
    }
    fileInput.value = "";
    load();
  };
  uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    upload([...fileInput.files]);
  });
  for (const name of ["dragenter", "dragover"]) {
    uploadForm.addEventListener(name, (event) => {
      event.preventDefault();
      uploadForm.classList.add("dragging");
    });
  }
  uploadForm.addEventListener("dragleave", () => uploadForm.classList.remove("dragging"));
  uploadForm.addEventListener("drop", (event) => {
    event.preventDefault();
    uploadForm.classList.remove("dragging");
    upload([...event.dataTransfer.files]);
  });

  const table = h("table", { class: "documents" }, h("caption", {}, "Documents of your faculty"),
    h("thead", {}, h("tr", {}, ["Title", "Course", "Status", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    rows);
  filter.addEventListener("change", load);
  await load();
  return h("div", { class: "stack" },
    h("section", { class: "card" }, h("h1", {}, "Course documents"), uploadForm),
    h("section", { class: "card" }, field("Filter by course", filter), table));
}
