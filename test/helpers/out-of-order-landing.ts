import { MemoryStore } from '../../src/archive/memory-store';
import { FileHandle } from '../../src/storage/file-system';
import { MemoryFileSystem } from '../../src/storage/memory-file-system';
import { Volume } from '../../src/volume/volume';

const MiB = 1 << 20;
const BS = 4096;

/** Direct writes whose first full write-out of a segment is held until `release()`: a slow disk request. */
class HeldFirstWriteOut extends MemoryFileSystem {
  holding = false;
  held = false;
  release: () => void = () => undefined;

  constructor() {
    super({ directAlignBytes: BS });
  }

  override open(p: string, mode: Parameters<MemoryFileSystem['open']>[1]): FileHandle {
    const h = super.open(p, mode);
    if (mode === 'createNewDirect' && p.includes('segments')) {
      const inner = h.writeAsync.bind(h);
      h.writeAsync = (buf, off, len, pos) => {
        if (this.holding && pos === 0 && len > MiB) {
          this.holding = false;
          this.held = true;
          return new Promise<void>((r) => (this.release = r)).then(() => inner(buf, off, len, pos));
        }
        return inner(buf, off, len, pos);
      };
    }
    return h;
  }
}

/**
 * Run as a child process (a spin in the read would block this process's event loop, timers
 * included): writes about 4.4 MiB so that two write-outs of the current segment go to the OS,
 * holds the first, lets the second land, and reads a block the second holds. Prints the block
 * number read back.
 */
async function main(): Promise<void> {
  const fs = new HeldFirstWriteOut();
  const store = new MemoryStore();
  fs.mkdirp('/v');
  await Volume.create('/v', { sizeBytes: 8 * MiB, blockSizeBytes: BS, segmentSizeBytes: 16 * MiB }, { fs, store });
  const vol = await Volume.open('/v', { fs, store, cacheBytes: 0 });
  fs.holding = true;
  for (let b = 0; b < 1100; b++) {
    const x = Buffer.alloc(BS, b & 0xff);
    x.writeUInt32BE(b, 0);
    await vol.write(b * BS, x);
  }
  await new Promise((r) => setImmediate(r));
  if (!fs.held) throw new Error('no write-out was held: the scenario did not arise');
  const got = await vol.read(1000 * BS, BS);
  console.log(`block ${got.readUInt32BE(0)} ${got.subarray(4).every((v) => v === (1000 & 0xff)) ? 'intact' : 'damaged'}`);
  fs.release();
  await vol.close();
}

if (require.main === module) void main();
