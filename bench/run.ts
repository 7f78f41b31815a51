/**
 * `npm run bench [-- --json] [-- --only ingest,wa,history,fuse,nbd,nbd-tls,s3,crypto,protect,clone,investigate,space,steady,retention] [-- --scales 1e5,1e6,1e7] [-- --retention-scales 1e5,1e7 --retention-rounds 5 --peers [--peers-passes 2] --fuse]`
 * Prints ratios measured side by side in one run; with --json the last line is one JSON object.
 */
import { crcEngine } from '../src/format/crc';
import { benchArchiveCrypto } from './archive-crypto-bench';
import { benchClone } from './clone-bench';
import { benchIngest, benchWriteAmp } from './engine-ingest';
import { benchFuse } from './fuse-bench';
import { benchHistoryScale } from './history-scale';
import { benchInvestigate } from './investigate-bench';
import { BenchResult, clearScratch } from './lib';
import { benchNbd } from './nbd-bench';
import { benchNbdTls } from './nbd-tls-bench';
import { benchProtect } from './protect-bench';
import { benchRetention } from './retention-bench';
import { benchS3 } from './s3-bench';
import { benchSpace } from './space-bench';
import { benchSteady } from './steady-bench';

type Section = { name: string; run: () => Promise<BenchResult> };

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const arg = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const only = arg('--only')?.split(',');
  const scales = (arg('--scales') ?? '1e5,1e6,1e7').split(',').map(Number);
  const sections: Section[] = [
    { name: 'ingest', run: () => benchIngest() },
    { name: 'wa', run: () => benchWriteAmp() },
    { name: 'history', run: () => benchHistoryScale(scales) },
    { name: 'fuse', run: () => benchFuse() },
    { name: 'nbd', run: () => benchNbd() },
    { name: 'nbd-tls', run: () => benchNbdTls() },
    { name: 's3', run: () => benchS3() },
    { name: 'crypto', run: () => benchArchiveCrypto() },
    { name: 'protect', run: () => benchProtect() },
    { name: 'clone', run: () => benchClone() },
    { name: 'investigate', run: () => benchInvestigate(Number(arg('--investigate-versions') ?? 1e7)) },
    { name: 'space', run: () => benchSpace() },
    { name: 'steady', run: () => benchSteady() },
    { name: 'retention', run: () => benchRetention({ scales: arg('--retention-scales') === 'none' ? [] : (arg('--retention-scales') ?? '1e5,1e7').split(',').map(Number), rounds: Number(arg('--retention-rounds') ?? 5), peers: args.includes('--peers'), fuse: args.includes('--fuse'), peersPasses: Number(arg('--peers-passes') ?? 0) }) },
  ];
  const figures: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, crcEngine };
  for (const s of sections) {
    if (only && !only.includes(s.name)) continue;
    process.stderr.write(`bench: ${s.name}...\n`);
    const r = await s.run();
    for (const line of r.lines) process.stdout.write(line + '\n');
    Object.assign(figures, r.figures);
    clearScratch();
  }
  if (json) process.stdout.write(JSON.stringify(figures) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
