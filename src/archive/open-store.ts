import * as path from 'node:path';
import { ChronoError } from '../errors';
import { ENCRYPTED_OBJECT } from '../format/constants';
import { FileSystem } from '../storage/file-system';
import { NodeFileSystem } from '../storage/node-file-system';
import { ArchiveKey, createKeyFile, readKeyFile } from './archive-key';
import { BackingStore } from './backing-store';
import { EncryptedStore } from './encrypted-store';
import { LocalDirStore } from './local-dir-store';
import type { S3StoreOptions } from './s3-store';

/**
 * Where a volume's archive is and how it is sealed: recorded in config.json (never a secret:
 * the key stays in its key file, S3 credentials in the AWS chain).
 */
export interface ArchiveSettings {
  /** An absolute directory, or s3://bucket/prefix. */
  archive: string;
  archiveEndpoint?: string;
  archiveRegion?: string;
  encryption?: { cipher: typeof ENCRYPTED_OBJECT.cipher; keyFile: string; keyId: string };
}

export type ArchiveLocation = { kind: 'dir'; path: string } | { kind: 's3'; bucket: string; prefix: string };

export function parseArchiveUrl(url: string): ArchiveLocation {
  if (/^s3:\/\//i.test(url)) {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/i.exec(url);
    if (!m) throw new ChronoError('BAD_ARGUMENT', `not an S3 archive URL: ${url} (expected s3://bucket/prefix)`, { url });
    const prefix = (m[2] ?? '').replace(/\/+$/, '');
    if (prefix.split('/').includes('..')) throw new ChronoError('BAD_ARGUMENT', `bad S3 prefix in ${url}`, { url });
    return { kind: 's3', bucket: m[1], prefix: prefix ? `${prefix}/` : '' };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new ChronoError('BAD_ARGUMENT', `unsupported archive URL ${url}: use a directory or s3://bucket/prefix`, { url });
  return { kind: 'dir', path: path.resolve(url) };
}

/** The archive's directory when it is one (the space check counts it if it shares the primary's file system). */
export function localArchiveDir(url: string): string | undefined {
  const loc = parseArchiveUrl(url);
  return loc.kind === 'dir' ? loc.path : undefined;
}

export interface SettingsRequest {
  /** A directory or s3://bucket/prefix. */
  archive: string;
  endpoint?: string;
  region?: string;
  /** Seal the archive with a key from this file. */
  keyFile?: string;
  /** Create the key file (mode 0600) rather than read it. */
  newKey?: boolean;
}

/** Settings for config.json from CLI-style options; creates the key file when asked. */
export function archiveSettings(r: SettingsRequest): { settings: ArchiveSettings; key?: ArchiveKey } {
  const loc = parseArchiveUrl(r.archive);
  if (loc.kind === 'dir' && (r.endpoint || r.region)) throw new ChronoError('BAD_ARGUMENT', '--archive-endpoint and --archive-region apply to an s3:// archive only');
  if (r.endpoint && !/^https?:\/\/[^/]+\/?$/i.test(r.endpoint)) throw new ChronoError('BAD_ARGUMENT', `not an endpoint URL: ${r.endpoint} (e.g. http://127.0.0.1:7480)`);
  if (r.newKey && !r.keyFile) throw new ChronoError('BAD_ARGUMENT', '--new-key needs --key-file');
  const settings: ArchiveSettings = { archive: loc.kind === 'dir' ? loc.path : r.archive.replace(/\/+$/, '') };
  if (r.endpoint) settings.archiveEndpoint = r.endpoint.replace(/\/+$/, '');
  if (r.region) settings.archiveRegion = r.region;
  let key: ArchiveKey | undefined;
  if (r.keyFile) {
    const keyFile = path.resolve(r.keyFile);
    key = r.newKey ? createKeyFile(keyFile) : readKeyFile(keyFile);
    settings.encryption = { cipher: ENCRYPTED_OBJECT.cipher, keyFile, keyId: key.keyId };
  }
  return { settings, key };
}

export interface OpenStoreOptions {
  fs?: FileSystem;
  /** Create a local archive directory that does not exist yet (init). */
  create?: boolean;
  /** The key, when the caller has read it already (else it is read from the settings' key file). */
  key?: ArchiveKey;
  /** Tuning of the S3 client (tests: short timeouts and retries). */
  s3?: Partial<S3StoreOptions>;
}

/**
 * The one factory, used by the volume and by recover: the store for a volume's archive settings
 * (or a bare directory / s3:// URL), with its wrappers. restic's
 * shape: a store per kind of place, and everything else (encryption) wraps any of them.
 */
export function openStore(settingsOrUrl: ArchiveSettings | string, o: OpenStoreOptions = {}): BackingStore {
  const s: ArchiveSettings = typeof settingsOrUrl === 'string' ? { archive: settingsOrUrl } : settingsOrUrl;
  const loc = parseArchiveUrl(s.archive);
  let store: BackingStore;
  if (loc.kind === 'dir') {
    const fs = o.fs ?? new NodeFileSystem();
    if (o.create) fs.mkdirp(loc.path);
    store = new LocalDirStore(loc.path, fs);
  } else {
    // Loaded only for an S3 archive: the SDK costs every other command about 0.3 s at start.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { S3Store } = require('./s3-store') as typeof import('./s3-store');
    store = new S3Store({ ...o.s3, bucket: loc.bucket, prefix: loc.prefix, endpoint: s.archiveEndpoint, region: s.archiveRegion });
  }
  if (s.encryption) {
    const key = o.key ?? readKeyFile(s.encryption.keyFile);
    if (key.keyId !== s.encryption.keyId) {
      throw new ChronoError('ARCHIVE_WRONG_KEY', `key file ${s.encryption.keyFile} holds another key than this volume's archive was sealed with (key id ${key.keyId}, expected ${s.encryption.keyId})`, { keyId: key.keyId, expected: s.encryption.keyId });
    }
    store = new EncryptedStore(store, key);
  }
  return store;
}

/**
 * Refuses, with a clear message, to read a sealed archive without a key: its objects start with
 * the encrypted header's magic, which would otherwise surface as a damaged superblock.
 */
export async function checkNotSealed(store: BackingStore, key: string): Promise<void> {
  const head = await store.getRange(key, 0, ENCRYPTED_OBJECT.magic.length).catch(() => undefined);
  if (head?.equals(ENCRYPTED_OBJECT.magic)) {
    throw new ChronoError('BAD_ARGUMENT', `${store.description} is encrypted: give its key with --key-file FILE`, { key });
  }
}
