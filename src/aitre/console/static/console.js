// aitre console: small progressive enhancements. Every page works without it except the charts
// and the playground; no inline scripts (the Content-Security-Policy forbids them).
(function () {
  "use strict";
  var KEY = "aitre.key";

  function each(root, selector, fn) {
    Array.prototype.forEach.call(root.querySelectorAll(selector), fn);
  }

  function menu(root) {
    var details = root.querySelector ? root.querySelector(".menu") : null;
    if (details && window.matchMedia("(min-width: 900px)").matches) details.open = true;
  }

  function signIn(root) {
    var form = root.querySelector("#sign-in-form");
    if (!form || form.dataset.ready) return;
    form.dataset.ready = "1";
    function show() {
      var method = form.querySelector("input[name=method]:checked").value;
      each(form, "[data-for-method]", function (el) { el.hidden = el.dataset.forMethod !== method; });
    }
    each(form, "input[name=method]", function (el) { el.addEventListener("change", show); });
    show();
    form.addEventListener("submit", function () {
      var method = form.querySelector("input[name=method]:checked").value;
      // The playground calls the API with the key the visitor signed in with; it stays in this tab.
      try {
        if (method === "key") sessionStorage.setItem(KEY, form.querySelector("#f-key").value.trim());
        else sessionStorage.removeItem(KEY);
      } catch (e) { /* storage off: the playground asks for a key */ }
    });
  }

  function signOut(root) {
    each(root, "form[action='/sign-out']", function (form) {
      form.addEventListener("submit", function () {
        try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing kept */ }
      });
    });
  }

  function copies(root) {
    each(root, "[data-copy]", function (button) {
      if (button.dataset.ready) return;
      button.dataset.ready = "1";
      button.addEventListener("click", function () {
        var input = button.parentNode.querySelector("input, textarea");
        input.select();
        var done = function () { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
        else { document.execCommand("copy"); done(); }
      });
    });
  }

  function confirms(root) {
    each(root, "form[data-confirm]", function (form) {
      if (form.dataset.ready) return;
      form.dataset.ready = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  var PALETTE = ["#0b57d0", "#b3261e", "#146c2e", "#7a4a00", "#6a1b9a", "#00696f"];

  // A chart's data block: {"x": [unix seconds...], "series": [{"label", "values": [...], "unit"}]}.
  function charts(root) {
    if (typeof window.uPlot === "undefined") return;
    each(root, "[data-chart]", function (el) {
      if (el.dataset.ready) return;
      var block = document.getElementById(el.id + "-data");
      if (!block) return;
      var data = JSON.parse(block.textContent);
      el.dataset.ready = "1";
      if (!data.x.length) {
        el.textContent = "No requests in this range.";
        el.className = "muted";
        return;
      }
      var series = [{}];
      var values = [data.x];
      data.series.forEach(function (s, i) {
        series.push({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: data.x.length < 60 },
                      value: function (u, v) { return v == null ? "—" : (s.unit === "$" ? "$" + v.toFixed(4) : v.toLocaleString() + (s.unit ? " " + s.unit : "")); } });
        values.push(s.values);
      });
      var money = data.series.length && data.series[0].unit === "$";
      var yAxis = { size: 64 };
      if (money) yAxis.values = function (u, vals) { return vals.map(function (v) { return "$" + (v >= 1 ? v.toFixed(2) : Number(v.toPrecision(2))); }); };
      var x = { time: true };
      if (data.range) x.range = function () { return data.range; };
      var opts = { width: Math.max(el.clientWidth, 240), height: 220, series: series,
                   axes: [{}, yAxis], scales: { x: x }, legend: { live: true } };
      var plot = new window.uPlot(opts, values, el);
      if (window.ResizeObserver) {
        new ResizeObserver(function () { plot.setSize({ width: Math.max(el.clientWidth, 240), height: 220 }); }).observe(el);
      }
    });
  }

  function init(root) {
    menu(document);
    signIn(root);
    signOut(root);
    copies(root);
    confirms(root);
    charts(root);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
