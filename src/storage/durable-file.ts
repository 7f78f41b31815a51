import { ChronoError } from '../errors';
import { FileHandle, FileSystem, dirname } from './file-system';

/**
 * The one way a small file is replaced: write a temporary, fsync it, rename it over the target,
 * fsync the directory. A crash leaves either the old or the new content, never a mix.
 */
export function writeFileDurable(fs: FileSystem, path: string, parts: Buffer | Buffer[]): void {
  const { tmp, h } = freshTmp(fs, path);
  try {
    for (const [part, at] of placed(parts)) h.write(part, 0, part.length, at);
    h.sync();
  } finally {
    h.close();
  }
  fs.rename(tmp, path);
  fs.syncDir(dirname(path));
}

/**
 * Parts produced lazily, taken once, in order; their total is known before the first. A part is
 * good only until the next is taken (the producer may reuse its memory): copy it to keep it.
 */
export interface PartStream {
  readonly totalBytes: number;
  readonly parts: Iterable<Buffer>;
  /** Optional, instead of taking `parts`: writes them all back to back into `out` (totalBytes long). */
  into?(out: Buffer): void;
}

/**
 * writeFileDurable with the data write and both fsyncs on the threadpool: same steps, same order.
 * `direct` writes the data with O_DIRECT where the file system takes it, for large objects: the
 * bytes go to the disk as they are written instead of piling up in the page cache for the fsync
 * (padded to the alignment, then truncated back to their length).
 */
export async function writeFileDurableAsync(fs: FileSystem, path: string, parts: Buffer | Buffer[] | PartStream, o: { direct?: boolean } = {}): Promise<void> {
  const { tmp, h } = freshTmp(fs, path, o.direct ? 'createNewDirect' : 'createNew');
  try {
    const s: PartStream = Buffer.isBuffer(parts) || Array.isArray(parts) ? listed(parts) : parts;
    const list = s.parts;
    if (h.directWrites) await writeDirect(h, list, s.totalBytes);
    else {
      let at = 0;
      for (const part of list) {
        await h.writeAsync(part, 0, part.length, at);
        at += part.length;
      }
    }
    await h.syncAsync();
  } finally {
    h.close();
  }
  fs.rename(tmp, path);
  await fs.syncDirAsync(dirname(path));
}

/**
 * The parts, gathered into aligned buffers of at most 4 MiB and written in order; then the exact
 * length. Two buffers: one fills (a copy, or the sealing of a PartStream's next parts, on the
 * event loop) while the other is written on the threadpool.
 */
async function writeDirect(h: FileHandle, parts: Iterable<Buffer>, total: number): Promise<void> {
  const { alignBytes, alloc } = h.directWrites!;
  const size = Math.max(alignBytes, Math.min(DIRECT_CHUNK_BYTES, Math.ceil(total / alignBytes) * alignBytes));
  const buffers = [alloc(size), total > size ? alloc(size) : undefined];
  let chunk = buffers[0]!;
  let at = 0; // file offset of chunk[0]
  let fill = 0;
  let inFlight: Promise<void> | undefined;
  const flush = async () => {
    const len = Math.ceil(fill / alignBytes) * alignBytes;
    chunk.fill(0, fill, len);
    const previous = inFlight;
    inFlight = h.writeAsync(chunk, 0, len, at);
    inFlight.catch(() => undefined); // awaited by the next flush or at the end
    at += fill;
    fill = 0;
    chunk = chunk === buffers[0] ? buffers[1] ?? buffers[0] : buffers[0]!;
    await previous; // the buffer now filling is free once its last write is done
  };
  let written = 0;
  try {
    for (const p of parts) {
      written += p.length;
      for (let off = 0; off < p.length; ) {
        const n = p.copy(chunk, fill, off, Math.min(p.length, off + chunk.length - fill));
        fill += n;
        off += n;
        if (fill === chunk.length) await flush();
      }
    }
    if (fill > 0) await flush();
  } catch (err) {
    // Never leave a write running into a file about to be closed (a failed part, a failed write).
    await inFlight?.catch(() => undefined);
    throw err;
  }
  await inFlight;
  if (written !== total) throw new ChronoError('BAD_LENGTH', `${written} bytes given for ${total} announced`, { written, total });
  h.truncate(total);
}

const DIRECT_CHUNK_BYTES = 4 * 1024 * 1024;

/** The temporary next to `path`, created empty (a leftover from a crash is removed first). */
function freshTmp(fs: FileSystem, path: string, mode: 'createNew' | 'createNewDirect' = 'createNew'): { tmp: string; h: FileHandle } {
  const tmp = `${path}.tmp`;
  if (fs.exists(tmp)) fs.remove(tmp);
  return { tmp, h: fs.open(tmp, mode) };
}

function listed(parts: Buffer | Buffer[]): PartStream {
  const list = Array.isArray(parts) ? parts : [parts];
  return { totalBytes: list.reduce((n, p) => n + p.length, 0), parts: list };
}

/** Each part with the file offset it goes to. */
function placed(parts: Buffer | Buffer[]): Array<[Buffer, number]> {
  let at = 0;
  return (Array.isArray(parts) ? parts : [parts]).map((p) => {
    at += p.length;
    return [p, at - p.length];
  });
}
