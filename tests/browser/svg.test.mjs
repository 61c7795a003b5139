// svg.test.mjs - drives Debian's chromium over an SVG written by `memsnap render` and checks
// what a person would do with it: it loads without a console error, hovering shows a tooltip,
// the same file as an <img> (scripts impossible) still draws its frames, labels and header,
// clicking a frame zooms (the frame takes the full width, its ancestors stay, dimmed), a regex
// search highlights frames and reports the matched share, the flame/icicle toggle flips the
// graph, and reloading the URL with its fragment restores the same view. Hostile function
// names must show as text and never run.
//
// usage: node svg.test.mjs GRAPH.svg [SCREENSHOT.png [DIFF.svg]]
// DIFF.svg, a --diff graph of the same program after a change, must show growth in red and
// shrinkage in blue, with before/after/change in the tooltip.
// Prints one line per check and "N passed, N failed"; exits 1 on any failure.

import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [svgPath, shotPath, diffPath] = process.argv.slice(2);
if (!svgPath) {
    console.error('usage: node svg.test.mjs GRAPH.svg [SCREENSHOT.png]');
    process.exit(2);
}
const url = 'file://' + resolve(svgPath);
let passed = 0, failed = 0;
function check(name, ok, detail) {
    if (ok) { passed++; console.log('[       OK ] ' + name); }
    else { failed++; console.log('[  FAILED  ] ' + name + (detail !== undefined ? ': ' + detail : '')); }
}

// Loads FILE as an <img> (a data: URL, so the canvas stays readable), draws it on a canvas and
// checks by pixels that the static frames are painted in their colours with dark label glyphs
// inside, and that the title is drawn.
async function imageChecks(page, file, what) {
    const text = readFileSync(file, 'utf8');
    const re = /<rect x="([\d.]+)" y="(\d+)" width="([\d.]+)" height="16" fill="(#[0-9a-f]{3,6})"[^>]*><title>[^<]*<\/title><\/rect><text /g;
    const labelled = [...text.matchAll(re)].map(m => ({ x: +m[1], y: +m[2], w: +m[3], fill: m[4] }))
        .sort((a, b) => b.w - a.w).slice(0, 6);
    check(what + ' as image: the file has labelled static frames', labelled.length >= 3, labelled.length);
    await page.goto('about:blank');
    await page.setContent('<html><body style="margin:0"><img id="i" src="data:image/svg+xml;base64,' +
        Buffer.from(text).toString('base64') + '"></body></html>');
    await page.waitForFunction(() => { const i = document.getElementById('i'); return i.complete && i.naturalWidth > 0; });
    const r = await page.evaluate(frames => {
        const img = document.getElementById('i');
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.fillStyle = '#ffffff'; ctx.fillRect(0, 0, c.width, c.height);
        ctx.drawImage(img, 0, 0);
        const px = (x, y) => Array.from(ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data);
        const dark = (x0, y0, x1, y1) => {
            const d = ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data;
            let n = 0;
            for (let k = 0; k < d.length; k += 4) if (d[k] + d[k + 1] + d[k + 2] < 300) n++;
            return n;
        };
        const hex = f => f.length === 4 ? [1, 2, 3].map(k => parseInt(f[k] + f[k], 16))
            : [1, 3, 5].map(k => parseInt(f.slice(k, k + 2), 16));
        return {
            w: img.naturalWidth, h: img.naturalHeight, title: dark(10, 12, 300, 32),
            frames: frames.map(f => {
                const want = hex(f.fill), got = px(f.x + f.w / 2, f.y + 1.5);
                return { fill: f.fill, got: got.slice(0, 3), ok: want.every((v, k) => Math.abs(v - got[k]) <= 12),
                    glyphs: dark(Math.ceil(f.x + 3), f.y + 2, Math.floor(f.x + Math.min(f.w - 3, 80)), f.y + 14) };
            }),
        };
    }, labelled);
    check(what + ' as image: 1200 px wide', r.w === 1200 && r.h > 150, r.w + 'x' + r.h);
    check(what + ' as image: the title is drawn', r.title > 30, r.title);
    check(what + ' as image: frames are painted in their colours', r.frames.length >= 3 && r.frames.every(f => f.ok),
        JSON.stringify(r.frames));
    check(what + ' as image: labels are drawn inside the frames', r.frames.every(f => f.glyphs > 15),
        r.frames.map(f => f.glyphs).join(' '));
}

