// autoreply dashboard: keyboard shortcuts and live updates for the queue, nothing else.
// Every form also works without this script (a plain POST and a redirect back).
(function () {
  "use strict";

  const POLL_MS = 3000;

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // POST a form's fields as a script: JSON back, {ok, message}, with the HTTP status.
  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
    });
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    let data;
    try {
      data = await response.json();
    } catch (_) {
      data = { ok: false, message: "The server answered " + response.status + "; reload the page." };
    }
    data.status = response.status;
    return data;
  }

  function note(text, kind) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.innerHTML = "";
    const p = document.createElement("p");
    p.className = "note note-" + (kind || "ok");
    p.setAttribute("role", kind === "error" ? "alert" : "status");
    p.textContent = text;
    box.appendChild(p);
  }

  window.autoreply = { post: post, note: note };

  // A picker that shows its choice at once (no inline handlers: the CSP allows none).
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
      target.form.submit();
    }
  });

  const queue = document.getElementById("queue");
  if (!queue) return;
  const list = document.getElementById("queue-list");
  const detail = document.getElementById("detail");
  let selected = queue.dataset.selected ? Number(queue.dataset.selected) : null;
  let busy = false;

  const items = () => Array.from(list.querySelectorAll(".q-item[data-id]"));
  const ids = () => items().map((li) => Number(li.dataset.id));
  const shownDraft = () => {
    const article = detail.querySelector("[data-draft-id]");
    return article ? Number(article.dataset.draftId) : null;
  };

  function query(extra) {
    const params = new URLSearchParams();
    if (queue.dataset.account) params.set("account", queue.dataset.account);
    if (extra !== null && extra !== undefined) params.set("d", String(extra));
    const text = params.toString();
    return text ? "?" + text : "";
  }

  function mark() {
    for (const li of items()) li.classList.toggle("selected", Number(li.dataset.id) === selected);
  }

  async function show(id) {
    selected = id;
    mark();
    history.replaceState(null, "", "/queue" + query(id));
    if (id === null) {
      detail.innerHTML = '<p class="muted">Nothing to review.</p>';
      return;
    }
    const response = await fetch("/queue/drafts/" + id, { credentials: "same-origin" });
    if (response.ok) {
      detail.innerHTML = await response.text();
    } else {
      detail.innerHTML = '<p class="muted">Draft #' + id + " is not available any more.</p>";
    }
  }

  async function refreshList() {
    const response = await fetch("/queue/list" + query(selected), { credentials: "same-origin" });
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent("/queue" + query(selected));
      return;
    }
    if (!response.ok) return;
    list.innerHTML = await response.text();
    const shown = shownDraft();
    const article = detail.querySelector("[data-draft-id]");
    if (shown !== null && article && article.dataset.status === "queued" && !ids().includes(shown)) {
      // Someone else handled it: say so, and leave the panel until this moderator moves on.
      const stale = article.querySelector(".stale");
      if (stale) stale.hidden = false;
    }
    mark();
  }

  function move(step) {
    const all = ids();
    if (!all.length) return;
    let index = all.indexOf(selected);
    index = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + step));
    show(all[index]);
  }

  async function submit(form) {
    if (busy) return;
    busy = true;
    try {
      const before = ids().indexOf(shownDraft());
      const result = await post(form.action, new FormData(form));
      note(result.message, result.ok ? "ok" : "error");
      await refreshList();
      if (result.ok && form.closest("#detail")) {
        const all = ids();
        const next = all.length ? all[Math.min(Math.max(before, 0), all.length - 1)] : null;
        await show(next);
      } else if (result.ok) {
        location.reload(); // the pending sends table
      }
    } finally {
      busy = false;
    }
  }

  function act(name) {
    const form = detail.querySelector('form[data-action="' + name + '"]');
    if (!form) {
      note("There is nothing to " + name + " here.", "error");
      return;
    }
    const required = form.querySelector("input[required]");
    if (required && !required.value.trim()) {
      required.focus();
      note("This draft was blocked by the safety gate: type why it may go out, then press Enter.", "error");
      return;
    }
    submit(form);
  }

  function openEditor() {
    const editor = detail.querySelector("details.editor");
    if (editor) editor.open = true;
    const area = detail.querySelector('form[data-action="edit"] textarea');
    if (!area) {
      note("There is nothing to edit here.", "error");
      return;
    }
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    if (!form.closest("#queue") && !form.closest(".pending")) return;
    event.preventDefault();
    submit(form);
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const inEditor = target instanceof HTMLTextAreaElement && target.closest(".editor-form");
    if (inEditor) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        submit(target.form);
      } else if (event.key === "Escape") {
        const editor = target.closest("details");
        if (editor) editor.open = false;
        target.blur();
      }
      return;
    }
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
        target instanceof HTMLSelectElement) {
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const keys = { j: () => move(1), k: () => move(-1), a: () => act("approve"),
                   e: openEditor, r: () => act("reject") };
    const handler = keys[event.key];
    if (handler) {
      event.preventDefault();
      handler();
    }
  });

  list.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest(".q-item a") : null;
    if (!link) return;
    event.preventDefault();
    show(Number(link.closest(".q-item").dataset.id));
  });

  setInterval(() => {
    if (!busy && !document.hidden) refreshList();
  }, POLL_MS);
})();
