// Draws the portal's charts with Chart.js from the JSON the server put in #chart-data.
// Amounts arrive as exact decimal strings; Number() is for drawing only (tables show the exact values).
(function () {
  "use strict";
  var el = document.getElementById("chart-data");
  if (!el || typeof Chart === "undefined") { return; }
  var d = JSON.parse(el.textContent);
  var palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"];
  function color(i) { return palette[i % palette.length]; }
  function nums(a) { return a.map(Number); }
  Chart.defaults.animation = false;  // screenshots and tests see the final drawing

  function pie(id, part) {
    var c = document.getElementById(id);
    if (!c) { return; }
    new Chart(c, {type: "pie", data: {labels: part.labels.map(function (l) { return l || "(none)"; }),
      datasets: [{data: nums(part.values), backgroundColor: part.labels.map(function (_, i) { return color(i); })}]},
      options: {plugins: {legend: {position: "right"}}}});
  }
  function series(id, part, type, stacked) {
    var c = document.getElementById(id);
    if (!c) { return; }
    var names = Object.keys(part.series);
    new Chart(c, {type: type, data: {labels: part.labels, datasets: names.map(function (n, i) {
      return {label: n || "(none)", data: nums(part.series[n]), backgroundColor: color(i), borderColor: color(i)};
    })}, options: {scales: {x: {stacked: stacked}, y: {stacked: stacked, beginAtZero: true,
      title: {display: true, text: d.currency}}}}});
  }
  pie("chart-bill-share", d.bill_share);
  pie("chart-share", d.share);
  series("chart-daily", d.daily, "bar", true);
  series("chart-bills", d.bills, "bar", false);
  document.body.setAttribute("data-charts", "drawn");
})();