const profileDir = mkdtempSync(join(tmpdir(), 'memsnap-chromium-'));
const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1240, height: 900 },
});
try {
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    const requests = [];
    let dialogs = 0;
    page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', e => errors.push(String(e)));
    page.on('dialog', d => { dialogs++; d.dismiss(); });
    page.on('request', r => { if (!r.url().startsWith('file:')) requests.push(r.url()); });

    const t0 = Date.now();
    await page.goto(url);
    await page.waitForSelector('g.f', { timeout: 10000 });
    const loadMs = Date.now() - t0;
    check('loads and draws frames (' + loadMs + ' ms)', await page.locator('g.f').count() > 3);
    check('no console error', errors.length === 0, errors.join(' | '));
    check('no network request', requests.length === 0, requests.join(' '));
    check('header shows the title and stats',
        (await page.locator('#title').textContent()).length > 0 &&
        await page.locator('text.stat').count() >= 3);

    check('the script replaced the static picture', await page.evaluate(() =>
        !document.getElementById('static') && document.querySelectorAll('#sframes, #spanel').length === 0));
    check('width follows the window (1240 px viewport)',
        await page.evaluate(() => document.documentElement.getAttribute('width')) === '1240');

    // Everything about one frame, read from the page.
    const frames = () => page.evaluate(() => [...document.querySelectorAll('g.f')].map(g => {
        const r = g.querySelector('rect');
        return {
            i: +g.getAttribute('data-i'), cls: g.getAttribute('class'),
            x: +r.getAttribute('x'), y: +r.getAttribute('y'), w: +r.getAttribute('width'),
            text: g.textContent,
        };
    }));
    const before = await frames();
    const full = Math.max(...before.map(f => f.w));

    // Hostile names are text, not markup.
    const hostile = await page.evaluate(() =>
        [...Array(nNodes).keys()].some(i => frameName(i).includes('</script>')));
    check('hostile function name decoded as text', hostile);
    check('no script injected (no dialog, one script element)',
        dialogs === 0 && await page.evaluate(() => document.querySelectorAll('script').length) === 1);

    // Hover: the tooltip shows the frame's facts.
    const target = before.filter(f => f.w > 0.15 * full && f.w < 0.7 * full && f.text.length > 3)
        .sort((a, b) => a.y - b.y)[0];
    check('found a frame to zoom into', !!target);
    await page.hover(`g.f[data-i="${target.i}"] rect`);
    const tip = await page.evaluate(() => {
        const t = document.getElementById('tip');
        return { vis: t.getAttribute('visibility'), text: t.textContent };
    });
    check('hover shows a tooltip with bytes and share', tip.vis === 'visible' &&
        /[KMG]iB|\d B/.test(tip.text) && /%/.test(tip.text), tip.text);

    // Click to zoom.
    await page.click(`g.f[data-i="${target.i}"] rect`);
    let after = await frames();
    const zoomed = after.find(f => f.i === target.i);
    check('zoomed frame takes the full width', zoomed && Math.abs(zoomed.w - full) < 1,
        zoomed && zoomed.w + ' vs ' + full);
    const dimmed = after.filter(f => f.cls.includes('dim'));
    check('ancestors stay visible, dimmed', dimmed.length >= 1 &&
        dimmed.every(f => f.y < zoomed.y), dimmed.length);
    check('other widths changed', after.some(f => f.i !== target.i && !f.cls.includes('dim') &&
        before.find(b => b.i === f.i) && Math.abs(before.find(b => b.i === f.i).w - f.w) > 1));
    check('zoom is in the URL fragment', (await page.evaluate(() => location.hash)).includes('z=' + target.i));

    // Search.
    await page.click('#search');
    await page.keyboard.type('numpy|cache');
    await page.waitForFunction(() => document.getElementById('matched').textContent.startsWith('Matched'));
    const matchedText = await page.locator('#matched').textContent();
    check('search reports the matched share', /^Matched: [\d.]+% \(.+\)$/.test(matchedText), matchedText);
    check('search highlights frames', await page.locator('g.f.match').count() > 0);
    check('search is in the URL fragment', (await page.evaluate(() => location.hash)).includes('s=numpy'));

    // Flame / icicle.
    const rootY = async () => (await frames()).find(f => f.i === 0).y;
    const icicleRootY = await rootY();
    await page.click('#flip');
    const flameRootY = await rootY();
    const deepest = Math.max(...(await frames()).map(f => f.y));
    check('flame toggle puts the root at the bottom', flameRootY > icicleRootY && flameRootY === deepest,
        icicleRootY + ' -> ' + flameRootY);
    const hash = await page.evaluate(() => location.hash);
    check('orientation is in the URL fragment', hash.includes('o=flame'), hash);

    // Reload with the fragment: same view.
    const shared = page.url();
    const shownBefore = (await frames()).map(f => f.i + ':' + f.cls + ':' + f.w.toFixed(1)).join(' ');
    const matchedBefore = await page.locator('#matched').textContent();
    await page.goto('about:blank');
    await page.goto(shared);
    await page.waitForSelector('g.f');
    const shownAfter = (await frames()).map(f => f.i + ':' + f.cls + ':' + f.w.toFixed(1)).join(' ');
    check('reloading the shared URL restores zoom, search and orientation',
        shownAfter === shownBefore && await page.locator('#matched').textContent() === matchedBefore &&
        await page.evaluate(() => document.getElementById('search').value) === 'numpy|cache');

    // Reset zoom.
    await page.click('#reset');
    const reset = await frames();
    check('reset zoom shows the whole graph again', reset.find(f => f.i === 0).w > full - 1 &&
        reset.every(f => !f.cls.includes('dim')));

    if (shotPath) {
        await page.click('#search', { clickCount: 3 });
        await page.keyboard.press('Escape');
        await page.click('#flip');
        await page.hover(`g.f[data-i="${target.i}"] rect`);
        // fullPage does not work on SVG documents: size the viewport to the drawing instead.
        const h = await page.evaluate(() => +document.documentElement.getAttribute('height'));
        await page.setViewportSize({ width: 1200, height: Math.min(Math.max(h, 300), 4000) });
        await page.hover(`g.f[data-i="${target.i}"] rect`);
        await page.screenshot({ path: shotPath });
    }
    // As an image: no script can run, the static picture must be complete.
    await imageChecks(page, svgPath, 'graph');

    if (diffPath) {
        await page.goto('file://' + resolve(diffPath));
        await page.waitForSelector('g.f');
        const fills = await page.evaluate(() => [...document.querySelectorAll('g.f')].map(g => ({
            i: +g.getAttribute('data-i'), fill: g.querySelector('rect').getAttribute('fill'),
            text: g.textContent,
        })));
        const red = fills.filter(f => /^#ff[0-9a-f]{4}$/.test(f.fill) && f.fill !== '#ffffff' &&
            f.fill.slice(3, 5) === f.fill.slice(5, 7));
        const blue = fills.filter(f => /^#[0-9a-f]{4}ff$/.test(f.fill) && f.fill.slice(1, 3) === f.fill.slice(3, 5) &&
            f.fill !== '#ffffff');
        check('diff: grown frames are red, shrunk frames blue', red.some(f => f.text.includes('listcomp')) &&
            blue.some(f => f.text.startsWith('import')), red.length + ' red, ' + blue.length + ' blue');
        const grown = red.find(f => f.text.includes('listcomp'));
        await page.hover(`g.f[data-i="${grown.i}"] rect`);
        const diffTip = await page.evaluate(() => document.getElementById('tip').textContent);
        check('diff: tooltip shows before, after and change', /before: .* \| after: .*change: \+/.test(diffTip), diffTip);
        const gone = await page.evaluate(() => [...document.querySelectorAll('g.f.gone')].map(g => ({
            i: +g.getAttribute('data-i'), fill: g.querySelector('rect').getAttribute('fill'), text: g.textContent })));
        check('diff: a frame only in the base is drawn, hatched', gone.length > 0 &&
            gone.every(f => f.fill === 'url(#gone)'), JSON.stringify(gone.slice(0, 3)));
        if (gone.length) {
            await page.hover(`g.f[data-i="${gone[0].i}"] rect`);
            const goneTip = await page.evaluate(() => document.getElementById('tip').textContent);
            check('diff: its tooltip says it is gone', /after: 0 B.*gone/.test(goneTip), goneTip);
        }
        await imageChecks(page, diffPath, 'diff');
    }
    check('no console error at the end', errors.length === 0, errors.join(' | '));
} finally {
    await context.close();
    rmSync(profileDir, { recursive: true, force: true });
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
