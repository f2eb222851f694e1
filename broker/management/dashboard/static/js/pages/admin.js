// Admin: users, vhosts and permissions (list, add, delete). Administrators only,
// as in RabbitMQ: anyone else gets the API's "Not administrator user".

import { ApiError, api, get, path } from "../api.js";
import { clear, confirmDialog, fmtInt, h, notice, table, tag } from "../dom.js";

function fillSelect(select, names) {
  const chosen = select.value;
  const current = [...select.options].map((o) => o.value);
  if (current.length === names.length && current.every((v, i) => v === names[i])) return;
  select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  if (names.includes(chosen)) select.value = chosen;
}

function deleteButton(label, id, action) {
  return h("button", { type: "button", class: "danger small", "data-delete": id, onclick: action }, label);
}

export default function admin(ctx) {
  const result = h("p", { class: "banner", id: "admin-result", hidden: true, role: "status" });
  const users = h("div", { id: "users-table" });
  const vhosts = h("div", { id: "vhosts-table" });
  const permissions = h("div", { id: "permissions-table" });

  const say = (kind, text) => notice(result, kind, text);

  let known = []; // the users of the last refresh, to keep a password on update

  /** Run one change; say how it went; refresh the tables. True if it was made. */
  async function act(request, done) {
    try {
      await request();
    } catch (error) {
      say("error", error instanceof ApiError ? error.describe() : String(error));
      return false;
    }
    say("ok", done);
    await controller.refresh().catch(() => {});
    return true;
  }

  // -- forms ----------------------------------------------------------------------------

  const userForm = h("form", { class: "inline", id: "user-form" },
    h("label", {}, "Name", h("input", { name: "name", required: true, id: "user-name", autocomplete: "off" })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", id: "user-password", autocomplete: "new-password" })),
    h("label", {}, "Tags (comma-separated)", h("input", { name: "tags", id: "user-tags", placeholder: "management" })),
    h("button", { type: "submit", id: "user-submit" }, "Add / update user"));
  userForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(userForm);
    const name = data.get("name").trim();
    const body = { tags: data.get("tags") };
    const existing = known.find((u) => u.name === name);
    if (data.get("password")) body.password = data.get("password");
    else if (existing && existing.password_hash) {
      // The API takes "no password" as "remove it": keep the one the user has.
      body.password_hash = existing.password_hash;
      body.hashing_algorithm = existing.hashing_algorithm;
    }
    act(() => api("PUT", path`/api/users/${name}`, body), `User '${name}' saved.`)
      .then((made) => made && userForm.reset());
  });

  const vhostForm = h("form", { class: "inline", id: "vhost-form" },
    h("label", {}, "Name", h("input", { name: "name", required: true, id: "vhost-name" })),
    h("label", {}, "Description", h("input", { name: "description", id: "vhost-description" })),
    h("label", {}, "Tags", h("input", { name: "tags", id: "vhost-tags" })),
    h("button", { type: "submit", id: "vhost-submit" }, "Add vhost"));
  vhostForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(vhostForm);
    const name = data.get("name").trim();
    act(() => api("PUT", path`/api/vhosts/${name}`, { description: data.get("description"), tags: data.get("tags") }),
      `Vhost '${name}' saved.`).then((made) => made && vhostForm.reset());
  });

  const permUser = h("select", { name: "user", id: "permission-user" });
  const permVhost = h("select", { name: "vhost", id: "permission-vhost" });
  const permissionForm = h("form", { class: "inline", id: "permission-form" },
    h("label", {}, "User", permUser),
    h("label", {}, "Vhost", permVhost),
    h("label", {}, "Configure regexp", h("input", { name: "configure", value: ".*", id: "permission-configure" })),
    h("label", {}, "Write regexp", h("input", { name: "write", value: ".*", id: "permission-write" })),
    h("label", {}, "Read regexp", h("input", { name: "read", value: ".*", id: "permission-read" })),
    h("button", { type: "submit", id: "permission-submit" }, "Set permission"));
  permissionForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(permissionForm);
    const user = data.get("user");
    const vhost = data.get("vhost");
    act(() => api("PUT", path`/api/permissions/${vhost}/${user}`,
      { configure: data.get("configure"), write: data.get("write"), read: data.get("read") }),
    `Permission of '${user}' in vhost '${vhost}' set.`);
  });

  ctx.root.append(
    h("h1", {}, "Admin"),
    result,
    h("div", { class: "card" }, h("h2", {}, "Users"), users, h("h3", {}, "Add or update a user"),
      h("p", { class: "muted" }, "Tags: administrator, monitoring, policymaker, management (any of them lets the "
        + "user log in here). Updating a user without a new password keeps its password."),
      userForm),
    h("div", { class: "card" }, h("h2", {}, "Virtual hosts"), vhosts, h("h3", {}, "Add a vhost"), vhostForm),
    h("div", { class: "card" }, h("h2", {}, "Permissions"), permissions, h("h3", {}, "Set a permission"),
      permissionForm),
  );

  function render(userList, vhostList, permissionList) {
    known = userList;
    const me = ctx.user.name;
    clear(users).append(table({
      id: "users",
      rowId: (u) => u.name,
      columns: [
        { key: "name", label: "Name", value: (u) => h("span", {}, u.name, u.name === me ? [" ", tag("you")] : null) },
        { key: "tags", label: "Tags", value: (u) => h("span", {}, (u.tags || []).map((t) => tag(t, "on"))) },
        { key: "password", label: "Password", value: (u) => (u.password_hash ? "set" : "none (EXTERNAL only)") },
        { key: "actions", label: "",
          value: (u) => deleteButton("Delete", `user:${u.name}`, async () => {
            const warning = u.name === me ? " This is the user you are logged in as." : "";
            if (await confirmDialog(`Delete user '${u.name}'?${warning}`, "Delete")) {
              act(() => api("DELETE", path`/api/users/${u.name}`), `User '${u.name}' deleted.`);
            }
          }) },
      ],
      rows: userList,
    }));
    clear(vhosts).append(table({
      id: "vhosts",
      rowId: (v) => v.name,
      columns: [
        { key: "name", label: "Name" },
        { key: "description", label: "Description" },
        { key: "tags", label: "Tags", value: (v) => h("span", {}, (v.tags || []).map((t) => tag(t))) },
        { key: "messages", label: "Messages", num: true, value: (v) => fmtInt(v.messages) },
        { key: "actions", label: "",
          value: (v) => deleteButton("Delete", `vhost:${v.name}`, async () => {
            if (await confirmDialog(`Delete vhost '${v.name}' with all its queues, exchanges and messages?`, "Delete")) {
              act(() => api("DELETE", path`/api/vhosts/${v.name}`), `Vhost '${v.name}' deleted.`);
            }
          }) },
      ],
      rows: vhostList,
    }));
    clear(permissions).append(table({
      id: "permissions",
      rowId: (p) => `${p.user}@${p.vhost}`,
      columns: [
        { key: "user", label: "User" },
        { key: "vhost", label: "Vhost" },
        { key: "configure", label: "Configure", value: (p) => h("code", {}, p.configure) },
        { key: "write", label: "Write", value: (p) => h("code", {}, p.write) },
        { key: "read", label: "Read", value: (p) => h("code", {}, p.read) },
        { key: "actions", label: "",
          value: (p) => deleteButton("Clear", `permission:${p.user}@${p.vhost}`, async () => {
            if (await confirmDialog(`Clear the permissions of '${p.user}' in vhost '${p.vhost}'?`, "Clear")) {
              act(() => api("DELETE", path`/api/permissions/${p.vhost}/${p.user}`),
                `Permissions of '${p.user}' in vhost '${p.vhost}' cleared.`);
            }
          }) },
      ],
      rows: permissionList,
      empty: "No permissions.",
    }));
    fillSelect(permUser, userList.map((u) => u.name));
    fillSelect(permVhost, vhostList.map((v) => v.name));
  }

  const controller = {
    async refresh() {
      const [userList, vhostList, permissionList] = await Promise.all([
        get("/api/users"), get("/api/vhosts"), get("/api/permissions"),
      ]);
      if (ctx.current) render(userList, vhostList, permissionList);
    },
  };
  return controller;
}
