// /viewer: the reference viewer. Reserve → connect to LiveKit with the token → heartbeat on
// the lease's schedule (keeping a refreshed token) → release when the tab closes (fetch with
// keepalive on pagehide), when the LiveKit connection ends, on Stop, or when connecting keeps
// failing. Errors are said in words, never left as a spinner.
"use strict";

(() => {
  const API = "/api/v1/stream";
  const CONNECT_ATTEMPTS = 5;
  const CONNECT_TIMEOUT_MS = 10000;
  const $ = (id) => document.getElementById(id);

  let lease = null; // {id, key, token, heartbeatMs}
  let heartbeatTimer = null;
  let room = null;
  let heartbeats = 0;

  function status(text) {
    $("status").textContent = text;
  }

  function showError(text, arabic = null) {
    $("error").textContent = text;
    $("error").hidden = !text;
    $("error-ar").textContent = arabic || "";
    $("error-ar").hidden = !arabic;
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      return body.error || { code: `HTTP_${response.status}`, message: response.statusText };
    } catch {
      return { code: `HTTP_${response.status}`, message: response.statusText };
    }
  }

  function leaseMs(response, body) {
    // The lease's length by the server's own clocks (Date header, expires_at): the browser's
    // clock may be off.
    const served = Date.parse(response.headers.get("Date") || "");
    const expires = Date.parse(body.expires_at);
    const span = Number.isNaN(served) || Number.isNaN(expires) ? 60000 : expires - served;
    return Math.max(3000, span);
  }

  function setWatching(on) {
    $("watch").disabled = on;
    $("stop").hidden = !on;
    $("lease").hidden = !on;
  }

  async function reserve(key, cameraId, source, userId) {
    const response = await fetch(`${API}/reserve`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ camera_id: cameraId, source, user_id: userId }),
    });
    if (response.status !== 201) {
      const error = await errorOf(response);
      if (response.status === 429) {
        const retry = response.headers.get("Retry-After");
        const when = retry ? ` Try again in ${retry} s.` : "";
        showError(`${error.message_en || error.message}${when}`, error.message_ar || null);
      } else {
        showError(`Reservation refused (${response.status} ${error.code}): ${error.message}`);
      }
      status("Not watching.");
      return null;
    }
    const body = await response.json();
    return { body, ms: leaseMs(response, body) };
  }

  async function heartbeat() {
    if (!lease) return;
    try {
      const response = await fetch(`${API}/heartbeat/${encodeURIComponent(lease.id)}`, {
        method: "POST", headers: { Authorization: `Bearer ${lease.key}` } });
      if (!response.ok) {
        const error = await errorOf(response);
        await end(`The reservation ended (${error.code}): ${error.message}`, false);
        return;
      }
      const body = await response.json();
      if (body.token) lease.token = body.token; // used if LiveKit has to connect again
      heartbeats += 1;
      $("heartbeats").textContent = String(heartbeats);
    } catch (error) {
      status(`Heartbeat failed (${error.message}); trying again.`);
    }
  }

  function releaseNow(keepalive) {
    if (!lease) return Promise.resolve();
    const { id, key } = lease;
    lease = null;
    clearInterval(heartbeatTimer);
    return fetch(`${API}/release/${encodeURIComponent(id)}`, {
      method: "DELETE", headers: { Authorization: `Bearer ${key}` }, keepalive }).catch(() => {});
  }

  async function end(message, isError) {
    const current = room;
    room = null;
    if (current) await current.disconnect().catch(() => {});
    await releaseNow(false);
    setWatching(false);
    $("video").hidden = true;
    status(isError ? "Not watching." : message);
    if (isError) showError(message);
  }

  function withTimeout(promise, ms, what) {
    return Promise.race([promise, new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms))]);
  }

  async function connect(url) {
    const LK = window.LivekitClient;
    if (!LK) throw new Error("the LiveKit client library did not load");
    for (let attempt = 1; attempt <= CONNECT_ATTEMPTS && lease; attempt += 1) {
      const candidate = new LK.Room({ adaptiveStream: true });
      candidate.on(LK.RoomEvent.TrackSubscribed, (track) => {
        if (track.kind === "video") {
          track.attach($("video"));
          $("video").hidden = false;
          status("Watching.");
        }
      });
      try {
        status(`Connecting to the video server (attempt ${attempt} of ${CONNECT_ATTEMPTS})…`);
        await withTimeout(candidate.connect(url, lease.token), CONNECT_TIMEOUT_MS, "connecting");
        room = candidate;
        showError("");
        status("Connected; waiting for the camera's video.");
        candidate.on(LK.RoomEvent.Disconnected, () => {
          if (room === candidate) end("The video connection ended; the reservation was released.", true);
        });
        return;
      } catch (error) {
        await candidate.disconnect().catch(() => {});
        const wait = Math.min(16, 2 ** attempt);
        showError(`Could not connect to the video server (LiveKit at ${url}): ${error.message}.`);
        if (attempt < CONNECT_ATTEMPTS) {
          status(`Not connected. Trying again in ${wait} s (attempt ${attempt} of ${CONNECT_ATTEMPTS} failed).`);
          await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        }
      }
    }
    if (lease) {
      await end(`Could not connect to the video server (LiveKit at ${url}) after ${CONNECT_ATTEMPTS} attempts; the reservation was released.`, true);
    }
  }

  $("watch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const key = $("api-key").value.trim();
    status("Reserving…");
    $("watch").disabled = true;
    let reserved = null;
    try {
      reserved = await reserve(key, $("camera-id").value.trim(), $("source").value.trim(),
                               $("user-id").value.trim());
    } catch (error) {
      showError(`The service does not answer: ${error.message}`);
      status("Not watching.");
    }
    if (!reserved) {
      $("watch").disabled = false;
      return;
    }
    const { body, ms } = reserved;
    lease = { id: body.reservation_id, key, token: body.token, heartbeatMs: Math.max(1000, ms / 3) };
    heartbeats = 0;
    $("reservation-id").textContent = body.reservation_id;
    $("identity").textContent = body.identity;
    $("heartbeats").textContent = "0";
    setWatching(true);
    heartbeatTimer = setInterval(heartbeat, lease.heartbeatMs);
    status(`Reserved ${body.camera_name}; its pusher is ${body.pusher_state}.`);
    await connect(body.livekit_url);
  });

  $("stop").addEventListener("click", () => end("Stopped; the reservation was released.", false));

  // The tab closes or navigates away: release now, with keepalive so the request outlives it.
  window.addEventListener("pagehide", () => {
    releaseNow(true);
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      setWatching(false);
      status("The reservation ended when you left this page; press Watch again.");
    }
  });
})();
