// The day report's zoom on a DST day (inlined by dashboard/day_report.py). The axis is drawn in
// display time with array ticks from the server (time_axis.local_ticks), which a static file
// cannot ask for again: a zoom of less than an hour showed no label. localTicks redoes
// local_ticks in the browser from the figure's `layout.meta.tickRule` (time_axis.tick_rule: the
// steps, per part of one UTC offset its start, wall - display ms and zone, the repeated wall
// times); tests/browser/test_report_zoom_ticks.py holds the two to the same answer.
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = n => String(n).padStart(2, "0");

function localTicks(lo, hi, rule, maxTicks) {
  lo = Math.trunc(lo); hi = Math.trunc(hi);
  const steps = rule.steps;
  const step = steps.find(s => (hi - lo) / s <= maxTicks) || steps[steps.length - 1];
  const parts = rule.parts, change = parts.length > 1 ? parts[1][0] : null;
  const inRange = change !== null && change > lo && change <= hi;
  const ticks = new Map();   // display ms -> part index
  parts.forEach(([from, delta], i) => {
    const a = i === 0 ? lo : Math.max(lo, from), b = i + 1 < parts.length ? Math.min(hi, parts[i + 1][0] - 1) : hi;
    for (let v = Math.ceil((a + delta) / step) * step - delta; v <= b; v += step) ticks.set(v, i);
  });
  if (inRange) {   // no round tick crowding the change's own
    for (const v of [...ticks.keys()]) if (Math.abs(v - change) < step / 2) ticks.delete(v);
    ticks.set(change, 1);
  }
  const vals = [...ticks.keys()].sort((p, q) => p - q), texts = [];
  let day = null;
  for (const v of vals) {
    const [, delta, zone] = parts[ticks.get(v)], wall = v + delta, d = new Date(wall);
    let text = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + (step < 60000 ? ":" + pad(d.getUTCSeconds()) : "");
    if (v === change && inRange) text += " " + zone;
    else if (rule.fold && wall >= rule.fold[0] && wall < rule.fold[1]) text += " " + zone;
    const date = d.toISOString().slice(0, 10);
    if (date !== day) {
      text += "<br>" + MONTHS[d.getUTCMonth()] + " " + d.getUTCDate() + ", " + d.getUTCFullYear();
      day = date;
    }
    texts.push(text);
  }
  return {tickmode: "array", tickvals: vals, ticktext: texts};
}

function axisMs(value) {
  if (typeof value === "number") return value;
  const [whole, frac] = String(value).replace(" ", "T").split(".");
  return Date.parse(whole + (whole.length <= 10 ? "T00:00:00" : "") + "Z") + (frac ? Math.round(Number("0." + frac) * 1000) : 0);
}

function followZoom(gd, rule) {   // new local ticks for each zoom or pan; autorange: the day's own again
  const axes = ["xaxis", "xaxis2", "xaxis3", "xaxis4"];
  const whole = {tickvals: gd.layout.xaxis4.tickvals, ticktext: gd.layout.xaxis4.ticktext};
  gd.on("plotly_relayout", ev => {
    const keys = Object.keys(ev);
    if (!keys.some(k => /^xaxis\d?\.(range|autorange)/.test(k))) return;   // (our own tick update, a y zoom)
    const r = gd._fullLayout.xaxis4.range;
    const ticks = keys.some(k => k.endsWith("autorange")) ? whole :
      localTicks(axisMs(r[0]), axisMs(r[1]), rule, rule.max_ticks);
    const update = {};
    for (const ax of axes) {
      update[ax + ".tickvals"] = ticks.tickvals;
      update[ax + ".ticktext"] = ticks.ticktext;
    }
    Plotly.relayout(gd, update);
  });
}
