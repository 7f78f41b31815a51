import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrcCodec, crcEngine, fallbackCodec, nativeCodec } from '../src/format/crc';
import { nativeAddon } from '../src/util/native-addon';
import { Rng } from './helpers/rng';

// Every implementation must give the same answers: the on-disk format does not depend on which
// one wrote it. On this project's machines the addon must be built (CI would otherwise measure
// and test only the fallback without anyone noticing); CHRONOVOL_ALLOW_NO_NATIVE=1 opts out.
const codecs: CrcCodec[] = [fallbackCodec, ...(nativeCodec ? [nativeCodec] : [])];

test('the native addon is built and in use: CRC32C, read-ahead, write-back, reads that never wait, thread affinity, aligned buffers', { skip: process.env.CHRONOVOL_ALLOW_NO_NATIVE === '1' }, () => {
  assert.ok(nativeCodec, 'build/Release/chronovol_native.node did not load: run scripts/setup');
  assert.equal(typeof nativeAddon.willNeed, 'function');
  assert.equal(typeof nativeAddon.writeBack, 'function');
  assert.equal(typeof nativeAddon.preadNoWait, 'function');
  assert.equal(nativeAddon.preadNoWait!(1_000_000, Buffer.alloc(8), 0, 8, 0), -9, 'a bad descriptor is -EBADF, not a throw');
  const own = nativeAddon.threadAffinity!();
  assert.ok(own.length >= 1 && own.includes(nativeAddon.currentCpu!()));
  assert.equal(nativeAddon.setThreadAffinity!(own), 0);
  assert.equal(nativeAddon.alignedBuffer!(8192, 4096).length, 8192);
  assert.throws(() => nativeAddon.alignedBuffer!(4096, 3000), RangeError, 'the alignment must be a power of two');
  assert.equal(crcEngine, process.env.CHRONOVOL_NATIVE === '0' ? 'node-rs' : 'native-sse42');
});

for (const c of codecs) {
  test(`crc32c (${c.name}): the standard check value and continuation`, () => {
    assert.equal(c.crc32c(Buffer.from('123456789'), 0), 0xe3069283);
    assert.equal(c.crc32c(Buffer.alloc(0), 0), 0);
    const whole = c.crc32c(Buffer.from('hello, world'), 0);
    assert.equal(c.crc32c(Buffer.from(', world'), c.crc32c(Buffer.from('hello'), 0)), whole);
  });

  test(`crc32c (${c.name}) agrees with the other implementation at every lane boundary`, () => {
    const rng = new Rng(0x5eed);
    // Lengths around the three-stream lane sizes (3 x 256, 3 x 1360, 3 x 8192) and odd offsets.
    for (const len of [1, 7, 8, 9, 255, 767, 768, 769, 4079, 4080, 4096, 4097, 24575, 24576, 24577, 100_003]) {
      const b = rng.bytes(len + 3).subarray(3);
      const init = rng.int(0x1_0000_0000);
      assert.equal(c.crc32c(b, init), fallbackCodec.crc32c(b, init), `length ${len}`);
    }
  });

  test(`units (${c.name}): pack, unpack, the first bad unit, and range checks`, () => {
    const rng = new Rng(0x5eed);
    const bs = 4096;
    const count = 9;
    const blocks = rng.bytes(bs * count);
    const units = Buffer.alloc(8 + count * (bs + 4));
    c.packUnits(blocks, 0, bs, count, units, 8);
    for (let i = 0; i < count; i++) {
      const data = units.subarray(8 + i * (bs + 4) + 4, 8 + (i + 1) * (bs + 4));
      assert.ok(data.equals(blocks.subarray(i * bs, (i + 1) * bs)));
      assert.equal(units.readUInt32LE(8 + i * (bs + 4)), fallbackCodec.crc32c(data, 0));
    }
    const back = Buffer.alloc(bs * count + 5);
    assert.equal(c.unpackUnits(units, 8, bs, count, back, 5), -1);
    assert.equal(c.checkUnits(units, 8, bs, count), -1);
    assert.ok(back.subarray(5).equals(blocks));
    units[8 + 6 * (bs + 4) + 100] ^= 0x10; // one bit of block 6's data
    assert.equal(c.unpackUnits(units, 8, bs, count, Buffer.alloc(bs * count), 0), 6);
    assert.equal(c.checkUnits(units, 8, bs, count), 6);
    units[8 + 6 * (bs + 4) + 100] ^= 0x10;
    units[8 + 2 * (bs + 4)] ^= 1; // block 2's stored CRC
    assert.equal(c.unpackUnits(units, 8, bs, count, Buffer.alloc(bs * count), 0), 2);
    assert.equal(c.checkUnits(units, 8, bs, count), 2);
    assert.throws(() => c.checkUnits(units, 9, bs, count), RangeError);
    assert.throws(() => c.unpackUnits(units, 9, bs, count, Buffer.alloc(bs * count), 0), RangeError);
    assert.throws(() => c.unpackUnits(units, 8, bs, count, Buffer.alloc(bs * count - 1), 0), RangeError);
    assert.throws(() => c.packUnits(blocks, 1, bs, count, units, 0), RangeError);
    assert.throws(() => c.packUnits(blocks, 0, bs, count, Buffer.alloc(count * (bs + 4) - 1), 0), RangeError);
  });

  // The native codec checks units from a staged copy, 16 at a time (fewer for big blocks).
  test(`units (${c.name}): runs longer than a stage, every block size: every unit checked, the first bad one named, the ones before it copied`, () => {
    const rng = new Rng(0x57a6e);
    for (const bs of [512, 4096, 65536]) {
      const count = 37;
      const blocks = rng.bytes(bs * count);
      const units = Buffer.alloc(3 + count * (bs + 4));
      c.packUnits(blocks, 0, bs, count, units, 3);
      const back = Buffer.alloc(bs * count);
      assert.equal(c.unpackUnits(units, 3, bs, count, back, 0), -1, `bs ${bs}`);
      assert.ok(back.equals(blocks), `bs ${bs}: every block`);
      for (const bad of [0, 15, 16, 33, 36]) {
        const at = 3 + bad * (bs + 4) + 4 + (bad % bs);
        units[at] ^= 0x01;
        const out = Buffer.alloc(bs * count);
        assert.equal(c.unpackUnits(units, 3, bs, count, out, 0), bad, `bs ${bs}, bad unit ${bad}`);
        assert.equal(c.checkUnits(units, 3, bs, count), bad, `bs ${bs}, bad unit ${bad} (check)`);
        assert.ok(out.subarray(0, bad * bs).equals(blocks.subarray(0, bad * bs)), `bs ${bs}: the units before ${bad} copied`);
        units[at] ^= 0x01;
      }
    }
  });
}
