import { hkdfSync, randomBytes } from 'node:crypto';
import * as nfs from 'node:fs';
import { ChronoError } from '../errors';
import { ARCHIVE_KEY_FILE, ENCRYPTED_OBJECT } from '../format/constants';

/** The secret every archive object's key is derived from, and its public fingerprint. */
export interface ArchiveKey {
  secret: Buffer;
  /** HKDF of the secret: recorded in config.json and every object header, so a wrong key is named as such. */
  keyId: string;
}

export function archiveKeyFromSecret(secret: Buffer): ArchiveKey {
  const id = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), ENCRYPTED_OBJECT.keyIdInfo, ENCRYPTED_OBJECT.keyIdBytes));
  return { secret, keyId: id.toString('hex') };
}

export function readKeyFile(file: string): ArchiveKey {
  let text: string;
  try {
    text = nfs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ChronoError('BAD_ARGUMENT', `cannot read the archive key file ${file}: ${(err as Error).message}`, { file }, err);
  }
  const hex = text.trim();
  if (!new RegExp(`^[0-9a-fA-F]{${ARCHIVE_KEY_FILE.secretBytes * 2}}$`).test(hex)) {
    throw new ChronoError('BAD_ARGUMENT', `${file} is not a chronovol archive key (one line of ${ARCHIVE_KEY_FILE.secretBytes * 2} hex digits)`, { file });
  }
  return archiveKeyFromSecret(Buffer.from(hex, 'hex'));
}

/** Creates a new random key file, mode 0600; never overwrites one (losing a key loses its archive). */
export function createKeyFile(file: string): ArchiveKey {
  const secret = randomBytes(ARCHIVE_KEY_FILE.secretBytes);
  let fd: number;
  try {
    fd = nfs.openSync(file, nfs.constants.O_WRONLY | nfs.constants.O_CREAT | nfs.constants.O_EXCL, ARCHIVE_KEY_FILE.mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ChronoError('EXISTS', `key file ${file} exists already; use it without --new-key, or choose another path`, { file });
    throw new ChronoError('BAD_ARGUMENT', `cannot create the archive key file ${file}: ${(err as Error).message}`, { file }, err);
  }
  try {
    nfs.fchmodSync(fd, ARCHIVE_KEY_FILE.mode); // whatever the umask
    nfs.writeSync(fd, `${secret.toString('hex')}\n`);
    nfs.fsyncSync(fd);
  } finally {
    nfs.closeSync(fd);
  }
  return archiveKeyFromSecret(secret);
}
