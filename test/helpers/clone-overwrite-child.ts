/**
 * Child process for the "clone crash recovery never takes rot as data" test: opens clone `c`,
 * overwrites block 1536 in place (synced before, not synced now), writes block 1700 for the
 * first time, says so, and SIGKILLs itself with the clone open.
 */
import { clonesOf } from '../../src/clone/clone-service';
import { Volume } from '../../src/volume/volume';

async function main(): Promise<void> {
  const vol = await Volume.open(process.argv[2]);
  const bs = vol.blockSizeBytes;
  const o = clonesOf(vol).overlay('c');
  const fill = (s: string) => Buffer.from(s.padEnd(bs, '.'));
  const w1 = o.write(1536 * bs, fill('clone-1536-again'));
  if (w1) await w1;
  const w2 = o.write(1700 * bs, fill('clone-1700'));
  if (w2) await w2;
  process.stdout.write('written\n');
  process.kill(process.pid, 'SIGKILL');
}

if (require.main === module) void main();
