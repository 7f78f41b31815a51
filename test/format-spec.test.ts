import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import * as C from '../src/format/constants';
import { HEADER_BYTES, readRecordHeader, writeRecordHeader } from '../src/format/record';

/**
 * docs/FORMAT.md against src/format/constants.ts, by the convention at the top of FORMAT.md:
 * every table under a heading that names a constant group in backticks is checked against it.
 */
const SPEC = path.resolve(__dirname, '../../docs/FORMAT.md');

interface SpecTable {
  heading: string;
  /** Backticked names in the heading that are constant groups. */
  groups: string[];
  columns: string[];
  rows: Array<Record<string, string>>;
  line: number;
}

/** Every markdown table in the file, with the heading above it. */
function parseSpecTables(markdown: string, constants: Record<string, unknown>): SpecTable[] {
  const lines = markdown.split('\n');
  const tables: SpecTable[] = [];
  let heading = '';
  const cells = (l: string) => l.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  for (let i = 0; i < lines.length; i++) {
    if (/^#+\s/.test(lines[i])) heading = lines[i];
    if (!lines[i].startsWith('|') || !lines[i + 1]?.startsWith('|---')) continue;
    const columns = cells(lines[i]).map((c) => c.toLowerCase());
    const rows: Array<Record<string, string>> = [];
    let j = i + 2;
    for (; j < lines.length && lines[j].startsWith('|'); j++) {
      const r = cells(lines[j]);
      rows.push(Object.fromEntries(columns.map((c, k) => [c, r[k] ?? ''])));
    }
    const groups = [...heading.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)].map((m) => m[1]).filter((g) => g in constants);
    tables.push({ heading, groups, columns, rows, line: i + 1 });
    i = j - 1;
  }
  return tables;
}

type OffGroup = { off: Record<string, number>; lengthBytes?: number; magic?: Buffer | number; entryBytes?: number; timeEntryBytes?: number };
const constants = C as unknown as Record<string, unknown>;
const isOffGroup = (v: unknown): v is OffGroup => typeof v === 'object' && v !== null && 'off' in v;
const isValueGroup = (v: unknown): v is Record<string, number> =>
  typeof v === 'object' && v !== null && !Buffer.isBuffer(v) && Object.values(v).length > 0 && Object.values(v).every((x) => typeof x === 'number');
