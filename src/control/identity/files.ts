// Small file helpers for the identity state: atomic writes with a given mode, and reads whose errors
// name the file. Private keys are written 0600 and certificates 0644, each through a temporary file and
// a rename so a crash never leaves half a key behind.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { IdentityFileError } from './errors.js';

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Reads a text file; an error names the file (`what` is e.g. "issuer key") and the errno code. */
export async function readText(what: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new IdentityFileError(what, file, `cannot read it (${code})`, { cause: err });
  }
}

/** Refuses a private key file that other users can read (like ssh does). */
export async function requirePrivateMode(what: string, file: string): Promise<void> {
  const st = await stat(file);
  if ((st.mode & 0o077) !== 0) {
    throw new IdentityFileError(
      what,
      file,
      `is readable by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it`,
    );
  }
}
