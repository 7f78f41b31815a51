/**
 * The one page `mount --http` serves: plain HTML and a little script, no outside resources.
 * Data arrive as JSON and are put into the DOM as text (never as markup), except the timeline,
 * an SVG our own server drew. New events appear by polling /api/events.
 */
export function pageHtml(pollMs: number): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chronovol</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
 h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
 table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
 tr.event { cursor: pointer; } tr.event:hover { background: #eef; } tr.selected { background: #dde; }
 #status { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
 pre { background: #f6f6f6; padding: 6px; }
</style></head>
<body>
<h1>chronovol <span id="volume"></span></h1>
<div id="status"></div>
<h2>Timeline</h2>
<div id="timeline">drawing…</div>
<h2>Events <small>(click one for its changes)</small></h2>
<table id="events"><thead><tr><th>ID</th><th>TIME (UTC)</th><th>LABEL</th><th>KIND</th><th>CHANGED BLOCKS</th></tr></thead><tbody></tbody></table>
<div id="changes"></div>
<h2>Block history</h2>
<form id="history-form">offset <input id="offset" value="0" size="12"> length <input id="length" value="1" size="8"> <label><input type="checkbox" id="hash"> hash</label> <button>look up</button></form>
<div id="history"></div>
<script>
'use strict';
const token = new URLSearchParams(location.search).get('token');
const api = (p) => fetch(p + (p.includes('?') ? '&' : '?') + (token ? 'token=' + encodeURIComponent(token) : '')).then(async (r) => {
  if (!r.ok) throw new Error(r.status + ' ' + (await r.text()));
  return r.headers.get('content-type').includes('json') ? r.json() : r.text();
});
const el = (tag, text, attrs) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); Object.assign(e, attrs || {}); return e; };
const table = (header, rows) => { const t = el('table'); const h = t.createTHead().insertRow(); header.forEach((c) => h.appendChild(el('th', c))); const b = t.createTBody(); rows.forEach((r) => { const tr = b.insertRow(); r.forEach((c) => tr.appendChild(el('td', c))); }); return t; };
let known = '';

async function status() {
  const s = await api('/api/status');
  document.getElementById('volume').textContent = s.volume ? s.volume.id.slice(0, 12) : '';
  const box = document.getElementById('status');
  box.replaceChildren();
  const pairs = [['size', s.volume && s.volume.sizeBytes + ' bytes'], ['block size', s.volume && s.volume.blockSizeBytes], ['versions', s.index && s.index.versions], ['events', s.log && s.log.events], ['last seq', s.log && s.log.lastSeq], ['archive', s.archive && s.archive.location], ['mountpoint', s.daemon && s.daemon.mountpoint]];
  for (const [k, v] of pairs) { box.appendChild(el('b', k)); box.appendChild(el('span', v ?? '-')); }
}

async function events() {
  const r = await api('/api/events');
  const key = r.lastSeq + '/' + r.events.length;
  if (key === known) return;
  known = key;
  const body = document.querySelector('#events tbody');
  body.replaceChildren();
  for (const e of r.events.slice().reverse()) {
    const tr = body.insertRow();
    tr.className = 'event';
    tr.dataset.id = e.id;
    [e.id, e.time, e.label, e.kind, e.changedBlocks].forEach((c) => tr.appendChild(el('td', c)));
    tr.onclick = () => changes(e, tr);
  }
  const svg = await api('/timeline.svg');
  document.getElementById('timeline').innerHTML = svg; // drawn by our server (vega), not user data
  status().catch(() => undefined);
}

async function changes(e, tr) {
  document.querySelectorAll('tr.selected').forEach((x) => x.classList.remove('selected'));
  tr.classList.add('selected');
  const c = await api('/api/changes?event=' + e.id);
  const box = document.getElementById('changes');
  box.replaceChildren(el('h3', 'Changes of event ' + e.id + (e.label ? ' (' + e.label + ')' : '') + ' since ' + c.from + ': ' + c.extents + ' extents, ' + c.blocks + ' blocks'),
    table(['FIRST BLOCK', 'BLOCKS', 'OFFSET', 'LENGTH'], c.changes.map((x) => [x.firstBlock, x.blockCount, x.offset, x.length])));
}

document.getElementById('history-form').onsubmit = async (ev) => {
  ev.preventDefault();
  const q = '/api/history?offset=' + encodeURIComponent(document.getElementById('offset').value) + '&length=' + encodeURIComponent(document.getElementById('length').value) + (document.getElementById('hash').checked ? '&hash=1' : '');
  const box = document.getElementById('history');
  try {
    const h = await api(q);
    box.replaceChildren(el('p', h.versions.length + ' versions of blocks ' + h.firstBlock + '..' + (h.firstBlock + h.blockCount - 1)),
      table(['BLOCK', 'SEQ', 'TIME (UTC)', 'EVENT', 'KIND', 'SHA256'], h.versions.map((v) => [v.block, v.seq, v.time, v.event ? v.event.id + (v.event.label ? ' (' + v.event.label + ')' : '') : '-', v.kind, v.sha256 || ''])));
  } catch (err) { box.replaceChildren(el('pre', err.message)); }
};

const tick = () => events().catch((err) => console.error(err)).finally(() => setTimeout(tick, ${pollMs}));
tick();
</script>
</body></html>
`;
}
