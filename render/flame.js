/*
 * flame.js - the viewer inside every SVG that `memsnap render` writes.
 *
 * render/svg.c writes a complete static picture (group #static: header, chart, frames with
 * <title> tooltips, 1200 px wide) for viewers that run no script, and `const D = {...}` (the
 * pruned frame tree in preorder, the recording's facts, the memory timeline) right before this
 * script. The script replaces the static picture: it draws the header, the memory-over-time
 * chart and the frames at the window's width (redrawn when the window resizes), and handles
 * hover tooltips, click to zoom, regex search, the flame/icicle toggle and the URL fragment
 * that makes a view shareable:
 *   #z=<node>&s=<regex>&o=flame
 * Profile strings are only ever inserted with textContent, never parsed as markup.
 */
'use strict';

const SVGNS = 'http://www.w3.org/2000/svg';
const XHTMLNS = 'http://www.w3.org/1999/xhtml';
let WIDTH = 1200; /* follows the window: windowWidth() */
const PAD = 10;
const ROW = 17; /* pixels per stack level, including a 1 px gap */
let charWidth = 6.6; /* average glyph width of frame labels, measured once the page is up */
const MIN_DRAW_PX = 0.3; /* narrower frames are not drawn at all */

const svg = document.documentElement;

/* ---- decoding the data ---- */

const STRIDE = D.diff ? 8 : 5;
const nNodes = D.nodes.length / STRIDE;
const node = {
    frame: new Uint32Array(nNodes),
    depth: new Uint32Array(nNodes),
    total: new Float64Array(nNodes),
    self: new Float64Array(nNodes),
    count: new Float64Array(nNodes),
    before: new Float64Array(nNodes),
    width: new Float64Array(nNodes), /* what widths follow: total, or the diff's union width */
    parent: new Int32Array(nNodes),
    x: new Float64Array(nNodes), /* left edge, in metric units from the root's left edge */
    end: new Uint32Array(nNodes), /* one past the last descendant, in preorder */
};
let maxDepth = 0;
(function decode() {
    const cursor = new Float64Array(nNodes); /* where each node's next child starts */
    const stack = [];
    for (let i = 0; i < nNodes; i++) {
        const o = i * STRIDE;
        node.frame[i] = D.nodes[o];
        node.depth[i] = D.nodes[o + 1];
        node.total[i] = D.nodes[o + 2];
        node.self[i] = D.nodes[o + 3];
        node.count[i] = D.nodes[o + 4];
        if (D.diff) node.before[i] = D.nodes[o + 5];
        node.width[i] = D.diff ? D.nodes[o + 7] : node.total[i];
        while (stack.length && node.depth[stack[stack.length - 1]] >= node.depth[i])
            node.end[stack.pop()] = i;
        const p = stack.length ? stack[stack.length - 1] : -1;
        node.parent[i] = p;
        node.x[i] = p >= 0 ? cursor[p] : 0;
        if (p >= 0) cursor[p] += node.width[i];
        cursor[i] = node.x[i];
        stack.push(i);
        if (node.depth[i] > maxDepth) maxDepth = node.depth[i];
    }
    while (stack.length) node.end[stack.pop()] = nNodes;
})();

const KIND_IMPORT = 1, KIND_OTHER = 2, KIND_ROOT = 3;
function frameName(i) { return D.strs[D.frames[node.frame[i] * 4]]; }
function frameFile(i) { return D.strs[D.frames[node.frame[i] * 4 + 1]]; }
function frameLine(i) { return D.frames[node.frame[i] * 4 + 2]; }
function frameKind(i) { return D.frames[node.frame[i] * 4 + 3]; }
function isGone(i) { return D.diff && node.total[i] === 0 && node.before[i] > 0; }
function nodeColor(i) {
    if (isGone(i)) return 'url(#gone)';
    return '#' + (D.diff ? D.nodes[i * STRIDE + 6] : D.fcolor[node.frame[i]]);
}

/* ---- formatting ---- */

