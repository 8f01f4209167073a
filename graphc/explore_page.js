(function () {
  "use strict";
  var errors = [];
  function fail(msg) {
    errors.push(String(msg));
    var box = document.getElementById("errors");
    box.style.display = "block";
    box.textContent = "explorer error: " + errors.join("; ");
    document.body.setAttribute("data-errors", String(errors.length));
  }
  window.addEventListener("error", function (e) { fail(e.message); });
  var DATA = JSON.parse(document.getElementById("graph-data").textContent);
  var stages = DATA.stages, current = 0, views = [], hits = [], hitAt = -1;
  var canvas = document.getElementById("canvas"), panel = document.getElementById("panel");

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; });
  }
  var KW = /^(def|return|for|in|range|if|elif|else|while|and|or|not|is|None|True|False|import|from|as|with|break|continue|pass|lambda|try|except|raise|global)$/;
  function highlight(src) {
    var out = "", re = /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(@[\w.]+)|\b(\d+(?:\.\d+)?(?:e[-+]?\d+)?)\b|([A-Za-z_]\w*)|([\s\S])/g, m;
    var afterDef = false;
    while ((m = re.exec(src)) !== null) {
      if (m[1]) out += '<span class="com">' + esc(m[1]) + "</span>";
      else if (m[2]) out += '<span class="str">' + esc(m[2]) + "</span>";
      else if (m[3]) out += '<span class="dec">' + esc(m[3]) + "</span>";
      else if (m[4]) out += '<span class="num">' + esc(m[4]) + "</span>";
      else if (m[5]) {
        if (afterDef) { out += '<span class="fn">' + esc(m[5]) + "</span>"; afterDef = false; }
        else if (KW.test(m[5])) { out += '<span class="kw">' + m[5] + "</span>"; afterDef = m[5] === "def"; }
        else out += esc(m[5]);
      } else out += esc(m[6]);
    }
    return out;
  }
  function fmtBytes(b) { return b >= 1e6 ? (b / 1e6).toFixed(2) + " MB" : b >= 1e3 ? (b / 1e3).toFixed(1) + " kB" : b + " B"; }
  function fmtNum(x) { return x >= 1e9 ? (x / 1e9).toFixed(2) + " G" : x >= 1e6 ? (x / 1e6).toFixed(2) + " M" : x >= 1e3 ? (x / 1e3).toFixed(1) + " k" : String(x); }

  // ---------------------------------------------------------------- summary
  var s = DATA.summary, parts = [];
  if (s.backend) parts.push("backend <b>" + esc(s.backend) + "</b>");
  if (s.kernels != null) parts.push("<b>" + s.kernels + "</b> kernels");
  if (s.parameters != null) parts.push("<b>" + s.parameters + "</b> parameters (" + fmtNum(s.parameter_elements) + " values)");
  if (s.flops_per_call != null) parts.push("<b>" + fmtNum(s.flops_per_call) + "FLOP</b> and <b>" + fmtBytes(s.bytes_per_call) + "</b> per call, <b>" + (1e3 * s.seconds_per_call).toFixed(3) + " ms</b> in kernels");
  else parts.push("no profile (explore(..., feeds=...) measures each kernel)");
  if (s.compile_seconds != null) parts.push("compiled in <b>" + s.compile_seconds.toFixed(2) + " s</b>");
  document.getElementById("summary").innerHTML = parts.map(function (p) { return "<span>" + p + "</span>"; }).join("");

  // ---------------------------------------------------------------- stages, pan and zoom
  var tabs = document.getElementById("tabs");
  stages.forEach(function (st, i) {
    var b = document.createElement("button");
    b.textContent = st.name;
    b.id = "tab-" + st.name;
    b.addEventListener("click", function () { show(i); });
    tabs.appendChild(b);
    var div = document.getElementById("stage-" + i);
    var svg = div.querySelector("svg");
    views.push({div: div, svg: svg, x: 0, y: 0, k: 1, fitted: false});
    if (svg) colourKernels(st, svg);
  });
  function apply(v) { if (v.svg) v.svg.style.transform = "translate(" + v.x + "px," + v.y + "px) scale(" + v.k + ")"; }
  function fit(v) {
    if (!v.svg) return;
    var w = v.svg.width.baseVal.value || 1, h = v.svg.height.baseVal.value || 1;
    var cw = canvas.clientWidth || 800, ch = canvas.clientHeight || 600;
    v.k = Math.min(cw / w, ch / h, 1.5); v.x = (cw - w * v.k) / 2; v.y = Math.max(0, (ch - h * v.k) / 2);
    v.fitted = true; apply(v);
  }
  function show(i) {
    current = i;
    views.forEach(function (v, j) { v.div.classList.toggle("active", j === i); });
    Array.prototype.forEach.call(tabs.children, function (b, j) { b.classList.toggle("active", j === i); });
    if (!views[i].fitted) fit(views[i]);
    runSearch();
  }
  document.getElementById("fit").addEventListener("click", function () { fit(views[current]); });
  canvas.addEventListener("wheel", function (e) {
    var v = views[current]; if (!v.svg) return;
    e.preventDefault();
    var r = canvas.getBoundingClientRect(), px = e.clientX - r.left, py = e.clientY - r.top;
    var f = Math.exp(-e.deltaY * 0.0015), k = Math.min(Math.max(v.k * f, 0.02), 20);
    v.x = px - (px - v.x) * k / v.k; v.y = py - (py - v.y) * k / v.k; v.k = k; apply(v);
  }, {passive: false});
  var drag = null;
  canvas.addEventListener("mousedown", function (e) {
    drag = {x: e.clientX, y: e.clientY, moved: false}; canvas.classList.add("dragging"); });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    var v = views[current], dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
    v.x += dx; v.y += dy; drag.x = e.clientX; drag.y = e.clientY; apply(v);
  });
  window.addEventListener("mouseup", function () { canvas.classList.remove("dragging"); setTimeout(function () { drag = null; }, 0); });
  function centerOn(el, zoom) {
    // zoom (optional): at least this scale; then shift so that el's middle is the canvas's middle
    var v = views[current]; if (!v.svg || !el.getBoundingClientRect) return;
    if (zoom && v.k < zoom) { v.k = zoom; apply(v); }
    var r = el.getBoundingClientRect(), c = canvas.getBoundingClientRect();
    v.x += (c.left + c.width / 2) - (r.left + r.width / 2);
    v.y += (c.top + c.height / 2) - (r.top + r.height / 2);
    apply(v);
  }

  // ---------------------------------------------------------------- lookup and selection
  function titleOf(g) { var t = g.querySelector(":scope > title"); return t ? t.textContent : ""; }
  function nodeId(title) { return title.indexOf("_") > 0 && title[0] === "n" ? title.split("_")[0] : title; }
  function select(g) {
    var v = views[current];
    v.svg.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
    g.classList.add("selected");
  }
  function row(k, val) { return "<tr><td>" + esc(k) + "</td><td>" + val + "</td></tr>"; }
  function showNode(id) {
    var st = stages[current], n = st.nodes[id];
    if (!n) { panel.innerHTML = "<p>no data for " + esc(id) + "</p>"; return; }
    var h = "<h2 id=\"node-title\">" + esc(n.label) + " <small>(" + esc(n.op) + ")</small></h2><table>";
    h += row("shape", esc(n.shape)) + row("dtype", esc(n.dtype)) + row("kind", esc(n.kind));
    if (n.role) h += row("role", esc(n.role));
    if (n.value) h += row("value", "<code>" + esc(n.value) + "</code>");
    Object.keys(n.attrs || {}).forEach(function (k) { h += row(k, "<code>" + esc(n.attrs[k]) + "</code>"); });
    h += row("made by", esc(n.made_by));
    if (n.loc) h += row("built at", "<code>" + esc(n.loc.file + ":" + n.loc.line) + "</code>");
    h += "</table>";
    if (n.loc && n.loc.code) h += '<pre class="line" id="user-line">' + esc(n.loc.line + ": " + n.loc.code) + "</pre>";
    var owner = Object.keys(st.kernels).filter(function (c) { return st.kernels[c].nodes.indexOf(id) >= 0; });
    if (owner.length) h += "<p>computed by kernel <a href=\"#kernel=" + esc(st.kernels[owner[0]].name) + "\">" + esc(st.kernels[owner[0]].name) + "</a></p>";
    panel.innerHTML = h;
  }
  function showKernel(cid) {
    var st = stages[current], k = st.kernels[cid];
    if (!k) return;
    function vals(list) { return list.map(function (v) { return esc(v.label + " " + v.shape + " " + v.dtype); }).join("<br>"); }
    var h = "<h2 id=\"kernel-title\">" + esc(k.name) + " <small>(" + esc(k.kind) + ")</small></h2><table>";
    h += row("fuses", esc(k.ops.join(" "))) + row("inputs", vals(k.inputs)) + row("outputs", vals(k.outputs));
    if (k.profile) {
      var p = k.profile;
      h += row("time", p.us.toFixed(2) + " us (" + (100 * p.share).toFixed(1) + "% of the step)");
      h += row("moves", fmtBytes(p.bytes) + ", " + p.gbps.toFixed(2) + " GB/s");
      h += row("computes", fmtNum(p.flops) + "FLOP, " + p.gflops.toFixed(2) + " GFLOP/s");
    }
    h += "</table>";
    h += k.source ? '<pre class="code" id="source">' + highlight(k.source) + "</pre>" : "<p id=\"source\">(no generated source on this backend)</p>";
    panel.innerHTML = h;
  }
  canvas.addEventListener("click", function (e) {
    if (drag && drag.moved) return;
    var g = e.target.closest ? e.target.closest("g.node, g.cluster") : null;
    if (!g) return;
    select(g);
    var t = titleOf(g);
    if (g.classList.contains("cluster")) { showKernel(t); location.hash = "kernel=" + encodeURIComponent(stages[current].kernels[t] ? stages[current].kernels[t].name : t); }
    else { showNode(nodeId(t)); history.replaceState(null, "", "#node=" + nodeId(t) + "&stage=" + stages[current].name); }
  });
  function colourKernels(st, svg) {
    svg.querySelectorAll("g.cluster").forEach(function (g) {
      var k = st.kernels[titleOf(g)];
      if (!k || !k.profile) return;
      var shape = g.querySelector(":scope > path, :scope > polygon");
      var a = Math.min(1, k.profile.share * 4), c = Math.round(255 - 178 * a);
      if (shape) shape.setAttribute("fill", "rgb(255," + c + "," + c + ")");
      g.setAttribute("data-share", k.profile.share.toFixed(4));
    });
  }
  function selectKernel(name) {
    for (var i = 0; i < stages.length; i++) {
      var ids = Object.keys(stages[i].kernels);
      for (var j = 0; j < ids.length; j++) if (stages[i].kernels[ids[j]].name === name) {
        show(i);
        var g = Array.prototype.find.call(views[i].svg ? views[i].svg.querySelectorAll("g.cluster") : [], function (c) { return titleOf(c) === ids[j]; });
        if (g) { select(g); centerOn(g, 0.8); }
        showKernel(ids[j]); return true;
      }
    }
    fail("no kernel named " + name); return false;
  }
  function selectNode(id, stage) {
    var i = Math.max(0, stages.findIndex(function (s) { return s.name === stage; }));
    show(i);
    var g = Array.prototype.find.call(views[i].svg ? views[i].svg.querySelectorAll("g.node") : [], function (c) { return nodeId(titleOf(c)) === id; });
    if (g) { select(g); centerOn(g, 1); }
    showNode(id);
  }

  // ---------------------------------------------------------------- search
  var box = document.getElementById("search");
  function runSearch() {
    var v = views[current], q = box.value.trim().toLowerCase(), st = stages[current];
    if (v.svg) v.svg.querySelectorAll(".hit").forEach(function (e) { e.classList.remove("hit"); });
    hits = []; hitAt = -1;
    if (q && v.svg) v.svg.querySelectorAll("g.node").forEach(function (g) {
      var n = st.nodes[nodeId(titleOf(g))];
      if (n && (n.label.toLowerCase().indexOf(q) >= 0 || n.op.toLowerCase().indexOf(q) >= 0)) { g.classList.add("hit"); hits.push(g); }
    });
    document.getElementById("hits").textContent = q ? hits.length + " found" : "";
  }
  box.addEventListener("input", runSearch);
  box.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !hits.length) return;
    hitAt = (hitAt + 1) % hits.length; centerOn(hits[hitAt]); select(hits[hitAt]);
    showNode(nodeId(titleOf(hits[hitAt])));
  });

  // ---------------------------------------------------------------- the URL fragment
  function fromHash() {
    var q = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var p = kv.split("="); if (p[0]) q[decodeURIComponent(p[0])] = decodeURIComponent(p[1] || ""); });
    if (q.kernel) selectKernel(q.kernel);
    else if (q.node) selectNode(q.node, q.stage);
    else if (q.search) { box.value = q.search; runSearch(); }
  }
  window.addEventListener("hashchange", fromHash);
  var start = stages.findIndex(function (s) { return s.name === "optimized"; });
  show(start >= 0 ? start : 0);
  fromHash();
  document.body.setAttribute("data-ready", "1");
})();
