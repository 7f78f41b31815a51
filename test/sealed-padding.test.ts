import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FILE_NAMES, parseSegmentFileName } from '../src/format/constants';
import { Volume } from '../src/volume/volume';
import { cli } from './helpers/cli';
import { Rng, withSeed } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

// Seen in the soak under load (ENOSPC to NBD writes, every cycle after): a SIGKILL after a SEAL's
// direct write (padded with zeros to the page) and before the writer's close cut the file to the
// SEAL's end. Replay took the segment as sealed with the zeros still after the SEAL; archiving
// links that very file, so its check read zeros as the trailer ("archive trailer: bad magic")
// on every retry, and once the working set was full every write failed ARCHIVE_UNAVAILABLE.
// Replay's cut past the SEAL (replay.ts cutPastSeal) is the fix; this checks the write path.

const SIZE = 1024 * 1024;
const SEGMENT = 64 * 1024;
const WRITE = 16 * 1024;

async function writeSome(v: Volume, rng: Rng, bytes: number): Promise<void> {
  for (let n = 0; n < bytes; n += WRITE) await v.write(rng.int(SIZE / WRITE) * WRITE, rng.bytes(WRITE));
}

test('sealed padding: a sealed segment left with page padding after its SEAL (a kill before the close cut it) is cut at open, archived, and writes past turnover succeed', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const root = tmpDir();
    const dir = path.join(root, 'vol');
    const archive = path.join(root, 'archive');
    assert.equal(cli(['init', dir, '--size', String(SIZE), '--segment-size', String(SEGMENT), '--archive', archive]).status, 0);
    const segDir = path.join(archive, FILE_NAMES.archiveSegmentsPrefix);
    const headPath = path.join(archive, FILE_NAMES.archiveHead);
    const archived = () => (fs.existsSync(segDir) ? fs.readdirSync(segDir).sort() : []);

    let v = await Volume.open(dir);
    await writeSome(v, rng, 2 * SEGMENT);
    await v.close();
    const headBefore = fs.readFileSync(headPath);
    const before = new Set(archived());

    // One more sealed segment, then the archive as it was before it: sealed, not yet archived.
    v = await Volume.open(dir);
    await writeSome(v, rng, 2 * SEGMENT);
    await v.close();
    const fresh = archived().filter((k) => !before.has(k));
    assert.ok(fresh.length >= 1, 'a segment was sealed and archived');
    for (const k of fresh) fs.rmSync(path.join(segDir, k));
    fs.writeFileSync(headPath, headBefore);
    // The first of them as a kill left it: zeros after its SEAL, up to the next page and one more.
    const victim = path.join(dir, FILE_NAMES.segmentsDir, fresh[0]);
    const sealedBytes = fs.statSync(victim).size;
    fs.appendFileSync(victim, Buffer.alloc(4096 - (sealedBytes % 4096) + 4096));

    v = await Volume.open(dir);
    try {
      assert.equal(fs.statSync(victim).size, sealedBytes, 'open cut the padding after the SEAL');
      // Far past turnover: every write needs the archive to have taken the padded segment.
      await writeSome(v, rng, 4 * SIZE);
      const s = await v.status();
      assert.equal(s.archive.error, null, `archive error: ${s.archive.error}`);
      assert.ok(s.archive.archivedThrough > parseSegmentFileName(fresh[0])!, `archived through ${s.archive.archivedThrough}`);
    } finally {
      await v.close();
    }
    assert.equal(cli(['verify', dir, '--archive']).status, 0, 'the archive verifies');
  });
});