function fmtBytes(v) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let m = Math.abs(v), u = 0;
    while (m >= 1024 && u < units.length - 1) { m /= 1024; u++; }
    const sign = v < 0 ? '-' : '';
    if (u === 0) return sign + Math.round(m) + ' B';
    return sign + (m < 9.995 ? m.toFixed(2) : m < 99.95 ? m.toFixed(1) : m.toFixed(0)) + ' ' + units[u];
}
function fmtCount(v) { return Math.round(v).toLocaleString('en-US'); }
function fmtValue(v) {
    if (D.unit === 'bytes') return fmtBytes(v);
    return fmtCount(v) + (D.unit && D.unit !== 'count' ? ' ' + D.unit : '');
}
function fmtPct(part, whole) {
    if (!(whole > 0)) return '0%';
    const p = 100 * part / whole;
    return (p >= 10 ? p.toFixed(1) : p >= 0.1 ? p.toFixed(2) : p.toPrecision(2)) + '%';
}
function fmtMs(ms) { return ms >= 10000 ? (ms / 1000).toFixed(0) + ' s' : ms >= 1000 ? (ms / 1000).toFixed(1) + ' s' : Math.round(ms) + ' ms'; }
function baseName(path) { const k = path.lastIndexOf('/'); return k >= 0 ? path.slice(k + 1) : path; }

