import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { fixtureImages } from './helpers/fixture-v1';
import { tmpDir } from './helpers/tmp';

/**
 * Volumes as earlier builds wrote them: v1 as first released (segments without sync points), and
 * v1 with the syncPoints segment flag and SYNC records.
 */
const FIXTURES = ['v1', 'v1-sync-points'];

function copyFixture(name: string): { dir: string; archive: string } {
  const root = tmpDir();
  fs.cpSync(path.resolve(__dirname, '../../test/fixtures', name), root, { recursive: true });
  const dir = path.join(root, 'volume');
  const archive = path.join(root, 'archive');
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ archive }));
  fs.chmodSync(dir, 0o700); // git keeps no directory modes; open refuses a volume others can reach
  return { dir, archive };
}

for (const name of FIXTURES) {
  test(`format fixture ${name}: every event reads back as written, and verify passes`, async () => {
    const { dir } = copyFixture(name);
    const want = fixtureImages();
    const vol = await Volume.open(dir);
    assert.equal(vol.events.length, want.size);
    assert.ok((await vol.status()).archive.segments! > 0, 'the fixture has archived history');
    for (const e of vol.events) assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(e.label))).equals(want.get(e.label)!), e.label);
    assert.deepEqual((await vol.verify()).problems, []);
    await vol.close();
  });

  test(`format fixture ${name}: its archive alone recovers every archived event`, async () => {
    const { archive } = copyFixture(name);
    const want = fixtureImages();
    const target = path.join(tmpDir(), 'recovered');
    await recoverFromArchive(archive, target);
    const vol = await Volume.open(target);
    assert.ok(vol.events.length > 0);
    for (const e of vol.events) assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(e.label))).equals(want.get(e.label)!), e.label);
    await vol.close();
  });
}
