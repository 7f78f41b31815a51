import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { MountedVolume, chronovol, fuseSkipReason, ok, run } from './helpers/fuse-harness';
import type { Step, StepResult } from './helpers/held-handles-child';
import { tmpDir } from './helpers/tmp';

const skip = fuseSkipReason();
const WATCHDOG_MS = 180_000;
const MIB = 1 << 20;
const CHILD = path.join(__dirname, 'helpers', 'held-handles-child.js');

function newVolume(): { dir: string; mnt: string } {
  const root = tmpDir('chronovol-moving-');
  const dir = path.join(root, 'vol');
  const r = chronovol(['init', dir, '--size', '8M', '--segment-size', '1M']);
  assert.equal(r.status, 0, r.stderr);
  return { dir, mnt: path.join(root, 'mnt') };
}

/** Runs the steps in one child process (handles stay open across them); a result per step. */
function held(steps: Step[]): StepResult[] {
  const r = ok(process.execPath, [CHILD, JSON.stringify(steps)], 120_000);
  const results = JSON.parse(r.stdout) as StepResult[];
  results.forEach((x, i) => assert.ok(x.ok || steps[i].mayFail, `step ${JSON.stringify(steps[i])} failed: ${!x.ok && x.error}`));
  return results;
}

describe('FUSE names that move', { skip }, () => {
  test('a reader holding events/<label>/ or at/<label>/ keeps its event\'s bytes after the label moves to a newer event (the moving name is a symlink to a stable path)', { timeout: WATCHDOG_MS }, async () => {
    const { dir, mnt } = newVolume();
    const m = await MountedVolume.start(dir, mnt);
    try {
      const live = path.join(mnt, 'live/volume.img');
      const img = path.join(mnt, 'events/snap/volume.img');
      const json = path.join(mnt, 'events/snap/event.json');
      const atImg = path.join(mnt, 'at/snap/volume.img');
      const steps: Step[] = [
        { write: live, byte: 0x11, length: MIB },
        { mkdir: path.join(mnt, 'events/snap') }, // event 1, label snap
        { open: 'A', path: img },
        { read: 'A', offset: 0, length: MIB },
        { open: 'AT', path: atImg },
        { read: 'AT', offset: 0, length: MIB },
        { open: 'AJ', path: json },
        { read: 'AJ', offset: 0, length: 4096, text: true },
        { write: live, byte: 0x22, length: MIB },
        { cli: ['sync', dir, '--label', 'snap'] }, // event 2 takes the label
        { open: 'B', path: img },
        { read: 'B', offset: 0, length: MIB },
        { open: 'BT', path: atImg },
        { read: 'BT', offset: 0, length: MIB },
        { open: 'BJ', path: json },
        { read: 'BJ', offset: 0, length: 4096, text: true },
        // The first readers again, after the second ones brought event 2's pages in.
        { read: 'A', offset: 0, length: MIB },
        { read: 'AT', offset: 0, length: MIB },
        { read: 'AJ', offset: 0, length: 4096, text: true },
      ];
      const r = held(steps);
      const at = (i: number) => r[i] as { bytes?: string; text?: string };
      assert.equal(at(3).bytes, '11', 'reader A, first read: event 1');
      assert.equal(at(5).bytes, '11', 'reader AT, first read: event 1');
      assert.equal(JSON.parse(at(7).text!).id, 1);
      assert.equal(at(11).bytes, '22', 'reader B opened after the label moved: event 2');
      assert.equal(at(13).bytes, '22', 'reader BT opened after the label moved: event 2');
      assert.equal(JSON.parse(at(15).text!).id, 2);
      assert.equal(at(16).bytes, '11', 'reader A still reads event 1 after B read event 2 through the same name');
      assert.equal(at(17).bytes, '11', 'reader AT still reads event 1 after BT read event 2 through the same name');
      assert.equal(JSON.parse(at(18).text!).id, 1, 'event.json held open still shows event 1');

      // The moving names are links to stable paths, which are regular files whose meaning is fixed.
      const events = JSON.parse(chronovol(['events', mnt, '--json']).stdout) as Array<{ id: number; seq: number }>;
      const stable = ok('ls', [path.join(mnt, 'events')]).stdout.split('\n').filter(Boolean);
      assert.equal(stable.length, 2);
      const links = held([
        { readlink: img },
        { readlink: json },
        { readlink: atImg },
        { readlink: path.join(mnt, 'events', '1', 'volume.img') },
        { readlink: path.join(mnt, 'at', new Date(Date.now() - 1).toISOString(), 'volume.img') },
      ]) as Array<{ link: string }>;
      assert.equal(links[0].link, `../${stable[1]}/volume.img`);
      assert.equal(links[1].link, `../${stable[1]}/event.json`);
      assert.equal(links[2].link, `../seq:${events[1].seq}/volume.img`);
      assert.equal(links[3].link, `../${stable[0]}/volume.img`);
      assert.equal(links[4].link, `../seq:${events[1].seq}/volume.img`, 'a time past the last write is the last write\'s seq');
      for (const p of [path.join(mnt, 'events', stable[0], 'volume.img'), path.join(mnt, 'at', `seq:${events[0].seq}`, 'volume.img')]) {
        assert.match(ok('stat', ['-c', '%F', p]).stdout, /^regular file/, p);
      }
      assert.match(ok('stat', ['-c', '%F', img]).stdout, /^symbolic link/);
      // Read through the link, the image is the one the name names now.
      assert.ok(ok('dd', [`if=${img}`, 'bs=1M', 'count=1', 'status=none']).out.equals(Buffer.alloc(MIB, 0x22)));
      assert.ok(ok('dd', [`if=${path.join(mnt, 'events', stable[0], 'volume.img')}`, 'bs=1M', 'count=1', 'status=none']).out.equals(Buffer.alloc(MIB, 0x11)));
      // A link's target is read-only like every past image; the link itself cannot be removed.
      assert.notEqual(run('dd', ['if=/dev/zero', `of=${img}`, 'bs=4096', 'count=1', 'conv=notrunc', 'status=none']).status, 0);
      assert.notEqual(run('rm', ['-f', img]).status, 0);
    } finally {
      await m.cleanup();
    }
  });

  test('a clone cannot be discarded while its image is open (CLONE_IN_USE, EBUSY): a clone made again under its name is never served to the old one\'s handle', { timeout: WATCHDOG_MS }, async () => {
    const { dir, mnt } = newVolume();
    const m = await MountedVolume.start(dir, mnt);
    try {
      const live = path.join(mnt, 'live/volume.img');
      const img = path.join(mnt, 'clones/c/volume.img');
      const steps: Step[] = [
        { write: live, byte: 0x11, length: MIB },
        { cli: ['sync', dir, '--label', 'one'] },
        { write: live, byte: 0x22, length: MIB },
        { cli: ['sync', dir, '--label', 'two'] },
        { cli: ['clone', dir, 'c', '--at', 'one'] },
        { open: 'A', path: img },
        { read: 'A', offset: 0, length: MIB },
        { cli: ['clone', dir, 'c', '--delete'], mayFail: true }, // 7: refused, A holds it
        { rmdir: path.join(mnt, 'clones/c'), mayFail: true }, // 8: refused too
        { cli: ['clone', dir, 'c', '--at', 'two'], mayFail: true }, // 9: the name is still taken
        { open: 'B', path: img },
        { read: 'B', offset: 0, length: MIB },
        { read: 'A', offset: 0, length: MIB },
        { close: 'A' },
        { close: 'B' },
        { cli: ['clone', dir, 'c', '--delete'] }, // closed: discarded
        { cli: ['clone', dir, 'c', '--at', 'two'] },
        { open: 'C', path: img },
        { read: 'C', offset: 0, length: MIB },
      ];
      const r = held(steps);
      const failed = (i: number) => r[i] as { ok: boolean; error?: string };
      assert.equal(failed(7).ok, false, 'delete refused while the image is open');
      assert.match(failed(7).error!, /CLONE_IN_USE/);
      assert.equal(failed(8).ok, false);
      assert.match(failed(8).error!, /EBUSY/);
      assert.equal(failed(9).ok, false);
      assert.match(failed(9).error!, /already exists/);
      const bytes = (i: number) => (r[i] as { bytes?: string }).bytes;
      assert.equal(bytes(6), '11');
      assert.equal(bytes(11), '11', 'the clone is still the one of event one');
      assert.equal(bytes(12), '11');
      assert.equal(bytes(18), '22', 'made again of event two, once nothing held the old one');
    } finally {
      await m.cleanup();
    }
  });
});
