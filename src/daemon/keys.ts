// The cluster key file (--key-file): one key per line, "ID SECRET", comments with '#'.
//   1 hex:5be1c0...   (or base64:...; at least 16 bytes, `berkeley-agent keygen` makes 32)
// Agents send with the first key and accept every key listed (rotation: see README "Security").
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { KEY_ID_MAX, KEY_SECRET_BYTES_MIN, type FrameKey } from '../wire/auth.ts';
import { KEYS_PER_FILE_MAX, KEY_FILE_BYTES_MAX } from '../core/limits.ts';


export class KeyFileError extends Error {}

export interface LoadedKeys {
  path: string;
  keys: FrameKey[];
  /** Not fatal, for the log: e.g. the file is readable by others. */
  warnings: string[];
}

/** The key file to use: --key-file, else systemd's credential `keys` (LoadCredential=keys:...), else none. */
export function keyFilePath(given: string | null, env: NodeJS.ProcessEnv = process.env): string | null {
  if (given !== null) return given;
  const credentials = env.CREDENTIALS_DIRECTORY;
  if (!credentials) return null;
  const path = `${credentials}/keys`;
  try {
    return statSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

export function loadKeyFile(path: string): LoadedKeys {
  let text: string;
  let mode: number;
  try {
    const stats = statSync(path);
    if (!stats.isFile()) throw new KeyFileError(`--key-file ${path}: not a regular file`);
    if (stats.size > KEY_FILE_BYTES_MAX) throw new KeyFileError(`--key-file ${path}: over ${KEY_FILE_BYTES_MAX} bytes; a key file holds a few lines`);
    mode = stats.mode;
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof KeyFileError) throw error;
    throw new KeyFileError(`--key-file ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const keys = parseKeys(text, path);
  const warnings: string[] = [];
  // systemd's credentials directory is the service's own; anywhere else, others must not read it.
  if ((mode & 0o077) !== 0 && !path.startsWith(`${process.env.CREDENTIALS_DIRECTORY ?? '\0'}/`)) {
    warnings.push(`--key-file ${path} is readable by others (mode ${(mode & 0o777).toString(8)}): anyone who reads it can move every clock of the cluster; chmod 600 it`);
  }
  return { path, keys, warnings };
}

export function parseKeys(text: string, path: string): FrameKey[] {
  const keys: FrameKey[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const where = `--key-file ${path} line ${index + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length !== 2) throw new KeyFileError(`${where}: expected "ID SECRET" (e.g. "1 hex:..."), got ${fields.length} fields`);
    const [idText, secretText] = fields as [string, string];
    if (!/^\d+$/.test(idText) || Number(idText) < 1 || Number(idText) > KEY_ID_MAX) throw new KeyFileError(`${where}: key id must be 1..${KEY_ID_MAX} (got ${JSON.stringify(idText)})`);
    const id = Number(idText);
    if (keys.some((key) => key.id === id)) throw new KeyFileError(`${where}: key id ${id} is listed twice`);
    const secret = decodeSecret(secretText, where);
    if (keys.length >= KEYS_PER_FILE_MAX) throw new KeyFileError(`${where}: more than ${KEYS_PER_FILE_MAX} keys`);
    keys.push({ id, secret });
  });
  if (keys.length === 0) throw new KeyFileError(`--key-file ${path}: no keys (make one with: berkeley-agent keygen > ${path})`);
  return keys;
}

function decodeSecret(text: string, where: string): Buffer {
  let secret: Buffer;
  if (text.startsWith('base64:')) {
    const encoded = text.slice('base64:'.length);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new KeyFileError(`${where}: the secret is not valid base64`);
    secret = Buffer.from(encoded, 'base64');
  } else {
    const encoded = text.startsWith('hex:') ? text.slice('hex:'.length) : text;
    if (!/^([0-9a-fA-F]{2})+$/.test(encoded)) throw new KeyFileError(`${where}: the secret must be hex:HEX or base64:BASE64`);
    secret = Buffer.from(encoded, 'hex');
  }
  if (secret.length < KEY_SECRET_BYTES_MIN) throw new KeyFileError(`${where}: the secret has ${secret.length} bytes; at least ${KEY_SECRET_BYTES_MIN} are needed (berkeley-agent keygen makes 32)`);
  return secret;
}

/** A new key line: 32 random bytes. */
export function generateKeyLine(id: number): string {
  return `${id} hex:${randomBytes(32).toString('hex')}`;
}
