import { FileSystem, dirname } from './file-system';

/**
 * The one way a small file is replaced: write a temporary, fsync it, rename it over the target,
 * fsync the directory. A crash leaves either the old or the new content, never a mix.
 */
export function writeFileDurable(fs: FileSystem, path: string, parts: Buffer | Buffer[]): void {
  const tmp = `${path}.tmp`;
  if (fs.exists(tmp)) fs.remove(tmp);
  const h = fs.open(tmp, 'createNew');
  try {
    let at = 0;
    for (const part of Array.isArray(parts) ? parts : [parts]) {
      h.write(part, 0, part.length, at);
      at += part.length;
    }
    h.sync();
  } finally {
    h.close();
  }
  fs.rename(tmp, path);
  fs.syncDir(dirname(path));
}

/** writeFileDurable with the data write and both fsyncs on the threadpool: same steps, same order. */
export async function writeFileDurableAsync(fs: FileSystem, path: string, parts: Buffer | Buffer[]): Promise<void> {
  const tmp = `${path}.tmp`;
  if (fs.exists(tmp)) fs.remove(tmp);
  const h = fs.open(tmp, 'createNew');
  try {
    let at = 0;
    for (const part of Array.isArray(parts) ? parts : [parts]) {
      await h.writeAsync(part, 0, part.length, at);
      at += part.length;
    }
    await h.syncAsync();
  } finally {
    h.close();
  }
  fs.rename(tmp, path);
  await fs.syncDirAsync(dirname(path));
}