function el(name, attrs, parent, text) {
    const e = document.createElementNS(SVGNS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
}

/* ---- header: title, facts, chart, toolbar ---- */

const staticPicture = document.getElementById('static');
if (staticPicture) staticPicture.remove();
function windowWidth() {
    const w = Math.floor(window.innerWidth || 0);
    return w >= 600 ? Math.min(w, 16384) : 1200;
}
WIDTH = windowWidth();
svg.setAttribute('width', WIDTH);
const header = el('g', { id: 'header' }, svg);
let y = 52;

function drawHeader() {
header.textContent = '';
y = 52;
el('text', { id: 'title', x: PAD, y: 28 }, header, D.title);
(function drawStats() {
    let x = PAD;
    for (const [label, value] of D.stats) {
        const g = el('text', { x: x, y: y, class: 'stat' }, header);
        el('tspan', { class: 'stat-label' }, g, label + ' ');
        el('tspan', { class: 'stat-value' }, g, value);
        let w = g.getComputedTextLength();
        if (x > PAD && x + w > WIDTH - PAD) {
            y += 18; x = PAD;
            g.setAttribute('x', x); g.setAttribute('y', y);
        }
        if (w > WIDTH - 2 * PAD) { /* a very long command line: cut it */
            const v = g.lastChild;
            while (v.textContent.length > 4 && g.getComputedTextLength() > WIDTH - 2 * PAD)
                v.textContent = v.textContent.slice(0, -4) + '...';
            w = g.getComputedTextLength();
        }
        x += w + 22;
    }
    y += 14;
})();

(function drawChart() {
    const tl = D.timeline;
    const n = tl.length / 3;
    if (n < 2) return;
    const top = y + 6, h = 96, left = PAD + 62, right = WIDTH - PAD - 8;
    const t0 = tl[0], t1 = Math.max(tl[(n - 1) * 3], t0 + 1);
    let vmax = Math.max(D.peak[1], D.peak[2], 1);
    for (let i = 0; i < n; i++) vmax = Math.max(vmax, tl[i * 3 + 1], tl[i * 3 + 2]);
    const X = t => left + (right - left) * (t - t0) / (t1 - t0);
    const Y = v => top + h - h * v / vmax;
    const chart = el('g', { id: 'chart' }, header);
    for (let k = 0; k <= 2; k++) {
        const v = vmax * k / 2;
        el('line', { class: 'grid', x1: left, x2: right, y1: Y(v), y2: Y(v) }, chart);
        el('text', { class: 'axis', x: left - 6, y: Y(v) + 3, 'text-anchor': 'end' }, chart, fmtBytes(v));
    }
    el('text', { class: 'axis', x: left, y: top + h + 13 }, chart, fmtMs(0));
    el('text', { class: 'axis', x: right, y: top + h + 13, 'text-anchor': 'end' }, chart, fmtMs(t1 - t0));
    let rss = '', heap = '', peakI = 0;
    for (let i = 0; i < n; i++) {
        const px = X(tl[i * 3]).toFixed(1);
        rss += px + ',' + Y(tl[i * 3 + 1]).toFixed(1) + ' ';
        heap += px + ',' + Y(tl[i * 3 + 2]).toFixed(1) + ' ';
        if (tl[i * 3 + 2] > tl[peakI * 3 + 2]) peakI = i;
    }
    el('polygon', { class: 'heap-area', points: X(t0) + ',' + Y(0) + ' ' + heap + X(tl[(n - 1) * 3]) + ',' + Y(0) }, chart);
    el('polyline', { class: 'rss', points: rss }, chart);
    el('polyline', { class: 'heap', points: heap }, chart);
    /* The peak: the recorded one when the profile has it, else the timeline's highest heap. */
    const peakT = D.peak[1] > 0 ? t0 + D.peak[0] : tl[peakI * 3];
    const peakV = D.peak[1] > 0 ? D.peak[1] : tl[peakI * 3 + 2];
    const px = X(Math.min(Math.max(peakT, t0), t1));
    el('line', { class: 'peak', x1: px, x2: px, y1: top, y2: top + h }, chart);
    el('circle', { cx: px, cy: Y(peakV), r: 3.5, fill: '#cf222e' }, chart);
    const label = el('text', { class: 'peak-label', x: px + 6, y: top + 10 }, chart,
        'peak heap ' + fmtBytes(peakV) + ' at ' + fmtMs(peakT - t0));
    if (px + 6 + label.getComputedTextLength() > right) {
        label.setAttribute('x', px - 6);
        label.setAttribute('text-anchor', 'end');
    }
    const legend = el('g', {}, chart);
    el('line', { class: 'rss', x1: right - 190, x2: right - 172, y1: top + h + 9, y2: top + h + 9 }, legend);
    el('text', { class: 'axis', x: right - 168, y: top + h + 13 }, legend, 'RSS');
    el('line', { class: 'heap', x1: right - 130, x2: right - 112, y1: top + h + 9, y2: top + h + 9 }, legend);
    el('text', { class: 'axis', x: right - 108, y: top + h + 13 }, legend, 'Python heap');
    y = top + h + 24;
})();
}
drawHeader();

function button(id, x, label, onclick) {
    const g = el('g', { id: id, class: 'button', transform: 'translate(' + x + ',' + y + ')' }, svg);
    const r = el('rect', { x: 0, y: 0, rx: 4, height: 22, width: 10 }, g);
    const t = el('text', { x: 9, y: 15 }, g, label);
    r.setAttribute('width', t.getComputedTextLength() + 18);
    g.addEventListener('click', onclick);
    return g;
}
const resetButton = button('reset', PAD, 'Reset zoom', () => zoom(0));
const flipButton = button('flip', PAD + 100, D.flame ? 'Icicle' : 'Flame', () => setFlame(!state.flame));
const searchBox = el('foreignObject', { x: PAD + 200, y: y, width: 300, height: 24 }, svg);
const input = document.createElementNS(XHTMLNS, 'input');
input.setAttribute('id', 'search');
input.setAttribute('type', 'text');
input.setAttribute('placeholder', 'Search (regex), Ctrl-F');
input.setAttribute('style', 'width:280px;height:20px;box-sizing:border-box;font:12px sans-serif;border:1px solid #d0d7de;border-radius:4px;padding:1px 6px;');
searchBox.appendChild(input);
const matchedText = el('text', { id: 'matched', x: WIDTH - PAD, y: y + 15, 'text-anchor': 'end' }, svg, '');
const hint = el('text', { class: 'axis', x: PAD + 510, y: y + 15 }, svg,
    (D.diff ? 'width: ' + D.metric + ', the larger of before and after; red grew, blue shrank, hatched is gone'
        : 'width: ' + D.metric) + '; click to zoom');
y += 34;

let framesTop = y;
const framesGroup = el('g', { id: 'frames' }, svg);
(function measureLabels() {
    /* Typical label text, so that clipping by character count matches the real font. */
    const probe = el('g', { class: 'f' }, framesGroup);
    const sample = 'load_products (cache.py:40) import numpy.random _find_and_load <module>';
    const t = el('text', { x: 0, y: -100 }, probe, sample);
    const w = t.getComputedTextLength() / sample.length;
    if (w > 2 && w < 20) charWidth = w * 1.04;
    probe.remove();
})();
const panel = el('g', { id: 'panel' }, svg);
const panelRows = D.imports || [];
const PANEL_H = panelRows.length ? 28 + 16 * panelRows.length : 0;
let height = framesTop + (maxDepth + 1) * ROW + PAD + PANEL_H;

/* "Imports in your code" below the frames: value, share, file:line, statement, note. */
function drawPanel() {
    panel.textContent = '';
    if (!panelRows.length) return;
    const top = framesTop + (maxDepth + 1) * ROW + PAD;
    el('text', { class: 'panel-head', x: PAD, y: top + 16 }, panel,
        'Imports in your code by ' + D.metric + ' (what each statement pulled in)');
    panelRows.forEach((r, k) => {
        const t = el('text', { class: 'panel', y: top + 32 + 16 * k }, panel);
        el('tspan', { x: 80, 'text-anchor': 'end', class: 'stat-value' }, t, r[0]);
        el('tspan', { x: 130, 'text-anchor': 'end' }, t, r[1]);
        el('tspan', { x: 140 }, t, r[2]);
        el('tspan', { dx: 10, class: 'panel-src' }, t, r[3]);
        el('tspan', { dx: 10, class: 'stat-label' }, t, r[4]);
    });
}
function setSize() {
    height = framesTop + (maxDepth + 1) * ROW + PAD + PANEL_H;
    drawPanel();
    svg.setAttribute('width', WIDTH);
    svg.setAttribute('height', height);
    svg.setAttribute('viewBox', '0 0 ' + WIDTH + ' ' + height);
}
setSize();

/* A resized window: header and frames again at the new width; the toolbar keeps its place
 * unless the facts now take another number of rows. */
let resizeTimer = 0;
window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
        const w = windowWidth();
        if (w === WIDTH) return;
        WIDTH = w;
        drawHeader();
        const dy = y - (+resetButton.getAttribute('transform').match(/,([-\d.]+)/)[1]);
        for (const b of [resetButton, flipButton])
            b.setAttribute('transform', b.getAttribute('transform').replace(/,[-\d.]+\)/, ',' + y + ')'));
        searchBox.setAttribute('y', y);
        matchedText.setAttribute('x', WIDTH - PAD);
        for (const t of [matchedText, hint]) t.setAttribute('y', y + 15);
        framesTop += dy;
        setSize();
        draw();
    }, 100);
});

