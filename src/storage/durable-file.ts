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

/** writeFileDurable with the data write and both fsyncs on the threadpool: same steps, same order. */
export async function writeFileDurableAsync(fs: FileSystem, path: string, parts: Buffer | Buffer[]): Promise<void> {
  const { tmp, h } = freshTmp(fs, path);
  try {
    for (const [part, at] of placed(parts)) await h.writeAsync(part, 0, part.length, at);
    await h.syncAsync();
  } finally {
    h.close();
  }
  fs.rename(tmp, path);
  await fs.syncDirAsync(dirname(path));
}

/** The temporary next to `path`, created empty (a leftover from a crash is removed first). */
function freshTmp(fs: FileSystem, path: string): { tmp: string; h: FileHandle } {
  const tmp = `${path}.tmp`;
  if (fs.exists(tmp)) fs.remove(tmp);
  return { tmp, h: fs.open(tmp, 'createNew') };
}

/** Each part with the file offset it goes to. */
function placed(parts: Buffer | Buffer[]): Array<[Buffer, number]> {
  let at = 0;
  return (Array.isArray(parts) ? parts : [parts]).map((p) => {
    at += p.length;
    return [p, at - p.length];
  });
}