/** The leading identifier of a field cell ("primaryOffset: the record's offset" → primaryOffset). */
const fieldName = (cell: string) => /^`?([A-Za-z_][A-Za-z0-9_]*)/.exec(cell)?.[1] ?? cell;
const isNum = (s: string) => /^(0x[0-9a-f]+|\d+)$/i.test(s);

/** The problems with one offset | size | field table, as messages (empty: it matches). */
function checkLayout(t: SpecTable, name: string, g: OffGroup): string[] {
  const problems: string[] = [];
  const where = `${name} (FORMAT.md line ${t.line})`;
  const fixed: Array<{ field: string; offset: number; size: number }> = [];
  let variable = false;
  const documented = new Map<string, number[]>();
  const sizeTerms: Record<string, number> = {};
  for (const r of t.rows) {
    const field = fieldName(r.field);
    if (isNum(r.offset)) documented.set(field, [...(documented.get(field) ?? []), Number(r.offset)]);
    if (isNum(r.offset) && isNum(r.size) && !variable) fixed.push({ field, offset: Number(r.offset), size: Number(r.size) });
    else variable = true;
    const term = /^(\d+)([a-z])$/.exec(r.size);
    if (term) sizeTerms[term[2]] = (sizeTerms[term[2]] ?? 0) + Number(term[1]);
    if (field === 'magic' && g.magic !== undefined) {
      const want = Buffer.isBuffer(g.magic) ? `\`${g.magic.toString('ascii')}\`` : `0x${g.magic.toString(16)}`;
      if (!r.notes?.toLowerCase().includes(want.toLowerCase())) problems.push(`${where}: magic notes "${r.notes}" do not give ${want}`);
      const bytes = Buffer.isBuffer(g.magic) ? g.magic.length : 4;
      if (Number(r.size) !== bytes) problems.push(`${where}: magic is ${bytes} bytes, the table says ${r.size}`);
    }
  }
  for (const [field, offset] of Object.entries(g.off)) {
    const at = documented.get(field);
    if (!at) problems.push(`${where}: field ${field} (offset ${offset} in constants.ts) is not in the table`);
    else if (!at.includes(offset)) problems.push(`${where}: field ${field} is at ${offset} in constants.ts, at ${at.join('/')} in FORMAT.md`);
  }
  for (const field of documented.keys()) {
    const numericSize = fixed.some((f) => f.field === field);
    if (field !== 'reserved' && numericSize && !(field in g.off)) problems.push(`${where}: field ${field} is in FORMAT.md but not in ${name}.off`);
  }
  for (let i = 0; i + 1 < fixed.length; i++) {
    const end = fixed[i].offset + fixed[i].size;
    if (end !== fixed[i + 1].offset) problems.push(`${where}: ${fixed[i].field} ends at ${end} but ${fixed[i + 1].field} starts at ${fixed[i + 1].offset}`);
  }
  const last = fixed[fixed.length - 1];
  const fixedEnd = last ? last.offset + last.size : 0;
  if (fixed[0] && fixed[0].offset !== 0) problems.push(`${where}: the first field starts at ${fixed[0].offset}, not 0`);
  if (g.lengthBytes !== undefined && fixedEnd !== g.lengthBytes) problems.push(`${where}: fields end at ${fixedEnd}, lengthBytes is ${g.lengthBytes}`);
  const stated = /\((\d+)[ -]bytes?\b/.exec(t.heading);
  if (stated && Number(stated[1]) !== fixedEnd) problems.push(`${where}: the heading says ${stated[1]} bytes, the fields end at ${fixedEnd}`);
  // Per-entry sizes of variable parts ("8n" bytes for n entries) add up to the group's entry sizes.
  if (g.entryBytes !== undefined && sizeTerms.n !== undefined && sizeTerms.n !== g.entryBytes) problems.push(`${where}: the n-sized parts add up to ${sizeTerms.n} bytes an entry, entryBytes is ${g.entryBytes}`);
  if (g.timeEntryBytes !== undefined && sizeTerms.m !== undefined && sizeTerms.m !== g.timeEntryBytes) problems.push(`${where}: the m-sized parts add up to ${sizeTerms.m} bytes an entry, timeEntryBytes is ${g.timeEntryBytes}`);
  return problems;
}

/** The problems with one value | name table. */
function checkValues(t: SpecTable, name: string, g: Record<string, number>): string[] {
  const where = `${name} (FORMAT.md line ${t.line})`;
  const doc = Object.fromEntries(t.rows.map((r) => [fieldName(r.name), Number(r.value)]));
  const problems: string[] = [];
  for (const [k, v] of Object.entries(g)) if (doc[k] !== v) problems.push(`${where}: ${k} = ${v} in constants.ts, ${doc[k] ?? 'missing'} in FORMAT.md`);
  for (const k of Object.keys(doc)) if (!(k in g)) problems.push(`${where}: ${k} is in FORMAT.md but not in constants.ts`);
  return problems;
}

/** Every problem found between a spec text and the constants. */
function checkSpec(markdown: string): { problems: string[]; checked: string[] } {
  const problems: string[] = [];
  const checked: string[] = [];
  for (const t of parseSpecTables(markdown, constants)) {
    for (const name of t.groups) {
      const g = constants[name];
      if (['offset', 'size', 'field'].every((c) => t.columns.includes(c)) && isOffGroup(g)) {
        problems.push(...checkLayout(t, name, g));
        checked.push(name);
      } else if (['value', 'name'].every((c) => t.columns.includes(c)) && isValueGroup(g)) {
        problems.push(...checkValues(t, name, g));
        checked.push(name);
      }
    }
  }
  const required = [...Object.keys(constants).filter((k) => isOffGroup(constants[k])), 'RecordType', 'EventKind', 'SegmentFlags', 'ResyncReason', 'ArchiveCacheKind'];
  for (const name of required) if (!checked.includes(name)) problems.push(`${name} has no table in FORMAT.md under a heading naming it`);
  return { problems, checked };
}

