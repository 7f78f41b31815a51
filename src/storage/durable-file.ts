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
 * writeFileDurable with the data write and both fsyncs on the threadpool: same steps, same order.
 * `direct` writes the data with O_DIRECT where the file system takes it, for large objects: the
 * bytes go to the disk as they are written instead of piling up in the page cache for the fsync
 * (padded to the alignment, then truncated back to their length).
 */
export async function writeFileDurableAsync(fs: FileSystem, path: string, parts: Buffer | Buffer[], o: { direct?: boolean } = {}): Promise<void> {
  const { tmp, h } = freshTmp(fs, path, o.direct ? 'createNewDirect' : 'createNew');
  try {
    if (h.directWrites) await writeDirect(h, Array.isArray(parts) ? parts : [parts]);
    else for (const [part, at] of placed(parts)) await h.writeAsync(part, 0, part.length, at);
    await h.syncAsync();
  } finally {
    h.close();
  }
  fs.rename(tmp, path);
  await fs.syncDirAsync(dirname(path));
}

/** The parts, gathered into aligned buffers of at most 8 MiB, written in order; then the exact length. */
async function writeDirect(h: FileHandle, parts: Buffer[]): Promise<void> {
  const { alignBytes, alloc } = h.directWrites!;
  const total = parts.reduce((n, p) => n + p.length, 0);
  const chunk = alloc(Math.max(alignBytes, Math.min(DIRECT_CHUNK_BYTES, Math.ceil(total / alignBytes) * alignBytes)));
  let at = 0; // file offset of chunk[0]
  let fill = 0;
  const flush = async () => {
    const len = Math.ceil(fill / alignBytes) * alignBytes;
    chunk.fill(0, fill, len);
    await h.writeAsync(chunk, 0, len, at);
    at += fill;
    fill = 0;
  };
  for (const p of parts) {
    for (let off = 0; off < p.length; ) {
      const n = p.copy(chunk, fill, off, Math.min(p.length, off + chunk.length - fill));
      fill += n;
      off += n;
      if (fill === chunk.length) await flush();
    }
  }
  if (fill > 0) await flush();
  h.truncate(total);
}

const DIRECT_CHUNK_BYTES = 8 * 1024 * 1024;

/** The temporary next to `path`, created empty (a leftover from a crash is removed first). */
function freshTmp(fs: FileSystem, path: string, mode: 'createNew' | 'createNewDirect' = 'createNew'): { tmp: string; h: FileHandle } {
  const tmp = `${path}.tmp`;
  if (fs.exists(tmp)) fs.remove(tmp);
  return { tmp, h: fs.open(tmp, mode) };
}

/** Each part with the file offset it goes to. */
function placed(parts: Buffer | Buffer[]): Array<[Buffer, number]> {
  let at = 0;
  return (Array.isArray(parts) ? parts : [parts]).map((p) => {
    at += p.length;
    return [p, at - p.length];
  });
}
