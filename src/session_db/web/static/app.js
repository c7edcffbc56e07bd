// session-db dashboard: the live event stream of a session page, and sortable tables.
// Plain JavaScript, no library; text is inserted as text, never as HTML.
"use strict";

function followEvents() {
  const state = document.getElementById("live-state");
  const table = document.getElementById("events");
  if (!state || !table || !window.EventSource) return;
  const body = table.tBodies[0];
  const counter = document.getElementById("event-count");
  const source = new EventSource(state.dataset.stream);
  source.addEventListener("open", () => { state.textContent = "live"; state.className = "live on"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting"; state.className = "live off"; });
  source.addEventListener("hook", (message) => {
    const event = JSON.parse(message.data);
    const row = document.createElement("tr");
    row.className = "fresh";
    row.dataset.eventId = event.id;
    for (const text of [event.time, event.event_type, event.tool_name, event.agent_type, event.summary]) {
      const cell = document.createElement("td");
      cell.textContent = text || "";
      row.appendChild(cell);
    }
    body.insertBefore(row, body.firstChild);
    const empty = document.getElementById("no-events");
    if (empty) empty.remove();
    if (counter && !counter.dataset.capped) {
      const count = Number(counter.dataset.count || 0) + 1;
      counter.dataset.count = String(count);
      counter.textContent = count.toLocaleString("en-US");
    }
  });
  window.addEventListener("pagehide", () => source.close());
}

function sortableTables() {
  for (const table of document.querySelectorAll("table.sortable")) {
    const headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.from(headers).forEach((header, column) => {
      header.title = "Sort";
      header.addEventListener("click", () => {
        const descending = header.getAttribute("aria-sort") !== "descending";
        for (const other of headers) other.removeAttribute("aria-sort");
        header.setAttribute("aria-sort", descending ? "descending" : "ascending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        const key = (row) => {
          const cell = row.cells[column];
          const value = cell.dataset.value;
          return value !== undefined ? Number(value) : cell.textContent.trim().toLowerCase();
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          const order = x < y ? -1 : x > y ? 1 : 0;
          return descending ? -order : order;
        });
        for (const row of rows) body.appendChild(row);
      });
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  followEvents();
  sortableTables();
});