test('format spec: every table in docs/FORMAT.md matches src/format/constants.ts', () => {
  const { problems, checked } = checkSpec(fs.readFileSync(SPEC, 'utf8'));
  assert.deepEqual(problems, []);
  assert.deepEqual([...new Set(checked)].sort(), ['ARCHIVE_CACHE', 'ARCHIVE_CATALOG', 'ARCHIVE_HEAD', 'ARCHIVE_TABLE', 'ARCHIVE_TRAILER', 'ArchiveCacheKind', 'CLONE_CRC', 'CLONE_MAP', 'CloneCrcFlags', 'ENCRYPTED_OBJECT', 'EVENT_PAYLOAD', 'EventKind', 'INDEX_RUN', 'LOST_PAYLOAD', 'MANIFEST', 'RECORD_HEADER', 'RESYNC_PAYLOAD', 'RecordType', 'ResyncReason', 'SEAL_PAYLOAD', 'SEGMENT_HEADER', 'SUPERBLOCK', 'SYNC_PAYLOAD', 'SegmentFlags']);
});

test('format spec: the checker finds a moved field, a missing field, a gap, a wrong length and a wrong value', () => {
  const spec = fs.readFileSync(SPEC, 'utf8');
  const mutate = (from: string, to: string) => {
    assert.ok(spec.includes(from), from);
    return checkSpec(spec.replace(from, to)).problems.join('\n');
  };
  assert.match(mutate('| 40 | 8 | firstSeq |', '| 40 | 8 | firstSequence |'), /SEGMENT_HEADER.*field firstSeq .*not in the table/);
  assert.match(mutate('| 44 | 4 | segmentSizeBytes |', '| 44 | 4 | segmentSizeBytes |\n| 46 | 2 | extra |'), /SUPERBLOCK.*segmentSizeBytes ends at 48 but extra starts at 46/);
  assert.match(mutate('| 16 | 4 | bodyCrc |', '| 16 | 8 | bodyCrc |'), /SEAL_PAYLOAD.*heading says 20 bytes.*24|SEAL_PAYLOAD.*lengthBytes is 20/);
  assert.match(mutate('| 7 | SEAL |', '| 9 | SEAL |'), /RecordType.*SEAL = 7 in constants.ts, 9 in FORMAT.md/);
  assert.match(mutate('| 24 | 4 | objectCrc |', '| 20 | 4 | objectCrc |'), /ARCHIVE_TRAILER.*objectCrc is at 24 in constants.ts, at 20/);
  assert.match(mutate('| 64+20n | 4n | offsets |', '| 64+20n | 8n | offsets |'), /INDEX_RUN.*28 bytes an entry, entryBytes is 24/);
  assert.match(mutate('ASCII `CHRVOLMF`', 'ASCII `CHRVOLMX`'), /MANIFEST.*magic/);
  assert.match(mutate('### Sync payload (8 bytes) — `SYNC_PAYLOAD`', '### Sync payload (8 bytes)'), /SYNC_PAYLOAD has no table/);
  assert.match(mutate('| 16 | 8 | bytesCopied |', '| 16 | 8 | bytesMoved |'), /RESYNC_PAYLOAD.*field bytesCopied .*not in the table/);
  assert.match(mutate('| 2 | resync |', '| 3 | resync |'), /ResyncReason/);
});

test('format: a valid record of a type this build does not know is UNKNOWN_RECORD_TYPE, not damage', () => {
  const b = Buffer.alloc(HEADER_BYTES);
  writeRecordHeader(b, 0, { type: (C.LAST_RECORD_TYPE + 1) as never, blockCount: 0, seq: 5, timeMs: 1, firstBlock: 0, payloadLength: 0, originSegment: 0, originOffset: 0 });
  assert.throws(() => readRecordHeader(b, 0, undefined, {}), (e: unknown) => isChronoError(e, 'UNKNOWN_RECORD_TYPE') && new RegExp(`type ${C.LAST_RECORD_TYPE + 1}`).test(e.message));
  // The same bytes damaged are damage: a CRC mismatch is checked first.
  b[20] ^= 1;
  assert.throws(() => readRecordHeader(b, 0, undefined, {}), (e: unknown) => isChronoError(e, 'BAD_CHECKSUM'));
});
