import { Command } from 'commander';
import * as path from 'node:path';
import { DEFAULTS, parseCount, parseSize } from '../../options';
import { formatBytes, printJson } from '../output';

export function register(program: Command): void {
  program
    .command('init')
    .description('create a volume: a directory holding its working set, index and settings')
    .argument('<dir>', 'volume directory (created if missing)')
    .requiredOption('--size <bytes>', 'volume size, e.g. 10G, 512M (fixed for life)', parseSize)
    .option('--block-size <bytes>', 'block size, a power of two from 512 to 64K (default 4K)', parseSize)
    .option('--segment-size <bytes>', 'log segment size (default 64M)', parseSize)
    .option('--working-set <K>', 'segments kept in primary storage (default: 2x the volume, plus 2)', parseCount)
    .option('--archive <path>', 'backing-store directory for history (default <dir>/archive)')
    .option('--skip-space-check', 'create the volume even if its file system cannot hold the working set (and the archive, if it is on the same file system); writes then fail with ENOSPC when the disk fills')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  chronovol init /srv/vol1 --size 20G --archive /mnt/backup/vol1\n')
    .action(async (dir: string, o) => {
      const { Volume } = await import('../../volume/volume');
      const { VolumeDir } = await import('../../volume/volume-dir');
      const { NodeFileSystem } = await import('../../storage/node-file-system');
      const { ChronoError } = await import('../../errors');
      const { planGeometry } = await import('../../volume/sizing');
      const { initialSpaceNeed, noSpaceError } = await import('../../volume/space-check');
      const abs = path.resolve(dir);
      const g = planGeometry({ volumeSizeBytes: o.size, blockSizeBytes: o.blockSize ?? DEFAULTS.blockSizeBytes, segmentSizeBytes: o.segmentSize ?? DEFAULTS.segmentSizeBytes, workingSetSegments: o.workingSet });
      const need = initialSpaceNeed({ ...g, volumeId: Buffer.alloc(16), createdMs: 0 }, abs, path.resolve(o.archive ?? path.join(abs, 'archive')));
      if (need.freeBytes < need.needBytes && !o.skipSpaceCheck) {
        const err = noSpaceError(need, abs);
        throw new ChronoError('NO_SPACE', `${err.message}; choose a smaller --working-set or --segment-size, free space, or pass --skip-space-check`, err.details);
      }
      await Volume.create(abs, { sizeBytes: o.size, blockSizeBytes: o.blockSize, segmentSizeBytes: o.segmentSize, workingSetSegments: o.workingSet, archive: o.archive });
      const vd = new VolumeDir(new NodeFileSystem(), abs);
      const sb = vd.readSuperblock();
      const result = { dir: abs, volumeId: sb.volumeId.toString('hex'), sizeBytes: sb.volumeSizeBytes, blockSizeBytes: sb.blockSizeBytes, segmentSizeBytes: sb.segmentSizeBytes, workingSetSegments: sb.workingSetSegments, archive: vd.readConfig().archive };
      if (o.json) return printJson(result);
      process.stdout.write(`created ${formatBytes(sb.volumeSizeBytes)} volume in ${abs}\n  working set: ${sb.workingSetSegments} segments of ${formatBytes(sb.segmentSizeBytes)} (primary stays under ${formatBytes((sb.workingSetSegments + 1) * sb.segmentSizeBytes)})\n  archive: ${result.archive}\n`);
    });
}
