// Exams: generate (with a blueprint for academics), take and submit an attempt, read the graded
// feedback; academics also see the aggregates of an exam and download its exports.

import { api, describeError } from "../api.js";
import { clear, field, formData, h, select } from "../dom.js";
import { citationLink } from "./pages.js";

const POLL_MS = 1000;
const EXPORTS = [["moodle", "Moodle XML"], ["gift", "GIFT"], ["qti", "QTI 2.1 (zip)"], ["aiken", "Aiken"]];

function progressText(item) {
  const p = item.progress;
  if (!p) return item.status;
  const done = p.done ?? p.items_done ?? p.pages_done;
  const total = p.total ?? p.items_total ?? p.pages_total;
  return total ? `${item.status} — ${done}/${total}` : item.status;
}

export async function examsView(app) {
  const list = h("ul", { class: "exams" });
  const load = async () => {
    const reply = await api.get("/exams", { limit: 50 });
    clear(list);
    for (const exam of reply.exams || []) {
      const name = [exam.kind === "practice" ? "Practice" : "Course exam", exam.course, exam.topic]
        .filter(Boolean).join(" · ");
      list.append(h("li", {}, h("a", { href: `#/exams/${exam.id}` }, name),
        h("span", { class: "hint" }, ` · ${progressText(exam)} · ${exam.num_questions ?? 0} questions · ` +
          new Date(exam.created_at).toLocaleString())));
    }
    if (!list.children.length) list.append(h("li", { class: "hint" }, "No exams yet."));
  };
  const error = h("p", { class: "error", role: "alert" });
  const staff = app.me.role !== "student";
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const v = formData(form);
      const body = { num_mcq: Number(v.num_mcq), num_theory: Number(v.num_theory) };
      if (v.course) body.course = v.course;
      if (v.topic) body.topic = v.topic;
      if (v.difficulty) body.difficulty = v.difficulty;
      const bloom = ["remember", "understand", "apply", "analyse"].filter((level) => v[`bloom_${level}`]);
      if (staff && v.semester_id) body.semester_id = Number(v.semester_id);
      if (bloom.length) body.blueprint = { bloom: Object.fromEntries(bloom.map((level) => [level, 1])) };
      try {
        const reply = await api.post("/generate", body);
        app.go(`#/exams/${reply.exam_id}`);
      } catch (err) {
        error.textContent = describeError(err);
      }
    },
  },
  h("div", { class: "row" },
    field("Multiple-choice questions", h("input", { name: "num_mcq", type: "number", min: 0, max: 100, value: 5 })),
    field("Theory questions", h("input", { name: "num_theory", type: "number", min: 0, max: 50, value: 1 }))),
  h("div", { class: "row" },
    field("Course (optional)", h("input", { name: "course", maxlength: 100 })),
    field("Topic (optional)", h("input", { name: "topic", maxlength: 200 })),
    field("Difficulty", select("difficulty", [["", "Mixed"], ["easy", "Easy"], ["medium", "Medium"],
      ["hard", "Hard"]], ""))),
  staff ? field("Semester id (academics)", h("input", { name: "semester_id", type: "number", min: 1 })) : null,
  h("fieldset", {}, h("legend", {}, "Bloom levels (optional)"),
    ["remember", "understand", "apply", "analyse"].map((level) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: `bloom_${level}`, value: "1" }), ` ${level}`))),
  error, h("button", { type: "submit" }, staff ? "Generate exam" : "Generate practice exam"));
  try {
    await load();
  } catch (err) {
    app.fail(err);
  }
  return h("div", { class: "stack" },
    h("section", { class: "card" }, h("h1", {}, "Exams"), list),
    h("section", { class: "card" }, h("h2", {}, "New exam"), form));
}

function questionBlock(question, index, answers) {
  const name = `q${index}`;
  const legend = h("legend", {}, `${index + 1}. ${question.question}`);
  if (question.type === "mcq") {
    return h("fieldset", { class: "question" }, legend, question.options.map((option, i) => h("label",
      { class: "option" }, h("input", {
        type: "radio", name, value: i, checked: answers?.[index] === i,
      }), ` ${option}`)));
  }
  const box = h("textarea", { name, rows: 5, maxlength: 10000 });
  box.value = typeof answers?.[index] === "string" ? answers[index] : "";
  return h("fieldset", { class: "question" }, legend, field("Your answer", box));
}

function collect(form, questions) {
  const values = new FormData(form);
  return questions.map((q, i) => {
    const value = values.get(`q${i}`);
    if (q.type === "mcq") return value === null ? null : { question: i, choice: Number(value) };
    return value ? { question: i, text: value } : null;
  }).filter(Boolean);
}

