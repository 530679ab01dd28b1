// Profile and placement: faculty, department, semester (with an enrolment key when the faculty asks).

import { api, describeError } from "../api.js";
import { field, formData, h, select } from "../dom.js";
import { enrolmentPanel } from "./enrolment.js";

export async function profileView(app) {
  const [me, faculties] = await Promise.all([app.loadMe(), api.get("/faculties")]);
  const section = h("section", { class: "card narrow" }, h("h1", {}, "Your profile"),
    h("p", {}, `${me.full_name} · ${me.email} · ${me.role}`));
  const error = h("p", { class: "error", role: "alert" });
  const selfPlaced = me.role === "student";
  const facultySelect = select("faculty_id", [["", "Choose a faculty"],
    ...faculties.map((f) => [f.id, `${f.name} (${f.code})`])], me.faculty_id);
  const departmentSelect = select("department_id", [], "");
  const semesterSelect = select("semester_id", [], "");
  const keyInput = h("input", { name: "enrolment_key", autocomplete: "off", maxlength: 200 });
  const keyField = field("Enrolment key", keyInput, "Your faculty gave you this key.");
  const policyNote = h("p", { class: "hint" });

  const refill = () => {
    const faculty = faculties.find((f) => String(f.id) === facultySelect.value);
    departmentSelect.replaceChildren(...[["", "Choose a department"],
      ...(faculty?.departments || []).map((d) => [d.id, d.name])].map(([v, t]) => h("option", { value: v }, t)));
    semesterSelect.replaceChildren(...[["", "Choose a semester"],
      ...(faculty?.semesters || []).map((s) => [s.id, s.name || `Semester ${s.number}`])]
      .map(([v, t]) => h("option", { value: v }, t)));
    if (faculty && faculty.id === me.faculty_id) {
      departmentSelect.value = me.department_id ?? "";
      semesterSelect.value = me.semester_id ?? "";
    }
    const policy = faculty?.enrolment_policy || "open";
    keyField.hidden = policy !== "key";
    keyInput.required = policy === "key" && selfPlaced && String(faculty?.id) !== String(me.faculty_id);
    policyNote.textContent = policy === "managed"
      ? "This faculty places its students itself: ask its academics to enrol you." : "";
  };
  facultySelect.addEventListener("change", refill);
  refill();

  for (const control of [facultySelect, departmentSelect, semesterSelect]) control.disabled = !selfPlaced;
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const values = formData(form);
      const body = { full_name: values.full_name };
      if (selfPlaced) {
        for (const name of ["faculty_id", "department_id", "semester_id"]) {
          body[name] = values[name] ? Number(values[name]) : null;
        }
        if (values.enrolment_key) body.enrolment_key = values.enrolment_key;
      }
      try {
        await api.put("/me", body);
        await app.loadMe();
        app.say("Profile saved.", "ok");
        app.go(app.placed() ? "#/tutor" : "#/profile");
      } catch (err) {
        error.textContent = describeError(err);
      }
    },
  },
  field("Full name", h("input", { name: "full_name", value: me.full_name || "", maxlength: 200, required: true })),
  field("Faculty", facultySelect), field("Department", departmentSelect), field("Semester", semesterSelect),
  keyField, policyNote,
  selfPlaced ? null : h("p", { class: "hint" }, "Academics and admins are placed by an administrator."),
  error, h("button", { type: "submit" }, "Save"));
  section.append(form);
  if (me.role !== "student" && me.faculty_id) {
    const faculty = faculties.find((f) => f.id === me.faculty_id);
    if (faculty) section.append(enrolmentPanel(app, faculty));
  }
  return section;
}
