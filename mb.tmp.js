const { Volume } = require('./dist/src/volume/volume');
(async () => {
  const v = await Volume.open('/tmp/rt/vol', {});
  const p = v.resolvePoint('past');
  const out = Buffer.alloc(131072);
  const size = 1 << 30;
  for (let r = 0; r < 4; r++) {
    const t0 = process.hrtime.bigint();
    for (let pos = 0; pos < size; pos += 131072) if (!v.tryReadIntoSync(out, pos, 131072, p)) throw new Error('async');
    const ns = Number(process.hrtime.bigint() - t0);
    console.log('per 128K request', (ns / 1e3 / (size / 131072)).toFixed(1), 'us', (size / ns * 1e3).toFixed(0), 'MB/s');
  }
  await v.close();
})();