/* ---- state: zoom, search, orientation; mirrored in the URL fragment ---- */

const state = { zoom: 0, search: '', flame: !!D.flame };
const matched = new Uint8Array(nNodes);

function readFragment() {
    const h = location.hash.replace(/^#/, '');
    for (const part of h.split('&')) {
        const k = part.indexOf('=');
        if (k < 0) continue;
        const key = part.slice(0, k);
        let value;
        try { value = decodeURIComponent(part.slice(k + 1)); } catch (e) { continue; }
        if (key === 'z') {
            const z = parseInt(value, 10);
            if (z >= 0 && z < nNodes && node.width[z] > 0) state.zoom = z;
        } else if (key === 's') {
            state.search = value;
        } else if (key === 'o') {
            state.flame = value === 'flame';
        }
    }
}

function writeFragment() {
    const parts = [];
    if (state.zoom) parts.push('z=' + state.zoom);
    if (state.search) parts.push('s=' + encodeURIComponent(state.search));
    if (state.flame !== !!D.flame) parts.push('o=' + (state.flame ? 'flame' : 'icicle'));
    const frag = parts.length ? '#' + parts.join('&') : '';
    const url = location.href.replace(/#.*$/, '') + frag;
    try {
        history.replaceState(null, '', url);
    } catch (e) {
        location.hash = frag;
    }
}

/* ---- drawing the frames ---- */

function rowY(depth) {
    return state.flame ? framesTop + (maxDepth - depth) * ROW : framesTop + depth * ROW;
}

function label(i) {
    const name = frameName(i), file = frameFile(i), kind = frameKind(i);
    if (kind !== 0 || !file) return name;
    return name + ' (' + baseName(file) + (frameLine(i) > 0 ? ':' + frameLine(i) : '') + ')';
}

function drawFrame(i, x, w, dim) {
    const g = el('g', { class: dim ? 'f dim' : matched[i] ? 'f match' : 'f', 'data-i': i }, framesGroup);
    if (isGone(i)) g.setAttribute('class', g.getAttribute('class') + ' gone');
    el('rect', { x: x.toFixed(2), y: rowY(node.depth[i]), width: Math.max(w - 0.5, 0.1).toFixed(2), height: ROW - 1, rx: 2, fill: nodeColor(i) }, g);
    const room = Math.floor((w - 6) / charWidth);
    if (room >= 3) {
        const full = label(i);
        el('text', { x: (x + 3).toFixed(2), y: rowY(node.depth[i]) + 12 }, g,
            full.length <= room ? full : full.slice(0, room - 2) + '..');
    }
}

function draw() {
    framesGroup.textContent = '';
    const old = document.getElementById('empty');
    if (old) old.remove();
    if (!(node.width[0] > 0)) {
        el('text', { id: 'empty', x: WIDTH / 2, y: framesTop + 30, 'text-anchor': 'middle' }, svg,
            'No ' + D.metric + ' in this profile: nothing to draw.');
        return;
    }
    const z = state.zoom;
    const scale = (WIDTH - 2 * PAD) / node.width[z];
    /* Ancestors span the whole width, dimmed: they are the context of the zoom. */
    for (let a = node.parent[z]; a >= 0; a = node.parent[a])
        drawFrame(a, PAD, WIDTH - 2 * PAD, true);
    const x0 = node.x[z];
    for (let i = z; i < node.end[z]; i++) {
        const w = node.width[i] * scale;
        if (w < MIN_DRAW_PX) {
            /* Skip the subtree: its descendants are no wider. */
            i = node.end[i] - 1;
            continue;
        }
        drawFrame(i, PAD + (node.x[i] - x0) * scale, w, false);
    }
    resetButton.setAttribute('class', z ? 'button' : 'button disabled');
}

function zoom(i) {
    state.zoom = i;
    hideTip();
    draw();
    writeFragment();
}

function setFlame(flame) {
    state.flame = flame;
    flipButton.lastChild.textContent = flame ? 'Icicle' : 'Flame';
    draw();
    writeFragment();
}

/* ---- search ---- */

function search(text) {
    state.search = text;
    matched.fill(0);
    let re = null;
    if (text) {
        try {
            re = new RegExp(text);
        } catch (e) {
            matchedText.textContent = 'Invalid regex';
        }
    }
    if (re) {
        let sum = 0;
        /* Preorder: a match's descendants are skipped so that no byte counts twice. */
        const test = i => re.test(frameName(i)) || re.test(frameFile(i));
        for (let i = 1; i < nNodes; i++) {
            if (!test(i)) continue;
            matched[i] = 1;
            sum += node.total[i];
            for (let k = i + 1; k < node.end[i]; k++)
                if (test(k)) matched[k] = 1;
            i = node.end[i] - 1;
        }
        matchedText.textContent = 'Matched: ' + fmtPct(sum, node.total[0]) + ' (' + fmtValue(sum) + ')';
    } else if (!text) {
        matchedText.textContent = '';
    }
    draw();
    writeFragment();
}

let searchTimer = 0;
input.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search(input.value), 120);
});
input.addEventListener('keydown', e => {
    if (e.key === 'Escape') { input.value = ''; search(''); input.blur(); }
    if (e.key === 'Enter') { clearTimeout(searchTimer); search(input.value); }
});
document.addEventListener('keydown', e => {
    if ((e.ctrlKey || e.metaKey) && (e.key === 'f' || e.key === 'F')) {
        e.preventDefault();
        input.focus();
        input.select();
    } else if (e.key === 'Escape' && document.activeElement !== input && state.zoom) {
        zoom(0);
    }
});

