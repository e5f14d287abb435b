/* The console's own script (no build): forms that post to the JSON API with the CSRF header, live
   progress over Server-Sent Events, drag-and-drop uploads, citations that open their passage.
   htmx (vendored beside this file) swaps server-rendered fragments; this file adds the CSRF header to
   its requests too. */
(function () {
  "use strict";

  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)magnet_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function fieldValue(el) {
    if (el.type === "checkbox") return el.checked;
    if (el.value === "") return undefined;
    if (el.type === "number") return Number(el.value);
    if (el.dataset.json !== undefined) { try { return JSON.parse(el.value); } catch (e) { return el.value; } }
    if (el.dataset.list !== undefined) {
      return el.value.split(/[\n,]/).map(function (s) { return s.trim(); }).filter(Boolean);
    }
    return el.value;
  }

  /* name="a.b" builds {"a": {"b": ...}}; several selected options give a list. */
  function jsonBody(form) {
    var body = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.name === "csrf_token" || el.disabled || el.type === "submit" || el.type === "file") return;
      var value = el.multiple ? Array.prototype.filter.call(el.options, function (o) { return o.selected; })
        .map(function (o) { return o.value; }) : fieldValue(el);
      if (value === undefined) return;
      var path = el.name.split("."), target = body;
      for (var i = 0; i < path.length - 1; i++) { target = target[path[i]] = target[path[i]] || {}; }
      target[path[path.length - 1]] = value;
    });
    return body;
  }

  function say(form, message, ok) {
    var out = form.querySelector("[data-role=status]");
    if (!out) { out = document.createElement("p"); out.dataset.role = "status"; form.appendChild(out); }
    out.setAttribute("role", ok ? "status" : "alert");
    out.className = ok ? "ok" : "err";
    out.textContent = message;
  }

  function errorMessage(payload, status) {
    if (payload && payload.error) {
      var e = payload.error, fields = e.details && e.details.fields;
      var text = e.message || e.code;
      if (fields && typeof fields === "object" && !/validation/.test(text)) {
        text += " " + Object.keys(fields).map(function (k) { return k + ": " + fields[k]; }).join("; ");
      }
      return text;
    }
    return "The request failed (HTTP " + status + ").";
  }

  function send(method, url, body, isForm) {
    var headers = { "X-CSRF-Token": csrf(), "Accept": "application/json" };
    if (!isForm && body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : (isForm ? body : JSON.stringify(body))
    }).then(function (res) {
      return res.text().then(function (text) {
        var payload = null;
        try { payload = text ? JSON.parse(text) : null; } catch (e) { payload = null; }
        return { ok: res.ok, status: res.status, payload: payload };
      });
    });
  }

  function fill(template, data) {
    return template.replace(/\{([a-z_]+)\}/g, function (_, k) { return encodeURIComponent((data && data[k]) || ""); });
  }

  function submitApiForm(form) {
    var method = (form.dataset.method || "POST").toUpperCase();
    var url = form.dataset.api, isForm = form.enctype === "multipart/form-data";
    var body;
    if (isForm) {
      body = new FormData();
      Array.prototype.forEach.call(form.querySelectorAll("input[type=file]"), function (input) {
        Array.prototype.forEach.call(input.files, function (f) { body.append(input.name, f); });
      });
    } else if (method !== "DELETE") {
      body = jsonBody(form);
      /* data-wrap="notes": the fields are one item of a list, sent as {"notes": [fields]} */
      if (form.dataset.wrap) { var wrapped = {}; wrapped[form.dataset.wrap] = [body]; body = wrapped; }
    }
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    var button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    say(form, form.dataset.pending || "Working…", true);
    send(method, url, body, isForm).then(function (r) {
      if (button) button.disabled = false;
      if (!r.ok) { say(form, errorMessage(r.payload, r.status), false); return; }
      var data = r.payload && r.payload.data;
      if (form.dataset.loginAfter !== undefined) {
        var creds = jsonBody(form);
        return send("POST", "/api/auth/login", { email: creds.email, password: creds.password }).then(function (l) {
          if (!l.ok) { say(form, errorMessage(l.payload, l.status), false); return; }
          window.location.assign(form.dataset.then || "/");
        });
      }
      if (form.dataset.show) {
        var out = document.getElementById(form.dataset.show);
        out.textContent = JSON.stringify(data, null, 2);
        out.hidden = false;
      }
      say(form, form.dataset.done || "Done.", true);
      var then = form.dataset.then;
      if (then === "reload") window.location.reload();
      else if (then) window.location.assign(fill(then, data));
    }).catch(function () {
      if (button) button.disabled = false;
      say(form, "The server could not be reached.", false);
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.api) { event.preventDefault(); submitApiForm(form); }
  });

  /* Drag and drop onto a .dropzone: the files go into its file input and its form is sent. */
  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest(".dropzone");
    if (zone) { event.preventDefault(); zone.classList.add("over"); }
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest(".dropzone");
    if (zone) zone.classList.remove("over");
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest(".dropzone");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("over");
    var input = zone.querySelector("input[type=file]");
    input.files = event.dataTransfer.files;
    submitApiForm(zone.closest("form"));
  });

  /* Live progress: <div data-sse="url"> with a <progress> and [data-role=text]; reloads when it ends. */
  function follow(box) {
    var source = new EventSource(box.dataset.sse);
    var bar = box.querySelector("progress"), text = box.querySelector("[data-role=text]");
    source.addEventListener("progress", function (event) {
      var p = JSON.parse(event.data);
      if (p.total) { bar.max = p.total; bar.value = p.done; } else { bar.removeAttribute("value"); }
      text.textContent = p.label;
      box.dataset.status = p.status;
    });
    source.addEventListener("end", function (event) {
      source.close();
      var p = JSON.parse(event.data);
      box.dataset.status = p.status;
      text.textContent = p.label;
      window.setTimeout(function () { window.location.reload(); }, 300);
    });
  }

  /* A citation [n] opens (and focuses) the passage it cites. */
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.cite");
    if (!link) return;
    var target = document.getElementById(link.getAttribute("href").slice(1));
    if (target) { target.open = true; target.querySelector("summary").focus(); }
  });

  /* Buttons that call the API without fields: <button data-api-button="POST /api/..." data-then="reload"> */
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-api-button]");
    if (!button) return;
    var parts = button.dataset.apiButton.split(" ");
    button.disabled = true;
    send(parts[0], parts[1], parts[0] === "POST" ? {} : undefined).then(function (r) {
      button.disabled = false;
      var out = document.getElementById(button.getAttribute("aria-describedby") || "");
      if (!r.ok) { if (out) { out.textContent = errorMessage(r.payload, r.status); out.className = "err"; } return; }
      var then = button.dataset.then;
      if (then === "reload") window.location.reload();
      else if (then) window.location.assign(fill(then, r.payload && r.payload.data));
    });
  });

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrf();
  });

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-sse]"), follow);
  });
})();

