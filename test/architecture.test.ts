import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';

/**
 * The import rules of docs/DESIGN.md, "Layers and owners", checked on the source: every import
 * (static, `import()`, `require()`, `typeof import()`) of every file under src/.
 */
const ROOT = path.join(__dirname, '..', '..');
const SRC = path.join(ROOT, 'src');

/**
 * Folders of src/, lowest first. A folder may import its own layer and those below, never one
 * above. '.' is src/'s own files (errors.ts, options.ts, log.ts). A new folder goes here.
 */
const LAYERS: string[][] = [
  ['.', 'format', 'storage', 'util', 'types'],
  ['segment'],
  ['index'],
  ['archive', 'history'],
  ['volume'],
  ['service'],
  ['clone', 'retention', 'replication', 'investigate'],
  ['fuse', 'nbd', 'control'],
  ['daemon'],
  ['cli'],
];

/** The edges: they reach a volume through the service and Volume's methods, not through its parts. */
const EDGES = ['fuse', 'nbd', 'control', 'daemon', 'cli'];
/** The volume's parts: what only volume/ (and what it is built from) may import. */
const PARTS = ['segment', 'index', 'history'];
/** What the daemons' edges may import from volume/: the facade alone. */
const EDGE_VOLUME_FILES = ['volume/volume'];
/** The CLI creates, checks and recovers volumes too: those entry points as well. */
const CLI_VOLUME_FILES = [...EDGE_VOLUME_FILES, 'volume/volume-status', 'volume/volume-dir', 'volume/sizing', 'volume/space-check', 'volume/dir-permissions', 'volume/verify', 'volume/recover'];
/** White-box access to a volume's state: tests, benches and volume/ itself only. */
const WHITE_BOX = 'volume/white-box';

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every module a file names, relative to src/ without the extension (packages are skipped). */
export function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = new Set<string>();
  for (const re of [/\bfrom\s+'([^']+)'/g, /\bimport\s*\(\s*'([^']+)'\s*\)/g, /\brequire\s*\(\s*'([^']+)'\s*\)/g, /^\s*import\s+'([^']+)'/gm]) {
    for (const m of text.matchAll(re)) specs.add(m[1]);
  }
  return [...specs].filter((s) => s.startsWith('.')).map((s) => path.relative(SRC, path.resolve(path.dirname(file), s)).replace(/\\/g, '/'));
}

function folderOf(rel: string): string {
  return rel.includes('/') ? rel.split('/')[0] : '.';
}

function layerOf(folder: string): number {
  return LAYERS.findIndex((l) => l.includes(folder));
}

function violations(): string[] {
  const out: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const rel = path.relative(SRC, file).replace(/\\/g, '/').replace(/\.d\.ts$|\.ts$/, '');
    const from = folderOf(rel);
    if (layerOf(from) < 0) {
      out.push(`src/${from}/ is in no layer: add it to LAYERS in test/architecture.test.ts (and to "Layers and owners" in docs/DESIGN.md)`);
      continue;
    }
    for (const target of importsOf(file)) {
      if (target.startsWith('..')) continue; // package.json, build/: outside src
      const to = folderOf(target);
      if (layerOf(to) < 0) continue; // reported once, as its own files are
      if (layerOf(to) > layerOf(from)) out.push(`src/${rel}.ts imports upward: ${target} (${from} sits below ${to})`);
      if (target === WHITE_BOX && from !== 'volume') out.push(`src/${rel}.ts imports ${WHITE_BOX}: only tests, benches and volume/ may`);
      if (EDGES.includes(from)) {
        if (PARTS.includes(to)) out.push(`src/${rel}.ts is an edge and imports the volume's part ${target}: use src/service/images.ts or a Volume method`);
        const allowed = from === 'cli' ? CLI_VOLUME_FILES : EDGE_VOLUME_FILES;
        if (to === 'volume' && !allowed.includes(target)) out.push(`src/${rel}.ts is an edge and imports ${target}: use src/service/images.ts or a Volume method`);
      }
    }
  }
  return out;
}

test('src/ keeps its layers: no upward import, edges use the service, white-box access stays in tests', () => {
  assert.deepEqual(violations(), []);
});

test('the rules are checked on something: every folder of src/ is found and known', () => {
  const folders = new Set(sourceFiles(SRC).map((f) => folderOf(path.relative(SRC, f))));
  for (const f of ['volume', 'service', 'fuse', 'nbd', 'daemon', 'cli']) assert.ok(folders.has(f), `src/${f}/ exists`);
  const fuseTree = path.join(SRC, 'fuse', 'tree.ts');
  assert.ok(importsOf(fuseTree).includes('service/images'), 'the parser sees fuse/tree.ts import the service');
});