/* ---- tooltip ---- */

const tip = el('g', { id: 'tip', visibility: 'hidden', 'pointer-events': 'none' }, svg);
const tipBox = el('rect', { rx: 4, x: 0, y: 0 }, tip);

function tipLines(i) {
    const lines = [];
    const kind = frameKind(i), file = frameFile(i), line = frameLine(i);
    lines.push([frameName(i), 'tip-name']);
    if (kind === KIND_OTHER) lines.push(['frames too narrow to draw, merged', '']);
    else if (kind === KIND_IMPORT && file) lines.push([file, '']);
    else if (file) lines.push([file + (line > 0 ? ':' + line : ''), '']);
    lines.push([D.metric + ': ' + fmtValue(node.total[i]) + ' (' + fmtPct(node.total[i], node.total[0]) + ' of all)', '']);
    if (node.self[i] > 0 && node.end[i] > i + 1) lines.push(['  of which in this frame itself: ' + fmtValue(node.self[i]), '']);
    if (D.counts) lines.push(['allocations: ' + fmtCount(node.count[i]), '']);
    if (D.diff) {
        const d = node.total[i] - node.before[i];
        const rel = node.before[i] > 0 ? ' (' + (d >= 0 ? '+' : '') + fmtPct(d, node.before[i]) + ')' : '';
        lines.push(['before: ' + fmtValue(node.before[i]) + ' | after: ' + fmtValue(node.total[i]), '']);
        lines.push(['change: ' + (d > 0 ? '+' : '') + fmtValue(d) + rel, d > 0 ? 'tip-grew' : d < 0 ? 'tip-shrank' : '']);
        if (isGone(i)) lines.push(['gone: only in the base profile (drawn at its before width)', 'tip-shrank']);
        else if (node.before[i] === 0 && node.total[i] > 0) lines.push(['new: not in the base profile', 'tip-grew']);
    }
    return lines;
}

