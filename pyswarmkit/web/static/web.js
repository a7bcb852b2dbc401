// Renders the swarm the server pushes as server-sent events (api/events):
// each message is the whole page's data, so a missed one costs nothing.
// Text goes in through textContent only: names come from the swarm's users.
"use strict";

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(id, items, render) {
  const body = document.querySelector("#" + id + " tbody");
  const rows = items.map(render);
  body.replaceChildren(...rows);
}

function stateClass(text) {
  return text.replace(/[^a-z_]/g, "_");
}

function renderNode(n) {
  const tr = document.createElement("tr");
  tr.dataset.node = n.name;
  cell(tr, n.name);
  cell(tr, n.id.slice(0, 12), "id");
  cell(tr, n.role);
  cell(tr, n.status, "status " + stateClass(n.status)).title = n.message;
  cell(tr, n.availability, "availability " + stateClass(n.availability));
  cell(tr, n.manager_status, "manager " + stateClass(n.manager_status));
  cell(tr, n.addr);
  cell(tr, String(n.tasks.length + n.more_tasks), "count");
  return tr;
}

function renderService(s) {
  const tr = document.createElement("tr");
  tr.dataset.service = s.name;
  cell(tr, s.name, "name");
  cell(tr, s.id.slice(0, 12), "id");
  cell(tr, s.mode, "mode");
  cell(tr, s.replicas, "replicas");
  cell(tr, s.completions, "completions");
  cell(tr, s.update, "update " + stateClass(s.update)).title = s.update_message;
  return tr;
}

function taskList(title, tasks, more) {
  const box = document.createElement("div");
  const h = document.createElement("h3");
  h.textContent = title;
  box.appendChild(h);
  const ul = document.createElement("ul");
  ul.className = "tasks";
  for (const t of tasks) {
    const li = document.createElement("li");
    li.dataset.task = t.name;
    const state = document.createElement("span");
    state.className = stateClass(t.state);
    state.textContent = t.state;
    li.append(t.name + " ", state);
    if (t.desired !== "running") li.append(" (desired " + t.desired + ")");
    if (t.error) li.append(": " + t.error);
    ul.appendChild(li);
  }
  if (tasks.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "no tasks";
    ul.appendChild(li);
  }
  if (more > 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "and " + more + " more";
    ul.appendChild(li);
  }
  box.appendChild(ul);
  return box;
}

function render(data) {
  const error = document.getElementById("error");
  error.hidden = !data.error;
  error.textContent = data.error || "";
  document.getElementById("index").textContent =
    data.index >= 0 ? "store index " + data.index : "";
  fill("nodes", data.nodes, renderNode);
  fill("services", data.services, renderService);
  const boxes = data.nodes.map((n) => taskList(n.name, n.tasks, n.more_tasks));
  if (data.unassigned.length > 0) {
    boxes.push(taskList("waiting for a node", data.unassigned, data.more_unassigned));
  }
  document.getElementById("tasks").replaceChildren(...boxes);
}

function connect() {
  const conn = document.getElementById("conn");
  const events = new EventSource("api/events");
  events.onopen = () => {
    conn.textContent = "live";
    conn.className = "conn live";
  };
  events.onerror = () => {
    conn.textContent = "reconnecting";
    conn.className = "conn down";
  };
  events.onmessage = (event) => render(JSON.parse(event.data));
}

connect();
