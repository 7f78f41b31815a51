import { ArchiveCatalog, CatalogBody, CatalogSegment, seqRanges } from '../archive/archive-catalog';
import { readLink } from '../archive/archive-chain';
import { ParsedArchiveObject, buildCompactedObject, parseArchiveObject, partsEqual } from '../archive/archive-object';
import { ChronoError } from '../errors';
import { FILE_NAMES, generationFileName, parseGenerationFileName } from '../format/constants';
import { HEADER_BYTES } from '../format/record';
import { DEFAULTS } from '../options';
import { keepLocalTable } from './archiver';
import { Core } from './core';
import { PlanEntry, PlanInput, freedBytes, planPrune, planSegment } from './prune-plan';
import { SegmentLiveness, segmentLiveness } from './prunable';
import { Pacer } from './prune-pacer';
import { PruneBaseline, objectLiveness, segmentsWithNewDead } from './prune-walk';

export interface PruneOptions {
  dryRun?: boolean;
  /** Dead share of an object's record bytes at which it is rewritten (default DEFAULTS.pruneRewriteThreshold). */
  rewriteThreshold?: number;
  /** The most bytes written into rewritten objects by this prune (default DEFAULTS.pruneMaxRewriteBytes). */
  maxRewriteBytes?: number;
  /**
   * While reads or writes come, the share of the time the prune may take (default
   * DEFAULTS.pruneBusyShare; 1: no pacing; 0: only when the volume is quiet). See prune-pacer.ts.
   */
  busyShare?: number;
  /** The volume counts as quiet after this long without a read or write (default DEFAULTS.pruneQuietMs). */
  quietMs?: number;
  progress?: (phase: string, done: number, total: number) => void;
}

export interface PruneReport {
  dryRun: boolean;
  /** The catalog generation this prune wrote (dry run: would write). */
  generation: number;
  plan: Array<Pick<PlanEntry, 'id' | 'action' | 'objectBytes' | 'neededBytes' | 'deadBytes' | 'why'>>;
  deleted: number[];
  rewritten: number[];
  /** Archive bytes freed (deleted objects, and what rewrites left out); estimated in a dry run. */
  freedBytes: number;
  /** Versions that left the index. */
  versionsDropped: number;
  /** Objects a cut-short prune left that this one removed. */
  garbageRemoved: string[];
  /** Archived segments looked at (left primary, archived, not deleted before). */
  candidates: number;
  /** Ids of the segments whose objects this prune read whole (to judge or rewrite them). */
  objectsRead: number[];
  /** Whether it walked only what changed since the catalog's last walk (else the whole index). */
  incremental: boolean;
  /** Time it spent waiting for foreground reads and writes (busyShare), in ms. */
  yieldedMs: number;
}

/**
 * Prune (docs/DESIGN.md, "Prune", rules 16-21): versions no kept point and no live block reads
 * leave the archive and the index. Only segments that have left primary are touched. In order:
 * the retention state is durable already (forget wrote it); each rewritten object is put under a
 * new key and read back; the catalog naming the result (with that retention state) is put and
 * read back; the index drops the versions; only then are old objects deleted. A crash anywhere
 * leaves a volume that opens and verifies, and the next prune finishes the job.
 */