function showTip(i, evt) {
    while (tip.childNodes.length > 1) tip.removeChild(tip.lastChild);
    let w = 0, ty = 18;
    for (const [text, cls] of tipLines(i)) {
        const t = el('text', { x: 8, y: ty, class: cls }, tip, text);
        w = Math.max(w, t.getComputedTextLength());
        ty += 16;
    }
    tipBox.setAttribute('width', w + 16);
    tipBox.setAttribute('height', ty - 8);
    tip.setAttribute('visibility', 'visible');
    moveTip(evt, w + 16, ty - 8);
}

function moveTip(evt, w, h) {
    const pt = svg.createSVGPoint();
    pt.x = evt.clientX;
    pt.y = evt.clientY;
    const ctm = svg.getScreenCTM();
    const p = ctm ? pt.matrixTransform(ctm.inverse()) : pt;
    w = w || +tipBox.getAttribute('width');
    h = h || +tipBox.getAttribute('height');
    let x = p.x + 14, ty = p.y + 18;
    if (x + w > WIDTH - 2) x = Math.max(2, p.x - w - 10);
    if (ty + h > height - 2) ty = Math.max(2, p.y - h - 10);
    tip.setAttribute('transform', 'translate(' + x.toFixed(1) + ',' + ty.toFixed(1) + ')');
}

function hideTip() { tip.setAttribute('visibility', 'hidden'); }

function frameOf(evt) {
    const g = evt.target.closest ? evt.target.closest('g.f') : null;
    return g ? +g.getAttribute('data-i') : -1;
}
framesGroup.addEventListener('mouseover', evt => { const i = frameOf(evt); if (i >= 0) showTip(i, evt); });
framesGroup.addEventListener('mousemove', evt => { if (frameOf(evt) >= 0) moveTip(evt); });
framesGroup.addEventListener('mouseout', hideTip);
framesGroup.addEventListener('click', evt => {
    const i = frameOf(evt);
    if (i < 0) return;
    zoom(i === state.zoom ? Math.max(node.parent[i], 0) : i);
});

/* ---- start ---- */

readFragment();
input.value = state.search;
flipButton.lastChild.textContent = state.flame ? 'Icicle' : 'Flame';
search(state.search);
window.addEventListener('hashchange', () => {
    readFragment();
    input.value = state.search;
    search(state.search);
});
