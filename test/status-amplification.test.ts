import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { bufferSource } from '../src/archive/archive-object';
import { RecordType } from '../src/format/constants';
import { scanSegment } from '../src/segment/segment-scanner';
import { Volume } from '../src/volume/volume';
import { Rng } from './helpers/rng';
import { SMALL, freshVolume } from './helpers/volumes';
import { whiteBox } from '../src/volume/white-box';

const BS = 4096;

/** COPY bytes the working set's segments hold now (what a reopen re-applies). */
function copyBytesInPrimary(dir: string): number {
  let n = 0;
  for (const f of fs.readdirSync(path.join(dir, 'segments'))) {
    const scan = scanSegment(bufferSource(fs.readFileSync(path.join(dir, 'segments', f))), { blockSizeBytes: BS, verifyData: false, segmentId: 0 });
    for (const r of scan.records) if (r.header.type === RecordType.COPY) n += r.header.blockCount * BS;
  }
  return n;
}

test('status: write amplification counts copy-forward bytes once, across many reopens (issue 10, defect 4)', async () => {
  const rng = new Rng(1010);
  const { dir, vol } = await freshVolume();
  const blocks = SMALL.sizeBytes / BS;
  // Enough random overwrites to turn the working set over several times.
  for (let i = 0; i < 600; i++) await vol.write(rng.int(blocks) * BS, rng.bytes(BS));
  const before = (await vol.status()).log;
  assert.ok((await vol.status()).archive.segments! > 3, 'segments went through turnover');
  await vol.close();
  assert.ok(before.copyForwardBytes > 0 && copyBytesInPrimary(dir) > 0, 'the working set holds copy-forward records a reopen sees');
  for (let i = 0; i < 30; i++) {
    const v = await Volume.open(dir);
    const s = (await v.status()).log;
    await v.close();
    assert.equal(s.bytesWritten, before.bytesWritten, `reopen ${i + 1}: bytes written`);
    assert.equal(s.copyForwardBytes, before.copyForwardBytes, `reopen ${i + 1}: copy-forward bytes`);
    assert.equal(s.copyForwardWriteAmp, before.copyForwardWriteAmp, `reopen ${i + 1}: write amplification`);
  }
  // And the count goes on from there: new writes after the reopens add their own copies only.
  const v = await Volume.open(dir);
  for (let i = 0; i < 200; i++) await v.write(rng.int(blocks) * BS, rng.bytes(BS));
  const after = (await v.status()).log;
  await v.close();
  assert.equal(after.bytesWritten, before.bytesWritten + 200 * BS);
  assert.ok(after.copyForwardBytes > before.copyForwardBytes);
  assert.ok(after.copyForwardWriteAmp < 2.5, `write amplification ${after.copyForwardWriteAmp} is plausible for uniform overwrites`);
});

test('status: after a crash, the replayed tail (copy-forward records included) counts once', async () => {
  const rng = new Rng(1011);
  const { dir, vol } = await freshVolume();
  const blocks = SMALL.sizeBytes / BS;
  for (let i = 0; i < 400; i++) await vol.write(rng.int(blocks) * BS, rng.bytes(BS));
  await whiteBox(vol).checkpointer.idle();
  await vol.flush();
  const live = (await vol.status()).log;
  // Crash: copy the files while the volume is open; the log after its last checkpoint
  // (copy-forward records of the last turnover among it) is replayed and must count as it did live.
  const copy = `${dir}-copy`;
  fs.cpSync(dir, copy, { recursive: true });
  fs.rmSync(path.join(copy, 'LOCK'));
  await vol.close();
  const v = await Volume.open(copy);
  const s = (await v.status()).log;
  assert.ok(v.replayReport.replayedRecords > 0, 'the crash left a tail to replay');
  await v.close();
  assert.equal(s.bytesWritten, live.bytesWritten);
  assert.equal(s.copyForwardBytes, live.copyForwardBytes);
});
