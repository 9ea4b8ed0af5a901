// /status: the live status page. Polls the shared stats snapshot (GET /api/v1/stream/stats,
// revalidated with If-None-Match, so an unchanged snapshot costs a 304) and the readiness
// checks; every value is written with textContent, never as HTML (camera names are user data).
"use strict";

(() => {
  const STATS = "/api/v1/stream/stats";
  const READY = "/ready";
  const POLL_MS = 1000;
  const READY_MS = 10000;
  const KEY_STORE = "cctv-admin-key"; // sessionStorage: this tab only, gone when it closes

  const $ = (id) => document.getElementById(id);
  let etag = null;
  let lastStats = null;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("data-") || name.startsWith("aria-") || name === "role" ||
               name === "lang" || name === "dir" || name === "title") {
        node.setAttribute(name, value);
      } else node[name] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(typeof child === "string" ? document.createTextNode(child) : child);
      }
    }
    return node;
  }

  const adminKey = () => sessionStorage.getItem(KEY_STORE);

  // --- quotas --------------------------------------------------------------------------
  function quotaRow(name, current, limit) {
    const ratio = limit > 0 ? current / limit : 0;
    const fill = el("div", { class: "fill" });
    fill.style.width = `${Math.min(100, ratio * 100).toFixed(1)}%`;
    if (ratio >= 0.95) fill.classList.add("bad");
    else if (ratio >= 0.8) fill.classList.add("warn");
    return el("div", { class: "quota", "data-source": name, "data-current": String(current),
                       "data-limit": String(limit) },
      el("span", { class: "label", text: name }),
      el("div", { class: "bar", role: "progressbar", "aria-label": `${name} reservations`,
                  "aria-valuemin": "0", "aria-valuemax": String(limit),
                  "aria-valuenow": String(current) }, fill),
      el("span", { class: "nums", text: `${current} / ${limit}` }));
  }

  function renderQuotas(stats) {
    const rows = Object.values(stats.source_stats)
      .sort((a, b) => a.source.localeCompare(b.source))
      .map((s) => quotaRow(s.source, s.current, s.limit));
    rows.push(quotaRow("TOTAL", stats.total.current, stats.total.limit));
    $("quotas").replaceChildren(...rows);
  }

  // --- cameras -------------------------------------------------------------------------
  function stateClass(state) {
    if (state === "RUNNING") return "state-ok";
    if (state === "FAILED") return "state-bad";
    return "state-warn";
  }

  function codecText(codec) {
    if (!codec) return "not reported yet";
    const fps = codec.fps ? ` ${codec.fps} fps` : "";
    const b = codec.b_frames ? ", B-frames" : "";
    return `${codec.profile} ${codec.level} ${codec.width}×${codec.height}${fps}${b}`;
  }

  function when(iso) {
    if (!iso) return "";
    const at = new Date(iso);
    return Number.isNaN(at.getTime()) ? iso : at.toLocaleTimeString();
  }

  function cameraRow(c) {
    const agencies = Object.entries(c.viewers_by_source)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([source, n]) => `${source} ${n}`).join(", ") || "none";
    const problem = [c.last_error, c.next_retry_at ? `retry at ${when(c.next_retry_at)}` : null,
                     c.waiting_for].filter(Boolean).join(" · ");
    const actions = el("td", { class: "admin-only" });
    actions.hidden = !adminKey();
    const reset = el("button", { class: "secondary", type: "button", text: "Reset",
                                 title: "End every reservation and stop the pusher now" });
    reset.addEventListener("click", () => resetCamera(c.camera_id, reset));
    const viewers = el("button", { class: "secondary", type: "button", text: "Viewers",
                                   title: "List this camera's reservations, to kick one" });
    viewers.addEventListener("click", () => listViewers(c.camera_id));
    actions.append(reset, " ", viewers);
    return el("tr", { "data-camera-id": c.camera_id },
      el("th", { scope: "row" }, c.camera_name, el("br"), el("span", { class: "id", text: c.camera_id })),
      el("td", { class: stateClass(c.pusher_state), text: c.pusher_state }),
      el("td", { class: "num", text: String(c.generation) }),
      el("td", { class: "num", text: String(c.restarts) }),
      el("td", { class: "num viewers", text: String(c.viewer_count) }),
      el("td", { class: "reservations", text: `${c.reserved_count}: ${agencies}` }),
      el("td", { class: c.publisher_connected ? "state-ok" : "state-warn",
                 text: c.publisher_connected ? "connected" : "not connected" }),
      el("td", { text: codecText(c.codec) }),
      el("td", { class: problem ? "state-bad" : "muted", text: problem || "—" }),
      actions);
  }

  function renderCameras(stats) {
    const cameras = [...stats.camera_stats].sort((a, b) => a.camera_id.localeCompare(b.camera_id));
    $("cameras").tBodies[0].replaceChildren(...cameras.map(cameraRow));
    $("camera-count").textContent = String(cameras.length);
    $("no-cameras").hidden = cameras.length > 0;
  }

  function render(stats) {
    lastStats = stats;
    renderQuotas(stats);
    renderCameras(stats);
  }

  function updated(text, isError = false) {
    const node = $("updated");
    node.textContent = text;
    node.className = isError ? "state-bad" : "muted";
  }

  // --- polling -------------------------------------------------------------------------
  async function pollStats() {
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const response = await fetch(STATS, { headers, cache: "no-store" });
      if (response.status === 304) {
        updated(`Up to date at ${new Date().toLocaleTimeString()} (nothing changed)`);
      } else if (response.ok) {
        etag = response.headers.get("ETag");
        const stats = await response.json();
        render(stats);
        updated(`Updated ${new Date().toLocaleTimeString()}; snapshot ${stats.snapshot_age_ms} ms old`);
      } else {
        updated(`Stats unavailable (HTTP ${response.status}): Valkey may be down`, true);
      }
    } catch (error) {
      updated(`The service does not answer: ${error.message}`, true);
    } finally {
      setTimeout(pollStats, POLL_MS);
    }
  }

  async function pollReady() {
    let checks = {};
    try {
      const response = await fetch(READY, { cache: "no-store" });
      checks = (await response.json()).checks || {};
    } catch (error) {
      checks = { service: `failed: ${error.message}` };
    } finally {
      setTimeout(pollReady, READY_MS);
    }
    const items = Object.entries(checks).map(([name, state]) =>
      el("li", { class: `dep ${state === "ok" ? "state-ok" : "state-bad"}`, "data-dependency": name,
                 text: `${name}: ${state}` }));
    if (!("livekit" in checks)) {
      items.push(el("li", { class: "dep muted", "data-dependency": "livekit",
                            text: "livekit: not checked (disabled)" }));
    }
    $("deps").replaceChildren(...items);
  }

  // --- admin ---------------------------------------------------------------------------
  function adminMessage(text, isError = false) {
    const node = $("admin-message");
    node.textContent = text;
    node.className = isError ? "state-bad" : "muted";
  }

  function showAdmin() {
    const on = Boolean(adminKey());
    for (const node of document.querySelectorAll(".admin-only")) node.hidden = !on;
    if (!$("viewers-list").children.length) $("viewers-panel").hidden = true;
    $("admin-forget").hidden = !on;
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`;
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  async function resetCamera(cameraId, button) {
    button.disabled = true;
    try {
      const response = await fetch(`/api/v1/cameras/${encodeURIComponent(cameraId)}/reset`, {
        method: "POST", headers: { Authorization: `Bearer ${adminKey()}` } });
      if (!response.ok) {
        adminMessage(`Reset of ${cameraId} refused: ${await errorText(response)}`, true);
        return;
      }
      const report = await response.json();
      adminMessage(`Reset ${cameraId}: ${report.released} reservations ended, pusher ${report.state}`);
    } catch (error) {
      adminMessage(`Reset of ${cameraId} failed: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  async function listViewers(cameraId) {
    const response = await fetch(`/api/v1/cameras/${encodeURIComponent(cameraId)}/reservations`,
                                 { headers: { Authorization: `Bearer ${adminKey()}` } });
    if (!response.ok) {
      adminMessage(`Viewers of ${cameraId}: ${await errorText(response)}`, true);
      return;
    }
    const { reservations } = await response.json();
    const items = reservations.map((r) => {
      const kick = el("button", { class: "secondary", type: "button", text: "Kick" });
      kick.addEventListener("click", () => kickViewer(cameraId, r.reservation_id, kick));
      const where = r.connected ? "in the room" : "not in the room";
      return el("li", { "data-reservation-id": r.reservation_id },
        el("span", { class: "id", text: r.identity }),
        ` ${r.source}, ${r.user_id || "?"}, ${where}, until ${when(r.expires_at)} `, kick);
    });
    $("viewers-title").textContent = `Viewers of ${cameraId}: ${reservations.length}`;
    $("viewers-list").replaceChildren(...items);
    $("viewers-panel").hidden = false;
  }

  async function kickViewer(cameraId, reservationId, button) {
    button.disabled = true;
    const response = await fetch(`/api/v1/reservations/${encodeURIComponent(reservationId)}`, {
      method: "DELETE", headers: { Authorization: `Bearer ${adminKey()}` } });
    if (!response.ok) {
      adminMessage(`Kick refused: ${await errorText(response)}`, true);
      button.disabled = false;
      return;
    }
    const report = await response.json();
    const removed = report.participant_removed ? "removed from the room" : "not in the room";
    adminMessage(`Kicked ${reservationId}: reservation ${report.released ? "ended" : "already gone"}, ${removed}`);
    await listViewers(cameraId);
  }

  $("admin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("admin-key").value.trim();
    const response = await fetch("/api/v1/cameras", { headers: { Authorization: `Bearer ${key}` } });
    if (!response.ok) {
      adminMessage(`Key refused: ${await errorText(response)}`, true);
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    $("admin-key").value = "";
    adminMessage("Admin key accepted for this tab: Reset and Viewers are shown per camera.");
    showAdmin();
    if (lastStats) renderCameras(lastStats);
  });

  $("admin-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    adminMessage("Public view. Enter an admin key to reset cameras and kick viewers.");
    $("viewers-list").replaceChildren();
    showAdmin();
    if (lastStats) renderCameras(lastStats);
  });

  showAdmin();
  pollStats();
  pollReady();
})();
