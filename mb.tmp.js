const { Volume } = require('./dist/src/volume/volume');
const fs = require('fs');
(async () => {
  const MiB = 1 << 20; const dir = '/tmp/ingest-prof'; fs.rmSync(dir, { recursive: true, force: true });
  await Volume.create(dir, { sizeBytes: 1024 * MiB });
  const vol = await Volume.open(dir);
  const bufs = Array.from({ length: 16 }, (_, i) => Buffer.alloc(MiB, i + 1));
  const t = process.hrtime.bigint();
  for (let i = 0; i < 1024; i++) { await vol.write(i * MiB, bufs[i % 16]); if (i % 256 === 255) await vol.sync({ label: 'b' }); }
  await vol.sync({ label: 'end' });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  console.log('MB/s', (1024 * MiB / s / 1e6).toFixed(0));
  await vol.close();
})();
