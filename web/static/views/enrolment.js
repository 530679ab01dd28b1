// A faculty's enrolment policy (open, key, managed) and its key, for that faculty's academics and admins.

import { api, describeError } from "../api.js";
import { clear, field, h, select } from "../dom.js";

const POLICIES = [["open", "Open: students place themselves"], ["key", "Key: students need the enrolment key"],
  ["managed", "Managed: academics place students"]];

export function enrolmentPanel(app, faculty) {
  const panel = h("section", { class: "enrolment", "aria-labelledby": `enrol-${faculty.id}` },
    h("h2", { id: `enrol-${faculty.id}` }, `Enrolment for ${faculty.name}`));
  const body = h("div");
  const message = h("p", { role: "status" });
  panel.append(body, message);

  const show = (enrolment) => {
    const policy = select("policy", POLICIES, enrolment.policy);
    clear(body).append(
      field("Policy", policy),
      h("p", { class: "hint" }, enrolment.key_set
        ? `A key is set${enrolment.key_rotated_at ? ` (rotated ${enrolment.key_rotated_at})` : ""}.`
        : "No key is set."),
      h("button", {
        type: "button", onclick: async () => {
          try {
            show(await api.put(`/users/enrolment/${faculty.id}`, { policy: policy.value }));
          } catch (error) {
            message.textContent = describeError(error);
          }
        },
      }, "Save policy"), " ",
      h("button", {
        type: "button", onclick: async () => {
          try {
            show(await api.post(`/users/enrolment/${faculty.id}/key`, {}));
          } catch (error) {
            message.textContent = describeError(error);
          }
        },
      }, "Rotate key"));
    if (enrolment.enrolment_key) {
      message.textContent = "";
      body.append(h("p", { class: "new-key" }, "New key (shown once — give it to your students): ",
        h("code", {}, enrolment.enrolment_key)));
    }
  };
  api.get(`/users/enrolment/${faculty.id}`).then(show).catch((error) => {
    message.textContent = describeError(error);
  });
  return panel;
}
