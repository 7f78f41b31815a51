import assert from 'node:assert/strict';
import type { Point } from '../../src/volume/events';
import { sealNow } from '../../src/volume/turnover';
import type { Volume } from '../../src/volume/volume';
import { whiteBox } from '../../src/volume/white-box';

const BS = 4096;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Block `b` at version `v` (4 KiB): its number in bytes 0-3, the version in bytes 4-7 (versionOf reads it). */
export function versionedBlock(b: number, v: number): Buffer {
  const x = Buffer.alloc(BS, v & 0xff);
  x.writeUInt32BE(b, 0);
  x.writeUInt32BE(v, 4);
  return x;
}

/** The version block `block` holds at point `p` (live without one). */
export async function versionOf(vol: Volume, block: number, p?: Point): Promise<number> {
  return (await vol.read(block * BS, BS, p)).readUInt32BE(4);
}

/** Seals the current segment and waits until every sealed one is in the archive. */
export async function archiveAll(vol: Volume): Promise<void> {
  await sealNow(whiteBox(vol));
  for (let i = 0; i < 500 && (await vol.status()).segments.awaitingArchive.length > 0; i++) await sleep(10);
  assert.deepEqual((await vol.status()).segments.awaitingArchive, [], 'every sealed segment is archived');
}
