import { Command } from 'commander';
import * as path from 'node:path';
import { DEFAULTS, parseCount, parseSize } from '../../options';
import { formatBytes, printJson } from '../output';
import { addArchiveBacklogOptions } from './serve';

export function register(program: Command): void {
  const cmd = program
    .command('init')
    .description('create a volume: a directory holding its working set, index and settings')
    .argument('<dir>', 'volume directory (created if missing)')
    .requiredOption('--size <bytes>', 'volume size, e.g. 10G, 512M (fixed for life)', parseSize)
    .option('--block-size <bytes>', 'block size, a power of two from 512 to 64K (default 4K)', parseSize)
    .option('--segment-size <bytes>', 'log segment size (default 64M)', parseSize)
    .option('--working-set <K>', 'segments kept in primary storage (default: 2x the volume, plus 2)', parseCount)
    .option('--skip-space-check', 'create the volume even if its file system cannot hold the working set (and the archive, if it is on the same file system); writes then fail with ENOSPC when the disk fills')
    .option('--archive <path|url>', 'where history goes: a directory, or s3://bucket/prefix (default <dir>/archive)')
    .option('--archive-endpoint <url>', 'S3 endpoint, e.g. http://127.0.0.1:7480 (default: AWS); credentials come from the AWS environment, config files or AWS_PROFILE')
    .option('--archive-region <region>', 'S3 region (default us-east-1)')
    .option('--encrypt', 'seal every archive object with AES-256-GCM (needs --key-file)')
    .option('--key-file <file>', 'the archive key file (with --encrypt)')
    .option('--new-key', 'create the key file (mode 0600); losing it loses the archive')
    .option('--json', 'print the result as JSON');
  addArchiveBacklogOptions(cmd, 'init')
    .addHelpText('after', '\nExample:\n  chronovol init /srv/vol1 --size 20G --archive /mnt/backup/vol1\n  chronovol init /srv/vol1 --size 20G --archive s3://backups/vol1 --archive-endpoint http://127.0.0.1:7480 --encrypt --key-file /root/vol1.key --new-key\n')
    .action(async (dir: string, o) => {
      const { Volume } = await import('../../volume/volume');
      const { VolumeDir } = await import('../../volume/volume-dir');
      const { NodeFileSystem } = await import('../../storage/node-file-system');
      const { ChronoError } = await import('../../errors');
      const { planGeometry } = await import('../../volume/sizing');
      const { initialSpaceNeed, noSpaceError } = await import('../../volume/space-check');
      const abs = path.resolve(dir);
      if (o.encrypt && !o.keyFile) throw new ChronoError('BAD_ARGUMENT', '--encrypt needs --key-file FILE (add --new-key to create it)');
      if (!o.encrypt && (o.keyFile || o.newKey)) throw new ChronoError('BAD_ARGUMENT', '--key-file and --new-key go with --encrypt');
      const { archiveSettings, localArchiveDir } = await import('../../archive/open-store');
      const archive: string = o.archive ?? path.join(abs, 'archive');
      const g = planGeometry({ volumeSizeBytes: o.size, blockSizeBytes: o.blockSize ?? DEFAULTS.blockSizeBytes, segmentSizeBytes: o.segmentSize ?? DEFAULTS.segmentSizeBytes, workingSetSegments: o.workingSet });
      const backlogSegments = o.archiveBacklog === undefined ? DEFAULTS.archiveBacklogSegments : Math.floor(o.archiveBacklog / g.segmentSizeBytes);
      const need = initialSpaceNeed({ ...g, volumeId: Buffer.alloc(16), createdMs: 0 }, abs, localArchiveDir(archive), backlogSegments);
      if (need.freeBytes < need.needBytes && !o.skipSpaceCheck) {
        const err = noSpaceError(need, abs);
        throw new ChronoError('NO_SPACE', `${err.message}; choose a smaller --working-set or --segment-size, free space, or pass --skip-space-check`, err.details);
      }
      const { settings } = archiveSettings({ archive, endpoint: o.archiveEndpoint, region: o.archiveRegion, keyFile: o.keyFile, newKey: o.newKey });
      if (o.newKey && !o.json) process.stderr.write(`created archive key ${settings.encryption!.keyFile} (mode 0600). Keep a copy somewhere safe and apart from the archive: without this file the archive cannot be read, by anyone, ever.\n`);
      await Volume.create(abs, { sizeBytes: o.size, blockSizeBytes: o.blockSize, segmentSizeBytes: o.segmentSize, workingSetSegments: o.workingSet, archiveSettings: settings, archiveBacklogBytes: o.archiveBacklog, archiveStallTimeoutMs: o.archiveStallTimeout });
      const vd = new VolumeDir(new NodeFileSystem(), abs);
      const sb = vd.readSuperblock();
      const result = { dir: abs, volumeId: sb.volumeId.toString('hex'), sizeBytes: sb.volumeSizeBytes, blockSizeBytes: sb.blockSizeBytes, segmentSizeBytes: sb.segmentSizeBytes, workingSetSegments: sb.workingSetSegments, ...vd.readConfig() };
      if (o.json) return printJson(result);
      process.stdout.write(`created ${formatBytes(sb.volumeSizeBytes)} volume in ${abs}\n  working set: ${sb.workingSetSegments} segments of ${formatBytes(sb.segmentSizeBytes)} (primary stays under ${formatBytes((sb.workingSetSegments + 1) * sb.segmentSizeBytes)}, ${formatBytes((sb.workingSetSegments + 1 + backlogSegments) * sb.segmentSizeBytes)} with the archive backlog)\n  archive: ${result.archive}${result.archiveEndpoint ? ` at ${result.archiveEndpoint}` : ''}${result.encryption ? ` (encrypted, key ${result.encryption.keyFile})` : ''}\n`);
    });
}
