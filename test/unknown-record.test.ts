import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { bufferSource } from '../src/archive/archive-object';
import { isChronoError } from '../src/errors';
import { LAST_RECORD_TYPE } from '../src/format/constants';
import { HEADER_BYTES, writeRecordHeader } from '../src/format/record';
import { scanSegment } from '../src/segment/segment-scanner';
import { Volume } from '../src/volume/volume';
import { freshVolume } from './helpers/volumes';

const BS = 4096;

// A newer writer's record (valid magic, version, length, CRC and flags; a type this build does
// not know) must stop open with UNKNOWN_RECORD_TYPE: cut as a torn tail it would lose that
// writer's record, and reappend over it.
test('unknown record: a valid record of an unknown type at the log tail fails open with UNKNOWN_RECORD_TYPE and nothing is cut', async () => {
  const { dir, vol } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 0x61));
  await vol.close();
  const segments = fs.readdirSync(path.join(dir, 'segments')).sort();
  const file = path.join(dir, 'segments', segments[segments.length - 1]);
  const bytes = fs.readFileSync(file);
  const end = scanSegment(bufferSource(bytes), { blockSizeBytes: BS, verifyData: false, segmentId: 0 }).validEnd;
  const rec = Buffer.alloc(HEADER_BYTES);
  writeRecordHeader(rec, 0, { type: (LAST_RECORD_TYPE + 1) as never, blockCount: 0, seq: 1000, timeMs: 1, firstBlock: 0, payloadLength: 0, originSegment: 0, originOffset: 0 });
  const grown = Buffer.alloc(Math.max(bytes.length, end + HEADER_BYTES));
  bytes.copy(grown);
  rec.copy(grown, end);
  fs.writeFileSync(file, grown);
  await assert.rejects(Volume.open(dir), (e: unknown) => isChronoError(e, 'UNKNOWN_RECORD_TYPE'));
  assert.ok(fs.readFileSync(file).subarray(end, end + HEADER_BYTES).equals(rec), 'the record is still there');
});
