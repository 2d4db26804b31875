/* Draws the dashboard's charts from the JSON the server embeds (#dashboard-data) with the
   vendored Chart.js. Sets data-charts-rendered on <body> so tests (and people) can tell. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var palette = ["#417690", "#79aec8", "#e0a526", "#ba2121", "#5b8a3c", "#8a5b9c", "#c06c84",
                 "#6c5b7b", "#355c7d", "#f67280"];
  // As budgets.money.format_usd: two decimals, two significant digits below a cent (never $0.00
  // for a non-zero amount, never exponent notation).
  var usd = function (value) {
    var amount = Math.abs(Number(value)), sign = Number(value) < 0 ? "-" : "";
    if (amount === 0 || amount >= 0.01) { return sign + "$" + amount.toFixed(2); }
    var digits = Math.min(100, 1 - Math.floor(Math.log10(amount)));
    return sign + "$" + amount.toFixed(digits).replace(/0+$/, "");
  };

  var builders = {
    spend_per_day: function () {
      return {type: "bar", data: {
        labels: data.per_day.map(function (r) { return r.day; }),
        datasets: [
          {label: "Spend", data: data.per_day.map(function (r) { return r.cost; }), backgroundColor: palette[0]},
          {label: "Saved by cache", data: data.per_day.map(function (r) { return r.saved; }), backgroundColor: palette[4]}
        ]}, options: {scales: {y: {ticks: {callback: usd}}}}};
    },
    spend_per_model: function () {
      return {type: "doughnut", data: {
        labels: data.per_model.map(function (r) { return r.model; }),
        datasets: [{data: data.per_model.map(function (r) { return r.cost; }), backgroundColor: palette}]}};
    },
    cache: function () {
      return {type: "doughnut", data: {labels: ["Hits", "Misses"],
        datasets: [{data: [data.cache.hits, data.cache.misses], backgroundColor: [palette[4], palette[3]]}]}};
    },
    savings: function () {
      return {type: "bar", data: {labels: ["Exact hits", "Semantic hits", "Routing"],
        datasets: [{label: "Saved (USD)", data: data.savings.realized, backgroundColor: palette[4]},
                   {label: "Shadow estimate (USD)", data: data.savings.shadow, backgroundColor: palette[2]}]},
        options: {scales: {y: {ticks: {callback: usd}}}}};
    },
    savings_per_period: function () {
      var rows = data.savings_per_period, pick = function (key) { return rows.map(function (r) { return r[key]; }); };
      return {type: "bar", data: {labels: pick("period"), datasets: [
          {label: "Spend", data: pick("spend"), backgroundColor: palette[0], stack: "spend"},
          {label: "Saved: exact hits", data: pick("saved_exact"), backgroundColor: palette[4], stack: "saved"},
          {label: "Saved: semantic hits", data: pick("saved_semantic"), backgroundColor: palette[1], stack: "saved"},
          {label: "Saved: routing", data: pick("saved_routing"), backgroundColor: palette[5], stack: "saved"},
          {label: "Shadow estimate", data: pick("shadow_saved"), backgroundColor: palette[2], stack: "shadow"}]},
        options: {scales: {y: {ticks: {callback: usd}}}}};
    },
    budgets: function () {
      return {type: "bar", data: {
        labels: data.budgets.map(function (r) { return r.label; }),
        datasets: [{label: "Spent / limit", data: data.budgets.map(function (r) { return r.ratio; }),
          backgroundColor: data.budgets.map(function (r) { return r.ratio >= 0.9 ? palette[3] : r.ratio >= 0.75 ? palette[2] : palette[0]; })}]},
        options: {indexAxis: "y", plugins: {legend: {display: false}}, scales: {x: {min: 0, suggestedMax: 1}}}};
    },
    top_teams: function () {
      return {type: "bar", data: {
        labels: data.top_teams.map(function (r) { return r.team; }),
        datasets: [{label: "Spend (USD)", data: data.top_teams.map(function (r) { return r.cost; }), backgroundColor: palette[1]}]},
        options: {plugins: {legend: {display: false}}, scales: {y: {ticks: {callback: usd}}}}};
    }
  };

  var rendered = 0;
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var config = builders[canvas.dataset.chart]();
    config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, config.options || {});
    new Chart(canvas, config);
    rendered += 1;
  });
  document.body.dataset.chartsRendered = String(rendered);
})();