/* Chat with an agent: opens a conversation, then streams each answer (POST …/messages, stream: true). */
(function () {
  "use strict";
  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)magnet_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function post(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() } });
  }
  function line(log, who, text) {
    var p = document.createElement("p");
    p.className = "msg " + who;
    p.textContent = text;
    log.appendChild(p);
    return p;
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.chatAgent) return;
    event.preventDefault();
    var log = document.getElementById("chat-log"), box = form.elements.message, text = box.value.trim();
    if (!text) return;
    box.value = "";
    line(log, "user", "You: " + text);
    var answer = line(log, "assistant", "");
    var opened = form.dataset.conversation ? Promise.resolve(form.dataset.conversation) :
      post("/api/conversations", { agent_id: form.dataset.chatAgent }).then(function (r) { return r.json(); })
        .then(function (j) { if (!j.success) throw new Error(j.error.message); form.dataset.conversation = j.data.id; return j.data.id; });
    opened.then(function (id) {
      return post("/api/conversations/" + id + "/messages", { message: text, stream: true });
    }).then(function (res) {
      if (!res.ok) return res.json().then(function (j) { throw new Error(j.error ? j.error.message : "HTTP " + res.status); });
      var reader = res.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buffer += decoder.decode(chunk.value, { stream: true });
          var events = buffer.split("\n\n");
          buffer = events.pop();
          events.forEach(function (raw) {
            raw.split("\n").forEach(function (l) {
              if (l.indexOf("data: ") !== 0 || l === "data: [DONE]") return;
              var e = JSON.parse(l.slice(6));
              if (e.event === "text.chunk") answer.textContent += e.delta;
              if (e.event === "error") { answer.className += " err"; answer.textContent += " " + e.message; }
            });
          });
          return pump();
        });
      }
      return pump();
    }).catch(function (err) { answer.className += " err"; answer.textContent = err.message; });
  });
})();
