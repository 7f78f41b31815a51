import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { blockHistory } from '../src/history/block-history';
import { timelineOf } from '../src/investigate/timeline-bins';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { cli } from './helpers/cli';
import { Rng, withSeed } from './helpers/rng';
import { freshVolume } from './helpers/volumes';

const SEED = Number(process.env.CHRONOVOL_SEED ?? 4711);
const SIZE = 256 * 1024;
const BS = 4096;

test('timeline bins count every version once, in the right row and column; archive-only spans are marked; the CLI draws SVG and PNG with vega', async () => {
  const rng = new Rng(SEED);
  console.log(`seed ${SEED} (CHRONOVOL_SEED replays)`);
  await withSeed(rng, async () => {
    const { dir, vol } = await freshVolume({ sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
    for (let i = 0; i < 300; i++) {
      const off = rng.int(SIZE / BS - 4) * BS;
      await vol.write(off, rng.bytes(BS * (1 + rng.int(4))));
      if (i % 25 === 24) await vol.sync({ label: `e${i}` });
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 15)); // spread over time
    }
    const st = await vol.status();
    assert.ok((st.archive.segments ?? 0) > 0, 'history reached the archive');
    const all = blockHistory(whiteBox(vol).index, vol.events, 0, SIZE / BS);
    for (const [from, to] of [[undefined, undefined], ['e49', 'e199'], ['seq:10', 'live']] as const) {
      const t = timelineOf(vol, { from, to, timeBins: 37, blockBins: 9 });
      const want = all.filter((v) => v.seq > t.fromSeq && v.seq <= t.toSeq);
      assert.equal(t.versions, want.length, `${from}..${to}: every version in the window counted`);
      assert.equal(t.cells.reduce((n, c) => n + c.count, 0), want.length, 'cells add up to the versions');
      assert.ok(t.cells.length <= 37 * 9, 'no more cells than the grid');
      for (const v of want) {
        const addr = v.block * BS;
        const cell = t.cells.find((c) => c.a0 <= addr && addr < c.a1 && c.t0 - 1 <= v.timeMs && v.timeMs <= c.t1 + 1);
        assert.ok(cell, `version seq ${v.seq} (block ${v.block}, time ${v.timeMs}) falls in a cell of its row and time`);
      }
      const rows = new Map<number, number>();
      for (const c of t.cells) rows.set(c.a0, (rows.get(c.a0) ?? 0) + c.count);
      for (const [a0, n] of rows) {
        const a1 = t.cells.find((c) => c.a0 === a0)!.a1;
        assert.equal(n, want.filter((v) => v.block * BS >= a0 && v.block * BS < a1).length, `row at ${a0}: its versions`);
      }
      assert.deepEqual(t.events.map((e) => e.id), vol.events.filter((e) => e.seq >= t.fromSeq && e.seq <= t.toSeq && e.timeMs >= t.fromMs).map((e) => e.id), 'events in the window');
    }
    const whole = timelineOf(vol, {});
    console.log('archived', JSON.stringify(whole.archived), whole.fromMs, whole.toMs);
    assert.ok(whole.archived.length > 0 && whole.archived[0].t0 < (whole.fromMs + whole.toMs) / 2, 'older history is shaded as archive-only');
    assert.ok(whole.archived[whole.archived.length - 1].t1 < whole.toMs, 'the newest is not');
    await vol.close();

    const svgFile = path.join(path.dirname(dir), 't.svg');
    const r = cli(['timeline', dir, '--out', svgFile, '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'no warnings');
    const svg = fs.readFileSync(svgFile, 'utf8');
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    for (const e of ['e24', 'e299']) assert.ok(svg.includes(e), `the SVG labels event ${e}`);
    assert.match(svg, /block address/);
    const pngFile = path.join(path.dirname(dir), 't.png');
    assert.equal(cli(['timeline', dir, '--from', 'e99', '--out', pngFile]).status, 0);
    const png = fs.readFileSync(pngFile);
    assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');
    assert.ok(png.readUInt32BE(16) > 600 && png.readUInt32BE(20) > 250, 'of the chart\'s size');
    assert.equal(cli(['timeline', dir, '--out', 'x.gif']).status, 2, 'bad --out is a usage error');
    await Volume.open(dir).then((v) => v.close());
  });
});