function feedbackBlock(app, question, index, item) {
  const block = h("div", { class: `feedback ${item.correct ? "ok" : "miss"}` },
    h("h3", {}, `${index + 1}. ${question.question}`),
    h("p", {}, item.status === "pending" ? "Being graded…" : `Score: ${item.score ?? 0} / ${item.max_score ?? 1}`));
  const feedback = item.feedback || {};
  for (const [label, key] of [["Right", "right"], ["Missing", "missing"]]) {
    if (feedback[key]?.length) block.append(h("p", {}, h("strong", {}, `${label}: `), feedback[key].join(" ")));
  }
  const explanation = feedback.explanation || question.explanation;
  if (explanation) block.append(h("p", { class: "hint" }, explanation));
  const source = item.source || question.source;
  if (source?.document_id) {
    block.append(h("p", {}, "Read again: ", citationLink(app, { ...source, title: source.title || "source" })));
  }
  return block;
}

async function academicPanel(exam) {
  const panel = h("section", { class: "card" }, h("h2", {}, "Results and export"));
  try {
    const stats = await api.get(`/exams/${exam.id}/stats`);
    panel.append(h("p", {}, `Attempts: ${stats.attempts ?? 0} by ${stats.students ?? 0} students` +
      (stats.mean_percent == null ? "" : ` · mean ${stats.mean_percent} %`)));
    if (stats.items?.length) {
      const table = h("table", {}, h("caption", {}, "Per question"), h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Share correct"),
        h("th", { scope: "col" }, "Most chosen wrong option"))));
      const body = h("tbody");
      stats.items.forEach((item, i) => body.append(h("tr", {}, h("td", {}, i + 1),
        h("td", {}, item.share_correct == null ? "–" : `${Math.round(item.share_correct * 100)} %`),
        h("td", {}, item.most_chosen_wrong_option ? `${item.most_chosen_wrong_option.option} ` +
          `(${item.most_chosen_wrong_option.count}×)` : "–"))));
      table.append(body);
      panel.append(table);
    }
  } catch (error) {
    panel.append(h("p", { class: "hint" }, describeError(error)));
  }
  const downloads = h("p", { class: "downloads" }, "Export: ");
  for (const [format, label] of EXPORTS) {
    downloads.append(h("button", {
      type: "button", class: "link", onclick: async () => {
        try {
          const url = await api.blobUrl(`/exams/${exam.id}/export`, { format });
          const link = h("a", { href: url, download: `exam-${exam.id}.${format === "qti" ? "zip" : format ===
            "moodle" ? "xml" : "txt"}` });
          document.body.append(link);
          link.click();
          link.remove();
        } catch (error) {
          downloads.append(h("span", { class: "error" }, ` ${describeError(error)}`));
        }
      },
    }, label), " ");
  }
  panel.append(downloads);
  return panel;
}

export async function examView(app, examId) {
  const root = h("div", { class: "stack" });
  const card = h("section", { class: "card" });
  root.append(card);
  let exam = await api.get(`/exams/${examId}`);
  while (exam.status === "queued" || exam.status === "generating") {
    clear(card).append(h("h1", {}, "Exam"), h("p", { role: "status" }, `Preparing: ${progressText(exam)}`));
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (location.hash !== `#/exams/${examId}`) return root; // the user left while it was being prepared
    exam = await api.get(`/exams/${examId}`);
  }
  clear(card).append(h("h1", {}, [exam.course, exam.topic].filter(Boolean).join(" · ") || "Exam"));
  if (exam.status === "failed") {
    card.append(h("p", { class: "error" }, exam.error || "Generation failed."));
    return root;
  }
  const questions = exam.questions || [];
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {}, questions.map((q, i) => questionBlock(q, i, null)), error);
  const result = h("div", { class: "result", "aria-live": "polite" });
  let attempt = null;
  const submit = h("button", {
    type: "button", onclick: async () => {
      error.textContent = "";
      submit.disabled = true;
      try {
        attempt = attempt || await api.post(`/exams/${examId}/attempts`, {});
        const answers = collect(form, questions);
        const path = `/exams/${examId}/attempts/${attempt.id}`;
        await api.put(path, { answers });
        let graded = await api.post(`${path}/submit`, { answers });
        while (graded.status === "grading") {
          result.replaceChildren(h("p", { role: "status" }, "Grading…"));
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
          graded = await api.get(path);
        }
        showResult(graded);
      } catch (err) {
        error.textContent = describeError(err);
        submit.disabled = false;
      }
    },
  }, "Submit answers");

  const showResult = async (graded) => {
    const keyed = graded.questions || questions;
    clear(result).append(h("h2", {}, `Your score: ${graded.score ?? 0} / ${graded.max_score ?? keyed.length}` +
      (graded.percent == null ? "" : ` (${graded.percent} %)`)));
    (graded.items || []).forEach((item, i) => result.append(feedbackBlock(app, keyed[i] || {}, i, item)));
    form.hidden = true;
    submit.hidden = true;
  };

  if (app.me.role === "student") card.append(form, submit, result);
  else {
    card.append(h("ol", {}, questions.map((q) => h("li", {}, q.question, q.type === "mcq" ? h("ul", {},
      q.options.map((o, i) => h("li", {}, o, i === q.answer_index ? " ✓" : ""))) : h("p", { class: "hint" },
      q.model_answer || "")))));
    root.append(await academicPanel(exam));
  }
  return root;
}
