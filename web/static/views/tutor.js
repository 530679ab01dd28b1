// The tutor: past sessions, a conversation with answers streamed as they are written, citations that
// open the cited page, and the hint level of each answer.

import { api, describeError } from "../api.js";
import { clear, field, h } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { citationLink } from "./pages.js";

const HINTS = ["Hint", "Stronger hint", "Worked explanation"];

function message(role, content) {
  const kind = role === "user" ? "from-student" : "from-tutor";
  return h("li", { class: `msg ${kind}` }, h("span", { class: "who" }, role === "user" ? "You" : "Tutor"), content);
}

function answerFooter(app, done) {
  const footer = h("div", { class: "answer-meta" });
  if (done.refused) footer.append(h("p", { class: "refused" }, refusalText(done.reason)));
  if (done.hint_level != null) footer.append(h("p", { class: "hint-level" }, `Level: ${HINTS[done.hint_level] ||
    done.hint_level}`));
  if (done.citations?.length) {
    footer.append(h("p", { class: "sources" }, "Sources: ",
      done.citations.flatMap((c, i) => [i ? ", " : "", citationLink(app, c)])));
  }
  return footer;
}

function refusalText(reason) {
  if (reason === "integrity") return "I can't do assessed work for you, but I can help you learn it.";
  if (reason === "not_in_material") return "Your course material does not cover this.";
  if (reason === "flagged") return "This message was flagged for your academics.";
  return "The tutor declined this request.";
}

export async function tutorView(app, sessionId) {
  if (app.me.role === "student" && !app.placed()) {
    app.say("Choose your faculty and semester first.");
    app.go("#/profile");
    return h("div");
  }
  let currentSession = sessionId || null;
  const sessionsList = h("ul", { class: "sessions" });
  const log = h("ol", { class: "chat-log", "aria-live": "polite" });

  const loadSessions = async () => {
    try {
      const reply = await api.get("/session", { limit: 20 });
      clear(sessionsList);
      for (const s of reply.sessions || []) {
        const current = s.id === currentSession ? "page" : null;
        sessionsList.append(h("li", {},
          h("a", { href: `#/tutor/${s.id}`, "aria-current": current }, s.title || "Conversation"),
          h("small", { class: "hint" }, s.last_message?.preview || ""),
          h("button", {
            type: "button", class: "link danger", "aria-label": `Delete conversation ${s.title || ""}`,
            onclick: async () => {
              try {
                await api.del(`/session/${s.id}`);
                if (s.id === currentSession) app.go("#/tutor");
                else loadSessions();
              } catch (error) {
                app.fail(error);
              }
            },
          }, "Delete")));
      }
      if (!sessionsList.children.length) sessionsList.append(h("li", { class: "hint" }, "No conversations yet."));
    } catch (error) {
      app.fail(error);
    }
  };

  if (currentSession) {
    try {
      const session = await api.get(`/session/${currentSession}`);
      for (const m of session.messages || []) {
        const isUser = m.role === "user";
        const item = message(isUser ? "user" : "tutor", isUser ? h("p", {}, m.content) : renderMarkdown(m.content));
        if (!isUser && m.citations?.length) item.append(answerFooter(app, { citations: m.citations }));
        log.append(item);
      }
    } catch (error) {
      app.fail(error);
      currentSession = null;
    }
  }

  const input = h("textarea", { name: "message", rows: 3, required: true, maxlength: 20000 });
  const send = h("button", { type: "submit" }, "Ask");
  const form = h("form", {
    class: "ask",
    onsubmit: async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      send.disabled = true;
      log.append(message("user", h("p", {}, text)));
      const answer = h("div", { class: "md streaming" });
      const item = message("tutor", answer);
      log.append(item);
      let written = "";
      try {
        await api.stream("/chat", { message: text, session_id: currentSession || undefined }, (name, data) => {
          if (name === "delta") {
            written += data.text ?? data.delta ?? "";
            answer.textContent = written;
          } else if (name === "done") {
            answer.replaceWith(renderMarkdown(data.answer ?? written));
            item.append(answerFooter(app, data));
            if (data.session_id && data.session_id !== currentSession) {
              currentSession = data.session_id;
              history.replaceState(null, "", `#/tutor/${currentSession}`);
            }
          } else if (name === "error") {
            answer.replaceWith(h("p", { class: "error", role: "alert" }, data.detail || data.title ||
              "The tutor could not answer."));
          }
        });
        loadSessions();
      } catch (error) {
        answer.replaceWith(h("p", { class: "error", role: "alert" }, describeError(error)));
      } finally {
        send.disabled = false;
        input.focus();
      }
    },
  }, field("Your question", input), send);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  loadSessions();
  return h("div", { class: "tutor" },
    h("aside", { class: "card", "aria-labelledby": "sessions-title" }, h("h2", { id: "sessions-title" },
      "Conversations"), h("a", { href: "#/tutor", class: "button" }, "New conversation"), sessionsList),
    h("section", { class: "card chat" }, h("h1", {}, "Tutor"),
      h("p", { class: "hint" }, "Answers come from your course material, with the pages they use."), log, form));
}