export async function pruneVolume(core: Core, o: PruneOptions = {}): Promise<PruneReport> {
  const { store, sb } = core;
  const threshold = o.rewriteThreshold ?? DEFAULTS.pruneRewriteThreshold;
  const maxRewriteBytes = o.maxRewriteBytes ?? DEFAULTS.pruneMaxRewriteBytes;
  // Every read, write and delete of an object below is one step, taken when the foreground lets it.
  const pacer = new Pacer(core.foreground, { busyShare: o.busyShare ?? DEFAULTS.pruneBusyShare, quietMs: o.quietMs ?? DEFAULTS.pruneQuietMs });
  // A copy of this volume fenced off (rule 29) must not rewrite or delete what it shares with
  // the archive's writer either: checked first, and again before anything is put or deleted.
  const checkFence = () => core.archiver.fence.check();
  if (!o.dryRun) await pacer.step(checkFence);
  // What the archive holds now (another process's prune may have run since open).
  const fresh = await ArchiveCatalog.load(store, sb.volumeId);
  if (fresh.generation > core.catalog.generation) core.catalog.replace(fresh.body);
  const catalog = core.catalog;
  let versionsDropped = 0;
  if (!o.dryRun) versionsDropped += await pacer.step(() => dropCataloguedVersions(core)); // a prune cut before its index step
  const retention = core.retention.snapshot();
  const keptSeqs = [...new Set([...core.events.all.map((e) => e.seq), ...core.retention.keptPointSeqs()])].sort((a, b) => a - b);
  const inPrimary = new Set([...core.segments.sealed, core.segments.current.id, ...core.leaving]);
  const through = core.archiver.archivedThrough;
  const candidate = (id: number) => id >= 1 && id <= through && !inPrimary.has(id) && !catalog.isDeleted(id);
  // The span's start, capped at the archive head's last seq: the state there (where a recovery
  // from the archive alone ends) is in the span, so a version it reads stays even when its next
  // version is the first seq not archived. (A cap one past it dropped that version.)
  const c = Math.min(retention.continuousFromSeq, core.archiver.archivedSeq);
  // Every id up to here is a candidate now (or deleted): the next prune's walk starts past it.
  const eligibleThrough = Math.min(through, ...[...inPrimary].map((id) => id - 1));
  const base = catalog.body.walked;
  const incremental = !!base && c > 0 && threshold >= base.rewriteThreshold;
  o.progress?.('index', 0, 1);
  // Objects read, judged as they are read: only those a rewrite will need stay in memory (a
  // prune may read thousands; holding them all cost the daemon hundreds of MiB and its GC time).
  const read = new Set<number>();
  const objects = new Map<number, Buffer>();
  const judged = new Map<number, PlanInput>();
  const judge = (id: number, obj: Buffer, parsed: ParsedArchiveObject, l: SegmentLiveness): void => {
    read.add(id);
    const input: PlanInput = {
      id, objectBytes: obj.length, neededSeqs: l.neededSeqs,
      records: parsed.scan.records.map((r) => ({ seq: r.header.seq, type: r.header.type, bytes: HEADER_BYTES + r.header.payloadLength })),
    };
    judged.set(id, input);
    if (planSegment(input, threshold).action === 'rewrite') objects.set(id, obj);
  };
  let live: Map<number, SegmentLiveness>;
  if (c <= 0) live = new Map(); // nothing before the continuous span's start was thinned: no forget, no prune
  else if (!incremental) live = segmentLiveness(core.index, keptSeqs, c, candidate);
  else {
    // Only segments where a version died since the last walk, and those that left primary since:
    // each one's object is read and its versions judged by index lookups (docs/DESIGN.md rule 22).
    const ids = segmentsWithNewDead(core.index, base, keptSeqs, c, candidate);
    for (let id = base.eligibleThrough + 1; id <= through; id++) if (candidate(id)) ids.add(id);
    live = new Map();
    for (const id of [...ids].sort((a, b) => a - b)) {
      await pacer.step(async () => {
        const obj = await store.get(catalog.keyOf(id));
        const parsed = parseArchiveObject(obj, sb.blockSizeBytes, id, sb.volumeId);
        const l = objectLiveness(core.index, parsed.scan.records.map((r) => r.header), keptSeqs, c);
        read.add(id);
        if (l.versions === 0) return; // as the full walk: a segment with no data version is no candidate
        live.set(id, l);
        judge(id, obj, parsed, l);
      });
    }
  }
  o.progress?.('index', 1, 1);
  const inputs: PlanInput[] = [];
  // A segment with every version needed may still be worth compacting when its object is linked
  // (its copy-forward records); the size estimate below decides without reading it.
  const candidates = [...live.entries()].sort((a, b) => a[0] - b[0]);
  let done = 0;
  for (const [id, l] of candidates) {
    // Judged already when the walk read it (incremental); else one step to read it.
    if (!judged.has(id)) {
      await pacer.step(async () => {
        // An estimate of the dead share from the index and the object's size (the needed versions'
        // blocks): an object plainly under the threshold is not read at all.
        const sizeBytes = (await store.size(catalog.keyOf(id))) ?? 0;
        const neededEstimate = (l.versions - l.deadVersions) * sb.blockSizeBytes;
        if (l.neededSeqs.size > 0 && 1 - neededEstimate / Math.max(1, sizeBytes) < threshold / 2) return;
        const obj = await store.get(catalog.keyOf(id));
        judge(id, obj, parseArchiveObject(obj, sb.blockSizeBytes, id, sb.volumeId), l);
      });
    }
    const input = judged.get(id);
    if (input) inputs.push(input);
    o.progress?.('read', ++done, candidates.length);
  }
  const plan = planPrune(inputs, { threshold, maxRewriteBytes });
  for (const e of plan) if (e.action !== 'rewrite') objects.delete(e.id); // deferred: read again next time
  const act = plan.filter((e) => e.action !== 'keep');
  const generation = catalog.generation + 1;
  const report: PruneReport = {
    dryRun: !!o.dryRun, generation,
    plan: plan.map(({ id, action, objectBytes, neededBytes, deadBytes, why }) => ({ id, action, objectBytes, neededBytes, deadBytes, why })),
    deleted: act.filter((e) => e.action === 'delete').map((e) => e.id),
    rewritten: act.filter((e) => e.action === 'rewrite').map((e) => e.id),
    freedBytes: freedBytes(plan), versionsDropped, garbageRemoved: [], candidates: live.size, objectsRead: [...read].sort((a, b) => a - b), incremental, yieldedMs: 0,
  };
  if (o.dryRun) return { ...report, yieldedMs: pacer.waitedMs };
  await pacer.step(checkFence);
  if (!act.length) {
    report.garbageRemoved = await removeGarbage(core, pacer);
    return { ...report, yieldedMs: pacer.waitedMs };
  }
  // (b) Each rewrite under a key never used before, read back whole and compared.
  const entries: CatalogSegment[] = [];
  let freed = 0;
  for (const [n, e] of act.entries()) {
    const span = catalog.seqRange(e.id) ?? await spanOf(core, e.id, catalog);
    if (e.action === 'delete') {
      entries.push({ id: e.id, generation: catalog.entry(e.id)?.generation ?? 0, ...span, state: 'deleted', bytes: 0, keptSeqs: [] });
      freed += e.objectBytes;
    } else {
      await pacer.step(async () => {
        const obj = objects.get(e.id)!;
        objects.delete(e.id); // rewritten: its bytes are not needed again
        const keep = new Set(e.keptSeqs);
        const parts = buildCompactedObject(obj, parseArchiveObject(obj, sb.blockSizeBytes, e.id, sb.volumeId), (s) => keep.has(s));
        const key = FILE_NAMES.archiveSegmentsPrefix + generationFileName(e.id, generation);
        // A cut-short prune may have used this key (and kept its table): neither is this one's.
        core.archive.local?.remove(e.id, generation);
        await store.put(key, parts);
        const back = await store.get(key);
        if (!partsEqual(parts, back)) throw new ChronoError('ARCHIVE_MISMATCH', `compacted segment ${e.id} reads back different from what was written`, { segment: e.id });
        await keepLocalTable(core, e.id, generation, back);
        entries.push({ id: e.id, generation, ...span, state: 'compacted', bytes: back.length, keptSeqs: seqRanges(e.keptSeqs) });
        freed += Math.max(0, e.objectBytes - back.length);
      });
    }
    o.progress?.('write', n + 1, act.length);
  }
  // (c) The catalog, with the retention state that justified it, put and read back.
  const replaced = new Set(entries.map((e) => e.id));
  // A rewrite left for a later prune keeps the last walk: the next one walks those spans again.
  const deferred = plan.some((e) => e.deferred);
  const walked: PruneBaseline | undefined = deferred ? catalog.body.walked : { keptSeqs, continuousFromSeq: c, eligibleThrough, rewriteThreshold: threshold };
  const body: CatalogBody = {
    generation,
    segments: [...catalog.body.segments.filter((s) => !replaced.has(s.id)), ...entries].sort((a, b) => a.id - b.id),
    retention: { ...retention, keptSeqs },
    ...(walked ? { walked } : {}),
  };
  const oldKeys = act.map((e) => catalog.keyOf(e.id));
  await pacer.step(checkFence);
  await pacer.step(() => catalog.save(store, sb.volumeId, body));
  // (d) The index drops what the catalog no longer holds, persisted with the manifest: only
  // runs holding these segments' seqs are scanned when the index was filtered for the last catalog.
  report.versionsDropped += await pacer.step(() => dropCataloguedVersions(core, entries.map((e) => [e.firstSeq, e.nextSeq - 1])));
  // (e) Only now the old objects go (and anything an earlier cut-short prune left).
  for (const key of oldKeys) await pacer.step(() => store.delete(key));
  report.garbageRemoved = await removeGarbage(core, pacer);
  report.freedBytes = freed;
  report.yieldedMs = pacer.waitedMs;
  core.log.info({ generation, deleted: report.deleted.length, rewritten: report.rewritten.length, freedBytes: freed, versionsDropped: report.versionsDropped }, 'prune done');
  return report;
}

