const { Volume } = require('./dist/src/volume/volume');
const fs = require('fs');
(async () => {
  const MiB = 1 << 20; const dir = '/tmp/ingest-rand'; fs.rmSync(dir, { recursive: true, force: true });
  await Volume.create(dir, { sizeBytes: 1024 * MiB });
  const vol = await Volume.open(dir);
  const pool = Buffer.alloc(4 * MiB, 7);
  let s = 12345; const rnd = (n) => { s = (s * 1103515245 + 12345) >>> 0; return (s >>> 8) % n; };
  const t = process.hrtime.bigint();
  for (let i = 0; i < 32768; i++) await vol.write(rnd(262144) * 4096, pool.subarray((i % 1024) * 4096, (i % 1024) * 4096 + 4096));
  await vol.sync({ label: 'end' });
  const sec = Number(process.hrtime.bigint() - t) / 1e9;
  console.log('MB/s', (128 * MiB / sec / 1e6).toFixed(0));
  await vol.close();
})();
