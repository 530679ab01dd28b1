// Admins: find users, change their role and placement, deactivate and reactivate them.

import { api, describeError } from "../api.js";
import { clear, field, formData, h, select } from "../dom.js";

const ROLES = [["student", "Student"], ["academic", "Academic"], ["admin", "Admin"]];
const PAGE = 25;

export async function adminView(app) {
  const faculties = await api.get("/faculties");
  const rows = h("tbody");
  const summary = h("p", { class: "hint", role: "status" });
  let offset = 0;

  const placementEditor = (user) => {
    const faculty = select("faculty_id", [["", "—"], ...faculties.map((f) => [f.id, f.code])], user.faculty_id);
    const semester = select("semester_id", [], "");
    const department = select("department_id", [], "");
    const refill = () => {
      const f = faculties.find((x) => String(x.id) === faculty.value);
      department.replaceChildren(...[["", "—"], ...(f?.departments || []).map((d) => [d.id, d.name])]
        .map(([v, t]) => h("option", { value: v, selected: String(v) === String(user.department_id ?? "") }, t)));
      semester.replaceChildren(...[["", "—"], ...(f?.semesters || []).map((s) => [s.id, `S${s.number}`])]
        .map(([v, t]) => h("option", { value: v, selected: String(v) === String(user.semester_id ?? "") }, t)));
    };
    faculty.addEventListener("change", refill);
    refill();
    for (const [control, label] of [[faculty, "Faculty"], [department, "Department"], [semester, "Semester"]]) {
      control.setAttribute("aria-label", `${label} of ${user.email}`);
    }
    return h("div", { class: "row compact" }, faculty, department, semester, h("button", {
      type: "button", class: "link", onclick: () => act(user, "PUT", "placement", {
        faculty_id: faculty.value ? Number(faculty.value) : null,
        department_id: department.value ? Number(department.value) : null,
        semester_id: semester.value ? Number(semester.value) : null,
      }),
    }, "Place"));
  };

  const act = async (user, method, action, body) => {
    try {
      await api.request(method, `/users/${user.id}/${action}`, { json: body ?? {} });
      app.say(`${user.email}: saved.`, "ok");
      load();
    } catch (error) {
      app.fail(error);
    }
  };

  const render = (page) => {
    clear(rows);
    for (const user of page.users) {
      const role = select("role", ROLES, user.role);
      role.setAttribute("aria-label", `Role of ${user.email}`);
      rows.append(h("tr", { "data-email": user.email },
        h("td", {}, user.full_name, h("br"), h("small", { class: "hint" }, user.email)),
        h("td", {}, role, h("button", { type: "button", class: "link", onclick: () => act(user, "PUT", "role",
          { role: role.value }) }, "Set role")),
        h("td", {}, placementEditor(user)),
        h("td", {}, user.is_active ? "active" : "deactivated", h("br"), h("button", {
          type: "button", class: user.is_active ? "link danger" : "link",
          onclick: () => act(user, "POST", user.is_active ? "deactivate" : "reactivate"),
        }, user.is_active ? "Deactivate" : "Reactivate"))));
    }
    summary.textContent = `${page.total} users; showing ${page.users.length ? offset + 1 : 0}–${offset +
      page.users.length}.`;
    prev.disabled = offset === 0;
    next.disabled = offset + page.users.length >= page.total;
  };

  const filters = h("form", {
    class: "row", role: "search",
    onsubmit: (event) => {
      event.preventDefault();
      offset = 0;
      load();
    },
  },
  field("Search name or email", h("input", { name: "q", type: "search", maxlength: 100 })),
  field("Role", select("role", [["", "Any"], ...ROLES], "")),
  h("div", { class: "field" }, h("span", { "aria-hidden": "true" }, " "), h("button", { type: "submit" }, "Find")));

  const load = async () => {
    const { q, role } = formData(filters);
    try {
      render(await api.get("/users", { q, role, limit: PAGE, offset }));
    } catch (error) {
      summary.textContent = describeError(error);
    }
  };
  const prev = h("button", { type: "button", onclick: () => { offset = Math.max(0, offset - PAGE); load(); } },
    "Previous");
  const next = h("button", { type: "button", onclick: () => { offset += PAGE; load(); } }, "Next");
  await load();
  return h("section", { class: "card" }, h("h1", {}, "Users"), filters, summary,
    h("div", { class: "scroll" }, h("table", {}, h("caption", {}, "Accounts"), h("thead", {}, h("tr", {},
      ["Name", "Role", "Placement", "Status"].map((t) => h("th", { scope: "col" }, t)))), rows)),
    h("p", {}, prev, " ", next));
}