/** The seqs a segment spans, from its object's header and end (uncatalogued ones). */
async function spanOf(core: Core, segment: number, catalog: ArchiveCatalog): Promise<{ firstSeq: number; nextSeq: number }> {
  const link = await readLink(core.store, core.sb, segment, catalog);
  return { firstSeq: link.firstSeq, nextSeq: link.firstSeq + link.records };
}

/** The catalog generation each index was last filtered for (a scan of every version, skipped when current). */
const filteredFor = new WeakMap<object, number>();

/** Notes that `index` holds nothing the catalog of `generation` dropped (open filters it). */
export function noteIndexFiltered(index: object, generation: number): void {
  filteredFor.set(index, generation);
}

/**
 * Drops from the index every version whose record the catalog says is gone (a deleted segment,
 * or a seq a compacted one does not hold), then persists the index through the checkpointer (no
 * persist in flight meanwhile). Returns how many went; nothing is persisted when none did.
 */
export async function dropCataloguedVersions(core: Core, newSpans?: Array<[number, number]>): Promise<number> {
  const catalog = core.catalog;
  if (!catalog.present) return 0;
  await core.checkpointer.idle();
  const at = filteredFor.get(core.index);
  if (at === catalog.generation) return 0;
  // Filtered for the catalog before this one: only the spans this one added can hold versions to drop.
  const spans = newSpans && at === catalog.generation - 1 ? newSpans : undefined;
  const dropped = core.index.dropVersions(catalog.prunedTest(), spans);
  filteredFor.set(core.index, catalog.generation);
  if (dropped > 0) {
    core.checkpointer.request();
    await core.checkpointer.idle();
  }
  return dropped;
}

/**
 * Objects under `segments/` that no catalog entry names: for a catalogued id, any key but the one
 * it names (all of them for a deleted one); for any id, a generation above the catalog's (a
 * rewrite put before its catalog was). Original `<id>.cvseg` objects of ids the catalog does not
 * cover are never garbage: they are the archive.
 */
export async function removeGarbage(core: Core, pacer?: Pacer): Promise<string[]> {
  const catalog = core.catalog;
  // Local offset tables follow the catalog: the generation it names, none for a deleted segment.
  core.archive.local?.sweep((id, g) => {
    const e = catalog.entry(id);
    return e ? e.state !== 'deleted' && e.generation === g : g === 0;
  });
  const removed: string[] = [];
  for (const key of await core.store.list(FILE_NAMES.archiveSegmentsPrefix)) {
    const g = parseGenerationFileName(key.slice(FILE_NAMES.archiveSegmentsPrefix.length));
    if (!g) continue;
    const e = catalog.entry(g.id);
    const garbage = e ? e.state === 'deleted' || key !== catalog.keyOf(g.id) : g.generation > 0;
    if (garbage) {
      await (pacer ? pacer.step(() => core.store.delete(key)) : core.store.delete(key));
      removed.push(key);
    }
  }
  return removed;
}
