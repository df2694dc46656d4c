// The playground: calls aitre's public API from the browser with the visitor's own key (kept in
// this tab's session storage: set at sign-in with a key, pasted, or made for the playground).
(function () {
  "use strict";
  var STORE = "aitre.key";
  var key = "";
  try { key = sessionStorage.getItem(STORE) || ""; } catch (e) { key = ""; }

  function $(id) { return document.getElementById(id); }
  function setText(id, text) { var el = typeof id === "string" ? $(id) : id; if (el) el.textContent = text; }
  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || ""; } catch (e) { return ""; }
  }
  // Links the gateway makes carry its public URL; the page loads them from its own origin.
  function local(url) {
    if (!url) return url;
    var at = url.indexOf("/media/");
    return at >= 0 ? url.slice(at) : url;
  }

  function showKey() {
    var hint = key ? key.slice(0, 7) + "…" + key.slice(-4) : "";
    setText("pg-key-state", key ? "Using key " + hint + "." : "No key yet: paste one of yours" + ($("pg-key-new") ? ", or create a playground key." : "."));
  }

  function useKey(value) {
    key = (value || "").trim();
    try { if (key) sessionStorage.setItem(STORE, key); else sessionStorage.removeItem(STORE); } catch (e) { /* this tab only */ }
    showKey();
    loadModels();
  }

  function headers(json) {
    var h = { "Authorization": "Bearer " + key };
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  async function failure(resp) {
    var text = await resp.text();
    try { var body = JSON.parse(text); if (body.error) return resp.status + ": " + body.error.message; if (body.description) return body.description; } catch (e) { /* not JSON */ }
    return resp.status + ": " + text.slice(0, 300);
  }

  function needKey(meta) {
    if (key) return false;
    setText(meta, "Choose a key first (above).");
    return true;
  }

  async function loadModels() {
    if (!key) return;
    try {
      var resp = await fetch("/v1/models", { headers: headers(false) });
      if (!resp.ok) { setText("pg-key-state", "That key does not work: " + (await failure(resp))); return; }
      var list = $("pg-models");
      list.textContent = "";
      (await resp.json()).data.forEach(function (m) {
        var option = document.createElement("option");
        option.value = m.id;
        list.appendChild(option);
      });
    } catch (e) { setText("pg-key-state", "Could not list models: " + e); }
  }

  function tabs() {
    var all = Array.prototype.slice.call(document.querySelectorAll("[role=tab]"));
    function select(tab) {
      all.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      });
    }
    all.forEach(function (tab, i) {
      tab.addEventListener("click", function () { select(tab); });
      tab.addEventListener("keydown", function (event) {
        var next = event.key === "ArrowRight" ? i + 1 : event.key === "ArrowLeft" ? i - 1 : null;
        if (next === null) return;
        var target = all[(next + all.length) % all.length];
        select(target);
        target.focus();
        event.preventDefault();
      });
    });
  }

  // --- chat: streamed as it arrives ---------------------------------------------------------
  async function chat(event) {
    event.preventDefault();
    if (needKey("chat-meta")) return;
    var out = $("chat-out");
    var stream = $("chat-stream").checked;
    out.textContent = "";
    setText("chat-meta", "Waiting for the first token…");
    var started = performance.now();
    var body = { model: $("chat-model").value.trim(), messages: [{ role: "user", content: $("chat-message").value }], stream: stream };
    if (stream) body.stream_options = { include_usage: true };
    var resp = await fetch("/v1/chat/completions", { method: "POST", headers: headers(true), body: JSON.stringify(body) });
    if (!resp.ok) { setText("chat-meta", await failure(resp)); return; }
    if (!stream) {
      var whole = await resp.json();
      out.textContent = whole.choices[0].message.content || "";
      setText("chat-meta", "Done in " + Math.round(performance.now() - started) + " ms; " + JSON.stringify(whole.usage || {}));
      return;
    }
    var reader = resp.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "", first = 0, usage = null, chunks = 0;
    for (;;) {
      var step = await reader.read();
      if (step.done) break;
      buffer += decoder.decode(step.value, { stream: true });
      var lines = buffer.split("\n");
      buffer = lines.pop();
      for (var i = 0; i < lines.length; i++) {
        var line = lines[i].trim();
        if (line.indexOf("data:") !== 0) continue;
        var data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        var chunk = JSON.parse(data);
        if (chunk.error) { setText("chat-meta", "Error: " + chunk.error.message); continue; }
        if (chunk.usage) usage = chunk.usage;
        var delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          if (!first) { first = performance.now() - started; setText("chat-meta", "Streaming…"); }
          out.appendChild(document.createTextNode(delta.content));
          chunks++;
        }
      }
    }
    out.dataset.done = "1";
    setText("chat-meta", "Done: " + chunks + " chunks, first token after " + Math.round(first) + " ms, all in " + Math.round(performance.now() - started) + " ms" + (usage ? "; " + usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion tokens" : "") + ".");
  }

  // --- image ----------------------------------------------------------------------------------
  async function image(event) {
    event.preventDefault();
    if (needKey("image-meta")) return;
    setText("image-meta", "Making the image…");
    $("image-out").textContent = "";
    var resp = await fetch("/v1/images/generations", { method: "POST", headers: headers(true),
      body: JSON.stringify({ model: $("image-model").value.trim(), prompt: $("image-prompt").value, size: $("image-size").value, n: 1 }) });
    if (!resp.ok) { setText("image-meta", await failure(resp)); return; }
    var body = await resp.json();
    body.data.forEach(function (item, i) {
      var img = document.createElement("img");
      img.src = item.url ? local(item.url) : "data:image/png;base64," + item.b64_json;
      img.alt = "Generated image " + (i + 1) + ": " + $("image-prompt").value;
      $("image-out").appendChild(img);
    });
    setText("image-meta", "Done.");
  }

  // --- speech ---------------------------------------------------------------------------------
  async function speech(event) {
    event.preventDefault();
    if (needKey("speech-meta")) return;
    setText("speech-meta", "Speaking…");
    var resp = await fetch("/v1/audio/speech", { method: "POST", headers: headers(true),
      body: JSON.stringify({ model: $("speech-model").value.trim(), input: $("speech-input").value, voice: $("speech-voice").value, response_format: $("speech-format").value }) });
    if (!resp.ok) { setText("speech-meta", await failure(resp)); return; }
    var blob = await resp.blob();
    var audio = $("speech-out");
    audio.src = URL.createObjectURL(blob);
    audio.hidden = false;
    setText("speech-meta", "Done: " + Math.round(blob.size / 1024) + " KiB of " + (blob.type || "audio") + ".");
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // --- video (OpenAI's /v1/videos) --------------------------------------------------------------
  async function video(event) {
    event.preventDefault();
    if (needKey("video-meta")) return;
    setText("video-meta", "Submitting…");
    var resp = await fetch("/v1/videos", { method: "POST", headers: headers(true),
      body: JSON.stringify({ model: $("video-model").value.trim(), prompt: $("video-prompt").value, seconds: $("video-seconds").value, size: $("video-size").value }) });
    if (!resp.ok) { setText("video-meta", await failure(resp)); return; }
    var job = await resp.json();
    while (job.status === "queued" || job.status === "in_progress") {
      setText("video-meta", "Video " + job.id + ": " + job.status + " " + (job.progress || 0) + "%");
      await sleep(1000);
      var poll = await fetch("/v1/videos/" + encodeURIComponent(job.id), { headers: headers(false) });
      if (!poll.ok) { setText("video-meta", await failure(poll)); return; }
      job = await poll.json();
    }
    if (job.status !== "completed") { setText("video-meta", "Video " + job.id + " " + job.status + ": " + ((job.error && job.error.message) || "")); return; }
    var content = await fetch("/v1/videos/" + encodeURIComponent(job.id) + "/content", { headers: headers(false) });
    if (!content.ok) { setText("video-meta", await failure(content)); return; }
    var el = $("video-out");
    el.src = URL.createObjectURL(await content.blob());
    el.hidden = false;
    setText("video-meta", "Video " + job.id + " is ready.");
  }

  // --- Midjourney: submit, follow the task, press its buttons --------------------------------
  async function follow(taskId, meta, out, buttons) {
    for (;;) {
      var resp = await fetch("/mj/task/" + encodeURIComponent(taskId) + "/fetch", { headers: headers(false) });
      if (!resp.ok) { setText(meta, await failure(resp)); return; }
      var task = await resp.json();
      setText(meta, "Task " + taskId + ": " + task.status + " " + (task.progress || ""));
      if (task.status === "SUCCESS" || task.status === "FAILURE" || task.status === "CANCEL") {
        if (task.status !== "SUCCESS") { setText(meta, "Task " + taskId + " " + task.status + ": " + (task.failReason || "")); return; }
        if (out) {
          out.textContent = "";
          if (task.imageUrl) {
            var img = document.createElement("img");
            img.src = local(task.imageUrl);
            img.alt = "Midjourney " + task.action.toLowerCase() + ": " + (task.prompt || "");
            img.id = "mj-image";
            out.appendChild(img);
          }
        }
        if (buttons) drawButtons(buttons, taskId, task.buttons || [], meta, out);
        setText(meta, "Task " + taskId + " done (" + task.action.toLowerCase() + ").");
        return;
      }
      await sleep(700);
    }
  }

  function drawButtons(box, taskId, list, meta, out) {
    box.textContent = "";
    list.forEach(function (b) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = ((b.emoji || "") + " " + (b.label || "")).trim() || b.customId;
      button.dataset.customId = b.customId;
      button.addEventListener("click", function () { press(taskId, b.customId, meta, out, box); });
      box.appendChild(button);
    });
  }

  async function press(taskId, customId, meta, out, box) {
    if (needKey(meta)) return;
    setText(meta, "Pressing…");
    var resp = await fetch("/mj/submit/action", { method: "POST", headers: headers(true), body: JSON.stringify({ taskId: taskId, customId: customId }) });
    if (!resp.ok) { setText(meta, await failure(resp)); return; }
    var answer = await resp.json();
    if (!answer.result || [1, 21, 22].indexOf(answer.code) < 0) { setText(meta, answer.description || "Refused."); return; }
    await follow(answer.result, meta, out, box);
  }

  async function imagine(event) {
    event.preventDefault();
    if (needKey("mj-meta")) return;
    setText("mj-meta", "Submitting…");
    $("mj-out").textContent = "";
    $("mj-buttons").textContent = "";
    var resp = await fetch("/mj/submit/imagine", { method: "POST", headers: headers(true), body: JSON.stringify({ prompt: $("mj-prompt").value }) });
    if (!resp.ok) { setText("mj-meta", await failure(resp)); return; }
    var answer = await resp.json();
    if (!answer.result || [1, 21, 22].indexOf(answer.code) < 0) { setText("mj-meta", answer.description || "Refused."); return; }
    await follow(answer.result, "mj-meta", $("mj-out"), $("mj-buttons"));
  }

  async function newKey() {
    setText("pg-key-state", "Creating a key…");
    var resp = await fetch("/me/playground-key", { method: "POST", headers: { "X-CSRF-Token": csrf() } });
    if (!resp.ok) { setText("pg-key-state", "Could not create a key (" + resp.status + ")."); return; }
    useKey((await resp.json()).key);
  }

  function guard(fn, meta) {
    return function (event) {
      fn(event).catch(function (e) { setText(meta, "Failed: " + e); });
    };
  }

  function init() {
    // The operator's task page: its own MJ task's buttons, pressed through the MJ API.
    var taskButtons = document.querySelector("[data-mj-buttons][data-own='1']");
    if (taskButtons) {
      var out = document.querySelector("[data-mj-out]");
      Array.prototype.forEach.call(taskButtons.querySelectorAll("button[data-custom-id]"), function (b) {
        b.addEventListener("click", function () {
          if (!key) { out.textContent = "Open the playground and choose a key first."; return; }
          press(taskButtons.dataset.task, b.dataset.customId, out, null, null).catch(function (e) { out.textContent = "Failed: " + e; });
        });
      });
    }
    if (!$("pg-key")) return;
    tabs();
    $("pg-key-use").addEventListener("click", function () { useKey($("pg-key-input").value); $("pg-key-input").value = ""; });
    if ($("pg-key-new")) $("pg-key-new").addEventListener("click", function () { newKey().catch(function (e) { setText("pg-key-state", "Failed: " + e); }); });
    $("chat-form").addEventListener("submit", guard(chat, "chat-meta"));
    $("image-form").addEventListener("submit", guard(image, "image-meta"));
    $("speech-form").addEventListener("submit", guard(speech, "speech-meta"));
    $("video-form").addEventListener("submit", guard(video, "video-meta"));
    $("mj-form").addEventListener("submit", guard(imagine, "mj-meta"));
    showKey();
    loadModels();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
